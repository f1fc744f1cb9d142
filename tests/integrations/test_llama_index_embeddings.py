"""SimCSEEmbedding as a LlamaIndex embed model, alone and inside VectorStoreIndex."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("llama_index.core")

from llama_index.core import Settings, VectorStoreIndex  # noqa: E402
from llama_index.core.base.embeddings.base import BaseEmbedding  # noqa: E402
from llama_index.core.schema import TextNode  # noqa: E402

from llama_index_simcse import SimCSEEmbedding  # noqa: E402
from tests.integrations.corpus import CORPUS  # noqa: E402

TEXTS = [text for _, text, _ in CORPUS]


@pytest.fixture
def embed_model(encoder) -> SimCSEEmbedding:
    return SimCSEEmbedding(encoder=encoder, embed_batch_size=2)


def test_is_a_base_embedding_with_class_name(embed_model) -> None:
    assert isinstance(embed_model, BaseEmbedding)
    assert SimCSEEmbedding.class_name() == "SimCSEEmbedding"
    assert embed_model.to_dict()["class_name"] == "SimCSEEmbedding"
    assert embed_model.embed_batch_size == 2


def test_query_text_and_batch_agree_with_the_core_encoder(embed_model, encoder) -> None:
    expected = encoder.encode(TEXTS)
    batch = np.array(embed_model.get_text_embedding_batch(TEXTS))  # 3 calls of <= 2 texts
    assert batch.shape == (len(TEXTS), encoder.dim)
    np.testing.assert_allclose(batch, expected, atol=1e-5)
    np.testing.assert_allclose(embed_model.get_text_embedding(TEXTS[2]), expected[2], atol=1e-5)
    np.testing.assert_allclose(embed_model.get_query_embedding(TEXTS[3]), expected[3], atol=1e-5)


async def test_async_methods_agree_with_sync(embed_model) -> None:
    sync = embed_model.get_text_embedding_batch(TEXTS)
    np.testing.assert_allclose(await embed_model.aget_text_embedding_batch(TEXTS), sync, atol=1e-6)
    np.testing.assert_allclose(await embed_model.aget_query_embedding(TEXTS[0]), sync[0], atol=1e-6)
    np.testing.assert_allclose(await embed_model.aget_text_embedding(TEXTS[1]), sync[1], atol=1e-6)


def test_loads_from_a_path(model_dir, encoder) -> None:
    model = SimCSEEmbedding(str(model_dir), device="cpu")
    assert model.model_name_or_path == str(model_dir)
    assert model.model_name == str(model_dir)
    np.testing.assert_allclose(
        model.get_query_embedding("头痛"), encoder.embed_query("头痛"), atol=1e-5
    )


def test_encoder_and_loading_options_together_are_rejected(encoder, model_dir) -> None:
    with pytest.raises(ValueError, match="pass only one"):
        SimCSEEmbedding(str(model_dir), encoder=encoder)


def test_works_as_settings_embed_model_for_vector_store_index(embed_model) -> None:
    nodes = [
        TextNode(text=t, id_=f"n{i}", metadata={"i": i}, excluded_embed_metadata_keys=["i"])
        for i, t in enumerate(TEXTS)
    ]
    previous = Settings._embed_model
    Settings.embed_model = embed_model
    try:
        index = VectorStoreIndex(nodes)
        retriever = index.as_retriever(similarity_top_k=2)
        for i, text in enumerate(TEXTS):
            hits = retriever.retrieve(text)
            assert len(hits) == 2
            assert hits[0].node.node_id == f"n{i}"
            assert hits[0].node.metadata == {"i": i}
            assert hits[0].score == pytest.approx(1.0, abs=1e-5)
    finally:
        Settings._embed_model = previous


def test_texts_through_the_int8_passage_backend(encoder) -> None:
    model = SimCSEEmbedding(encoder=encoder, passage_backend="onnx-int8")
    np.testing.assert_allclose(
        np.array(model.get_text_embedding_batch(TEXTS)),
        encoder.encode(TEXTS, backend="onnx-int8"),
        atol=1e-6,
    )
    np.testing.assert_allclose(model.get_query_embedding(TEXTS[0]), encoder.encode(TEXTS[:1])[0])
    with pytest.raises(ValueError, match="onnx-int4"):
        SimCSEEmbedding(encoder=encoder, passage_backend="onnx-int4")
