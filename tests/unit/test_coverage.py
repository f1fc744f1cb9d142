"""Vocabulary coverage: share of [UNK] tokens and the dense-weight factor derived from it."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from simcse_rag.index.coverage import (
    dense_weight_factor,
    encoder_readable_share,
    is_punctuation,
    readable_share,
)

UNK, CLS, SEP, PAD, DOT = 100, 101, 102, 0, 1012


def test_readable_share_hand_computed() -> None:
    ids = np.array(
        [
            [CLS, 7, 8, UNK, SEP, PAD],  # 1 unknown of 3 counted tokens
            [CLS, UNK, UNK, DOT, SEP, PAD],  # punctuation left out: 2 of 2 unknown
            [CLS, SEP, PAD, PAD, PAD, PAD],  # nothing counted: nothing unread
        ]
    )
    mask = (ids != PAD).astype(np.int64)
    share = readable_share(ids, mask, UNK, {CLS, SEP, DOT})
    assert share.tolist() == pytest.approx([2 / 3, 0.0, 1.0])
    assert dense_weight_factor(share).tolist() == pytest.approx([2 / 3, 0.0, 1.0])


def test_punctuation_tokens() -> None:
    assert is_punctuation("？") and is_punctuation("##.") and is_punctuation("，")
    assert not is_punctuation("fever") and not is_punctuation("##s") and not is_punctuation("")


def test_encoder_share_english_full_unknown_script_zero(tiny_encoder: Any) -> None:
    share = encoder_readable_share(tiny_encoder, ["fever and cough?", "안녕하세요", "fever 안녕"])
    assert share[0] == 1.0  # English text is read fully: its dense weight stays unchanged
    assert share[1] == 0.0  # Hangul is outside the tiny vocabulary: nothing read
    assert share[2] == pytest.approx(0.5)


def test_share_of_a_corpus_tokenizes_a_slice_at_a_time() -> None:
    from simcse_rag.index.coverage import CoverageMeter

    batches: list[int] = []

    def tokenize(texts: list[str]) -> dict[str, np.ndarray]:
        # Padded like a Hugging Face tokenizer: one unknown token per "?" in the text.
        batches.append(len(texts))
        width = 2 + max(len(t) for t in texts)
        ids = np.full((len(texts), width), PAD)
        for row, text in enumerate(texts):
            ids[row, : len(text) + 2] = [CLS, *(UNK if c == "?" else 7 for c in text), SEP]
        return {"input_ids": ids, "attention_mask": (ids != PAD).astype(np.int64)}

    texts = ["é?" if i % 3 else "éé" for i in range(10_000)] + ["ascii"]
    share = CoverageMeter(tokenize, UNK, {CLS, SEP}).share(texts)
    assert max(batches) <= 1024 and sum(batches) == 10_000  # ASCII texts skip the tokenizer
    expected = [0.5 if i % 3 else 1.0 for i in range(10_000)] + [1.0]
    assert share.tolist() == pytest.approx(expected)


@pytest.fixture(scope="module")
def english_card_encoder(tiny_model_dir: Any, tmp_path_factory: pytest.TempPathFactory) -> Any:
    """The tiny model (whose vocabulary holds every common Han character) with a card that
    declares English only."""
    import shutil

    from simcse_rag.encoder import SimCSEEncoder

    folder = shutil.copytree(tiny_model_dir, tmp_path_factory.mktemp("card") / "tiny-en")
    (folder / "README.md").write_text("---\nlanguage: en\n---\n", encoding="utf-8")
    return SimCSEEncoder.from_pretrained(folder, device="cpu")


def test_han_in_the_vocabulary_is_unread_by_a_model_declared_english(
    tiny_encoder: Any, english_card_encoder: Any
) -> None:
    texts = ["发烧咳嗽", "fever 发烧", "fever"]
    # No card: every Han character is in the tiny vocabulary, so all of it counts as read.
    assert encoder_readable_share(tiny_encoder, texts).tolist() == [1.0, 1.0, 1.0]
    # Card says English: Han tokens count as unread although none is [UNK].
    share = encoder_readable_share(english_card_encoder, texts)
    assert share.tolist() == pytest.approx([0.0, 1 / 3, 1.0])


def test_an_encoder_built_directly_has_no_card(tiny_encoder: Any) -> None:
    """``SimCSEEncoder(model, tokenizer)`` names no model (``name_or_path`` ""): its Han tokens
    stay readable rather than taking the bundled English model's card."""
    from simcse_rag.encoder import SimCSEEncoder

    direct = SimCSEEncoder(tiny_encoder.model, tiny_encoder.tokenizer, device="cpu")
    assert direct.name_or_path == ""
    assert encoder_readable_share(direct, ["发烧咳嗽"]).tolist() == [1.0]


def test_meter_of_a_cached_query_model_reads_the_card_by_model_name(
    english_card_encoder: Any, tmp_path: Any
) -> None:
    """A saved index searched without PyTorch measures with its cached tokenizer.json; the
    model's name (from the manifest) finds the card."""
    from types import SimpleNamespace

    from simcse_rag.index.coverage import CoverageMeter
    from simcse_rag.onnx_cache import FastQueryTokenizer

    english_card_encoder.tokenizer.save_pretrained(tmp_path)
    tokenizer_json = (tmp_path / "tokenizer.json").read_text(encoding="utf-8")
    pad = {"pad_id": 0, "pad_token": "[PAD]", "pad_type_id": 0, "side": "right"}
    tokenizer = FastQueryTokenizer(tokenizer_json, max_length=32, dim=8, padding=pad)
    query_model = SimpleNamespace(
        files={"tokenizer.json": tokenizer_json.encode()}, tokenizer=lambda: tokenizer
    )
    assert CoverageMeter.from_query_model(query_model).share(["发烧"]).tolist() == [1.0]
    named = CoverageMeter.from_query_model(query_model, english_card_encoder.name_or_path)
    assert named.share(["发烧", "fever"]).tolist() == [0.0, 1.0]


def test_token_ids_give_the_shares_of_a_padded_tokenization() -> None:
    """The coverage check reads the encoder's unpadded token ids: the shares must be the ones
    tokenizing again with padding gives, to the last bit."""
    from simcse_rag.index.coverage import token_readable_share

    rng = np.random.default_rng(0)
    lists = [
        [CLS, *rng.choice([UNK, DOT, 7, 8, 9], size=int(n)).tolist(), SEP]
        for n in rng.integers(0, 40, size=300)
    ] + [[CLS, SEP], []]
    width = max(map(len, lists))
    padded = np.array([ids + [PAD] * (width - len(ids)) for ids in lists])
    mask = np.array([[1] * len(ids) + [0] * (width - len(ids)) for ids in lists])
    expected = readable_share(padded, mask, UNK, {CLS, SEP, DOT})
    got = token_readable_share(lists, UNK, {CLS, SEP, DOT})
    assert got.dtype == expected.dtype and np.array_equal(got, expected)
    assert got[-2:].tolist() == [1.0, 1.0]  # nothing counted: nothing unread


@pytest.mark.parametrize("card", [False, True])
def test_tally_from_encoder_tokens_equals_tokenizing_again(
    tiny_encoder: Any, english_card_encoder: Any, card: bool
) -> None:
    """With and without a card (whose languages make Han tokens unread although in the
    vocabulary)."""
    from simcse_rag.index.coverage import CoverageMeter, DenseCoverage

    encoder = english_card_encoder if card else tiny_encoder
    texts = ["fever 안녕", "안녕하세요", "fever and cough?", "감기 fever 发烧", "发烧咳嗽"]
    texts.append("안녕하세요")  # a repeat
    coverage = DenseCoverage(lambda: CoverageMeter.from_encoder(encoder), "tiny")
    assert coverage.tally(["english only"]) is None  # ASCII texts never reach the tokenizer
    tally = coverage.tally(texts)
    assert tally is not None
    for _ in encoder.iter_encode(list(dict.fromkeys(texts)), on_tokens=tally.observe):
        pass
    assert set(tally.shares) == {"fever 안녕", "안녕하세요", "감기 fever 发烧", "发烧咳嗽"}
    meter = CoverageMeter.from_encoder(encoder)
    assert np.array_equal(meter.share(texts, tally.shares), meter.share(texts))
    assert (tally.shares["发烧咳嗽"] == 0.0) is card


def test_meter_of_another_tokenizer_collects_nothing() -> None:
    from simcse_rag.index.coverage import CoverageMeter, DenseCoverage

    meter = CoverageMeter(lambda texts: None, UNK, {CLS, SEP})  # e.g. a query model's tokenizer
    assert DenseCoverage(lambda: meter, "m").tally(["안녕"]) is None
