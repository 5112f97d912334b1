"""Transports: how the guest tests reach the guest and their output comes back.

A transport boots an image with the selected guest programs and returns the
boot's BootOutcome: the console lines, with the guest's KTAP document in
them, and how the boot ended. The pipeline (harness/pipeline.py) judges that
outcome the same way, flaky retry included, whatever carried it:

- console.py: the guest init runs the programs and prints KTAP on the serial
  console (the default);
- ssh.py: the host runs each program over SSH and writes the KTAP document
  the console init would have printed.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

from harness import printer

if TYPE_CHECKING:
    from harness.boot import BootOutcome
    from harness.images import KernelImage
    from harness.results import RunRecord
    from harness.run import Request


@dataclass(frozen=True)
class Attempt:
    """One boot of a run: its stage in results.json and the names of its files."""

    stage: str = "boot"
    suffix: str = ""  # "" on the first boot: console.log; "-retry": console-retry.log
    # The metadata keys' suffix when several boots share one (bench: one qemu_<kernel>
    # for a kernel's --repeat boots); None: the files' suffix.
    key_suffix: str | None = None

    def file(self, stem: str, ext: str = ".log") -> str:
        return f"{stem}{self.suffix}{ext}"

    def key(self, name: str) -> str:
        """A metadata key of this boot's: qemu, qemu_retry (qemu_vanilla for bench)."""
        if self.key_suffix is not None:
            return f"{name}{self.key_suffix}"
        return f"{name}{self.suffix.replace('-', '_')}"


FIRST = Attempt()
RETRY = Attempt("retry", "-retry")


def retry(n: int) -> Attempt:
    """The Nth retry boot of a run: retry/console-retry.log, then retry2/console-retry2.log."""
    return RETRY if n == 1 else Attempt(f"retry{n}", f"-retry{n}")


class Transport(Protocol):
    name: str

    def boot(self, req: Request, img: KernelImage, rootfs: Path, tests: list[str],
             rec: RunRecord, attempt: Attempt) -> BootOutcome:
        """Boot IMG with ROOTFS, run TESTS, return the console (KTAP included)."""
        ...


def announce(req: Request, img: KernelImage, accels: list[str], why: str, how: str,
             tests: list[str]) -> None:
    what = f"at {img.info['head'][:12]}" if req.at_head else f"({req.kernel})"
    printer.stage(f"Booting {img.info['release']} {what} with {'/'.join(accels)} ({why}); "
                  f"{how}: {', '.join(tests) or 'nothing'}")
