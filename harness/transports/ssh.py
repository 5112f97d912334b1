"""The SSH transport: the host runs each guest program over SSH.

QEMU runs as on the console (transports/console.py: same timeouts, console
log, splat watch, Ctrl-C handling), with our initrd (the cached initramfs
plus a per-boot cpio with dropbear and fresh keys) and a 127.0.0.1-only
port forward. A worker thread waits for the guest's ready marker in the
live console log, runs each test program over an exec channel, wraps the
outputs into the KTAP document the console init would have printed, and
powers the guest off. The document is appended to the console lines, so the
pipeline judges it (and retries a flaky failure) as it does a console run.
"""

import tempfile
import threading
from dataclasses import dataclass
from pathlib import Path

from harness import printer, run
from harness.boot import BootOutcome
from harness.images import KernelImage
from harness.results import RunRecord
from harness.ssh.initrd import build_initrd
from harness.ssh.keys import make_keys
from harness.ssh.net import LOOPBACK, free_port, heartbeat_seconds, patch_command
from harness.ssh.session import SshSession
from harness.transports import Attempt
from harness.transports.console import boot_qemu

WORKER_JOIN_SECONDS = 30


@dataclass(frozen=True)
class Ssh:
    name: str = "ssh"

    def boot(self, req: run.Request, img: KernelImage, rootfs: Path, tests: list[str],
             rec: RunRecord, attempt: Attempt) -> BootOutcome:
        timeouts = req.profile.timeouts
        with tempfile.TemporaryDirectory(prefix="harness-ssh-") as tmp:
            work = Path(tmp)  # short: a Unix socket path must fit in 108 bytes
            with req.timings.measure("ssh-setup"):
                keys = make_keys(work)
                initrd = build_initrd(Path(img.info["tree"]), rootfs / "initramfs.cpio", keys,
                                      work)
            port = free_port()
            monitor = work / "monitor.sock"
            rec.meta(transport="ssh",
                     **{attempt.key("ssh"): {"port": port, "host_key": keys.host_pub}})
            session = SshSession(port, keys, tests, timeouts.per_test,
                                 rec.path(attempt.file("console")), monitor,
                                 rec.path(attempt.file("guest-files", "")),
                                 echo=printer.verbose, cases=run.selected_cases(req))
            worker = threading.Thread(target=session.run, name="ssh-session", daemon=True)
            worker.start()
            try:
                outcome = boot_qemu(
                    req, img, rootfs, tests, rec, attempt, f"over SSH ({LOOPBACK}:{port})",
                    cmdline_extra=["harness.ssh=1", "harness.ssh_heartbeat="
                                   f"{heartbeat_seconds(timeouts.silence)}"],
                    patch=lambda cmd: patch_command(cmd, initrd, port, monitor))
            finally:
                session.stop.set()
                worker.join(timeout=WORKER_JOIN_SECONDS)
        if session.guest and session.guest.log:
            rec.path(attempt.file("ssh")).write_text("".join(session.guest.log))
        if session.lines:
            rec.path(attempt.file("ssh-ktap")).write_text("\n".join(session.lines) + "\n")
            # After everything the console showed: splat line numbers stay right.
            outcome.lines += session.lines
        if session.error:
            printer.error(f"SSH transport: {session.error}")
        rec.stage(f"ssh{attempt.suffix}", "pass" if session.completed else "fail", port=port,
                  connect=session.connect_seconds, error=session.error,
                  fetched=session.fetched)
        return outcome
