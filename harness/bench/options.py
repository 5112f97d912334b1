"""What a `harness bench` run is asked to do, and the profile it boots with."""

from __future__ import annotations

import argparse
from dataclasses import dataclass, replace

from harness.bench.cases import KERNELS, PROGRAM
from harness.bench.kernels import KernelSpec, resolve
from harness.bench.scale import SCALE_CASES, SCALE_CGROUPS, SCALE_PROGRAM, SCALE_WARMUP_MS
from harness.errors import ConfigError
from harness.profile import Profile


@dataclass
class Options:
    repeat: int = 3  # boots per kernel (icount / --wallclock)
    iters: int = 20000  # per case, passed to the guest as BENCH_ITERS
    # icount: every case again within one boot (BENCH_ROUNDS), default 1;
    # --scale: boots per kernel, interleaved A B A B ..., default 3.
    rounds: int | None = None
    wallclock: bool = False
    # auto: reuse a kernel's last image if built from the same base and series;
    # always: build (incrementally) anyway; never: reuse whatever image is there.
    build: str = "auto"
    strict: bool = False  # unmet (icount) targets exit 1
    vanilla_only: bool = False  # measure vanilla alone (developing the guest programs)
    root_offline: bool = False  # also root before any memcg exists (kmem accounting offline)
    scale: bool = False  # bench_scale: WALL-CLOCK, SMP, ops/s per process
    smp: int = 2  # --scale: CPUs of the guest, N = 1..smp processes
    seconds: float = 2.0  # --scale: measured time per case and N
    # --kernel NAME=SERIES_FILE|none, as given; empty: vanilla and the profile's series.
    kernel_args: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if self.rounds is None:
            self.rounds = 3 if self.scale else 1

    @property
    def kernels(self) -> tuple[str, ...]:
        """The kernels' names, in the order measured."""
        if self.kernel_args:
            return tuple(a.partition("=")[0].strip() for a in self.kernel_args)
        return ("vanilla",) if self.vanilla_only else KERNELS

    def specs(self, prof: Profile) -> list[KernelSpec]:
        return resolve(self.kernel_args, prof.series, self.vanilla_only)


def options_from_args(args: argparse.Namespace) -> Options:
    """The Options `harness bench`'s command line asks for (its flags: harness/cli.py)."""
    return Options(repeat=args.repeat, iters=args.iters, rounds=args.rounds,
                   wallclock=args.wallclock, strict=args.strict,
                   build="never" if args.no_build else "always" if args.rebuild else "auto",
                   vanilla_only=args.no_series, root_offline=args.root_offline,
                   scale=args.scale, smp=args.smp or 2, seconds=args.seconds,
                   kernel_args=tuple(args.kernel or ()))


def configure(prof: Profile, opts: Options) -> Profile:
    """The benchmark's profile made from PROF: one CPU, icount unless --wallclock;
    --scale: opts.smp CPUs, wall clock."""
    specs = opts.specs(prof)  # a bad --kernel fails before anything is built
    if opts.scale and [s.name for s in specs] not in (["vanilla"], list(KERNELS)):
        raise ConfigError("--scale compares vanilla and the series only; "
                          "--kernel works with the icount benchmark")
    if opts.repeat < 1 or opts.iters < 1 or (opts.rounds or 0) < 1:
        raise ConfigError("--repeat, --iters and --rounds must be at least 1")
    if opts.scale:
        return _configure_scale(prof, opts)
    # One vCPU: guest time is per-vCPU instructions only with one vCPU.
    qemu = replace(prof.qemu, smp=1, icount=False)
    if not opts.wallclock:
        if prof.qemu.accel == "kvm":
            raise ConfigError("icount needs TCG; use --wallclock to measure with KVM")
        qemu = replace(qemu, accel="tcg", icount=True)
    # Unknown NAME=value boot parameters end up in init's environment.
    extra = [f"BENCH_ITERS={opts.iters}", f"BENCH_ROUNDS={opts.rounds}"]
    if opts.root_offline:
        extra.append("BENCH_ROOT_OFFLINE=1")
    if not opts.wallclock:
        # Calibrating the local APIC timer busy-polls the PIT for 100 ms of guest
        # time, which under icount costs ~40 s of host time per boot; the PIT
        # as the tick (one CPU) adds ~0.05 % to the figures, the same on both kernels.
        extra.append("noapictimer")
    return replace(prof, tests=[PROGRAM], qemu=replace(qemu, cmdline=[*qemu.cmdline, *extra]))


def _configure_scale(prof: Profile, opts: Options) -> Profile:
    if opts.smp < 1 or opts.seconds <= 0:
        raise ConfigError("--smp must be at least 1 and --seconds positive")
    # Wall clock: KVM where it works (profile accel auto), else TCG with one
    # host thread per vCPU (qemu.accel_option), or N processes would share one
    # host CPU: what is measured is parallelism.
    qemu = replace(prof.qemu, smp=opts.smp, icount=False, tcg_threads="multi",
                   cmdline=[*prof.qemu.cmdline, f"BENCH_SECONDS={opts.seconds:g}",
                            f"BENCH_WARMUP_MS={SCALE_WARMUP_MS}"])
    # Each of 2 cgroups x 5 cases x N = 1..smp takes seconds + warm-up + fork
    # and reap; three times that, for a slow TCG guest on a loaded host.
    cases = len(SCALE_CGROUPS) * len(SCALE_CASES) * opts.smp
    budget = int(cases * (opts.seconds + SCALE_WARMUP_MS / 1000 + 2) * 3) + 120
    per_test = max(prof.timeouts.per_test, budget)
    timeouts = replace(prof.timeouts, per_test=per_test,
                       run=max(prof.timeouts.run, per_test + 600))
    return replace(prof, tests=[SCALE_PROGRAM], qemu=qemu, timeouts=timeouts)
