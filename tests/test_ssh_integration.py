"""The SSH transport end to end: a real kernel, QEMU user networking, dropbear.

Boots the last vanilla image (built once if there is none).
"""

import json
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import ROOT, harness, qemu_processes, requires_kernel_tools

from harness.ssh import keys as sshkeys
from harness.ssh import net, session

pytestmark = [pytest.mark.integration, requires_kernel_tools(),
              pytest.mark.skipif(not sshkeys.DROPBEAR.exists(),
                                 reason="dropbear-bin not installed")]
GUEST_FIXTURES = str(ROOT / "tests" / "guest-fixtures")


@pytest.fixture(scope="module")
def results_root(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("results")


@pytest.fixture(scope="module")
def console_run(results_root):
    run = harness("test", "--no-series", "--tests", "smoke", results_root=results_root)
    if run.returncode == 2 and "harness build" in run.output:
        assert harness("build", "--no-series", results_root=results_root).returncode == 0
        run = harness("test", "--no-series", "--tests", "smoke", results_root=results_root)
    return run


def _statuses(run) -> dict[str, str]:
    return {t["name"]: t["status"] for t in run.data["tests"]}


def _port_closed(port: int) -> bool:
    with socket.socket() as s:
        return s.connect_ex((net.LOOPBACK, port)) != 0


def test_smoke_over_ssh_matches_the_console_run(console_run, results_root):
    assert console_run.returncode == 0, console_run.output
    run = harness("test", "--no-series", "--tests", "smoke", "--transport", "ssh",
                  results_root=results_root)
    assert run.returncode == 0, run.output
    data = run.data
    assert data["metadata"]["transport"] == "ssh"
    assert data["stages"]["ssh"]["status"] == "pass", data["stages"]["ssh"]
    assert data["stages"]["boot"]["status"] == "done"
    guest = {n: s for n, s in _statuses(run).items() if n.startswith("guest/")}
    assert guest and guest == {n: s for n, s in _statuses(console_run).items()
                               if n.startswith("guest/")}
    assert not data["splats"]
    console = (run.results / "console.log").read_text()
    assert session.READY in console and "harness: guest tests done" in console
    assert "  # Subtest: smoke" in (run.results / "ssh-ktap.log").read_text()
    for arg in data["metadata"]["qemu"]["tcg" if "tcg" in data["metadata"]["qemu"]
                                        else "kvm"]:
        assert "0.0.0.0" not in arg
    assert not qemu_processes(run.results.name)
    assert _port_closed(data["metadata"]["ssh"]["port"])


def test_panic_over_ssh_is_a_crash_with_the_splat(console_run, results_root):
    t0 = time.monotonic()
    run = harness("test", "--no-series", "--guest-tests", GUEST_FIXTURES, "--tests", "panic,pass",
                  "--transport", "ssh", results_root=results_root)
    assert run.returncode == 1, run.output
    assert time.monotonic() - t0 < 120
    assert {s["kind"] for s in run.data["splats"]} & {"panic", "oops", "bug"}
    tests = _statuses(run)
    assert any(n.endswith("pass") and s == "CRASHED" for n, s in tests.items()), tests
    assert run.data["stages"]["ssh"]["status"] == "fail"
    assert not qemu_processes(run.results.name)


def test_silent_test_over_ssh_times_out_in_the_guest_not_on_the_console(console_run,
                                                                       results_root):
    # The heartbeat keeps the console alive while `hang` prints nothing.
    run = harness("test", "--no-series", "--guest-tests", GUEST_FIXTURES, "--tests", "hang,pass",
                  "--transport", "ssh", "--per-test-timeout", "15", "--silence-timeout", "9",
                  results_root=results_root)
    assert run.returncode == 1, run.output
    assert run.data["stages"]["boot"]["status"] == "done"
    tests = _statuses(run)
    assert [s for n, s in tests.items() if n.startswith("guest/pass")] == ["PASS"], tests
    assert "not ok 1 hang # TIMEOUT after 15s" in (run.results / "ssh-ktap.log").read_text()


def test_declared_flaky_failure_over_ssh_gets_one_retry(console_run, results_root):
    # As on the console (test_integration.py): `flaky` fails beside `pass`, passes alone.
    run = harness("test", "--no-series", "--guest-tests", GUEST_FIXTURES, "--tests",
                  "flaky,pass", "--transport", "ssh", results_root=results_root)
    assert run.returncode == 0, run.output
    assert "running flaky again (retry 1 of at most 3)" in run.output
    assert "[FLAKY] passes_when_alone" in run.output
    assert run.data["flaky"] == ["flaky/passes_when_alone"]
    stages = run.data["stages"]
    assert stages["retry"]["status"] == "done" and stages["ssh-retry"]["status"] == "pass"
    assert "  # Subtest: flaky" in (run.results / "ssh-ktap-retry.log").read_text()
    assert "not ok 1 flaky" in (run.results / "ssh-ktap.log").read_text()
    assert (run.results / "console-retry.log").is_file()
    assert not qemu_processes(run.results.name)


def test_boot_ssh_then_harness_ssh_runs_a_command(console_run, results_root):
    cmd = [sys.executable, "-m", "harness", "boot", "--ssh", "--no-series",
           "--results-dir", str(results_root)]
    # stdin stays open: QEMU's serial console reads it.
    boot = subprocess.Popen(cmd, cwd=ROOT, stdin=subprocess.PIPE, stdout=subprocess.DEVNULL,
                            stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 180
        while True:
            proc = subprocess.run([sys.executable, "-m", "harness", "ssh", "--paramiko", "--",
                                   "cat", "/proc/version"], cwd=ROOT, capture_output=True,
                                  text=True, timeout=120)
            if proc.returncode == 0 or time.monotonic() > deadline or boot.poll() is not None:
                break
            time.sleep(2)
        assert proc.returncode == 0, proc.stdout + proc.stderr
        assert proc.stdout.startswith("Linux version 6.12")
        rc = subprocess.run([sys.executable, "-m", "harness", "ssh", "--paramiko", "--", "sh",
                             "-c", "exit 7"], cwd=ROOT, timeout=120).returncode
        assert rc == 7
        assert boot.pid in [s["pid"] for s in _states().values()]  # exec: QEMU kept our pid
    finally:
        boot.kill()  # QEMU itself (exec'd)
        boot.wait(30)
        for d, s in _states().items():
            if s["pid"] == boot.pid:
                shutil.rmtree(d)


def _states() -> dict[Path, dict]:
    from harness.profile import cache_dir
    return {p.parent: json.loads(p.read_text()) for p in (cache_dir() / "ssh").glob("*/state.json")}
