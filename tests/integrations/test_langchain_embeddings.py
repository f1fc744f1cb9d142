"""SimCSEEmbeddings: LangChain's standard embeddings suites plus behaviour checks."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

pytest.importorskip("langchain_core")
pytest.importorskip("langchain_tests")

from langchain_tests.integration_tests import EmbeddingsIntegrationTests  # noqa: E402
from langchain_tests.unit_tests import EmbeddingsUnitTests  # noqa: E402
from pydantic import ValidationError  # noqa: E402

from langchain_simcse import SimCSEEmbeddings  # noqa: E402


class _TinyModelParams:
    """Points the standard suites at the session's tiny model folder."""

    model_dir: Path

    @pytest.fixture(autouse=True)
    def _tiny_model(self, model_dir: Path) -> None:
        type(self).model_dir = model_dir

    @property
    def embeddings_class(self) -> type[SimCSEEmbeddings]:
        return SimCSEEmbeddings

    @property
    def embedding_model_params(self) -> dict[str, Any]:
        return {"model_name_or_path": str(self.model_dir), "device": "cpu", "batch_size": 2}


class TestSimCSEEmbeddingsUnit(_TinyModelParams, EmbeddingsUnitTests):
    pass


class TestSimCSEEmbeddingsIntegration(_TinyModelParams, EmbeddingsIntegrationTests):
    pass


@pytest.fixture
def embeddings(encoder) -> SimCSEEmbeddings:
    return SimCSEEmbeddings(encoder=encoder, batch_size=2)


def test_query_and_document_vectors_agree_and_are_unit_length(embeddings) -> None:
    texts = ["fever in children", "儿童发烧怎么办", "tax on dividends"]
    docs = np.array(embeddings.embed_documents(texts))
    queries = np.array([embeddings.embed_query(t) for t in texts])
    assert docs.shape == (3, embeddings.dim)
    np.testing.assert_allclose(docs, queries, atol=1e-5)
    np.testing.assert_allclose(np.linalg.norm(docs, axis=1), 1.0, atol=1e-5)


def test_matches_the_core_encoder_and_path_loading(encoder, model_dir) -> None:
    texts = ["the heart and blood", "头痛", "cash flow"]
    expected = encoder.encode(texts)
    by_encoder = SimCSEEmbeddings(encoder=encoder).embed_documents(texts)
    by_path = SimCSEEmbeddings(model_name_or_path=str(model_dir), device="cpu")
    np.testing.assert_allclose(np.array(by_encoder), expected, atol=1e-6)
    np.testing.assert_allclose(np.array(by_path.embed_documents(texts)), expected, atol=1e-5)


def test_unnormalised_vectors_keep_their_length(encoder) -> None:
    emb = SimCSEEmbeddings(encoder=encoder, normalize=False)
    raw = encoder.encode(["stock price"], normalize=False)[0]
    np.testing.assert_allclose(emb.embed_query("stock price"), raw, atol=1e-5)
    assert abs(np.linalg.norm(raw) - 1.0) > 1e-3


async def test_async_matches_sync(embeddings) -> None:
    texts = ["insulin dose", "贷款利率"]
    np.testing.assert_allclose(
        await embeddings.aembed_documents(texts), embeddings.embed_documents(texts), atol=1e-6
    )
    np.testing.assert_allclose(
        await embeddings.aembed_query("rash"), embeddings.embed_query("rash"), atol=1e-6
    )


def test_empty_document_list_gives_empty_list(embeddings) -> None:
    assert embeddings.embed_documents([]) == []


def test_unknown_field_is_rejected(encoder) -> None:
    with pytest.raises(ValidationError, match="model_name"):
        SimCSEEmbeddings(encoder=encoder, model_name="x")


def test_encoder_and_path_together_are_rejected(encoder, model_dir) -> None:
    with pytest.raises(ValueError, match="pass only one"):
        SimCSEEmbeddings(encoder=encoder, model_name_or_path=str(model_dir))


def test_missing_model_folder_names_the_path(tmp_path) -> None:
    missing = tmp_path / "no-such-model"
    with pytest.raises(ValueError, match="no-such-model"):
        SimCSEEmbeddings(model_name_or_path=str(missing))


def test_bad_batch_size_is_rejected(encoder) -> None:
    with pytest.raises(ValidationError, match="batch_size"):
        SimCSEEmbeddings(encoder=encoder, batch_size=0)


def test_documents_through_the_int8_passage_backend(encoder) -> None:
    texts = ["a child with a fever", "dividend tax rate", "儿童发烧怎么办"]
    embeddings = SimCSEEmbeddings(encoder=encoder, passage_backend="onnx-int8")
    np.testing.assert_allclose(
        np.array(embeddings.embed_documents(texts)),
        encoder.encode(texts, backend="onnx-int8"),
        atol=1e-6,
    )
    with pytest.raises(ValueError, match="onnx-int4"):
        SimCSEEmbeddings(encoder=encoder, passage_backend="onnx-int4")
