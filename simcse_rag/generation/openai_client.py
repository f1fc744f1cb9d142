"""A client for OpenAI-compatible chat-completions servers (Ollama, vLLM, llama.cpp, OpenAI).

It POSTs ``{base_url}/chat/completions`` with httpx (an extra, ``simcse-rag[generator]``):
its async client keeps many requests in flight on one thread with a connection limit, and
separates connect, read and pool timeouts, which urllib in threads would not.

The API key is read from the ``OPENAI_API_KEY`` environment variable when the client is made
and only ever put in the ``Authorization`` header: it is not a parameter (so never in argv),
and never in ``repr``, logs, exception messages (server messages that echo it are masked) or
anything written to disk. A URL's ``user:password@`` part is dropped from every message too.

Retries (:class:`RetryPolicy`) cover what passes: HTTP 408, 429 and 5xx, timeouts, connections
reset or closed mid-request; the wait doubles with full jitter and a ``Retry-After`` header is
honoured up to a bound. A 4xx such as an unknown model or a refused key is not retried: it
raises :class:`~simcse_rag.generation.protocol.GeneratorRejected` with the server's message.
"""

from __future__ import annotations

import asyncio
import email.utils
import json
import logging
import os
import random
import time
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from simcse_rag.generation.defaults import DEFAULT_TIMEOUT_S
from simcse_rag.generation.protocol import (
    GeneratorRejected,
    GeneratorUnavailable,
    ReplyFormatError,
)

logger = logging.getLogger(__name__)

#: The environment variable the key is read from.
API_KEY_ENV = "OPENAI_API_KEY"
#: HTTP statuses retried (besides 5xx).
RETRY_STATUSES = frozenset({408, 429})
#: Characters of a server message quoted in an error.
_QUOTED = 200


@dataclass(frozen=True)
class RetryPolicy:
    """How often and how long :class:`OpenAIChatClient` retries a request that may pass.

    Attributes:
        max_retries: Retries after the first try.
        backoff_s: Upper bound of the first wait; it doubles each retry (full jitter).
        max_backoff_s: Most one backoff wait lasts.
        max_retry_after_s: Most a server's ``Retry-After`` is honoured.
    """

    max_retries: int = 4
    backoff_s: float = 1.0
    max_backoff_s: float = 30.0
    max_retry_after_s: float = 60.0

    def __post_init__(self) -> None:
        if isinstance(self.max_retries, bool) or not isinstance(self.max_retries, int):
            raise TypeError(f"max_retries must be an int, got {self.max_retries!r}.")
        if self.max_retries < 0:
            raise ValueError(f"max_retries must be >= 0, got {self.max_retries}.")
        for name in ("backoff_s", "max_backoff_s", "max_retry_after_s"):
            if not getattr(self, name) >= 0:
                raise ValueError(f"{name} must be >= 0 seconds, got {getattr(self, name)!r}.")

    def wait(self, retry: int, retry_after: float | None, rng: random.Random) -> float:
        """Seconds to wait before retry number ``retry`` (0-based)."""
        if retry_after is not None:
            return min(retry_after, self.max_retry_after_s)
        return rng.uniform(0.0, min(self.max_backoff_s, self.backoff_s * 2**retry))


class OpenAIChatClient:
    """Completes prompts through an OpenAI-compatible ``/chat/completions`` endpoint.

    Implements :class:`~simcse_rag.generation.protocol.QuestionGenerator`.
    """

    def __init__(
        self,
        base_url: str,
        model: str,
        *,
        timeout: float = DEFAULT_TIMEOUT_S,
        max_connections: int = 4,
        retry: RetryPolicy | None = None,
        temperature: float | None = None,
    ) -> None:
        """Make a client (no request is sent; :meth:`check` sends one).

        Args:
            base_url: The API root, e.g. ``http://localhost:11434/v1`` (Ollama).
            model: The model name the server knows, e.g. ``qwen2.5:7b``.
            timeout: Seconds one request may take (connect, and the wait for the reply,
                including any time queued on the server).
            max_connections: Most connections open at once.
            retry: Retry settings (default :class:`RetryPolicy`).
            temperature: Sampling temperature sent with each request (the server's default
                when ``None``).

        Raises:
            ValueError: A URL that is not http(s), an empty model name or a bad number.
        """
        parts = urlsplit(base_url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(
                f"generator URL {public_url(base_url)!r} is not an http(s) URL; give the API "
                "root, e.g. http://localhost:11434/v1."
            )
        if not isinstance(model, str) or not model.strip():
            raise ValueError(f"generator model name must be a non-empty string, got {model!r}.")
        if not timeout > 0:
            raise ValueError(f"generator timeout must be > 0 seconds, got {timeout!r}.")
        if isinstance(max_connections, bool) or not isinstance(max_connections, int):
            raise TypeError(f"max_connections must be an int, got {max_connections!r}.")
        if max_connections < 1:
            raise ValueError(f"max_connections must be >= 1, got {max_connections}.")
        self.base_url = base_url.rstrip("/")
        self.model = model
        self.model_name = model
        self.timeout = float(timeout)
        self.max_connections = max_connections
        self.retry = retry or RetryPolicy()
        self.temperature = temperature
        self._key = os.environ.get(API_KEY_ENV) or None
        self._rng = random.Random()
        self._http: Any = None
        self._loop: asyncio.AbstractEventLoop | None = None

    def __repr__(self) -> str:
        return f"OpenAIChatClient(base_url={self.url!r}, model={self.model!r})"

    @property
    def url(self) -> str:
        """The endpoint, without any ``user:password@`` part (safe to show)."""
        return public_url(f"{self.base_url}/chat/completions")

    async def complete(self, prompt: str) -> str:
        """The model's reply to ``prompt`` (``""`` when the server sends no choice).

        Raises:
            GeneratorUnavailable: Connection refused, or retries exhausted.
            GeneratorRejected: A 4xx answer (unknown model, refused or missing key).
            ReplyFormatError: A reply that is not a chat completion.
        """
        body: dict[str, Any] = {
            "model": self.model,
            "messages": [{"role": "user", "content": prompt}],
        }
        if self.temperature is not None:
            body["temperature"] = self.temperature
        return reply_text(await self._post(body), self.url)

    async def check(self) -> None:
        """Send one short request, so a wrong URL, model or key fails before any slow work.

        Raises:
            GeneratorUnavailable, GeneratorRejected, ReplyFormatError: As :meth:`complete`.
        """
        body = {
            "model": self.model,
            "messages": [{"role": "user", "content": "Reply with the word OK."}],
            "max_tokens": 5,
        }
        reply_text(await self._post(body), self.url)

    async def aclose(self) -> None:
        """Close the connections (a later request opens new ones)."""
        http, self._http, self._loop = self._http, None, None
        if http is not None:
            await http.aclose()

    # ------------------------------------------------------------------ requests
    def _client(self) -> Any:
        # One httpx client per event loop: its connections belong to the loop that made them,
        # and generate_pairs runs each call in a loop of its own.
        loop = asyncio.get_running_loop()
        if self._http is None or self._loop is not loop:
            try:
                import httpx
            except ImportError as exc:
                raise ImportError(
                    "The OpenAI-compatible generator needs httpx: "
                    'pip install "simcse-rag[generator]".'
                ) from exc
            headers = {"Authorization": f"Bearer {self._key}"} if self._key else {}
            self._http = httpx.AsyncClient(
                headers=headers,
                timeout=httpx.Timeout(self.timeout),
                limits=httpx.Limits(max_connections=self.max_connections),
                trust_env=False,  # no proxy from the environment between us and a local server
            )
            self._loop = loop
        return self._http

    async def _post(self, body: dict[str, Any]) -> Any:
        import httpx

        http = self._client()
        endpoint = f"{self.base_url}/chat/completions"
        tries = self.retry.max_retries + 1
        for attempt in range(tries):
            retry_after = None
            try:
                response = await http.post(endpoint, json=body)
            except httpx.ConnectError as exc:
                if attempt == 0:
                    raise GeneratorUnavailable(self._connect_message(exc)) from None
                problem = f"connection failed ({type(exc).__name__})"
            except httpx.TimeoutException:
                problem = f"no reply within {self.timeout:g} s"
            except (httpx.NetworkError, httpx.RemoteProtocolError) as exc:
                problem = f"connection reset ({type(exc).__name__})"
            else:
                status = response.status_code
                if status < 400:
                    return self._json(response)
                message = self._server_message(response)
                if status not in RETRY_STATUSES and status < 500:
                    raise GeneratorRejected(self._rejected_message(status, message)) from None
                problem = f"HTTP {status}" + (f": {message}" if message else "")
                retry_after = retry_after_seconds(response.headers.get("retry-after"))
            if attempt + 1 < tries:
                delay = self.retry.wait(attempt, retry_after, self._rng)
                logger.warning(
                    "%s: %s; retry %d/%d in %.1f s",
                    self.url,
                    problem,
                    attempt + 1,
                    tries - 1,
                    delay,
                )
                await asyncio.sleep(delay)
        hint = (
            "raise --generator-timeout or lower --generator-concurrency"
            if problem.startswith("no reply")
            else "check the server's log, or retry later (cached questions are kept)"
        )
        raise GeneratorUnavailable(f"{self.url}: {problem} after {tries} tries; {hint}.")

    def _json(self, response: Any) -> Any:
        try:
            return response.json()
        except (json.JSONDecodeError, UnicodeDecodeError):
            snippet = self._mask(" ".join(response.text[:80].split()))
            raise ReplyFormatError(
                f"{self.url} answered with something that is not JSON ({snippet!r}); is "
                "--generator-url the API root of an OpenAI-compatible server?"
            ) from None

    def _connect_message(self, exc: Exception) -> str:
        reason = type(exc).__name__
        cause: BaseException | None = exc
        while cause is not None:  # httpx wraps the OS error ("All connection attempts failed")
            if isinstance(cause, ConnectionRefusedError) or "refused" in str(cause).lower():
                reason = "connection refused"
                break
            cause = cause.__cause__ or cause.__context__
        return (
            f"cannot connect to the generator at {self.url} ({reason}); is the server running "
            "(e.g. `ollama serve`) and is --generator-url right?"
        )

    def _rejected_message(self, status: int, message: str) -> str:
        said = f"HTTP {status}" + (f": {message}" if message else "")
        if status in (401, 403):
            fix = (
                "set OPENAI_API_KEY to a key this server accepts"
                if self._key
                else "it needs an API key: set the OPENAI_API_KEY environment variable"
            )
            return f"{self.url} refused the request ({said}); {fix}."
        fix = "check --generator-model (the server's /models lists its names)"
        if status == 404:
            fix += " and that --generator-url is the API root, e.g. http://localhost:11434/v1"
        return f"{self.url} rejected the request for model {self.model!r} ({said}); {fix}."

    def _server_message(self, response: Any) -> str:
        """The server's error message, masked, on one line, cut to a readable length."""
        try:
            data = response.json()
        except (json.JSONDecodeError, UnicodeDecodeError):
            data = None
        text = ""
        if isinstance(data, dict):
            error = data.get("error", data.get("detail", data.get("message")))
            if isinstance(error, dict):
                error = error.get("message")
            text = error if isinstance(error, str) else ""
        if not text and data is None:
            text = response.text
        return self._mask(" ".join(text.split()))[:_QUOTED]

    def _mask(self, text: str) -> str:
        return text.replace(self._key, "***") if self._key else text


def reply_text(data: Any, url: str) -> str:
    """The text of a chat-completions reply's first choice (``""`` when there is none).

    Raises:
        ReplyFormatError: ``data`` is not a chat completion.
    """
    if not isinstance(data, dict) or not isinstance(data.get("choices"), list):
        raise ReplyFormatError(
            f"{url} answered JSON without a 'choices' list; is --generator-url the API root of "
            "an OpenAI-compatible server?"
        )
    if not data["choices"]:
        return ""
    choice = data["choices"][0]
    message = choice.get("message") if isinstance(choice, dict) else None
    content = message.get("content") if isinstance(message, dict) else None
    if isinstance(content, list):  # content parts
        content = "".join(p.get("text", "") for p in content if isinstance(p, dict))
    if content is not None and not isinstance(content, str):
        raise ReplyFormatError(f"{url} answered a choice whose content is not text.")
    return content or ""


def retry_after_seconds(value: str | None) -> float | None:
    """A ``Retry-After`` header (seconds or an HTTP date) in seconds from now, or ``None``."""
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())


def public_url(url: str) -> str:
    """``url`` without a ``user:password@`` part."""
    parts = urlsplit(url)
    if parts.username is None and parts.password is None:
        return url
    host = parts.hostname or ""
    netloc = f"{host}:{parts.port}" if parts.port else host
    return urlunsplit(parts._replace(netloc=netloc))
