"""Progress of a nightly run on stderr: stages, records read per stream, rate.

The launcher opens a :class:`Progress`; steps of the pipeline call
:func:`note_records` / :func:`note_stage`.  With the in-process local runner
those calls land in the launcher's process and update the display; on
Dataflow or in the multi-process runner they are no-ops (Dataflow's own job
page shows progress there).  On a terminal a rich status line refreshes in
place; otherwise one line per stage is written, at most every few seconds,
so a scheduler's log stays short.
"""
from __future__ import annotations

import sys
import threading
import time

from rich.console import Console

_active: Progress | None = None
_lock = threading.Lock()


def note_records(stream: str, n: int) -> None:
    if _active is not None:
        _active.records(stream, n)


def note_stage(name: str) -> None:
    if _active is not None:
        _active.stage(name)


class Progress:
    """Context manager; silent when ``enabled`` is false (``--quiet``)."""

    QUIET_SECONDS = 3.0  # runs shorter than this print nothing

    def __init__(self, enabled: bool = True, stream=None):
        self.enabled = enabled
        self.console = Console(file=stream or sys.stderr, highlight=False)
        self.counts: dict[str, int] = {}
        self.current = "starting"
        self.started = self.last_line = time.monotonic()
        self._status = None

    def __enter__(self) -> Progress:
        global _active
        if self.enabled:
            with _lock:
                _active = self
            if self.console.is_terminal:
                self._status = self.console.status(self._text())
                self._status.start()
        return self

    def __exit__(self, *exc) -> None:
        global _active
        with _lock:
            if _active is self:
                _active = None
        if self._status is not None:
            self._status.stop()

    def _text(self) -> str:
        elapsed = time.monotonic() - self.started
        total = sum(self.counts.values())
        rate = f", {total / elapsed:,.0f} rec/s" if elapsed > 0 and total else ""
        per = " ".join(f"{s}={n:,}" for s, n in self.counts.items())
        return f"[{elapsed:6.1f}s] {self.current}: {total:,} records read{rate} {per}".rstrip()

    def _show(self, force: bool = False) -> None:
        now = time.monotonic()
        if self._status is not None:
            self._status.update(self._text())
        elif now - self.started >= self.QUIET_SECONDS and (force or now - self.last_line >= 5):
            self.last_line = now
            self.console.print(self._text(), soft_wrap=True)

    def records(self, stream: str, n: int) -> None:
        with _lock:
            self.counts[stream] = self.counts.get(stream, 0) + n
        self._show()

    def stage(self, name: str) -> None:
        self.current = name
        self._show(force=True)
