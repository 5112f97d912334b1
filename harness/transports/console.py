"""The serial console transport: the guest init runs the programs and prints KTAP.

`boot_qemu` is also the SSH transport's way to run QEMU: the same command
line (plus its network and initrd), timeouts, console log and splat watch.
"""

import contextlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from harness import printer, run
from harness.boot import BootOutcome, boot
from harness.images import KernelImage
from harness.profile import cache_dir
from harness.qemu import SCRATCH_DEVICE, scratch_disk
from harness.results import RunRecord
from harness.transports import Attempt, announce


def boot_qemu(req: run.Request, img: KernelImage, rootfs: Path, tests: list[str],
              rec: RunRecord, attempt: Attempt, how: str = "running",
              cmdline_extra: Sequence[str] = (),
              patch: Callable[[list[str]], list[str]] | None = None) -> BootOutcome:
    """Boot IMG with TESTS on its command line until the guest is done or a timeout
    ends it; PATCH rewrites each QEMU command line (the SSH transport's network)."""
    size = req.profile.qemu.scratch_disk
    with scratch_disk(size) if size else contextlib.nullcontext([]) as disk:
        if disk:  # the guest init must use it, or say why not: never brd in its place
            cmdline_extra = [*cmdline_extra, f"harness.disk={SCRATCH_DEVICE}"]
        cmds, accels, why = run.qemu_commands(req, img, rootfs, tests,
                                              name=f"harness:{rec.dir.name}",
                                              cmdline_extra=cmdline_extra)
        if patch is not None:
            cmds = {a: patch(c) for a, c in cmds.items()}
        cmds = {a: [*c, *disk] for a, c in cmds.items()}
        rec.meta(**{attempt.key("qemu"): dict(cmds)})
        announce(req, img, accels, why, how, tests)
        return boot(cmds, accels, rec.path(attempt.file("console")), req.profile.timeouts,
                    cache_dir(), echo=printer.verbose)


@dataclass(frozen=True)
class Console:
    name: str = "console"

    def boot(self, req: run.Request, img: KernelImage, rootfs: Path, tests: list[str],
             rec: RunRecord, attempt: Attempt) -> BootOutcome:
        return boot_qemu(req, img, rootfs, tests, rec, attempt)
