"""Training data: readers (with line-numbered errors) and the no-duplicate batch sampler."""

from __future__ import annotations

import pytest

from simcse_rag.data import (
    NoDuplicateBatchSampler,
    TrainExample,
    as_examples,
    example_from_mined,
    load_examples,
)
from simcse_rag.mining import MinedExample, MinedNegative


def test_txt_gives_unsupervised_examples(tmp_path):
    f = tmp_path / "s.txt"
    f.write_text("first sentence\n\n  second one  \n", encoding="utf-8")
    examples = load_examples(f)
    assert examples == [
        TrainExample("first sentence", "first sentence"),
        TrainExample("second one", "second one"),
    ]
    assert all(ex.is_unsupervised for ex in examples)


def test_csv_simcse_nli_format_and_two_columns(tmp_path):
    f = tmp_path / "nli.csv"
    f.write_text('sent0,sent1,hard_neg\n"a, b",c,d\ne,f,\n', encoding="utf-8")
    assert load_examples(f) == [TrainExample("a, b", "c", ("d",)), TrainExample("e", "f")]
    g = tmp_path / "pairs.tsv"
    g.write_text("query\tpassage\nq1\tp1\nq2\tp2\n", encoding="utf-8")
    assert load_examples(g) == [TrainExample("q1", "p1"), TrainExample("q2", "p2")]


def test_nli_label_pairs_become_triplets(tmp_path):
    f = tmp_path / "snli.tsv"
    f.write_text(
        "premise\thypothesis\tlabel\n"
        "P1\tE1\tentailment\n"
        "P1\tC1\tcontradiction\n"
        "P1\tN1\tneutral\n"
        'P2\tE2 "quoted\tentailment\n'
        "P3\tC3\tcontradiction\n",
        encoding="utf-8",
    )
    assert load_examples(f) == [TrainExample("P1", "E1", ("C1",)), TrainExample("P2", 'E2 "quoted')]


def test_real_nli_files_parse(shared_data):
    sup = load_examples(shared_data / "nli_en" / "snli_pairs.tsv")
    assert len(sup) > 1000 and sum(bool(ex.negatives) for ex in sup) >= 400
    assert len(load_examples(shared_data / "nli_zh" / "ocnli_triplets.tsv")) == 7784


@pytest.mark.parametrize(
    ("name", "content", "match"),
    [
        ("e.txt", "\n\n", "no examples"),
        ("e.csv", "", "no examples"),
        ("bad.tsv", "sent0\tsent1\na\tb\nc\td\textra\n", r"bad.tsv:3: expected 2 fields"),
        (
            "bad.csv",
            "sent0,sent1\na,b\n\nc,\n",
            r"bad.csv:4: the second \(positive\) column is empty",
        ),
        ("bad2.tsv", "premise\thypothesis\tlabel\np\th\tmaybe\n", r"bad2.tsv:2: unknown NLI label"),
        ("one.csv", "only\nx\n", "at least two columns"),
        ("x.json", "{}", "Unsupported training data"),
    ],
)
def test_reader_errors_name_the_line(tmp_path, name, content, match):
    f = tmp_path / name
    f.write_text(content, encoding="utf-8")
    with pytest.raises(ValueError, match=match):
        load_examples(f)


def test_non_utf8_and_missing(tmp_path):
    f = tmp_path / "b.txt"
    f.write_bytes(b"ok\n\xff\xfe\n")
    with pytest.raises(ValueError, match="UTF-8"):
        load_examples(f)
    with pytest.raises(FileNotFoundError):
        load_examples(tmp_path / "missing.txt")


def test_as_examples_shapes():
    got = as_examples(
        ["s", ("q", "p"), ("q2", "p2", "n"), ("q3", "p3", ["n1", "n2"]), TrainExample("a", "b")]
    )
    assert got[0] == TrainExample("s", "s")
    assert got[2].negatives == ("n",) and got[3].negatives == ("n1", "n2")
    with pytest.raises(TypeError, match=r"examples\[1\]"):
        as_examples(["ok", 3])
    with pytest.raises(ValueError, match=r"examples\[0\]"):
        as_examples([("", "p")])


def test_example_from_mined_keeps_texts_and_drops_ids_and_scores():
    mined = MinedExample(
        "q1", "fever?", "d1", "Fever in children.", 0.9, (MinedNegative("d2", "Tax.", 0.4, 3),)
    )
    assert example_from_mined(mined) == TrainExample("fever?", "Fever in children.", ("Tax.",))
    assert example_from_mined(mined, ["Ta"]).negatives == ("Ta",)
    with pytest.raises(ValueError, match=r"negatives\[0\] must be non-empty text"):
        example_from_mined(mined, [""])


def _flat(batches):
    return [i for b in batches for i in b]


def test_sampler_never_puts_a_text_twice_in_a_batch():
    # many duplicates: "dup" appears as positive of 10 examples and as anchor of another
    examples = [TrainExample(f"q{i}", "dup" if i < 10 else f"p{i}") for i in range(40)]
    examples.append(TrainExample("dup", "other"))
    sampler = NoDuplicateBatchSampler(examples, 8, seed=3)
    batches = sampler.batches(0)
    for batch in batches:
        texts = [t for i in batch for t in examples[i].texts]
        assert len(texts) == len(set(texts))
        assert 2 <= len(batch) <= 8
    covered = _flat(batches)
    assert len(covered) == len(set(covered))
    # only examples that cannot share any batch with each other are left out (here: the "dup"s)
    left_out = sorted(set(range(len(examples))) - set(covered))
    for i in left_out:
        for j in left_out:
            if i != j:
                assert set(examples[i].texts) & set(examples[j].texts)
    assert len(batches) >= 5


def test_sampler_is_deterministic_per_epoch_and_shuffles():
    examples = [TrainExample(f"s{i}", f"s{i}") for i in range(50)]
    sampler = NoDuplicateBatchSampler(examples, 10, seed=1)
    assert sampler.batches(0) == NoDuplicateBatchSampler(examples, 10, seed=1).batches(0)
    assert sampler.batches(0) != sampler.batches(1)
    assert sorted(_flat(sampler.batches(1))) == list(range(50))


def test_sampler_rejects_batch_larger_than_data():
    examples = [TrainExample(f"s{i}", f"s{i}") for i in range(5)]
    with pytest.raises(ValueError, match="batch_size 8 is larger than the 5"):
        NoDuplicateBatchSampler(examples, 8)
    with pytest.raises(ValueError, match=">= 2"):
        NoDuplicateBatchSampler(examples, 1)
