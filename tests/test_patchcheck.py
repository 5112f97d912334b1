from harness.errors import EXIT_BUILD, EXIT_OK, EXIT_TEST_FAILURE, EXIT_USAGE
from harness.patchcheck import (
    Checkpatch,
    Row,
    exit_code,
    new_warnings,
    parse_checkpatch,
    render_table,
    touched_files,
    warning_key,
)

PATCH = """From 1234 Mon Sep 17 00:00:00 2001
Subject: [PATCH] fs: something

---
 fs/file.c            | 2 +-
 include/linux/file.h | 1 +
 mm/new.c             | 3 +++
diff --git a/fs/file.c b/fs/file.c
--- a/fs/file.c
+++ b/fs/file.c
@@ -1,3 +1,3 @@
-old
+new
diff --git a/include/linux/file.h b/include/linux/file.h
--- a/include/linux/file.h
+++ b/include/linux/file.h
@@ -1 +1,2 @@
+x
diff --git a/mm/new.c b/mm/new.c
new file mode 100644
--- /dev/null
+++ b/mm/new.c
@@ -0,0 +1,3 @@
+--- not a header: a removed line that starts with dashes
"""


def test_touched_files_in_order_without_dev_null():
    assert touched_files(PATCH) == ["fs/file.c", "include/linux/file.h", "mm/new.c"]


FILES = ["fs/file.c", "include/linux/file.h"]


def test_warning_key_drops_line_numbers_and_matches_any_path_spelling():
    want = ("fs/file.c", "unused variable 'x' [-Wunused-variable]")
    for path in ("fs/file.c", "../../src/debian-1/fs/file.c", "/root/src/fs/file.c"):
        assert warning_key(f"{path}:12:7: warning: unused variable 'x' [-Wunused-variable]",
                           FILES) == want
    assert warning_key("fs/file.c:99: warning: unused variable 'x' [-Wunused-variable]",
                       FILES) == want
    # colour codes, files the patch did not touch, errors and notes are not warnings of it
    assert warning_key("\x1b[01mfs/file.c:1:2: \x1b[35mwarning: \x1b[0mx", FILES) == (
        "fs/file.c", "x")
    assert warning_key("fs/open.c:1:2: warning: x", FILES) is None
    assert warning_key("fs/myfs/file.c:1:2: warning: x", FILES) is None
    assert warning_key("fs/file.c:1:2: error: x", FILES) is None
    assert warning_key("  CC      fs/file.o", FILES) is None


def test_new_warnings_is_a_multiset_difference_in_touched_files():
    before = ["../fs/file.c:10:3: warning: a [-Wa]",
              "include/linux/file.h:5:1: warning: h [-Wh]",
              "mm/other.c:1:1: warning: elsewhere"]
    after = ["../fs/file.c:14:3: warning: a [-Wa]",  # moved by the patch: not new
             "../fs/file.c:20:3: warning: a [-Wa]",  # a second one: new
             "../fs/file.c:30:9: warning: b [-Wb]",
             "include/linux/file.h:6:1: warning: h [-Wh]",
             "mm/other.c:1:1: warning: elsewhere",
             "mm/third.c:1:1: warning: not touched"]
    assert new_warnings(before, after, FILES) == ["fs/file.c: warning: a [-Wa]",
                                                  "fs/file.c: warning: b [-Wb]"]
    assert new_warnings(after, before, FILES) == []


CHECKPATCH_CLEAN = """total: 0 errors, 0 warnings, 42 lines checked

/tmp/0001-x.patch has no obvious style problems and is ready for submission.
"""

CHECKPATCH_BAD = """WARNING: Missing commit description - Add an appropriate one

ERROR: trailing whitespace
#23: FILE: fs/file.c:10:
+int x; $

ERROR: Missing Signed-off-by: line(s)

total: 2 errors, 1 warnings, 8 lines checked

NOTE: For some of the reported defects, checkpatch may be able to
      mechanically convert to the typical style using --fix or --fix-inplace.
"""


def test_parse_checkpatch():
    ok = parse_checkpatch(CHECKPATCH_CLEAN)
    assert ok == Checkpatch(0, 0, 0, []) and ok.ok
    bad = parse_checkpatch(CHECKPATCH_BAD)
    assert (bad.errors, bad.warnings, bad.ok) == (2, 1, False)
    assert bad.messages == ["WARNING: Missing commit description - Add an appropriate one",
                            "ERROR: trailing whitespace",
                            "ERROR: Missing Signed-off-by: line(s)"]
    strict = parse_checkpatch("total: 0 errors, 0 warnings, 3 checks, 10 lines checked\n")
    assert (strict.checks, strict.ok) == (3, True)
    assert parse_checkpatch("Must be run from the top-level dir. of a kernel tree\n") is None


def _rows() -> list[Row]:
    good = Row(1, "0001-good.patch", applied=True, build="pass", warnings_checked=True,
               checkpatch=Checkpatch(0, 0, 0), boot="pass", tests="pass",
               times={"build": 30.0, "boot": 10.0})
    warn = Row(2, "0002-warns.patch", applied=True, build="pass", warnings_checked=True,
               checkpatch=Checkpatch(1, 0, 0, ["ERROR: trailing whitespace"]), boot="pass",
               tests="pass")
    warn.new_warnings = ["fs/file.c: warning: unused variable 'x'"]
    warn.fail(EXIT_TEST_FAILURE, "1 new compiler warnings")
    broken = Row(3, "0003-broken.patch", applied=True, build="FAIL",
                 checkpatch=Checkpatch(0, 0, 0))
    broken.fail(EXIT_BUILD, "kernel build failed")
    return [good, warn, broken]


def test_render_table_one_row_per_patch_and_why_rows_fail():
    text = render_table(_rows(), "test")
    lines = text.splitlines()
    assert lines[0].split() == ["#", "patch", "build", "warnings", "checkpatch", "boot",
                                "tests", "time"]
    assert lines[1].split() == ["1", "0001-good.patch", "pass", "ok", "ok", "pass", "pass",
                                "40s"]
    assert lines[2].split() == ["2", "0002-warns.patch", "pass", "1", "new", "1E", "0W",
                                "pass", "pass"]
    assert lines[3].split() == ["3", "0003-broken.patch", "FAIL", "-", "ok", "-", "-"]
    assert "0002-warns.patch:\n    1 new compiler warnings" in text
    assert text.endswith("patchcheck (test): 1 of 3 patches pass; failing: "
                         "0002-warns.patch, 0003-broken.patch")
    build_only = render_table(_rows()[:1], "build").splitlines()
    assert build_only[0].split() == ["#", "patch", "build", "warnings", "checkpatch", "time"]
    assert build_only[-1] == "patchcheck (build): 1 of 1 patches pass"


def test_exit_code_is_the_worst_row():
    rows = _rows()
    assert exit_code(rows[:1]) == EXIT_OK
    assert exit_code(rows[:2]) == EXIT_TEST_FAILURE
    assert exit_code(rows) == EXIT_BUILD
    no_apply = Row(4, "0004-x.patch")
    no_apply.fail(EXIT_USAGE, "does not apply")
    assert exit_code([rows[0], no_apply]) == EXIT_USAGE
    assert "NO APPLY" in render_table([no_apply], "build")
