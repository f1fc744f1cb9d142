"""Retrieval helpers of domain adaptation: the encode-stage token limit."""

from __future__ import annotations

import pytest

from simcse_rag.adapt_retrieval import encoder_max_length


def test_encoder_max_length_sets_the_limit_inside_and_restores_it(tiny_model_dir) -> None:
    from simcse_rag.encoder import SimCSEEncoder

    encoder = SimCSEEncoder.from_pretrained(tiny_model_dir, device="cpu")
    own = encoder.max_length
    text = " ".join(["fever"] * 100)
    with encoder_max_length(encoder, 8):
        assert encoder.max_length == 8
        assert encoder.tokenize([text])["input_ids"].shape[1] == 8
    assert encoder.max_length == own
    with pytest.raises(KeyError), encoder_max_length(encoder, 8):
        raise KeyError("a failing stage")
    assert encoder.max_length == own
    with encoder_max_length(encoder, None):  # None keeps the model's own limit
        assert encoder.max_length == own
    assert encoder.max_length == own
