"""Stack traces you can act on: splats decoded with the kernel's own decode_stacktrace.sh.

Every frame line of every splat (`__fput+0xea/0x2b0`, `RIP: 0010:f+0x12/0x60`)
goes through `scripts/decode_stacktrace.sh VMLINUX auto` of the tree the kernel
was built from, in one batch (the script caches nm and addr2line answers per
run), and comes back as `__fput+0xea/0x2b0 (fs/file_table.c:450)`: the offset
stays, the script's file:line follows. A vmlinux without debug info gives
nothing better than the symbol table's file name, so a frame it cannot place
stays as the console printed it. The console itself is never rewritten:
console.log keeps the raw trace; the report shows the decoded one.
"""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

from harness.splat import Splat

SCRIPT = "scripts/decode_stacktrace.sh"
TIMEOUT = 600  # seconds for the whole batch; addr2line on a debug vmlinux takes ~1 s a frame

# What the script itself treats as a frame: an address or a symbol+offset/size.
# "Code:" lines would be disassembled by scripts/decodecode instead: not ours.
_FRAME = re.compile(r"\[<[0-9a-f]+>\]|[^+\s]+\+0x[0-9a-f]+/0x[0-9a-f]+")
_SYMBOL = re.compile(r"([\w.$]+)\+(0x[0-9a-f]+/0x[0-9a-f]+)")
_PLACED = re.compile(r"\+0x[0-9a-f]+/0x[0-9a-f]+ \([^)]*:\d+")  # a frame with a file:line
_UNKNOWN = re.compile(r"\((?:\?\?:[?0]\s*)+\)")  # addr2line had nothing at all


def is_frame(line: str) -> bool:
    return bool(_FRAME.search(line)) and "Code:" not in line


def restore(raw: str, decoded: str) -> str:
    """The script's line, with the raw line's indentation and each symbol's
    +offset/size put back (decode_stacktrace.sh of 6.12 drops them); the raw
    line itself when the script could not place the frame at all."""
    decoded = decoded.strip()
    for name, off in _SYMBOL.findall(raw):
        decoded = decoded.replace(f"{name} (", f"{name}+{off} (", 1)
    if not decoded or _UNKNOWN.search(decoded) or decoded.split() == raw.split():
        return raw
    return raw[: len(raw) - len(raw.lstrip())] + decoded


def decode_lines(lines: list[str], vmlinux: Path, tree: Path,
                 timeout: int = TIMEOUT) -> list[str]:
    """LINES with every frame decoded; raises OSError or
    subprocess.SubprocessError (incl. a timeout) when the script fails."""
    idx = [i for i, line in enumerate(lines) if is_frame(line)]
    if not idx:
        return list(lines)
    proc = subprocess.run(
        ["bash", str(tree / SCRIPT), str(vmlinux), "auto"],
        input="".join(lines[i] + "\n" for i in idx), capture_output=True, text=True,
        timeout=timeout, check=False)
    out = proc.stdout.splitlines()
    if proc.returncode != 0 or len(out) != len(idx):
        raise subprocess.SubprocessError(
            f"{SCRIPT} exited {proc.returncode} with {len(out)} lines for {len(idx)} frames: "
            f"{proc.stderr.strip()[-500:]}")
    result = list(lines)
    for i, line in zip(idx, out, strict=True):
        result[i] = restore(lines[i], line)
    return result


def decoder_for(image: dict) -> tuple[Path, Path] | None:
    """(vmlinux, tree) of a kernel image's info (run.py's image.json), if both
    are still there. An image kept before images kept their vmlinux can still
    use the build directory's, while that is the link its bzImage came from."""
    tree = Path(image.get("tree") or "/nonexistent")
    vmlinux = Path(image["vmlinux"]) if image.get("vmlinux") else _build_dir_vmlinux(image)
    if vmlinux is None or not vmlinux.is_file() or not (tree / SCRIPT).is_file():
        return None
    return vmlinux, tree


def _build_dir_vmlinux(image: dict) -> Path | None:
    if not image.get("config") or not image.get("kernel"):
        return None
    bdir = Path(image["config"]).parent
    vmlinux, built = bdir / "vmlinux", bdir / "arch" / "x86" / "boot" / "bzImage"
    kept = bdir / "images" / image["kernel"] / "bzImage"
    try:
        same = (built.read_bytes() == kept.read_bytes()
                and vmlinux.stat().st_mtime <= built.stat().st_mtime)
    except OSError:
        return None
    return vmlinux if same else None


def decode_splats(splats: list[Splat], vmlinux: Path, tree: Path,
                  timeout: int = TIMEOUT) -> int:
    """Fill each splat's `decoded` lines (one batch for all); return the number
    of frames that gained a file:line. Raises like decode_lines."""
    flat = [line for s in splats for line in s.lines]
    decoded = decode_lines(flat, vmlinux, tree, timeout)
    n = 0
    for s in splats:
        s.decoded = decoded[n:n + len(s.lines)]
        n += len(s.lines)
    return sum(bool(_PLACED.search(line)) for line in decoded)
