"""`harness bench`'s boots: build or reuse each kernel's image, boot it, collect the figures.

The icount benchmark boots each kernel --repeat times in turn (run_bench);
--scale boots them interleaved, round by round (_run_scale). Each boot goes
through the test pipeline (pipeline.run_tests, no flaky retry) over the
console transport, so it is booted and judged as `harness test` would boot
and judge bench_open / bench_scale; the samples are parsed from the verdict's
console lines, and the verdict's problems are the run's failures.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from harness import expectations, images, pipeline, printer, run
from harness import judge as judging
from harness.bench.kernels import KernelSpec, baseline
from harness.bench.options import Options
from harness.bench.outputs import write_outputs
from harness.bench.samples import LimitSample, limit_skips, parse_limit_lines, parse_lines
from harness.bench.scale import (
    SCALE_WARMUP_MS,
    guest_cpus,
    parse_scale_lines,
    write_scale_outputs,
)
from harness.errors import EXIT_INFRA, EXIT_OK, EXIT_TEST_FAILURE
from harness.judge import Verdict
from harness.results import RunRecord
from harness.transports import Attempt, Transport


def up_to_date(req: run.Request) -> run.KernelImage | None:
    """The kernel's kept image if it was built from the current base, series, config
    fragments and compiler: the one rule of harness/images.py. Switching the shared
    tree between kernels that touch headers like include/linux/file.h recompiles
    much of the kernel: worth avoiding, but never by measuring another config."""
    img, _ = images.find(req, *images.current(req))
    return img


def policy(kernel: str = "") -> judging.Policy:
    """How a benchmark boot is judged: as KERNEL is declared to run the program
    (any kernel if unnamed; a `--kernel NAME=SERIES` other than vanilla and series
    is held to what any declared kernel may do); KUnit is not what is measured."""
    declared = (kernel,) if kernel in expectations.KERNELS else expectations.KERNELS
    return judging.Policy(kernels=declared, kunit=False)


def attempt(kernel: str, n: int) -> Attempt:
    """Boot N of KERNEL: console-<kernel>-<n>.log, one qemu_<kernel> in results.json."""
    return Attempt(f"boot-{kernel}-{n}", f"-{kernel}-{n}", key_suffix=f"_{kernel}")


def _boot_problems(verdict: Verdict, samples: list[Any], marker: str = "# bench:") -> list[str]:
    """What was wrong with one benchmark boot: the judge's VERDICT on its program,
    in this report's words, and no samples."""
    problems = []
    if verdict.end != "done":
        problems.append(f"guest ended with {verdict.end!r}")
    problems += [f"harness: {e}" for e in verdict.errors]
    problems += [f"kernel {s.kind}: {s.title}" for s in verdict.splats]
    if verdict.mismatches:
        problems.append("failed: " + ", ".join(
            m.leaf.name + (f" ({m.leaf.reason})" if m.leaf.reason else "")
            for m in verdict.mismatches))
    if not problems and verdict.code != EXIT_OK:
        problems += verdict.reasons
    if not samples:
        problems.append(f"no `{marker}` lines on the console")
    return problems


def _describe(info: dict[str, Any]) -> str:
    n = len(info.get("commits") or [])
    return (f"(base {str(info.get('base', ''))[:12]}" + (f" + {n} patches, head "
            f"{str(info.get('head', ''))[:12]}" if n else "") + ")")


def kernel_request(base: run.Request, spec: KernelSpec) -> run.Request:
    """SPEC's kernel: the base alone, or the base + its series under its image label."""
    if spec.vanilla:
        return replace(base, no_series=True)
    return replace(base, no_series=False, label=spec.label,
                   profile=replace(base.profile, series=str(spec.series)))


def images_series(req: run.Request) -> str:
    """The series file or mbox REQ's kernel is built from; empty for vanilla."""
    return "" if req.kernel == "vanilla" else req.profile.series


def _images(base: run.Request, opts: Options, rec: RunRecord
            ) -> tuple[dict[str, run.Request], dict[str, run.KernelImage], dict[str, bool]]:
    images: dict[str, run.KernelImage] = {}
    reqs = {s.name: kernel_request(base, s) for s in opts.specs(base.profile)}
    built: dict[str, bool] = {}
    for k, req in reqs.items():
        # never: the kept image as it is (last_image warns with what changed).
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
            printer.stage(f"Reusing the {k} kernel built {img.info.get('built_at', '?')} "
                          f"({img.image}); --rebuild builds it again")
        images[k] = img
    return reqs, images, built


@dataclass
class _Boots:
    """What one run's boots collected, kernel by kernel, and what went wrong."""
    samples: dict[str, list[Any]]  # Sample, or ScaleSample for --scale
    limit: dict[str, list[LimitSample]] = field(default_factory=dict)
    skipped: list[str] = field(default_factory=list)  # why the at-limit case did not run
    accels: set[str] = field(default_factory=set)
    boots: list[dict[str, Any]] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)

    def note(self, rec: RunRecord, entry: dict[str, Any], seconds: float, what: str) -> None:
        """One boot's ENTRY in the record, on the terminal and among the failures."""
        problems = entry["problems"]
        self.boots.append(entry)
        rec.meta(boots=self.boots)
        printer.info(f"{entry['samples']} measurements in {seconds:.1f}s"
                     + (f"; problems: {'; '.join(problems)}" if problems else ""))
        self.failures += [f"{what}: {p}" for p in problems]

    def exit_code(self) -> int:
        """No figure at all is the harness's failure; a boot's problem, the run's."""
        if not any(self.samples.values()):
            return EXIT_INFRA
        if self.failures:
            printer.error("benchmark problems:\n    " + "\n    ".join(self.failures))
            return EXIT_TEST_FAILURE
        return EXIT_OK


def run_bench(base: run.Request, opts: Options, rec: RunRecord,
              transport: Transport = pipeline.CONSOLE) -> int:
    reqs, images, built = _images(base, opts, rec)
    kernels = {k: {**img.info, "describe": _describe(img.info),
                   "series_file": str(images_series(reqs[k]))}
               for k, img in images.items()}
    if opts.scale:
        return _run_scale(reqs, images, built, kernels, opts, rec, transport)
    got = _Boots({k: [] for k in reqs}, {k: [] for k in reqs})
    for k, req in reqs.items():
        _boot_icount(k, req, images[k], opts, rec, got, transport)
    mode = "wallclock" if opts.wallclock else "icount"
    meta = {"mode": mode, "accel": "/".join(sorted(got.accels)), "built": built,
            "repeat": opts.repeat,
            "rounds": opts.rounds, "iters": opts.iters, "boots": got.boots,
            "failures": got.failures, "limit_skipped": got.skipped,
            "baseline": baseline(opts.specs(base.profile)).name}
    text, targets = write_outputs(rec.dir, got.samples, meta, kernels, got.limit)
    print(text, flush=True)
    rec.data.update(bench={"targets": {t.id: t.met for t in targets},
                           "files": ["bench.json", "bench.txt", "bench.svg"]})
    printer.stage(f"Benchmark written to {rec.dir}/bench.{{txt,json,svg}}")
    code = got.exit_code()
    if code == EXIT_OK and opts.strict and mode == "icount" and any(
            t.met is False for t in targets):
        return EXIT_TEST_FAILURE
    return code


def _boot(req: run.Request, img: run.KernelImage, rec: RunRecord, transport: Transport,
          kernel: str, n: int) -> tuple[Verdict, Path]:
    """Boot N of KERNEL through the pipeline: its verdict (the console lines in
    verdict.outcome) and its console log."""
    att = attempt(kernel, n)
    with req.timings.measure("boots"):
        verdict = pipeline.run_tests(req, img, rec, transport, retry=False, attempt=att,
                                     policy=policy(kernel)).verdict
    return verdict, rec.path(att.file("console"))


def _boot_icount(k: str, req: run.Request, img: run.KernelImage, opts: Options,
                 rec: RunRecord, got: _Boots, transport: Transport) -> None:
    """Kernel K's --repeat boots, one after the other."""
    for i in range(1, opts.repeat + 1):
        printer.stage(f"Benchmark {k} {img.info.get('release', '')} boot {i}/{opts.repeat} "
                      f"({'icount' if not opts.wallclock else 'WALL-CLOCK'})")
        verdict, log = _boot(req, img, rec, transport, k, i)
        outcome = verdict.outcome
        assert outcome is not None
        samples = parse_lines(outcome.lines, i)
        got.samples[k] += samples
        got.limit[k] += parse_limit_lines(outcome.lines, i)
        got.skipped += limit_skips(outcome.lines)
        got.accels.add(outcome.accel)
        problems = _boot_problems(verdict, samples)
        got.note(rec, {"kernel": k, "boot": i, "accel": outcome.accel, "end": outcome.end,
                       "seconds": round(outcome.seconds, 1), "samples": len(samples),
                       "problems": problems, "console": log.name},
                 outcome.seconds, f"{k} boot {i}")


def _loadavg() -> float | None:
    try:
        return round(os.getloadavg()[0], 2)
    except OSError:
        return None


def _run_scale(reqs: dict[str, run.Request], images: dict[str, run.KernelImage],
               built: dict[str, bool], kernels: dict[str, dict[str, Any]], opts: Options,
               rec: RunRecord, transport: Transport) -> int:
    got = _Boots({k: [] for k in opts.kernels})
    rounds = opts.rounds or 1
    for r in range(1, rounds + 1):
        for k in opts.kernels:  # interleaved: vanilla, series, vanilla, series, ...
            _boot_scale(k, r, rounds, reqs[k], images[k], opts, rec, got, transport)
    if len(got.accels) > 1:
        got.failures.append(f"boots ran on different accelerators "
                            f"({', '.join(sorted(got.accels))}): the ratios compare unlike runs")
    meta = {"accel": "/".join(sorted(got.accels)), "smp": opts.smp, "seconds": opts.seconds,
            "host_cpus": os.cpu_count() or 0,
            "warmup_ms": SCALE_WARMUP_MS, "rounds": rounds, "order": list(opts.kernels),
            "built": built, "boots": got.boots, "failures": got.failures}
    text = write_scale_outputs(rec.dir, got.samples, meta, kernels)
    print(text, flush=True)
    rec.data.update(bench={"scale": True, "files": ["bench.json", "bench.txt"]})
    printer.stage(f"Scale benchmark written to {rec.dir}/bench.{{txt,json}}")
    return got.exit_code()


def _boot_scale(k: str, r: int, rounds: int, req: run.Request, img: run.KernelImage,
                opts: Options, rec: RunRecord, got: _Boots, transport: Transport) -> None:
    """Kernel K's boot of round R, -smp opts.smp, wall clock."""
    printer.stage(f"WALL-CLOCK scale benchmark, round {r}/{rounds}: {k} "
                  f"{img.info.get('release', '')} -smp {opts.smp}")
    load = [_loadavg()]
    verdict, log = _boot(req, img, rec, transport, k, r)
    load.append(_loadavg())
    outcome = verdict.outcome
    assert outcome is not None
    samples = parse_scale_lines(outcome.lines, r)
    got.samples[k] += samples
    accel = accel_used(rec.data["metadata"].get(attempt(k, r).key("qemu")) or {},
                       outcome.accel)
    got.accels.add(accel)
    problems = _boot_problems(verdict, samples, "# scale:")
    cpus = guest_cpus(outcome.lines)
    if cpus is not None and cpus != opts.smp:
        problems.append(f"the guest brought up {cpus} CPUs, not {opts.smp}")
    got.note(rec, {"kernel": k, "round": r, "accel": accel, "end": outcome.end,
                   "seconds": round(outcome.seconds, 1), "cpus": cpus,
                   "host_load": load,
                   "samples": len(samples), "problems": problems, "console": log.name},
             outcome.seconds, f"{k} round {r}")


def accel_used(cmds: dict[str, list[str]], accel: str) -> str:
    """The -accel value ACCEL's command of CMDS (the boot's, as recorded) ran with:
    tcg,thread=multi and tcg,thread=single are unlike runs."""
    cmd = cmds.get(accel) or []
    return cmd[cmd.index("-accel") + 1] if "-accel" in cmd[:-1] else accel
