"""Total KTAP/TAP parser for a QEMU serial console log.

The console interleaves three things: ordinary kernel messages, KTAP printed by
the kernel itself (KUnit during boot; printk-timestamped, 4 spaces per nesting
level) and KTAP printed by the guest's init (no timestamp, 2 spaces per level,
kselftest_harness programs nested under ``ok K progname``).  Kernel printk lines
and guest stdout lines are parsed as two independent streams ("contexts"), so a
KUnit module loaded by a guest test cannot corrupt the guest's document, while
unstructured lines of either source land in the log of the test that is running.

Structure is recovered from indentation alone (any width, tabs expanded), never
from test names, so that it works for both nesting widths and for headerless
subtests.  ``parse`` never raises: whatever it cannot understand is kept as log,
and a line it failed on (a parser bug) is listed by ``parse_errors``, which a
judge must read: a console the parser could not read is not a passing one.

Naming: ``walk`` joins names with ``/`` (``SEP``), e.g.
``guest/file_charge/file_charge.over_limit_enomem``; '.' is not usable because
kselftest_harness names are ``fixture[.variant].test``.  Top-level documents are
named ``kernel`` (printk-timestamped source, i.e. KUnit) or ``guest``; later
documents of the same source get ``-2``, ``-3``... suffixes.  They are plain
dataclasses: callers may rename them.
"""

from __future__ import annotations

import enum
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field

SEP = "/"

# Bounds against garbage: a bogus "1..999999999" must not allocate placeholders.
MAX_PLAN = 100_000


class Status(enum.Enum):
    PASS = "PASS"
    FAIL = "FAIL"
    SKIP = "SKIP"
    XFAIL = "XFAIL"
    TODO = "TODO"
    TIMEOUT = "TIMEOUT"
    ERROR = "ERROR"
    CRASHED = "CRASHED"
    NO_TESTS = "NO_TESTS"


# Statuses that mean "something is wrong"; shared by the output modules.
FAILING = frozenset({Status.FAIL, Status.CRASHED, Status.TIMEOUT, Status.ERROR})

# Higher rank wins when aggregating a parent from its children.
_RANK = {
    Status.NO_TESTS: 0,
    Status.SKIP: 1,
    Status.TODO: 2,
    Status.XFAIL: 2,
    Status.PASS: 3,
    Status.FAIL: 4,
    Status.TIMEOUT: 5,
    Status.ERROR: 6,
    Status.CRASHED: 7,
}


@dataclass
class TestResult:
    __test__ = False  # not a pytest test class despite the name

    name: str
    status: Status
    number: int | None = None
    directive: str = ""
    reason: str = ""
    children: list[TestResult] = field(default_factory=list)
    log: list[str] = field(default_factory=list)
    expected_count: int | None = None


# --- line cleaning -----------------------------------------------------------

_PRINTK_PREFIX = re.compile(
    r"^(?P<lvl><\d{1,3}>)?(?P<ts>\[\s*\d+\.\d+\])?(?P<caller>\[\s*[TC]\d+\])?"
)
_ANSI = re.compile(r"\x1b\[[0-9;?]*[ -/]*[@-~]")
_CTRL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f]")


def strip_printk_prefix(line: str) -> tuple[str, bool]:
    """Return (message, from_kernel) for one console line.

    Removes an optional ``<N>`` syslog level, ``[  1.234567]`` timestamp and
    ``[    T1]`` caller id (plus the one space printk adds after them), trailing
    CR/LF, ANSI escapes and stray control characters.  ``from_kernel`` is True
    when any printk prefix was present.
    """
    line = _ANSI.sub("", line.rstrip("\r\n"))
    m = _PRINTK_PREFIX.match(line)
    kernel = False
    if m and m.end() > 0:
        kernel = True
        rest = line[m.end() :]
        if (m.group("ts") or m.group("caller")) and rest.startswith(" "):
            rest = rest[1:]
        line = rest
    return _CTRL.sub("", line.replace("\t", "        ")).rstrip(), kernel


# --- line classification -----------------------------------------------------

_VERSION = re.compile(r"^K?TAP version \d+$")
_SUBTEST = re.compile(r"^# Subtest: ?(.*)$")
_PLAN = re.compile(r"^1\.\.(\d+)\s*(?:#\s*(.*))?$")
_RESULT = re.compile(r"^(not ok|ok)\s+(\d+)(?=\s|$)(.*)$")
_DIRECTIVE_SPLIT = re.compile(r"(?:^|\s)#")
_DIRECTIVE = re.compile(r"^(SKIP\w*|TODO|XFAIL|TIMEOUT|ERROR)\b[:\s]*(.*)$", re.IGNORECASE)
_DIRECTIVE_STATUS = {
    "SKIP": Status.SKIP,
    "TODO": Status.TODO,
    "XFAIL": Status.XFAIL,
    "TIMEOUT": Status.TIMEOUT,
    "ERROR": Status.ERROR,
}


@dataclass
class _Result:
    ok: bool
    number: int
    name: str
    directive: str
    reason: str
    status: Status


def _parse_result(text: str) -> _Result | None:
    m = _RESULT.match(text)
    if not m:
        return None
    ok = m.group(1) == "ok"
    number = int(m.group(2))
    rest = m.group(3)
    directive = ""
    d = _DIRECTIVE_SPLIT.search(rest)
    if d:
        directive = rest[d.end() :].strip()
        rest = rest[: d.start()]
    name = rest.strip()
    if name.startswith("- "):
        name = name[2:].strip()
    elif name == "-":
        name = ""
    # Unknown directives fall back to ok/not ok (ktap.rst), e.g. XPASS, "exit=1".
    status = Status.PASS if ok else Status.FAIL
    reason = directive
    dm = _DIRECTIVE.match(directive)
    if dm:
        word = dm.group(1).upper()
        status = _DIRECTIVE_STATUS["SKIP" if word.startswith("SKIP") else word]
        reason = dm.group(2).strip()
    # kselftest.h's ksft_test_result_skip() prints "ok 10 # SKIP <name>":
    # the only name the test has is in the directive.
    if not name and status == Status.SKIP and reason and " " not in reason:
        name = reason
    return _Result(ok, number, name, directive, reason, status)


def _indent(text: str) -> int:
    return len(text) - len(text.lstrip(" "))


# --- status helpers ----------------------------------------------------------


def aggregate_status(result: TestResult) -> Status:
    """Status of ``result`` taking its subtests into account.

    The parser keeps what a test's own result line says; this combines it with
    the children (worst wins: CRASHED > ERROR > TIMEOUT > FAIL > PASS >
    XFAIL/TODO > SKIP > NO_TESTS), so an ``ok`` parent with a failing child is
    FAIL here.
    """
    best = result.status
    for child in result.children:
        s = aggregate_status(child)
        if _RANK[s] > _RANK[best]:
            best = s
    return best


def walk(result: TestResult, prefix: str = "") -> Iterator[tuple[str, TestResult]]:
    """Yield (full name, leaf) for every leaf below ``result``, in order.

    Names are joined with ``SEP`` ('/'); empty names (the root) are skipped.
    A node without children (e.g. a crashed program or empty document) is a leaf.
    """
    path = f"{prefix}{SEP}{result.name}" if prefix and result.name else prefix or result.name
    if not result.children:
        yield path, result
        return
    for child in result.children:
        yield from walk(child, path)


def counts(result: TestResult) -> dict[Status, int]:
    """Number of leaves per status (every Status is a key, zeros included)."""
    out = dict.fromkeys(Status, 0)
    for _, leaf in walk(result):
        if leaf is result and not result.name and result.status is Status.NO_TESTS:
            continue  # an empty root is not a test
        out[leaf.status] += 1
    return out


# --- parser ------------------------------------------------------------------

PARSE_ERROR = "ktap parser error: "


def parse_errors(root: TestResult) -> list[str]:
    """The lines ``parse`` failed on (with the exception), from its root's log."""
    return [line[len(PARSE_ERROR):] for line in root.log if line.startswith(PARSE_ERROR)]


def line_kind(text: str) -> tuple[int, str, str]:
    """(indentation, kind, name) of one line with its printk prefix removed:
    kind is version, plan, subtest (name: the subtest's), result (name: the
    test's) or noise, as the parser sees it."""
    kind, match = _classify(text.lstrip(" "))
    name = ""
    if isinstance(match, _Result):
        name = match.name or f"test {match.number}"
    elif kind == "subtest" and isinstance(match, re.Match):
        name = match.group(1).strip()
    return _indent(text), kind, name



@dataclass
class _Frame:
    """One open block: a document, or the subtests of a not-yet-reported test."""

    indent: int
    node: TestResult  # document, or the parent test (named by its result line later)
    is_doc: bool
    saw_header: bool = False  # version line seen for this block
    plan_reason: str | None = None  # "1..0 # SKIP why" -> "why"
    pending: list[str] = field(default_factory=list)  # lines for the next result
    name_hint: str = ""  # from "# Subtest: name"
    next_name: str = ""  # "# Subtest:" at this level names the next nested block


class _Context:
    """Parser state for one line source (kernel printk or guest stdout)."""

    def __init__(self, parser: _Parser, source: str) -> None:
        self.parser = parser
        self.source = source
        self.stack: list[_Frame] = []
        self.last_active = -1

    # -- state queries

    def complete(self) -> bool:
        """A top-level document whose plan is satisfied: stop feeding it noise."""
        if len(self.stack) != 1:
            return False
        f = self.stack[0]
        return f.node.expected_count is not None and len(f.node.children) >= (f.node.expected_count)

    def accepts(self, diag: bool, same_source: bool) -> bool:
        if not self.stack:
            return False
        if self.complete():
            return diag and same_source  # e.g. a trailing "# Totals:" line
        return True

    # -- line intake

    def add_line(self, text: str, pending: bool = True) -> None:
        # Every frame's node.log is that block's full output (a crashed program's
        # leaf then carries everything it printed); pending feeds the next result.
        for f in self.stack:
            f.node.log.append(text)
        if pending and self.stack and not self.complete():
            self.stack[-1].pending.append(text)

    def feed(self, text: str, kind: str, match: object) -> bool:
        """Handle a structural line; False means 'treat it as noise instead'."""
        c = _indent(text)
        if kind == "version":
            self._version(c, text)
        elif kind == "plan":
            assert isinstance(match, re.Match)
            return self._plan(c, text, match)
        elif kind == "subtest":
            assert isinstance(match, re.Match)
            return self._subtest(c, text, match.group(1).strip())
        elif kind == "result":
            assert isinstance(match, _Result)
            return self._result(c, text, match)
        return True

    def _version(self, c: int, text: str) -> None:
        if not self.stack or c <= self.stack[0].indent:
            self.close_all()
            self._open_doc(c, text, header=True)
            return
        top = self.stack[-1]
        if (
            top.indent == c
            and not top.saw_header
            and not top.node.children
            and (top.node.expected_count is None)
        ):
            top.saw_header = True  # "# Subtest:" (TAP14 style) came first
            self.add_line(text, pending=False)
            return
        while self.stack[-1].indent >= c:
            self._close_crashed()
        self._push(c).saw_header = True
        self.add_line(text, pending=False)

    def _plan(self, c: int, text: str, m: re.Match[str]) -> bool:
        n = int(m.group(1))
        if n > MAX_PLAN:
            return False
        reason = (m.group(2) or "").strip()
        if not self.stack:
            frame = self._open_doc(c, text, header=False)
        else:
            top = self.stack[-1]
            if c > top.indent:
                frame = self._push(c)
                self.add_line(text, pending=False)
            elif c == top.indent and top.node.expected_count is None:
                frame = top  # leading plan, or TAP's trailing plan
                self.add_line(text, pending=False)
            else:
                return False
        frame.node.expected_count = n
        frame.plan_reason = reason
        return True

    def _subtest(self, c: int, text: str, name: str) -> bool:
        if not self.stack:
            return False
        top = self.stack[-1]
        if c > top.indent:
            self._push(c).name_hint = name
        elif c == top.indent and not top.is_doc and not top.node.children and not top.name_hint:
            top.name_hint = name  # KUnit: "KTAP version 1" then "# Subtest: suite"
        elif c == top.indent:
            top.next_name = name  # TAP14: header at parent level before the block
        else:
            return False
        self.add_line(text, pending=False)
        return True

    def _result(self, c: int, text: str, r: _Result) -> bool:
        if not self.stack:
            if r.number != 1:
                return False  # a stray "ok 7 ..." is not the start of a document
            self._open_doc(c, None, header=False)
        if c < self.stack[0].indent:
            self._reroot(c)
        while len(self.stack) > 1 and self.stack[-1].indent > c:
            frame = self.stack.pop()
            if self.stack[-1].indent <= c:
                # The parent's own result line; indentation between levels snaps
                # to the parent rather than losing the line.
                self._finish_block(frame, r)
                self.add_line(text, pending=False)
                return True
            self._finish_crashed(frame)
        top = self.stack[-1]
        if top.indent < c:
            top = self._push(c)  # headerless subtests (e.g. KSFT_TAP_LEVEL set)
        leaf = TestResult(
            name=r.name or f"test {r.number}",
            status=r.status,
            number=r.number,
            directive=r.directive,
            reason=r.reason,
            log=top.pending,
        )
        top.pending = []
        top.node.children.append(leaf)
        self.add_line(text, pending=False)
        return True

    # -- frame management

    def _open_doc(self, c: int, text: str | None, header: bool) -> _Frame:
        node = TestResult(name=self.parser.doc_name(self.source), status=Status.CRASHED)
        self.parser.root.children.append(node)
        frame = _Frame(indent=c, node=node, is_doc=True, saw_header=header)
        self.stack = [frame]
        if text is not None:
            self.add_line(text, pending=False)
        return frame

    def _push(self, c: int) -> _Frame:
        parent = self.stack[-1]
        # Diagnostics printed before a nested block belong to the test it reports.
        node = TestResult(name="", status=Status.CRASHED, log=parent.pending)
        parent.pending = []
        frame = _Frame(indent=c, node=node, is_doc=False, name_hint=parent.next_name)
        parent.next_name = ""
        self.stack.append(frame)
        return frame

    def _reroot(self, c: int) -> None:
        """A result line left of the document: the document was really a subtest
        block of a headerless outer document (e.g. init printed no header)."""
        old = self.stack[0]
        doc = TestResult(name=old.node.name, status=Status.CRASHED, log=list(old.node.log))
        root = self.parser.root.children
        for i, child in enumerate(root):
            if child is old.node:
                root[i] = doc
        old.node.name = ""
        old.is_doc = False
        self.stack.insert(0, _Frame(indent=c, node=doc, is_doc=True))

    def _add_missing(self, frame: _Frame) -> None:
        node = frame.node
        if node.expected_count is None:
            return
        trailing = frame.pending
        frame.pending = []
        for k in range(len(node.children) + 1, node.expected_count + 1):
            node.children.append(
                TestResult(
                    name=f"test {k} (never reported)",
                    status=Status.CRASHED,
                    number=k,
                    reason="planned but never reported",
                    # Output after the last result is what the next test printed.
                    log=trailing,
                )
            )
            trailing = []

    def _finish_block(self, frame: _Frame, r: _Result) -> None:
        self._add_missing(frame)
        node = frame.node
        node.name = r.name or frame.name_hint or f"test {r.number}"
        node.status = r.status
        node.number = r.number
        node.directive = r.directive
        node.reason = r.reason
        self.stack[-1].node.children.append(node)
        self.stack[-1].pending = []

    def _finish_crashed(self, frame: _Frame) -> None:
        self._add_missing(frame)
        node = frame.node
        parent = self.stack[-1]
        number = len(parent.node.children) + 1
        node.name = frame.name_hint or f"test {number} (never reported)"
        node.status = Status.CRASHED
        node.number = number
        node.reason = "no result line (output cut off or test crashed)"
        parent.node.children.append(node)

    def _close_crashed(self) -> None:
        self._finish_crashed(self.stack.pop())

    def close_all(self) -> None:
        while len(self.stack) > 1:
            self._close_crashed()
        if self.stack:
            frame = self.stack.pop()
            self._add_missing(frame)
            node = frame.node
            if node.children:
                node.status = aggregate_status(
                    TestResult(name="", status=Status.NO_TESTS, children=node.children)
                )
            elif node.expected_count == 0:
                # "1..0 # SKIP why" is kselftest's "nothing to run here".
                skip = (frame.plan_reason or "").upper().startswith("SKIP")
                node.status = Status.SKIP if skip else Status.NO_TESTS
                node.reason = frame.plan_reason or ""
                node.directive = frame.plan_reason or ""
            else:
                node.status = Status.CRASHED
                node.reason = "document has no plan and no results"


class _Parser:
    def __init__(self) -> None:
        self.root = TestResult(name="", status=Status.NO_TESTS)
        self.contexts = {"kernel": _Context(self, "kernel"), "guest": _Context(self, "guest")}
        self._doc_counts: dict[str, int] = {}
        self._line_no = 0

    def doc_name(self, source: str) -> str:
        n = self._doc_counts.get(source, 0) + 1
        self._doc_counts[source] = n
        return source if n == 1 else f"{source}-{n}"

    def feed(self, raw: str) -> None:
        self._line_no += 1
        text, kernel = strip_printk_prefix(raw)
        body = text.lstrip(" ")
        source = "kernel" if kernel else "guest"
        ctx = self.contexts[source]
        kind, match = _classify(body)
        if kind != "noise" and ctx.feed(text, kind, match):
            ctx.last_active = self._line_no
            return
        diag = body.startswith("#")
        # Noise goes to the test that is running: diagnostics prefer their own
        # source, other lines the most recently active document.
        candidates = [c for c in self.contexts.values() if c.accepts(diag, c is ctx)]
        if not candidates:
            return
        if diag and ctx in candidates:
            target = ctx
        else:
            target = max(candidates, key=lambda c: c.last_active)
        target.add_line(text)

    def finish(self) -> TestResult:
        for ctx in self.contexts.values():
            ctx.close_all()
        if self.root.children:
            self.root.status = aggregate_status(
                TestResult(name="", status=Status.NO_TESTS, children=self.root.children)
            )
        return self.root


def _classify(body: str) -> tuple[str, object]:
    if _VERSION.match(body):
        return "version", None
    r = _parse_result(body)
    if r is not None:
        return "result", r
    m = _PLAN.match(body)
    if m:
        return "plan", m
    m = _SUBTEST.match(body)
    if m:
        return "subtest", m
    return "noise", None


def parse(lines: Iterable[str] | str) -> TestResult:
    """Parse a whole console log into a tree; never raises.

    Returns a root named "" whose children are the top-level KTAP/TAP documents
    in the order they started.  Lines outside any document are dropped (the raw
    console log is kept elsewhere).  Statuses: a missing result for a test the
    plan promised, or a subtest block that never got its result line, is
    CRASHED; a document's status is the aggregate of its children.
    """
    parser = _Parser()
    if isinstance(lines, str):
        lines = lines.splitlines()
    try:
        for item in lines:
            if isinstance(item, bytes):
                item = item.decode("utf-8", "replace")
            for line in str(item).splitlines() or [""]:
                try:
                    parser.feed(line)
                except Exception as exc:  # noqa: BLE001 - totality; parse_errors tells
                    parser.root.log.append(f"{PARSE_ERROR}{exc!r} on line {parser._line_no} "
                                           f"{line!r}")
        return parser.finish()
    except Exception as exc:  # noqa: BLE001 - e.g. the iterable itself failed
        parser.root.log.append(f"{PARSE_ERROR}{exc!r}")
        try:
            return parser.finish()
        except Exception:  # noqa: BLE001
            return parser.root
