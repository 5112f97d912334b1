"""`harness bench`: what memcg accounting of struct file costs open() and friends.

Builds (incrementally) the base alone ("vanilla") and base + series, or any
kernels named with --kernel NAME=SERIES_FILE (kernels.py), boots each --repeat
times running guest-tests/bench_open.c, and compares every op in the root
cgroup, in a child memcg, near its limit, and (open()) in a memcg at its limit
full of page cache, each kernel against vanilla. The default mode runs QEMU
TCG with `-icount shift=0,sleep=off -smp 1`: guest time counts instructions
(1 ns = 1 instruction), so the figures do not depend on host load and repeat
to within a fraction of a percent. `--wallclock` drops icount (KVM where it
works) and says so in every output: its figures are host- and load-dependent.

The figures are honest ones: kmem accounting is online for every case, root
included (the guest creates and keeps a child memcg before the first
measurement, as on any host with a memcg), and every case is warmed up
(steady state). `harness bench` judges the issue's four targets on them.

`--scale` is the other benchmark: guest-tests/bench_scale.c, a will-it-scale
style WALL-CLOCK run (N processes on N CPUs, ops/s per process) on an SMP
guest, vanilla and series booted interleaved (A B A B ...) --rounds times;
it reports series/vanilla ratios with their spread over the rounds.

Outputs in the results directory: bench.json, bench.txt (the printed
table), bench.svg (a hand-written bar chart; not for --scale),
console-<kernel>-<n>.log.

The package, in the order a run goes through it: options (what was asked) ->
kernels (which kernels) -> runner (images, boots) -> samples (the guest's
lines) -> stats -> targets -> table, svg, outputs; scale is the --scale mode's
own samples, rows, table and JSON; cases names what the guest measures.
"""

from harness.bench.options import Options, configure, options_from_args
from harness.bench.runner import run_bench

__all__ = ["Options", "configure", "options_from_args", "run_bench"]
