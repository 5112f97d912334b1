"""Tests for harness.splat: headline wording of Linux 6.12, extent, streaming."""

from __future__ import annotations

import random
from pathlib import Path

import pytest

from harness.splat import KINDS, MAX_SPLAT_LINES, Splat, SplatDetector, classify, find_splats

FIXTURES = Path(__file__).parent / "fixtures"

# Data-driven: fixture -> kinds of the splats it contains, in order.  To add a
# captured console log, drop it in tests/fixtures/ and add one line here.
EXPECTED_KINDS: dict[str, list[str]] = {
    "clean_boot.log": [],
    # Captured from our own guests (harness test, Debian 6.12.117, TCG).
    "console-sysrq-panic-6.12.117.log": ["panic"],
    "console-vanilla-all-6.12.117.log": [],
    "console-series-all-6.12.117.log": [],
    "console-series-v3-all-6.12.118.log": [],
    "console-debug-series-all-6.12.117.log": [],
    # console-series-all with splat_warning.log inserted inside charge.covers_pipes
    "console-series-splat-in-case-6.12.117.log": ["warning"],
    "bench_open_console.log": [],
    "bench_open_at_limit_console.log": [],
    "kunit_boot.log": [],
    "guest_kselftest.log": [],
    "splat_warning.log": ["warning"],
    "splat_null_deref.log": ["bug", "panic"],
    "splat_kernel_bug.log": ["bug", "panic"],
    "splat_kasan.log": ["kasan"],
    "splat_gpf_kasan.log": ["general_protection"],
    "splat_lockdep.log": ["lockdep", "lockdep"],
    "splat_hung_task.log": ["hung_task"],
    "splat_soft_lockup.log": ["soft_lockup"],
    "splat_rcu_stall.log": ["rcu_stall", "rcu_stall"],
    "splat_kmemleak.log": ["kmemleak"],
    "splat_ubsan.log": ["ubsan"],
    "splat_kfence.log": ["kfence"],
    "splat_sleeping_bug.log": ["bug"],
    "truncated_mid_subtest.log": ["bug"],
}


def load(name: str) -> list[str]:
    return (FIXTURES / name).read_text(errors="replace").splitlines()


@pytest.mark.parametrize("fixture", sorted(EXPECTED_KINDS))
def test_fixture_kinds(fixture: str) -> None:
    splats = find_splats(load(fixture))
    assert [s.kind for s in splats] == EXPECTED_KINDS[fixture]
    for s in splats:
        assert s.kind in KINDS
        assert s.lines[0] == s.title
        assert 1 <= len(s.lines) <= MAX_SPLAT_LINES


def test_every_fixture_is_listed() -> None:
    # A new fixture (e.g. a captured console-*.log) must declare its splats.
    names = {p.name for p in FIXTURES.glob("*.log")}
    ktap_only = {"directives.log", "garbage.log", "nested_2space.log", "plan_short.log"}
    assert names - ktap_only - set(EXPECTED_KINDS) == set()


def _one(fixture: str) -> Splat:
    splats = find_splats(load(fixture))
    assert splats
    return splats[0]


def test_warning_extent_and_position() -> None:
    s = _one("splat_warning.log")
    assert s.line_number == 2
    assert s.title.startswith("WARNING: CPU: 1 PID: 87 at mm/memcontrol.c:3412")
    assert s.lines[-1] == "---[ end trace 0000000000000000 ]---"
    assert not any("random: crng" in line for line in s.lines)


def test_null_deref_absorbs_its_oops() -> None:
    bug, panic = find_splats(load("splat_null_deref.log"))
    assert bug.title.startswith("BUG: kernel NULL pointer dereference")
    assert "Oops: Oops: 0000 [#1] PREEMPT SMP NOPTI" in bug.lines
    assert bug.lines[-1].startswith("---[ end trace")  # not cut at </TASK>
    assert panic.title == "Kernel panic - not syncing: Fatal exception"
    assert panic.lines[-1].startswith("---[ end Kernel panic")


def test_kasan_report_runs_to_closing_ruler() -> None:
    s = _one("splat_kasan.log")
    assert s.line_number == 1
    assert s.title == "BUG: KASAN: slab-use-after-free in memcg_file_uncharge+0x3c/0x60"
    assert "Memory state around the buggy address:" in s.lines
    assert s.lines[-1].startswith("=====")
    assert "" in s.lines  # KASAN's blank separator lines don't end the report


def test_gpf_absorbs_kasan_range_line() -> None:
    s = _one("splat_gpf_kasan.log")
    assert s.kind == "general_protection"
    assert s.lines[1].startswith("KASAN: null-ptr-deref in range")


def test_no_end_marker_kinds_stop_after_stack_dump() -> None:
    lockdep = find_splats(load("splat_lockdep.log"))[0]
    assert lockdep.lines[-1].strip() == "</TASK>"
    assert not any("EXT4-fs" in line for line in lockdep.lines)
    hung = _one("splat_hung_task.log")
    assert hung.lines[-1].strip() == "</TASK>"
    soft = _one("splat_soft_lockup.log")
    assert soft.lines[-1].strip() == "</TASK>" and "</IRQ>" in [x.strip() for x in soft.lines]


def test_kmemleak_groups_objects_and_stops_at_unrelated_line() -> None:
    s = _one("splat_kmemleak.log")
    assert len(s.lines) == 9
    assert s.lines[-1].startswith("kmemleak: 2 new suspected memory leaks")


@pytest.mark.parametrize(
    ("message", "kind"),
    [
        ("BUG: KASAN: slab-out-of-bounds in foo+0x1/0x2", "kasan"),
        ("BUG: KFENCE: out-of-bounds read in foo+0x1/0x2", "kfence"),
        ("BUG: kernel NULL pointer dereference, address: 0000000000000000", "bug"),
        ("BUG: unable to handle page fault for address: ffffffffffffffe8", "bug"),
        ("BUG: sleeping function called from invalid context at mm/slab.h:1", "bug"),
        ("BUG: scheduling while atomic: swapper/0/1/0x00000002", "bug"),
        ("BUG kmalloc-64 (Not tainted): Poison overwritten", "bug"),
        ("kernel BUG at mm/filemap.c:1555!", "bug"),
        ("BUG: soft lockup - CPU#1 stuck for 26s! [a.out:77]", "soft_lockup"),
        ("watchdog: BUG: soft lockup - CPU#1 stuck for 26s! [a.out:77]", "soft_lockup"),
        ("watchdog: Watchdog detected hard LOCKUP on cpu 1", "soft_lockup"),
        ("Oops: Oops: 0002 [#1] PREEMPT SMP NOPTI", "oops"),
        ("Oops: invalid opcode: 0000 [#1] PREEMPT SMP", "oops"),
        ("Oops: general protection fault, maybe for address 0x1: 0000 [#1]", "general_protection"),
        ("Oops: segment-related general protection fault: 0010 [#1]", "general_protection"),
        ("general protection fault: 0000 [#1] SMP", "general_protection"),
        ("Kernel panic - not syncing: Attempted to kill init! exitcode=0x00000000", "panic"),
        ("WARNING: CPU: 0 PID: 1 at kernel/foo.c:12 foo+0x5/0x10", "warning"),
        ("WARNING: CPU: 0 PID: 1 at foo+0x5/0x10", "warning"),
        ("WARNING: possible circular locking dependency detected", "lockdep"),
        ("WARNING: possible recursive locking detected", "lockdep"),
        ("WARNING: inconsistent lock state", "lockdep"),
        ("WARNING: suspicious RCU usage", "lockdep"),
        ("WARNING: HARDIRQ-safe -> HARDIRQ-unsafe lock order detected", "lockdep"),
        ("WARNING: bad unlock balance detected!", "lockdep"),
        ("WARNING: kworker/0:1/12 still has locks held!", "lockdep"),
        ("[ BUG: Invalid wait context ]", "lockdep"),
        ("BUG: MAX_LOCKDEP_KEYS too low!", "lockdep"),
        ("INFO: task kworker/u4:2:45 blocked for more than 122 seconds.", "hung_task"),
        ("rcu: INFO: rcu_sched self-detected stall on CPU", "rcu_stall"),
        ("rcu: INFO: rcu_preempt detected stalls on CPUs/tasks:", "rcu_stall"),
        ("rcu: INFO: rcu_preempt detected expedited stalls on CPUs/tasks: {", "rcu_stall"),
        ("UBSAN: shift-out-of-bounds in mm/x.c:1:2", "ubsan"),
        ("kmemleak: 3 new suspected memory leaks (see /sys/kernel/debug/kmemleak)", "kmemleak"),
        ("kmemleak: 1 new suspected memory leak (see /sys/kernel/debug/kmemleak)", "kmemleak"),
        ("kmemleak: unreferenced object 0xffff888003a1c000 (size 64):", "kmemleak"),
    ],
)
def test_headlines(message: str, kind: str) -> None:
    assert classify(message) == kind
    assert [s.kind for s in find_splats([f"[   12.345678] {message}"])] == [kind]


@pytest.mark.parametrize(
    "message",
    [
        "rcu: Hierarchical RCU implementation.",
        "rcu: \tRCU event tracing is enabled.",
        "RCU Tasks: Setting shift to 1 and lim to 1 rcu_task_cb_adjust=1.",
        "ok 3 warning_test",
        "    ok 1 bug_on_warning_test",
        "    # warning_test: BUG: a test's own words",
        "# WARNING: guest diagnostic",
        "kmemleak: Kernel memory leak detector initialized (mem pool available: 15984)",
        "kfence: initialized - using 2097152 bytes for 255 objects",
        "traps: a.out[1] general protection fault ip:401000 sp:7ffd0 error:0 in a.out",
        "watchdog: Hard watchdog permanently disabled",
        "Lock dependency validator: Copyright (c) 2006 Red Hat, Inc., Ingo Molnar",
        "WARNING: this is not a kernel warning",
        "INFO: lockdep is turned off.",
        "---[ end trace 0000000000000000 ]---",
    ],
)
def test_ordinary_lines_do_not_match(message: str) -> None:
    assert classify(message) is None
    assert find_splats([f"[    0.100000] {message}"]) == []


def test_untimestamped_headline_ignored_once_log_has_timestamps() -> None:
    lines = ["[    0.000000] Linux version 6.12.0", "BUG: printed by a guest program"]
    assert find_splats(lines) == []
    # Without any printk timestamps (printk.time=0) headlines are still found.
    assert [s.kind for s in find_splats(["Linux version 6.12.0", "BUG: real"])] == ["bug"]
    forced = SplatDetector(require_timestamp=True)
    assert forced.feed("BUG: no timestamp") is None


def test_headline_in_the_middle_of_a_guest_line() -> None:
    lines = [
        "[    0.000000] Linux version 6.12.0",
        "  # RUN  t.x ...[    5.000000] WARNING: CPU: 0 PID: 9 at mm/x.c:1 f+0x1/0x2",
        "[    5.000001] Modules linked in:",
        "  guest output interleaved",
        "[    5.000002] ---[ end trace 0000000000000000 ]---",
    ]
    (s,) = find_splats(lines)
    assert s.kind == "warning" and s.line_number == 1
    assert s.title.startswith("WARNING: CPU: 0 PID: 9")
    assert s.lines == [s.title, "Modules linked in:", "---[ end trace 0000000000000000 ]---"]


def test_streaming_detector_reports_on_headline() -> None:
    det = SplatDetector()
    lines = load("splat_null_deref.log")
    seen = [(i, det.feed(line)) for i, line in enumerate(lines)]
    reported = [(i, s.kind) for i, s in seen if s is not None]
    assert reported == [(0, "bug"), (17, "panic")]
    assert [s.kind for s in det.splats] == ["bug", "panic"]
    assert det.current is None  # panic report closed by its end marker
    # Same result as the whole-log scan.
    assert [(s.kind, s.lines) for s in det.splats] == [
        (s.kind, s.lines) for s in find_splats(lines)
    ]


def test_splat_keeps_growing_after_feed_returns_it() -> None:
    det = SplatDetector()
    s = det.feed("[    1.0] WARNING: CPU: 0 PID: 1 at a.c:1 f+0x0/0x1")
    assert s is not None and s.lines == [s.title]
    det.feed("[    1.1] Modules linked in:")
    assert det.current is s and len(s.lines) == 2


def test_max_lines_bound() -> None:
    lines = ["[    1.0] BUG: kernel NULL pointer dereference, address: 0"]
    lines += [f"[    1.1]  frame_{i}+0x1/0x2" for i in range(500)]
    (s,) = find_splats(lines)
    assert len(s.lines) == MAX_SPLAT_LINES


def test_splat_text_accepts_a_single_string() -> None:
    assert [s.kind for s in find_splats("x\n[  1.0] UBSAN: foo in a.c:1:1\n")] == ["ubsan"]


@pytest.mark.parametrize("seed", range(30))
def test_fuzz_never_raises(seed: int) -> None:
    rng = random.Random(seed)
    pool = [line for p in sorted(FIXTURES.glob("*.log")) for line in load(p.name)]
    lines = [rng.choice(pool)[: rng.randint(0, 120)] for _ in range(300)]
    lines += [bytes(rng.randrange(256) for _ in range(40)).decode("latin-1") for _ in range(50)]
    rng.shuffle(lines)
    for s in find_splats(lines):
        assert s.kind in KINDS and len(s.lines) <= MAX_SPLAT_LINES


def test_a_line_the_detector_fails_on_is_an_error_not_a_clean_log(monkeypatch) -> None:
    import harness.splat as splat_mod

    real = splat_mod.classify

    def broken(message: str) -> str | None:
        if message.startswith("BUG: "):
            raise RuntimeError("rule bug")
        return real(message)

    monkeypatch.setattr(splat_mod, "classify", broken)
    lines = ["[    1.0] Linux version 6.12", "[    1.1] BUG: kernel NULL pointer dereference"]
    det = SplatDetector()
    assert [det.feed(line) for line in lines] == [None, None]  # a stream goes on ...
    assert det.errors == ["console line 2: RuntimeError('rule bug')"]  # ... but says so
    assert splat_mod.scan(lines) == ([], det.errors)
    with pytest.raises(splat_mod.DetectorError, match="console line 2") as e:
        find_splats(lines)
    assert e.value.exit_code == 4
