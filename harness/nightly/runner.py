"""`harness nightly`: run the matrix of nightly.yaml (or one shard of it), or
merge shard results, and write the nightly reports.

A nightly results directory holds nightly.json (the cells, each with its
status, exit code and attempt directories), cells/<id>/<run>/ (an ordinary
build-and-test results directory per attempt), patches/ (the series as
tested), and the reports: summary.md, summary.html, kcidb.json, junit.xml.
Reports are always regenerated from nightly.json and the cells' results.json,
so an unsharded run and a merge of its shards produce the same report.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from harness import pipeline, printer, reproduce, run
from harness.errors import (
    EXIT_INFRA,
    EXIT_INTERRUPTED,
    EXIT_OK,
    EXIT_TEST_FAILURE,
    ConfigError,
    HarnessError,
    InfraError,
)
from harness.nightly import junit_merge, kcidb
from harness.nightly import report as nightly_report
from harness.nightly.matrix import (
    BOTH,
    Cell,
    Matrix,
    Suite,
    execution_order,
    load_matrix,
    shard,
)
from harness.profile import Profile, load_profile, project_path
from harness.results import RunRecord
from harness.stages.series import read_series


class BenchUnavailable(InfraError):
    """harness.bench is missing or does not offer what the nightly calls."""


@dataclass
class Options:
    matrix: Path
    results_root: Path = Path("results")
    shard: tuple[int, int] | None = None
    retries: int | None = None  # None: the matrix file's
    previous: Path | None = None
    run_id: str | None = None
    jobs: int = 2
    accel: str | None = None
    artifact_url: str | None = None  # URL of results_root once published (KCIDB links)


def default_run_id() -> str:
    """Shards of one CI pipeline must agree on it: take the CI system's run id."""
    for var in ("GITHUB_RUN_ID", "CI_PIPELINE_ID", "BUILD_TAG"):
        if os.environ.get(var):
            return re.sub(r"[^A-Za-z0-9_.-]", "_", os.environ[var])
    return time.strftime("%Y%m%d-%H%M%S")


def _now() -> str:
    # RFC 3339, as KCIDB's date-time fields want it.
    return datetime.now(UTC).isoformat(timespec="seconds")


def _new_dir(root: Path, label: str) -> Path:
    stamp = time.strftime("%Y%m%d-%H%M%S")
    out, n = root / f"{stamp}-{label}", 1
    while out.exists():
        n += 1
        out = root / f"{stamp}-{label}-{n}"
    out.mkdir(parents=True)
    return out


def _save(out: Path, nightly: dict[str, Any]) -> None:
    tmp = out / ".nightly.json.tmp"
    tmp.write_text(json.dumps(nightly, indent=2, default=str) + "\n")
    os.replace(tmp, out / "nightly.json")


# --- one cell --------------------------------------------------------------------------------

def _attempt(rec: RunRecord, body: Callable[[], int]) -> tuple[int, str, str]:
    """Run BODY against REC like `harness build-and-test` would; return
    (exit code, cell status, message). Only an interrupt escapes."""
    try:
        code = body()
    except BenchUnavailable as e:
        rec.finish("error", e.exit_code, str(e))
        return e.exit_code, "miss", str(e)
    except HarnessError as e:
        rec.finish("error", e.exit_code, str(e))
        printer.error(str(e))
        return e.exit_code, "error", str(e)
    except KeyboardInterrupt:
        rec.finish("interrupted", EXIT_INTERRUPTED, "interrupted by a signal")
        raise
    except Exception as e:  # a harness bug in one cell must not lose the other cells
        rec.path("traceback.txt").write_text(traceback.format_exc())
        msg = f"internal error: {e!r} (see traceback.txt)"
        rec.finish("error", EXIT_INFRA, msg)
        printer.error(msg)
        return EXIT_INFRA, "error", msg
    if rec.data.get("status") == "running":
        rec.finish("pass" if code == EXIT_OK else "fail", code)
    status = "pass" if code == EXIT_OK else "fail" if code == EXIT_TEST_FAILURE else "error"
    return code, status, "" if code == EXIT_OK else str(rec.data.get("message", ""))


def _profile(cell: Cell, suite: Suite, opts: Options, ref: str) -> Profile:
    prof = load_profile(ref)
    if suite.tests:
        prof = replace(prof, tests=list(suite.tests))
    if opts.accel:
        prof = replace(prof, qemu=replace(prof.qemu, accel=opts.accel))
    return prof


def _patchset(prof: Profile, out: Path) -> list[dict[str, str]]:
    """The series as tested, copied into the results (KCIDB's patchset_files)."""
    import hashlib

    series = read_series(project_path(prof.series))
    (out / "patches").mkdir(exist_ok=True)
    entries = []
    for p in series.patches:
        # By file name (an mbox's are split into 0001-subject.patch): KCIDB
        # links patches/<name>.
        data = p.path.read_bytes()
        dest = out / "patches" / p.path.name
        if not dest.exists():
            dest.write_bytes(data)
        entries.append({"name": p.path.name, "sha256": hashlib.sha256(data).hexdigest()})
    return entries


def _bench(req: run.Request, suite: Suite, rec: RunRecord) -> int:
    # Imported here: harness/bench/ is developed separately, and a broken or missing
    # bench must cost the nightly one MISS cell, not the whole run.
    try:
        from harness import bench

        bopts = bench.Options(**suite.options)
        req = replace(req, profile=bench.configure(req.profile, bopts))
        runner = bench.run_bench
    except (ImportError, AttributeError) as e:
        raise BenchUnavailable(f"harness bench is not available: {e}") from None
    except TypeError as e:
        raise ConfigError(f"suite {suite.name}: bad bench options {suite.options}: {e}") from None
    return runner(req, bopts, rec)


def _only_declared_flaky(data: dict[str, Any]) -> bool:
    """Whether an attempt failed only in tests declared flaky (expectations.yaml
    `flaky:`, with a known cause): the one kind of failure a retry may relabel.
    A splat, a KUnit failure, an infrastructure error or any other test stays
    a failure, whatever a second boot would say."""
    declared = {u["name"] for u in data.get("unexpected", []) if u.get("flaky")}
    bad = [t["name"] for t in data.get("tests", []) if t["status"] in nightly_report.BAD]
    return (data.get("exit_code") == EXIT_TEST_FAILURE and not data.get("splats")
            and not data.get("infra_errors") and bool(bad) and all(n in declared for n in bad))


def _flaky_tests(first: dict[str, Any], final: dict[str, Any], report: list[str]) -> list[str]:
    declared = {u["name"] for u in first.get("unexpected", []) if u.get("flaky")}
    before = {t["name"]: t["status"] for t in first.get("tests", [])
              if nightly_report.owns(t["name"], report)}
    after = {t["name"]: t["status"] for t in final.get("tests", [])}
    return sorted(n for n, s in before.items() if n in declared
                  and s in nightly_report.BAD and after.get(n) in nightly_report.GOOD)


def _elsewhere(data: dict[str, Any], report: list[str]) -> str:
    """Why a run failed when none of the cell's own tests did (the kunit
    suite boots smoke; a splat fails every test of that boot)."""
    if any(t["status"] in nightly_report.BAD for t in data.get("tests", [])
           if nightly_report.owns(t["name"], report)):
        return ""
    others = [t["name"] for t in data.get("tests", []) if t["status"] in nightly_report.BAD]
    splats = [s.get("kind", "?") for s in data.get("splats", [])]
    why = ", ".join([*(f"kernel {k}" for k in splats), *others[:5]]) or "see its results"
    return f"the boot failed outside this suite's tests: {why}"


def run_cell(cell: Cell, matrix: Matrix, out: Path, opts: Options, retries: int,
             shard_label: str) -> dict[str, Any]:
    suite = matrix.suites[cell.suite]
    entry: dict[str, Any] = {**cell.as_dict(), "kind": suite.kind, "tests": list(suite.tests),
                             "report": ["bench"] if suite.kind == "bench" else list(suite.report),
                             "shard": shard_label, "attempts": [], "started": _now()}
    root = out / "cells" / cell.id
    t0 = time.monotonic()
    try:
        prof = _profile(cell, suite, opts, matrix.profile_ref(cell.profile))
        if cell.kernel in ("series", BOTH) and prof.series:
            entry["patchset"] = _patchset(prof, out)
            entry["patchset_hash"] = kcidb.patchset_hash_of_digests(
                [p["sha256"] for p in entry["patchset"]])
    except HarnessError as e:
        entry.update(status="error", exit_code=e.exit_code, message=str(e), seconds=0.0)
        printer.error(f"{cell.id}: {e}")
        return entry
    req = run.Request(profile=prof, no_series=cell.kernel == "vanilla", jobs=opts.jobs,
                      results_root=root)
    rec = RunRecord(root, f"{'bench' if suite.kind == 'bench' else 'run'}-{req.kernel}")
    rec.meta(nightly_cell=cell.id, command=["harness", "nightly", "cell", cell.id],
             project=str(project_path(".")))
    if suite.kind == "tests":
        rec.meta(reproduce=reproduce.build_and_test(matrix.profile_ref(cell.profile),
                                                    req.kernel == "vanilla", suite.tests,
                                                    opts.accel))
    entry["attempts"].append({"dir": str(rec.dir.relative_to(out))})
    image: list[run.KernelImage] = []

    def build_and_test() -> int:
        image.append(run.build_kernel(req, rec))
        return pipeline.test_kernel(req, image[0], rec)

    try:
        if suite.kind == "bench":
            code, status, msg = _attempt(rec, lambda: _bench(req, suite, rec))
        else:
            code, status, msg = _attempt(rec, build_and_test)
        entry["attempts"][-1].update(exit_code=code, status=status)
        first = final = rec.data
        for i in range(1, retries + 1):
            if not image or not _only_declared_flaky(final):
                break
            printer.stage(f"{cell.id}: exit {code}; retry {i}/{retries} of its tests")
            again = RunRecord(root, f"retry{i}-{req.kernel}")
            # The retry reuses the image: carry over what identifies it.
            again.data["metadata"] = dict(rec.data.get("metadata", {}), retry_of=rec.dir.name)
            again.data["stages"] = {k: v for k, v in rec.data.get("stages", {}).items()
                                    if k in ("source", "series", "config", "build")}
            again.save()
            entry["attempts"].append({"dir": str(again.dir.relative_to(out))})
            code, status, msg = _attempt(
                again, lambda a=again: pipeline.test_kernel(req, image[0], a))
            entry["attempts"][-1].update(exit_code=code, status=status)
            final = again.data
            if code == EXIT_OK:
                status = "flaky"
                msg = (f"failed (exit {entry['attempts'][0]['exit_code']}), "
                       f"passed on retry {i}")
                entry["flaky_tests"] = _flaky_tests(first, again.data, entry["report"])
                break
        if code == EXIT_TEST_FAILURE and not msg:
            msg = _elsewhere(final, entry["report"])
    except KeyboardInterrupt:
        code, status, msg = EXIT_INTERRUPTED, "interrupted", "interrupted by a signal"
    entry.update(status=status, exit_code=code, seconds=round(time.monotonic() - t0, 1))
    if msg:
        entry["message"] = msg
    return entry


# --- a whole run, a merge, the reports ----------------------------------------------------------

def _cell_line(entry: dict[str, Any]) -> str:
    return (f"{entry['id']}: {entry['status'].upper()} (exit {entry['exit_code']}, "
            f"{len(entry['attempts'])} attempt(s), {entry.get('seconds', 0):.0f}s)")


def run_matrix(opts: Options) -> tuple[int, Path]:
    matrix = load_matrix(opts.matrix)
    retries = matrix.retries if opts.retries is None else opts.retries
    if retries < 0:
        raise ConfigError("--retries must be >= 0")
    every = matrix.cells()
    mine = execution_order(shard(every, *opts.shard) if opts.shard else every)
    label = f"{opts.shard[0]}/{opts.shard[1]}" if opts.shard else ""
    out = _new_dir(opts.results_root,
                   f"nightly-shard{opts.shard[0]}of{opts.shard[1]}" if opts.shard else "nightly")
    nightly: dict[str, Any] = {
        "run_id": opts.run_id or default_run_id(), "started": _now(),
        "matrix": _matrix_info(matrix), "shards": [label] if label else [],
        "expected": [c.id for c in mine], "retries": retries, "cells": {},
    }
    _save(out, nightly)
    printer.stage(f"Nightly results: {out}")
    printer.stage(f"Nightly {nightly['run_id']}: {len(mine)} of {len(every)} cells"
                  + (f" (shard {label})" if label else "") + ": "
                  + ", ".join(c.id for c in mine))
    interrupted = False
    for i, cell in enumerate(mine, 1):
        printer.stage(f"=== cell {i}/{len(mine)}: {cell.id} ===")
        entry = run_cell(cell, matrix, out, opts, retries, label or "-")
        nightly["cells"][cell.id] = entry
        _save(out, nightly)
        printer.stage(_cell_line(entry))
        if entry["status"] == "interrupted":
            interrupted = True
            break
    nightly["finished"] = _now()
    _save(out, nightly)
    code = write_reports(out, opts.previous, opts.artifact_url)
    return (EXIT_INTERRUPTED if interrupted else code), out


def _matrix_info(matrix: Matrix) -> dict[str, Any]:
    return {"file": matrix.path, "digest": matrix.digest(),
            "cells": [c.id for c in matrix.cells()]}


def find_nightly_dirs(paths: list[Path]) -> list[Path]:
    """Each PATH is a nightly results directory, or holds some (CI artifact
    downloads nest them a level or two deeper)."""
    found: list[Path] = []
    for p in paths:
        if (p / "nightly.json").is_file():
            found.append(p)
            continue
        below = sorted({f.parent for pattern in ("*/nightly.json", "*/*/nightly.json",
                                                 "*/*/*/nightly.json")
                        for f in p.glob(pattern) if "cells" not in f.parts})
        if not below:
            raise ConfigError(f"--merge {p}: no nightly results (nightly.json) in it")
        found += below
    return found


def merge(paths: list[Path], opts: Options) -> tuple[int, Path]:
    dirs = find_nightly_dirs(paths)
    parts = [(d, json.loads((d / "nightly.json").read_text())) for d in dirs]
    digests = {n["matrix"]["digest"] for _, n in parts}
    if len(digests) > 1:
        raise ConfigError("--merge: these are shards of different matrices: "
                          + ", ".join(f"{d} ({n['matrix']['digest']})" for d, n in parts))
    out = _new_dir(opts.results_root, "nightly-merged")
    first = parts[0][1]
    merged: dict[str, Any] = {
        "run_id": opts.run_id or first["run_id"],
        "started": min(n.get("started", "") for _, n in parts),
        "finished": max(n.get("finished", "") for _, n in parts),
        "matrix": first["matrix"], "shards": [], "expected": first["matrix"]["cells"],
        "retries": first.get("retries", 0), "merged_from": [str(d) for d, _ in parts],
        "cells": {},
    }
    ids = {n["run_id"] for _, n in parts}
    if len(ids) > 1:
        printer.warn(f"shards carry different run ids ({', '.join(sorted(ids))}); "
                     f"using {merged['run_id']}")
    owner: dict[str, Path] = {}
    for d, n in parts:
        merged["shards"] += n.get("shards") or ["all"]
        for cid, entry in n["cells"].items():
            if cid in owner:
                raise ConfigError(f"--merge: cell {cid} is in both {owner[cid]} and {d}")
            owner[cid] = d
            if (d / "cells" / cid).is_dir():
                shutil.copytree(d / "cells" / cid, out / "cells" / cid, symlinks=True)
            merged["cells"][cid] = entry
        if (d / "patches").is_dir():
            shutil.copytree(d / "patches", out / "patches", dirs_exist_ok=True)
    merged["cells"] = dict(sorted(merged["cells"].items()))
    merged["shards"].sort(key=lambda x: [int(n) if n.isdigit() else 0 for n in x.split("/")])
    _save(out, merged)
    printer.stage(f"Nightly results: {out} (merged {len(parts)} result directories)")
    return write_reports(out, opts.previous, opts.artifact_url), out


def exit_code(entries: list[dict[str, Any]]) -> int:
    """0 when every cell passed (flaky counts as passed, and is reported);
    otherwise the highest cell exit code, like `harness matrix`."""
    bad = [e for e in entries if e.get("status") not in nightly_report.OK_CELL]
    if not bad:
        return EXIT_OK
    if any(e.get("status") == "interrupted" for e in bad):
        return EXIT_INTERRUPTED
    return max(int(e.get("exit_code") or EXIT_INFRA) for e in bad)


def write_reports(out: Path, previous: Path | None, artifact_url: str | None) -> int:
    nightly = json.loads((out / "nightly.json").read_text())
    # A cell the run promised but never recorded (a shard that did not run,
    # an interrupt) is a MISS, not a silent gap.
    for cid in nightly.get("expected", []):
        if cid not in nightly["cells"]:
            profile, kernel, suite = cid.split("-", 2)
            nightly["cells"][cid] = {
                "id": cid, "profile": profile, "kernel": kernel, "suite": suite,
                "kind": "bench" if kernel == BOTH else "tests", "attempts": [],
                "status": "miss", "exit_code": EXIT_INFRA,
                "message": "never run (missing shard, or the run was interrupted)"}
    nightly["cells"] = dict(sorted(nightly["cells"].items()))
    _save(out, nightly)
    _, cells = nightly_report.load(out)

    changes = None
    if previous:
        try:
            # CI downloads nest the previous results; take the newest nightly below.
            previous = find_nightly_dirs([previous])[-1]
            changes = nightly_report.diff(nightly_report.outcomes(previous),
                                          nightly_report.outcomes(out))
        except (ConfigError, FileNotFoundError) as e:
            printer.warn(f"--previous: {e}; no comparison")
            previous = None
    blocks = nightly_report.summary_blocks(out, nightly, cells, changes,
                                           str(previous) if previous else None)
    md = nightly_report.to_markdown(blocks)
    (out / "summary.md").write_text(md)
    (out / "summary.html").write_text(
        nightly_report.to_html(blocks, f"harness nightly {nightly.get('run_id', '')}"))
    (out / "junit.xml").write_text(
        junit_merge.merge(out, cells, f"harness nightly {nightly.get('run_id', '')}"))
    if changes is not None:
        (out / "changes.json").write_text(json.dumps(changes, indent=2) + "\n")

    code = exit_code(list(nightly["cells"].values()))
    url = f"{artifact_url.rstrip('/')}/{out.name}" if artifact_url else kcidb.url_base_for(out)
    doc = kcidb.build_document(nightly, cells, url)
    try:
        kcidb.validate(doc)
        (out / "kcidb.json").write_text(json.dumps(doc, indent=2) + "\n")
    except Exception as e:  # jsonschema.ValidationError; a bug here, but keep the rest
        (out / "kcidb.invalid.json").write_text(json.dumps(doc, indent=2) + "\n")
        printer.error(f"KCIDB document failed validation (kept as kcidb.invalid.json): "
                      f"{str(e).splitlines()[0]}")
        code = code or EXIT_INFRA
    print(md, flush=True)
    printer.stage(f"Nightly reports: {out}/summary.md, summary.html, kcidb.json, junit.xml")
    return code
