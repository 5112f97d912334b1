"""Tests for harness.bench: guest output parsing, overheads, targets, outputs."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from harness import bench, run
from harness.bench import MEMCG, NEAR, ROOT, Sample, Stats
from harness.boot import BootOutcome
from harness.cli import build_parser
from harness.errors import ConfigError
from harness.profile import Profile
from harness.series import read_series

FIXTURES = Path(__file__).parent / "fixtures"
# A real console log: `harness bench` on the series kernel, icount mode.
CONSOLE = FIXTURES / "bench_open_console.log"
CASES = {(op, cg) for op in bench.OP_LABELS for cg in (ROOT, MEMCG)} | {
    ("open_enoent", NEAR), ("open_close", NEAR)}


def fixture_samples() -> list[Sample]:
    return bench.parse_lines(CONSOLE.read_text().splitlines())


def test_parses_every_case_of_a_real_guest_run() -> None:
    samples = fixture_samples()
    assert {(s.op, s.cgroup) for s in samples} == CASES
    assert all(s.iters > 0 and s.ns_per_op > 0 and s.round == 1 for s in samples)


def test_parse_handles_indent_timestamps_and_junk() -> None:
    lines = [
        "  # bench: op=open_enoent cgroup=root iters=100 ns_per_op=5187.5 round=2",
        "[    3.141592] # bench: op=open_enoent cgroup=memcg iters=100 ns_per_op=5962.0\r",
        "# bench: op=dup_close cgroup=root iters=100",  # no figure: skipped
        "# bench: op=dup_close cgroup=root iters=x ns_per_op=1",  # not a number
        "# bench: op=dup_close cgroup=root iters=10 ns_per_op=300 extra=ignored",
        "ok 1 open_enoent.root",
        "# benchmark: op=a cgroup=b iters=1 ns_per_op=1",
    ]
    got = bench.parse_lines(lines, boot_no=3)
    assert got == [
        Sample("open_enoent", ROOT, 100, 5187.5, 2, 3),
        Sample("open_enoent", MEMCG, 100, 5962.0, 1, 3),
        Sample("dup_close", ROOT, 10, 300.0, 1, 3),
    ]


def test_stats_and_spread() -> None:
    st = Stats.of([102.0, 100.0, 101.0])
    assert (st.n, st.min, st.median, st.max) == (3, 100.0, 101.0, 102.0)
    assert st.spread == pytest.approx(2 / 101)


def _samples(figures: dict[tuple[str, str, str], list[float]]) -> dict[str, list[Sample]]:
    out: dict[str, list[Sample]] = {k: [] for k in bench.KERNELS}
    for (kernel, op, cg), values in figures.items():
        out[kernel] += [Sample(op, cg, 1000, v, boot=i + 1) for i, v in enumerate(values)]
    return out


# DESIGN.md's vanilla figures and a series that meets every target.
GOOD = {
    ("vanilla", "open_enoent", ROOT): [5187, 5188, 5186],
    ("vanilla", "open_enoent", MEMCG): [5962, 5962, 5963],
    ("vanilla", "open_enoent", NEAR): [5970, 5971, 5970],
    ("vanilla", "open_close", ROOT): [4233, 4233, 4234],
    ("vanilla", "open_close", MEMCG): [4541, 4540, 4541],
    ("series", "open_enoent", ROOT): [5150, 5150, 5151],
    ("series", "open_enoent", MEMCG): [5190, 5191, 5190],
    ("series", "open_enoent", NEAR): [5195, 5195, 5195],
    ("series", "open_close", ROOT): [4230, 4230, 4230],
    ("series", "open_close", MEMCG): [4300, 4301, 4300],
}


def test_overheads_from_medians() -> None:
    stats = bench.aggregate(_samples(GOOD))
    assert stats[("vanilla", "open_enoent", ROOT)].median == 5187
    assert bench.overhead(stats, "vanilla", "open_enoent", MEMCG) == pytest.approx(
        5962 / 5187 - 1)
    assert bench.overhead(stats, "vanilla", "open_close", MEMCG) == pytest.approx(0.0727, 1e-2)
    assert bench.overhead(stats, "vanilla", "open_close", NEAR) is None
    assert bench.root_change(stats, "open_close") == pytest.approx(4230 / 4233 - 1)
    assert bench.rows(stats) == [("open_enoent", MEMCG), ("open_enoent", NEAR),
                                 ("open_close", MEMCG)]


def _verdicts(figures: dict) -> dict[str, bool | None]:
    return {t.id: t.met for t in bench.evaluate_targets(bench.aggregate(_samples(figures)))}


def test_targets_met() -> None:
    assert _verdicts(GOOD) == {"enoent_memcg": True, "enoent_near_limit": True,
                               "open_close_memcg": True, "open_close_memcg_stretch": True,
                               "series_root": True}


def test_targets_not_met() -> None:
    bad = dict(GOOD)
    bad[("series", "open_enoent", MEMCG)] = [5300]  # +2.9 % over root
    bad[("series", "open_close", MEMCG)] = [4700]  # +9.3 % over its root: worse
    bad[("series", "open_close", ROOT)] = [4300]  # +1.6 % over vanilla root
    v = _verdicts(bad)
    assert v["enoent_memcg"] is False and v["enoent_near_limit"] is True
    assert v["open_close_memcg"] is False and v["open_close_memcg_stretch"] is False
    assert v["series_root"] is False


def test_targets_without_data_are_not_measured() -> None:
    only_vanilla = {k: v for k, v in GOOD.items() if k[0] == "vanilla"}
    assert set(_verdicts(only_vanilla).values()) == {None}


def test_table_shows_both_kernels_overheads_spread_and_targets() -> None:
    stats = bench.aggregate(_samples(GOOD))
    text = bench.format_table(stats, "icount", "tcg", targets=bench.evaluate_targets(stats))
    assert "icount" in text and "guest instructions" in text
    row = next(ln for ln in text.splitlines() if ln.startswith("open() ENOENT "))
    cells = [c.strip() for c in row.split("|")]
    assert cells[1:] == ["5187.0", "5962.0", "+14.9 %", "5150.0", "5190.0", "+0.8 %", "-0.7 %"]
    assert "vanilla 5186.0 / 5187.0 / 5188.0 (0.04 %, n=3)" in text  # min / median / max
    assert "[MET    ] failed open() in a child memcg" in text
    assert "NOT MET" not in text


def test_wallclock_is_labelled_everywhere(tmp_path: Path) -> None:
    text, _ = bench.write_outputs(tmp_path, _samples(GOOD),
                                  {"mode": "wallclock", "accel": "kvm", "repeat": 3})
    assert text.startswith("harness bench — WALL-CLOCK: QEMU kvm")
    assert "indicative only" in text
    assert "WALL-CLOCK" in (tmp_path / "bench.svg").read_text()
    data = json.loads((tmp_path / "bench.json").read_text())
    assert data["mode"] == "wallclock" and "wall clock" in data["unit"]


def test_svg_is_well_formed_with_a_bar_per_measurement(tmp_path: Path) -> None:
    samples = {"vanilla": fixture_samples(), "series": fixture_samples()}
    bench.write_outputs(tmp_path, samples, {"mode": "icount", "accel": "tcg"})
    root = ET.parse(tmp_path / "bench.svg").getroot()
    assert root.tag == "{http://www.w3.org/2000/svg}svg"
    bars = [r for r in root.iter("{http://www.w3.org/2000/svg}rect") if r.find(
        "{http://www.w3.org/2000/svg}title") is not None]
    rows = bench.rows(bench.aggregate(samples))
    assert len(bars) == 4 * len(rows) == 4 * (len(CASES) - len(bench.OP_LABELS))
    assert all(float(b.get("width", 0)) > 0 for b in bars)


def test_json_holds_samples_stats_overheads_targets(tmp_path: Path) -> None:
    bench.write_outputs(tmp_path, _samples(GOOD), {"mode": "icount", "accel": "tcg",
                                                   "repeat": 3, "iters": 1000})
    data = json.loads((tmp_path / "bench.json").read_text())
    assert len(data["samples"]) == sum(len(v) for v in GOOD.values())
    res = {(r["kernel"], r["op"], r["cgroup"]): r for r in data["results"]}
    assert res[("series", "open_enoent", MEMCG)]["median"] == 5190
    ovs = {(o["kernel"], o["op"], o["cgroup"]): o["overhead"] for o in data["overheads"]}
    assert ovs[("series", "open_enoent", MEMCG)] == pytest.approx(40 / 5150)
    assert {t["id"]: t["met"] for t in data["targets"]}["enoent_memcg"] is True
    assert (tmp_path / "bench.txt").read_text().startswith("harness bench — icount")


def test_configure_forces_icount_tcg_and_one_cpu() -> None:
    prof = Profile()
    prof.qemu.smp = 4
    bench.configure(prof, bench.Options(iters=500, rounds=2))
    assert (prof.qemu.accel, prof.qemu.icount, prof.qemu.smp) == ("tcg", True, 1)
    assert prof.tests == ["bench_open"]
    assert {"BENCH_ITERS=500", "BENCH_ROUNDS=2", "noapictimer"} <= set(prof.qemu.cmdline)


def test_configure_wallclock_keeps_accel_and_drops_icount() -> None:
    prof = Profile()
    prof.qemu.icount = True
    bench.configure(prof, bench.Options(wallclock=True))
    assert (prof.qemu.accel, prof.qemu.icount) == ("auto", False)
    assert "noapictimer" not in prof.qemu.cmdline


@pytest.mark.parametrize("change", [
    lambda p, o: setattr(p.qemu, "accel", "kvm"),
    lambda p, o: setattr(p, "series", ""),
    lambda p, o: setattr(o, "repeat", 0),
])
def test_configure_rejects_what_cannot_be_benchmarked(change) -> None:
    prof, opts = Profile(), bench.Options()
    change(prof, opts)
    with pytest.raises(ConfigError):
        bench.configure(prof, opts)


def test_cli_bench_subcommand() -> None:
    args = build_parser().parse_args(["bench", "--repeat", "5", "--wallclock", "--no-build"])
    assert (args.repeat, args.iters, args.rounds) == (5, 20000, 1)
    assert args.wallclock and args.no_build and not args.strict


def _outcome(lines: list[str], end: str = "done") -> BootOutcome:
    return BootOutcome(accel="tcg", end=end, seconds=1.0, lines=lines)


def test_a_complete_guest_run_has_no_problems() -> None:
    lines = CONSOLE.read_text().splitlines()
    assert bench._boot_problems(_outcome(lines), bench.parse_lines(lines)) == []


def test_a_guest_run_cut_short_is_a_problem() -> None:
    lines = CONSOLE.read_text().splitlines()
    cut = next(i for i, ln in enumerate(lines) if "cgroup=memcg " in ln)
    problems = bench._boot_problems(_outcome(lines[:cut], "silence"),
                                    bench.parse_lines(lines[:cut]))
    assert problems[0] == "guest ended with 'silence'"
    assert any(p.startswith("failed: ") for p in problems), problems


def test_an_image_is_reused_only_if_built_from_the_same_series(tmp_path, monkeypatch) -> None:
    (tmp_path / "0001-a.patch").write_text("a patch\n")
    (tmp_path / "series").write_text("0001-a.patch\n")
    (tmp_path / "bzImage").write_text("")
    prof = Profile(series=str(tmp_path / "series"))
    digest = read_series(tmp_path / "series").digest()
    images = {"vanilla": "", "series": digest}
    monkeypatch.setattr(bench.run, "last_image", lambda req: run.KernelImage(
        tmp_path / "bzImage", {"series_hash": images[req.kernel]}))
    series_req, vanilla_req = run.Request(prof), run.Request(prof, no_series=True)
    assert bench.up_to_date(series_req) and bench.up_to_date(vanilla_req)
    (tmp_path / "0001-a.patch").write_text("the patch changed\n")
    assert bench.up_to_date(series_req) is None and bench.up_to_date(vanilla_req)
    prof.source.path = str(tmp_path)  # a user's tree may have moved: always build
    assert bench.up_to_date(vanilla_req) is None
