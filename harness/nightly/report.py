"""The nightly's merged summary: vanilla-vs-series matrix, bench table, flaky
tests, and what changed since a previous nightly; as Markdown and as one
self-contained HTML page, both rendered from the same blocks.

Everything is read back from a nightly results directory (nightly.json and
each cell's results.json), so an unsharded run and a merge of shards go
through exactly the same code.
"""

from __future__ import annotations

import html
import json
from pathlib import Path
from typing import Any

BAD = frozenset({"FAIL", "CRASHED", "TIMEOUT", "ERROR"})
GOOD = frozenset({"PASS", "XFAIL", "TODO"})
SKIPPED = frozenset({"SKIP", "NO_TESTS"})
OK_CELL = frozenset({"pass", "flaky"})
_SHOW = {"PASS": "pass", "XFAIL": "declared fail", "SKIP": "skip", "NO_TESTS": "no tests"}

Block = tuple[str, Any]  # ("h1"|"h2"|"h3"|"p"|"pre"|"svg", text) or ("table", (head, rows))


# --- loading --------------------------------------------------------------------------------

def _read_json(path: Path) -> dict[str, Any]:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return {}


def owns(name: str, report: list[str]) -> bool:
    return name.split("/", 1)[0] in report


def load_cells(directory: Path, nightly: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """cell id -> {entry, rel (final attempt dir), results, tests (owned), bench, console}."""
    cells: dict[str, dict[str, Any]] = {}
    for cid, entry in sorted(nightly.get("cells", {}).items()):
        c: dict[str, Any] = {"entry": entry, "rel": "", "results": {}, "tests": []}
        attempts = entry.get("attempts") or []
        if attempts:
            rel = attempts[-1]["dir"]
            d = directory / rel
            c["rel"], c["results"] = rel, _read_json(d / "results.json")
            c["tests"] = [t for t in c["results"].get("tests", [])
                          if owns(t["name"], entry.get("report", ["guest"]))]
            if (d / "console.log").is_file():
                c["console"] = f"{rel}/console.log"
            if (d / "bench.json").is_file():
                c["bench"] = _read_json(d / "bench.json")
        cells[cid] = c
    return cells


def load(directory: Path) -> tuple[dict[str, Any], dict[str, dict[str, Any]]]:
    nightly = _read_json(directory / "nightly.json")
    if not nightly:
        raise FileNotFoundError(f"{directory}: no nightly.json (not a nightly results directory)")
    return nightly, load_cells(directory, nightly)


def outcomes(directory: Path) -> dict[str, dict[str, Any]]:
    """Normalized results, free of times and paths: what two runs of the same
    matrix should agree on (used by --previous and by the shard/merge test)."""
    _, cells = load(directory)
    return {cid: {"status": c["entry"].get("status"), "exit_code": c["entry"].get("exit_code"),
                  "tests": {t["name"]: t["status"] for t in c["tests"]},
                  "flaky_tests": sorted(c["entry"].get("flaky_tests", []))}
            for cid, c in cells.items()}


# --- diff against a previous nightly ---------------------------------------------------------

def diff(previous: dict[str, dict[str, Any]], current: dict[str, dict[str, Any]]
         ) -> dict[str, list[str]]:
    """New failures, fixed, newly skipped: per test (cell: name: was -> now), and per
    cell for cells that stopped (or started) reaching their tests at all."""
    out: dict[str, list[str]] = {"new_failures": [], "fixed": [], "newly_skipped": []}
    for cid, cur in sorted(current.items()):
        prev = previous.get(cid)
        if prev is None:
            continue
        was_ok, now_ok = prev["status"] in OK_CELL, cur["status"] in OK_CELL
        if was_ok and not now_ok and not cur["tests"]:
            out["new_failures"].append(f"{cid}: cell {prev['status']} -> {cur['status']} "
                                       f"(exit {cur['exit_code']})")
        if not was_ok and now_ok and not prev["tests"]:
            out["fixed"].append(f"{cid}: cell {prev['status']} -> {cur['status']}")
        for name, now in sorted(cur["tests"].items()):
            was = prev["tests"].get(name)
            line = f"{cid}: {name}: {was or 'absent'} -> {now}"
            if now in BAD and was not in BAD:
                out["new_failures"].append(line)
            elif was in BAD and now not in BAD and now not in SKIPPED:
                out["fixed"].append(line)
            elif now in SKIPPED and was is not None and was not in SKIPPED:
                out["newly_skipped"].append(line)
    return out


# --- blocks ---------------------------------------------------------------------------------

def _tally(statuses: list[str]) -> str:
    if not statuses:
        return "-"
    counts: dict[str, int] = {}
    for s in statuses:
        counts[s] = counts.get(s, 0) + 1
    order = sorted(counts, key=lambda s: (s not in BAD, s not in SKIPPED, s))
    return ", ".join(f"{counts[s]} {_SHOW.get(s, s)}" + ("" if s not in BAD else " (!)")
                     for s in order)


def _group(name: str) -> str:
    return "/".join(name.split("/")[:2])


def _verdict(entry: dict[str, Any]) -> str:
    st = entry.get("status", "?")
    if st in ("pass", None):
        return "PASS"
    text = st.upper()
    if entry.get("exit_code") not in (None, 0):
        text += f" (exit {entry['exit_code']})"
    return text


def matrix_blocks(cells: dict[str, dict[str, Any]]) -> list[Block]:
    """Per profile: one row per suite/program with both kernels side by side,
    then a row per leaf that did not plainly pass on both."""
    blocks: list[Block] = []
    profiles = sorted({c["entry"]["profile"] for c in cells.values()})
    for profile in profiles:
        rows: list[list[str]] = []
        suites = sorted({c["entry"]["suite"] for c in cells.values()
                         if c["entry"]["profile"] == profile and c["entry"]["kernel"] != "both"})
        for suite in suites:
            by_kernel = {c["entry"]["kernel"]: c for c in cells.values()
                         if c["entry"]["profile"] == profile and c["entry"]["suite"] == suite}
            rows.append([f"**{suite}**", "cell verdict",
                         *(_verdict(by_kernel[k]["entry"]) if k in by_kernel else "not in matrix"
                           for k in ("vanilla", "series"))])
            tests = {k: {t["name"]: t["status"] for t in by_kernel[k]["tests"]}
                     for k in by_kernel}
            groups = list(dict.fromkeys(_group(n) for k in ("vanilla", "series")
                                        for n in tests.get(k, {})))
            for g in groups:
                rows.append([suite, g, *(_tally([s for n, s in tests.get(k, {}).items()
                                                  if _group(n) == g])
                                         for k in ("vanilla", "series"))])
                leaves = list(dict.fromkeys(n for k in ("vanilla", "series")
                                            for n in tests.get(k, {}) if _group(n) == g))
                for n in leaves:
                    st = [tests.get(k, {}).get(n) for k in ("vanilla", "series")]
                    flaky = {k for k in by_kernel
                             if n in by_kernel[k]["entry"].get("flaky_tests", [])}
                    if all(s == "PASS" for s in st) and not flaky:
                        continue
                    rows.append(["", f"  {n[len(g) + 1:] or n}",
                                 *(_SHOW.get(s, s) if s else "-" for s in st)])
                    if flaky:
                        rows[-1][1] += f" (flaky on {', '.join(sorted(flaky))})"
        blocks += [("h3", f"profile {profile}"),
                   ("table", (["suite", "tests", "vanilla", "series"], rows))]
    return blocks


def bench_blocks(directory: Path, cells: dict[str, dict[str, Any]]) -> list[Block]:
    blocks: list[Block] = []
    for cid, c in sorted(cells.items()):
        if c["entry"].get("kind") != "bench":
            continue
        blocks.append(("h3", f"{cid}: {_verdict(c['entry'])}"))
        d = directory / c["rel"] if c["rel"] else None
        text = (d / "bench.txt").read_text() if d and (d / "bench.txt").is_file() else ""
        if text:
            blocks.append(("pre", text.rstrip()))
        else:
            blocks.append(("p", c["entry"].get("message") or "no benchmark table was written"))
        if d and (d / "bench.svg").is_file():
            blocks.append(("svg", (d / "bench.svg").read_text()))
    return blocks


def summary_blocks(directory: Path, nightly: dict[str, Any], cells: dict[str, dict[str, Any]],
                   changes: dict[str, list[str]] | None, previous: str | None) -> list[Block]:
    entries = [c["entry"] for c in cells.values()]
    bad = [e for e in entries if e.get("status") not in OK_CELL]
    flaky = [e for e in entries if e.get("status") == "flaky" or e.get("flaky_tests")]
    head = "PASSED" if not bad else f"FAILED: {len(bad)} of {len(entries)} cells"
    blocks: list[Block] = [("h1", f"Nightly {nightly.get('run_id', '')}: {head}")]
    kernel = next((c["results"].get("metadata", {}) for c in cells.values()
                   if c["results"].get("metadata", {}).get("base")), {})
    series = next((e for e in entries if e.get("patchset")), {})
    facts = []
    if kernel:
        facts.append(f"base {kernel.get('base_version', '?')} "
                     f"({str(kernel.get('base', ''))[:12]})")
    if series:
        facts.append(f"series: {len(series['patchset'])} patches, KCIDB patchset_hash "
                     f"{series.get('patchset_hash', '')[:16]}")
    shards = nightly.get("shards") or []
    facts.append(f"{len(entries)} cells" + (f" from shards {', '.join(shards)}" if shards else "")
                 + f"; matrix {nightly.get('matrix', {}).get('file', '')}")
    blocks.append(("p", "; ".join(facts)))
    if bad:
        blocks.append(("p", "Regressed or not run: " + ", ".join(
            f"{e['id']} ({_verdict(e)})" for e in bad)))
    blocks += [("h2", "Vanilla vs series"), *matrix_blocks(cells)]
    if any(c["entry"].get("kind") == "bench" for c in cells.values()):
        blocks += [("h2", "Benchmark"), *bench_blocks(directory, cells)]
    blocks.append(("h2", "Flaky"))
    if flaky:
        rows = [[e["id"], ", ".join(e.get("flaky_tests", [])) or "(cell)",
                 str(len(e.get("attempts", [])))] for e in flaky]
        blocks.append(("table", (["cell", "failed, then passed on a retry", "attempts"], rows)))
    else:
        blocks.append(("p", "none"))
    if changes is not None:
        blocks.append(("h2", f"Changes since {previous}"))
        for key, title in (("new_failures", "New failures"), ("fixed", "Fixed"),
                           ("newly_skipped", "Newly skipped")):
            items = changes.get(key, [])
            blocks.append(("p", f"**{title}** ({len(items)})" + (":" if items else "")))
            if items:
                blocks.append(("pre", "\n".join(items)))
    rows = [[e["id"], _verdict(e), str(e.get("exit_code", "-")), str(len(e.get("attempts", []))),
             f"{e['seconds']:.0f}s" if isinstance(e.get("seconds"), (int, float)) else "-",
             e.get("shard", "-"), cells[e["id"]]["rel"] or "-"] for e in entries]
    blocks += [("h2", "Cells"),
               ("table", (["cell", "verdict", "exit", "attempts", "time", "shard", "results"],
                          rows))]
    messages = [f"{e['id']}: {e['message']}" for e in entries if e.get("message")]
    if messages:
        blocks.append(("pre", "\n".join(messages)))
    return blocks


# --- rendering ------------------------------------------------------------------------------

def _md_cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def to_markdown(blocks: list[Block]) -> str:
    out: list[str] = []
    for kind, body in blocks:
        if kind in ("h1", "h2", "h3"):
            out += ["#" * int(kind[1]) + " " + body, ""]
        elif kind == "p":
            out += [body, ""]
        elif kind == "pre":
            out += ["```", body, "```", ""]
        elif kind == "table":
            head, rows = body
            out.append("| " + " | ".join(head) + " |")
            out.append("|" + "---|" * len(head))
            out += ["| " + " | ".join(_md_cell(x) for x in r) + " |" for r in rows]
            out.append("")
        # svg: the Markdown links to bench.svg through the cell's directory instead
    return "\n".join(out).rstrip() + "\n"


_CSS = """body{font:14px/1.4 system-ui,sans-serif;margin:2em;max-width:80em}
table{border-collapse:collapse;margin:.5em 0}td,th{border:1px solid #ccc;padding:2px 8px;
text-align:left;vertical-align:top}th{background:#eee}pre{background:#f6f6f6;padding:.5em;
overflow-x:auto}.bad{background:#fdd}.flaky{background:#ffd}.ok{background:#dfd}"""


def _html_inline(text: str) -> str:
    # Only the **bold** the blocks use; everything else is escaped.
    parts = html.escape(text).split("**")
    return "".join(f"<b>{p}</b>" if i % 2 else p for i, p in enumerate(parts))


def _css_class(text: str) -> str:
    t = text.upper()
    if "(!)" in text or t.startswith(("FAIL", "ERROR", "MISS", "INTERRUPTED")):
        return ' class="bad"'
    if "FLAKY" in t:
        return ' class="flaky"'
    if t.startswith("PASS"):
        return ' class="ok"'
    return ""


def to_html(blocks: list[Block], title: str) -> str:
    out = ["<!DOCTYPE html>", '<html lang="en"><head><meta charset="utf-8">',
           f"<title>{html.escape(title)}</title><style>{_CSS}</style></head><body>"]
    for kind, body in blocks:
        if kind in ("h1", "h2", "h3"):
            out.append(f"<{kind}>{html.escape(body)}</{kind}>")
        elif kind == "p":
            out.append(f"<p>{_html_inline(body)}</p>")
        elif kind == "pre":
            out.append(f"<pre>{html.escape(body)}</pre>")
        elif kind == "svg":
            out.append(body[body.find("<svg"):] if "<svg" in body else "")
        elif kind == "table":
            head, rows = body
            out.append("<table><tr>" + "".join(f"<th>{html.escape(h)}</th>" for h in head)
                       + "</tr>")
            for r in rows:
                out.append("<tr>" + "".join(f"<td{_css_class(x)}>{_html_inline(x)}</td>"
                                            for x in r) + "</tr>")
            out.append("</table>")
    out.append("</body></html>")
    return "\n".join(out) + "\n"
