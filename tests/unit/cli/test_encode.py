from __future__ import annotations

import numpy as np

from simcse_rag.cli import main


def test_help_lists_commands(capsys):
    try:
        main(["--help"])
    except SystemExit as exc:
        assert exc.code == 0
    assert "encode" in capsys.readouterr().out


def test_encode_writes_matrix(tiny_model_dir, tmp_path, capsys):
    src = tmp_path / "in.txt"
    src.write_text("first line\n\n第二行\nthird\n", encoding="utf-8")
    out = tmp_path / "emb.npy"
    code = main(
        [
            "encode",
            "--model",
            str(tiny_model_dir),
            "--input",
            str(src),
            "--output",
            str(out),
            "--no-progress",
        ]
    )
    assert code == 0
    arr = np.load(out)
    assert arr.shape == (3, 32) and arr.dtype == np.float32


def test_encode_user_errors_are_one_line(tiny_model_dir, tmp_path, capsys):
    src = tmp_path / "in.txt"
    src.write_bytes(b"\xff\xfe bad bytes")
    code = main(
        [
            "encode",
            "--model",
            str(tiny_model_dir),
            "--input",
            str(src),
            "--output",
            str(tmp_path / "e.npy"),
        ]
    )
    err = capsys.readouterr().err
    assert (
        code == 2
        and err.startswith("error:")
        and "UTF-8" in err
        and len(err.strip().splitlines()) == 1
    )
    src.write_text("ok\n")
    code = main(
        [
            "encode",
            "--model",
            str(tmp_path / "missing"),
            "--input",
            str(src),
            "--output",
            str(tmp_path / "e.npy"),
        ]
    )
    err = capsys.readouterr().err
    assert code == 2 and "does not exist" in err
    assert not (tmp_path / "e.npy").exists()


def test_encode_reads_a_corpus_file_and_refuses_unknown_extensions(
    tiny_model_dir, tmp_path, capsys
):
    src = tmp_path / "corpus.jsonl"
    src.write_text('{"_id": "a", "text": "one"}\n{"_id": "b", "text": "two"}\n', encoding="utf-8")
    out = tmp_path / "emb.npy"
    args = ["encode", "--model", str(tiny_model_dir), "--output", str(out), "--no-progress"]
    assert main([*args, "--input", str(src)]) == 0
    from simcse_rag.encoder import SimCSEEncoder

    expected = SimCSEEncoder.from_pretrained(tiny_model_dir, device="cpu").encode(["one", "two"])
    np.testing.assert_allclose(np.load(out), expected, atol=1e-5)  # texts, not raw JSON lines
    out.unlink()
    odd = tmp_path / "texts.md"
    odd.write_text("one\n", encoding="utf-8")
    assert main([*args, "--input", str(odd)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error:") and "unsupported extension '.md'; use .txt" in err
    assert len(err.strip().splitlines()) == 1 and not out.exists()
