"""A local server speaking the OpenAI chat-completions format, for the generator tests.

It listens on 127.0.0.1 only, on a free port, in a daemon thread. Each request takes the next
scripted action (``script``; plain success when the script is empty). It logs every prompt it
receives (``received``) and every prompt it answered with a completion (``answered``), counts
requests in flight, and keeps every ``Authorization`` header it saw.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import re
import signal
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

#: Scripted actions: ("ok",), ("status", code, body, headers), ("raw", bytes),
#: ("empty_choices",), ("hang",) (no answer until the server stops), ("sigint",) (Ctrl-C sent to
#: the main thread, then no answer).
Action = tuple


def questions_for(prompt: str, n: int = 3) -> str:
    """A reply of ``n`` questions that differ per passage and copy nothing from it."""
    match = re.search(r"(?:Passage:|段落：)\n(.*)\Z", prompt, re.DOTALL)
    tag = hashlib.sha1((match.group(1) if match else prompt).encode()).hexdigest()[:8]
    return "\n".join(
        f"{k}. Which finding number {k} does report {tag} describe?" for k in range(1, n + 1)
    )


@dataclass
class FakeOpenAI:
    """State of the fake server (read it from the test)."""

    url: str = ""
    script: list[Action] = field(default_factory=list)
    delay_s: float = 0.0
    reply: Callable[[str], str] = questions_for
    received: list[str] = field(default_factory=list)
    answered: list[str] = field(default_factory=list)
    authorizations: list[str | None] = field(default_factory=list)
    in_flight: int = 0
    max_in_flight: int = 0
    stop: threading.Event = field(default_factory=threading.Event)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def next_action(self) -> Action:
        with self.lock:
            return self.script.pop(0) if self.script else ("ok",)


def _handler(state: FakeOpenAI) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args: Any) -> None:  # quiet
            pass

        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length", 0))
            body = json.loads(self.rfile.read(length))
            prompt = body["messages"][-1]["content"]
            with state.lock:
                state.received.append(prompt)
                state.authorizations.append(self.headers.get("Authorization"))
                state.in_flight += 1
                state.max_in_flight = max(state.max_in_flight, state.in_flight)
            try:
                self._act(state.next_action(), prompt, body)
            finally:
                with state.lock:
                    state.in_flight -= 1

        def _act(self, action: Action, prompt: str, body: dict) -> None:
            kind = action[0]
            if kind in ("hang", "sigint"):
                if kind == "sigint":
                    signal.pthread_kill(threading.main_thread().ident, signal.SIGINT)
                state.stop.wait(30)
                return
            if state.delay_s:
                state.stop.wait(state.delay_s)
            if kind == "status":
                _, code, payload, headers = action
                self._send(code, json.dumps(payload).encode(), headers)
            elif kind == "raw":
                self._send(200, action[1], {})
            elif kind == "empty_choices":
                self._send(200, json.dumps({"choices": []}).encode(), {})
            else:
                content = state.reply(prompt) if "max_tokens" not in body else "OK"
                completion = {
                    "id": "chatcmpl-test",
                    "object": "chat.completion",
                    "model": body["model"],
                    "choices": [
                        {
                            "index": 0,
                            "message": {"role": "assistant", "content": content},
                            "finish_reason": "stop",
                        }
                    ],
                }
                self._send(200, json.dumps(completion).encode(), {})
                with state.lock:
                    state.answered.append(prompt)

        def _send(self, code: int, payload: bytes, headers: dict[str, str]) -> None:
            self.send_response(code)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(payload)))
            for name, value in headers.items():
                self.send_header(name, value)
            self.end_headers()
            with contextlib.suppress(OSError):  # the client gave up (timeout test)
                self.wfile.write(payload)

    return Handler


class FakeOpenAIServer:
    """Context manager: start the server, yield its :class:`FakeOpenAI` state, stop it."""

    def __enter__(self) -> FakeOpenAI:
        self.state = FakeOpenAI()
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(self.state))
        self.server.daemon_threads = True
        host, port = self.server.server_address[:2]
        self.state.url = f"http://{host}:{port}/v1"
        self.thread = threading.Thread(
            target=self.server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True
        )
        self.thread.start()
        return self.state

    def __exit__(self, *exc: object) -> None:
        self.state.stop.set()
        self.server.shutdown()
        self.server.server_close()
