"""The guest tests over SSH: each program on an exec channel, its output wrapped
into the KTAP document the console init (guest_init.sh) would have printed.

An SshSession is the worker thread of the SSH transport (transports/ssh.py):
it waits for the guest's ready marker in the live console log, runs the
programs, copies their logs back and powers the guest off.
"""

import os
import shlex
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from harness import printer
from harness.boot import GUEST_DONE, GUEST_START
from harness.errors import HarnessError
from harness.selection import guest_args
from harness.ssh.client import Guest
from harness.ssh.keys import Keys
from harness.ssh.net import monitor_quit

READY = "harness: ssh ready"
SETUP_FAILED = "harness: ssh setup failed"
SCRATCH = "/mnt/scratch"
# Guest files copied back after each test: logs, not the tests' data files.
FETCH_GLOB = "*.log"
GUARD_SECONDS = 60  # host-side slack over the guest's own per-test timeout
POWEROFF_SECONDS = 30


def ktap_result(i: int, name: str, rc: int, per_test: int) -> str:
    if rc == 0:
        return f"ok {i} {name}"
    if rc == 4:
        return f"ok {i} {name} # SKIP"
    if rc == 137:
        return f"not ok {i} {name} # TIMEOUT after {per_test}s"
    return f"not ok {i} {name} # exit code {rc}"


def output_lines(data: bytes) -> list[str]:
    """Program output as the console shows it: lines, no CR, none for no output."""
    text = data.decode("utf-8", errors="replace")
    lines = text.split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    return [ln.rstrip("\r") for ln in lines]


def ktap_block(i: int, name: str, output: bytes, rc: int | None, per_test: int) -> list[str]:
    """One program's lines; no result line if the guest died while it ran."""
    block = [f"  # Subtest: {name}", *(f"  {ln}" for ln in output_lines(output))]
    if rc is not None:
        block.append(ktap_result(i, name, rc, per_test))
    return block


def ktap_header(n: int) -> list[str]:
    return [f"{GUEST_START}{n} guest test programs", "KTAP version 1", f"1..{n}"]


def console(text: str) -> str:
    """A guest command printing TEXT on the serial console, i.e. into console.log."""
    return f"echo {shlex.quote(text)} >/dev/console"


def test_command(name: str, per_test: int, cases: tuple[str, ...] = ()) -> str:
    """CASES: run only these (harness/selection.py), as the console init does."""
    d = shlex.quote(f"{SCRATCH}/{name}")
    argv = shlex.join([f"/tests/{name}", *guest_args(cases)])
    # No exec: a program killed by a signal must become the shell's 128+N
    # status (137 = timeout), as on the console, not an SSH exit-signal. The
    # program's stderr joins its stdout, as on the console.
    return (f"mkdir -p {d} && cd {d} && "
            f"timeout -s KILL {per_test} {argv} 2>&1; exit $?")


@dataclass
class SshSession:
    """The worker thread's work and what it found."""

    port: int
    keys: Keys
    tests: list[str]
    per_test: int
    console_log: Path
    monitor: Path
    files_dir: Path
    echo: bool = False
    cases: dict[str, tuple[str, ...]] = field(default_factory=dict)  # selected cases per test
    stop: threading.Event = field(default_factory=threading.Event)
    lines: list[str] = field(default_factory=list)  # KTAP, as the console init prints it
    completed: bool = False
    error: str = ""
    connect_seconds: float | None = None
    fetched: list[str] = field(default_factory=list)
    guest: Guest | None = None

    def wait_ready(self) -> bool:
        """Tail the live console log for the guest's ready marker."""
        pos = 0
        pending = ""
        while not self.stop.is_set():
            try:
                with open(self.console_log, errors="replace") as f:
                    f.seek(pos)
                    chunk = f.read()
                    pos = f.tell()
            except FileNotFoundError:
                chunk = ""
            pending += chunk
            *complete, pending = pending.split("\n")
            for line in complete:
                if READY in line:
                    return True
                if SETUP_FAILED in line:
                    self.error = line.strip()
                    return False
            time.sleep(0.2)
        return False

    def run(self) -> None:
        """The worker thread's body."""
        guest = self.guest = Guest(self.port, self.keys)
        try:
            if not self.wait_ready():
                return
            self.connect_seconds = guest.connect(stop=self.stop)
            if self.run_tests(guest):
                guest.poweroff()
        except Exception as e:  # reported by the main thread; never kill it silently
            self.error = self.error or f"{type(e).__name__}: {e}"
        finally:
            guest.close()
            # QEMU exits on `reboot -f`; if it does not (SSH broke, guest
            # wedged), quit it rather than wait for the run timeout.
            if not self.stop.wait(POWEROFF_SECONDS if self.completed else 2):
                monitor_quit(self.monitor)

    def run_tests(self, guest: Guest) -> bool:
        """Every test, as the console init runs them; False if the guest was lost."""
        guest.check(console(f"{GUEST_START}{len(self.tests)} guest test programs "
                            "(over ssh from the host)"))
        self.lines += ktap_header(len(self.tests))
        for i, name in enumerate(self.tests, 1):
            if not self._one(guest, i, name):
                return False
        self.lines.append(GUEST_DONE)
        # On the console too: boot.run_qemu then ends the run as "done".
        guest.check(console(GUEST_DONE) + "; sync")
        self.completed = True
        return True

    def _one(self, guest: Guest, i: int, name: str) -> bool:
        exists = guest.run(f"test -x {shlex.quote('/tests/' + name)}", timeout=60)
        if exists.code is None:
            self.error = f"guest lost before {name}: {exists.error}"
            return False
        if exists.code != 0:
            self.lines.append(f"not ok {i} {name} # ERROR no such guest test program")
            return True
        guest.run(console(f"harness: ssh: running {name}"), timeout=60)
        # Subtest line and output land in self.lines as they arrive, so a
        # guest that dies mid-test still leaves its partial output behind.
        self.lines.append(f"  # Subtest: {name}")
        pending = bytearray()

        def on_data(data: bytes) -> None:
            pending.extend(data)
            cut = pending.rfind(b"\n") + 1
            if cut:
                new = [f"  {ln}" for ln in output_lines(bytes(pending[:cut]))]
                del pending[:cut]
                self.lines.extend(new)
                if self.echo:
                    print("\n".join(new), flush=True)

        res = guest.run(test_command(name, self.per_test, self.cases.get(name, ())),
                        self.per_test + GUARD_SECONDS, on_data)
        self.lines.extend(f"  {ln}" for ln in output_lines(bytes(pending)))
        if res.timed_out:
            # The guest's own timeout should have fired; the guest is unwell.
            self.lines.append(f"not ok {i} {name} # TIMEOUT after {self.per_test}s "
                              "(host-side SSH guard)")
            self.error = f"{name}: no answer over SSH {GUARD_SECONDS}s past its timeout"
            return False
        if res.code is None:
            self.error = f"guest lost while running {name}: {res.error}"
            return False
        self.lines.append(ktap_result(i, name, res.code, self.per_test))
        self._fetch_logs(guest, name)
        return True

    def _fetch_logs(self, guest: Guest, name: str) -> None:
        d = f"{SCRATCH}/{name}"
        res = guest.run(f"find {shlex.quote(d)} -type f -name {shlex.quote(FETCH_GLOB)}",
                        timeout=60)
        if res.code != 0:
            return
        for remote in res.output.decode(errors="replace").splitlines():
            rel = os.path.relpath(remote, d)
            if rel.startswith(".."):
                continue
            try:
                guest.fetch(remote, self.files_dir / name / rel)
            except HarnessError as e:  # a missing log is no reason to stop testing
                printer.warn(str(e))
                continue
            self.fetched.append(f"{name}/{rel}")
