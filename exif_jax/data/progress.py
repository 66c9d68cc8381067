"""A small progress line (count, rate, ETA) for long host-side jobs; prints to stderr at most every `interval` s."""
from __future__ import annotations

import sys
import time


def format_seconds(s: float) -> str:
    if s != s or s == float("inf"):
        return "?"
    s = int(round(s))
    h, rem = divmod(s, 3600)
    m, sec = divmod(rem, 60)
    return f"{h}:{m:02d}:{sec:02d}"


class Progress:
    def __init__(self, total: int | None, label: str, unit: str = "items", interval: float = 2.0, stream=None,
                 enabled: bool = True):
        self.total, self.label, self.unit, self.interval = total, label, unit, interval
        self.stream = stream or sys.stderr
        self.enabled = enabled
        self.done = 0
        self.start = time.perf_counter()
        self._last = 0.0

    def line(self) -> str:
        elapsed = max(time.perf_counter() - self.start, 1e-9)
        rate = self.done / elapsed
        if self.total:
            eta = (self.total - self.done) / rate if rate > 0 else float("inf")
            return (f"[{self.label}] {self.done}/{self.total} {self.unit} ({100.0 * self.done / self.total:.0f}%) "
                    f"{rate:.1f} {self.unit}/s, elapsed {format_seconds(elapsed)}, ETA {format_seconds(eta)}")
        return f"[{self.label}] {self.done} {self.unit} {rate:.1f} {self.unit}/s, elapsed {format_seconds(elapsed)}"

    def update(self, n: int = 1) -> None:
        self.done += n
        now = time.perf_counter()
        if self.enabled and (now - self._last >= self.interval or (self.total and self.done >= self.total)):
            self._last = now
            print(self.line(), file=self.stream, flush=True)

    def close(self) -> None:
        if self.enabled and self._last == 0.0:
            print(self.line(), file=self.stream, flush=True)
