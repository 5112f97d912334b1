"""`harness bench`: what memcg accounting of struct file costs open() and friends.

Builds (incrementally) the base alone ("vanilla") and base + series, boots
each --repeat times running guest-tests/bench_open.c, and compares every op in
the root cgroup and in a child memcg. The default mode runs QEMU TCG with
`-icount shift=0,sleep=off -smp 1`: guest time counts instructions (1 ns = 1
instruction), so the figures do not depend on host load and repeat to within
a fraction of a percent. `--wallclock` drops icount (KVM where it works) and
says so in every output: its figures are host- and load-dependent.

Outputs in the results directory: bench.json, bench.txt (the printed
table), bench.svg (a hand-written bar chart), console-<kernel>-<n>.log.
"""

from __future__ import annotations

import json
import re
import statistics
from collections.abc import Iterable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any
from xml.sax.saxutils import escape

from harness import ktap, printer, run, splat
from harness.boot import BootOutcome, boot, strip_timestamp
from harness.errors import EXIT_INFRA, EXIT_OK, EXIT_TEST_FAILURE, ConfigError
from harness.ktap import Status
from harness.profile import Profile, cache_dir, project_path
from harness.report import split_console
from harness.results import RunRecord
from harness.series import read_series

PROGRAM = "bench_open"
KERNELS = ("vanilla", "series")
ROOT, MEMCG, NEAR = "root", "memcg", "memcg_near_limit"
OP_LABELS = {
    "open_enoent": "open() ENOENT",
    "open_close": "open()+close()",
    "pipe_close": "pipe()+2 close()",
    "socket_close": "socket()+close()",
    "eventfd_close": "eventfd()+close()",
    "dup_close": "dup()+close()",
}
VARIANT_LABELS = {MEMCG: "child memcg", NEAR: "memcg near limit"}
# DESIGN.md §1, vanilla 6.12.117, icount, mean of 200k: the baseline.
REFERENCE = {"open_enoent": (5187, 5962), "open_close": (4233, 4541)}
# Run-to-run spread under icount is ~0.2 % (DESIGN.md); "no worse" allows that.
ROOT_TOLERANCE = 0.005
ENOENT_TARGET = 0.01
OPEN_CLOSE_STRETCH = 0.03

_BENCH = re.compile(r"#\s*bench:\s+(.*)$")
_REQUIRED = ("op", "cgroup", "iters", "ns_per_op")


@dataclass(frozen=True)
class Sample:
    op: str
    cgroup: str
    iters: int
    ns_per_op: float
    round: int = 1
    boot: int = 1


def parse_lines(lines: Iterable[str], boot_no: int = 1) -> list[Sample]:
    """The `# bench:` lines of a console log; malformed ones are skipped."""
    out = []
    for line in lines:
        m = _BENCH.search(strip_timestamp(line.rstrip("\r\n")))
        if not m:
            continue
        kv = dict(tok.split("=", 1) for tok in m.group(1).split() if "=" in tok)
        if any(k not in kv for k in _REQUIRED):
            continue
        try:
            out.append(Sample(op=kv["op"], cgroup=kv["cgroup"], iters=int(kv["iters"]),
                              ns_per_op=float(kv["ns_per_op"]),
                              round=int(kv.get("round", 1)), boot=boot_no))
        except ValueError:
            continue
    return out


@dataclass(frozen=True)
class Stats:
    n: int
    min: float
    median: float
    max: float

    @classmethod
    def of(cls, values: list[float]) -> Stats:
        return cls(len(values), min(values), statistics.median(values), max(values))

    @property
    def spread(self) -> float:
        """(max - min) / median: how far apart the repeats are."""
        return (self.max - self.min) / self.median if self.median else 0.0


Key = tuple[str, str, str]  # kernel, op, cgroup


def aggregate(samples: dict[str, list[Sample]]) -> dict[Key, Stats]:
    values: dict[Key, list[float]] = {}
    for kernel, ss in samples.items():
        for s in ss:
            values.setdefault((kernel, s.op, s.cgroup), []).append(s.ns_per_op)
    return {k: Stats.of(v) for k, v in values.items()}


def rows(stats: dict[Key, Stats]) -> list[tuple[str, str]]:
    """(op, variant) pairs with data, in a stable order: known ops first."""
    ops = {op for _, op, _ in stats}
    order = [o for o in OP_LABELS if o in ops] + sorted(ops - set(OP_LABELS))
    return [(op, v) for op in order for v in (MEMCG, NEAR)
            if any((k, op, v) in stats for k in KERNELS)]


def overhead(stats: dict[Key, Stats], kernel: str, op: str, variant: str) -> float | None:
    """median(variant) / median(root) - 1, None if either is missing."""
    root, var = stats.get((kernel, op, ROOT)), stats.get((kernel, op, variant))
    if not root or not var or not root.median:
        return None
    return var.median / root.median - 1


def root_change(stats: dict[Key, Stats], op: str) -> float | None:
    """series root / vanilla root - 1."""
    v, s = stats.get(("vanilla", op, ROOT)), stats.get(("series", op, ROOT))
    if not v or not s or not v.median:
        return None
    return s.median / v.median - 1


@dataclass
class Target:
    id: str
    description: str
    value: str  # what was measured, human-readable
    met: bool | None  # None: not measured


def _pct(x: float | None) -> str:
    return "n/a" if x is None else f"{x * 100:+.1f} %"


def evaluate_targets(stats: dict[Key, Stats]) -> list[Target]:
    out = []
    for tid, variant, where in (("enoent_memcg", MEMCG, "a child memcg"),
                                ("enoent_near_limit", NEAR, "a memcg near its limit")):
        ov = overhead(stats, "series", "open_enoent", variant)
        out.append(Target(tid, f"failed open() in {where}, series: within "
                          f"{ENOENT_TARGET * 100:.0f} % of root", f"series {_pct(ov)}",
                          None if ov is None else ov <= ENOENT_TARGET))
    s_ov = overhead(stats, "series", "open_close", MEMCG)
    v_ov = overhead(stats, "vanilla", "open_close", MEMCG)
    # The bar is vanilla's +7.3 % (DESIGN.md); this run's vanilla, on
    # this config, may differ: the series has to beat both.
    ref = REFERENCE["open_close"][1] / REFERENCE["open_close"][0] - 1
    out.append(Target("open_close_memcg", "open()+close() memcg overhead, series <= vanilla "
                      f"(this run's and DESIGN.md's {_pct(ref)})",
                      f"series {_pct(s_ov)}, vanilla {_pct(v_ov)}",
                      None if s_ov is None or v_ov is None else s_ov <= min(v_ov, ref)))
    out.append(Target("open_close_memcg_stretch", "open()+close() memcg overhead, series < "
                      f"{OPEN_CLOSE_STRETCH * 100:.0f} % (stretch)", f"series {_pct(s_ov)}",
                      None if s_ov is None else s_ov < OPEN_CLOSE_STRETCH))
    changes = {op: root_change(stats, op) for op, _ in rows(stats)}
    measured = {op: c for op, c in changes.items() if c is not None}
    worst = max(measured, key=lambda op: measured[op]) if measured else None
    out.append(Target("series_root", "series root figures no worse than vanilla root "
                      f"(within {ROOT_TOLERANCE * 100:.1f} %, every op)",
                      f"worst: {OP_LABELS.get(worst, worst)} {_pct(measured[worst])}"
                      if worst else "n/a",
                      None if worst is None else measured[worst] <= ROOT_TOLERANCE))
    return out


# --- text ---------------------------------------------------------------------------------

def mode_label(mode: str, accel: str) -> str:
    if mode == "icount":
        return ("icount: QEMU TCG -icount shift=0,sleep=off -smp 1, "
                "ns = guest instructions (deterministic)")
    return f"WALL-CLOCK: QEMU {accel}, ns of host time (noisy, depends on host and load)"


def _row_label(op: str, variant: str) -> str:
    label = OP_LABELS.get(op, op)
    return label if variant == MEMCG else f"{label}, near limit"


def format_table(stats: dict[Key, Stats], mode: str, accel: str,
                 kernels: dict[str, dict[str, Any]] | None = None,
                 targets: list[Target] | None = None, header: str = "") -> str:
    unit = "ns (instructions)" if mode == "icount" else "ns WALL-CLOCK"
    out = [f"harness bench — {mode_label(mode, accel)}"]
    for k, info in (kernels or {}).items():
        out.append(f"  {k}: {info.get('release', '?')} {info.get('describe', '')}".rstrip())
    if header:
        out.append(f"  {header}")
    out.append("")
    cols = ["op, per op: " + unit, "vanilla root", "vanilla memcg", "overhead",
            "series root", "series memcg", "overhead", "series/vanilla root"]
    table = []
    for op, variant in rows(stats):
        cells = [_row_label(op, variant)]
        for k in KERNELS:
            for cg in (ROOT, variant):
                st = stats.get((k, op, cg))
                cells.append(f"{st.median:.1f}" if st else "-")
            cells.append(_pct(overhead(stats, k, op, variant)))
        cells.append(_pct(root_change(stats, op)))
        table.append(cells)
    widths = [max(len(r[i]) for r in [cols, *table]) for i in range(len(cols))]

    def line(cells: list[str]) -> str:
        return " | ".join(c.ljust(w) if i == 0 else c.rjust(w)
                          for i, (c, w) in enumerate(zip(cells, widths, strict=True)))
    out += [line(cols), "-+-".join("-" * w for w in widths), *map(line, table)]
    out.append("(medians; overhead = memcg / root - 1; "
               "memcg near limit: memory.max = memory.current + 4 MiB)")

    out += ["", "spread over repeats: min / median / max ns per op, (max - min) / median"]
    name_w = max((len(OP_LABELS.get(op, op)) for op, _ in rows(stats)), default=10)
    for op in dict.fromkeys(op for op, _ in rows(stats)):
        for cg in (ROOT, MEMCG, NEAR):
            cells = []
            for k in KERNELS:
                st = stats.get((k, op, cg))
                cells.append(f"{k} {st.min:.1f} / {st.median:.1f} / {st.max:.1f} "
                             f"({st.spread * 100:.2f} %, n={st.n})" if st else "")
            if any(cells):
                out.append(f"  {OP_LABELS.get(op, op):<{name_w}}  {cg:<16}  "
                           f"{cells[0]:<44}  {cells[1]}".rstrip())
    if targets:
        note = ("deterministic figures: verdicts hold" if mode == "icount"
                else "wall-clock: indicative only, not asserted")
        out += ["", f"targets ({note}):"]
        for t in targets:
            mark = {True: "MET    ", False: "NOT MET", None: "n/a    "}[t.met]
            out.append(f"  [{mark}] {t.description}: {t.value}")
    return "\n".join(out)


# --- SVG ----------------------------------------------------------------------------------

_COLORS = {("vanilla", ROOT): "#b0b0b0", ("vanilla", "var"): "#606060",
           ("series", ROOT): "#9ecae1", ("series", "var"): "#2171b5"}


def render_svg(stats: dict[Key, Stats], mode: str, accel: str) -> str:
    """Small multiples: one panel per (op, variant), each on its own scale,
    since dup() and pipe() differ by an order of magnitude."""
    width, label_w, bar_h, gap = 900, 170, 16, 3
    panel_h = 26 + 4 * (bar_h + gap) + 14
    rws = rows(stats)
    height = 70 + panel_h * len(rws)
    plot_w = width - label_w - 150
    unit = "ns per op = guest instructions" if mode == "icount" else "ns per op, WALL-CLOCK"
    title = escape(f"memcg accounting of struct file: vanilla vs series — {unit}")
    sub = escape(mode_label(mode, accel))
    el = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
          f'viewBox="0 0 {width} {height}" font-family="sans-serif" font-size="12">',
          f'<rect width="{width}" height="{height}" fill="white"/>',
          f'<text x="10" y="22" font-size="15" font-weight="bold">{title}</text>',
          f'<text x="10" y="40" fill="#444">{sub}</text>',
          '<text x="10" y="56" fill="#444">bars: median; whiskers: min-max over repeats'
          '</text>']
    y = 70
    for op, variant in rws:
        ovs = ", ".join(f"{k} {_pct(overhead(stats, k, op, variant))}" for k in KERNELS)
        el.append(f'<text x="10" y="{y + 16}" font-weight="bold">'
                  f'{escape(_row_label(op, variant))}</text>')
        el.append(f'<text x="{width - 10}" y="{y + 16}" fill="#444" text-anchor="end">'
                  f'{escape(f"memcg overhead: {ovs}")}</text>')
        bars = [(k, cg, stats.get((k, op, cg))) for k in KERNELS for cg in (ROOT, variant)]
        top = max((st.max for _, _, st in bars if st), default=1.0) or 1.0
        by = y + 26
        for k, cg, st in bars:
            color = _COLORS[(k, ROOT if cg == ROOT else "var")]
            name = f"{k} {cg.replace('_', ' ')}"
            el.append(f'<text x="{label_w}" y="{by + bar_h - 4}" text-anchor="end">'
                      f'{escape(name)}</text>')
            if st:
                w = plot_w * st.median / top
                x0, x1 = label_w + 8 + plot_w * st.min / top, label_w + 8 + plot_w * st.max / top
                mid = by + bar_h / 2
                el.append(f'<rect x="{label_w + 8}" y="{by}" width="{w:.1f}" height="{bar_h}" '
                          f'fill="{color}"><title>{escape(name)}: {st.min:.1f} / '
                          f'{st.median:.1f} / {st.max:.1f} ns</title></rect>')
                el.append(f'<line x1="{x0:.1f}" y1="{mid}" x2="{x1:.1f}" y2="{mid}" '
                          'stroke="black"/>')
                for x in (x0, x1):
                    el.append(f'<line x1="{x:.1f}" y1="{by + 3}" x2="{x:.1f}" '
                              f'y2="{by + bar_h - 3}" stroke="black"/>')
                el.append(f'<text x="{label_w + 14 + plot_w * st.max / top:.1f}" '
                          f'y="{by + bar_h - 4}">{st.median:.1f}</text>')
            by += bar_h + gap
        y += panel_h
    el.append("</svg>")
    return "\n".join(el) + "\n"


# --- JSON ---------------------------------------------------------------------------------

def to_json(samples: dict[str, list[Sample]], stats: dict[Key, Stats], targets: list[Target],
            meta: dict[str, Any]) -> dict[str, Any]:
    return {
        **meta,
        "unit": "ns per op" + (" (= guest instructions)" if meta.get("mode") == "icount"
                               else " (wall clock)"),
        "samples": [{"kernel": k, **s.__dict__} for k, ss in samples.items() for s in ss],
        "results": [{"kernel": k, "op": op, "cgroup": cg, "n": st.n, "min": st.min,
                     "median": st.median, "max": st.max, "spread": st.spread}
                    for (k, op, cg), st in sorted(stats.items())],
        "overheads": [{"kernel": k, "op": op, "cgroup": v,
                       "overhead": overhead(stats, k, op, v)}
                      for op, v in rows(stats) for k in KERNELS],
        "root_change": {op: root_change(stats, op) for op in dict.fromkeys(o for o, _ in
                                                                             rows(stats))},
        "targets": [t.__dict__ for t in targets],
        "reference_vanilla_icount": {op: {"root": r, "memcg": m}
                                     for op, (r, m) in REFERENCE.items()},
    }


def write_outputs(out_dir: Path, samples: dict[str, list[Sample]], meta: dict[str, Any],
                  kernels: dict[str, dict[str, Any]] | None = None) -> tuple[str, list[Target]]:
    """Write bench.json, bench.txt, bench.svg; return (table text, targets)."""
    stats = aggregate(samples)
    targets = evaluate_targets(stats)
    mode, accel = meta.get("mode", "icount"), meta.get("accel", "tcg")
    header = (f"{meta.get('repeat', '?')} boots x {meta.get('rounds', '?')} rounds x "
              f"{meta.get('iters', '?')} iterations per kernel")
    text = format_table(stats, mode, accel, kernels, targets, header)
    (out_dir / "bench.txt").write_text(text + "\n")
    (out_dir / "bench.svg").write_text(render_svg(stats, mode, accel))
    data = to_json(samples, stats, targets, {**meta, "kernels": kernels or {}})
    (out_dir / "bench.json").write_text(json.dumps(data, indent=2) + "\n")
    return text, targets


# --- the run ------------------------------------------------------------------------------

@dataclass
class Options:
    repeat: int = 3  # boots per kernel
    iters: int = 20000  # per case, passed to the guest as BENCH_ITERS
    rounds: int = 1  # every case again within one boot (BENCH_ROUNDS)
    wallclock: bool = False
    # auto: reuse a kernel's last image if built from the same base and series;
    # always: build (incrementally) anyway; never: reuse whatever image is there.
    build: str = "auto"
    strict: bool = False  # unmet (icount) targets exit 1


def configure(prof: Profile, opts: Options) -> None:
    """Turn a profile into the benchmark's: one CPU, icount unless --wallclock."""
    if not prof.series:
        raise ConfigError("harness bench compares the base with the series, "
                          "but this profile has no series")
    if opts.repeat < 1 or opts.iters < 1 or opts.rounds < 1:
        raise ConfigError("--repeat, --iters and --rounds must be at least 1")
    prof.tests = [PROGRAM]
    prof.qemu.smp = 1  # guest time is per-vCPU instructions only with one vCPU
    if opts.wallclock:
        prof.qemu.icount = False
    else:
        if prof.qemu.accel == "kvm":
            raise ConfigError("icount needs TCG; use --wallclock to measure with KVM")
        prof.qemu.accel, prof.qemu.icount = "tcg", True
    # Unknown NAME=value boot parameters end up in init's environment.
    extra = [f"BENCH_ITERS={opts.iters}", f"BENCH_ROUNDS={opts.rounds}"]
    if not opts.wallclock:
        # Calibrating the local APIC timer busy-polls the PIT for 100 ms of guest
        # time, which under icount costs ~40 s of host time per boot; the PIT
        # as the tick (one CPU) adds ~0.05 % to the figures, the same on both kernels.
        extra.append("noapictimer")
    prof.qemu.cmdline = [*prof.qemu.cmdline, *extra]


def up_to_date(req: run.Request) -> run.KernelImage | None:
    """The kernel's last image if it was built from this base and series.

    The build directory is per source tarball and config fragments, so only
    the series can differ; a user's --source tree can move, so it always builds.
    Switching the shared tree between kernels that touch headers like
    include/linux/file.h recompiles much of the kernel: worth avoiding.
    """
    if req.profile.source.path:
        return None
    try:
        img = run.last_image(req)
    except ConfigError:
        return None
    series = read_series(None if req.kernel == "vanilla"
                         else project_path(req.profile.series))
    want = series.digest() if series.patches else ""
    return img if img.image.is_file() and img.info.get("series_hash", "") == want else None


def _boot_problems(outcome: BootOutcome, samples: list[Sample]) -> list[str]:
    problems = []
    if outcome.end != "done":
        problems.append(f"guest ended with {outcome.end!r}")
    splats = splat.find_splats(outcome.lines)
    problems += [f"kernel {s.kind}: {s.title}" for s in splats]
    _, guest = split_console(outcome.lines)
    docs = [d for d in ktap.parse(guest or []).children if d.name == "guest"]
    prog = next((c for c in docs[0].children if c.name == PROGRAM), None) if docs else None
    bad = [leaf.name for leaf in _leaves(prog) if leaf.status not in (Status.PASS, Status.SKIP)
           ] if prog else [PROGRAM]
    if bad:
        problems.append(f"failed: {', '.join(bad)}")
    if not samples:
        problems.append("no `# bench:` lines on the console")
    return problems


def _leaves(node: ktap.TestResult) -> list[ktap.TestResult]:
    return [node] if not node.children else [x for c in node.children for x in _leaves(c)]


def _describe(info: dict[str, Any]) -> str:
    n = len(info.get("commits") or [])
    return (f"(base {str(info.get('base', ''))[:12]}" + (f" + {n} patches, head "
            f"{str(info.get('head', ''))[:12]}" if n else "") + ")")


def run_bench(base: run.Request, opts: Options, rec: RunRecord) -> int:
    images: dict[str, run.KernelImage] = {}
    reqs = {k: replace(base, no_series=(k == "vanilla")) for k in KERNELS}
    built: dict[str, bool] = {}
    for k, req in reqs.items():
        img = run.last_image(req) if opts.build == "never" else (
            up_to_date(req) if opts.build == "auto" else None)
        built[k] = img is None
        if img is None:
            img = run.build_kernel(req, rec)
            # build_kernel records stages under plain names; keep both kernels'.
            stages = rec.data["stages"]
            for name in [n for n in stages if "." not in n]:
                stages[f"{name}.{k}"] = stages.pop(name)
            rec.save()
        else:
            if opts.build == "never" and not up_to_date(req):
                printer.warn(f"the last {k} image was not built from the current series")
            printer.stage(f"Reusing the {k} kernel built {img.info.get('built_at', '?')} "
                          f"({img.image}); --rebuild builds it again")
        images[k] = img
    kernels = {k: {**img.info, "describe": _describe(img.info)} for k, img in images.items()}
    samples: dict[str, list[Sample]] = {k: [] for k in KERNELS}
    accels: set[str] = set()
    boots: list[dict[str, Any]] = []
    failures: list[str] = []
    # Both kernels share one tree, hence one initramfs (cached by content).
    rootfs = run.prepare_rootfs(reqs["series"], images["series"], rec)
    for k, req in reqs.items():
        img = images[k]
        tests = run.selected_tests(req, rootfs)
        cmds, order, why = run.qemu_commands(req, img, rootfs, tests,
                                             name=f"harness:{rec.dir.name}")
        rec.meta(**{f"qemu_{k}": cmds})
        for i in range(1, opts.repeat + 1):
            printer.stage(f"Benchmark {k} {img.info.get('release', '')} boot {i}/{opts.repeat} "
                          f"({'icount' if not opts.wallclock else 'WALL-CLOCK'}, "
                          f"{'/'.join(order)}: {why})")
            log = rec.path(f"console-{k}-{i}.log")
            with req.timings.measure("boots"):
                outcome = boot(cmds, order, log, req.profile.timeouts, cache_dir(),
                               echo=printer.verbose)
            got = parse_lines(outcome.lines, i)
            samples[k] += got
            accels.add(outcome.accel)
            problems = _boot_problems(outcome, got)
            boots.append({"kernel": k, "boot": i, "accel": outcome.accel, "end": outcome.end,
                          "seconds": round(outcome.seconds, 1), "samples": len(got),
                          "problems": problems, "console": log.name})
            rec.meta(boots=boots)
            printer.info(f"{len(got)} measurements in {outcome.seconds:.1f}s"
                         + (f"; problems: {'; '.join(problems)}" if problems else ""))
            failures += [f"{k} boot {i}: {p}" for p in problems]
    mode = "wallclock" if opts.wallclock else "icount"
    meta = {"mode": mode, "accel": "/".join(sorted(accels)), "built": built,
            "repeat": opts.repeat,
            "rounds": opts.rounds, "iters": opts.iters, "boots": boots,
            "failures": failures}
    text, targets = write_outputs(rec.dir, samples, meta, kernels)
    print(text, flush=True)
    rec.data.update(bench={"targets": {t.id: t.met for t in targets},
                           "files": ["bench.json", "bench.txt", "bench.svg"]})
    printer.stage(f"Benchmark written to {rec.dir}/bench.{{txt,json,svg}}")
    if not any(samples.values()):
        return EXIT_INFRA
    if failures:
        printer.error("benchmark problems:\n    " + "\n    ".join(failures))
        return EXIT_TEST_FAILURE
    if opts.strict and mode == "icount" and any(t.met is False for t in targets):
        return EXIT_TEST_FAILURE
    return EXIT_OK
