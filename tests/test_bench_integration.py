"""`harness bench` for real: both kernels, icount boots, the failed-open target.

Under `-icount shift=0,sleep=off` guest time counts instructions, so the
figures repeat from boot to boot and, unlike wall-clock timings, a ratio
can be asserted on.
"""

import json
from pathlib import Path

import pytest
from conftest import harness, requires_kernel_tools

pytestmark = [pytest.mark.integration, requires_kernel_tools()]


def test_failed_open_in_a_memcg_costs_what_it_costs_in_root(tmp_path: Path) -> None:
    run = harness("bench", "--repeat", "1", "--iters", "5000", results_root=tmp_path)
    assert run.returncode == 0, run.output
    for name in ("bench.json", "bench.txt", "bench.svg", "console-vanilla-1.log",
                 "console-series-1.log"):
        assert (run.results / name).is_file(), name
    data = json.loads((run.results / "bench.json").read_text())
    assert data["mode"] == "icount"
    med = {(r["kernel"], r["op"], r["cgroup"]): r["median"] for r in data["results"]}
    series = med[("series", "open_enoent", "memcg")] / med[("series", "open_enoent", "root")]
    vanilla = med[("vanilla", "open_enoent", "memcg")] / med[("vanilla", "open_enoent", "root")]
    table = (run.results / "bench.txt").read_text()
    # Vanilla charges (and uncharges) the ENOENT file at allocation.
    assert vanilla > 1.10, (vanilla, table)
    # The series no longer charges a file that never reaches an fd table: at
    # least half of that overhead is gone. (The target, within 1 % of
    # root, is reported by `harness bench`; what is left is the over-limit
    # check in alloc_empty_file(), see the cover letter.)
    assert series - 1 < (vanilla - 1) / 2, (series, vanilla, table)
