"""JUnit XML from a parsed test tree, with kernel splats as extra failing cases."""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET

from harness.ktap import SEP, Status, TestResult, walk
from harness.splat import Splat

# XML 1.0 cannot carry most control characters; console logs can.
_INVALID_XML = re.compile("[^\t\n\r\x20-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")

_FAILURE = {Status.FAIL}
_ERROR = {Status.CRASHED, Status.TIMEOUT, Status.ERROR}
_SKIPPED = {Status.SKIP, Status.NO_TESTS}


def _clean(text: str) -> str:
    return _INVALID_XML.sub("\ufffd", text)


def _message(leaf: TestResult) -> str:
    return _clean(leaf.reason or leaf.directive or leaf.status.value)


def to_junit(result: TestResult, suite_name: str, splats: list[Splat]) -> str:
    """JUnit XML text: one <testcase> per leaf (classname = '/'-joined parent
    path, or suite_name at top level), FAIL -> <failure>, CRASHED/TIMEOUT/ERROR
    -> <error>, SKIP/NO_TESTS -> <skipped>; each splat is a failing testcase
    "kernel splat: <kind>" (repeats get " #2", " #3", ...)."""
    suites = ET.Element("testsuites", name=_clean(suite_name))
    suite = ET.SubElement(suites, "testsuite", name=_clean(suite_name))
    tally = {"tests": 0, "failures": 0, "errors": 0, "skipped": 0}

    for name, leaf in walk(result):
        if leaf is result and not result.name:
            continue  # an empty root is not a test
        classname, _, short = name.rpartition(SEP)
        case = ET.SubElement(
            suite, "testcase", classname=_clean(classname or suite_name), name=_clean(short)
        )
        tally["tests"] += 1
        log = _clean("\n".join(leaf.log))
        if leaf.status in _FAILURE or leaf.status in _ERROR:
            tag = "failure" if leaf.status in _FAILURE else "error"
            tally["failures" if tag == "failure" else "errors"] += 1
            el = ET.SubElement(case, tag, message=_message(leaf), type=leaf.status.value)
            el.text = log
        else:
            if leaf.status in _SKIPPED:
                tally["skipped"] += 1
                ET.SubElement(case, "skipped", message=_message(leaf))
            if log:
                ET.SubElement(case, "system-out").text = log

    seen: dict[str, int] = {}
    for s in splats:
        seen[s.kind] = seen.get(s.kind, 0) + 1
        n = seen[s.kind]
        name = f"kernel splat: {s.kind}" + (f" #{n}" if n > 1 else "")
        case = ET.SubElement(suite, "testcase", classname="kernel", name=name)
        el = ET.SubElement(
            case,
            "failure",
            message=_clean(f"{s.title} (console line {s.line_number + 1})"),
            type=f"splat:{s.kind}",
        )
        el.text = _clean("\n".join(s.shown))
        tally["tests"] += 1
        tally["failures"] += 1

    for el in (suites, suite):
        for key, value in tally.items():
            el.set(key, str(value))
    ET.indent(suites)
    return '<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(suites, encoding="unicode")
