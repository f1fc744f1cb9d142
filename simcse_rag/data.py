"""Training data for SimCSE: examples, file readers and no-duplicate batching.

A :class:`TrainExample` is ``(anchor, positive, negatives)``. Unsupervised SimCSE uses the
sentence itself as its positive (the two views differ only by dropout); supervised SimCSE uses
NLI triplets (premise, entailment, contradiction) or plain pairs.

Training data takes three typed shapes on its way to the trainer, each with one role, and the
conversions into the trainer's type live here:

* :class:`~simcse_rag.pairs.TrainingPair`: a query and one passage that answers it, with ids
  (from qrels, a pairs file or pseudo-queries): what adaptation holds out, evaluates and mines
  negatives for.
* :class:`~simcse_rag.mining.MinedExample`: a pair plus its mined negatives with ids, dense
  scores and ranks: mining's output, written to ``mined.jsonl``.
* :class:`TrainExample`: texts only: the one type the trainer consumes. :func:`example_from_mined`
  makes it from a mined example; :func:`as_examples` from plain sentences and tuples (the
  trainer's convenience input).

Files understood by :func:`load_examples`:

* ``.txt``: one sentence per line (blank lines skipped) -> unsupervised examples.
* ``.csv`` / ``.tsv`` with a header row:

  - ``sent0, sent1[, hard_neg...]`` (SimCSE's NLI format) or any two or more columns: the first
    column is the anchor, the second the positive, further non-empty columns hard negatives;
  - ``premise, hypothesis, label`` (or ``sentence1, sentence2, label``) with NLI labels
    ``entailment`` / ``neutral`` / ``contradiction``: each (premise, entailment) pair becomes an
    example, the premise's contradiction hypotheses become its hard negatives (shared round-robin
    when a premise has several entailments) and neutral pairs are dropped, as in SimCSE's
    supervised data construction.

Errors name the file and line number.
"""

from __future__ import annotations

import csv
import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import torch

from simcse_rag import _validate

if TYPE_CHECKING:  # annotation only: the trainer's data module needs no mining at run time
    from simcse_rag.mining import MinedExample

#: Header names of an NLI pair file's label column, and the label values used.
_LABEL_COLUMNS = ("label", "gold_label")
_ENTAILMENT = {"entailment", "0"}
_CONTRADICTION = {"contradiction", "2"}
_NEUTRAL = {"neutral", "1"}


@dataclass(frozen=True)
class TrainExample:
    """One contrastive example.

    Attributes:
        anchor: The anchor (query, premise, or the sentence itself when unsupervised).
        positive: Its positive; equal to ``anchor`` for unsupervised SimCSE.
        negatives: Hard negatives of this anchor (any number, possibly none).
    """

    anchor: str
    positive: str
    negatives: tuple[str, ...] = field(default_factory=tuple)

    def __post_init__(self) -> None:
        if not isinstance(self.anchor, str) or not isinstance(self.positive, str):
            raise TypeError("TrainExample anchor and positive must be str.")
        if not self.anchor.strip() or not self.positive.strip():
            raise ValueError("TrainExample anchor and positive must be non-empty text.")
        negatives = _validate.non_empty_texts(
            self.negatives, "TrainExample negatives", single="wrap one negative in a tuple"
        )
        object.__setattr__(self, "negatives", negatives)

    @property
    def texts(self) -> tuple[str, ...]:
        """All distinct texts of the example (used to avoid in-batch duplicates)."""
        return tuple(dict.fromkeys((self.anchor, self.positive, *self.negatives)))

    @property
    def is_unsupervised(self) -> bool:
        """True when the positive is the anchor itself and there are no hard negatives."""
        return self.anchor == self.positive and not self.negatives


def example_from_mined(
    example: MinedExample, negatives: Sequence[str] | None = None
) -> TrainExample:
    """A mined example as the trainer's input: its query, positive and negatives' texts.

    Args:
        example: The mined example.
        negatives: Texts to train on in place of the mined negatives' own (e.g. views of them
            shaped like the positive); default: the mined texts.
    """
    texts = [n.text for n in example.negatives] if negatives is None else negatives
    return TrainExample(example.query, example.positive, tuple(texts))


def as_examples(items: Sequence[TrainExample | Sequence[object] | str]) -> list[TrainExample]:
    """Normalise in-memory data to :class:`TrainExample` objects.

    Accepts ``TrainExample``; a bare string (unsupervised: the sentence is its own positive);
    ``(anchor, positive)``; ``(anchor, positive, negative)`` with ``negative`` a string or a
    sequence of strings; ``(anchor, positive, neg1, neg2, ...)``.

    Raises:
        TypeError / ValueError: An item of another shape (its index is named).
    """
    out: list[TrainExample] = []
    for i, item in enumerate(items):
        try:
            out.append(_as_example(item))
        except (TypeError, ValueError) as exc:
            raise type(exc)(f"examples[{i}]: {exc}") from None
    return out


def _as_example(item: TrainExample | Sequence[object] | str) -> TrainExample:
    if isinstance(item, TrainExample):
        return item
    if isinstance(item, str):
        return TrainExample(item, item)
    if not isinstance(item, Sequence) or len(item) < 2:
        raise TypeError(
            f"expected a TrainExample, a sentence, or (anchor, positive[, negatives]); got {item!r}"
        )
    anchor, positive, *rest = item
    negatives: list[object] = []
    for value in rest:
        if isinstance(value, str):
            negatives.append(value)
        elif isinstance(value, Sequence):
            negatives.extend(value)
        else:
            raise TypeError(f"hard negatives must be strings, got {type(value).__name__}.")
    return TrainExample(anchor, positive, tuple(negatives))  # type: ignore[arg-type]


# --------------------------------------------------------------------------- readers
def load_examples(path: str | os.PathLike[str]) -> list[TrainExample]:
    """Read training examples from a ``.txt``, ``.csv`` or ``.tsv`` file (see module docs).

    Raises:
        ValueError: Unknown extension, empty file, bad header or a malformed row (line named).
        FileNotFoundError: The file does not exist.
    """
    path = Path(path)
    if path.is_dir():
        raise ValueError(f"{path} is a directory; pass a .txt, .csv or .tsv file inside it.")
    if not path.is_file():
        raise FileNotFoundError(f"Training data file {str(path)!r} does not exist.")
    suffix = path.suffix.lower()
    if suffix == ".txt":
        examples = read_sentences(path)
    elif suffix in (".csv", ".tsv"):
        examples = read_pairs(path)
    else:
        raise ValueError(
            f"Unsupported training data {path.name!r}: use .txt (one sentence per line) or a "
            ".csv/.tsv with a header (sent0,sent1[,hard_neg] or premise,hypothesis,label)."
        )
    if not examples:
        raise ValueError(f"Training data file {path} has no examples (empty or only blank lines).")
    return examples


def read_sentences(path: str | os.PathLike[str]) -> list[TrainExample]:
    """Read unsupervised examples: one sentence per non-blank line, in file order."""
    return [TrainExample(line, line) for _, line in _iter_lines(Path(path))]


def _iter_lines(path: Path) -> Iterator[tuple[int, str]]:
    try:
        with open(path, encoding="utf-8") as fh:
            for lineno, line in enumerate(fh, start=1):
                text = line.strip()
                if text:
                    yield lineno, text
    except UnicodeDecodeError as exc:
        raise ValueError(f"{path} is not UTF-8 text (byte {exc.start}); re-encode it.") from exc


def read_pairs(path: str | os.PathLike[str]) -> list[TrainExample]:
    """Read supervised examples from a ``.csv`` / ``.tsv`` with a header (see module docs)."""
    path = Path(path)
    rows = list(_iter_rows(path))
    if not rows:
        return []
    header_line, header = rows[0]
    columns = [c.strip().lower() for c in header]
    if len(columns) < 2:
        raise ValueError(
            f"{path}:{header_line}: header {header!r} needs at least two columns "
            "(sent0,sent1[,hard_neg] or premise,hypothesis,label)."
        )
    label_col = next((columns.index(c) for c in _LABEL_COLUMNS if c in columns), None)
    body = rows[1:]
    for lineno, row in body:
        if len(row) != len(columns):
            raise ValueError(
                f"{path}:{lineno}: expected {len(columns)} fields ({', '.join(columns)!r}), "
                f"found {len(row)}; check the delimiter and quoting of that line."
            )
    if label_col is not None:
        return _nli_examples(path, body, label_col)
    return [_row_example(path, lineno, row) for lineno, row in body]


def _iter_rows(path: Path) -> Iterator[tuple[int, list[str]]]:
    tsv = path.suffix.lower() == ".tsv"
    try:
        with open(path, encoding="utf-8", newline="") as fh:
            # TSV text may hold bare quotes (NLI sentences do), so TSV is read without quoting.
            reader = (
                csv.reader(fh, delimiter="\t", quoting=csv.QUOTE_NONE) if tsv else csv.reader(fh)
            )
            start = 1
            for row in reader:
                if any(cell.strip() for cell in row):
                    yield start, row
                start = reader.line_num + 1
    except UnicodeDecodeError as exc:
        raise ValueError(f"{path} is not UTF-8 text (byte {exc.start}); re-encode it.") from exc
    except csv.Error as exc:
        raise ValueError(f"{path}:{start}: malformed row ({exc}).") from exc


def _row_example(path: Path, lineno: int, row: list[str]) -> TrainExample:
    anchor, positive = row[0].strip(), row[1].strip()
    if not anchor or not positive:
        which = "first (anchor)" if not anchor else "second (positive)"
        raise ValueError(f"{path}:{lineno}: the {which} column is empty.")
    negatives = tuple(cell.strip() for cell in row[2:] if cell.strip())
    return TrainExample(anchor, positive, negatives)


def _nli_examples(
    path: Path, body: list[tuple[int, list[str]]], label_col: int
) -> list[TrainExample]:
    text_cols = [i for i in range(len(body[0][1]) if body else 0) if i != label_col][:2]
    entailments: dict[str, list[str]] = {}
    contradictions: dict[str, list[str]] = {}
    for lineno, row in body:
        premise, hypothesis = (row[i].strip() for i in text_cols)
        label = row[label_col].strip().lower()
        if not premise or not hypothesis:
            raise ValueError(f"{path}:{lineno}: empty premise or hypothesis.")
        if label in _ENTAILMENT:
            entailments.setdefault(premise, []).append(hypothesis)
        elif label in _CONTRADICTION:
            contradictions.setdefault(premise, []).append(hypothesis)
        elif label not in _NEUTRAL:
            raise ValueError(
                f"{path}:{lineno}: unknown NLI label {row[label_col]!r}; expected entailment, "
                "neutral or contradiction."
            )
    examples = []
    for premise, hypotheses in entailments.items():
        negs = contradictions.get(premise, [])
        for k, hypothesis in enumerate(hypotheses):
            negatives = (negs[k % len(negs)],) if negs else ()
            examples.append(TrainExample(premise, hypothesis, negatives))
    return examples


# --------------------------------------------------------------------------- batching
class NoDuplicateBatchSampler:
    """Shuffled batches in which no text occurs twice.

    In-batch negatives assume every other text of the batch is unrelated; a repeated text would be
    a false negative (its own positive counted as a negative). The sampler walks a seeded
    permutation and defers any example sharing a text with the current batch to a later batch,
    like sentence-transformers' ``NoDuplicatesBatchSampler``. Deferred examples go into later
    batches, so the last batches of an epoch may be smaller; a final batch of one example (it
    would have no in-batch negatives) is left out of that epoch. (The two views of an
    unsupervised example are the same text on purpose: they are one example.)

    Batches depend only on ``(seed, epoch)``, so a resumed run sees the same batches.

    Args:
        examples: The examples.
        batch_size: Examples per batch (>= 2; in-batch negatives need company).
        seed: Shuffling seed.
        shuffle: Shuffle (``False`` keeps file order; still no duplicates).
    """

    def __init__(
        self,
        examples: Sequence[TrainExample],
        batch_size: int,
        *,
        seed: int = 0,
        shuffle: bool = True,
    ) -> None:
        batch_size = _validate.int_at_least(batch_size, "batch_size", 2)
        if batch_size > len(examples):
            raise ValueError(
                f"batch_size {batch_size} is larger than the {len(examples)} training examples; "
                f"use --batch-size {max(2, len(examples))} or less, or add data."
            )
        self._texts = [ex.texts for ex in examples]
        self.batch_size = batch_size
        self.seed = seed
        self.shuffle = shuffle

    def batches(self, epoch: int) -> list[list[int]]:
        """Return the batches (lists of example indices) of one epoch."""
        n = len(self._texts)
        if self.shuffle:
            generator = torch.Generator().manual_seed(self.seed + epoch)
            order = torch.randperm(n, generator=generator).tolist()
        else:
            order = list(range(n))
        batches: list[list[int]] = []
        pending = order
        while pending:
            batch: list[int] = []
            seen: set[str] = set()
            deferred: list[int] = []
            for pos, idx in enumerate(pending):
                texts = self._texts[idx]
                if seen.isdisjoint(texts):
                    batch.append(idx)
                    seen.update(texts)
                    if len(batch) == self.batch_size:
                        deferred.extend(pending[pos + 1 :])
                        break
                else:
                    deferred.append(idx)
            if len(batch) > 1:
                batches.append(batch)
            pending = deferred
        return batches
