"""Splats decoded with the kernel tree's scripts/decode_stacktrace.sh (harness/decode.py).

The wiring (report -> decode -> summary.txt, results.json, junit.xml) is tested
with a stand-in script; the real script is tested on a small ELF built here
with debug info, and on a real vmlinux where one exists.
"""

import json
import os
import subprocess
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
from conftest import requires_kernel_tools
from conftest import write_report as write

from harness import decode, splat
from harness.boot import BootOutcome
from harness.results import RunRecord

FIXTURES = Path(__file__).resolve().parent / "fixtures"
PANIC = FIXTURES / "console-sysrq-panic-6.12.117.log"  # a real sysrq-c panic, 6.12.117


# --- restore: what the report shows for one line ---------------------------------------------

def test_offset_and_indentation_come_back():
    assert decode.restore(" ? __fput+0xea/0x2b0", "? __fput (fs/file_table.c:450) ") == \
        " ? __fput+0xea/0x2b0 (fs/file_table.c:450)"
    assert decode.restore("RIP: 0010:memcg_file_uncharge+0x12/0x60",
                          "RIP: 0010:memcg_file_uncharge (mm/memcontrol.c:7) ") == \
        "RIP: 0010:memcg_file_uncharge+0x12/0x60 (mm/memcontrol.c:7)"


def test_a_frame_addr2line_cannot_place_stays_as_printed():
    assert decode.restore(" panic+0x2e3/0x300", "panic (??:?) ") == " panic+0x2e3/0x300"
    assert decode.restore(" panic+0x2e3/0x300", "panic (??:0) ") == " panic+0x2e3/0x300"
    assert decode.restore(" panic+0x2e3/0x300", "") == " panic+0x2e3/0x300"


def test_only_frame_lines_go_to_the_script():
    assert decode.is_frame(" __fput+0xea/0x2b0")
    assert decode.is_frame("RIP: 0010:f+0x12/0x60")
    assert decode.is_frame(" [<ffffffff81234567>] f+0x1/0x2")
    assert not decode.is_frame("Code: 48 8b 04 25 08 00 00 00 <48>")
    assert not decode.is_frame("CR2: 0000000000000008")


# --- the wiring, with a stand-in for decode_stacktrace.sh ------------------------------------

FAKE_SCRIPT = r"""#!/bin/bash
# NOT the kernel's script: a stand-in for a unit test of the wiring only.
# Like decode_stacktrace.sh 6.12 it drops the offset and appends (file:line).
[ -f "$1" ] && [ "$2" = auto ] || exit 1
sed -E 's/^ +//; s/([A-Za-z0-9_.]+)\+0x[0-9a-f]+\/0x[0-9a-f]+/\1 (fs\/fake.c:42) /'
"""


def _fake_tree(tmp_path: Path, script: str = FAKE_SCRIPT) -> Path:
    tree = tmp_path / "tree"
    (tree / "scripts").mkdir(parents=True)
    (tree / decode.SCRIPT).write_text(script)
    return tree


def _panic_run(tmp_path: Path, image: dict) -> tuple[RunRecord, list[str]]:
    lines = PANIC.read_text().splitlines()
    rec = RunRecord(tmp_path / "results", "t")
    rec.meta(image=image)
    outcome = BootOutcome(accel="tcg", end="exited", seconds=3.0, lines=lines)
    write(rec, outcome, ["panic"], "series", {})
    return rec, lines


def test_wiring_with_a_fake_decode_script_reaches_every_report(tmp_path):
    vmlinux = tmp_path / "vmlinux"
    vmlinux.write_bytes(b"\x7fELF")
    rec, console = _panic_run(tmp_path, {"vmlinux": str(vmlinux),
                                         "tree": str(_fake_tree(tmp_path))})
    frame = "sysrq_handle_crash+0xc/0x10 (fs/fake.c:42)"
    summary = (rec.dir / "summary.txt").read_text()
    assert f"      {frame}" in summary  # the frame's own indentation is kept
    data = json.loads((rec.dir / "results.json").read_text())
    (panic,) = [s for s in data["splats"] if s["kind"] == "panic"]
    assert " " + frame in panic["decoded"]
    assert " sysrq_handle_crash+0xc/0x10" in panic["lines"]  # raw, as printed
    assert len(panic["decoded"]) == len(panic["lines"])
    assert all("fake.c" not in line for line in panic["decoded"] if "Code:" in line)
    assert "frames at file:line by" in data["metadata"]["decoded"]
    failure = next(el for el in ET.parse(rec.dir / "junit.xml").getroot().iter("failure")
                   if el.get("type") == "splat:panic")
    assert frame in failure.text
    assert not any("fake.c" in line for line in console)  # the console is not rewritten


def test_a_failing_decoder_leaves_the_trace_as_printed(tmp_path, capsys):
    vmlinux = tmp_path / "vmlinux"
    vmlinux.write_bytes(b"")
    tree = _fake_tree(tmp_path, "#!/bin/bash\necho broken >&2\nexit 3\n")
    rec, _ = _panic_run(tmp_path, {"vmlinux": str(vmlinux), "tree": str(tree)})
    data = json.loads((rec.dir / "results.json").read_text())
    assert all(s["decoded"] == [] for s in data["splats"])
    assert "sysrq_handle_crash+0xc/0x10" in (rec.dir / "summary.txt").read_text()
    assert data["metadata"]["decoded"].startswith("no: ")
    assert "stack traces left as printed" in capsys.readouterr().err


def test_an_image_without_vmlinux_is_reported_raw(tmp_path):
    rec, _ = _panic_run(tmp_path, {"tree": str(_fake_tree(tmp_path))})
    data = json.loads((rec.dir / "results.json").read_text())
    assert all(s["decoded"] == [] for s in data["splats"])
    assert data["metadata"]["decoded"].startswith("no: this image kept no vmlinux")


def test_an_older_image_uses_the_build_directorys_vmlinux_only_if_it_made_its_bzimage(
        tmp_path):
    tree = _fake_tree(tmp_path)
    bdir = tmp_path / "build"
    (bdir / "arch/x86/boot").mkdir(parents=True)
    (bdir / "images/series").mkdir(parents=True)
    (bdir / "vmlinux").write_bytes(b"\x7fELF")
    (bdir / "arch/x86/boot/bzImage").write_bytes(b"image A")
    (bdir / "images/series/bzImage").write_bytes(b"image A")
    image = {"kernel": "series", "config": str(bdir / ".config"), "tree": str(tree)}
    assert decode.decoder_for(image) == (bdir / "vmlinux", tree)
    (bdir / "arch/x86/boot/bzImage").write_bytes(b"image B")  # the other kernel built since
    assert decode.decoder_for(image) is None


# --- the real decode_stacktrace.sh ------------------------------------------------------------

@pytest.fixture
def real_tree(kernel_tree) -> Path:
    assert (kernel_tree / decode.SCRIPT).is_file(), kernel_tree
    return kernel_tree


@pytest.mark.integration
@requires_kernel_tools()
def test_real_script_on_an_elf_with_debug_info_gives_file_and_line(tmp_path, real_tree):
    src, out = tmp_path / "src", tmp_path / "build"
    (src / "init").mkdir(parents=True)
    (src / "fs").mkdir()
    out.mkdir()
    # `auto` finds the source root through kernel_init in init/main.c, like in a kernel.
    (src / "init/main.c").write_text("int kernel_init(void)\n{\n\treturn 0;\n}\n")
    (src / "fs/file.c").write_text(
        "int counter;\n\nvoid fd_install(int fd)\n{\n\tcounter += fd;\n\tcounter *= 3;\n}\n")
    subprocess.run(["gcc", "-g", "-O0", "-fno-pie", "-no-pie", "-nostdlib", "-static",
                    "-Wl,-e,kernel_init", "-o", "vmlinux", str(src / "init/main.c"),
                    str(src / "fs/file.c")], cwd=out, check=True)
    s = splat.Splat("oops", "Oops: x", ["Oops: x", "RIP: 0010:fd_install+0x7/0x20",
                                         "Call Trace:", " <TASK>", " ? fd_install+0x18/0x20",
                                         " kernel_init+0x4/0x10", "Code: 00 00 <0f> 0b"])
    assert decode.decode_splats([s], out / "vmlinux", real_tree) == 3
    assert s.decoded == ["Oops: x", "RIP: 0010:fd_install+0x7/0x20 (fs/file.c:5)",
                         "Call Trace:", " <TASK>", " ? fd_install+0x18/0x20 (fs/file.c:6)",
                         " kernel_init+0x4/0x10 (init/main.c:3)", "Code: 00 00 <0f> 0b"]


def _has_debug_info(vmlinux: Path) -> bool:
    return b".debug_line" in subprocess.run(["readelf", "-S", str(vmlinux)],
                                            capture_output=True, timeout=120).stdout


@pytest.mark.integration
@requires_kernel_tools()
def test_real_vmlinux_decodes_the_captured_panic(real_tree, request):
    # A vmlinux with debug info: HARNESS_TEST_VMLINUX, or the default profile's
    # series built with kconfigs/debuginfo.config (the default itself has none).
    env = os.environ.get("HARNESS_TEST_VMLINUX")
    vmlinux = (Path(env) if env else
               request.getfixturevalue("debuginfo_image").image.parent / "vmlinux")
    assert vmlinux.is_file(), vmlinux
    splats = splat.find_splats(PANIC.read_text().splitlines())
    placed = decode.decode_splats(splats, vmlinux, real_tree)
    assert _has_debug_info(vmlinux), vmlinux
    frames = [(raw, new) for s in splats for raw, new in zip(s.lines, s.decoded, strict=True)
              if decode.is_frame(raw)]
    assert frames
    for raw, new in frames:  # the function+offset of every frame is always kept
        assert new.startswith(raw), (raw, new)
    assert placed > 0, frames
