"""The per-run results directory, written as each stage finishes.

results.json is rewritten atomically after every stage, so a run that is
killed or interrupted still leaves what it had: which stages ran, how long
they took, and why it stopped.
"""

import json
import os
import time
import traceback
from pathlib import Path
from typing import Any


class RunRecord:
    def __init__(self, root: Path, label: str) -> None:
        stamp = time.strftime("%Y%m%d-%H%M%S")
        self.dir = root / f"{stamp}-{label}"
        n = 1
        while self.dir.exists():
            n += 1
            self.dir = root / f"{stamp}-{label}-{n}"
        self.dir.mkdir(parents=True)
        latest = root / "latest"
        try:
            if latest.is_symlink() or not latest.exists():
                latest.unlink(missing_ok=True)
                latest.symlink_to(self.dir.name)
        except OSError:
            pass
        self.data: dict[str, Any] = {"status": "running", "stages": {}, "metadata": {}}
        self.save()

    def path(self, name: str) -> Path:
        return self.dir / name

    def meta(self, **kw: Any) -> None:
        self.data["metadata"].update(kw)
        self.save()

    def stage(self, name: str, status: str, seconds: float | None = None, **kw: Any) -> None:
        entry: dict[str, Any] = {"status": status}
        if seconds is not None:
            entry["seconds"] = round(seconds, 2)
        entry.update(kw)
        self.data["stages"][name] = entry
        self.save()

    def finish(self, status: str, exit_code: int, message: str = "", **kw: Any) -> None:
        self.data.update(status=status, exit_code=exit_code, **kw)
        if message:
            self.data["message"] = message
        self.save()

    def save(self) -> None:
        tmp = self.dir / ".results.json.tmp"
        tmp.write_text(json.dumps(self.data, indent=2, default=str) + "\n")
        os.replace(tmp, self.dir / "results.json")

    def internal_error(self, exit_code: int, exc: BaseException) -> Path:
        """A bug in the harness: status error, the traceback beside results.json."""
        tb = self.path("traceback.txt")
        tb.write_text("".join(traceback.format_exception(exc)))
        self.finish("error", exit_code, f"internal error (a bug in the harness): {exc!r}",
                    traceback=tb.name)
        return tb
