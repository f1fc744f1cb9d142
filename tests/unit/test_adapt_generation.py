"""adapt(generator=...): an LLM writes the questions, the generated route trains on them."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from simcse_rag.adapt import REPORT_MD, AdaptConfig, GenerationConfig, adapt
from simcse_rag.adapt_generation import generate_candidates
from simcse_rag.generation import OpenAIChatClient, RetryPolicy
from simcse_rag.mining import MiningConfig
from tests.unit.generation.fake_openai import FakeOpenAIServer
from tests.unit.test_adapt import synthetic_corpus

KEY = "sk-test-Zq8SECRETkey"
_FACTS = re.compile(
    r"The (\w+) answer (\d+) mentions (\w+) often\. Patients and clients ask about (\w+) and "
    r"(\w+) number"
)


def writer(prompt: str) -> str:
    """A stand-in LLM: two questions built from the facts of the passage in the prompt."""
    topic, i, often, first, second = _FACTS.search(prompt).groups()
    return f"Which {topic} answer {i} is about {first} and {second}?\nWhat does {i} say on {often}?"


def _config(**changes: object) -> AdaptConfig:
    mining = MiningConfig(num_negatives=1, relative_margin=None)
    return AdaptConfig(max_steps=2, batch_size=4, mining=mining, **changes)


def test_candidates_sample_enough_passages_seeded() -> None:
    corpus = synthetic_corpus(40)
    config = _config(max_pairs=20, seed=3)
    asked: list[str] = []

    def counting(prompt: str) -> str:
        asked.append(prompt)
        return writer(prompt)

    result = generate_candidates(corpus, counting, config, GenerationConfig(per_passage=2))
    assert len(asked) == 10 and result.counts["passages"] == 10
    assert len(result.pairs) == 20
    again = generate_candidates(corpus, writer, config, GenerationConfig(per_passage=2))
    assert [p.positive_id for p in again.pairs] == [p.positive_id for p in result.pairs]


def test_candidates_with_no_usable_question_is_a_clear_error() -> None:
    with pytest.raises(ValueError, match="wrote no usable question.*empty replies 0|wrote no"):
        generate_candidates(synthetic_corpus(20), lambda prompt: "", _config())


def test_adapt_from_a_generator_end_to_end(restored_encoder, tmp_path: Path) -> None:
    corpus = synthetic_corpus(24)
    result = adapt(
        corpus,
        restored_encoder,
        tmp_path / "o",
        config=_config(max_pairs=24),
        generator=writer,
        generation=GenerationConfig(per_passage=2, cache_path=tmp_path / "q.jsonl"),
    )
    filters = result.report["training"]["question_filters"]
    assert list(filters) == ["generation", "generated"]
    assert filters["generation"]["passages"] == 12 and filters["generation"]["questions"] == 24
    assert filters["generated"]["given"] == 24
    source = result.report["training"]["source"]
    assert source.startswith("generated questions") and source.endswith("written by writer")
    md = (tmp_path / "o" / REPORT_MD).read_text(encoding="utf-8")
    assert "- generation: passages asked about 12, requests sent 12" in md
    assert len((tmp_path / "q.jsonl").read_text(encoding="utf-8").splitlines()) == 12


def test_adapt_refuses_generator_and_generated(tiny_encoder, tmp_path: Path) -> None:  # noqa: ANN001
    with pytest.raises(ValueError, match="not both"):
        adapt(synthetic_corpus(20), tiny_encoder, tmp_path / "o", generator=writer, generated=[])
    assert not (tmp_path / "o").exists()


@pytest.mark.enable_socket
def test_key_is_in_no_file_adapt_writes(
    restored_encoder,  # noqa: ANN001
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", KEY)
    caplog.set_level("DEBUG")
    with FakeOpenAIServer() as openai_server:
        openai_server.reply = writer
        client = OpenAIChatClient(openai_server.url, "m", retry=RetryPolicy(max_retries=0))
        adapt(
            synthetic_corpus(24),
            restored_encoder,
            tmp_path / "o",
            config=_config(max_pairs=24),
            generator=client,
            generation=GenerationConfig(per_passage=2, cache_path=tmp_path / "q.jsonl"),
        )
    assert set(openai_server.authorizations) == {f"Bearer {KEY}"}
    files = [p for p in tmp_path.rglob("*") if p.is_file()]
    assert tmp_path / "q.jsonl" in files and tmp_path / "o" / "report.json" in files
    for path in files:
        assert KEY.encode() not in path.read_bytes(), path
    assert KEY not in caplog.text
    assert json.loads((tmp_path / "o" / "report.json").read_text())["training"]["pairs"] > 0
