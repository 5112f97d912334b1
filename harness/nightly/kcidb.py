"""KCIDB (KernelCI's common results schema) from a nightly's cells.

checkouts (vanilla: the base; series: the base + patchset_files) -> builds
(one per profile and kernel) -> tests (one per reported test leaf, plus one
per kernel splat, plus a bench figure per op). Validated with kcidb-io.
"""

from __future__ import annotations

import hashlib
import re
from pathlib import Path
from typing import Any
from urllib.parse import quote

ORIGIN = "harness"

# Harness statuses (ktap.Status values) -> KCIDB's FAIL > ERROR > MISS > PASS > DONE > SKIP.
# XFAIL ran and failed as declared: the code under test does fail it (vanilla
# lacks the feature), so FAIL, with misc.expected = true.
STATUS = {
    "PASS": "PASS", "XFAIL": "FAIL", "FAIL": "FAIL", "CRASHED": "ERROR", "TIMEOUT": "ERROR",
    "ERROR": "ERROR", "SKIP": "SKIP", "NO_TESTS": "SKIP", "TODO": "SKIP",
}
_PATH_BAD = re.compile(r"[^A-Za-z0-9_-]+")


def patchset_hash(patches: list[bytes]) -> str:
    """KCIDB's patchset_hash: sha256 over the newline-terminated sha256 hex digests of
    each patch, in order (`sha256sum *.patch | cut -c-64 | sha256sum`); "" for none."""
    if not patches:
        return ""
    lines = "".join(hashlib.sha256(p).hexdigest() + "\n" for p in patches)
    return hashlib.sha256(lines.encode()).hexdigest()


def patchset_hash_of_digests(digests: list[str]) -> str:
    if not digests:
        return ""
    return hashlib.sha256("".join(d + "\n" for d in digests).encode()).hexdigest()


def test_path(name: str) -> str:
    """'guest/file_charge/over_limit.enomem' -> 'guest.file_charge.over_limit.enomem'.

    KCIDB paths are dot-separated [A-Za-z0-9_-] components; kselftest_harness's
    fixture.test names nest one level deeper, which is what they mean anyway.
    """
    parts = [_PATH_BAD.sub("_", p).strip("_") for p in re.split(r"[/.]", name)]
    return ".".join(p for p in parts if p)


def _uri(base: str, rel: str) -> str:
    return f"{base.rstrip('/')}/{quote(rel)}"


def _ts(stamp: str | None) -> str | None:
    return stamp or None


def _compact(d: dict[str, Any]) -> dict[str, Any]:
    # KCIDB: "no properties can be null"; omit what we don't know.
    return {k: v for k, v in d.items() if v not in (None, "", [], {})}


def build_document(nightly: dict[str, Any], cells: dict[str, dict[str, Any]],
                   url_base: str) -> dict[str, Any]:
    """The KCIDB document. CELLS maps cell id -> loaded cell data (see
    nightly_report.load_cells): entry, results (final attempt's results.json), bench."""
    from kcidb_io.schema import LATEST

    run_id = nightly["run_id"]
    checkouts: dict[str, dict[str, Any]] = {}
    builds: dict[str, dict[str, Any]] = {}
    tests: list[dict[str, Any]] = []

    def checkout_for(kernel: str, meta: dict[str, Any], entry: dict[str, Any]) -> str:
        cid = f"{ORIGIN}:{run_id}-{kernel}"
        if cid in checkouts:
            return cid
        patches = (entry.get("patchset") or []) if kernel == "series" else []
        base = meta.get("base") or ""
        checkouts[cid] = _compact({
            "id": cid, "origin": ORIGIN,
            "tree_name": "debian-linux-source-6.12" if "linux-source" in str(
                meta.get("source", "")) else None,
            "git_commit_hash": base if re.fullmatch(r"[0-9a-f]{40}", base) else None,
            "git_commit_name": f"v{meta['base_version']}" if meta.get("base_version") else None,
            "patchset_files": [{"name": p["name"], "url": _uri(url_base, f"patches/{p['name']}")}
                               for p in patches],
            "comment": (f"{meta.get('source', '')} + {len(patches)} patches" if patches
                        else str(meta.get("source", "")) or None),
            "start_time": _ts(nightly.get("started")),
            "misc": {"head": meta.get("head"), "commits": meta.get("commits") or []}
            if meta.get("head") else None,
        })
        # Always present, even empty: the base alone has an empty patchset.
        checkouts[cid]["patchset_hash"] = patchset_hash_of_digests(
            [p["sha256"] for p in patches])
        return cid

    def build_for(profile: str, kernel: str, meta: dict[str, Any], entry: dict[str, Any],
                  stages: dict[str, Any], rel: str) -> str:
        bid = f"{ORIGIN}:{run_id}-{profile}-{kernel}"
        if bid in builds:
            return bid
        build = stages.get("build", {})
        status = {"pass": "PASS", "fail": "FAIL"}.get(build.get("status", ""))
        if status is None and any(stages.get(s, {}).get("status") == "fail"
                                  for s in ("series", "config")):
            status = "FAIL"
        builds[bid] = _compact({
            "id": bid, "origin": ORIGIN,
            "checkout_id": checkout_for(kernel, meta, entry),
            "architecture": "x86_64", "config_name": profile,
            "comment": build.get("release"),
            "duration": build.get("seconds"),
            "status": status or "MISS",
            "log_url": _uri(url_base, f"{rel}/build.log") if rel else None,
            "config_url": _uri(url_base, f"{rel}/kernel.config") if rel else None,
            "misc": {"warnings": build["warnings"]} if "warnings" in build else None,
        })
        return bid

    for cell_id, c in sorted(cells.items()):
        entry, res = c["entry"], c.get("results") or {}
        meta, stages, rel = res.get("metadata", {}), res.get("stages", {}), c.get("rel", "")
        profile, kernel = entry["profile"], entry["kernel"]
        kernels = ["vanilla", "series"] if kernel == "both" else [kernel]
        bids = {k: build_for(profile, k, {**meta, **(c.get("bench", {}).get("kernels", {})
                                                     .get(k, {}))}, entry, stages, rel)
                for k in kernels}
        # A cell is a test node too, so a cell that never got to its tests
        # (build failure, harness error, missing) still shows up.
        cell_status = {"pass": "PASS", "flaky": "PASS", "fail": "FAIL", "error": "ERROR",
                       "miss": "MISS", "interrupted": "MISS"}.get(entry.get("status", ""), "MISS")
        for k, bid in bids.items():
            tests.append(_compact({
                "id": f"{ORIGIN}:{run_id}-{cell_id}-{k}", "origin": ORIGIN, "build_id": bid,
                "path": test_path(entry["suite"]), "status": cell_status,
                "comment": entry.get("message") or f"cell {cell_id}: {entry.get('status')}",
                "log_url": _uri(url_base, c["console"]) if c.get("console") else None,
                "duration": entry.get("seconds"),
                "misc": {"cell": cell_id, "exit_code": entry.get("exit_code"),
                         "attempts": len(entry.get("attempts", [])),
                         "flaky": entry.get("status") == "flaky"},
            }))
        flaky = set(entry.get("flaky_tests", []))
        for t in c.get("tests", []):
            status = STATUS.get(t["status"], "ERROR")
            path = test_path(t["name"])
            tests.append(_compact({
                "id": f"{ORIGIN}:{run_id}-{cell_id}:{path}", "origin": ORIGIN,
                "build_id": bids[kernels[0]], "path": path, "status": status,
                "comment": t.get("reason") or None,
                "misc": _compact({"harness_status": t["status"],
                                  "expected": True if t["status"] == "XFAIL" else None,
                                  "flaky": True if t["name"] in flaky else None}),
            }))
        for i, s in enumerate(res.get("splats", []), 1):
            tests.append(_compact({
                "id": f"{ORIGIN}:{run_id}-{cell_id}:splat-{i}", "origin": ORIGIN,
                "build_id": bids[kernels[0]], "path": f"kernel.splat.{test_path(s['kind'])}",
                "status": "FAIL", "comment": s.get("title"),
                "log_excerpt": "\n".join(s.get("lines", []))[:16000],
            }))
        for r in c.get("bench", {}).get("results", []):
            if r.get("kernel") not in bids or r.get("median") is None:
                continue
            path = f"bench.{test_path(str(r['op']))}.{test_path(str(r['cgroup']))}"
            tests.append({
                "id": f"{ORIGIN}:{run_id}-{cell_id}-{r['kernel']}:{path}", "origin": ORIGIN,
                "build_id": bids[r["kernel"]], "path": path, "status": "DONE",
                "number": {"value": float(r["median"]), "unit": "ns"},
                "misc": {k: r[k] for k in ("n", "min", "max", "spread") if k in r},
            })
    doc = {"version": {"major": LATEST.major, "minor": LATEST.minor},
           "checkouts": list(checkouts.values()), "builds": list(builds.values()),
           "tests": tests}
    return doc


def validate(doc: dict[str, Any]) -> None:
    """Raise jsonschema.ValidationError if DOC is not valid KCIDB."""
    from kcidb_io.schema import LATEST

    LATEST.validate(doc)


def url_base_for(directory: Path) -> str:
    return directory.resolve().as_uri()
