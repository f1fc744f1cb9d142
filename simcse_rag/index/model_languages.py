"""Which writing systems a model reads, from the languages its model card declares.

Counting ``[UNK]`` tokens overstates what a model reads when its vocabulary holds characters of
a language it was never trained on. BERT's English WordPiece vocabulary (which all-MiniLM-L6-v2
uses) keeps a few thousand CJK characters, so a Chinese question tokenizes to a quarter known
pieces, yet the model saw no Chinese in training and its vector of that question is close to
noise. A Hugging Face model card states the languages a model was trained on (``language:`` in
the front matter of its ``README.md``; all-MiniLM-L6-v2 declares ``en``). A vocabulary token
written in a script that none of those languages uses counts as unread, like ``[UNK]``.

Only the East Asian scripts are told apart (Han, kana, Hangul): they are the ones an English
vocabulary partly covers and the ones our users bring. Text in any other script keeps the
``[UNK]`` count, and so does a model whose card is not on disk (a hub id outside the local
Hugging Face cache, a model saved by ``train`` or ``adapt``) or declares no language, or one
whose card says ``multilingual``.
"""

from __future__ import annotations

import logging
import re
import unicodedata
from collections.abc import Iterable, Mapping
from pathlib import Path

logger = logging.getLogger(__name__)

#: Script -> the languages (ISO 639-1 and 639-3 codes) written in it.
SCRIPT_LANGUAGES: Mapping[str, frozenset[str]] = {
    "Han": frozenset(
        {"zh", "zho", "chi", "cmn", "yue", "wuu", "hak", "nan", "gan", "lzh", "ja", "jpn"}
    ),
    "Kana": frozenset({"ja", "jpn"}),
    "Hangul": frozenset({"ko", "kor"}),
}
# Unicode character-name prefixes of each script (names are stable across Unicode versions).
_NAME_PREFIXES: tuple[tuple[str, str], ...] = (
    ("CJK UNIFIED IDEOGRAPH", "Han"),
    ("CJK COMPATIBILITY IDEOGRAPH", "Han"),
    ("HIRAGANA", "Kana"),
    ("KATAKANA", "Kana"),
    ("HALFWIDTH KATAKANA", "Kana"),
    ("HANGUL", "Hangul"),
)
#: Card values that mean "trained on many languages": nothing is marked unread.
_MULTILINGUAL = frozenset({"multilingual", "mul"})


def char_script(char: str) -> str | None:
    """The script of one character among :data:`SCRIPT_LANGUAGES` (``None``: another script)."""
    if char.isascii():
        return None
    name = unicodedata.name(char, "")
    for prefix, script in _NAME_PREFIXES:
        if name.startswith(prefix):
            return script
    return None


def token_scripts(token: str) -> set[str]:
    """The scripts of :data:`SCRIPT_LANGUAGES` a vocabulary token is written in."""
    if token.isascii():
        return set()
    return {s for s in map(char_script, token) if s is not None}


def unread_scripts(languages: Iterable[str] | None) -> frozenset[str]:
    """The scripts a model declaring ``languages`` was not trained to read.

    Args:
        languages: The card's languages (``None``: unknown, so nothing is ruled out).

    Returns:
        Names from :data:`SCRIPT_LANGUAGES` that no declared language is written in.
    """
    if languages is None:
        return frozenset()
    codes = {str(code).strip().lower().replace("_", "-").split("-")[0] for code in languages}
    if not codes or codes & _MULTILINGUAL:
        return frozenset()
    return frozenset(s for s, langs in SCRIPT_LANGUAGES.items() if not codes & langs)


def declared_languages(name_or_path: str | None) -> frozenset[str] | None:
    """The languages a model's card declares, read from disk only (never the network).

    Args:
        name_or_path: A model folder, a hub id (its card is looked up in the local Hugging Face
            cache), or ``None`` / ``""`` for the bundled default model.

    Returns:
        The ``language`` values of the card's metadata (plus ``multilingual`` when the card is
        tagged so), or ``None`` when there is no card on disk or it declares no language.
    """
    card = _card_path(name_or_path)
    if card is None:
        return None
    meta = _front_matter(card)
    found = meta.get("language")
    values = [found] if isinstance(found, str) else list(found or [])
    tags = meta.get("tags") or []
    if isinstance(tags, list) and "multilingual" in tags:
        values.append("multilingual")
    languages = frozenset(str(v) for v in values if isinstance(v, str) and v.strip())
    return languages or None


def _front_matter(card: Path) -> dict:
    """The YAML metadata block that opens a model card (``{}`` if none or unreadable).

    huggingface_hub's ``metadata_load`` parses the same block, but importing it takes longer
    than a search; this runs on the first query of a saved index, which is kept light.
    """
    try:
        text = card.read_text(encoding="utf-8")
        match = re.match(r"^---\s*\n(.*?)\n---\s*(\n|$)", text, re.DOTALL)
        if match is None:
            return {}
        import yaml

        meta = yaml.safe_load(match.group(1))
    except Exception as exc:  # a card is documentation: a malformed one must not stop a search
        logger.debug("model card %s not read: %s", card, exc)
        return {}
    return meta if isinstance(meta, dict) else {}


def _card_path(name_or_path: str | None) -> Path | None:
    from simcse_rag.model_source import resolve_model_path

    try:
        where = resolve_model_path(name_or_path or None)
    except (ValueError, ImportError):
        return None
    folder = Path(where)
    if folder.is_dir():
        card = folder / "README.md"
        return card if card.is_file() else None
    try:
        from huggingface_hub import try_to_load_from_cache

        cached = try_to_load_from_cache(where, "README.md")
    except Exception:  # a malformed hub id: no card
        return None
    return Path(cached) if isinstance(cached, str) else None
