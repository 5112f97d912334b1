"""`harness patchcheck --matrix`: every prefix of the series on every cell of a matrix.

A cell is a target (architecture, compiler) plus Kconfig fragments on top
of the profile's: what the kernel test robot builds (i386, clang,
CONFIG_MEMCG=n, ...). Each cell is one patchcheck run (patchcheck.py) in its
own build directory; checkpatch.pl runs in the first cell only, since it
does not depend on the target. Cells with extra fragments (config variants)
are built, never booted: the guest tests assume the profile's config.
The table has a row per patch and a column per cell; the exit code is the
worst cell's.
"""

import json
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

from harness import patchcheck, printer, run
from harness.errors import EXIT_INTERRUPTED, EXIT_OK, ConfigError, HarnessError
from harness.patchcheck import DEPTHS, Row
from harness.profile import _build, project_path, yaml_mapping
from harness.results import RunRecord
from harness.stages.series import read_series
from harness.target import parse_target

DEFAULT_FILE = "patchcheck-matrix.yaml"


@dataclass
class Cell:
    arch: str = "x86_64"
    cc: str = "gcc"
    fragments: list[str] = field(default_factory=list)  # after the profile's
    name: str = ""

    @property
    def variant(self) -> bool:
        """A config variant: built only."""
        return bool(self.fragments)


def load_cells(path: Path) -> list[Cell]:
    """The `cells:` mapping of a matrix file, validated (errors name file and key)."""
    if not path.is_file():
        raise ConfigError(f"matrix file not found: {path}")
    data = yaml_mapping(path.read_text(), str(path))
    raw = data.get("cells")
    if not isinstance(raw, dict) or not raw:
        raise ConfigError(f"{path}: cells: expected a mapping of cell names to settings")
    cells = []
    for name, body in raw.items():
        cell = _build(Cell, body or {}, str(path), f"cells.{name}")
        cell.name = str(name)
        parse_target(cell.arch, cell.cc, f"{path}: cells.{name}")
        for f in cell.fragments:
            if not project_path(f).is_file():
                raise ConfigError(f"{path}: cells.{name}.fragments: {f} not found")
        cells.append(cell)
    return cells


def select(cells: list[Cell], names: str) -> list[Cell]:
    """--cells a,b: those cells, in the file's order."""
    if not names:
        return cells
    wanted = [n for n in names.split(",") if n]
    known = {c.name for c in cells}
    unknown = [n for n in wanted if n not in known]
    if unknown:
        raise ConfigError(f"--cells: unknown {', '.join(unknown)} (known: {', '.join(known)})")
    return [c for c in cells if c.name in wanted]


def cell_depth(cell: Cell, depth: str) -> str:
    if cell.variant and DEPTHS.index(depth) > DEPTHS.index("build"):
        return "build"
    return depth


def cell_request(req: run.Request, cell: Cell) -> run.Request:
    prof = replace(req.profile, arch=cell.arch, cc=cell.cc,
                   fragments=[*req.profile.fragments, *cell.fragments])
    return run.Request(profile=prof, profile_name=req.profile_name, jobs=req.jobs,
                       results_root=req.results_root, timings=req.timings)


def show(row: Row | None) -> str:
    """One patch in one cell, in a few characters."""
    if row is None:
        return "-"
    if not row.applied:
        return "NO APPLY" if row.reasons else "-"
    if row.build == "FAIL":
        return "BUILD"
    if row.new_warnings:
        return f"{len(row.new_warnings)} new W"
    if row.boot == "FAIL":
        return "BOOT"
    if row.tests == "FAIL":
        return "TESTS"
    return "ok" if row.code == EXIT_OK else "FAIL"


def render(patches: list[str], cells: list[Cell], rows: dict[str, list[Row]],
           seconds: dict[str, float], depth: str, codes: dict[str, int]) -> str:
    by_cell = {c: {r.patch: r for r in rs} for c, rs in rows.items()}
    first = rows[cells[0].name] if cells and cells[0].name in rows else []
    cp = {r.patch: patchcheck._cell_checkpatch(r) for r in first}
    pw = max([len(p) for p in patches] + [5])
    widths = [max(len(c.name), 8) for c in cells]
    head = f"{'#':>2}  {'patch':{pw}}  {'checkpatch':10}  " + "  ".join(
        f"{c.name:{w}}" for c, w in zip(cells, widths, strict=True))
    lines = [head, "-" * len(head)]
    for i, p in enumerate(patches, 1):
        cells_txt = [show(by_cell.get(c.name, {}).get(p)) for c in cells]
        if all(t == "-" for t in cells_txt):
            continue  # before --from
        lines.append(f"{i:>2}  {p:{pw}}  {cp.get(p, '-'):10}  " + "  ".join(
            f"{t:{w}}" for t, w in zip(cells_txt, widths, strict=True)))
    lines.append(f"{'':>2}  {'depth':{pw}}  {'':10}  " + "  ".join(
        f"{cell_depth(c, depth):{w}}" for c, w in zip(cells, widths, strict=True)))
    lines.append(f"{'':>2}  {'time':{pw}}  {'':10}  " + "  ".join(
        f"{seconds.get(c.name, 0):{w - 1}.0f}s" for c, w in zip(cells, widths, strict=True)))
    for c in cells:
        for r in rows.get(c.name, []):
            if r.code != EXIT_OK:
                lines.append(f"{c.name} / {r.patch}:")
                lines.extend(f"    {x}" for x in r.reasons[:12])
    bad = [c.name for c in cells if codes.get(c.name, EXIT_OK) != EXIT_OK]
    lines.append(f"patchcheck --matrix ({depth}): {len(cells) - len(bad)} of {len(cells)} "
                 f"cells pass" + (f"; failing: {', '.join(bad)}" if bad else ""))
    return "\n".join(lines)


def run_matrix(req: run.Request, depth: str, cells: list[Cell], rec: RunRecord,
               start: int = 1) -> int:
    if depth not in DEPTHS:
        raise ConfigError(f"--depth {depth}: expected one of {', '.join(DEPTHS)}")
    rows: dict[str, list[Row]] = {}
    codes: dict[str, int] = {}
    seconds: dict[str, float] = {}
    patches = [p.name for p in read_series(project_path(req.profile.series)).patches]
    rec.meta(depth=depth, cells=[asdict(c) for c in cells], first_checked=start)
    cells_dir = rec.path("cells")
    cells_dir.mkdir()
    for n, cell in enumerate(cells):
        d = cell_depth(cell, depth)
        printer.stage(f"##### cell {n + 1}/{len(cells)}: {cell.name} ({d}) #####")
        crec = RunRecord(cells_dir, cell.name)
        t0 = time.monotonic()
        try:
            rows[cell.name] = patchcheck.check_series(
                cell_request(req, cell), d, crec, start, checkpatch=(n == 0),
                label=f"patchcheck-{cell.name}")
            codes[cell.name] = patchcheck.exit_code(rows[cell.name])
        except HarnessError as e:
            if e.exit_code == EXIT_INTERRUPTED:
                raise
            printer.error(f"cell {cell.name}: {e}")
            rows[cell.name] = [Row(0, "(cell)", reasons=[str(e)], code=e.exit_code)]
            codes[cell.name] = e.exit_code
        finally:
            seconds[cell.name] = time.monotonic() - t0
            crec.finish("pass" if codes.get(cell.name, 1) == EXIT_OK else "fail",
                        codes.get(cell.name, EXIT_INTERRUPTED))
            rec.data["cells"] = {c: {"exit_code": codes.get(c), "seconds": seconds.get(c),
                                     "rows": [asdict(r) for r in rs]}
                                 for c, rs in rows.items()}
            rec.save()
    table = render(patches, cells, rows, seconds, depth, codes)
    rec.path("summary.txt").write_text(table + "\n")
    (rec.dir / "matrix.json").write_text(json.dumps(rec.data["cells"], indent=2) + "\n")
    print(table, flush=True)
    code = max(codes.values(), default=EXIT_OK)
    rec.finish("pass" if code == EXIT_OK else "fail", code)
    return code
