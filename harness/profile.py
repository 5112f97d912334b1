"""Run profiles: YAML files that say what to build, boot and test.

Profiles are frozen: a variant (command-line overrides, a benchmark's settings, a
matrix cell) is a new one made with dataclasses.replace, never an edit in place.

A profile is validated against the dataclasses below: an unknown key or a
wrong type is a ConfigError naming the file and the key. Paths are relative
to the project directory (the repository holding patches/, kconfigs/, ...).
"""

import dataclasses
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, get_args, get_origin

import yaml

from harness.errors import ConfigError

DEBIAN_TARBALL = "/usr/src/linux-source-6.12.tar.xz"


@dataclass(frozen=True)
class SourceConfig:
    tarball: str = DEBIAN_TARBALL  # used when path is empty
    path: str = ""  # a user's kernel git tree; never modified
    rev: str = "HEAD"  # base revision within path


@dataclass(frozen=True)
class QemuConfig:
    machine: str = ""  # -M; "" = the architecture's (pc, virt)
    memory: str = "1G"
    smp: int = 1
    accel: str = "auto"  # auto | kvm | tcg
    icount: bool = False  # deterministic guest time (TCG only)
    # TCG with several vCPUs: one host thread per vCPU ("multi") or all on one
    # ("single", round-robin); icount is always single.
    tcg_threads: str = "multi"
    # A virtio disk of this size ("1G") for the tests' page cache (/mnt/scratch),
    # a sparse file made per boot and deleted after it; "" = the brd ramdisk.
    scratch_disk: str = ""
    extra_args: list[str] = field(default_factory=list)
    cmdline: list[str] = field(default_factory=list)  # appended to the kernel command line


@dataclass(frozen=True)
class Timeouts:
    build: int = 3600
    first_output: int = 15  # seconds until the kernel banner; KVM probe limit
    silence: int = 120  # console silence before the guest counts as hung
    run: int = 1200  # whole boot + tests
    per_test: int = 300  # each guest test program, enforced inside the guest


@dataclass(frozen=True)
class Profile:
    source: SourceConfig = field(default_factory=SourceConfig)
    arch: str = "x86_64"  # x86_64 | i386 | arm64 (harness/target.py)
    cc: str = "gcc"  # gcc | clang (LLVM=1)
    series: str = "patches/series"  # empty: the base alone
    # The config the fragments go on top of: "" = tinyconfig; or a full config
    # file (.xz read as is), e.g. Debian's from linux-config-6.12.
    base_config: str = ""
    fragments: list[str] = field(default_factory=lambda: ["kconfigs/base.config"])
    qemu: QemuConfig = field(default_factory=QemuConfig)
    timeouts: Timeouts = field(default_factory=Timeouts)
    tests: list[str] = field(default_factory=list)  # empty: every guest test program
    guest_tests: str = "guest-tests"
    expectations: str = "guest-tests/expectations.yaml"


def project_dir() -> Path:
    """The repository the harness runs from (HARNESS_PROJECT_DIR overrides)."""
    env = os.environ.get("HARNESS_PROJECT_DIR")
    if env:
        return Path(env).resolve()
    here = Path(__file__).resolve().parents[1]
    if (here / "patches").is_dir():
        return here
    return Path.cwd()


def cache_dir() -> Path:
    env = os.environ.get("HARNESS_CACHE")
    if env:
        return Path(env)
    xdg = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(xdg) / "harness"


def _type_name(tp: Any) -> str:
    return getattr(tp, "__name__", str(tp))


def key_path(where: str, key: str) -> str:
    """`qemu` + `memory` -> `qemu.memory`; the top level has no prefix."""
    return f"{where}.{key}" if where else str(key)


def key_error(filename: str, where: str, msg: str) -> ConfigError:
    """`p.yaml: qemu.memroy: unknown key`: the file and the key, apart."""
    return ConfigError(f"{filename}: {where}: {msg}" if where else f"{filename}: {msg}")


def _convert(value: Any, tp: Any, filename: str, where: str) -> Any:
    if dataclasses.is_dataclass(tp):
        if not isinstance(value, dict):
            raise key_error(filename, where, f"expected a mapping, got {type(value).__name__}")
        return _build(tp, value, filename, where)
    if get_origin(tp) is list:
        (item,) = get_args(tp)
        if not isinstance(value, list):
            raise key_error(filename, where, f"expected a list, got {type(value).__name__}")
        return [_convert(v, item, filename, f"{where}[{i}]") for i, v in enumerate(value)]
    # bool is an int subclass; don't let `smp: true` through.
    if tp is int and (isinstance(value, bool) or not isinstance(value, int)):
        raise key_error(filename, where, f"expected an integer, got {value!r}")
    if tp is str and isinstance(value, (int, float)) and not isinstance(value, bool):
        return str(value)  # `memory: 1024` is a fine size
    if not isinstance(value, tp):
        raise key_error(filename, where, f"expected {_type_name(tp)}, got {value!r}")
    return value


def _build(cls: Any, data: dict[str, Any], filename: str, where: str = "") -> Any:
    fields = {f.name: f for f in dataclasses.fields(cls)}
    kwargs = {}
    for key, value in data.items():
        if key not in fields:
            known = ", ".join(sorted(fields))
            raise key_error(filename, key_path(where, key), f"unknown key (known: {known})")
        kwargs[key] = _convert(value, fields[key].type, filename, key_path(where, key))
    return cls(**kwargs)


def yaml_mapping(text: str, filename: str) -> dict[str, Any]:
    """Parse a YAML file whose top level must be a mapping (empty is {})."""
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as e:
        raise ConfigError(f"{filename}: invalid YAML: {e}") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"{filename}: expected a mapping at the top level")
    return data


_SIZE_UNITS = {"K": 1 << 10, "M": 1 << 20, "G": 1 << 30, "T": 1 << 40}


def size_bytes(size: str) -> int:
    """`512M` -> 536870912: QEMU's size syntax (a suffix K, M, G or T; none = bytes)."""
    text = size.strip().upper().removesuffix("B")
    unit = _SIZE_UNITS.get(text[-1:], 1)
    digits = text[:-1] if text[-1:] in _SIZE_UNITS else text
    if not digits.isdigit() or int(digits) == 0:
        raise ConfigError(f"{size!r} is not a size such as 512M or 1G")
    return int(digits) * unit


def parse_profile(text: str, filename: str) -> Profile:
    data = yaml_mapping(text, filename)
    if "series" in data and data["series"] in (None, False):
        data["series"] = ""
    prof = _build(Profile, data, filename)
    if prof.qemu.scratch_disk:
        try:
            size_bytes(prof.qemu.scratch_disk)
        except ConfigError as e:
            raise key_error(filename, "qemu.scratch_disk", str(e)) from None
    return prof


def resolve_profile(name: str) -> Path:
    """A profile name (profiles/NAME.yaml) or a path to a YAML file."""
    p = Path(name)
    if p.suffix in (".yaml", ".yml") or "/" in name:
        if not p.is_file():
            raise ConfigError(f"profile file not found: {p}")
        return p
    cand = project_dir() / "profiles" / f"{name}.yaml"
    if not cand.is_file():
        avail = sorted(x.stem for x in (project_dir() / "profiles").glob("*.yaml"))
        raise ConfigError(f"unknown profile {name!r} (available: {', '.join(avail)})")
    return cand


def load_profile(name: str) -> Profile:
    path = resolve_profile(name)
    return parse_profile(path.read_text(), str(path))


def project_path(rel: str) -> Path:
    p = Path(rel)
    return p if p.is_absolute() else project_dir() / p
