"""Value types shared by the core: passages in, hits out."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

#: How a retriever can rank: both legs fused of both legs, the dense leg alone, or BM25 alone.
SEARCH_MODES: tuple[str, ...] = ("hybrid", "dense", "bm25")


@dataclass(frozen=True)
class Passage:
    """A unit of text that can be retrieved.

    Attributes:
        id: Unique, stable document id (string). Fusion and deletion work on ids, never on text.
        text: The text that is embedded and tokenized.
        metadata: Free-form JSON-serialisable metadata returned with every hit.
    """

    id: str
    text: str
    metadata: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not isinstance(self.id, str) or not self.id:
            raise ValueError(f"Passage id must be a non-empty string, got {self.id!r}.")
        if not isinstance(self.text, str):
            raise TypeError(
                f"Passage {self.id!r}: text must be a str, got {type(self.text).__name__}."
            )
        if not isinstance(self.metadata, dict):
            raise TypeError(
                f"Passage {self.id!r}: metadata must be a dict, got {type(self.metadata).__name__}."
            )


def check_passages(passages: Iterable[Passage]) -> list[Passage]:
    """The passages as a list, each a :class:`Passage` with an id unique among them.

    Raises:
        TypeError: A bare str or Passage (not an iterable of them), or an item of another type.
        ValueError: Two passages share an id.
    """
    if isinstance(passages, (str, Passage)):
        raise TypeError("passages must be an iterable of Passage objects; wrap one in a list.")
    items = list(passages)
    seen: set[str] = set()
    for i, p in enumerate(items):
        if not isinstance(p, Passage):
            raise TypeError(
                f"passages[{i}] is {type(p).__name__}, expected simcse_rag.schema.Passage."
            )
        if p.id in seen:
            raise ValueError(f"Duplicate passage id {p.id!r} (passages[{i}]); ids must be unique.")
        seen.add(p.id)
    return items


@dataclass(frozen=True)
class SourceHit:
    """Where a document stood in one source ranking before fusion.

    Attributes:
        rank: 1-based rank in that source.
        score: The source's own score (cosine similarity, BM25 score, ...).
    """

    rank: int
    score: float


@dataclass(frozen=True)
class Hit:
    """One retrieved passage.

    Attributes:
        id: Document id.
        score: Final score (fused RRF score in hybrid mode, the source score otherwise).
        rank: 1-based rank in the final list.
        text: Passage text ("" when the producer does not hold texts).
        metadata: Passage metadata.
        sources: Rank and score of the document in each source ranking, keyed by source name
            (e.g. ``"dense"``, ``"bm25"``). A source that did not return the document is absent.
    """

    id: str
    score: float
    rank: int
    text: str = ""
    metadata: dict[str, Any] = field(default_factory=dict)
    sources: dict[str, SourceHit] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """Return a JSON-serialisable dict of the hit."""
        return {
            "id": self.id,
            "score": self.score,
            "rank": self.rank,
            "text": self.text,
            "metadata": dict(self.metadata),
            "sources": {k: {"rank": v.rank, "score": v.score} for k, v in self.sources.items()},
        }
