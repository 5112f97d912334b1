"""Debug info end to end: `harness boot --gdb` (a real kernel under TCG, QEMU's gdb
stub, Debian's gdb) and splats decoded to file:line.

The default profile has no debug info (issue 16: -g was a fifth of a cold
build), so this module builds the default series once more with
`--fragment kconfigs/debuginfo.config`, as a developer who wants gdb does.
"""

import os
import queue
import re
import shlex
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from conftest import DEBUGINFO as DEBUGINFO_PATH
from conftest import ROOT, harness, qemu_processes, requires_kernel_tools

# install-deps.sh installs gdb-multiarch: missing, it skips outside CI and fails in CI.
pytestmark = [pytest.mark.integration, requires_kernel_tools("gdb-multiarch")]


@pytest.fixture(scope="module")
def results_root(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("results")


DEBUGINFO = str(DEBUGINFO_PATH)
GUEST_FIXTURES = str(ROOT / "tests" / "guest-fixtures")


def _reader(proc: subprocess.Popen) -> "queue.Queue[str | None]":
    """Lines of PROC's output as they come (None at EOF), read by a thread: the
    guest's console must never fill the pipe, and no read may block the test."""
    lines: queue.Queue[str | None] = queue.Queue()

    def pump() -> None:
        assert proc.stdout
        for line in proc.stdout:
            lines.put(line)
        lines.put(None)

    threading.Thread(target=pump, daemon=True).start()
    return lines


def _gdb_command(lines: "queue.Queue[str | None]", timeout: float) -> tuple[list[str], str]:
    """The gdb command `harness boot --gdb` prints, and everything printed up to it."""
    seen: list[str] = []
    deadline = time.monotonic() + timeout
    while True:
        left = deadline - time.monotonic()
        assert left > 0, "no gdb command printed in time:\n" + "".join(seen)
        try:
            line = lines.get(timeout=left)
        except queue.Empty:
            continue
        assert line is not None, "harness boot ended:\n" + "".join(seen)
        seen.append(line)
        if line.startswith(("gdb ", "gdb-multiarch ")):
            return shlex.split(line), "".join(seen)


def _listeners(port: int) -> list[str]:
    """Local addresses (hex, as /proc/net/tcp* has them) listening on PORT."""
    out = []
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            rows = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        for row in rows:
            local, state = row.split()[1], row.split()[3]
            addr, _, hexport = local.rpartition(":")
            if int(hexport, 16) == port and state == "0A":  # TCP_LISTEN
                out.append(addr)
    return out


def test_boot_gdb_wait_then_gdb_reads_init_task_comm(debuginfo_image, results_root):
    cmd = [sys.executable, "-m", "harness", "boot", "--gdb", "--gdb-wait", "--accel", "tcg",
           "--fragment", DEBUGINFO, "--results-dir", str(results_root)]
    # stdin stays open (QEMU's console reads it); its own process group, so one
    # killpg ends QEMU (exec'd: the same pid) and anything it started.
    boot = subprocess.Popen(cmd, cwd=ROOT, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, errors="replace",
                            start_new_session=True)
    marker = None
    try:
        gdb, printed = _gdb_command(_reader(boot), timeout=600)
        print(printed)
        remote = next(a for a in gdb if a.startswith("target remote "))
        host, port = remote.removeprefix("target remote ").rsplit(":", 1)
        assert host == "127.0.0.1"
        marker = f"tcp:127.0.0.1:{port}"
        assert qemu_processes(marker), "QEMU is not running with the stub"
        # The stub listens on 127.0.0.1 and nothing else (not 0.0.0.0, not IPv6).
        deadline = time.monotonic() + 60
        while not _listeners(int(port)) and time.monotonic() < deadline:
            time.sleep(0.5)
        assert _listeners(int(port)) == ["0100007F"]
        assert str(debuginfo_image.image.parent / "vmlinux") in gdb
        helpers = any(a.startswith("source ") and a.endswith("vmlinux-gdb.py") for a in gdb)
        # -S: the CPUs wait at reset, before paging; a hardware breakpoint (a
        # software one cannot be written to an unmapped kernel address) stops
        # the boot where init_task is readable.
        extra = ["-batch", "-ex", "hbreak start_kernel", "-ex", "continue",
                 "-ex", "p init_task.comm", *(["-ex", "lx-version"] if helpers else [])]
        proc = subprocess.run([*gdb, *extra], capture_output=True, text=True, timeout=300,
                              stdin=subprocess.DEVNULL)
        out = proc.stdout + proc.stderr
        print(out)
        assert any(line.startswith("$1 = ") and '"swapper' in line
                   for line in proc.stdout.splitlines()), out
        if helpers:
            assert "Linux version 6.12" in proc.stdout, out
    finally:
        try:
            os.killpg(boot.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        boot.wait(30)
    if marker:
        deadline = time.monotonic() + 30
        while qemu_processes(marker) and time.monotonic() < deadline:
            time.sleep(0.5)
        assert not qemu_processes(marker), "QEMU outlived its process group"


def test_splat_frames_are_decoded_to_file_and_line(debuginfo_image, results_root):
    # decode_stacktrace.sh with the image's vmlinux: function+offset (file:line)
    # in summary.txt; console.log keeps the trace as printed.
    run = harness("test", "--fragment", DEBUGINFO, "--guest-tests", GUEST_FIXTURES,
                  "--tests", "panic", results_root=results_root)
    assert run.returncode == 1, run.output
    panic = next(s for s in run.data["splats"] if s["kind"] in ("panic", "oops", "bug"))
    assert len(panic["decoded"]) == len(panic["lines"]), run.data["metadata"].get("decoded")
    summary = (run.results / "summary.txt").read_text()
    assert re.search(r"sysrq_handle_crash\+0x[0-9a-f]+/0x[0-9a-f]+ "
                     r"\(drivers/tty/sysrq\.c:\d+\)", summary), summary
    assert "(drivers/tty/sysrq.c:" not in (run.results / "console.log").read_text()
    assert not qemu_processes(run.results.name)
