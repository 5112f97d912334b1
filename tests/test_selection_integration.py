"""One named case on the real series kernel: only it runs in the guest.

build-and-test reuses the kept series image (one build on a fresh cache).
"""

import re
from pathlib import Path

import pytest
from conftest import harness, requires_kernel_tools

from harness.ssh import keys as sshkeys

pytestmark = [pytest.mark.integration, requires_kernel_tools()]
CASE = "charge.failed_open_leaves_no_charge"
SPEC = f"file_charge:{CASE}"


@pytest.fixture(scope="module")
def results_root(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("results")


def _assert_only_the_case_ran(run, log: str = "console.log") -> None:
    assert run.returncode == 0, run.output
    tests = {t["name"]: t["status"] for t in run.data["tests"]}
    guest = {n: s for n, s in tests.items() if n.startswith("guest/")}
    assert guest == {f"guest/file_charge/{CASE}": "PASS"}, tests  # leaves only
    assert run.data["metadata"]["tests_selected"] == ["file_charge"]
    console = (run.results / log).read_text()
    # kselftest_harness.h's own record of what ran, and its plan of one.
    assert re.findall(r"#\s+RUN\s+(\S+) \.\.\.", console) == [CASE]
    assert re.search(r"^\s+1\.\.1\s*$", console, re.M)


def test_one_named_case_runs_alone(results_root):
    run = harness("build-and-test", "--tests", SPEC, results_root=results_root)
    _assert_only_the_case_ran(run)
    cmds = run.data["metadata"]["qemu"].values()
    assert all(f"harness.tests={SPEC} " in " ".join(c) for c in cmds)


@pytest.mark.skipif(not sshkeys.DROPBEAR.exists(), reason="dropbear-bin not installed")
def test_one_named_case_runs_alone_over_ssh(results_root):
    run = harness("build-and-test", "--transport", "ssh", "--tests", SPEC,
                  results_root=results_root)
    _assert_only_the_case_ran(run, "ssh-ktap.log")
    assert f"/tests/file_charge -r {CASE} " in (run.results / "ssh.log").read_text()


def test_unknown_case_is_refused_before_the_boot(results_root):
    run = harness("test", "--tests", "file_charge:charge.nosuch", results_root=results_root)
    assert run.returncode == 2 and run.results is None, run.output
    assert CASE in run.output  # the known names are listed
