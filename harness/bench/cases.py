"""What guest-tests/bench_open.c measures: its ops, the cgroups it runs them in, its warm-up.

The names here are the ones on the guest's `# bench:` lines; the labels are the tables'.
"""

from __future__ import annotations

PROGRAM = "bench_open"
KERNELS = ("vanilla", "series")
ROOT, MEMCG, NEAR = "root", "memcg", "memcg_near_limit"
# Only with --root-offline: root before any memcg existed (kmem accounting off).
ROOT_OFFLINE = "root_offline"
AT_LIMIT = "memcg_at_limit"
OP_LABELS = {
    "open_enoent": "open() ENOENT",
    "open_close": "open()+close()",
    "pipe_close": "pipe()+2 close()",
    "socket_close": "socket()+close()",
    "eventfd_close": "eventfd()+close()",
    "dup_close": "dup()+close()",
}
VARIANT_LABELS = {MEMCG: "child memcg", NEAR: "memcg near limit",
                  AT_LIMIT: "memcg at limit, page cache"}
VARIANTS = (MEMCG, NEAR, AT_LIMIT)
# Vanilla 6.12.117 on kconfigs/base.config (JUMP_LABEL, SPARSEMEM_VMEMMAP,
# ACPI), icount, steady state with kmem accounting online: medians of
# `harness bench` (3 boots x 20000), (root, child memcg) instructions per op.
# DESIGN.md §1's figures (5187 / 5962 for ENOENT) are from an older config.
REFERENCE = {"open_enoent": (1743.0, 1986.6), "open_close": (2729.8, 2972.9),
             "pipe_close": (5420.3, 7156.4), "socket_close": (4612.7, 6045.3),
             "eventfd_close": (2763.8, 3378.1), "dup_close": (652.4, 652.5)}
# bench_open.c's untimed runs: of every op in the child memcg before the
# first measurement, and (at least) before each case.
WARMUP = 5000
STEADY_STATE_NOTE = (
    f"steady state, kmem accounting online: a child memcg exists from before the first "
    f"measurement (root figures included), every op ran {WARMUP}x untimed in it first, "
    f"and every case runs >= {WARMUP}x untimed right before it is timed")
