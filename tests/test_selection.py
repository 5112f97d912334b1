"""Running only named test cases: parsing, the known names, and how the
selection reaches the program (kernel command line, guest init, SSH)."""

import os
import re
import subprocess
from pathlib import Path

import pytest
from conftest import requires_kernel_tools

from harness import bisect, qemu, run, selection, step
from harness.cli import main
from harness.errors import ConfigError
from harness.profile import Profile, cache_dir
from harness.ssh import session
from harness.stages.rootfs import build_rootfs
from harness.target import X86_64

ROOT = Path(__file__).resolve().parents[1]
GUEST_TESTS = ROOT / "guest-tests"
INIT = ROOT / "harness" / "guest_init.sh"

VARIANTS = """\
#include "kselftest_harness.h"
FIXTURE(fx) { int a; };
FIXTURE_VARIANT(fx) { int b; };
FIXTURE_VARIANT_ADD(fx, one) { .b = 1 };
FIXTURE_VARIANT_ADD(fx, two) { .b = 2 };
FIXTURE_SETUP(fx) {}
FIXTURE_TEARDOWN(fx) {}
/* TEST_F(fx, commented_out) {} */
TEST_F(fx, alpha) {}
TEST_F_TIMEOUT(fx, beta, 900) {}
FIXTURE(plain) {};
FIXTURE_SETUP(plain) {}
FIXTURE_TEARDOWN(plain) {}
TEST_F(plain, gamma) {}
TEST(lone) {}
TEST_SIGNAL(killed, 9) { raise(9); }
// TEST(also_commented_out) {}
TEST_HARNESS_MAIN
"""
# What the program prints, in its order (checked against the real header below).
VARIANT_NAMES = ["global.lone", "global.killed", "fx.one.alpha", "fx.one.beta", "fx.two.alpha",
                 "fx.two.beta", "plain.gamma"]


def test_parse_keeps_order_merges_cases_and_a_whole_program_wins():
    assert selection.parse(["smoke", "file_charge:a.b", "file_charge/a.c", "file_charge:a.b"]
                           ) == {"smoke": (), "file_charge": ("a.b", "a.c")}
    assert selection.parse(["p:a.b", "p"]) == {"p": ()}
    assert selection.parse(["p", "p:a.b"]) == {"p": ()}
    assert selection.programs(["q:x.y", "p", "q:x.z"]) == ["q", "p"]
    assert selection.parse([]) == {}


@pytest.mark.parametrize("spec", ["p:a:b", "p:", ":a", "p q", "p:a,b"])
def test_parse_rejects_malformed_specs(spec):
    with pytest.raises(ConfigError, match="PROGRAM:CASE"):
        selection.parse([spec])


def test_case_names_from_source_with_variants_signals_and_comments():
    assert selection.case_names(VARIANTS) == VARIANT_NAMES


def _listed(out: str) -> list[str]:
    """Case names from kselftest_harness.h's `-l` table (fixture, variant and
    test columns; blank where a row continues the fixture above)."""
    tests: dict[str, tuple[list[str], list[str]]] = {}
    fixture = ""
    for line in out.splitlines()[1:]:
        if line.startswith("---"):
            continue
        fixture = line[:20].strip() or fixture
        variants, names = tests.setdefault(fixture, ([], []))
        for col, into in ((line[21:46].strip(), variants), (line[47:].strip(), names)):
            if col:
                into.append(col)
    return [".".join(filter(None, (f, v, t))) for f, (vs, ts) in tests.items()
            for v in (vs or [""]) for t in ts]


@pytest.fixture(scope="module")
def built_tests(kernel_tree, tmp_path_factory) -> Path:
    """These very guest-tests sources, as the rootfs stage builds them: the cached
    rootfs when a run built it, else built (and cached) now for the runs to come."""
    log = tmp_path_factory.mktemp("rootfs") / "build.log"
    return build_rootfs(kernel_tree, GUEST_TESTS, cache_dir(), log) / "tests"


@pytest.mark.integration
@requires_kernel_tools()
def test_case_names_are_those_the_built_programs_list(built_tests):
    """The names from the sources are what the compiled programs say they run
    (`-l` lists and exits before any test runs)."""
    d = built_tests
    selectable = [p for p in sorted(d.iterdir())
                  if selection.known_cases(GUEST_TESTS, p.name) is not None]
    assert {"smoke", "file_charge"} <= {p.name for p in selectable}
    for p in selectable:
        out = subprocess.run([str(p), "-l"], capture_output=True, text=True, timeout=30).stderr
        assert selection.known_cases(GUEST_TESTS, p.name) == _listed(out), p.name
    # Upstream selftests and our non-kselftest programs cannot select.
    for name in ("test_kmem", "test_memcontrol", "bench_open", "nosuch"):
        assert selection.known_cases(GUEST_TESTS, name) is None


@pytest.mark.integration
@requires_kernel_tools()
def test_case_names_and_dash_r_agree_with_the_real_kselftest_harness(kernel_tree, tmp_path):
    """The names from the source are what the header's program prints, and
    -r NAME runs exactly that case with a plan of one."""
    header = kernel_tree / "tools/testing/selftests/kselftest_harness.h"
    (tmp_path / "v.c").write_text(VARIANTS)
    subprocess.run(["gcc", f"-I{header.parent}", "-o", str(tmp_path / "v"),
                    str(tmp_path / "v.c")], check=True, timeout=120)
    out = subprocess.run([str(tmp_path / "v")], capture_output=True, text=True,
                         timeout=60).stdout
    assert re.findall(r"^(?:not )?ok \d+ (\S+)", out, re.M) == VARIANT_NAMES
    listed = subprocess.run([str(tmp_path / "v"), "-l"], capture_output=True, text=True,
                            timeout=60).stderr
    assert _listed(listed) == VARIANT_NAMES
    one = subprocess.run([str(tmp_path / "v"), *selection.guest_args(("fx.two.beta",))],
                         capture_output=True, text=True, timeout=60).stdout
    assert "1..1" in one.splitlines()
    assert re.findall(r"RUN\s+(\S+) \.\.\.", one) == ["fx.two.beta"]


def test_check_lists_the_known_names_of_an_unknown_case():
    with pytest.raises(ConfigError) as e:
        selection.check(["smoke:global.nosuch"], GUEST_TESTS)
    assert "smoke has no test case 'global.nosuch'" in str(e.value)
    assert "child_memcg.takes_a_process" in str(e.value)
    assert selection.check(["smoke:child_memcg.takes_a_process", "test_kmem"], GUEST_TESTS) == {
        "smoke": ("child_memcg.takes_a_process",), "test_kmem": ()}


def test_check_refuses_cases_of_upstream_selftests():
    with pytest.raises(ConfigError) as e:
        selection.check(["test_kmem:test_kmem_basic"], GUEST_TESTS)
    msg = str(e.value)
    assert "run whole: --tests test_kmem" in msg and "file_charge" in msg


def test_cmdline_carries_the_cases_of_each_program():
    line = qemu.kernel_cmdline(X86_64.qemu, ["smoke", "file_charge"], 60, [],
                               cases={"file_charge": ("charge.a", "over_limit.b")})
    assert "harness.tests=smoke,file_charge:charge.a:over_limit.b " in line
    assert "harness.tests=smoke,file_charge " in qemu.kernel_cmdline(
        X86_64.qemu, ["smoke", "file_charge"], 60, [])


def _guest_loop() -> str:
    """The test-running part of guest_init.sh, as it is."""
    text = INIT.read_text()
    start = text.index("set -o pipefail")
    return text[start:text.index("# A kmemleak", start)]


@pytest.mark.skipif(not Path("/bin/busybox").exists(), reason="no busybox (install-deps.sh)")
def test_guest_init_passes_the_cases_to_the_program(tmp_path):
    """guest_init.sh's own loop under busybox sh, with /tests and /mnt/scratch moved."""
    bindir = tmp_path / "bin"
    bindir.mkdir()
    subprocess.run(["/bin/busybox", "--install", "-s", str(bindir)], check=True)
    tests = tmp_path / "tests"
    tests.mkdir()
    for prog in ("file_charge", "smoke"):
        (tests / prog).write_text('#!/bin/busybox sh\necho "argv: $*"\n')
        (tests / prog).chmod(0o755)
    loop = (_guest_loop().replace("/tests/", f"{tests}/")
            .replace("/mnt/scratch/", f"{tmp_path}/scratch/"))
    script = ("tests='file_charge:charge.a:over_limit.b smoke'\nper_test=60\n" + loop)
    out = subprocess.run(["/bin/busybox", "sh", "-c", script], capture_output=True, text=True,
                         timeout=60, env={**os.environ, "PATH": str(bindir)}).stdout
    lines = out.splitlines()
    assert "  argv: -r charge.a -r over_limit.b" in lines
    assert "  argv: " in lines  # smoke: no arguments, every case
    assert "  # Subtest: file_charge" in lines and "ok 1 file_charge" in lines
    assert "ok 2 smoke" in lines and "1..2" in lines
    assert (tmp_path / "scratch" / "file_charge").is_dir()


def test_ssh_command_passes_the_cases():
    cmd = session.test_command("file_charge", 300, ("charge.a", "over_limit.b"))
    assert "timeout -s KILL 300 /tests/file_charge -r charge.a -r over_limit.b 2>&1" in cmd
    assert session.test_command("smoke", 300).endswith("/tests/smoke 2>&1; exit $?")


def test_run_selects_programs_and_cases(tmp_path):
    (tmp_path / "tests").mkdir()
    for p in ("smoke", "file_charge", "bench_open"):
        (tmp_path / "tests" / p).write_text("")
    req = run.Request(profile=Profile(tests=["file_charge:charge.covers_pipes", "smoke"]))
    assert run.selected_tests(req, tmp_path) == ["file_charge", "smoke"]
    assert run.selected_cases(req) == {"file_charge": ("charge.covers_pipes",), "smoke": ()}


def test_unknown_case_fails_before_any_lock_build_or_boot(tmp_path, monkeypatch, capsys):
    cache = tmp_path / "cache"
    monkeypatch.setenv("HARNESS_CACHE", str(cache))
    for command in ("test", "build-and-test", "patchcheck"):
        code = main([command, "--tests", "file_charge:charge.nosuch",
                     "--results-dir", str(tmp_path / "results")])
        assert code == 2
        err = capsys.readouterr().err
        assert "file_charge has no test case 'charge.nosuch'" in err
        assert "charge.failed_open_leaves_no_charge" in err
    assert not cache.exists() and not (tmp_path / "results").exists()


def test_bisect_runs_only_the_named_case_and_checks_it_first():
    req = run.Request(profile=Profile())
    breq = bisect.BisectRequest("base", "series",
                                test="file_charge:charge.failed_open_leaves_no_charge")
    jd = bisect.make_judge(req, breq)
    assert jd.tests == ["file_charge"] and jd.case == "charge.failed_open_leaves_no_charge"
    sreq = run.Request(profile=bisect.step_profile(req, breq))
    assert run.selected_cases(sreq) == {"file_charge": ("charge.failed_open_leaves_no_charge",)}
    with pytest.raises(ConfigError, match="charge.covers_pipes"):
        bisect.step_profile(req, bisect.BisectRequest("base", "series", test="file_charge:no"))
    # An upstream selftest runs whole; the step judges the one case.
    breq = bisect.BisectRequest("base", "series", test="test_kmem:test_kmem_basic")
    assert bisect.step_profile(req, breq).tests == ["test_kmem"]
    assert bisect.make_judge(req, breq).case == "test_kmem_basic"
    assert bisect.step_profile(req, bisect.BisectRequest("base", "series")) is req.profile


def test_step_keeps_the_requests_case_selection(tmp_path, monkeypatch):
    """boot_and_judge narrows the profile to the judged programs, but keeps
    the cases bisect selected of them."""
    seen = {}

    def stop(req, *a, **k):
        seen["tests"] = list(req.profile.tests)
        raise ConfigError("stop")

    monkeypatch.setattr(run, "prepare_rootfs", lambda *a: tmp_path)
    monkeypatch.setattr(run, "selected_tests", stop)
    req = run.Request(profile=Profile(tests=["file_charge:charge.covers_pipes"]))
    with pytest.raises(ConfigError):
        step.boot_and_judge(req, None, None, step.Judge(["file_charge"]), step.StepTimes())
    assert seen["tests"] == ["file_charge:charge.covers_pipes"]
    req = run.Request(profile=Profile(tests=["smoke"]))
    with pytest.raises(ConfigError):
        step.boot_and_judge(req, None, None, step.Judge(["file_charge"]), step.StepTimes())
    assert seen["tests"] == ["file_charge"]


def test_preflight_names_check_reads_both_spellings_of_a_case():
    run.check_test_names(["smoke", "file_charge/charge.a", "file_charge:charge.b"],
                         ["smoke", "file_charge"])
    with pytest.raises(ConfigError, match=r"unknown guest tests: nope \(available: smoke\)"):
        run.check_test_names(["nope/x"], ["smoke"])
