"""report.py: a judged boot's summary, JUnit and results.json (judging: test_judge.py)."""

from conftest import write_report as write

from harness import expectations
from harness import judge as judging
from harness.boot import BootOutcome
from harness.errors import EXIT_INFRA, EXIT_OK, EXIT_TEST_FAILURE
from harness.ktap import Status
from harness.results import RunRecord

TABLE = expectations.parse("""
file_charge:
  over_limit.open_fails_with_enomem: {vanilla: {fail: "oom_kill 0 -> 1"}, series: pass}
""", "e.yaml")

GUEST = """\
KTAP version 1
1..2
  # Subtest: smoke
  TAP version 13
  1..1
  ok 1 cgroup.memory_controller_available
ok 1 smoke
  # Subtest: file_charge
  TAP version 13
  1..2
  ok 1 charge.follows_open_files
  # file_charge.c:1067:open_fails_with_enomem:opener killed by signal 9 (OOM kill?), oom_kill 0 -> 1
  not ok 2 over_limit.open_fails_with_enomem
not ok 2 file_charge # exit code 1
"""


def _guest(kernel: str, text: str = GUEST, tests=("smoke", "file_charge")):
    lines = ["harness: running 2 guest test programs", *text.splitlines(),
             "harness: guest tests done"]
    v = judging.judge(judging.read(lines), "done", list(tests), TABLE,
                      judging.Policy(kernels=(kernel,)))
    return v.root.children[-1], len(v.mismatches)


def _status(tree, prog, test):
    prog_node = next(c for c in tree.children if c.name == prog)
    return next(c for c in prog_node.children if c.name == test).status


def test_declared_failure_on_vanilla_is_not_a_mismatch():
    tree, mismatches = _guest("vanilla")
    assert mismatches == 0
    assert _status(tree, "file_charge", "over_limit.open_fails_with_enomem") == Status.XFAIL


def test_same_failure_on_the_series_is_a_mismatch():
    tree, mismatches = _guest("series")
    assert mismatches == 1
    assert _status(tree, "file_charge", "over_limit.open_fails_with_enomem") == Status.FAIL


def test_declared_failure_that_passes_is_a_mismatch():
    text = GUEST.replace("  not ok 2 over_limit", "  ok 2 over_limit")
    tree, mismatches = _guest("vanilla", text)
    assert mismatches == 1
    assert _status(tree, "file_charge", "over_limit.open_fails_with_enomem") == Status.FAIL


def test_program_that_never_reported_is_crashed():
    tree, mismatches = _guest("series", GUEST, ("smoke", "file_charge", "file_stress"))
    stress = next(c for c in tree.children if c.name == "file_stress")
    assert stress.status == Status.CRASHED and mismatches >= 2


def test_cut_off_program_has_crashed_tests():
    cut = GUEST.split("  ok 1 charge.follows_open_files")[0]
    tree, mismatches = _guest("series", cut)
    fc = next(c for c in tree.children if c.name == "file_charge")
    assert any(leaf.status == Status.CRASHED for leaf in fc.children) or fc.status == (
        Status.CRASHED)
    assert mismatches >= 1


def test_split_console_finds_guest_start():
    lines = ["[    0.1] Linux version 6.12", "harness: running 2 guest test programs", "x"]
    assert judging.split_console(lines) == (lines[:1], ["x"])
    assert judging.split_console(lines[:1]) == (lines[:1], None)


def _outcome(end: str, lines: list[str]) -> BootOutcome:
    return BootOutcome(accel="tcg", end=end, seconds=3.0, first_output=0.5, lines=lines)


def test_write_exit_codes(tmp_path):
    exp: expectations.Table = {}
    ok = ["[    0.1] Linux version", "harness: running 1 guest test programs",
          *"KTAP version 1\n1..1\n  # Subtest: smoke\n  1..1\n  ok 1 a\nok 1 smoke".split("\n"),
          "harness: guest tests done"]
    rec = RunRecord(tmp_path / "r", "t")
    assert write(rec, _outcome("done", ok), ["smoke"], "series", exp) == EXIT_OK
    assert (rec.dir / "junit.xml").exists() and rec.data["status"] == "pass"

    rec = RunRecord(tmp_path / "r", "t")
    assert write(rec, _outcome("no_output", []), ["smoke"], "series", exp) == EXIT_INFRA

    warn = "[    2.0] WARNING: CPU: 0 PID: 1 at fs/file.c:10 fd_install+0x1/0x2"
    splat = ok[:2] + [warn] + ok[2:]
    rec = RunRecord(tmp_path / "r", "t")
    assert write(rec, _outcome("done", splat), ["smoke"], "series", exp) == EXIT_TEST_FAILURE
    assert rec.data["splats"][0]["kind"] == "warning"


def test_captured_series_console_is_judged_as_it_was(tmp_path):
    """A real console log of series v2 (all guest tests, KUnit at boot), judged
    by the declarations of v2."""
    from conftest import FIXTURES, V2_EXPECTATIONS

    lines = (FIXTURES / "console-series-all-6.12.117.log").read_text().splitlines()
    lines = [ln for ln in lines if not ln.startswith("# qemu")]
    tests = ["file_charge", "file_concurrency", "file_stress", "smoke", "test_kmem",
             "test_memcontrol"]
    shipped = expectations.load(V2_EXPECTATIONS, "x86_64")
    rec = RunRecord(tmp_path, "t")
    code = write(rec, _outcome("done", lines), tests, "series", shipped)
    assert code == EXIT_OK, (rec.dir / "summary.txt").read_text()
    names = {t["name"]: t["status"] for t in rec.data["tests"]}
    assert any(n.startswith("kunit/page_counter/") for n in names), names
    assert names["guest/file_charge/over_limit.open_fails_with_enomem"] == "PASS"
    # The same log judged as if it came from vanilla: the declared vanilla
    # failures did not happen, so the run fails.
    rec = RunRecord(tmp_path, "v")
    assert write(rec, _outcome("done", lines), tests, "vanilla", shipped) == EXIT_TEST_FAILURE


def test_captured_v3_console_matches_the_shipped_declarations(tmp_path):
    """A real console of the series as shipped (v3, every guest program) passes
    the shipped expectations; the same console is a failure for v2's, which
    declared the file_charge_scope cases v2 got wrong as failures."""
    from conftest import FIXTURES, ROOT, V2_EXPECTATIONS

    lines = (FIXTURES / "console-series-v3-all-6.12.118.log").read_text().splitlines()
    lines = [ln for ln in lines if not ln.startswith("# qemu")]
    tests = ["file_charge", "file_charge_scope", "file_concurrency", "file_stress", "smoke",
             "test_kmem", "test_memcontrol"]
    shipped = expectations.load(ROOT / "guest-tests" / "expectations.yaml", "x86_64")
    rec = RunRecord(tmp_path / "v3", "t")
    code = write(rec, _outcome("done", lines), tests, "series", shipped)
    assert code == EXIT_OK, (rec.dir / "summary.txt").read_text()
    names = {t["name"]: t["status"] for t in rec.data["tests"]}
    assert names["guest/file_charge_scope/at_limit_cache.successful_opens_cause_no_reclaim"] \
        == "PASS"
    rec = RunRecord(tmp_path / "v2", "t")
    v2 = expectations.load(V2_EXPECTATIONS, "x86_64")
    assert write(rec, _outcome("done", lines), tests, "series", v2) == EXIT_TEST_FAILURE


def test_unexpected_failure_shows_what_the_test_printed(tmp_path):
    """The values an upstream selftest prints before "not ok" reach the summary."""
    exp: expectations.Table = {}
    lines = ["[    0.1] Linux version", "harness: running 1 guest test programs",
             "KTAP version 1", "1..1", "  # Subtest: test_kmem", "  1..1",
             "  memory.current = 2097152", "  anon + file + kernel + sock = 1048576",
             "  not ok 1 test_kmem_memcg_deletion", "not ok 1 test_kmem # exit code 1",
             "harness: guest tests done"]
    rec = RunRecord(tmp_path / "r", "t")
    assert write(rec, _outcome("done", lines), ["test_kmem"], "series", exp) == EXIT_TEST_FAILURE
    summary = (rec.dir / "summary.txt").read_text()
    assert "| memory.current = 2097152" in summary
    assert "| anon + file + kernel + sock = 1048576" in summary


def test_declared_failure_output_is_not_repeated(tmp_path):
    exp = expectations.parse("test_kmem:\n  t: {series: {fail: '/^percpu \\d+$/'}}\n", "e.yaml")
    lines = ["harness: running 1 guest test programs", "KTAP version 1", "1..1",
             "  # Subtest: test_kmem", "  1..1", "  percpu 4092288", "  not ok 1 t",
             "not ok 1 test_kmem # exit code 1", "harness: guest tests done"]
    rec = RunRecord(tmp_path / "r", "t")
    assert write(rec, _outcome("done", lines), ["test_kmem"], "series", exp) == EXIT_OK
    summary = (rec.dir / "summary.txt").read_text()
    assert "| percpu 4092288" not in summary
    assert "[XFAIL] t: fails on series as declared" in summary


FLAKY_TABLE = """
test_kmem:
  test_kmem_memcg_deletion: {vanilla: pass, series: pass, flaky: per-CPU stocks}
"""


def _kmem_lines(deletion_ok: bool, basic_ok: bool = True) -> list[str]:
    return ["harness: running 1 guest test programs", "KTAP version 1", "1..1",
            "  # Subtest: test_kmem", "  1..2",
            f"  {'ok' if basic_ok else 'not ok'} 1 test_kmem_basic",
            *([] if deletion_ok else ["  memory.current = 2097152"]),
            f"  {'ok' if deletion_ok else 'not ok'} 2 test_kmem_memcg_deletion",
            f"{'ok' if deletion_ok and basic_ok else 'not ok'} 1 test_kmem",
            "harness: guest tests done"]


def _judged(lines, exp_text=FLAKY_TABLE):
    return judging.judge_boot(_outcome("done", lines), ["test_kmem"],
                              expectations.parse(exp_text, "e.yaml"),
                              judging.Policy(kernels=("series",)))


def test_only_flaky_failures_ask_for_a_retry():
    assert _judged(_kmem_lines(False)).flaky_programs() == ["test_kmem"]
    # Another failure next to it: nothing to retry, the run has failed anyway.
    assert _judged(_kmem_lines(False, basic_ok=False)).flaky_programs() == []
    # Not declared flaky: no retry.
    assert _judged(_kmem_lines(False), "").flaky_programs() == []
    assert _judged(_kmem_lines(True)).flaky_programs() == []


def test_flaky_failure_that_passes_on_retry_passes_and_says_so(tmp_path):
    from harness.report import emit
    first = _judged(_kmem_lines(False))
    judging.absorb_retry(first, _judged(_kmem_lines(True)))
    assert first.code == EXIT_OK and not first.mismatches
    rec = RunRecord(tmp_path / "r", "t")
    assert emit(rec, first, "series") == EXIT_OK
    summary = (rec.dir / "summary.txt").read_text()
    assert "[FLAKY] test_kmem_memcg_deletion: flaky:" in summary
    assert "| memory.current = 2097152" in summary  # the first run's numbers
    assert "1 flaky" in summary
    assert rec.data["flaky"] == ["test_kmem/test_kmem_memcg_deletion"]


def test_flaky_failure_that_fails_again_fails():
    first = _judged(_kmem_lines(False))
    judging.absorb_retry(first, _judged(_kmem_lines(False)))
    assert first.code == EXIT_TEST_FAILURE and len(first.mismatches) == 1


def test_retry_that_breaks_something_else_fails():
    first = _judged(_kmem_lines(False))
    judging.absorb_retry(first, _judged(_kmem_lines(True, basic_ok=False)))
    assert first.code == EXIT_TEST_FAILURE
    assert [m.leaf.name for m in first.mismatches] == ["test_kmem_basic"]
    # A splat during the retry boot fails the run too.
    first = _judged(_kmem_lines(False))
    warn = "[    2.0] WARNING: CPU: 0 PID: 1 at fs/file.c:10 fd_install+0x1/0x2"
    judging.absorb_retry(first, _judged([warn, *_kmem_lines(True)]))
    assert first.code == EXIT_TEST_FAILURE and first.splats
    assert first.splats[0].title.endswith("(in console-retry.log)")


def test_captured_debug_console_is_judged_clean(tmp_path):
    """The debug profile's real console (v2 series, 2 CPUs: KASAN, lockdep,
    kmemleak scan after the tests, OOM reports from test_memcontrol): no splat,
    and the one disagreement is a test declared flaky, which would get its
    retry boot (pipeline.py) rather than fail the run."""
    from conftest import FIXTURES, V2_EXPECTATIONS

    lines = (FIXTURES / "console-debug-series-all-6.12.117.log").read_text().splitlines()
    assert any("KernelAddressSanitizer initialized" in ln for ln in lines)
    assert "harness: kmemleak scan" in lines
    lines = [ln for ln in lines if not ln.startswith("# qemu")]
    tests = ["file_charge", "file_concurrency", "file_stress", "smoke", "test_kmem",
             "test_memcontrol"]
    table = expectations.load(V2_EXPECTATIONS, "x86_64")
    verdict = judging.judge_boot(_outcome("done", lines), tests, table,
                                 judging.Policy(kernels=("series",)))
    assert verdict.splats == []
    assert [(m.program, m.leaf.name) for m in verdict.mismatches] == [
        ("test_memcontrol", "test_memcg_sock")]
    assert verdict.flaky_programs() == ["test_memcontrol"]
