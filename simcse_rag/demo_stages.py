"""The demo's stage reporting: start and end events, and each stage's time."""

from __future__ import annotations

import dataclasses
import logging
import time
from collections.abc import Callable

from simcse_rag.demo_schema import DemoEvent, DemoResult

__all__ = ["DemoStages"]

logger = logging.getLogger(__name__)


class DemoStages:
    """Sends :func:`~simcse_rag.demo.run_demo`'s start and end events and times each stage."""

    def __init__(
        self,
        on_event: Callable[[DemoEvent], None] | None,
        on_stage: Callable[[str], None] | None,
    ) -> None:
        self._on_event = on_event
        self._on_stage = on_stage
        self._stage = ""
        self._started = time.perf_counter()
        self._timings: dict[str, float] = {}

    def start(self, stage: str, message: str) -> None:
        """``stage`` starts, or its next step when it is already running."""
        if stage != self._stage:
            self._stage, self._started = stage, time.perf_counter()
        if self._on_stage is not None:
            self._on_stage(message)
        if self._on_event is not None:
            self._on_event(DemoEvent(stage, message))
        if self._on_stage is None and self._on_event is None:
            logger.info("%s", message)

    def done(self, message: str, result: DemoResult) -> DemoResult:
        """The running stage ended with ``result``: record its time and send the end event."""
        seconds = time.perf_counter() - self._started
        self._timings[f"{self._stage}_s"] = round(seconds, 1)
        result = dataclasses.replace(result, timings=dict(self._timings))
        if self._on_event is not None:
            self._on_event(DemoEvent(self._stage, message, True, seconds, result))
        self._stage = ""
        return result
