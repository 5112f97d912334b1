"""The kernels one `harness bench` run compares: `--kernel NAME=SERIES_FILE`, repeatable.

`NAME=none` (or a bare `vanilla`) is the base alone; a bare `series` is the
profile's series. Without --kernel the run compares vanilla and the profile's
series (vanilla alone with --no-series), as it always did. Ratios are taken
against the first kernel without a series (vanilla), else the first kernel.

Each kernel keeps its image in the profile's build directory under a label:
`vanilla`, `series` for the profile's own series, and `series-NAME` for any
other, so that benchmarking an alternative series does not replace the series
image every other run uses (and rebuild it on the next `harness test`).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from harness.errors import ConfigError
from harness.profile import project_path

VANILLA_FORMS = ("none", "vanilla", "")
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.+-]{0,31}$")


@dataclass(frozen=True)
class KernelSpec:
    name: str  # the column in the tables
    series: Path | None  # None: the base alone
    label: str  # its image's directory under images/

    @property
    def vanilla(self) -> bool:
        return self.series is None


def parse_kernel(arg: str, profile_series: str) -> KernelSpec:
    """One --kernel argument: NAME=SERIES_FILE, NAME=none, `vanilla` or `series`."""
    name, sep, value = arg.partition("=")
    name = name.strip()
    if not sep:
        if name == "vanilla":
            value = "none"
        elif name == "series":
            value = profile_series
        else:
            raise ConfigError(f"--kernel {arg}: give NAME=SERIES_FILE or NAME=none "
                              "(bare names: only `vanilla` and `series`)")
    if not _NAME.match(name):
        raise ConfigError(f"--kernel {arg}: NAME must be letters, digits, _.+- (at most 32)")
    value = value.strip()
    if value in VANILLA_FORMS:
        return KernelSpec(name, None, "vanilla")
    path = project_path(value)
    if not path.is_file():
        raise ConfigError(f"--kernel {arg}: no series file or mbox {path}")
    own = bool(profile_series) and path.resolve() == project_path(profile_series).resolve()
    if name == "vanilla":
        raise ConfigError(f"--kernel {arg}: `vanilla` is the base alone (vanilla=none)")
    return KernelSpec(name, path, "series" if own else f"series-{name}")


def resolve(args: Sequence[str], profile_series: str, vanilla_only: bool = False
            ) -> list[KernelSpec]:
    """The kernels of a run, in the order given; the default set without ARGS."""
    if not args:
        args = ["vanilla"] if vanilla_only else ["vanilla", "series"]
        if not vanilla_only and not profile_series:
            raise ConfigError("harness bench compares the base with the series, "
                              "but this profile has no series")
    elif vanilla_only:
        raise ConfigError("--no-series and --kernel do not go together: "
                          "--kernel vanilla measures the base alone")
    specs = [parse_kernel(a, profile_series) for a in args]
    names = [s.name for s in specs]
    dup = sorted({n for n in names if names.count(n) > 1})
    if dup:
        raise ConfigError(f"--kernel: the name {', '.join(dup)} is given twice")
    return specs


def baseline(specs: Sequence[KernelSpec]) -> KernelSpec:
    """What the ratios are taken against: vanilla if the run has it."""
    return next((s for s in specs if s.vanilla), specs[0])
