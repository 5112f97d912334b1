"""A small real nightly: two cells (vanilla and series, default profile, smoke),
run unsharded and as two shards that are then merged; the merged report must
say what the unsharded one says. The cells share the incremental build
directory, so after the first build each costs a rebuild + one boot.
"""

import json
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import ROOT, requires_kernel_tools

from harness.nightly import kcidb
from harness.nightly import report as nightly_report

pytestmark = [pytest.mark.integration, requires_kernel_tools()]

MATRIX = """
axes: {kernel: [vanilla, series], profile: [default], suite: [smoke]}
suites:
  smoke: {tests: [smoke]}
"""


def nightly(*args: str) -> tuple[int, str, Path | None]:
    cmd = [sys.executable, "-m", "harness", "nightly", *args]
    proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=3000)
    out = proc.stdout + proc.stderr
    print(out)
    where = [ln.split("] Nightly results: ", 1)[1].split(" (")[0].strip()
             for ln in out.splitlines() if "] Nightly results: " in ln]
    return proc.returncode, out, Path(where[-1]) if where else None


def test_two_shards_merged_equal_the_unsharded_run(tmp_path):
    matrix = tmp_path / "nightly.yaml"
    matrix.write_text(MATRIX)
    common = ["--matrix", str(matrix), "--run-id", "itest"]

    # Shard 2/2 is the vanilla cell, 1/2 the series one; this order switches
    # the shared build directory between the kernels only twice.
    shards = [nightly(*common, "--shard", "2/2", "--results-dir", str(tmp_path / "shards"))]
    code, out, full = nightly(*common, "--results-dir", str(tmp_path / "full"))
    assert full, out
    shards.append(nightly(*common, "--shard", "1/2", "--results-dir", str(tmp_path / "shards")))
    for _, o, d in shards:
        assert d, o
        assert len(json.loads((d / "nightly.json").read_text())["cells"]) == 1
    mcode, mout, merged = nightly("--merge", str(tmp_path / "shards"),
                                  "--results-dir", str(tmp_path / "merged"))
    assert merged, mout

    got, want = nightly_report.outcomes(merged), nightly_report.outcomes(full)
    assert got == want
    assert mcode == code == max(c for c, _, _ in shards)
    assert set(want) == {"default-vanilla-smoke", "default-series-smoke"}
    for cell, result in want.items():
        assert result["status"] == "pass", (cell, result)
        smoke = {n: s for n, s in result["tests"].items() if n.startswith("guest/smoke")}
        assert smoke and set(smoke.values()) == {"PASS"}, (cell, result)

    for d in (full, merged):
        for name in ("summary.md", "summary.html", "junit.xml", "kcidb.json"):
            assert (d / name).is_file(), (d, name)
        doc = json.loads((d / "kcidb.json").read_text())
        kcidb.validate(doc)
        series = next(c for c in doc["checkouts"] if c["id"].endswith("-series"))
        assert series["patchset_hash"] and series["patchset_files"]
    md = (merged / "summary.md").read_text()
    assert "shards 1/2, 2/2" in md and "# Nightly itest: PASSED" in md
