"""JSON results document built from a parsed test tree and the kernel splats."""

from __future__ import annotations

from typing import Any

from harness.ktap import FAILING, Status, TestResult, counts, walk
from harness.splat import Splat

_OK = frozenset({Status.PASS, Status.XFAIL, Status.TODO})


def overall_status(result: TestResult, splats: list[Splat]) -> str:
    """'FAIL' on any splat or failing leaf; 'PASS' if anything passed; 'SKIP' if
    every leaf was skipped; 'NO_TESTS' when there were no tests at all (so an
    empty run never reads as a pass)."""
    if splats:
        return "FAIL"
    statuses = {leaf.status for _, leaf in walk(result) if leaf is not result or result.name}
    if statuses & FAILING:
        return "FAIL"
    if statuses & _OK:
        return "PASS"
    if Status.SKIP in statuses:
        return "SKIP"
    return "NO_TESTS"


def splat_to_dict(s: Splat) -> dict[str, Any]:
    # "lines" as the console printed them; "decoded" the same lines with each
    # stack frame at its file:line (empty when the run kept no vmlinux).
    return {"kind": s.kind, "title": s.title, "lines": list(s.lines),
            "decoded": list(s.decoded), "line_number": s.line_number}


def to_json(result: TestResult, splats: list[Splat], metadata: dict[str, Any]) -> dict[str, Any]:
    """A plain JSON-serialisable dict (pass it to json.dumps).

    "tests" lists the leaves of the tree with '/'-joined full names (see
    ktap.walk); "counts" maps every Status name to its number of leaves.
    """
    tests = [
        {
            "name": name,
            "status": leaf.status.value,
            "directive": leaf.directive,
            "reason": leaf.reason,
            "log": list(leaf.log),
        }
        for name, leaf in walk(result)
        if leaf is not result or result.name  # an empty root is not a test
    ]
    return {
        "metadata": dict(metadata),
        "status": overall_status(result, splats),
        "counts": {status.value: n for status, n in counts(result).items()},
        "tests": tests,
        "splats": [splat_to_dict(s) for s in splats],
    }
