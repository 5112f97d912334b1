"""Kernel splat detection (oops, WARN, KASAN, lockdep, stalls, ...) on console logs.

One set of rules serves both a whole-log scan (``find_splats``) and a streaming
detector (``SplatDetector.feed``) that reports a splat on its headline so the
caller can stop QEMU early.  Headlines follow the Linux 6.12 wording (see the
source file named next to each rule) and must start the printk message: a
guest program printing "WARNING" or a KUnit test called "warning_test" never
matches.  Once the log has shown printk timestamps, headlines without one are
ignored too, since they can only come from userspace writing to the console.
A timestamped headline is also found mid-line, because the kernel's console
output can land in the middle of a line a guest program is writing.

A detector that fails on a line has not looked at it: ``errors`` says where,
and ``scan`` returns them so the judge can call the run an infrastructure
failure instead of a pass.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from harness.errors import InfraError
from harness.ktap import strip_printk_prefix

KINDS = (
    "oops",
    "bug",
    "panic",
    "kasan",
    "ubsan",
    "kfence",
    "warning",
    "lockdep",
    "hung_task",
    "soft_lockup",
    "rcu_stall",
    "kmemleak",
    "general_protection",
)

# A report is rarely useful beyond this; KASAN with memory dump is ~60 lines.
MAX_SPLAT_LINES = 80


@dataclass
class Splat:
    kind: str
    title: str
    lines: list[str] = field(default_factory=list)  # headline first, printk prefixes stripped
    line_number: int = 0  # 0-based index of the headline in the log
    # `lines` with each stack frame decoded to file:line (harness/decode.py); empty if not
    decoded: list[str] = field(default_factory=list)

    @property
    def shown(self) -> list[str]:
        """What a report shows: the decoded lines when there are any."""
        return self.decoded or self.lines


# Ordered: the first match wins, so specific "BUG: ..." forms precede generic ones.
_RULES: list[tuple[str, re.Pattern[str]]] = [
    # mm/kasan/report.c; the "in range" form follows a GPF on a non-canonical address
    ("kasan", re.compile(r"^BUG: KASAN: |^KASAN: [\w-]+ in range \[")),
    # mm/kfence/report.c
    ("kfence", re.compile(r"^BUG: KFENCE: ")),
    # kernel/watchdog.c (pr_fmt "watchdog: "); a hard lockup is reported here too
    (
        "soft_lockup",
        re.compile(
            r"^(?:watchdog: )?(?:BUG: soft lockup - CPU#\d+ stuck for"
            r"|Watchdog detected hard LOCKUP on cpu)"
        ),
    ),
    # kernel/locking/lockdep.c (and lockdep_rcu_suspicious)
    (
        "lockdep",
        re.compile(
            r"^WARNING: (?:possible circular locking dependency detected"
            r"|possible recursive locking detected"
            r"|possible irq lock inversion dependency detected"
            r"|\S+-safe -> \S+-unsafe lock order detected"
            r"|inconsistent lock state|suspicious RCU usage|chain_key collision"
            r"|Nested lock was not taken|bad unlock balance detected!"
            r"|bad contention detected!|held lock freed!|\S+/\d+ still has locks held!"
            r"|lock held when returning to user space!)"
            r"|^\[ BUG: Invalid wait context \]"
            r"|^BUG: (?:MAX_\w+ too low!|key \S+ has not been registered!"
            r"|looking up invalid subclass)"
        ),
    ),
    # kernel/rcu/tree_stall.h, tree_exp.h (pr_fmt "rcu: "), tasks.h
    ("rcu_stall", re.compile(r"^(?:rcu: )?INFO: \S+ (?:self-)?detected (?:expedited )?stalls?\b")),
    # kernel/hung_task.c
    ("hung_task", re.compile(r"^INFO: task \S.* blocked for more than \d+ seconds")),
    # arch/x86/kernel/traps.c via dumpstack.c's "Oops: %s: %04lx [#%d]"
    (
        "general_protection",
        re.compile(r"^(?:Oops: )?(?:segment-related )?general protection fault\b"),
    ),
    # arch/x86/kernel/dumpstack.c; arm64 prints "Internal error: Oops"
    ("oops", re.compile(r"^Oops: |^Internal error: Oops")),
    # kernel/panic.c
    ("panic", re.compile(r"^Kernel panic - not syncing")),
    # lib/ubsan.c
    ("ubsan", re.compile(r"^UBSAN: ")),
    # mm/kmemleak.c (pr_fmt "kmemleak: ")
    (
        "kmemleak",
        re.compile(r"^kmemleak: (?:\d+ new suspected memory leaks?|unreferenced object 0x)"),
    ),
    # kernel/panic.c __warn()
    ("warning", re.compile(r"^WARNING: (?:CPU: \d+ PID: \d+ )?at \S")),
    # lib/bug.c, arch/x86/mm/fault.c, kernel/sched, mm/slub.c ("BUG kmalloc-64 (Not tainted): ")
    (
        "bug",
        re.compile(
            r"^(?:BUG: |[Kk]ernel BUG at |BUG [\w.:-]+ \((?:Not tainted|Tainted: [^)]*)\): )"
        ),
    ),
]

# (open kind, new kind): the new headline is the same event continuing, e.g.
# "BUG: kernel NULL pointer dereference" is followed by its "Oops:".
_ABSORB = {
    ("bug", "oops"),
    ("bug", "general_protection"),
    ("general_protection", "kasan"),
    ("oops", "kasan"),
    ("kmemleak", "kmemleak"),
}

# Reports that end with "---[ end trace" (or "---[ end Kernel panic").
_TRACE_END_KINDS = {"warning", "oops", "general_protection", "ubsan", "panic"}
# KASAN/KFENCE reports are framed by a line of '='.
_RULER_END_KINDS = {"kasan", "kfence"}

_END_TRACE = re.compile(r"^---\[ end (?:trace|Kernel panic)")
_RULER = re.compile(r"^={20,}\s*$")
_EMBEDDED_TS = re.compile(r"\[\s*\d+\.\d+\](?:\[\s*[TC]\d+\])? ?")


def classify(message: str) -> str | None:
    """Kind of splat whose headline is ``message`` (printk prefix removed), or None."""
    for kind, pattern in _RULES:
        if pattern.match(message):
            return kind
    return None


def _split(line: str) -> tuple[str, bool]:
    msg, kernel = strip_printk_prefix(line)
    if not kernel:
        # Console output from the kernel can start mid-way through a guest line.
        m = _EMBEDDED_TS.search(msg)
        if m and classify(msg[m.end() :]):
            return msg[m.end() :], True
    return msg, kernel


class SplatDetector:
    """Feed console lines one by one; ``feed`` returns a splat on its headline.

    The returned Splat keeps growing (``lines``) as further lines are fed, until
    its end marker, MAX_SPLAT_LINES, or the next headline.  ``require_timestamp``:
    None (default) = ignore untimestamped headlines once any printk-prefixed line
    was seen; True/False force it.
    """

    def __init__(
        self, max_lines: int = MAX_SPLAT_LINES, require_timestamp: bool | None = None
    ) -> None:
        self.splats: list[Splat] = []
        self.max_lines = max_lines
        self.require_timestamp = require_timestamp
        self.errors: list[str] = []  # "console line N: <exception>" per line it failed on
        self._line_number = 0
        self._seen_kernel_prefix = False
        self._open: Splat | None = None
        self._open_kernel = False  # headline carried a printk prefix
        self._saw_oops = False  # a "bug" that turned into an Oops ends with "end trace"

    @property
    def current(self) -> Splat | None:
        """The splat still collecting lines, if any."""
        return self._open

    def feed(self, line: str) -> Splat | None:
        n = self._line_number
        self._line_number += 1
        try:
            return self._feed(line, n)
        except Exception as e:  # noqa: BLE001 - the streaming caller must go on; the judge won't
            self.errors.append(f"console line {n + 1}: {e!r}")
            return None

    def _feed(self, line: str, n: int) -> Splat | None:
        msg, kernel = _split(line)
        if kernel:
            self._seen_kernel_prefix = True
        need_ts = (
            self._seen_kernel_prefix if self.require_timestamp is None else self.require_timestamp
        )
        kind = classify(msg) if (kernel or not need_ts) else None
        cur = self._open
        if kind and cur is not None and (cur.kind, kind) in _ABSORB:
            self._saw_oops |= kind in ("oops", "general_protection")
            self._append(msg)
            return None
        if kind:
            splat = Splat(kind=kind, title=msg.strip(), lines=[msg], line_number=n)
            self.splats.append(splat)
            self._open, self._open_kernel, self._saw_oops = splat, kernel, False
            return splat
        if cur is None:
            return None
        if self._open_kernel and not kernel:
            return None  # guest output interleaved with the report
        if cur.kind == "kmemleak" and not (msg.startswith((" ", "kmemleak:")) or not msg):
            self._open = None  # kmemleak's object dumps are indented/prefixed
            return None
        self._append(msg)
        return None

    def _append(self, msg: str) -> None:
        cur = self._open
        if cur is None:
            return
        cur.lines.append(msg)
        stripped = msg.strip()
        kind = cur.kind
        if (
            len(cur.lines) >= self.max_lines
            or _END_TRACE.match(stripped)
            or (kind in _RULER_END_KINDS and _RULER.match(stripped))
            # No end marker: stop after the (final) stack dump.
            or (
                stripped == "</TASK>"
                and kind not in _TRACE_END_KINDS
                and kind not in _RULER_END_KINDS
                and not (kind == "bug" and self._saw_oops)
            )
        ):
            self._open = None


def scan(lines: Sequence[str] | Iterable[str]) -> tuple[list[Splat], list[str]]:
    """(all splats in a whole console log in order, the detector's errors)."""
    if isinstance(lines, str):
        lines = lines.splitlines()
    detector = SplatDetector()
    for line in lines:
        detector.feed(line)
    return detector.splats, detector.errors


def find_splats(lines: Sequence[str] | Iterable[str]) -> list[Splat]:
    """All splats in a whole console log, in order; a detector error raises
    DetectorError (a log it could not read is no evidence of a clean kernel)."""
    splats, errors = scan(lines)
    if errors:
        raise DetectorError(f"the splat detector failed on {len(errors)} line(s): {errors[0]}")
    return splats


class DetectorError(InfraError):
    """The splat detector itself failed: the console was not fully checked."""
