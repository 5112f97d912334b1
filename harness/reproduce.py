"""The reproducer of a failed run: the command that reproduces it from a fresh checkout.

The command is rebuilt from the parsed command line, not copied from argv:
only the options that change what is built, booted or judged are kept (not
--results-dir, -v, -j, or --no-build/--rebuild, which only say how to reuse a
cache a fresh checkout does not have), paths inside the project become
relative to it, and `test` (which boots a kernel built earlier) becomes
`build-and-test`. The kernel's identity (target, base version and commit,
series hash) follows as a shell comment, so the whole line pastes into a shell.
"""

import argparse
import shlex
from pathlib import Path
from typing import Any

from harness.profile import project_dir

DEFAULT_TARGET = "x86_64"  # what runs recorded before they recorded a target mean

# Options that say how to run, not what: they never change the result.
NOT_RELEVANT = {"help", "results_dir", "verbose", "jobs", "no_build", "rebuild"}
PATH_OPTIONS = {"source", "series", "fragment", "guest_tests"}
# Commands that reuse an image a fresh checkout does not have.
FRESH = {"test": "build-and-test", "matrix": "build-and-test"}


def _path(value: str) -> str:
    p = Path(value).resolve()
    try:
        return str(p.relative_to(project_dir()))
    except ValueError:
        return str(p)


def _profile(value: str) -> str:
    if "/" in value or value.endswith((".yaml", ".yml")):
        return _path(value)
    return value  # a name: profiles/NAME.yaml of the checkout


def command(parser: argparse.ArgumentParser, args: argparse.Namespace, name: str,
            kernel: str) -> list[str]:
    """`harness NAME --profile P [flags that matter]` for the run of KERNEL.

    PARSER is the subcommand's parser (its options' defaults tell which
    flags were given), ARGS what it parsed, KERNEL `vanilla` or `series`
    (a matrix runs both: each run's reproducer is one build-and-test).
    """
    out = ["harness", FRESH.get(name, name), "--profile", _profile(args.profile)]
    for action in parser._actions:
        if not action.option_strings or action.dest in NOT_RELEVANT | {"profile", "no_series"}:
            continue
        value = getattr(args, action.dest, None)
        if value is None or value == action.default or value == []:
            continue
        flag = next((o for o in action.option_strings if o.startswith("--")),
                    action.option_strings[0])
        if value is True:
            out.append(flag)
            continue
        for v in value if isinstance(value, list) else [value]:
            out += [flag, _path(str(v)) if action.dest in PATH_OPTIONS else str(v)]
    # A matrix runs both kernels: each of its runs reproduces as one build-and-test.
    if (kernel == "vanilla") if name == "matrix" else getattr(args, "no_series", False):
        out.insert(4, "--no-series")
    return out


def build_and_test(profile: str, vanilla: bool, tests: list[str] | tuple[str, ...],
                   accel: str | None) -> str:
    """The reproducer of a run that no command line started (a nightly cell)."""
    out = ["harness", "build-and-test", "--profile", _profile(profile)]
    out += ["--no-series"] if vanilla else []
    out += ["--tests", ",".join(tests)] if tests else []
    out += ["--accel", accel] if accel else []
    return shlex.join(out)


def identity(metadata: dict[str, Any]) -> dict[str, str]:
    """Target, base and series of a run, from what its stages recorded
    (a build records them itself; `harness test` has them in the image)."""
    image = metadata.get("image") or {}

    def get(key: str) -> str:
        return str(metadata.get(key) or image.get(key) or "")

    return {"target": get("target") or DEFAULT_TARGET, "kernel": get("kernel"),
            "base_version": get("base_version"),
            "base": get("base"), "source": get("source"), "series_hash": get("series_hash")}


def line(cmd: str, ident: dict[str, str]) -> str:
    """`reproduce: CMD  # target x86_64, base 6.12.117 at <commit>, series <sha256>`."""
    what = [f"target {ident['target']}"]
    if ident["base_version"] or ident["base"]:
        what.append(" ".join(x for x in ("base", ident["base_version"],
                                         ident["base"] and f"at {ident['base']}") if x))
    if ident["series_hash"]:
        what.append(f"series {ident['series_hash']}")
    elif ident["kernel"] == "vanilla":
        what.append("no series")  # else the run failed before it read the series
    return f"reproduce: {cmd}  # {', '.join(what)}"


def record(data: dict[str, Any]) -> str:
    """Put the reproducer of a failed run into its results data (results.json's
    "reproduce") and return its summary line; "" when the run has no command
    recorded (a nightly cell, a bisect step)."""
    meta = data.get("metadata", {})
    cmd = meta.get("reproduce")
    if not cmd:
        return ""
    ident = identity(meta)
    text = line(cmd, ident)
    data["reproduce"] = {"command": cmd, **ident, "line": text}
    return text


def add_to_summary(summary: Path, text: str, first_line: str = "") -> bool:
    """Append TEXT to summary.txt unless it is there (the test report wrote it);
    create the file with FIRST_LINE if the run ended before it wrote one (a
    build error, a patch that does not apply). True if TEXT was added."""
    old = summary.read_text() if summary.exists() else (first_line + "\n" if first_line else "")
    if not text or text in old:
        return False
    summary.write_text(old + text + "\n")
    return True
