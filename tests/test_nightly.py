"""harness nightly: matrix expansion, sharding, merge, reports, KCIDB, diffs.

The kernel pipeline is replaced by a fake (run.build_kernel / pipeline.test_kernel)
that writes what the real report stage writes, so the nightly code runs for
real against synthetic results directories.
"""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
import xml.etree.ElementTree as ET
from dataclasses import replace
from pathlib import Path

import jsonschema
import pytest
import yaml

from harness import cli, nightly, pipeline, run
from harness.errors import EXIT_INFRA, EXIT_OK, EXIT_TEST_FAILURE, ConfigError
from harness.junit import to_junit
from harness.ktap import Status, TestResult
from harness.nightly import kcidb
from harness.nightly import report as nightly_report
from harness.nightly.matrix import BOTH, load_matrix, parse_matrix, parse_shard, shard
from harness.results_json import to_json

ROOT = Path(__file__).resolve().parents[1]
PATCHES = {"0001-one.patch": b"From 1\nSubject: [PATCH 1/2] one\n",
           "0002-two.patch": b"From 2\nSubject: [PATCH 2/2] two\n"}


# --- a fake project and a fake kernel pipeline ----------------------------------------------

@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    proj = tmp_path / "project"
    (proj / "profiles").mkdir(parents=True)
    (proj / "patches").mkdir()
    (proj / "profiles" / "default.yaml").write_text("series: patches/series\n")
    (proj / "profiles" / "debug.yaml").write_text("series: patches/series\nqemu: {smp: 2}\n")
    for name, body in PATCHES.items():
        (proj / "patches" / name).write_bytes(body)
    (proj / "patches" / "series").write_text("# test\n" + "\n".join(PATCHES) + "\n")
    monkeypatch.setenv("HARNESS_PROJECT_DIR", str(proj))
    return proj


SMALL = """
axes: {kernel: [vanilla, series], profile: [default, debug], suite: [guest, kunit]}
suites:
  guest: {tests: [smoke, file_charge]}
  kunit: {tests: [smoke], report: [kunit]}
"""


def write_matrix(project: Path, text: str = SMALL) -> Path:
    path = project / "nightly.yaml"
    path.write_text(text)
    return path


class FakePipeline:
    """OUTCOMES[(kernel, program)] = list of {leaf: Status}, one per boot of
    that kernel+program (the last one repeats); default: one passing leaf."""

    def __init__(self) -> None:
        self.outcomes: dict[tuple[str, str], list[dict[str, Status]]] = {}
        self.flaky: set[str] = set()  # leaves declared flaky (with a cause)
        self.boots: dict[tuple[str, str], int] = {}
        self.builds: list[str] = []

    def build_kernel(self, req: run.Request, rec) -> run.KernelImage:
        self.builds.append(req.kernel)
        patches = list(PATCHES) if req.kernel == "series" else []
        rec.meta(kernel=req.kernel, base="a" * 40, base_version="6.12.117",
                 source="/usr/src/linux-source-6.12.tar.xz (6.12.117)", patches=patches,
                 head="b" * 40 if patches else "a" * 40)
        rec.stage("build", "pass", 1.5, release="6.12.117", warnings=0)
        return run.KernelImage(Path("/nonexistent/bzImage"), {"kernel": req.kernel})

    def test_kernel(self, req: run.Request, img: run.KernelImage, rec) -> int:
        progs = []
        for prog in req.profile.tests:
            key = (req.kernel, prog)
            n = self.boots.get(key, 0)
            self.boots[key] = n + 1
            seq = self.outcomes.get(key, [{"case": Status.PASS}])
            leaves = seq[min(n, len(seq) - 1)]
            progs.append(TestResult(prog, Status.PASS, children=[
                TestResult(leaf, st) for leaf, st in leaves.items()]))
        kunit = TestResult("kunit", Status.PASS, children=[TestResult(
            "page_counter", Status.PASS, children=[TestResult("basic", Status.PASS)])])
        root = TestResult("", Status.PASS, children=[kunit, TestResult("guest", Status.PASS,
                                                                        children=progs)])
        data = to_json(root, [], rec.data["metadata"])
        # As report.emit records the judge's mismatches.
        unexpected = [{"name": t["name"], "status": t["status"],
                       "flaky": "a known race" if t["name"].rsplit("/", 1)[-1] in self.flaky
                       else ""} for t in data["tests"] if t["status"] in ("FAIL", "CRASHED")]
        rec.data.update(tests=data["tests"], splats=[], unexpected=unexpected)
        rec.path("junit.xml").write_text(to_junit(root, f"harness.{req.kernel}", []))
        rec.path("console.log").write_text("fake console\n")
        bad = any(t["status"] in ("FAIL", "CRASHED") for t in data["tests"])
        code = EXIT_TEST_FAILURE if bad else EXIT_OK
        rec.finish("fail" if bad else "pass", code)
        return code


@pytest.fixture
def fake(monkeypatch: pytest.MonkeyPatch) -> FakePipeline:
    f = FakePipeline()
    monkeypatch.setattr(run, "build_kernel", f.build_kernel)
    monkeypatch.setattr(pipeline, "test_kernel", f.test_kernel)
    return f


def opts(project: Path, tmp_path: Path, **kw) -> nightly.Options:
    kw.setdefault("results_root", tmp_path / "results")
    return nightly.Options(matrix=project / "nightly.yaml", run_id="r1", **kw)


# --- matrix expansion -----------------------------------------------------------------------

def test_repository_matrix_expands_to_the_documented_cells():
    m = load_matrix(ROOT / "nightly.yaml")
    ids = [c.id for c in m.cells()]
    assert ids == sorted(ids)
    for profile in ("default", "debug", "arm64", "distro"):
        for kernel in ("vanilla", "series"):
            for suite in ("guest", "selftests", "kunit"):
                assert f"{profile}-{kernel}-{suite}" in ids
    # bench measures both kernels in one run, and is excluded on the debug
    # and arm64 profiles
    assert [i for i in ids if i.endswith("-bench")] == [f"default-{BOTH}-bench",
                                                         f"distro-{BOTH}-bench"]
    assert len(ids) == 26
    assert m.suites["kunit"].report == ("kunit",)
    assert m.suites["selftests"].tests == ("test_kmem", "test_memcontrol")


def test_exclude_rules_match_every_axis_they_name(project):
    m = parse_matrix(SMALL + "exclude:\n  - {profile: debug, kernel: vanilla}\n"
                     "  - {suite: kunit, kernel: [series]}\n", "m.yaml")
    assert [c.id for c in m.cells()] == [
        "debug-series-guest", "default-series-guest", "default-vanilla-guest",
        "default-vanilla-kunit"]


@pytest.mark.parametrize("text,where", [
    ("axes: {kernel: [vanilla, patched]}\nsuites: {s: {}}\n", "m.yaml: axes.kernel"),
    ("axes: {profile: [nosuch]}\nsuites: {s: {}}\n", "unknown profile 'nosuch'"),
    ("axes: {colour: [red]}\nsuites: {s: {}}\n", "m.yaml: axes.colour: unknown axis"),
    ("suites: {s: {test: [smoke]}}\n", "m.yaml: suites.s.test: unknown key"),
    ("suites: {s: {kind: fuzz}}\n", "m.yaml: suites.s.kind"),
    ("axes: {suite: [t]}\nsuites: {s: {}}\n", "'t' is not defined"),
    ("suites: {s: {}}\nexclude: [{flavour: x}]\n", "m.yaml: exclude[0].flavour"),
    ("suites: {s: {}}\nretries: -1\n", "m.yaml: retries"),
    ("suites: {s-x: {}}\n", "is not a name"),
    ("suites: [1\n", "invalid YAML"),
])
def test_bad_matrix_files_name_the_key(project, text, where):
    with pytest.raises(ConfigError, match=None) as e:
        parse_matrix(text, "m.yaml")
    assert where in str(e.value)


# --- sharding -------------------------------------------------------------------------------

def test_every_cell_is_in_exactly_one_shard_for_any_n():
    cells = load_matrix(ROOT / "nightly.yaml").cells()
    for n in range(1, 8):
        seen: list[str] = []
        for k in range(1, n + 1):
            part = shard(cells, k, n)
            assert part == shard(list(reversed(cells)), k, n)  # input order is irrelevant
            seen += [c.id for c in part]
        assert sorted(seen) == sorted(c.id for c in cells), n
        assert len(seen) == len(set(seen)), n
    # more shards than cells: the extra shards are empty, nothing is lost
    assert sum(len(shard(cells, k, 20)) for k in range(1, 21)) == len(cells)


def test_shards_are_balanced():
    cells = load_matrix(ROOT / "nightly.yaml").cells()
    for n in range(1, 8):
        sizes = [len(shard(cells, k, n)) for k in range(1, n + 1)]
        assert max(sizes) - min(sizes) <= 1


@pytest.mark.parametrize("bad", ["0/2", "3/2", "1", "a/b", "1/0", ""])
def test_bad_shard_specs_are_usage_errors(bad):
    with pytest.raises(ConfigError):
        parse_shard(bad)
    assert parse_shard(" 2/5 ") == (2, 5)


def test_cli_lists_a_shard(capsys):
    assert cli.main(["nightly", "--list", "--shard", "1/4",
                     "--matrix", str(ROOT / "nightly.yaml")]) == 0
    out = capsys.readouterr().out.split()
    assert out == [c.id for c in shard(load_matrix(ROOT / "nightly.yaml").cells(), 1, 4)]


# --- running, merging, reports --------------------------------------------------------------

def test_shards_merged_equal_an_unsharded_run(project, fake, tmp_path):
    write_matrix(project)
    fake.outcomes[("vanilla", "file_charge")] = [{"enomem": Status.XFAIL, "basic": Status.PASS}]
    code, full = nightly.run_matrix(opts(project, tmp_path, results_root=tmp_path / "full"))
    assert code == EXIT_OK
    dirs = []
    for k in (1, 2, 3):
        c, d = nightly.run_matrix(opts(project, tmp_path, shard=(k, 3),
                                       results_root=tmp_path / "shards"))
        assert c == EXIT_OK
        dirs.append(d)
    code, merged = nightly.merge([tmp_path / "shards"], opts(project, tmp_path,
                                                               results_root=tmp_path / "m"))
    assert code == EXIT_OK
    assert nightly_report.outcomes(merged) == nightly_report.outcomes(full)
    assert len(nightly_report.outcomes(full)) == 8

    def section(d: Path) -> str:  # the matrix part of the summary, without times or paths
        md = (d / "summary.md").read_text()
        return md[md.index("## Vanilla vs series"):md.index("## Flaky")]
    assert section(merged) == section(full)
    assert "declared fail" in section(full)

    def kcidb_tests(d: Path) -> list[tuple[str, str, str]]:
        doc = json.loads((d / "kcidb.json").read_text())
        return sorted((t["id"], t["path"], t["status"]) for t in doc["tests"])
    assert kcidb_tests(merged) == kcidb_tests(full)

    def junit_cases(d: Path) -> list[tuple[str, str, bool]]:
        root = ET.parse(d / "junit.xml").getroot()
        return sorted((c.get("classname"), c.get("name"), c.find("failure") is not None)
                      for c in root.iter("testcase"))
    assert junit_cases(merged) == junit_cases(full)
    # each cell reports only its own trees: kunit once per kernel and profile, not per boot
    cases = junit_cases(full)
    assert sum(1 for c in cases if c[0].endswith("kunit/page_counter")) == 4
    html = (merged / "summary.html").read_text()
    assert html.startswith("<!DOCTYPE html>") and "<link" not in html and "<script" not in html


def test_cells_of_one_kernel_run_back_to_back(project, fake, tmp_path, monkeypatch):
    from harness import bench
    # vanilla, then bench (vanilla, series), then series: the shared build dir
    # switches kernels once per profile.
    write_matrix(project, SMALL.replace("[guest, kunit]", "[guest, kunit, bench]")
                 + "  bench: {kind: bench}\n")
    monkeypatch.setattr(bench, "run_bench", lambda req, o, rec: [
        run.build_kernel(replace(req, no_series=k == "vanilla"), rec) for k in ("vanilla", "series")
    ] and EXIT_OK)
    nightly.run_matrix(opts(project, tmp_path))
    assert fake.builds == ["vanilla"] * 3 + ["series"] * 3 + ["vanilla"] * 3 + ["series"] * 3


def test_regression_is_loud_and_named(project, fake, tmp_path):
    write_matrix(project)
    fake.outcomes[("series", "smoke")] = [{"case": Status.FAIL}]
    code, out = nightly.run_matrix(opts(project, tmp_path))
    assert code == EXIT_TEST_FAILURE
    data = json.loads((out / "nightly.json").read_text())
    assert data["cells"]["default-series-guest"]["status"] == "fail"
    md = (out / "summary.md").read_text()
    assert md.startswith("# Nightly r1: FAILED: 4 of 8 cells")  # kunit cells boot smoke too
    assert "1 FAIL (!)" in md
    assert ("default-series-kunit: the boot failed outside this suite's tests: "
            "guest/smoke/case") in md


def test_a_cell_records_the_command_that_reproduces_it(project, fake, tmp_path):
    write_matrix(project, SMALL.replace("[default, debug]", "[debug]")
                 .replace("[guest, kunit]", "[guest]"))
    code, out = nightly.run_matrix(opts(project, tmp_path, accel="tcg"))
    cells = json.loads((out / "nightly.json").read_text())["cells"]
    for kernel, flag in (("vanilla", " --no-series"), ("series", "")):
        run_dir = out / cells[f"debug-{kernel}-guest"]["attempts"][0]["dir"]
        meta = json.loads((run_dir / "results.json").read_text())["metadata"]
        assert meta["reproduce"] == (f"harness build-and-test --profile debug{flag} "
                                     "--tests smoke,file_charge --accel tcg")


def test_flaky_failure_passes_on_retry_and_is_reported(project, fake, tmp_path):
    write_matrix(project, SMALL.replace("[default, debug]", "[default]")
                 .replace("[guest, kunit]", "[guest]"))
    fake.outcomes[("series", "file_charge")] = [{"case": Status.FAIL}, {"case": Status.PASS}]
    fake.flaky = {"case"}
    code, out = nightly.run_matrix(opts(project, tmp_path, retries=1))
    assert code == EXIT_OK
    cell = json.loads((out / "nightly.json").read_text())["cells"]["default-series-guest"]
    assert cell["status"] == "flaky"
    assert cell["flaky_tests"] == ["guest/file_charge/case"]
    assert [a["exit_code"] for a in cell["attempts"]] == [1, 0]
    assert "retry1-series" in cell["attempts"][1]["dir"]
    assert fake.builds.count("series") == 1  # the retry reuses the image
    md = (out / "summary.md").read_text()
    assert "FLAKY" in md and "guest/file_charge/case" in md
    junit = ET.parse(out / "junit.xml").getroot()
    assert len(list(junit.iter("flakyFailure"))) == 1
    doc = json.loads((out / "kcidb.json").read_text())
    assert any(t.get("misc", {}).get("flaky") for t in doc["tests"])


def test_a_failure_not_declared_flaky_is_never_retried(project, fake, tmp_path):
    write_matrix(project, SMALL.replace("[default, debug]", "[default]")
                 .replace("[guest, kunit]", "[guest]"))
    fake.outcomes[("series", "file_charge")] = [{"case": Status.FAIL}, {"case": Status.PASS}]
    code, out = nightly.run_matrix(opts(project, tmp_path, retries=2))
    assert code == EXIT_TEST_FAILURE
    cell = json.loads((out / "nightly.json").read_text())["cells"]["default-series-guest"]
    assert cell["status"] == "fail" and len(cell["attempts"]) == 1
    assert not cell.get("flaky_tests")
    # Nor when a declared-flaky test fails next to one that is not.
    fake.outcomes[("series", "file_charge")] = [{"case": Status.FAIL, "other": Status.FAIL},
                                                {"case": Status.PASS, "other": Status.PASS}]
    fake.flaky, fake.boots = {"case"}, {}
    code, out = nightly.run_matrix(opts(project, tmp_path / "2", retries=2))
    cell = json.loads((out / "nightly.json").read_text())["cells"]["default-series-guest"]
    assert code == EXIT_TEST_FAILURE and len(cell["attempts"]) == 1


def test_without_retries_the_same_failure_fails(project, fake, tmp_path):
    write_matrix(project, SMALL.replace("[default, debug]", "[default]")
                 .replace("[guest, kunit]", "[guest]"))
    fake.outcomes[("series", "file_charge")] = [{"case": Status.FAIL}, {"case": Status.PASS}]
    code, _ = nightly.run_matrix(opts(project, tmp_path))
    assert code == EXIT_TEST_FAILURE


def test_merge_reports_a_missing_shard(project, fake, tmp_path):
    write_matrix(project)
    _, one = nightly.run_matrix(opts(project, tmp_path, shard=(1, 2)))
    code, merged = nightly.merge([one], opts(project, tmp_path, results_root=tmp_path / "m"))
    assert code == EXIT_INFRA
    cells = json.loads((merged / "nightly.json").read_text())["cells"]
    missing = [c for c, e in cells.items() if e["status"] == "miss"]
    assert len(missing) == 4 and len(cells) == 8
    junit = ET.parse(merged / "junit.xml").getroot()
    assert int(junit.get("errors")) == 4


def test_merge_refuses_duplicates_and_foreign_shards(project, fake, tmp_path):
    write_matrix(project)
    _, one = nightly.run_matrix(opts(project, tmp_path, shard=(1, 2)))
    with pytest.raises(ConfigError, match="is in both"):
        nightly.merge([one, one], opts(project, tmp_path))
    write_matrix(project, SMALL.replace("[guest, kunit]", "[guest]"))
    _, other = nightly.run_matrix(opts(project, tmp_path, shard=(2, 2)))
    with pytest.raises(ConfigError, match="different matrices"):
        nightly.merge([one, other], opts(project, tmp_path))
    with pytest.raises(ConfigError, match="no nightly results"):
        nightly.merge([tmp_path / "project" / "patches"], opts(project, tmp_path))


def test_a_cell_error_does_not_stop_the_others(project, fake, tmp_path, monkeypatch):
    write_matrix(project, SMALL.replace("[default, debug]", "[default]"))

    def broken(req, rec):
        if req.kernel == "series":
            raise RuntimeError("boom")
        return FakePipeline.build_kernel(fake, req, rec)
    monkeypatch.setattr(run, "build_kernel", broken)
    code, out = nightly.run_matrix(opts(project, tmp_path))
    assert code == EXIT_INFRA
    cells = json.loads((out / "nightly.json").read_text())["cells"]
    assert cells["default-series-guest"]["status"] == "error"
    assert "boom" in cells["default-series-guest"]["message"]
    assert cells["default-vanilla-guest"]["status"] == "pass"
    attempt = out / cells["default-series-guest"]["attempts"][0]["dir"]
    assert "RuntimeError" in (attempt / "traceback.txt").read_text()
    doc = json.loads((out / "kcidb.json").read_text())
    assert any(t["status"] == "ERROR" and t["path"] == "guest" for t in doc["tests"])


# --- bench cells ----------------------------------------------------------------------------

BENCH = """
axes: {kernel: [vanilla, series], profile: [default], suite: [bench]}
suites:
  bench: {kind: bench, options: {repeat: 1, iters: 100}}
"""


def test_bench_cell_missing_is_a_miss(project, fake, tmp_path, monkeypatch):
    write_matrix(project, BENCH)
    import harness
    monkeypatch.setitem(sys.modules, "harness.bench", None)  # `import` raises ImportError
    monkeypatch.delattr(harness, "bench", raising=False)
    code, out = nightly.run_matrix(opts(project, tmp_path))
    assert code == EXIT_INFRA
    cell = json.loads((out / "nightly.json").read_text())["cells"]["default-both-bench"]
    assert cell["status"] == "miss" and "not available" in cell["message"]
    assert "MISS" in (out / "summary.md").read_text()


def test_bench_cell_table_and_kcidb_figures(project, fake, tmp_path, monkeypatch):
    from harness import bench
    write_matrix(project, BENCH)
    seen = {}

    def fake_bench(req, bopts, rec):
        seen["opts"] = bopts
        rec.path("bench.txt").write_text("op          vanilla  series\nopen_close  4233     4240\n")
        rec.path("bench.json").write_text(json.dumps({
            "kernels": {"vanilla": {"base": "a" * 40}, "series": {"base": "a" * 40}},
            "results": [{"kernel": k, "op": "open_close", "cgroup": "root", "n": 1,
                         "min": v, "median": v, "max": v, "spread": 0.0}
                        for k, v in (("vanilla", 4233.0), ("series", 4240.0))]}))
        rec.path("bench.svg").write_text('<svg xmlns="http://www.w3.org/2000/svg"></svg>\n')
        return EXIT_OK
    monkeypatch.setattr(bench, "run_bench", fake_bench)
    code, out = nightly.run_matrix(opts(project, tmp_path))
    assert code == EXIT_OK
    assert seen["opts"].repeat == 1 and seen["opts"].iters == 100
    md = (out / "summary.md").read_text()
    assert "## Benchmark" in md and "open_close  4233     4240" in md
    assert "<svg" in (out / "summary.html").read_text()
    doc = json.loads((out / "kcidb.json").read_text())
    figures = {(t["build_id"].rsplit("-", 1)[1], t["number"]["value"])
               for t in doc["tests"] if t["path"] == "bench.open_close.root"}
    assert figures == {("vanilla", 4233.0), ("series", 4240.0)}


# --- KCIDB ----------------------------------------------------------------------------------

def test_patchset_hash_is_kcidbs(tmp_path):
    for name, body in PATCHES.items():
        (tmp_path / name).write_bytes(body)
    shell = subprocess.run("sha256sum *.patch | cut -c-64 | sha256sum | cut -c-64", shell=True,
                           cwd=tmp_path, capture_output=True, text=True, check=True).stdout
    assert kcidb.patchset_hash(list(PATCHES.values())) == shell.strip()
    digests = [hashlib.sha256(b).hexdigest() for b in PATCHES.values()]
    assert kcidb.patchset_hash_of_digests(digests) == shell.strip()
    assert kcidb.patchset_hash([]) == ""


def test_kcidb_document_is_valid_and_shaped(project, fake, tmp_path):
    write_matrix(project)
    fake.outcomes[("vanilla", "file_charge")] = [{"over_limit.enomem": Status.XFAIL}]
    _, out = nightly.run_matrix(opts(project, tmp_path))
    doc = json.loads((out / "kcidb.json").read_text())
    kcidb.validate(doc)
    checkouts = {c["id"]: c for c in doc["checkouts"]}
    assert set(checkouts) == {"harness:r1-vanilla", "harness:r1-series"}
    series = checkouts["harness:r1-series"]
    assert [f["name"] for f in series["patchset_files"]] == list(PATCHES)
    assert series["patchset_hash"] == kcidb.patchset_hash(list(PATCHES.values()))
    assert series["git_commit_hash"] == "a" * 40 and series["origin"] == "harness"
    assert checkouts["harness:r1-vanilla"]["patchset_hash"] == ""
    assert "patchset_files" not in checkouts["harness:r1-vanilla"]
    assert (out / "patches" / "0001-one.patch").read_bytes() == PATCHES["0001-one.patch"]
    builds = {b["id"]: b for b in doc["builds"]}
    assert builds["harness:r1-debug-series"]["checkout_id"] == "harness:r1-series"
    assert builds["harness:r1-debug-series"]["config_name"] == "debug"
    xfail = [t for t in doc["tests"] if t["path"] == "guest.file_charge.over_limit.enomem"]
    assert {t["status"] for t in xfail} == {"FAIL"}
    assert all(t["misc"]["expected"] for t in xfail)
    assert all(t["build_id"] in builds for t in doc["tests"])


def test_kcidb_validation_rejects_a_bad_document():
    with pytest.raises(jsonschema.ValidationError):
        kcidb.validate({"version": {"major": 5, "minor": 3},
                        "tests": [{"id": "no-origin-prefix", "origin": "harness",
                                   "build_id": "harness:b"}]})
    assert kcidb.test_path("guest/file_charge/over_limit.open enomem") == \
        "guest.file_charge.over_limit.open_enomem"


# --- what changed since the previous nightly ------------------------------------------------

def test_diff_against_a_previous_nightly(project, fake, tmp_path):
    write_matrix(project, SMALL.replace("[default, debug]", "[default]")
                 .replace("[guest, kunit]", "[guest]"))
    fake.outcomes[("series", "smoke")] = [{"a": Status.PASS, "b": Status.FAIL, "c": Status.PASS}]
    _, before = nightly.run_matrix(opts(project, tmp_path))
    fake.boots.clear()
    fake.outcomes[("series", "smoke")] = [{"a": Status.FAIL, "b": Status.PASS, "c": Status.SKIP}]
    code, after = nightly.run_matrix(opts(project, tmp_path, previous=before))
    assert code == EXIT_TEST_FAILURE
    changes = json.loads((after / "changes.json").read_text())
    assert changes == {
        "new_failures": ["default-series-guest: guest/smoke/a: PASS -> FAIL"],
        "fixed": ["default-series-guest: guest/smoke/b: FAIL -> PASS"],
        "newly_skipped": ["default-series-guest: guest/smoke/c: PASS -> SKIP"],
    }
    md = (after / "summary.md").read_text()
    assert f"## Changes since {before}" in md and "**New failures** (1)" in md


def test_diff_reports_cells_that_stopped_reaching_their_tests():
    prev = {"c": {"status": "pass", "exit_code": 0, "tests": {"t": "PASS"}, "flaky_tests": []}}
    cur = {"c": {"status": "error", "exit_code": 3, "tests": {}, "flaky_tests": []}}
    assert nightly_report.diff(prev, cur)["new_failures"] == ["c: cell pass -> error (exit 3)"]
    assert nightly_report.diff(cur, prev)["fixed"] == ["c: cell error -> pass"]


# --- CI files -------------------------------------------------------------------------------

def test_github_workflow_shards_and_merges():
    wf = yaml.safe_load((ROOT / ".github/workflows/nightly.yml").read_text())
    assert True in wf or "on" in wf  # YAML 1.1 reads the bare key `on` as True
    on = wf.get("on", wf.get(True))
    assert "schedule" in on and "workflow_dispatch" in on
    shards, merge = wf["jobs"]["shard"], wf["jobs"]["merge"]
    matrix = shards["strategy"]["matrix"]["shard"]
    assert shards["strategy"]["fail-fast"] is False
    run_steps = " ".join(s.get("run", "") for s in shards["steps"])
    assert "--shard ${{ matrix.shard }}/${{ strategy.job-total }}" in run_steps
    assert matrix == list(range(1, len(matrix) + 1))
    assert any("upload-artifact" in s.get("uses", "") for s in shards["steps"])
    assert merge["needs"] == "shard" and merge["if"] == "${{ always() }}"
    assert any("download-artifact" in s.get("uses", "") for s in merge["steps"])
    assert "--merge" in " ".join(s.get("run", "") for s in merge["steps"])


def test_gitlab_ci_shards_and_merges():
    ci = yaml.safe_load((ROOT / ".gitlab-ci.yml").read_text())
    assert ci["stages"] == ["nightly", "merge"]
    shard_job, merge_job = ci["nightly-shard"], ci["nightly-merge"]
    assert shard_job["stage"] == "nightly" and isinstance(shard_job["parallel"], int)
    assert "--shard ${CI_NODE_INDEX}/${CI_NODE_TOTAL}" in " ".join(shard_job["script"])
    assert shard_job["artifacts"]["when"] == "always"
    assert merge_job["stage"] == "merge" and merge_job["when"] == "always"
    assert merge_job["needs"] == [{"job": "nightly-shard", "artifacts": True}]
    assert "--merge" in " ".join(merge_job["script"])
    assert merge_job["artifacts"]["reports"]["junit"]


@pytest.mark.parametrize("schema,path", [
    ("vendor.github-workflows", ".github/workflows/nightly.yml"),
    ("vendor.gitlab-ci", ".gitlab-ci.yml"),
])
def test_ci_files_validate_against_their_systems_schemas(schema, path):
    # check-jsonschema (a test dependency: pyproject's test extras) ships
    # SchemaStore's schemas for both CI systems: no network. Not an
    # importorskip: a missing dependency must fail here, not skip silently.
    proc = subprocess.run([sys.executable, "-m", "check_jsonschema", "--builtin-schema", schema,
                           str(ROOT / path)], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_previous_may_be_a_download_holding_the_nightly(project, fake, tmp_path):
    # CI artifact downloads nest the results a level or two deeper.
    write_matrix(project, SMALL.replace("[default, debug]", "[default]")
                 .replace("[guest, kunit]", "[guest]"))
    _, before = nightly.run_matrix(opts(project, tmp_path, results_root=tmp_path / "dl" / "x"))
    fake.outcomes[("vanilla", "smoke")] = [{"case": Status.SKIP}]
    _, after = nightly.run_matrix(opts(project, tmp_path, previous=tmp_path / "dl"))
    changes = json.loads((after / "changes.json").read_text())
    assert changes["newly_skipped"] == ["default-vanilla-guest: guest/smoke/case: PASS -> SKIP"]
    assert f"## Changes since {before}" in (after / "summary.md").read_text()


def test_the_nightly_guest_and_selftest_suites_run_every_guest_program():
    """A guest program that no nightly suite names never runs nightly (file_charge_scope,
    with the distro-only AppArmor test, was missing): every program the guest-tests
    Makefile builds, but the benchmarks (the bench suite's own), is in a suite."""
    from harness.stages.rootfs import program_names

    programs = program_names(Path(__file__).parents[1] / "guest-tests")
    assert programs, "could not read the guest-tests Makefile's programs"
    matrix = load_matrix(Path(__file__).parents[1] / "nightly.yaml")
    named = {t for s in matrix.suites.values() if s.kind == "tests" for t in s.tests}
    assert {p for p in programs if not p.startswith("bench_")} - named == set()
