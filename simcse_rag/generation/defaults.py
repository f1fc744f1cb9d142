"""Defaults of question generation, in an import-free module (the CLI shows them in its help)."""

from __future__ import annotations

#: Questions asked per passage.
DEFAULT_PER_PASSAGE = 3
#: Requests in flight at once.
DEFAULT_CONCURRENCY = 4
#: Seconds one request may take. Generous because a local server (Ollama) queues the requests
#: it cannot run in parallel, and the wait in its queue counts against the timeout.
DEFAULT_TIMEOUT_S = 300.0
