"""Progress of a job while :meth:`sluice.Client.submit` waits for it.

A job's outcome becomes visible at its scheduled ``due_at`` (fixed at
admission from data-independent inputs; docs/threat-model.md, "Timing"),
so that is what is shown: the state, the due time and the seconds left
until it. There is no percentage, since nothing about the running job may
leak before that time.

In a notebook the display is one HTML line updated in place; in a terminal
one line rewritten with ``\\r`` (a line per change when the stream is not
a terminal, e.g. a log file).
"""

from __future__ import annotations

import html
import sys
import threading
from datetime import datetime, timezone
from typing import Any, TextIO

from .models import Job

__all__ = ["describe", "Progress", "in_notebook"]

_STATES = {
    "queued": "queued: being checked, nothing read",
    "awaiting_review": "awaiting review: nothing is spent until a reviewer approves",
    "running": "running",
    "released": "released",
    "rejected": "rejected",
    "failed": "failed",
    "cancelled": "cancelled",
}


def describe(job: Job, now: datetime | None = None) -> str:
    """One line on a job: its state and, while it runs, when its outcome
    is due and how long until then."""
    now = now or datetime.now(timezone.utc)
    text = f"job {job.id}: {_STATES.get(job.state, job.state)}"
    if job.state == "running" and job.due_at is not None:
        left = (job.due_at - now).total_seconds()
        due = job.due_at.astimezone().strftime("%H:%M:%S")
        text += f"; outcome due at {due}" + (f" (in {left:.0f} s)" if left >= 0.5 else " (now)")
    elif job.is_final and job.message:
        text += f": {job.message}"
    return text


def in_notebook() -> bool:
    """Whether this runs in a Jupyter kernel (rich display available)."""
    try:
        from IPython import get_ipython  # type: ignore[import-not-found]
    except ImportError:
        return False
    shell = get_ipython()
    return shell is not None and type(shell).__name__ == "ZMQInteractiveShell"


class Progress:
    """Shows a job's progress until :meth:`close`. ``stream`` is where a
    terminal line goes (default: stderr); ``notebook`` forces or forbids
    the HTML display (default: detected). A ticker refreshes the seconds
    left once a second while the job runs."""

    def __init__(self, stream: TextIO | None = None, *, notebook: bool | None = None) -> None:
        self._stream = stream or sys.stderr
        self._notebook = in_notebook() if notebook is None else notebook
        self._handle: Any = None
        self._job: Job | None = None
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._ticker: threading.Thread | None = None
        self._tty = bool(getattr(self._stream, "isatty", lambda: False)())
        self._last_line = ""

    def show(self, job: Job) -> None:
        """Displays a new view of the job (called on every event)."""
        with self._lock:
            changed = self._job is None or self._job.state != job.state or self._job.due_at != job.due_at
            self._job = job
            self._render(final_line=False, changed=changed)
        if job.state == "running" and self._ticker is None and (self._notebook or self._tty):
            self._ticker = threading.Thread(target=self._tick, name="sluice-progress", daemon=True)
            self._ticker.start()

    def close(self) -> None:
        """Stops the ticker and ends the terminal line."""
        self._stop.set()
        if self._ticker is not None:
            self._ticker.join(timeout=2)
        with self._lock:
            if self._job is not None and not self._notebook and self._tty:
                self._stream.write("\n")
                self._stream.flush()

    def __enter__(self) -> "Progress":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def _tick(self) -> None:
        while not self._stop.wait(1.0):
            with self._lock:
                if self._job is None or self._job.state != "running":
                    continue
                self._render(final_line=False, changed=False)

    def _render(self, *, final_line: bool, changed: bool) -> None:
        assert self._job is not None
        line = describe(self._job)
        if self._notebook:
            from IPython.display import HTML, display  # type: ignore[import-not-found]

            content = HTML(f"<code>{html.escape(line)}</code>")
            if self._handle is None:
                self._handle = display(content, display_id=True)
            else:
                self._handle.update(content)
        elif self._tty:
            pad = max(0, len(self._last_line) - len(line))
            self._stream.write("\r" + line + " " * pad)
            self._stream.flush()
        elif changed:
            # Not a terminal: a log gets one line per change, no countdown.
            self._stream.write(line + "\n")
            self._stream.flush()
        self._last_line = line
