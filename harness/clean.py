"""`harness clean`: the cache's disk use per build directory, and pruning.

A build directory (`build/<source>-<fragments digest>/`, ~1.1 GiB with debug info)
belongs to one source, fragment set and target. Editing a fragment makes a new one
and orphans the old: nothing refers to it any more. Referred to are the build
directories of every profile in profiles/ on every target, and of every cell of
patchcheck-matrix.yaml on every profile; a user's own tree (`--source`) counts by
its fragments. `harness clean` removes the others; `--all` removes every build
directory and rootfs (the imported source stays: every build needs it). A build
directory whose source tree another run holds locked is never removed.
"""

from __future__ import annotations

import fcntl
import os
import shutil
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from pathlib import Path

from harness import images, printer
from harness.errors import HarnessError
from harness.profile import cache_dir, load_profile, project_dir, project_path
from harness.target import ARCHES, COMPILERS

# Images nothing reuses: patchcheck and bisect steps build what is checked out.
STEP_IMAGES = ("patchcheck", "bisect")


@dataclass
class BuildDir:
    path: Path
    size: int  # bytes on disk
    last_used: float  # epoch seconds
    kernels: list[str]  # images kept in it
    users: list[str] = field(default_factory=list)  # profile/target that refer to it
    locked: bool = False  # its source tree is held by a run right now

    @property
    def orphaned(self) -> bool:
        return not self.users


def disk_usage(path: Path) -> int:
    """Bytes allocated under PATH, as du counts them (hard links once)."""
    total, seen = 0, set()
    for root, dirs, files in os.walk(path):
        for name in dirs + files:
            try:
                st = os.lstat(os.path.join(root, name))
            except OSError:
                continue
            if st.st_nlink > 1:
                if (st.st_dev, st.st_ino) in seen:
                    continue
                seen.add((st.st_dev, st.st_ino))
            total += st.st_blocks * 512
    return total


def referenced() -> dict[str, list[str]]:
    """Build directory name -> the profile/target (or matrix cell) labels that use it."""
    from harness import patchcheck_matrix
    from harness.run import Request

    out: dict[str, list[str]] = {}
    try:
        cells = patchcheck_matrix.load_cells(project_path(patchcheck_matrix.DEFAULT_FILE))
    except HarnessError:
        cells = []
    for pfile in sorted((project_dir() / "profiles").glob("*.yaml")):
        try:
            prof = load_profile(str(pfile))
        except HarnessError:
            continue
        variants = [(f"{pfile.stem}/{a}" + ("" if c == "gcc" else f"-{c}"),
                     replace(prof, arch=a, cc=c)) for a in ARCHES for c in COMPILERS]
        variants += [(f"{pfile.stem}/matrix:{cell.name}",
                      replace(prof, arch=cell.arch, cc=cell.cc,
                              fragments=[*prof.fragments, *cell.fragments]))
                     for cell in cells if cell.fragments]
        for label, variant in variants:
            try:
                name = images.build_dir(Request(profile=variant)).name
            except HarnessError:
                continue  # a missing fragment or tarball: nothing of it to keep
            out.setdefault(name, []).append(label)
    return out


def _users(name: str, refs: dict[str, list[str]]) -> list[str]:
    if name in refs:
        return refs[name]
    # A user's tree (tree-<hash>-<digest>): kept while its fragment set is current.
    if name.startswith("tree-"):
        digest = name.rsplit("-", 1)[-1]
        return [f"your tree, {label}" for ref, labels in refs.items()
                if ref.rsplit("-", 1)[-1] == digest for label in labels[:1]]
    return []


def survey(cache: Path | None = None) -> list[BuildDir]:
    cache = cache or cache_dir()
    refs = referenced()
    out = []
    for path in sorted((cache / "build").glob("*")):
        if not path.is_dir():
            continue
        kernels = sorted(p.parent.name for p in path.glob(f"images/*/{images.INFO}"))
        source = path.name.rsplit("-", 1)[0]
        out.append(BuildDir(path, disk_usage(path), images.age(path), kernels,
                            _users(path.name, refs),
                            locked=_held(cache / "src" / f"{source}.tree.lock")))
    return out


def _held(lock: Path) -> bool:
    with _try_lock(lock) as got:
        return not got


@contextmanager
def _try_lock(path: Path) -> Iterator[bool]:
    """The tree lock, if no run holds it (never waits)."""
    if not path.exists():
        yield True
        return
    fd = os.open(path, os.O_RDWR)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            yield False
            return
        yield True
    finally:
        os.close(fd)


def human(n: float) -> str:
    """du -h style: 512K, 37M, 1.1G."""
    for unit in "BKM":
        if n < 1024:
            return f"{n:.0f}{unit}"
        n /= 1024
    return f"{n:.1f}G"


def clean(remove_all: bool = False, dry_run: bool = False) -> int:
    """List the build directories; remove the orphaned ones (every one with ALL)."""
    cache = cache_dir()
    dirs = survey(cache)
    print(f"{'build directory (' + str(cache / 'build') + ')':<44} {'used by':<28} "
          f"{'images':<20} {'size':>6}  last used")
    freed = 0
    for d in dirs:
        doomed = (remove_all or d.orphaned) and not d.locked
        note = ("in use: kept" if d.locked and (remove_all or d.orphaned)
                else ("would remove" if dry_run else "removed") if doomed else "")
        used = ", ".join(d.users[:2]) + (" ..." if len(d.users) > 2 else "") or "nothing"
        print(f"{d.path.name:<44} {used:<28} {', '.join(d.kernels) or '-':<20} "
              f"{human(d.size):>6}  {time.strftime('%Y-%m-%d %H:%M', time.localtime(d.last_used))}"
              f"  {note}".rstrip())
        if doomed:
            freed += d.size
            if not dry_run:
                _remove(d.path, cache)
        elif not remove_all and not d.locked:
            freed += _prune_step_images(d.path, dry_run)
    if remove_all:
        for sub in ("rootfs", "tools"):
            if (cache / sub).is_dir():
                freed += disk_usage(cache / sub)
                if not dry_run:
                    shutil.rmtree(cache / sub, ignore_errors=True)
    total = sum(d.size for d in dirs)
    verb = "would free" if dry_run else "freed"
    printer.stage(f"{len(dirs)} build directories, {human(total)}; {verb} {human(freed)}"
                  + (" (--dry-run: nothing removed)" if dry_run else ""))
    src = cache / "src"
    if remove_all and src.is_dir():
        printer.info(f"kept: {src} (the imported kernel source, ~2 GiB, needed by every "
                     f"build; `rm -rf {src}` drops it, re-imported in ~1 min)")
    return 0


def _prune_step_images(bdir: Path, dry_run: bool) -> int:
    """Patchcheck and bisect step images in a kept directory: never reused."""
    freed = 0
    for label in STEP_IMAGES:
        idir = bdir / "images" / label
        if idir.is_dir():
            freed += disk_usage(idir)
            printer.info(f"{'would remove' if dry_run else 'removed'} {idir} "
                         "(a patchcheck/bisect step image: never reused)")
            if not dry_run:
                shutil.rmtree(idir, ignore_errors=True)
    return freed


def _remove(path: Path, cache: Path) -> None:
    # Under its source's tree lock: no run starts building in it meanwhile.
    source = path.name.rsplit("-", 1)[0]
    with _try_lock(cache / "src" / f"{source}.tree.lock") as got:
        if got:
            shutil.rmtree(path, ignore_errors=True)
        else:
            printer.warn(f"{path}: a run started using it; kept")
