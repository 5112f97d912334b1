"""Real builds, real QEMU boots: the paths a developer and CI depend on.

These share the harness cache (~/.cache/harness, or $HARNESS_CACHE), so
after the first build every other test rebuilds incrementally.
"""

import re
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import ROOT, harness, interrupt_when, qemu_processes, requires_kernel_tools

pytestmark = [pytest.mark.integration, requires_kernel_tools()]
GUEST_FIXTURES = str(ROOT / "tests" / "guest-fixtures")


@pytest.fixture(scope="module")
def results_root(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("results")


@pytest.fixture(scope="module")
def default_run(results_root):
    return harness("build-and-test", results_root=results_root)


def test_default_build_and_test_passes(default_run):
    assert default_run.returncode == 0, default_run.output
    d = default_run.results
    for name in ("console.log", "build.log", "junit.xml", "results.json", "summary.txt",
                 "kernel.config"):
        assert (d / name).is_file(), name
    data = default_run.data
    assert data["status"] == "pass"
    assert data["metadata"]["base_version"].startswith("6.12")
    assert data["metadata"]["patches"], "the series was not applied"
    names = {t["name"]: t["status"] for t in data["tests"]}
    smoke = {n: s for n, s in names.items() if "/smoke/" in n or n.startswith("guest/smoke")}
    assert smoke and all(s == "PASS" for s in smoke.values()), names
    assert not data["splats"]
    assert "<testsuite" in (d / "junit.xml").read_text()


def test_vanilla_shows_exactly_the_declared_failures(default_run, results_root):
    from harness import expectations

    run = harness("build-and-test", "--no-series", results_root=results_root)
    assert run.returncode == 0, run.output
    assert run.data["metadata"]["patches"] == []
    table = expectations.load(ROOT / "guest-tests" / "expectations.yaml", "x86_64")
    got = {t["name"]: t["status"] for t in run.data["tests"] if t["name"].startswith("guest/")}
    declared = {f"guest/{prog}/{test}": exp.vanilla.want for prog, tests in table.items()
                for test, exp in tests.items() if test != expectations.DEFAULT}
    # Every test declared to fail on vanilla ran and failed as declared,
    # every declared skip skipped, and nothing else did either.
    ran = {n: declared.get(n, "pass") for n in got if n.count("/") == 2}
    want = {n: {"pass": "PASS", "fail": "XFAIL", "skip": "SKIP"}[w] for n, w in ran.items()}
    assert {n: got[n] for n in want} == want
    assert [n for n, w in declared.items() if w == "fail" and n.split("/")[1] in
            {m.split("/")[1] for m in got}] == [n for n in declared if got.get(n) == "XFAIL"]


def test_malformed_profile_is_a_usage_error(tmp_path, results_root):
    bad = tmp_path / "bad.yaml"
    bad.write_text("qemu:\n  memroy: 1G\n")
    run = harness("build", "--profile", str(bad), results_root=results_root)
    assert run.returncode == 2
    assert f"{bad}: qemu.memroy: unknown key" in run.output


def _one_patch_series(tmp_path: Path, name: str, body: str) -> Path:
    (tmp_path / name).write_text(body)
    (tmp_path / "series").write_text(f"# test series\n{name}\n")
    return tmp_path / "series"


def _compile_error_patch(repo_file: str = "fs/nsfs.c") -> str:
    base = subprocess.run(["git", "-C", str(_source_repo()), "show", f"base:{repo_file}"],
                          capture_output=True, text=True, check=True).stdout.splitlines()
    ctx = base[:3]
    hunk = "\n".join(["@@ -1,3 +1,4 @@", *(f" {c}" for c in ctx[:1]),
                      "+int harness_broken(void) { return undeclared_identifier; }",
                      *(f" {c}" for c in ctx[1:3])])
    return (f"From 0000000000000000000000000000000000000000 Mon Sep 17 00:00:00 2001\n"
            f"From: Test <test@example.com>\nDate: Thu, 1 Jan 2026 00:00:00 +0000\n"
            f"Subject: [PATCH] fs: break the build\n\n---\n"
            f"diff --git a/{repo_file} b/{repo_file}\n--- a/{repo_file}\n+++ b/{repo_file}\n"
            f"{hunk}\n--\n2.39.5\n")


def _source_repo() -> Path:
    from harness.profile import cache_dir
    return next((cache_dir() / "src").glob("debian-*[!k]"))


def _series_plus(tmp_path: Path, name: str, body: str) -> Path:
    """A copy of patches/series with one more patch at the end."""
    real = ROOT / "patches"
    lines = (real / "series").read_text().splitlines()
    for line in lines:
        if line.strip() and not line.startswith("#"):
            (tmp_path / line.strip()).write_bytes((real / line.strip()).read_bytes())
    (tmp_path / name).write_text(body)
    (tmp_path / "series").write_text("\n".join([*lines, name]) + "\n")
    return tmp_path / "series"


# Before the not-applying patch, which leaves the tree at the base: on top of
# the series, as the tree last built, this build only compiles fs/nsfs.c
# (without ccache, a switch back to the base headers recompiles most of it).
def test_patch_that_does_not_compile_shows_the_error(tmp_path, default_run, results_root):
    series = _series_plus(tmp_path, "0099-break.patch", _compile_error_patch())
    run = harness("build", "--series", str(series), results_root=results_root)
    assert run.returncode == 3, run.output
    assert "fs/nsfs.c:2" in run.output and "error:" in run.output
    assert "undeclared_identifier" in run.output


NOT_APPLYING = """From 0000000000000000000000000000000000000000 Mon Sep 17 00:00:00 2001
From: Test <test@example.com>
Date: Thu, 1 Jan 2026 00:00:00 +0000
Subject: [PATCH] fs: change a line that is not there

---
 fs/file.c | 2 +-
 1 file changed, 1 insertion(+), 1 deletion(-)

diff --git a/fs/file.c b/fs/file.c
--- a/fs/file.c
+++ b/fs/file.c
@@ -1,3 +1,3 @@
 this context
-does not exist
+anywhere in fs/file.c
 at all
--
2.39.5
"""


def test_patch_that_does_not_apply_is_named(tmp_path, default_run, results_root):
    series = _one_patch_series(tmp_path, "0001-broken.patch", NOT_APPLYING)
    run = harness("build", "--series", str(series), results_root=results_root)
    assert run.returncode == 2, run.output
    assert "0001-broken.patch does not apply" in run.output
    assert "fs/file.c" in run.output
    assert run.data["stages"]["series"]["status"] == "fail"


def test_guest_panic_is_a_crash_with_the_splat(default_run, results_root):
    t0 = time.monotonic()
    run = harness("test", "--guest-tests", GUEST_FIXTURES, "--tests", "panic,pass",
                  results_root=results_root)
    assert run.returncode == 1, run.output
    assert time.monotonic() - t0 < 120
    kinds = {s["kind"] for s in run.data["splats"]}
    assert kinds & {"panic", "oops", "bug"}, run.data["splats"]
    # The default profile has no debug info: frames keep function+offset
    # (file:line with kconfigs/debuginfo.config: test_gdb_integration.py).
    panic = next(s for s in run.data["splats"] if s["kind"] in ("panic", "oops", "bug"))
    assert len(panic["decoded"]) == len(panic["lines"]), run.data["metadata"].get("decoded")
    assert any("sysrq_handle_crash+0x" in line for line in panic["decoded"])
    summary = (run.results / "summary.txt").read_text()
    assert re.search(r"sysrq_handle_crash\+0x[0-9a-f]+/0x[0-9a-f]+", summary), summary
    tests = {t["name"]: t["status"] for t in run.data["tests"]}
    # `pass` was promised by the plan but never ran: crashed, not passed.
    assert any(n.endswith("pass") and s == "CRASHED" for n, s in tests.items()), tests
    assert not qemu_processes(run.results.name)


def test_declared_flaky_failure_gets_a_retry(default_run, results_root):
    # `flaky` fails beside `pass` and passes alone, which is how the retry boot runs it.
    run = harness("test", "--guest-tests", GUEST_FIXTURES, "--tests", "flaky,pass",
                  results_root=results_root)
    assert run.returncode == 0, run.output
    assert "running flaky again (retry 1 of at most 3)" in run.output
    assert "[FLAKY] passes_when_alone" in run.output and "| # not alone:" in run.output
    assert run.data["flaky"] == ["flaky/passes_when_alone"]
    assert run.data["stages"]["retry"]["status"] == "done"
    assert (run.results / "console-retry.log").is_file()
    assert not qemu_processes(run.results.name)


def test_hung_guest_is_killed_and_reported(default_run, results_root):
    run = harness("test", "--guest-tests", GUEST_FIXTURES, "--tests", "hang",
                  "--silence-timeout", "10", "--per-test-timeout", "600",
                  results_root=results_root)
    assert run.returncode == 1, run.output
    assert run.data["stages"]["boot"]["status"] == "silence"
    assert "silence" in (run.results / "console.log").read_text()
    assert not qemu_processes(run.results.name)


def test_sigint_during_boot_kills_qemu_and_keeps_results(default_run, results_root):
    cmd = [sys.executable, "-m", "harness", "test", "--guest-tests", GUEST_FIXTURES,
           "--tests", "hang", "--results-dir", str(results_root)]
    rc, out = interrupt_when(cmd, "Booting")
    assert rc == 130, out
    results = Path(out.split("] Results: ", 1)[1].split()[0])
    assert not qemu_processes(results.name)
    data = (results / "results.json").read_text()
    assert '"status": "interrupted"' in data
    assert (results / "console.log").is_file()


def test_scratch_disk_holds_the_page_cache(default_run, results_root, tmp_path):
    """qemu.scratch_disk (the distro profile's) on the default kernel: the page-cache
    test runs on ext2 on the virtio disk, and the disk's file is gone after the boot."""
    import yaml

    data = yaml.safe_load((ROOT / "profiles" / "default.yaml").read_text())
    data.setdefault("qemu", {})["scratch_disk"] = "256M"
    prof = tmp_path / "disk.yaml"
    prof.write_text(yaml.safe_dump(data))
    run = harness("test", "--profile", str(prof), "--tests",
                  "file_charge:over_limit.open_reclaims_page_cache", results_root=results_root)
    assert run.returncode == 0, run.output
    assert "harness: /mnt/scratch: ext2 on /dev/vda" in (run.results / "console.log").read_text()
    cmd = next(iter(run.data["metadata"]["qemu"].values()))  # kvm or tcg: the same disk
    drive = cmd[cmd.index("-drive") + 1]
    assert "if=virtio" in drive and "harness.disk=/dev/vda" in cmd[cmd.index("-append") + 1]
    assert not Path(drive.split("file=", 1)[1].split(",", 1)[0]).exists()
    assert not qemu_processes(run.results.name)
