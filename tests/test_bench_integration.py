"""`harness bench` for real: both kernels, icount boots, the issue's targets.

Under `-icount shift=0,sleep=off` guest time counts instructions, so the
figures repeat from boot to boot and, unlike wall-clock timings, a ratio
can be asserted on: a target that the series meets stays met, or CI turns red.
"""

import json
from pathlib import Path

import pytest
from conftest import harness, requires_kernel_tools

# The target lines of `harness bench` (ids in bench.json) that the series
# meets, as measured; each is asserted MET. Add a line here once it is met.
#   enoent_memcg      failed open() (ENOENT), child memcg / root, series <= 1.01
#   open_close_memcg  open()+close() in a child memcg, series / vanilla <= 1.00
#   root              every op (ENOENT, open+close, pipe, socket, eventfd, dup) in root,
#                     series / vanilla <= 1.003
#   memcg_other       pipe, socket, eventfd in a child memcg, series / vanilla <= 1.00
#   open_close_at_limit  open()+close() at memory.max with page cache, series / vanilla <= 1.00
# "root" is asserted op by op below: socket()+close() in root moves by up to
# 0.3 % from boot to boot (RCU-freed socket inodes), as much as the whole
# 1.003 limit, so for it the test allows 1.005 and the table's verdict stands.
ASSERTED_TARGETS = ["enoent_memcg", "open_close_memcg", "memcg_other", "open_close_at_limit"]
ROOT_NOISY_OPS = {"socket_close": 1.005}

pytestmark = [pytest.mark.integration, requires_kernel_tools()]


def test_bench_targets(tmp_path: Path) -> None:
    # Three boots: socket()+close() in root still varies by up to 0.3 %
    # from boot to boot (RCU-freed socket inodes), within 0.5 % of the root
    # target; the median of three keeps one odd boot from deciding.
    run = harness("bench", "--repeat", "3", "--iters", "10000", results_root=tmp_path)
    assert run.returncode == 0, run.output
    for name in ("bench.json", "bench.txt", "bench.svg", "console-vanilla-1.log",
                 "console-series-1.log"):
        assert (run.results / name).is_file(), name
    data = json.loads((run.results / "bench.json").read_text())
    table = (run.results / "bench.txt").read_text()
    assert data["mode"] == "icount"
    assert "steady state, kmem accounting online" in table
    med = {(r["kernel"], r["op"], r["cgroup"]): r["median"] for r in data["results"]}
    # Sanity, so that the targets cannot pass on figures that measure nothing:
    # vanilla charges (and uncharges) the ENOENT file at allocation, which
    # costs a memcg task well over 10 % of a failed open().
    vanilla = med[("vanilla", "open_enoent", "memcg")] / med[("vanilla", "open_enoent", "root")]
    assert vanilla > 1.10, (vanilla, table)
    targets = {t["id"]: t for t in data["targets"]}
    # All four lines are measured and printed with their verdict.
    for tid in ("enoent_memcg", "open_close_memcg", "root", "memcg_other"):
        assert targets[tid]["met"] is not None, (tid, table)
        mark = "[MET    ]" if targets[tid]["met"] else "[NOT MET]"
        assert f"{mark} {targets[tid]['description']}:" in table, (tid, table)
    for tid in ASSERTED_TARGETS:
        assert targets[tid]["met"] is True, (tid, targets[tid]["value"], table)
    limit = targets["root"]["limit"]
    for op, value in targets["root"]["ratios"].items():
        assert value <= ROOT_NOISY_OPS.get(op, limit), (op, value, table)
