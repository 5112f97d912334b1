"""patchcheck_matrix.py without builds: the matrix file, cell selection, the table."""

from pathlib import Path

import pytest

from harness import patchcheck_matrix as pm
from harness.errors import EXIT_BUILD, EXIT_TEST_FAILURE, ConfigError
from harness.patchcheck import Row

ROOT = Path(__file__).resolve().parents[1]


def test_the_project_matrix_has_every_kind_of_cell():
    cells = pm.load_cells(ROOT / pm.DEFAULT_FILE)
    names = [c.name for c in cells]
    assert len(cells) >= 5
    assert {"x86_64", "x86_64-clang", "i386", "arm64", "memcg-off"} <= set(names)
    by = {c.name: c for c in cells}
    assert by["arm64"].arch == "arm64" and not by["arm64"].variant
    assert by["memcg-off"].variant


@pytest.mark.parametrize("text,msg", [
    ("cells: []\n", "cells: expected a mapping"),
    ("cells:\n  a: {arhc: arm64}\n", "m.yaml: cells.a.arhc: unknown key"),
    ("cells:\n  a: {arch: mips}\n", "cells.a: unknown arch 'mips'"),
    ("cells:\n  a: {fragments: [nope.config]}\n", "cells.a.fragments: nope.config not found"),
])
def test_bad_matrix_files_name_file_and_key(tmp_path, text, msg):
    f = tmp_path / "m.yaml"
    f.write_text(text)
    with pytest.raises(ConfigError, match=msg):
        pm.load_cells(f)


def test_select_keeps_the_file_order_and_names_unknown_cells():
    cells = [pm.Cell(name="a"), pm.Cell(name="b"), pm.Cell(name="c")]
    assert [c.name for c in pm.select(cells, "c,a")] == ["a", "c"]
    assert pm.select(cells, "") == cells
    with pytest.raises(ConfigError, match="unknown x"):
        pm.select(cells, "a,x")


def test_variants_are_built_never_booted():
    variant = pm.Cell(fragments=["k.config"], name="v")
    assert pm.cell_depth(variant, "test") == "build"
    assert pm.cell_depth(variant, "objects") == "objects"
    assert pm.cell_depth(pm.Cell(name="arm64", arch="arm64"), "test") == "test"


def test_table_row_per_patch_column_per_cell():
    cells = [pm.Cell(name="x86_64"), pm.Cell(name="memcg-off", fragments=["f"])]
    ok = Row(1, "0001-a.patch", applied=True, build="pass", warnings_checked=True)
    bad = Row(1, "0001-a.patch", applied=True, build="FAIL", code=EXIT_BUILD,
              reasons=["kernel build failed"])
    warn = Row(2, "0002-b.patch", applied=True, build="pass", warnings_checked=True,
               new_warnings=["fs/file.c: warning: x"], code=EXIT_TEST_FAILURE)
    text = pm.render(["0001-a.patch", "0002-b.patch"], cells,
                     {"x86_64": [ok, warn], "memcg-off": [bad]}, {"x86_64": 12.0},
                     "build", {"x86_64": EXIT_TEST_FAILURE, "memcg-off": EXIT_BUILD})
    lines = text.splitlines()
    assert lines[2].split()[1:] == ["0001-a.patch", "-", "ok", "BUILD"]
    assert lines[3].split()[1:] == ["0002-b.patch", "-", "1", "new", "W", "-"]
    assert "memcg-off / 0001-a.patch:" in text
    assert text.endswith("0 of 2 cells pass; failing: x86_64, memcg-off")
    assert pm.show(None) == "-" and pm.show(ok) == "ok"


def test_objects_depth_compiles_touched_c_files_of_this_arch():
    from harness.patchcheck import objects_of

    files = ["include/linux/fs.h", "fs/file.c", "arch/x86/kernel/a.c", "arch/arm64/mm/b.c",
             "Documentation/x.rst"]
    assert objects_of(files, "x86") == ("fs/file.o", "arch/x86/kernel/a.o")
    assert objects_of(files, "arm64") == ("fs/file.o", "arch/arm64/mm/b.o")
