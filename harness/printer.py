"""Terminal output: timestamped stage lines, as kunit.py prints them."""

import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager

_start = time.monotonic()
verbose = False


def stage(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", flush=True)


def info(msg: str) -> None:
    print(f"    {msg}", flush=True)


def warn(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] warning: {msg}", file=sys.stderr, flush=True)


def error(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] error: {msg}", file=sys.stderr, flush=True)


class Timings:
    """Elapsed seconds per stage, for the closing line and results JSON."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = {}

    @contextmanager
    def measure(self, name: str, label: str | None = None) -> Iterator[None]:
        if label:
            stage(label)
        t0 = time.monotonic()
        try:
            yield
        finally:
            self.seconds[name] = self.seconds.get(name, 0.0) + time.monotonic() - t0

    def summary(self) -> str:
        parts = ", ".join(f"{v:.1f}s {k}" for k, v in self.seconds.items())
        return f"Elapsed time: {time.monotonic() - _start:.1f}s total ({parts})"


def is_tty() -> bool:
    return sys.stdout.isatty()
