"""Command line: argparse and one handler per subcommand, nothing else.

The text users read is DESCRIPTION and EPILOG below (`harness --help`).
"""

import argparse
import json
import os
import shlex
import signal
import sys
import time
import traceback
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

from harness import matrix, pipeline, printer, reproduce, run, selection
from harness.errors import EXIT_INTERNAL, EXIT_INTERRUPTED, EXIT_OK, ConfigError, HarnessError
from harness.expectations import KERNELS
from harness.profile import Profile, load_profile, project_path
from harness.results import RunRecord
from harness.target import ARCHES, COMPILERS

DESCRIPTION = """\
Test a Linux kernel patch series before sending it: build the kernel with the
series applied (or the base alone, --no-series), boot it in QEMU, run the guest
tests inside it, and report every test against its declared expectation.

Data flows: kernel source + patches/series + kconfigs/ --build--> a kernel image
(kept per profile, vanilla and series) --test--> a QEMU boot running the guest
tests --> results/<run>/: summary.txt, results.json, junit.xml, console.log.
The commands below are listed in that order."""

EPILOG = """\
The profile (profiles/NAME.yaml, --profile) says what to build and how to boot;
flags override it. `harness COMMAND --help` lists a command's flags.

exit codes: 0 every test as expected and no kernel splat; 1 a test failure or a
kernel splat; 2 usage or configuration error (incl. a patch that does not
apply); 3 build failure; 4 boot or infrastructure failure; 70 internal error (a
bug in the harness: traceback.txt in the results); 130 interrupted."""

# `harness --help` lists the commands in data-flow order: make an image, use it,
# then the commands that repeat that over kernels, patches, commits or a matrix.
COMMAND_ORDER = ["build", "boot", "ssh", "test", "build-and-test", "matrix", "bench",
                 "patchcheck", "bisect", "nightly", "clean"]

# One job more than CPUs: a job waiting on the disk leaves a CPU to another.
# A cold default build on 2 cores: 299 s with -j2, 266 s with -j3 (issue 16).
DEFAULT_JOBS = (os.cpu_count() or 1) + 1


def _sigterm(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def _add_common(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("what to build")
    g.add_argument("--profile", default="default",
                   help="profile name (profiles/NAME.yaml) or path to a YAML file")
    g.add_argument("--source", metavar="PATH", help="your kernel git tree (never modified)")
    g.add_argument("--rev", help="base revision in --source (default HEAD)")
    g.add_argument("--series", metavar="FILE", help="series file (default patches/series)")
    g.add_argument("--no-series", action="store_true", help="the base alone (vanilla)")
    g.add_argument("--fragment", action="append", default=[], metavar="FILE",
                   help="extra Kconfig fragment (repeatable)")
    g.add_argument("--arch", choices=list(ARCHES),
                   help="target architecture (default: the profile's, x86_64); each target "
                   "has its own build directory")
    g.add_argument("--cc", choices=list(COMPILERS),
                   help="compiler (default: the profile's, gcc); clang builds with LLVM=1")
    g.add_argument("-j", "--jobs", type=int, default=DEFAULT_JOBS,
                   help=f"make jobs (default: CPUs + 1 = {DEFAULT_JOBS})")
    p.add_argument("--results-dir", default="results", type=Path,
                   help="where per-run result directories go (default ./results)")
    p.add_argument("-v", "--verbose", action="store_true", help="show make and console output")


def _add_boot(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("how to boot and test")
    g.add_argument("--tests", metavar="PROG[:CASE],...",
                   help="comma-separated guest test programs (default: all); PROG:CASE runs "
                   "only that test case of PROG (e.g. file_charge:charge.covers_pipes)")
    g.add_argument("--guest-tests", metavar="DIR", help="directory of guest test sources")
    g.add_argument("--accel", choices=["auto", "kvm", "tcg"])
    g.add_argument("--memory", help="guest memory, e.g. 1G")
    g.add_argument("--smp", type=int)
    g.add_argument("--icount", action="store_true", help="deterministic guest time (TCG)")
    g.add_argument("--timeout", type=int, help="whole boot + tests, seconds")
    g.add_argument("--silence-timeout", type=int, help="console silence = hang, seconds")
    g.add_argument("--per-test-timeout", type=int, help="each guest test program, seconds")


def profile_from_args(args: argparse.Namespace) -> Profile:
    """The profile with the command line's overrides (a new Profile: they are frozen)."""
    prof = load_profile(args.profile)
    source = prof.source
    if args.source:
        source = replace(source, path=str(Path(args.source).resolve()))
    if args.rev:
        source = replace(source, rev=args.rev)
    top: dict[str, Any] = {
        "source": source, "fragments": [*prof.fragments,
                                        *(str(Path(f).resolve()) for f in args.fragment)]}
    if args.series:
        top["series"] = str(Path(args.series).resolve())
    if getattr(args, "arch", None):
        top["arch"] = args.arch
    if getattr(args, "cc", None):
        top["cc"] = args.cc
    if getattr(args, "tests", None):
        top["tests"] = [t for t in args.tests.split(",") if t]
    if getattr(args, "guest_tests", None):
        top["guest_tests"] = str(Path(args.guest_tests).resolve())
        top["expectations"] = str(Path(args.guest_tests).resolve() / "expectations.yaml")
    qemu = {key: getattr(args, attr) for attr, key in
            (("accel", "accel"), ("memory", "memory"), ("smp", "smp"))
            if getattr(args, attr, None)}
    if getattr(args, "icount", False):
        qemu["icount"] = True
    timeouts = {key: getattr(args, attr) for attr, key in
                (("timeout", "run"), ("silence_timeout", "silence"),
                 ("per_test_timeout", "per_test")) if getattr(args, attr, None)}
    return replace(prof, **top, qemu=replace(prof.qemu, **qemu),
                   timeouts=replace(prof.timeouts, **timeouts))


def request_from_args(args: argparse.Namespace, interactive: bool = False) -> run.Request:
    prof = profile_from_args(args)
    # A named case that does not exist fails here, before any lock, build or boot.
    selection.check(prof.tests, project_path(prof.guest_tests))
    req = run.Request(profile=prof, profile_name=args.profile, no_series=args.no_series,
                      jobs=args.jobs,
                      results_root=args.results_dir, interactive=interactive)
    return _with_reproducer(args, req)


def _with_reproducer(args: argparse.Namespace, req: run.Request) -> run.Request:
    """REQ with the command that reproduces its run from a fresh checkout."""
    return replace(req, reproduce=shlex.join(reproduce.command(args.parser, args, args.command,
                                                               req.kernel)))


def _start(req: run.Request, what: str) -> RunRecord:
    rec = RunRecord(req.results_root, f"{what}-{req.kernel}")
    printer.stage(f"Results: {rec.dir}")
    rec.meta(command=sys.argv, profile=req.profile_name,
             project=str(project_path(".")), kernel=req.kernel,
             reproduce=req.reproduce)
    try:  # before any build: a run that fails early still names its target
        rec.meta(target=req.target.name)
    except ConfigError:
        pass  # an unknown arch/cc: the run fails on it with that message
    return rec


def _reproducer(rec: RunRecord, first_line: str) -> None:
    """A failed run's summary.txt and results.json say how to reproduce it."""
    text = reproduce.record(rec.data)
    if text:
        rec.save()
        if reproduce.add_to_summary(rec.path("summary.txt"), text, first_line):
            printer.info(text)


def _run(req: run.Request, what: str, body: Callable[[RunRecord], int]) -> int:
    rec = _start(req, what)
    try:
        code = body(rec)
    except HarnessError as e:
        rec.finish("error", e.exit_code, str(e))
        printer.error(str(e))
        _reproducer(rec, f"ERROR (exit {e.exit_code}): {e}")
        printer.stage(f"Results kept in {rec.dir}")
        return e.exit_code
    except KeyboardInterrupt:
        rec.finish("interrupted", EXIT_INTERRUPTED, "interrupted by a signal")
        printer.error(f"interrupted; partial results kept in {rec.dir}")
        return EXIT_INTERRUPTED
    except Exception as e:  # a bug in the harness is not a verdict on the kernel
        tb = rec.internal_error(EXIT_INTERNAL, e)
        printer.error(f"internal error (a bug in the harness, exit {EXIT_INTERNAL}): {e!r}; "
                      f"traceback in {tb}")
        return EXIT_INTERNAL
    if rec.data.get("status") == "running":
        rec.finish("pass" if code == EXIT_OK else "fail", code)
    if code != EXIT_OK:  # a test report has its reproducer already; other runs get it here
        _reproducer(rec, f"FAILED (exit {code})")
    printer.stage(req.timings.summary())
    return code


def cmd_build(args: argparse.Namespace) -> int:
    req = request_from_args(args)
    return _run(req, "build", lambda rec: (run.build_kernel(req, rec), EXIT_OK)[1])


def _tester(args: argparse.Namespace) -> Callable[..., int]:
    # The same pipeline over the SSH transport (harness/transports/); the console
    # stays the default.
    if getattr(args, "transport", "console") == "ssh":
        from harness.transports.ssh import Ssh
        return lambda req, img, rec: pipeline.test_kernel(req, img, rec, Ssh())
    return pipeline.test_kernel


def cmd_test(args: argparse.Namespace) -> int:
    req = request_from_args(args)
    test = _tester(args)

    def body(rec: RunRecord) -> int:
        run.preflight(req)
        # A stale image is never booted silently: what changed is said, then it is
        # rebuilt, or with --no-build the run is refused.
        return test(req, run.current_image(req, rec, build=not args.no_build), rec)
    return _run(req, "test", body)


def _build_and_test(req: run.Request, test: Callable[..., int]) -> Callable[[RunRecord], int]:
    def body(rec: RunRecord) -> int:
        run.preflight(req)  # bad test names, a missing busybox: before any wait or build
        return test(req, run.build_kernel(req, rec), rec)
    return body


def cmd_build_and_test(args: argparse.Namespace) -> int:
    req = request_from_args(args)
    return _run(req, "run", _build_and_test(req, _tester(args)))


def cmd_matrix(args: argparse.Namespace) -> int:
    """build-and-test on vanilla, then on the series, and one side-by-side table."""
    stamp = time.strftime("%Y%m%d-%H%M%S")
    out = Path(args.results_dir) / f"{stamp}-matrix"
    out.mkdir(parents=True)
    codes, data = {}, {}
    for kernel in KERNELS:
        req = replace(request_from_args(args), no_series=kernel == "vanilla", results_root=out)
        req = _with_reproducer(args, req)
        printer.stage(f"=== {kernel} kernel ===")
        codes[kernel] = _run(req, "run", _build_and_test(req, pipeline.test_kernel))
        if codes[kernel] == EXIT_INTERRUPTED:
            return codes[kernel]
        last = sorted(p for p in out.iterdir() if p.is_dir() and p.name.endswith(kernel))[-1]
        data[kernel] = json.loads((last / "results.json").read_text())
    print(matrix.write(out, data))
    printer.stage(f"Matrix: {out / 'matrix.txt'}")
    return max(codes.values())


def cmd_boot(args: argparse.Namespace) -> int:
    req = request_from_args(args, interactive=True)
    port = _gdb_port(args)  # None: no gdb stub (harness/gdb.py)
    if getattr(args, "ssh", False):  # SSH (harness/ssh/interactive.py)
        if port is not None:
            raise ConfigError("--gdb and --ssh cannot be combined yet")
        from harness.ssh import interactive
        return interactive.boot_interactive(req)
    img = run.last_image(req)
    rec = RunRecord(req.results_root, f"boot-{req.kernel}")
    stub, cmdline = _gdb_qemu_args(args, port)
    cmds, accels, why = run.qemu_commands(req, img, run.prepare_rootfs(req, img, rec), [],
                                          extra=stub, cmdline_extra=cmdline)
    cmd = cmds["tcg" if "tcg" in accels and len(accels) == 1 else accels[0]]
    printer.stage(f"Booting {img.info['release']} ({req.kernel}) interactively with "
                  f"{cmd[cmd.index('-accel') + 1]} ({why}); Ctrl-A x quits QEMU")
    if port is not None:
        _print_gdb(req, img, rec, port, args.gdb_wait)
    os.execvp(cmd[0], cmd)
    return EXIT_OK


def cmd_bench(args: argparse.Namespace) -> int:
    from harness import bench

    opts = bench.options_from_args(args)
    req = request_from_args(args)
    req = replace(req, profile=bench.configure(req.profile, opts))
    return _run(req, "bench", lambda rec: bench.run_bench(req, opts, rec))


def _add_bench(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("benchmark")
    g.add_argument("--kernel", action="append", metavar="NAME=SERIES",
                   help="a kernel to compare, repeatable, in order: NAME=SERIES_FILE (or mbox), "
                        "NAME=none for the base alone; bare `vanilla` and `series` (the "
                        "profile's). Ratios are against the first kernel without a series. "
                        "Default: vanilla and series")
    g.add_argument("--repeat", type=int, default=3, help="boots per kernel (default 3)")
    g.add_argument("--iters", type=int, default=20000,
                   help="iterations per measurement (default 20000)")
    g.add_argument("--rounds", type=int, default=None,
                   help="measurements per boot, one after the other (default 1); with "
                        "--scale: boots per kernel, interleaved A B A B ... (default 3)")
    g.add_argument("--wallclock", action="store_true",
                   help="no icount: host time, KVM where it works (noisy; labelled so)")
    g.add_argument("--no-build", action="store_true",
                   help="reuse the last vanilla and series images, even if stale")
    g.add_argument("--rebuild", action="store_true",
                   help="build both kernels even if an image from the same series exists")
    g.add_argument("--strict", action="store_true",
                   help="exit 1 when an icount target is not met")
    g.add_argument("--root-offline", action="store_true",
                   help="also measure root before any memcg exists (kmem accounting offline)")
    g.add_argument("--scale", action="store_true",
                   help="WALL-CLOCK scalability (will-it-scale style): N = 1..--smp processes "
                        "(default 2 CPUs), series/vanilla ratios over interleaved boots")
    g.add_argument("--seconds", type=float, default=2.0,
                   help="--scale: measured seconds per case and N (default 2)")


def cmd_patchcheck(args: argparse.Namespace) -> int:
    from harness import patchcheck

    req = request_from_args(args)
    if args.matrix:
        from harness import patchcheck_matrix as pm

        cells = pm.select(pm.load_cells(project_path(args.matrix)), args.cells or "")
        depth = args.depth or "build"
        return _run(req, "patchcheck-matrix",
                    lambda rec: pm.run_matrix(req, depth, cells, rec, args.start))
    if args.cells:
        raise ConfigError("--cells needs --matrix")
    return _run(req, "patchcheck", lambda rec: patchcheck.run_patchcheck(
        req, args.depth or "test", rec, args.start))


def cmd_bisect(args: argparse.Namespace) -> int:
    from harness import bisect

    req = request_from_args(args)
    breq = bisect.BisectRequest(good=args.good, bad=args.bad, test=args.test or "",
                                expect_splat=args.expect_splat)
    return _run(req, "bisect", lambda rec: bisect.run_bisect(req, breq, rec))


def _add_patchcheck(p: argparse.ArgumentParser) -> None:
    p.add_argument("--depth", choices=["objects", "build", "boot", "test"],
                   help="objects: compile the touched .c files at W=1 (no link); build "
                   "(+ new warnings, checkpatch); also boot; or also run the guest tests "
                   "(default: test; with --matrix: build)")
    p.add_argument("--from", dest="start", type=int, default=1, metavar="K",
                   help="check patches K.. only; 1..K-1 are applied unchecked")
    p.add_argument("--matrix", nargs="?", const="patchcheck-matrix.yaml", metavar="FILE",
                   help="every patch on every cell of FILE (targets x config variants; "
                   "default patchcheck-matrix.yaml): one table, exit code the worst cell's")
    p.add_argument("--cells", metavar="A,B", help="with --matrix: only these cells")


def _add_bisect(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("bisect")
    g.add_argument("--good", required=True, metavar="REV",
                   help="a good commit: a revision, `base` or `series` (base + the series)")
    g.add_argument("--bad", required=True, metavar="REV", help="a bad commit, likewise")
    g.add_argument("--test", metavar="PROG[:CASE]",
                   help="bisect on this guest test program (only it runs), or on one of its "
                   "test cases (only that case runs; an upstream cgroup selftest runs whole "
                   "and only that case is judged)")
    g.add_argument("--expect-splat", action="store_true",
                   help="bad = a kernel splat was seen, whatever the tests say")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="harness", description=DESCRIPTION, epilog=EPILOG,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND",
                                title="commands")
    specs = [
        ("build", cmd_build, "apply the series, configure and build the kernel", False),
        ("test", cmd_test, "boot the current build and run the guest tests (an out-of-date "
         "image is rebuilt first, saying what changed)", True),
        ("build-and-test", cmd_build_and_test, "build, then boot and run the guest tests",
         True),
        ("matrix", cmd_matrix, "build-and-test on vanilla and on the series, side by side",
         True),
        ("boot", cmd_boot, "an interactive shell on the last built kernel", True),
        ("bench", cmd_bench, "what memcg accounting costs open() & co., vanilla vs series",
         True),
        ("patchcheck", cmd_patchcheck, "build, checkpatch, boot and test each prefix of the "
         "series", True),
        ("bisect", cmd_bisect, "find the first bad commit with git bisect run, the harness "
         "as the step", True),
    ]
    for name, func, help_, boots in specs:
        p = sub.add_parser(name, help=help_, description=help_)
        _add_common(p)
        if boots:
            _add_boot(p)
        if name == "bench":
            _add_bench(p)
        if name == "patchcheck":
            _add_patchcheck(p)
        if name == "bisect":
            _add_bisect(p)
        if name == "test":
            p.add_argument("--no-build", action="store_true",
                           help="refuse to run when the image is out of date (base, series, "
                           "config fragments or compiler changed) instead of rebuilding it")
        _add_ssh_flags(name, p)
        if name == "boot":
            _add_gdb_flags(p)
        p.set_defaults(func=func, parser=p)
    _add_ssh_command(sub)
    _add_nightly(sub)
    _add_clean(sub)
    listed = sub._choices_actions  # what --help lists, in registration order
    listed.sort(key=lambda a: COMMAND_ORDER.index(a.dest) if a.dest in COMMAND_ORDER
                else len(COMMAND_ORDER))
    return parser


# --- gdb stub (harness/gdb.py) ---

def _add_gdb_flags(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("kernel debugging with gdb")
    g.add_argument("--gdb", action="store_true",
                   help="QEMU's gdb stub on 127.0.0.1 (a free port), kernel booted with "
                        "nokaslr; prints the gdb command (vmlinux, lx-* helpers) to attach")
    g.add_argument("--gdb-port", type=int, metavar="N",
                   help="the gdb stub's port on 127.0.0.1 (implies --gdb)")
    g.add_argument("--gdb-wait", action="store_true",
                   help="the guest's CPUs wait for gdb to `continue` them (-S; implies --gdb)")


def _gdb_port(args: argparse.Namespace) -> int | None:
    """The gdb stub's port, or None when no --gdb* flag was given."""
    wanted = getattr(args, "gdb", False) or getattr(args, "gdb_wait", False)
    if getattr(args, "gdb_port", None) is None and not wanted:
        return None
    from harness import gdb

    if args.gdb_port is not None:
        return gdb.check_port(args.gdb_port)
    return gdb.free_port()


def _gdb_qemu_args(args: argparse.Namespace, port: int | None) -> tuple[list[str], list[str]]:
    """QEMU arguments and kernel command line words for the gdb stub (none without)."""
    if port is None:
        return [], []
    from harness import gdb
    return gdb.qemu_args(port, args.gdb_wait), list(gdb.CMDLINE)


def _print_gdb(req: run.Request, img: run.KernelImage, rec: RunRecord, port: int,
               wait: bool) -> None:
    """The gdb command line, on a line of its own, before QEMU takes the terminal."""
    from harness import gdb
    from harness.stages.build import make_command

    bdir = run.build_dir(req)
    vmlinux = Path(img.info.get("vmlinux") or img.image.parent / "vmlinux")
    if not vmlinux.is_file():
        printer.warn(f"{vmlinux} missing (an image built before its vmlinux was kept): "
                     f"using {bdir / 'vmlinux'}, which a later build may have replaced")
        vmlinux = bdir / "vmlinux"
    for problem in gdb.problems(req.target, img.image.parent / "config"):
        printer.warn(problem)
    if not gdb.helpers(bdir):
        make = make_command(Path(img.info["tree"]), bdir, 1, ("scripts_gdb",), req.target)
        printer.warn(f"no lx-* helpers in {bdir} (built without `make scripts_gdb`); "
                     f"`{shlex.join(make)}` makes them")
    cmd = gdb.gdb_command(req.target, vmlinux, bdir, port)
    rec.meta(gdb={"port": port, "wait": wait, "command": cmd})
    printer.stage(f"gdb stub on {gdb.LOOPBACK}:{port}"
                  + ("; the guest's CPUs wait for gdb's `continue`" if wait else "")
                  + "; attach with:")
    print(gdb.printed(cmd), flush=True)


# --- SSH (harness/ssh/, harness/transports/ssh.py) ---

def _add_ssh_flags(name: str, p: argparse.ArgumentParser) -> None:
    if name in ("test", "build-and-test"):
        p.add_argument("--transport", choices=["console", "ssh"], default="console",
                       help="run the guest tests on the serial console (default) or over "
                            "SSH (dropbear in the guest, 127.0.0.1 port forward)")
    if name == "boot":
        p.add_argument("--ssh", action="store_true",
                       help="also start dropbear in the guest, for `harness ssh`")


def cmd_ssh(args: argparse.Namespace) -> int:
    from harness.ssh import interactive
    return interactive.cmd_ssh(args.cmd, use_paramiko=args.paramiko)


def _add_ssh_command(sub: argparse._SubParsersAction) -> None:
    help_ = "a shell (or COMMAND) in the guest started by `harness boot --ssh`"
    p = sub.add_parser("ssh", help=help_, description=help_)
    p.add_argument("--paramiko", action="store_true",
                   help="use paramiko even if the system ssh client is installed")
    p.add_argument("-v", "--verbose", action="store_true")
    p.add_argument("cmd", nargs=argparse.REMAINDER, metavar="COMMAND")
    p.set_defaults(func=cmd_ssh)


# --- nightly (harness/nightly/) ---

def cmd_nightly(args: argparse.Namespace) -> int:
    """The nightly matrix (nightly.yaml), one shard of it, or a merge of shards."""
    from harness import nightly
    from harness.nightly import matrix as nightly_matrix

    opts = nightly.Options(
        matrix=args.matrix or project_path("nightly.yaml"), results_root=args.results_dir,
        shard=nightly_matrix.parse_shard(args.shard) if args.shard else None,
        retries=args.retries, previous=args.previous, run_id=args.run_id, jobs=args.jobs,
        accel=args.accel, artifact_url=args.artifact_url)
    if args.merge:
        return nightly.merge(args.merge, opts)[0]
    if args.list:
        cells = nightly_matrix.load_matrix(opts.matrix).cells()
        for cell in nightly_matrix.shard(cells, *opts.shard) if opts.shard else cells:
            print(cell.id)
        return EXIT_OK
    return nightly.run_matrix(opts)[0]


def _add_nightly(sub: argparse._SubParsersAction) -> None:
    help_ = "the nightly matrix: kernels x profiles x suites, sharded and merged for CI"
    p = sub.add_parser("nightly", help=help_, description=help_)
    p.add_argument("--matrix", type=Path, help="matrix file (default nightly.yaml)")
    p.add_argument("--shard", metavar="K/N", help="run only shard K of N (1-based)")
    p.add_argument("--merge", nargs="+", type=Path, metavar="DIR",
                   help="merge these shard results (or directories holding them); runs nothing")
    p.add_argument("--previous", type=Path, metavar="DIR",
                   help="a previous nightly's results: report new failures, fixed, newly skipped")
    p.add_argument("--retries", type=int, help="rerun a failed cell's tests this many times "
                   "(default: the matrix file's); pass-on-retry is reported as flaky")
    p.add_argument("--list", action="store_true", help="print the cells (of the shard) and exit")
    p.add_argument("--run-id", help="id shared by the shards of one run (default: the CI "
                   "system's run id, else a timestamp)")
    p.add_argument("--artifact-url", metavar="URL",
                   help="URL where --results-dir is published (KCIDB links to logs, patches)")
    p.add_argument("--accel", choices=["auto", "kvm", "tcg"])
    p.add_argument("-j", "--jobs", type=int, default=DEFAULT_JOBS,
                   help=f"make jobs (default: CPUs + 1 = {DEFAULT_JOBS})")
    p.add_argument("--results-dir", default="results", type=Path,
                   help="where the nightly results directory goes (default ./results)")
    p.add_argument("-v", "--verbose", action="store_true", help="show make and console output")
    p.set_defaults(func=cmd_nightly)


# --- the cache (harness/clean.py) ---

def cmd_clean(args: argparse.Namespace) -> int:
    from harness import clean
    return clean.clean(remove_all=args.all, dry_run=args.dry_run)


def _add_clean(sub: argparse._SubParsersAction) -> None:
    help_ = ("disk use per build directory; remove those no profile, target or matrix "
             "cell refers to any more (a fragment edit orphans ~1.1 GiB)")
    p = sub.add_parser("clean", help=help_, description=help_)
    p.add_argument("-n", "--dry-run", action="store_true", help="say what would go, remove nothing")
    p.add_argument("--all", action="store_true",
                   help="every build directory, rootfs and tool (not the imported source)")
    p.add_argument("-v", "--verbose", action="store_true")
    p.set_defaults(func=cmd_clean)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["_bisect-step"]:  # run by `git bisect run` for harness bisect, not users
        from harness import bisect

        signal.signal(signal.SIGTERM, _sigterm)
        return bisect.step_main(argv[1:])
    parser = build_parser()
    args = parser.parse_args(argv)
    printer.verbose = args.verbose
    signal.signal(signal.SIGTERM, _sigterm)
    try:
        return args.func(args)
    except HarnessError as e:
        printer.error(str(e))
        return e.exit_code
    except KeyboardInterrupt:
        printer.error("interrupted")
        return EXIT_INTERRUPTED
    except Exception:  # outside a run (no results directory): the traceback on stderr
        traceback.print_exc()
        printer.error(f"internal error (a bug in the harness, exit {EXIT_INTERNAL})")
        return EXIT_INTERNAL
