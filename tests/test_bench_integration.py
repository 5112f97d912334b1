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
    ratio = med[("series", "open_enoent", "memcg")] / med[("series", "open_enoent", "root")]
    assert ratio <= 1.01, (ratio, (run.results / "bench.txt").read_text())
    # Vanilla charges the ENOENT file at allocation: the cost the series removes.
    assert med[("vanilla", "open_enoent", "memcg")] > med[("vanilla", "open_enoent", "root")]
