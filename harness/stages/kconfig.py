"""Stage 3, config: a base (tinyconfig, or a distribution's full config) +
fragments via merge_config.sh, then a check.

Like kunit.py, every option the fragments ask for must survive
olddefconfig; the ones that don't are named. A symbol the tree's Kconfig
doesn't define (e.g. a KUnit suite that only the series adds) is reported
but is not an error, so one fragment serves the base and the series.
"""

import hashlib
import lzma
import os
import re
import shutil
import subprocess
from pathlib import Path

from harness import printer
from harness.errors import ConfigError, InfraError, KconfigError
from harness.target import DEFAULT, Target

_LINE = re.compile(r"^(CONFIG_\w+)=(.*)$|^# (CONFIG_\w+) is not set$")
_ASSIGN = re.compile(r"^\s*([\w.$()-]+)\s*(?:\+=|:=|=)\s*(.*)$")
_CONFIG_REF = re.compile(r"\$\((CONFIG_\w+)\)")
CONFIG_TIMEOUT = 600  # seconds, each make/merge_config.sh of the config stage


def parse_config(text: str) -> dict[str, str]:
    """CONFIG_X -> value; 'n' for `# CONFIG_X is not set`."""
    out = {}
    for line in text.splitlines():
        m = _LINE.match(line.strip())
        if m:
            if m.group(1):
                out[m.group(1)] = m.group(2)
            else:
                out[m.group(3)] = "n"
    return out


def fragments_digest(fragments: list[Path], target: Target = DEFAULT,
                     base: Path | None = None) -> str:
    # The default target on tinyconfig hashes as it always did, so existing
    # build directories stay valid.
    h = hashlib.sha256(target.name.encode())
    if base is not None:
        h.update(b"base:" + read_base(base))
    for f in fragments:
        h.update(f.read_bytes())
    return h.hexdigest()[:12]


def read_base(base: Path) -> bytes:
    """A full base config (Debian ships them xz-compressed in linux-config-6.12)."""
    if not base.is_file():
        raise ConfigError(f"base config not found: {base}"
                          + ("\n    Install it with: sudo apt-get install linux-config-6.12"
                             if "linux-config-" in str(base) else ""))
    data = base.read_bytes()
    return lzma.decompress(data) if base.suffix == ".xz" else data


def kconfig_symbols(tree: Path) -> set[str]:
    syms: set[str] = set()
    pat = re.compile(r"^\s*(?:menu)?config\s+(\w+)", re.M)
    for root, dirs, files in os.walk(tree):
        dirs[:] = [d for d in dirs if not d.startswith(".")]
        for name in files:
            if name.startswith("Kconfig"):
                try:
                    syms.update(pat.findall(Path(root, name).read_text(errors="replace")))
                except OSError:
                    pass
    return syms


def check_fragments(requested: dict[str, str], final: dict[str, str],
                    known: set[str]) -> tuple[list[str], list[str]]:
    """Return (options that did not survive, options this tree doesn't have)."""
    lost, absent = [], []
    for sym, want in requested.items():
        got = final.get(sym, "n")
        if got == want:
            continue
        if sym.removeprefix("CONFIG_") not in known:
            absent.append(sym)
        else:
            lost.append(f"{sym}={want} (got {'not set' if got == 'n' else got})")
    return lost, absent


def _run(cmd: list[str], cwd: Path, log) -> None:
    log.write(f"$ {' '.join(cmd)}\n")
    log.flush()
    try:  # tinyconfig, a merge, olddefconfig: seconds each
        proc = subprocess.run(cmd, cwd=cwd, stdout=log, stderr=subprocess.STDOUT, text=True,
                              timeout=CONFIG_TIMEOUT)
    except subprocess.TimeoutExpired:
        raise InfraError(f"{' '.join(cmd[:3])} ... timed out after {CONFIG_TIMEOUT}s; "
                         f"see {log.name}") from None
    if proc.returncode != 0:
        raise KconfigError(f"{' '.join(cmd[:3])} ... failed (exit {proc.returncode}); "
                           f"see {log.name}")


def config_key(tree: Path, fragments: list[Path], target: Target = DEFAULT,
               base: Path | None = None) -> str:
    """What the resulting .config depends on: the target, the base, the fragments
    and every Kconfig file of the checked-out tree (by blob id, from git's index: fast)."""
    h = hashlib.sha256(fragments_digest(fragments, target, base).encode())
    try:
        proc = subprocess.run(["git", "-C", str(tree), "ls-files", "-s", "--", "*Kconfig*"],
                              capture_output=True, text=True, timeout=120)
        h.update(proc.stdout.encode() if proc.returncode == 0 else os.urandom(8))
    except subprocess.TimeoutExpired:
        h.update(os.urandom(8))  # unknown: configure again
    return h.hexdigest()


def configure(tree: Path, build_dir: Path, fragments: list[Path], log,
              target: Target = DEFAULT, base: Path | None = None) -> bool:
    """Write BUILD_DIR/.config; return False when it was already up to date.

    The base is tinyconfig, or BASE: a full config such as Debian's, whose
    every option is taken as it is except what the fragments override (only
    the fragments' options are checked: a distribution config names
    toolchain-dependent values that never survive on another compiler).
    Generating a config costs ~20 s (tinyconfig, merge, olddefconfig): more
    than an incremental make. Skip it when neither the fragments nor any
    Kconfig file changed since the last time.
    """
    for f in fragments:
        if not f.is_file():
            raise ConfigError(f"config fragment not found: {f}")
    key = config_key(tree, fragments, target, base)
    stamp = build_dir / ".harness-config-key"
    if (build_dir / ".config").exists() and stamp.exists() and stamp.read_text() == key:
        return False
    scratch = build_dir / ".harness-kconfig"
    scratch.mkdir(parents=True, exist_ok=True)
    make = ["make", "-s", *target.make_vars(), f"O={scratch}"]
    if base is None:
        _run([*make, "tinyconfig"], tree, log)
    else:
        log.write(f"base config: {base}\n")
        (scratch / ".config").write_bytes(read_base(base))
    _run([str(tree / "scripts/kconfig/merge_config.sh"), "-m", "-O", str(scratch),
          str(scratch / ".config"), *map(str, fragments)], tree, log)
    _run([*make, "olddefconfig"], tree, log)

    requested: dict[str, str] = {}
    for f in fragments:
        requested.update(parse_config(f.read_text()))
    final = parse_config((scratch / ".config").read_text())
    lost, absent = check_fragments(requested, final, kconfig_symbols(tree))
    if absent:
        printer.info(f"not in this tree (ignored): {', '.join(absent)}")
    if lost:
        raise KconfigError("these options did not survive olddefconfig (unmet dependencies?):\n"
                           + "\n".join(f"    {x}" for x in lost))

    # Only replace .config when it differs, so an unchanged config keeps
    # its timestamp and make has nothing to redo.
    new = (scratch / ".config").read_bytes()
    dot = build_dir / ".config"
    if not dot.exists() or dot.read_bytes() != new:
        shutil.copyfile(scratch / ".config", dot)
    stamp.write_text(key)
    return True


def _gate(makefile: Path, token: str) -> str | None:
    """The option MAKEFILE lists TOKEN under (`obj-$(CONFIG_X) += token`): "CONFIG_X",
    "" when listed unconditionally, None when not listed there."""
    try:
        text = makefile.read_text(errors="replace").replace("\\\n", " ")
    except OSError:
        return None
    for line in text.splitlines():
        m = _ASSIGN.match(line)
        if m and token in m.group(2).split():
            c = _CONFIG_REF.search(m.group(1))
            return c.group(1) if c else ""
    return None


def builds_object(tree: Path, config: dict[str, str], obj: str) -> bool:
    """Whether CONFIG builds OBJ (`mm/memcontrol.o`): neither its directory's Makefile
    nor a parent's (Kbuild at the top) lists it, or its directory, under an option
    that is off. Compiling an object the config leaves out fails for no fault of a
    patch (mm/memcontrol.c without CONFIG_MEMCG). Not listed at all: assumed built."""
    parts = obj.split("/")
    for i in range(len(parts) - 1, -1, -1):
        d = tree.joinpath(*parts[:i])
        token = parts[i] if i == len(parts) - 1 else parts[i] + "/"
        mk = d / "Kbuild" if (d / "Kbuild").is_file() else d / "Makefile"
        gate = _gate(mk, token)
        if gate and config.get(gate, "n") == "n":
            return False
    return True
