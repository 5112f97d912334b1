"""Tests for harness.junit and harness.results_json."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from pathlib import Path

from harness.junit import to_junit
from harness.ktap import Status, TestResult, parse
from harness.results_json import overall_status, to_json
from harness.splat import Splat, find_splats

FIXTURES = Path(__file__).parent / "fixtures"


def load(name: str) -> list[str]:
    return (FIXTURES / name).read_text().splitlines()


def junit_tree(result: TestResult, splats: list[Splat]) -> ET.Element:
    text = to_junit(result, "harness.series", splats)
    assert text.startswith('<?xml version="1.0" encoding="UTF-8"?>')
    return ET.fromstring(text.split("\n", 1)[1])


def cases(root: ET.Element) -> dict[tuple[str, str], ET.Element]:
    return {(c.get("classname", ""), c.get("name", "")): c for c in root.iter("testcase")}


def test_junit_statuses_map_to_elements() -> None:
    root = junit_tree(parse(load("guest_kselftest.log") + load("directives.log")), [])
    c = cases(root)
    enomem = c[("guest/file_charge", "file_charge.over_limit_enomem")]
    failure = enomem.find("failure")
    assert failure is not None and failure.get("type") == "FAIL"
    assert "file_charge.c:88:over_limit_enomem" in (failure.text or "")
    skipped = c[("guest/file_charge", "io.uring_charge")].find("skipped")
    assert skipped is not None and skipped.get("message") == "no io_uring"
    assert c[("guest", "needs_memcg")].find("skipped") is not None
    passed = c[("guest/file_charge", "file_charge.basic")]
    assert passed.find("failure") is None and passed.find("error") is None
    xfail = c[("guest/file_charge", "io.known_broken")]
    assert xfail.find("failure") is None and xfail.find("skipped") is None
    timeout = c[("guest-2", "slow")].find("error")
    assert timeout is not None and timeout.get("type") == "TIMEOUT"
    assert c[("guest-2", "test 8")].find("error") is not None
    suite = root.find("testsuite")
    assert suite is not None and suite.get("name") == "harness.series"
    assert suite.get("tests") == str(len(c))
    assert suite.get("failures") == "2"  # over_limit_enomem, failing (TODO is not one)
    assert suite.get("errors") == "2"  # TIMEOUT, ERROR


def test_junit_crashed_and_splats() -> None:
    lines = load("truncated_mid_subtest.log")
    result = parse(lines)
    splats = find_splats(lines) + find_splats(load("splat_lockdep.log"))
    root = junit_tree(result, splats)
    c = cases(root)
    crashed = c[("guest/test 1 (never reported)", "test 2 (never reported)")].find("error")
    assert crashed is not None and crashed.get("type") == "CRASHED"
    assert "NULL pointer" in (crashed.text or "")
    bug = c[("kernel", "kernel splat: bug")].find("failure")
    assert bug is not None and bug.get("type") == "splat:bug"
    assert "BUG: kernel NULL pointer dereference" in (bug.get("message") or "")
    assert "#PF: supervisor read access" in (bug.text or "")
    assert ("kernel", "kernel splat: lockdep") in c
    assert ("kernel", "kernel splat: lockdep #2") in c


def test_junit_survives_control_characters() -> None:
    result = parse(["TAP version 13", "1..1", "# bad \x01\x02 bytes \ufffe", "not ok 1 x\x7f"])
    splat = Splat(kind="oops", title="Oops: \x00", lines=["Oops: \x00", "\x1b junk"])
    root = junit_tree(result, [splat])
    assert len(list(root.iter("testcase"))) == 2


def test_junit_empty_tree() -> None:
    root = junit_tree(parse([]), [])
    assert root.get("tests") == "0"


def test_json_document_shape() -> None:
    lines = load("kunit_boot.log") + load("guest_kselftest.log")
    data = to_json(parse(lines), [], {"kernel": "series", "arch": "x86_64"})
    json.dumps(data)  # plain JSON-serialisable
    assert data["metadata"] == {"kernel": "series", "arch": "x86_64"}
    assert data["status"] == "FAIL"
    assert set(data["counts"]) == {s.value for s in Status}
    assert data["counts"]["PASS"] == 7 and data["counts"]["FAIL"] == 3
    names = [t["name"] for t in data["tests"]]
    assert names[0] == "kernel/example/example_simple_test"
    assert "guest/file_charge/io.uring_charge" in names
    uring = next(t for t in data["tests"] if t["name"] == "guest/file_charge/io.uring_charge")
    assert uring == {
        "name": "guest/file_charge/io.uring_charge",
        "status": "SKIP",
        "directive": "SKIP no io_uring",
        "reason": "no io_uring",
        "log": [
            "  #  RUN           io.uring_charge ...",
            "  #      SKIP      no io_uring",
            "  #            OK  io.uring_charge",
        ],
    }
    assert data["splats"] == []


def test_json_splats_and_overall_status() -> None:
    passing = parse(["KTAP version 1", "1..1", "ok 1 a"])
    lines = load("splat_warning.log")
    splats = find_splats(lines)
    data = to_json(passing, splats, {})
    assert data["status"] == "FAIL"
    (s,) = data["splats"]
    assert s["kind"] == "warning" and s["line_number"] == 2
    assert s["title"].startswith("WARNING: CPU: 1 PID: 87")
    assert s["lines"][-1].startswith("---[ end trace")
    json.dumps(data)


def test_overall_status_rules() -> None:
    def doc(*results: str) -> TestResult:
        n = len(results)
        return parse(
            ["KTAP version 1", f"1..{n}"] + [f"{r} {i + 1} t{i}" for i, r in enumerate(results)]
        )

    assert overall_status(doc("ok"), []) == "PASS"
    assert overall_status(doc("ok", "not ok"), []) == "FAIL"
    skipped = parse(["KTAP version 1", "1..2", "ok 1 a # SKIP x", "ok 2 b # SKIP y"])
    assert overall_status(skipped, []) == "SKIP"
    mixed = parse(["KTAP version 1", "1..2", "ok 1 a # SKIP x", "ok 2 b"])
    assert overall_status(mixed, []) == "PASS"
    xfail = parse(["KTAP version 1", "1..1", "ok 1 a # XFAIL known"])
    assert overall_status(xfail, []) == "PASS"
    crashed = parse(["KTAP version 1", "1..2", "ok 1 a"])
    assert overall_status(crashed, []) == "FAIL"
    assert overall_status(parse([]), []) == "NO_TESTS"
    assert overall_status(parse([]), find_splats(["UBSAN: x in a.c:1:1"])) == "FAIL"
