"""The request and its image: source -> series -> config -> build, plus the rootfs,
the test selection and the QEMU command line a boot needs.

One run of the guest tests on an image (boot, judge, retry, report) is
pipeline.py. Requests are plain dataclasses built by cli.py; nothing here
touches argparse.
"""

import json
import shutil
from collections.abc import Sequence
from contextlib import nullcontext
from dataclasses import dataclass, field
from pathlib import Path

from harness import expectations, images, printer, selection
from harness.errors import ConfigError, HarnessError
from harness.gitutil import rev_parse
from harness.images import (
    KernelImage,
    base_config,
    build_dir,
    fragments,
    image_dir,
    tree_lock_path,
)
from harness.lock import locked
from harness.profile import Profile, cache_dir, project_path
from harness.qemu import choose_accel, kernel_cmdline, qemu_available, qemu_command
from harness.results import RunRecord
from harness.stages.build import build
from harness.stages.kconfig import builds_object, configure, parse_config
from harness.stages.rootfs import (
    build_rootfs,
    check_busybox,
    default_selection,
    guest_programs,
    program_names,
)
from harness.stages.series import apply_series, commit_subjects
from harness.stages.source import prepare_source
from harness.target import Target, parse_target


@dataclass(frozen=True)
class Request:
    profile: Profile
    profile_name: str = "default"  # as given on the command line, for the record
    no_series: bool = False
    jobs: int = 2
    results_root: Path = Path("results")
    interactive: bool = False  # `harness boot`
    timings: printer.Timings = field(default_factory=printer.Timings)
    # patchcheck / bisect steps: build the tree as it is checked out (no
    # base + series checkout), keep its image under this label, and skip the
    # tree lock because the caller already holds it.
    at_head: str = ""
    tree_locked: bool = False
    reproduce: str = ""  # the harness command that reproduces this run (cli.py sets it)
    # patchcheck --depth objects: make only these objects (with make_extra,
    # e.g. W=1), no image; the build stage records their warnings.
    goals: tuple[str, ...] = ()
    make_extra: tuple[str, ...] = ()
    # `harness bench --kernel NAME=SERIES`: keep a third series' image under its own
    # label, so that it does not replace the profile's series image (and back).
    label: str = ""

    @property
    def target(self) -> Target:
        return parse_target(self.profile.arch, self.profile.cc, f"profile {self.profile_name}")

    def declarations(self) -> expectations.Table:
        """The profile's expectations file, as it applies on this arch and profile."""
        return expectations.load(project_path(self.profile.expectations), self.profile.arch,
                                 Path(self.profile_name).stem)

    @property
    def kernel(self) -> str:
        if self.at_head:
            return self.at_head
        if self.label and not self.no_series:
            return self.label
        return "vanilla" if self.no_series or not self.profile.series else "series"


def build_kernel(req: Request, rec: RunRecord) -> KernelImage:
    cache = cache_dir()
    t = req.timings
    frags = fragments(req)
    target = req.target
    bdir = build_dir(req)
    with t.measure("source", "Preparing the kernel source ..."):
        src = prepare_source(req.profile.source, cache)
    series = images.series_of(req)
    rec.meta(kernel=req.kernel, target=target.name, source=src.description, base=src.base,
             base_version=src.version,
             series_file=str(series.path or ""), series_hash=series.digest() if series.patches
             else "", patches=[p.name for p in series.patches])
    rec.stage("source", "pass", t.seconds.get("source", 0.0))
    state = images.state(src.base, series, frags, target, base_config(req))
    # A kept image of exactly this state needs neither the tree nor the build
    # directory: reusing it must not wait behind another run's build (say, a
    # 25-minute distro kernel in the same source tree). A build replaces
    # image.json last and removes it first, so a half-written image never
    # matches.
    kept, _ = images.find(req, state)
    if kept:
        return _reuse(req, rec, kept)
    lock = (nullcontext() if req.tree_locked
            else locked(tree_lock_path(req), "the kernel tree and build directory"))
    with lock:
        kept, _ = images.find(req, state)
        if kept:
            return _reuse(req, rec, kept)
        images.mark_used(bdir)
        if req.at_head:
            head = rev_parse(src.repo, "HEAD")
        else:
            with t.measure("series", f"Applying {len(series.patches)} patches ..."
                           if series.patches else "Checking out the base alone (no series) ..."):
                try:
                    head = apply_series(src.repo, src.base, series)
                except HarnessError as e:
                    rec.stage("series", "fail", t.seconds.get("series", 0.0), error=str(e))
                    raise
        subjects = commit_subjects(src.repo, src.base, head)
        rec.meta(head=head, commits=subjects)
        rec.stage("series", "pass", t.seconds.get("series", 0.0))
        bdir.mkdir(parents=True, exist_ok=True)
        log_path = rec.path("build.log")
        base = base_config(req)
        with t.measure("config", f"Configuring ({base.name if base else 'tinyconfig'} + "
                       "fragments) ..."):
            with open(log_path, "a") as log:
                try:
                    if not configure(src.repo, bdir, frags, log, target, base):
                        printer.info("fragments and Kconfig files unchanged: config reused")
                except HarnessError as e:
                    rec.stage("config", "fail", t.seconds.get("config", 0.0), error=str(e))
                    raise
        shutil.copyfile(bdir / ".config", rec.path("kernel.config"))
        rec.stage("config", "pass", t.seconds.get("config", 0.0),
                  fragments=[str(f) for f in frags])
        goals = req.goals
        if goals:
            # What cannot be compiled here is skipped, not failed: a file
            # only a later patch creates (a baseline), or an object this
            # config leaves out (mm/memcontrol.o without CONFIG_MEMCG).
            config = parse_config((bdir / ".config").read_text())
            goals = tuple(g for g in goals if (src.repo / g).with_suffix(".c").is_file()
                          and builds_object(src.repo, config, g))
            left_out = sorted(set(req.goals) - set(goals))
            if left_out:
                printer.info(f"not in this tree or config (skipped): {' '.join(left_out)}")
                rec.meta(objects_skipped=left_out)
            if not goals:
                rec.stage("build", "pass", 0.0, nothing_to_compile=True)
                return KernelImage(bdir, {"kernel": req.kernel, "head": head,
                                          "target": target.name}, [])
        printer.stage(f"Building {req.kernel} kernel ({target.name}) in {bdir} ...")
        try:
            res = build(src.repo, bdir, req.jobs, log_path, req.profile.timeouts.build, target,
                        goals, req.make_extra)
        except HarnessError as e:
            rec.stage("build", "fail", error=str(e))
            raise
        t.seconds["build"] = res.seconds
        rec.stage("build", "pass", res.seconds, release=res.release, warnings=len(res.warnings))
        if req.goals:
            printer.info(f"compiled {' '.join(goals)} in {res.seconds:.1f}s")
            return KernelImage(res.image, {"kernel": req.kernel, "head": head,
                                           "target": target.name}, res.warnings)
        printer.info(f"built {res.release} in {res.seconds:.1f}s")
        info = {"kernel": req.kernel, "release": res.release, "base": src.base,
                "base_version": src.version, "source": src.description, "head": head,
                "target": target.name,
                "series_hash": series.digest() if series.patches else "", "commits": subjects,
                "config": str(bdir / ".config"), "tree": str(src.repo),
                "built_at": images.now_stamp(), "state": state,
                "inputs": images.inputs(series, frags, base_config(req))}
        # Keep a copy per kernel, so vanilla and series images coexist while
        # sharing one incremental build directory. In the directory it was built
        # in, named when the build started: a fragment edited meanwhile must not
        # file it under the new fragments (its state says the old).
        idir = bdir / "images" / req.kernel
        idir.mkdir(parents=True, exist_ok=True)
        (idir / "image.json").unlink(missing_ok=True)
        image = idir / res.image.name
        shutil.copyfile(res.image, image)
        shutil.copyfile(bdir / ".config", idir / "config")
        # Its symbols (and debug info, if any) decode this kernel's splats.
        shutil.copyfile(bdir / "vmlinux", idir / "vmlinux")
        info["vmlinux"] = str(idir / "vmlinux")
        tmp = idir / "image.json.tmp"
        tmp.write_text(json.dumps(info, indent=2))
        tmp.replace(idir / "image.json")
    return KernelImage(image, info, res.warnings)


def _reuse(req: Request, rec: RunRecord, kept: KernelImage) -> KernelImage:
    info = kept.info
    printer.info(f"{req.kernel} kernel unchanged since {info['built_at']} (same base, series, "
                 "config and compiler): image reused, tree left as it is")
    rec.meta(head=info["head"], commits=info["commits"])
    rec.path("build.log").write_text(
        f"nothing built: image of {info['built_at']} reused ({kept.image}), built from "
        f"{json.dumps(info.get('state', {}), sort_keys=True)}\n")
    shutil.copyfile(kept.image.parent / "config", rec.path("kernel.config"))
    for stage in ("series", "config", "build"):
        rec.stage(stage, "pass", 0.0, reused=True)
    return kept


def last_image(req: Request) -> KernelImage:
    """The kept image of REQ's kernel as it is (`harness boot`): a warning says
    what changed since it was built, if anything."""
    img = images.kept(req)
    if img is None:
        raise ConfigError(f"no {req.kernel} kernel built for this profile yet "
                          f"(looked in {image_dir(req)}); run `harness build` first")
    _, changes = images.find(req, *images.current(req))
    if changes:
        printer.warn(f"booting the {images.describe(img)} although it is stale:\n    "
                     + "\n    ".join(changes) + "\n    `harness build` rebuilds it")
    images.mark_used(img.image.parents[2])
    return img


def current_image(req: Request, rec: RunRecord, build: bool = True) -> KernelImage:
    """The image the current inputs describe (`harness test`): the kept one when it
    was built from them; otherwise what changed is said, then it is built (BUILD) or
    the run is refused. Nothing is applied or compiled to find out."""
    kept, changes = images.find(req, *images.current(req))
    if kept:
        printer.info(f"{images.describe(kept)}: built from the current base, series, "
                     "config fragments and compiler")
        images.mark_used(kept.image.parents[2])
        return kept
    what = "\n    ".join(changes)
    if not build:
        raise ConfigError(f"the {req.kernel} image does not match the current inputs "
                          f"(--no-build):\n    {what}\n    `harness build` (or `harness "
                          "test` without --no-build) rebuilds it")
    printer.stage(f"The {req.kernel} image is out of date; building it:\n    {what}")
    rec.meta(rebuilt_because=changes)
    return build_kernel(req, rec)


def prepare_rootfs(req: Request, img: KernelImage, rec: RunRecord) -> Path:
    """The initramfs for these guest tests; rebuilt only when its inputs change.

    It only reads tools/testing/selftests of the tree, which no kernel
    checkout of ours changes, so it needs no tree lock.
    """
    t = req.timings
    with t.measure("rootfs", "Preparing the initramfs ..."):
        rootfs = build_rootfs(Path(img.info["tree"]), project_path(req.profile.guest_tests),
                              cache_dir(), rec.path("rootfs.log"), req.target.arch)
    rec.stage("rootfs", "pass", t.seconds.get("rootfs", 0.0), path=str(rootfs))
    return rootfs


def check_test_names(wanted: list[str], programs: list[str]) -> None:
    """A ConfigError naming every WANTED test that is not one of PROGRAMS (a name
    may carry a `:CASE` suffix; the program part is checked)."""
    unknown = [t for t in selection.programs(wanted) if t not in programs]
    if unknown:
        raise ConfigError(f"unknown guest tests: {', '.join(unknown)} "
                          f"(available: {', '.join(programs)})")


def preflight(req: Request) -> None:
    """What would otherwise fail only after a wait for the tree lock or a build:
    the guest's busybox and compiler, and the test names."""
    arch = req.target.arch
    check_busybox(arch)
    if not shutil.which(arch.user_cc[0]):
        raise ConfigError(f"{arch.user_cc[0]} not found: it compiles the {arch.name} guest "
                          "programs; run ./install-deps.sh")
    if req.profile.tests:
        programs = program_names(project_path(req.profile.guest_tests))
        if programs is not None:  # else the rootfs stage names them
            check_test_names(req.profile.tests, programs)


def selected_tests(req: Request, rootfs: Path) -> list[str]:
    """The programs to run (`prog:case` entries name their program)."""
    available = guest_programs(rootfs)
    wanted = selection.programs(req.profile.tests) or default_selection(available)
    unknown = [t for t in wanted if t not in available]
    if unknown:
        raise ConfigError(f"unknown guest tests: {', '.join(unknown)} "
                          f"(available: {', '.join(available)})")
    return wanted


def selected_cases(req: Request) -> selection.Selection:
    """The cases to run of each program; a program not in it runs whole.

    Checked against the sources again (cli.py checks before anything is
    locked or built): a profile's own tests: list reaches here too.
    """
    return selection.check(req.profile.tests, project_path(req.profile.guest_tests))


def qemu_commands(req: Request, img: KernelImage, rootfs: Path, tests: list[str],
                  name: str = "harness", extra: Sequence[str] = (),
                  cmdline_extra: Sequence[str] = ()) -> tuple[dict, list, str]:
    """QEMU's command line per accelerator to try; EXTRA is appended to each (e.g. the
    gdb stub of `harness boot --gdb`), CMDLINE_EXTRA to the kernel command line."""
    prof = req.profile
    arch = req.target.arch.qemu
    if not qemu_available(arch):
        raise ConfigError(f"{arch.binary} not found: sudo apt-get install "
                          f"--no-install-recommends {arch.package}")
    accels, why = choose_accel(prof.qemu.accel, cache_dir(), arch)
    cmdline = kernel_cmdline(arch, tests, prof.timeouts.per_test,
                             [*prof.qemu.cmdline, *cmdline_extra],
                             shell=req.interactive, cpus=prof.qemu.smp,
                             cases=selected_cases(req))
    cmds = {a: [*qemu_command(arch, prof.qemu, a, img.image, rootfs / "initramfs.cpio",
                              cmdline, interactive=req.interactive, name=name), *extra]
            for a in accels}
    return cmds, accels, why
