"""STS evaluation: parity with sentence-transformers, alignment / uniformity, file errors."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from simcse_rag.evaluation.sts import alignment, evaluate_sts, read_sts, uniformity

ROWS = [
    ("a man is playing a guitar", "a man plays guitar", 4.8),
    ("a child drinks water", "the baby sleeps", 0.4),
    ("the doctor gives medicine", "a doctor is giving a drug", 4.2),
    ("stock price fell", "the market rose", 1.0),
    ("a woman slices an onion", "a woman is cutting an onion", 4.6),
    ("fever and cough in children", "blood test results", 0.2),
    ("interest rate of the loan", "the bank loan rate", 3.5),
    ("a cat sits on the mat", "a dog runs in a park", 1.5),
]


def _write(path, rows, header="sentence1\tsentence2\tscore"):
    path.write_text(
        header + "\n" + "".join(f"{a}\t{b}\t{s}\n" for a, b, s in rows), encoding="utf-8"
    )
    return path


def test_matches_sentence_transformers_evaluator(tiny_model_dir, tmp_path):
    from sentence_transformers import SentenceTransformer
    from sentence_transformers.sentence_transformer.evaluation import EmbeddingSimilarityEvaluator

    from simcse_rag.encoder import SimCSEEncoder

    # mean pooling: the random tiny model's tanh pooler makes every cosine ~1.0 (ties)
    encoder = SimCSEEncoder.from_pretrained(tiny_model_dir, pooling="mean", device="cpu")
    saved = encoder.save_pretrained(tmp_path / "m")
    ours = evaluate_sts(encoder, _write(tmp_path / "d.tsv", ROWS))
    st = EmbeddingSimilarityEvaluator(
        [r[0] for r in ROWS], [r[1] for r in ROWS], [r[2] for r in ROWS]
    )(SentenceTransformer(str(saved), device="cpu"))
    assert ours["pairs"] == len(ROWS)
    assert ours["spearman"] == pytest.approx(st["spearman_cosine"], abs=1e-3)
    assert ours["pearson"] == pytest.approx(st["pearson_cosine"], abs=1e-3)


def test_perfect_and_reversed_model():
    class Fake:  # cosine of the pair = its score rank
        def encode(self, texts, **_):
            return np.array([[1.0, float(t.split()[-1])] for t in texts], dtype=np.float32)

    rows = [("x 0", f"y {k}", k) for k in (0.1, 0.5, 1.0, 2.0, 4.0)]
    out = evaluate_sts(Fake(), rows)
    # cosine between (1, 0) and (1, k) decreases with k -> perfectly reversed ranking
    assert out["spearman"] == pytest.approx(-1.0)
    assert set(out) >= {"spearman", "pearson", "pairs", "alignment", "uniformity"}


def test_alignment_and_uniformity_by_hand():
    x = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    y = torch.tensor([[0.0, 1.0], [0.0, 1.0]])
    # distances^2: 2 and 0 -> mean 1
    assert alignment(x, y) == pytest.approx(1.0)
    pts = np.array([[1.0, 0.0], [-1.0, 0.0], [0.0, 1.0]])
    d2 = [4.0, 2.0, 2.0]
    assert uniformity(pts) == pytest.approx(math.log(np.mean(np.exp(-2 * np.array(d2)))))
    # identical points are the least uniform possible (log 1 = 0)
    assert uniformity(np.ones((4, 3))) == pytest.approx(0.0)


def test_label_column_and_errors(tmp_path):
    good = _write(tmp_path / "l.tsv", [("a", "b", 1), ("c", "d", 0)], "sentence1\tsentence2\tlabel")
    assert [p.score for p in read_sts(good)] == [1.0, 0.0]
    with pytest.raises(ValueError, match="header"):
        read_sts(_write(tmp_path / "h.tsv", [("a", "b", 1)], "s1\ts2\tscore"))
    bad = tmp_path / "b.tsv"
    bad.write_text("sentence1\tsentence2\tscore\na\tb\t1\nc\td\n", encoding="utf-8")
    with pytest.raises(ValueError, match=r"b.tsv:3: expected 3"):
        read_sts(bad)
    bad.write_text("sentence1\tsentence2\tscore\na\tb\thigh\n", encoding="utf-8")
    with pytest.raises(ValueError, match=r"b.tsv:2: score 'high'"):
        read_sts(bad)
    bad.write_text("sentence1\tsentence2\tscore\n", encoding="utf-8")
    with pytest.raises(ValueError, match="no rows"):
        read_sts(bad)


def test_real_stsb_dev_reads(shared_data):
    pairs = read_sts(shared_data / "stsb_en" / "dev.tsv")
    assert len(pairs) == 1500
