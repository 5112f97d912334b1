"""Both kernels, one table: each test on vanilla and on the series.

Every test declares what it does on each kernel (expectations.yaml); the
per-kernel runs already fail on a mismatch. The matrix puts them side by
side so a reviewer sees at a glance what the series changes.
"""

import json
from pathlib import Path
from typing import Any

from harness.expectations import KERNELS

# How a judged status reads in the table.
_SHOW = {"PASS": "pass", "XFAIL": "fail (declared)", "SKIP": "skip"}


def rows(results: dict[str, dict[str, Any]]) -> list[tuple[str, dict[str, str]]]:
    """Test name -> {kernel: shown status}, in first-seen order."""
    table: dict[str, dict[str, str]] = {}
    for kernel in KERNELS:
        for t in results.get(kernel, {}).get("tests", []):
            shown = _SHOW.get(t["status"], f"{t['status']} (unexpected)")
            table.setdefault(t["name"], {})[kernel] = shown
    return list(table.items())


def render(results: dict[str, dict[str, Any]]) -> str:
    body = rows(results)
    width = max([len(n) for n, _ in body] + [4])
    lines = [f"{'test':<{width}}  {'vanilla':<20}  series", "-" * (width + 40)]
    for name, by_kernel in body:
        lines.append(f"{name:<{width}}  {by_kernel.get('vanilla', '-'):<20}  "
                     f"{by_kernel.get('series', '-')}")
    for kernel in KERNELS:
        r = results.get(kernel, {})
        lines.append(f"{kernel}: {r.get('status', 'not run')} (exit {r.get('exit_code', '-')}), "
                     f"{len(r.get('splats', []))} kernel splats, "
                     f"{r.get('mismatches', 0)} results differ from their declaration")
    return "\n".join(lines)


def write(out: Path, results: dict[str, dict[str, Any]]) -> str:
    text = render(results)
    (out / "matrix.txt").write_text(text + "\n")
    (out / "matrix.json").write_text(json.dumps(
        {"rows": [{"test": n, **k} for n, k in rows(results)],
         "runs": {k: {"status": v.get("status"), "exit_code": v.get("exit_code")}
                  for k, v in results.items()}}, indent=2) + "\n")
    return text
