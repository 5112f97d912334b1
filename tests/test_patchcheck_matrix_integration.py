"""`harness patchcheck --matrix` for real: one cell of each kind, a broken patch.

A copy of the series gets tests/fixtures/broken-patches/0006-*.patch, which
(deliberately) uses root_mem_cgroup, undeclared without CONFIG_MEMCG, and
reads a variable that is uninitialized on one path, which clang warns about
(-Wsometimes-uninitialized) and gcc does not. Checked at `--depth objects`
(the touched files compiled at W=1, no link) on one cell of each kind the
matrix has: the default target, another compiler, another architecture and
a config variant. Exactly the clang and memcg-off cells must fail, each
with its own reason. The full matrix at build depth runs in the nightly.
"""

import json
import shutil

import pytest
from conftest import FIXTURES, ROOT, harness, requires_kernel_tools

pytestmark = [pytest.mark.integration,
              requires_kernel_tools("clang", "ld.lld", "aarch64-linux-gnu-gcc")]

BROKEN = "0006-fs-add-fd_install_probe-deliberately-broken.patch"
CELLS = {"x86_64": 0, "x86_64-clang": 1, "arm64": 0, "memcg-off": 3}


def test_broken_patch_fails_exactly_its_cells(tmp_path):
    series = tmp_path / "patches"
    shutil.copytree(ROOT / "patches", series)
    shutil.copy(FIXTURES / "broken-patches" / BROKEN, series)
    with open(series / "series", "a") as f:
        f.write(BROKEN + "\n")
    run = harness("patchcheck", "--matrix", "--cells", ",".join(CELLS), "--depth", "objects",
                  "--from", "6", "--series", str(series / "series"),
                  results_root=tmp_path / "results")
    # The worst cell: a build error (3) beats a new warning (1).
    assert run.returncode == 3, run.output
    cells = json.loads((run.results / "matrix.json").read_text())
    assert {c: v["exit_code"] for c, v in cells.items()} == CELLS, run.output
    summary = (run.results / "summary.txt").read_text()
    row = next(ln for ln in summary.splitlines() if ln.lstrip().startswith("6  0006-"))
    assert row.split()[2:] == ["ok", "ok", "1", "new", "W", "ok", "BUILD"], row
    assert "[-Wsometimes-uninitialized]" in summary
    assert "root_mem_cgroup" in summary and "undeclared" in summary
    assert "2 of 4 cells pass; failing: x86_64-clang, memcg-off" in summary
    # Patches 1-5 were applied, not checked: no row of theirs in any cell.
    assert all(len(v["rows"]) == 1 for v in cells.values())
