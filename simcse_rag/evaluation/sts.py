"""Semantic textual similarity (STS) evaluation, plus alignment and uniformity.

* Spearman and Pearson correlation between the gold scores and the cosine similarity of the two
  sentences' embeddings, computed exactly as sentence-transformers' ``EmbeddingSimilarityEvaluator``
  (cosine of the un-normalised embeddings, ``scipy.stats.spearmanr`` / ``pearsonr`` on the raw
  gold scores). Correlations are on the **0-1 scale** (``0.8203``), like sentence-transformers and
  SciPy; papers (and SimCSE) print them x100.
* Alignment and uniformity (Wang & Isola, 2020, "Understanding Contrastive Representation
  Learning through Alignment and Uniformity on the Hypersphere", https://arxiv.org/abs/2005.10242),
  on L2-normalised embeddings, as SimCSE section 5 uses them: alignment over the positive pairs
  (gold score in the top 20 % of the score range, i.e. >= 4 on STS-B's 0-5), uniformity over all
  distinct sentences. Lower is better for both.

File format: UTF-8 TSV with a header ``sentence1<TAB>sentence2<TAB>score`` (or ``label``).
"""

from __future__ import annotations

import csv
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from scipy.stats import pearsonr, spearmanr

_SCORE_COLUMNS = ("score", "label", "similarity")
_MAX_UNIFORMITY_SENTENCES = 5000


@dataclass(frozen=True)
class STSPair:
    """One scored sentence pair."""

    sentence1: str
    sentence2: str
    score: float


def read_sts(path: str | os.PathLike[str]) -> list[STSPair]:
    """Read an STS TSV file with header ``sentence1 sentence2 score`` (or ``label``).

    Raises:
        ValueError: Missing columns, a malformed row or a non-numeric score (line named), an
            empty file, or a file that is not UTF-8.
        FileNotFoundError: The file does not exist.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"STS file {str(path)!r} does not exist.")
    pairs: list[STSPair] = []
    try:
        with open(path, encoding="utf-8", newline="") as fh:
            reader = csv.reader(fh, delimiter="\t", quoting=csv.QUOTE_NONE)
            header = [c.strip().lower() for c in next(reader, [])]
            columns = _columns(path, header)
            lineno = 1
            for row in reader:
                lineno = reader.line_num
                if not any(cell.strip() for cell in row):
                    continue
                pairs.append(_pair(path, lineno, row, columns, len(header)))
    except UnicodeDecodeError as exc:
        raise ValueError(f"{path} is not UTF-8 text (byte {exc.start}); re-encode it.") from exc
    if not pairs:
        raise ValueError(f"STS file {path} has no rows after its header.")
    return pairs


def _columns(path: Path, header: list[str]) -> tuple[int, int, int]:
    score = next((header.index(c) for c in _SCORE_COLUMNS if c in header), None)
    if "sentence1" not in header or "sentence2" not in header or score is None:
        raise ValueError(
            f"{path}:1: header {header!r} must name sentence1, sentence2 and score (or label), "
            "tab-separated."
        )
    return header.index("sentence1"), header.index("sentence2"), score


def _pair(
    path: Path, lineno: int, row: list[str], columns: tuple[int, int, int], width: int
) -> STSPair:
    if len(row) != width:
        raise ValueError(
            f"{path}:{lineno}: expected {width} tab-separated fields, found {len(row)}."
        )
    s1, s2, sc = (row[i].strip() for i in columns)
    try:
        score = float(sc)
    except ValueError:
        raise ValueError(f"{path}:{lineno}: score {sc!r} is not a number.") from None
    if not np.isfinite(score):
        raise ValueError(f"{path}:{lineno}: score {sc!r} is not finite.")
    return STSPair(s1, s2, score)


def _as_pairs(data: str | os.PathLike[str] | Sequence[Any]) -> list[STSPair]:
    if isinstance(data, (str, os.PathLike)):
        return read_sts(data)
    pairs = []
    for i, item in enumerate(data):
        if isinstance(item, STSPair):
            pairs.append(item)
            continue
        try:
            s1, s2, score = item
            pairs.append(STSPair(str(s1), str(s2), float(score)))
        except (TypeError, ValueError):
            raise TypeError(
                f"rows[{i}] must be (sentence1, sentence2, score); got {item!r}."
            ) from None
    if not pairs:
        raise ValueError("No STS pairs to evaluate.")
    return pairs


def alignment(
    x: torch.Tensor | np.ndarray, y: torch.Tensor | np.ndarray, alpha: float = 2.0
) -> float:
    """Alignment loss: mean ``||x_i - y_i||^alpha`` over positive pairs of unit vectors."""
    x, y = _unit(x), _unit(y)
    return float((x - y).norm(dim=1).pow(alpha).mean())


def uniformity(x: torch.Tensor | np.ndarray, t: float = 2.0) -> float:
    """Uniformity loss: ``log mean exp(-t ||x_i - x_j||^2)`` over all pairs ``i < j``."""
    x = _unit(x)
    return float(torch.pdist(x, p=2).pow(2).mul(-t).exp().mean().log())


def _unit(x: torch.Tensor | np.ndarray) -> torch.Tensor:
    tensor = torch.as_tensor(np.asarray(x) if not isinstance(x, torch.Tensor) else x)
    return torch.nn.functional.normalize(tensor.double(), dim=-1)


def evaluate_sts(
    encoder: Any,
    data: str | os.PathLike[str] | Sequence[Any],
    *,
    batch_size: int = 64,
    show_progress: bool = False,
    positive_threshold: float | None = None,
) -> dict[str, float]:
    """Score an encoder on STS pairs.

    Args:
        encoder: A :class:`~simcse_rag.encoder.SimCSEEncoder` (anything with ``encode``).
        data: A TSV path (see :func:`read_sts`) or rows ``(sentence1, sentence2, score)``.
        batch_size: Encoding batch size.
        show_progress: Show a progress bar while encoding.
        positive_threshold: Gold score from which a pair counts as positive for alignment;
            default: top 20 % of the observed score range (4.0 on 0-5, 1 for 0/1 labels).

    Returns:
        ``{"spearman", "pearson", "pairs", "alignment", "uniformity", "positive_pairs"}``;
        correlations on the 0-1 scale.
    """
    pairs = _as_pairs(data)
    sentences = list(dict.fromkeys([p.sentence1 for p in pairs] + [p.sentence2 for p in pairs]))
    vectors = encoder.encode(
        sentences, batch_size=batch_size, normalize=False, show_progress=show_progress
    )
    row = {s: i for i, s in enumerate(sentences)}
    e1 = vectors[[row[p.sentence1] for p in pairs]].astype(np.float64)
    e2 = vectors[[row[p.sentence2] for p in pairs]].astype(np.float64)
    gold = np.array([p.score for p in pairs], dtype=np.float64)
    norms = np.linalg.norm(e1, axis=1) * np.linalg.norm(e2, axis=1)
    cosine = (e1 * e2).sum(axis=1) / np.maximum(norms, 1e-12)
    if len(pairs) < 2 or np.ptp(gold) == 0 or np.ptp(cosine) == 0:
        spearman = pearson = float("nan")
    else:
        spearman = float(spearmanr(gold, cosine).statistic)
        pearson = float(pearsonr(gold, cosine).statistic)
    if positive_threshold is None:
        positive_threshold = float(gold.min() + 0.8 * (gold.max() - gold.min()))
    positive = gold >= positive_threshold
    sample = vectors
    if len(sample) > _MAX_UNIFORMITY_SENTENCES:  # n^2 pairs: subsample, fixed seed
        idx = np.random.default_rng(0).choice(len(sample), _MAX_UNIFORMITY_SENTENCES, replace=False)
        sample = sample[np.sort(idx)]
    return {
        "spearman": spearman,
        "pearson": pearson,
        "pairs": len(pairs),
        "alignment": alignment(e1[positive], e2[positive]) if positive.any() else float("nan"),
        "uniformity": uniformity(sample) if len(sample) > 1 else float("nan"),
        "positive_pairs": int(positive.sum()),
    }
