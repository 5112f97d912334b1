"""Tests for harness.ktap: structure, statuses, truncation, and totality."""

from __future__ import annotations

import random
from pathlib import Path

import pytest

from harness.ktap import (
    FAILING,
    SEP,
    Status,
    TestResult,
    aggregate_status,
    counts,
    line_kind,
    parse,
    parse_errors,
    strip_printk_prefix,
    walk,
)

FIXTURES = Path(__file__).parent / "fixtures"


def load(name: str) -> list[str]:
    return (FIXTURES / name).read_text().splitlines()


def leaves(result: TestResult) -> dict[str, Status]:
    return {name: leaf.status for name, leaf in walk(result)}


def find(result: TestResult, path: str) -> TestResult:
    node = result
    for part in path.split(SEP):
        matches = [c for c in node.children if c.name == part]
        assert matches, f"{part!r} not among {[c.name for c in node.children]}"
        node = matches[0]
    return node


# Data-driven: fixture -> every leaf's full name and status (in order).
EXPECTED_LEAVES: dict[str, dict[str, Status]] = {
    "nested_2space.log": {
        "guest/example/test_1": Status.PASS,
        "guest/example/test_2": Status.FAIL,
        "guest/other": Status.PASS,
    },
    "kunit_boot.log": {
        "kernel/example/example_simple_test": Status.PASS,
        "kernel/example/example_skip_test": Status.SKIP,
        "kernel/example/example_fail_test": Status.FAIL,
        "kernel/example/example_params_test/example value 3": Status.PASS,
        "kernel/example/example_params_test/example value 2": Status.PASS,
        "kernel/example/example_params_test/example value 1": Status.PASS,
        "kernel/example/example_params_test/example value 0": Status.SKIP,
        "kernel/warning_test/warning_test_does_not_warn": Status.PASS,
        "kernel/broken_init_suite": Status.FAIL,
        "kernel/all_skipped/a": Status.SKIP,
        "kernel/all_skipped/b": Status.SKIP,
    },
    "guest_kselftest.log": {
        "guest/file_charge/file_charge.basic": Status.PASS,
        "guest/file_charge/file_charge.over_limit_enomem": Status.FAIL,
        "guest/file_charge/io.uring_charge": Status.SKIP,
        "guest/file_charge/io.known_broken": Status.XFAIL,
        "guest/simple/global.nothing": Status.PASS,
        "guest/needs_memcg": Status.SKIP,
    },
    "directives.log": {
        "guest/plain": Status.PASS,
        "guest/failing": Status.FAIL,
        "guest/skipped": Status.SKIP,
        "guest/skipped_not_ok": Status.SKIP,
        "guest/todo": Status.TODO,
        "guest/xfail": Status.XFAIL,
        "guest/slow": Status.TIMEOUT,
        "guest/test 8": Status.ERROR,
        "guest/with hyphen": Status.PASS,
    },
    "plan_short.log": {
        "guest/first": Status.PASS,
        "guest/second": Status.FAIL,
        "guest/third": Status.PASS,
        "guest/test 4 (never reported)": Status.CRASHED,
        "guest/test 5 (never reported)": Status.CRASHED,
    },
    "garbage.log": {
        "guest/first": Status.PASS,
        "guest/second": Status.SKIP,
        "guest/extra beyond plan": Status.PASS,
    },
}


@pytest.mark.parametrize("fixture", sorted(EXPECTED_LEAVES))
def test_fixture_leaves(fixture: str) -> None:
    result = parse(load(fixture))
    got = leaves(result)
    assert list(got.items()) == list(EXPECTED_LEAVES[fixture].items())
    assert not result.log, result.log  # no internal parser errors


@pytest.mark.parametrize("path", sorted(FIXTURES.glob("*.log")), ids=lambda p: p.name)
def test_every_fixture_parses_cleanly(path: Path) -> None:
    # Also covers captured console-*.log files as they are added.
    result = parse(path.read_text(errors="replace").splitlines())
    assert not result.log, result.log
    total = sum(counts(result).values())
    assert total == sum(1 for _ in walk(result)) or not result.children


def test_well_formed_flat() -> None:
    r = parse(["KTAP version 1", "1..2", "ok 1 a", "not ok 2 b"])
    assert [c.name for c in r.children] == ["guest"]
    doc = r.children[0]
    assert doc.expected_count == 2
    assert [(c.name, c.status, c.number) for c in doc.children] == [
        ("a", Status.PASS, 1),
        ("b", Status.FAIL, 2),
    ]
    assert doc.status is Status.FAIL
    assert r.status is Status.FAIL


def test_string_input_is_split_into_lines() -> None:
    assert leaves(parse("TAP version 13\n1..1\nok 1 x\n")) == {"guest/x": Status.PASS}


def test_kunit_boot_details() -> None:
    r = parse(load("kunit_boot.log"))
    doc = find(r, "kernel")
    assert doc.expected_count == 4
    assert doc.status is Status.FAIL
    example = find(r, "kernel/example")
    assert example.status is Status.FAIL and example.number == 1
    assert example.expected_count == 4
    # Suite totals printed at column 0 after the last case stay with the suite.
    assert "# Totals: pass:5 fail:1 skip:2 total:8" in example.log
    fail = find(r, "kernel/example/example_fail_test")
    assert "    Expected 1 + 1 == 3, but" in fail.log
    # An interleaved kernel message lands in the running test's log.
    assert "random: crng init done" in fail.log
    skip = find(r, "kernel/example/example_skip_test")
    assert skip.directive == "SKIP this test should be skipped"
    assert skip.reason == "this test should be skipped"
    # Boot messages outside the document are not attached to any test.
    assert not any("Freeing unused" in line for line in doc.log)
    assert "    # failed to initialize (-12)" in find(r, "kernel/broken_init_suite").log
    assert find(r, "kernel/all_skipped").status is Status.SKIP


def test_kselftest_harness_program() -> None:
    r = parse(load("guest_kselftest.log"))
    prog = find(r, "guest/file_charge")
    assert prog.status is Status.FAIL
    assert prog.reason == "exit code 1"
    assert prog.expected_count == 4
    assert "  # Totals: pass:1 fail:1 xfail:1 xpass:0 skip:1 error:0" in prog.log
    enomem = find(r, "guest/file_charge/file_charge.over_limit_enomem")
    assert "  #          FAIL  file_charge.over_limit_enomem" in enomem.log
    # Kernel line interleaved in guest output, timestamp stripped.
    assert "memfd_create() called without MFD_EXEC or MFD_NOEXEC_SEAL set" in enomem.log
    uring = find(r, "guest/file_charge/io.uring_charge")
    assert (uring.directive, uring.reason) == ("SKIP no io_uring", "no io_uring")
    skipped_prog = find(r, "guest/needs_memcg")
    assert skipped_prog.status is Status.SKIP and skipped_prog.expected_count == 0
    assert not r.log


def test_two_documents_in_one_stream() -> None:
    r = parse(load("kunit_boot.log") + load("guest_kselftest.log"))
    assert [c.name for c in r.children] == ["kernel", "guest"]
    assert find(r, "kernel").expected_count == 4
    assert find(r, "guest").expected_count == 3


def test_same_source_documents_get_suffixes() -> None:
    r = parse(["KTAP version 1", "1..1", "ok 1 a", "KTAP version 1", "1..1", "ok 1 b"])
    assert [c.name for c in r.children] == ["guest", "guest-2"]
    assert leaves(r) == {"guest/a": Status.PASS, "guest-2/b": Status.PASS}


def test_kernel_and_guest_streams_do_not_mix() -> None:
    # A KUnit module loaded by a guest test prints timestamped KTAP in the middle
    # of the guest's own document; both must stay intact.
    lines = [
        "KTAP version 1",
        "1..1",
        "  TAP version 13",
        "  1..2",
        "  ok 1 load_module",
        "[   10.000000] KTAP version 1",
        "[   10.000001] 1..1",
        "[   10.000002]     KTAP version 1",
        "[   10.000003]     # Subtest: mod_suite",
        "[   10.000004]     1..1",
        "[   10.000005]     ok 1 mod_case",
        "[   10.000006] ok 1 mod_suite",
        "  ok 2 check_dmesg",
        "ok 1 prog",
    ]
    r = parse(lines)
    assert [c.name for c in r.children] == ["guest", "kernel"]
    assert leaves(r) == {
        "guest/prog/load_module": Status.PASS,
        "guest/prog/check_dmesg": Status.PASS,
        "kernel/mod_suite/mod_case": Status.PASS,
    }


def test_printk_prefix_variants() -> None:
    assert strip_printk_prefix("[    1.234567] hello") == ("hello", True)
    assert strip_printk_prefix("[    1.234567]     KTAP version 1") == ("    KTAP version 1", True)
    assert strip_printk_prefix("[    1.234567][    T1] x") == ("x", True)
    assert strip_printk_prefix("<6>[    1.234567] x\r\n") == ("x", True)
    assert strip_printk_prefix("<4>x") == ("x", True)
    assert strip_printk_prefix("  ok 1 x") == ("  ok 1 x", False)
    assert strip_printk_prefix("\x1b[0m\tok 1 x") == ("        ok 1 x", False)
    r = parse(
        [
            "<6>[    0.5][    T1] KTAP version 1",
            "<6>[    0.5][    T1] 1..1",
            "<6>[    0.5][    T1] ok 1 x\r",
        ]
    )
    assert leaves(r) == {"kernel/x": Status.PASS}


def test_directive_fields() -> None:
    r = parse(load("directives.log"))
    d = {c.name: c for c in find(r, "guest").children}
    assert (d["failing"].directive, d["failing"].reason) == ("because reasons", "because reasons")
    assert d["slow"].reason == "30 seconds"
    assert d["test 8"].reason == "could not open /dev/foo"
    assert d["with hyphen"].reason == "diagnostic only"
    assert d["todo"].status not in FAILING


def test_unknown_directive_falls_back_to_ok_not_ok() -> None:
    r = parse(["TAP version 13", "1..2", "ok 1 a # XPASS surprise", "not ok 2 b # exit=1"])
    assert leaves(r) == {"guest/a": Status.PASS, "guest/b": Status.FAIL}


def test_tap14_subtest_header_and_four_space_nesting() -> None:
    lines = [
        "TAP version 14",
        "1..1",
        "    # Subtest: suite",
        "    1..2",
        "    ok 1 - one",
        "    ok 2 - two",
        "ok 1 - suite",
    ]
    r = parse(lines)
    assert leaves(r) == {"guest/suite/one": Status.PASS, "guest/suite/two": Status.PASS}


def test_tab_nesting_like_old_kunit() -> None:
    lines = ["TAP version 14", "1..1", "\t# Subtest: s", "\t1..1", "\tok 1 - c", "ok 1 - s"]
    assert leaves(parse(lines)) == {"guest/s/c": Status.PASS}


def test_truncated_mid_subtest() -> None:
    r = parse(load("truncated_mid_subtest.log"))
    doc = find(r, "guest")
    assert doc.status is Status.CRASHED
    prog = doc.children[0]
    assert prog.status is Status.CRASHED
    assert [(c.name, c.status) for c in prog.children] == [
        ("t.one", Status.PASS),
        ("test 2 (never reported)", Status.CRASHED),
        ("test 3 (never reported)", Status.CRASHED),
    ]
    # What was printed after the last result explains the crash.
    assert any("NULL pointer" in line for line in prog.children[1].log)
    assert [c.status for c in doc.children[1:]] == [Status.CRASHED, Status.CRASHED]


def test_subtest_header_names_a_crashed_block() -> None:
    lines = [
        "KTAP version 1",
        "1..1",
        "  # Subtest: prog_a",
        "  TAP version 13",
        "  1..2",
        "  ok 1 x",
    ]
    r = parse(lines)
    prog = find(r, "guest/prog_a")
    assert prog.status is Status.CRASHED
    assert [c.status for c in prog.children] == [Status.PASS, Status.CRASHED]


def test_plan_promising_more_than_reported() -> None:
    r = parse(load("plan_short.log"))
    doc = find(r, "guest")
    assert doc.status is Status.CRASHED
    assert counts(r)[Status.CRASHED] == 2
    assert doc.children[3].log == ["# about to run fourth, which hangs"]


def test_document_with_no_results() -> None:
    assert find(parse(["KTAP version 1", "1..3"]), "guest").status is Status.CRASHED
    assert len(find(parse(["KTAP version 1", "1..3"]), "guest").children) == 3
    assert find(parse(["KTAP version 1"]), "guest").status is Status.CRASHED
    assert find(parse(["KTAP version 1", "1..0"]), "guest").status is Status.NO_TESTS
    skipped = find(parse(["TAP version 13", "1..0 # SKIP no memcg"]), "guest")
    assert (skipped.status, skipped.reason) == (Status.SKIP, "SKIP no memcg")


def test_no_documents() -> None:
    r = parse(["just a kernel log", "ok 3 stray"])
    assert r.children == [] and r.status is Status.NO_TESTS
    assert counts(r) == dict.fromkeys(Status, 0)
    assert parse([]).children == []


def test_parent_keeps_own_status_but_aggregate_sees_children() -> None:
    r = parse(
        ["KTAP version 1", "1..1", "  KTAP version 1", "  1..1", "  not ok 1 child", "ok 1 parent"]
    )
    parent = find(r, "guest/parent")
    assert parent.status is Status.PASS
    assert aggregate_status(parent) is Status.FAIL


def test_headerless_outer_document_is_rerooted() -> None:
    r = parse(["  TAP version 13", "  1..1", "  ok 1 inner", "ok 1 prog"])
    assert leaves(r) == {"guest/prog/inner": Status.PASS}


def test_headerless_subtests_and_missing_parent_line() -> None:
    r = parse(["KTAP version 1", "1..2", "  ok 1 a", "ok 1 p", "  ok 1 b", "  KTAP version 1"])
    got = leaves(r)
    assert got["guest/p/a"] is Status.PASS
    assert got["guest/test 2 (never reported)/b"] is Status.PASS
    assert find(r, "guest").status is Status.CRASHED


def test_counts_and_walk_separator() -> None:
    r = parse(load("guest_kselftest.log"))
    c = counts(r)
    assert c[Status.PASS] == 2 and c[Status.FAIL] == 1 and c[Status.SKIP] == 2
    assert c[Status.XFAIL] == 1
    assert all(SEP in name for name, _ in walk(r))


def test_huge_plan_is_ignored() -> None:
    r = parse(["KTAP version 1", "1..999999999", "ok 1 a"])
    assert leaves(r) == {"guest/a": Status.PASS}


# --- fuzzing: the parser must be total --------------------------------------

_ATOMS = [
    "KTAP version 1",
    "TAP version 13",
    "1..3",
    "1..0 # SKIP x",
    "ok 1 a",
    "not ok 2 b # SKIP",
    "ok 3 c # TIMEOUT",
    "# Subtest: s",
    "# diag",
    "garbage",
    "",
    "Bail out! x",
    "ok",
    "not ok",
    "1..",
    "ok 99999999999999999999 big",
    "# SKIP",
    "[    1.0] ",
    "<6>",
    "\x00\x1b[31m",
]


def _assert_sane(r: TestResult) -> None:
    assert not r.log, r.log
    n = 0
    for name, leaf in walk(r):
        assert isinstance(name, str) and isinstance(leaf.status, Status)
        n += 1
    assert sum(counts(r).values()) <= n


@pytest.mark.parametrize("seed", range(200))
def test_fuzz_structured_garbage(seed: int) -> None:
    rng = random.Random(seed)
    lines = []
    for _ in range(rng.randint(0, 60)):
        atom = rng.choice(_ATOMS)
        prefix = rng.choice(["", "[    1.234567] ", "<6>", "<4>[ 9.1][  T12] "])
        lines.append(prefix + " " * rng.choice([0, 0, 1, 2, 4, 8]) + atom)
    _assert_sane(parse(lines))


@pytest.mark.parametrize("seed", range(100))
def test_fuzz_mutated_fixtures(seed: int) -> None:
    rng = random.Random(seed)
    paths = sorted(FIXTURES.glob("*.log"))
    lines = [line for p in rng.sample(paths, 3) for line in p.read_text().splitlines()]
    for _ in range(rng.randint(1, 30)):
        if not lines:
            break
        op = rng.randrange(4)
        i = rng.randrange(len(lines))
        if op == 0:
            del lines[i]
        elif op == 1:
            lines[i] = " " * rng.randint(0, 9) + lines[i].lstrip()
        elif op == 2:
            lines.insert(i, rng.choice(lines))
        else:
            lines = lines[: i + 1]
    _assert_sane(parse(lines))


@pytest.mark.parametrize("seed", range(50))
def test_fuzz_random_bytes(seed: int) -> None:
    rng = random.Random(seed)
    blob = bytes(rng.randrange(256) for _ in range(rng.randint(0, 4000)))
    text = blob.decode("utf-8", "replace")
    _assert_sane(parse(text.splitlines()))
    _assert_sane(parse([blob]))  # bytes items are tolerated too


def test_a_line_the_parser_fails_on_is_listed_by_parse_errors(monkeypatch) -> None:
    import harness.ktap as ktap_mod

    real = ktap_mod._classify

    def broken(body: str):
        if body == "ok 2 b":
            raise RuntimeError("parser bug")
        return real(body)

    monkeypatch.setattr(ktap_mod, "_classify", broken)
    r = parse(["KTAP version 1", "1..2", "ok 1 a", "ok 2 b"])
    (err,) = parse_errors(r)
    assert "RuntimeError('parser bug') on line 4 'ok 2 b'" == err
    # The result it could not read is not a pass either.
    assert leaves(r)["guest/test 2 (never reported)"] == Status.CRASHED
    assert parse_errors(parse(load("guest_kselftest.log"))) == []


def test_line_kind_names_what_the_parser_sees() -> None:
    assert line_kind("  ok 3 charge.covers_pipes # SKIP x") == (2, "result", "charge.covers_pipes")
    assert line_kind("    ok 10 # SKIP test_memcg_swap_max_peak") == (
        4, "result", "test_memcg_swap_max_peak")
    assert line_kind("  # Subtest: file_charge") == (2, "subtest", "file_charge")
    assert line_kind("KTAP version 1") == (0, "version", "")
    assert line_kind("  #  RUN           charge.covers_pipes ...")[1] == "noise"
