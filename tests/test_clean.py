"""`harness clean`: disk use per build directory; orphaned ones pruned (temp HARNESS_CACHE)."""

import fcntl
import os
import re
import time
from pathlib import Path

import pytest

from harness import clean, cli, images, run
from harness.profile import DEBIAN_TARBALL, load_profile

KEPT = "debian-aaaaaaaaaaaa-111111111111"
ORPHAN = "debian-aaaaaaaaaaaa-222222222222"


@pytest.fixture
def cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    root = tmp_path / "cache"
    monkeypatch.setenv("HARNESS_CACHE", str(root))
    for name in (KEPT, ORPHAN):
        for kernel in ("series", "vanilla", "bisect"):
            idir = root / "build" / name / "images" / kernel
            idir.mkdir(parents=True)
            (idir / "bzImage").write_bytes(b"k" * 100_000)
            (idir / images.INFO).write_text("{}")
        (root / "build" / name / "fs").mkdir()
        (root / "build" / name / "fs" / "file.o").write_bytes(b"o" * 300_000)
    (root / "src" / "debian-aaaaaaaaaaaa").mkdir(parents=True)
    (root / "rootfs" / "0123").mkdir(parents=True)
    monkeypatch.setattr(clean, "referenced", lambda: {KEPT: ["default/x86_64"]})
    return root


def test_the_listing_shows_each_directory_its_users_images_and_size(cache, capsys):
    assert cli.main(["clean", "--dry-run"]) == 0
    out = capsys.readouterr().out
    kept = next(ln for ln in out.splitlines() if ln.startswith(KEPT))
    orphan = next(ln for ln in out.splitlines() if ln.startswith(ORPHAN))
    assert "default/x86_64" in kept and "bisect, series, vanilla" in kept
    assert "nothing" in orphan and orphan.endswith("would remove")
    assert re.search(r" \d+K ", orphan)  # its size, du -h style
    assert "would free" in out and "nothing removed" in out
    assert (cache / "build" / ORPHAN).is_dir()  # --dry-run removes nothing
    assert (cache / "build" / KEPT / "images" / "bisect").is_dir()


def test_clean_removes_orphans_and_step_images_only(cache):
    assert cli.main(["clean"]) == 0
    assert not (cache / "build" / ORPHAN).exists()
    assert (cache / "build" / KEPT / "images" / "series" / "bzImage").is_file()
    assert (cache / "build" / KEPT / "fs" / "file.o").is_file()
    assert not (cache / "build" / KEPT / "images" / "bisect").exists()  # never reused
    assert (cache / "rootfs" / "0123").is_dir() and (cache / "src").is_dir()


def test_clean_all_keeps_only_the_imported_source(cache):
    assert cli.main(["clean", "--all"]) == 0
    assert list((cache / "build").iterdir()) == []
    assert not (cache / "rootfs").exists()
    assert (cache / "src" / "debian-aaaaaaaaaaaa").is_dir()


def test_a_directory_whose_tree_another_run_holds_is_kept(cache, capsys):
    lock = cache / "src" / "debian-aaaaaaaaaaaa.tree.lock"
    fd = os.open(lock, os.O_RDWR | os.O_CREAT)
    try:
        pid = os.fork()
        if pid == 0:  # another process holds the lock, as a building run would
            fcntl.flock(fd, fcntl.LOCK_EX)
            os.write(fd, b"x")
            time.sleep(30)
            os._exit(0)
        for _ in range(100):
            if os.fstat(fd).st_size:
                break
            time.sleep(0.05)
        assert cli.main(["clean", "--all"]) == 0
        assert (cache / "build" / ORPHAN).is_dir() and (cache / "build" / KEPT).is_dir()
        assert "in use: kept" in capsys.readouterr().out
    finally:
        os.kill(pid, 9)
        os.waitpid(pid, 0)
        os.close(fd)


@pytest.mark.skipif(not Path(DEBIAN_TARBALL).is_file(), reason="needs " + DEBIAN_TARBALL)
def test_every_profile_target_and_matrix_variant_is_referenced(tmp_path, monkeypatch):
    monkeypatch.setenv("HARNESS_CACHE", str(tmp_path))
    refs = clean.referenced()
    default = images.build_dir(run.Request(profile=load_profile("default"))).name
    assert "default/x86_64" in refs[default]
    labels = {label for ls in refs.values() for label in ls}
    assert {"default/i386", "default/arm64-clang", "default/matrix:memcg-off",
            "debug/x86_64", "arm64/arm64"} <= labels
