"""Errors of the question generators (no imports: the CLI names them at startup)."""

from __future__ import annotations


class GeneratorError(RuntimeError):
    """A question generator could not be used; the message says why and what to change."""


class GeneratorUnavailable(GeneratorError):
    """The server refused connections, kept failing (5xx, 429) or did not answer in time."""


class GeneratorRejected(GeneratorError):
    """The server rejected the request: an unknown model, a missing or refused key (4xx)."""


class ReplyFormatError(GeneratorError):
    """The server answered, but not in the chat-completions format (one passage is skipped)."""
