import json
import os
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
FIXTURES = Path(__file__).resolve().parent / "fixtures"
# The declarations the series-v2 console fixtures (console-*-6.12.117.log) were judged by.
V2_EXPECTATIONS = FIXTURES / "expectations-v2.yaml"


@dataclass
class HarnessRun:
    returncode: int
    output: str
    results: Path | None  # the run's results directory

    @property
    def data(self) -> dict:
        assert self.results, self.output
        return json.loads((self.results / "results.json").read_text())


def _results_dir(output: str) -> Path | None:
    for line in output.splitlines():
        if "] Results: " in line:
            return Path(line.split("] Results: ", 1)[1].strip())
    return None


def harness(*args: str, results_root: Path, timeout: int = 3000) -> HarnessRun:
    """Run the real `harness` CLI as a user would; never hang the test suite."""
    cmd = [sys.executable, "-m", "harness", *args, "--results-dir", str(results_root)]
    proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=timeout)
    out = proc.stdout + proc.stderr
    print(out)
    return HarnessRun(proc.returncode, out, _results_dir(out))


def qemu_processes(marker: str) -> list[str]:
    """Command lines of running QEMUs whose -name contains MARKER."""
    out = subprocess.run(["pgrep", "-af", "qemu-system"], capture_output=True, text=True).stdout
    return [ln for ln in out.splitlines() if marker in ln]


def requires_kernel_tools(*extra: str) -> pytest.MarkDecorator:
    """Skip (outside CI) when the tools a real kernel build or boot needs are missing;
    EXTRA names more (a cross compiler, clang, ...). In CI a missing tool fails."""
    missing = [t for t in ("qemu-system-x86_64", "make", "gcc", "flex", "bison", *extra)
               if not shutil.which(t)]
    if not Path("/usr/src/linux-source-6.12.tar.xz").exists():
        missing.append("linux-source-6.12")
    return pytest.mark.skipif(bool(missing) and not os.environ.get("CI"),
                              reason=f"missing {', '.join(missing)}: run ./install-deps.sh")


@pytest.fixture(scope="session")
def kernel_tree() -> Path:
    """The harness's extracted Debian source, imported now on a fresh cache as any
    run would (no build): the kernel's own scripts and headers for tests that
    compare with them."""
    from harness.profile import SourceConfig, cache_dir
    from harness.stages.source import prepare_source

    return prepare_source(SourceConfig(), cache_dir()).repo


DEBUGINFO = ROOT / "kconfigs" / "debuginfo.config"


@pytest.fixture(scope="session")
def debuginfo_image(tmp_path_factory):
    """The default profile's series built with kconfigs/debuginfo.config (full DWARF),
    as a developer who wants gdb or file:line in splats builds it: once, then reused.
    The default profile itself has no debug info (issue 16)."""
    from dataclasses import replace

    from harness import run
    from harness.errors import ConfigError
    from harness.profile import load_profile

    prof = load_profile("default")
    req = run.Request(profile=replace(prof, fragments=[*prof.fragments, str(DEBUGINFO)]))
    try:
        return run.last_image(req)
    except ConfigError:
        built = harness("build", "--fragment", str(DEBUGINFO),
                        results_root=tmp_path_factory.mktemp("results"))
        assert built.returncode == 0, built.output
        return run.last_image(req)


def interrupt_when(cmd: list[str], ready: str, timeout: int = 900) -> tuple[int, str]:
    """Start CMD, send SIGINT once READY appears in its output, return (rc, output)."""
    # A shell without job control starts background jobs with SIGINT ignored,
    # and the child would inherit that: give it the default a terminal has.
    proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    out = []
    deadline = time.monotonic() + timeout
    assert proc.stdout
    try:
        for line in proc.stdout:
            out.append(line)
            if ready in line:
                time.sleep(2)
                proc.send_signal(signal.SIGINT)
                break
            assert time.monotonic() < deadline, "never became ready"
        out.append(proc.stdout.read())
        rc = proc.wait(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    return rc, "".join(out)


def write_report(rec, outcome, tests: list[str], kernel: str, declared) -> int:
    """One boot judged as KERNEL is declared to behave, and its report written:
    what pipeline.test_kernel does with a run's boot when nothing is retried."""
    from harness import judge, report
    verdict = judge.judge_boot(outcome, tests, declared, judge.Policy(kernels=(kernel,)))
    return report.emit(rec, verdict, kernel)
