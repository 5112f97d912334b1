"""The image store: where kernel images are kept, and when one may stand for a build.

An image is kept per build directory and kernel (`build/<source>-<fragments>/images/
<kernel>/`: the boot image, its config and vmlinux, and `image.json`). It is a pure
function of its *state*: the base commit, the series' patches, the config fragments
(target included) and the compiler. `find` is the one rule that decides whether a kept
image can stand for what the current inputs describe; build, test, boot and bench all
use it, and when it cannot it says what changed. Patchcheck and bisect steps
(`req.at_head`) build whatever is checked out and never reuse an image.

Computing the current state is cheap: no build, no checkout, no series applied (the
series digest is of the patch files, the base is read from the imported source or
the user's tree, the fragments digest is of the files).
"""

from __future__ import annotations

import hashlib
import json
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from harness.errors import ConfigError, InfraError
from harness.gitutil import rev_parse
from harness.profile import SourceConfig, cache_dir, project_path
from harness.stages.kconfig import fragments_digest
from harness.stages.series import Series, read_series
from harness.stages.source import source_key
from harness.target import Target

if TYPE_CHECKING:
    from harness.run import Request

STATE_KEYS = ("base", "series", "fragments", "compiler")
INFO = "image.json"
# Touched whenever a build directory's image is built, reused or booted: `harness
# clean` shows it as "last used" (atime is not kept on most mounts).
USED_STAMP = ".harness-last-used"


@dataclass
class KernelImage:
    image: Path
    info: dict  # identity: base, series, head, release, config, tree, state
    warnings: list[str] = field(default_factory=list)  # this build's compiler warnings


# --- where things are ------------------------------------------------------------------


def fragments(req: Request) -> list[Path]:
    """The profile's fragments, then the target architecture's own."""
    arch = req.target.arch
    frags = [project_path(f) for f in req.profile.fragments]
    return frags + ([project_path(arch.fragment)] if arch.fragment else [])


def base_config(req: Request) -> Path | None:
    """The profile's full base config, or None for tinyconfig."""
    return project_path(req.profile.base_config) if req.profile.base_config else None


def build_dir(req: Request) -> Path:
    """One per source, base config, fragments and target: every target keeps its objects."""
    frags = fragments(req)
    for f in frags:
        if not f.is_file():
            raise ConfigError(f"config fragment not found: {f}")
    digest = fragments_digest(frags, req.target, base_config(req))
    return cache_dir() / "build" / f"{source_key(req.profile.source)}-{digest}"


def tree_lock_path(req: Request) -> Path:
    # One work tree serves every config of a source (base, debug, ...), so the
    # lock covers the tree, not just one build directory.
    return cache_dir() / "src" / f"{source_key(req.profile.source)}.tree.lock"


def image_dir(req: Request) -> Path:
    return build_dir(req) / "images" / req.kernel


def mark_used(bdir: Path) -> None:
    try:
        (bdir / USED_STAMP).touch()
    except OSError:
        pass  # a read-only cache still boots


# --- state -------------------------------------------------------------------------------


def series_of(req: Request) -> Series:
    """The patches REQ's kernel is built from (none for vanilla and steps)."""
    return read_series(None if req.kernel == "vanilla" or req.at_head
                       else project_path(req.profile.series))


def state(base: str, series: Series, frags: list[Path], target: Target,
          base_config: Path | None = None) -> dict[str, str]:
    """What an image is a pure function of (kept as `state` in image.json); the
    fragments digest covers the target and the base config too."""
    return {"base": base, "series": series.digest() if series.patches else "",
            "fragments": fragments_digest(frags, target, base_config),
            "compiler": target.compiler_version()}


def inputs(series: Series, frags: list[Path],
           base_config: Path | None = None) -> dict[str, dict[str, str]]:
    """Each patch's and config file's own digest: a stale image says which file changed."""
    configs = [*([base_config] if base_config else []), *frags]
    return {"patches": {p.name: _sha(p.path) for p in series.patches},
            "fragments": {str(f): _sha(f) for f in configs}}


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()[:12]


def current_base(cfg: SourceConfig) -> str:
    """The base commit, without importing or cloning anything ("" if not imported yet)."""
    if cfg.path:
        try:
            proc = subprocess.run(["git", "-C", str(Path(cfg.path).resolve()), "rev-parse",
                                   "--verify", "--quiet", f"{cfg.rev}^{{commit}}"],
                                  capture_output=True, text=True, timeout=60)
        except subprocess.TimeoutExpired:
            raise InfraError(f"git rev-parse {cfg.rev} timed out in {cfg.path}") from None
        return proc.stdout.strip()
    repo = cache_dir() / "src" / source_key(cfg)
    return rev_parse(repo, "base") if (repo / ".git").is_dir() else ""


def current(req: Request) -> tuple[dict[str, str], dict[str, dict[str, str]]]:
    """REQ's state and inputs as the files are now: cheap, nothing is built or applied."""
    series, frags, base = series_of(req), fragments(req), base_config(req)
    return (state(current_base(req.profile.source), series, frags, req.target, base),
            inputs(series, frags, base))


# --- the rule --------------------------------------------------------------------------


def read_info(idir: Path) -> dict[str, Any] | None:
    try:
        info = json.loads((idir / INFO).read_text())
    except (OSError, ValueError):
        return None
    return info if isinstance(info, dict) else None


def kept(req: Request) -> KernelImage | None:
    """REQ's kernel's kept image, whatever it was built from."""
    idir = image_dir(req)
    info = read_info(idir)
    image = idir / Path(req.target.arch.image).name
    return KernelImage(image, info) if info is not None and image.is_file() else None


def find(req: Request, want: dict[str, str],
         now: dict[str, dict[str, str]] | None = None) -> tuple[KernelImage | None, list[str]]:
    """The kept image of REQ's kernel if it was built from exactly WANT, else None
    and what differs, one line per input (old -> new; NOW names changed files).

    One work tree and build directory serve vanilla and the series, so switching
    between them recompiles most of the kernel (the series touches fs.h, slab.h,
    memcontrol.h); reusing an image of the same state makes those switches free.
    """
    if req.at_head:
        return None, ["a patchcheck or bisect step builds what is checked out"]
    img = kept(req)
    if img is None:
        # The fragments (and target) name the build directory: after a fragment
        # edit the image to compare with is the last one of this kernel elsewhere.
        prev = _previous(req)
        if prev is None:
            return None, [f"no {req.kernel} image built yet ({image_dir(req)})"]
        img = prev
    changes = changed(img.info, want, now)
    return (img if not changes else None), changes


def _previous(req: Request) -> KernelImage | None:
    """The newest image of REQ's kernel and target from the same source, any fragments."""
    root = cache_dir() / "build"
    prefix = source_key(req.profile.source) + "-"
    best: tuple[str, KernelImage] | None = None
    name = Path(req.target.arch.image).name
    for idir in root.glob(f"{prefix}*/images/{req.kernel}"):
        info = read_info(idir)
        if (info is None or info.get("target") != req.target.name
                or not (idir / name).is_file()):
            continue
        when = str(info.get("built_at", ""))
        if best is None or when > best[0]:
            best = (when, KernelImage(idir / name, info))
    return best[1] if best else None


def changed(info: dict[str, Any], want: dict[str, str],
            now: dict[str, dict[str, str]] | None = None) -> list[str]:
    """What differs between the state INFO was built from and WANT, for a person."""
    old = info.get("state")
    if not isinstance(old, dict):
        return ["state: not recorded (an image from before states were kept)"]
    was = info.get("inputs") or {}
    out = []
    for key in STATE_KEYS:
        if old.get(key) == want.get(key):
            continue
        files = {"series": "patches", "fragments": "fragments"}.get(key)
        detail = ""
        if files and now and isinstance(was.get(files), dict):
            detail = _files_changed(was[files], now[files])
        elif key == "series" and now and isinstance(info.get("commits"), list):
            detail = f"{len(info['commits'])} -> {len(now['patches'])} patches"
        out.append(f"{key}: {_short(key, old.get(key))} -> {_short(key, want.get(key))}"
                   + (f" ({detail})" if detail else ""))
    return out


def _short(key: str, value: Any) -> str:
    if not value:
        return {"series": "none (the base alone)", "base": "not imported yet"}.get(key, "none")
    return str(value)[:12] if key != "compiler" else repr(value)


def _files_changed(old: dict[str, str], new: dict[str, str]) -> str:
    parts = [f"{n} removed" for n in old if n not in new]
    parts += [f"{n} added" for n in new if n not in old]
    parts += [f"{n} edited" for n in new if n in old and old[n] != new[n]]
    return ", ".join(parts)


def describe(img: KernelImage) -> str:
    return f"{img.info.get('kernel', '?')} image of {img.info.get('built_at', '?')} ({img.image})"


def age(path: Path) -> float:
    """When a build directory was last used: its stamp, else its newest image."""
    cands = [path / USED_STAMP, *path.glob(f"images/*/{INFO}"), path / ".config", path]
    times = [p.stat().st_mtime for p in cands if p.exists()]
    return max(times) if times else 0.0


def now_stamp() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S%z")
