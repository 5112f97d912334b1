"""One JUnit XML for CI systems from the per-cell junit.xml files.

Each cell becomes a <testsuite name=CELL>; classnames get the cell id as a
prefix so the same test on two kernels stays two cases. A boot reports both
KUnit and guest results; a cell keeps only the trees it owns (plus kernel
splats), so nothing is counted twice. Tests that failed and then passed on a
retry carry a Surefire-style <flakyFailure> (Jenkins shows them as flaky).
A cell without a junit.xml (build failure, harness error, never run) is one
failing or erroring case, never silently absent.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

_TALLY = ("tests", "failures", "errors", "skipped")


def _count(suite: ET.Element) -> dict[str, int]:
    t = dict.fromkeys(_TALLY, 0)
    for case in suite.iter("testcase"):
        t["tests"] += 1
        if case.find("failure") is not None:
            t["failures"] += 1
        elif case.find("error") is not None:
            t["errors"] += 1
        elif case.find("skipped") is not None:
            t["skipped"] += 1
    return t


def _cell_suite(cid: str, cell: dict[str, Any], directory: Path) -> ET.Element:
    entry = cell["entry"]
    suite = ET.Element("testsuite", name=cid)
    path = directory / cell["rel"] / "junit.xml" if cell.get("rel") else None
    report = entry.get("report", ["guest"])
    flaky = set(entry.get("flaky_tests", []))
    if path and path.is_file() and entry.get("kind") != "bench":
        try:
            src = ET.parse(path).getroot()
        except ET.ParseError as e:
            src = None
            _synthetic(suite, cid, "error", f"unreadable {path.name}: {e}")
        for case in (src.iter("testcase") if src is not None else []):
            cls = case.get("classname", "")
            if cls.split("/", 1)[0] not in report and cls != "kernel":
                continue
            full = f"{cls}/{case.get('name', '')}"
            case.set("classname", f"{cid}.{cls}")
            if full in flaky:
                ET.SubElement(case, "flakyFailure", message="failed, then passed on a retry")
            suite.append(case)
    else:
        status = entry.get("status")
        if status in ("pass", "flaky"):
            case = ET.SubElement(suite, "testcase", classname=cid, name=entry.get("suite", cid))
            if status == "flaky":
                ET.SubElement(case, "flakyFailure", message="failed, then passed on a retry")
        else:
            kind = "failure" if status == "fail" else "error"
            _synthetic(suite, cid, kind, entry.get("message")
                       or f"{status} (exit {entry.get('exit_code')})")
    for key, value in _count(suite).items():
        suite.set(key, str(value))
    return suite


def _synthetic(suite: ET.Element, cid: str, tag: str, message: str) -> None:
    case = ET.SubElement(suite, "testcase", classname=cid, name="cell")
    ET.SubElement(case, tag, message=message.splitlines()[0] if message else tag,
                  type="cell").text = message


def merge(directory: Path, cells: dict[str, dict[str, Any]], name: str) -> str:
    root = ET.Element("testsuites", name=name)
    for cid, cell in sorted(cells.items()):
        root.append(_cell_suite(cid, cell, directory))
    totals = dict.fromkeys(_TALLY, 0)
    for suite in root:
        for key in _TALLY:
            totals[key] += int(suite.get(key, "0"))
    for key, value in totals.items():
        root.set(key, str(value))
    ET.indent(root)
    return '<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(root, encoding="unicode")
