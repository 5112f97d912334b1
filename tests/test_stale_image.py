"""`harness test` never boots a stale image silently, and bad input fails before any build.

Hermetic: a temporary HARNESS_CACHE, a tiny git tree as --source, a series and a
fragment in tmp_path. The build and the boot are replaced by recorders: what is
tested here is which image `harness test` decides to boot, and what it says.
"""

import json
import subprocess
from pathlib import Path

import pytest

from harness import cli, pipeline, run
from harness.errors import EXIT_OK, EXIT_USAGE
from harness.stages.kconfig import fragments_digest
from harness.stages.series import read_series
from harness.target import DEFAULT


class Recorder:
    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.built: list[str] = []
        self.booted: list[Path] = []
        monkeypatch.setattr(run, "build_kernel", self.build)
        monkeypatch.setattr(pipeline, "test_kernel", self.test)

    def build(self, req: run.Request, rec) -> run.KernelImage:
        self.built.append(req.kernel)
        return run.KernelImage(Path("/rebuilt/bzImage"), {"release": "new"})

    def test(self, req: run.Request, img: run.KernelImage, rec) -> int:
        self.booted.append(img.image)
        return EXIT_OK


@pytest.fixture
def setup(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("HARNESS_CACHE", str(tmp_path / "cache"))
    src = tmp_path / "src"
    src.mkdir()
    git = ["git", "-c", "user.name=t", "-c", "user.email=t@t", "-C", str(src)]
    subprocess.run([*git, "init", "-q"], check=True, timeout=60)
    subprocess.run([*git, "commit", "-q", "--allow-empty", "-m", "base"], check=True, timeout=60)
    pdir = tmp_path / "p"
    pdir.mkdir()
    for i in range(1, 6):
        (pdir / f"000{i}-p.patch").write_text(f"patch {i}\n")
    (pdir / "series").write_text("".join(f"000{i}-p.patch\n" for i in range(1, 6)))
    frag = tmp_path / "extra.config"
    frag.write_text("CONFIG_A=y\n")
    profile = tmp_path / "prof.yaml"
    profile.write_text(json.dumps({"source": {"path": str(src)}, "series": str(pdir / "series"),
                                   "fragments": ["kconfigs/base.config"]}))
    args = ["--profile", str(profile), "--fragment", str(frag), "--tests", "smoke",
            "--results-dir", str(tmp_path / "results")]
    req = cli.request_from_args(cli.build_parser().parse_args(["test", *args]))
    base = subprocess.run([*git, "rev-parse", "HEAD"], capture_output=True, text=True,
                          timeout=60).stdout.strip()
    series = read_series(pdir / "series")
    frags = [Path("kconfigs/base.config").resolve(), frag]
    state = {"base": base, "series": series.digest(), "fragments": fragments_digest(frags, DEFAULT),
             "compiler": DEFAULT.compiler_version()}
    idir = run.image_dir(req)
    idir.mkdir(parents=True)
    (idir / "bzImage").write_bytes(b"kernel")
    (idir / "config").write_text("CONFIG_A=y\n")
    (idir / "image.json").write_text(json.dumps(
        {"kernel": "series", "release": "old", "head": "h", "commits": [], "target": "x86_64",
         "tree": str(src), "built_at": "2026-12-02T00:00:00+0000", "state": state}))
    return args, idir / "bzImage", pdir, frag


def test_a_current_image_is_booted_without_building(setup, monkeypatch, capsys):
    args, image, _, _ = setup
    rec = Recorder(monkeypatch)
    assert cli.main(["test", *args]) == EXIT_OK
    assert rec.booted == [image] and rec.built == []


def test_a_series_of_four_of_five_patches_rebuilds_and_says_so(setup, monkeypatch, capsys):
    args, image, pdir, _ = setup
    (pdir / "series").write_text("".join(f"000{i}-p.patch\n" for i in range(1, 5)))
    rec = Recorder(monkeypatch)
    assert cli.main(["test", *args]) == EXIT_OK
    assert rec.built == ["series"] and rec.booted == [Path("/rebuilt/bzImage")]
    out = capsys.readouterr().out
    assert "out of date" in out and "series: " in out


def test_a_fragment_edit_rebuilds_and_says_so(setup, monkeypatch, capsys):
    args, image, _, frag = setup
    frag.write_text("CONFIG_A=y\nCONFIG_B=y\n")
    rec = Recorder(monkeypatch)
    assert cli.main(["test", *args]) == EXIT_OK
    assert rec.built == ["series"] and image not in rec.booted
    out = capsys.readouterr().out
    assert "out of date" in out and "fragments: " in out


def test_no_build_refuses_a_stale_image_naming_the_change(setup, monkeypatch, capsys):
    args, image, pdir, _ = setup
    (pdir / "0003-p.patch").write_text("patch 3, edited\n")
    rec = Recorder(monkeypatch)
    assert cli.main(["test", "--no-build", *args]) == EXIT_USAGE
    assert rec.built == [] and rec.booted == []
    err = capsys.readouterr().err
    assert "series: " in err and "--no-build" in err


def test_an_unknown_test_is_rejected_before_the_build(setup, monkeypatch, capsys):
    args, _, _, _ = setup
    rec = Recorder(monkeypatch)
    args = [a if a != "smoke" else "nonexist" for a in args]
    assert cli.main(["build-and-test", *args]) == EXIT_USAGE
    assert rec.built == []
    err = capsys.readouterr().err
    assert "unknown guest tests: nonexist" in err and "file_charge" in err


def test_a_missing_guest_busybox_is_reported_before_the_build(setup, monkeypatch, capsys,
                                                               tmp_path):
    args, _, _, _ = setup
    monkeypatch.setenv("HARNESS_BUSYBOX_DIR", str(tmp_path / "nothing-here"))
    rec = Recorder(monkeypatch)
    assert cli.main(["build-and-test", "--arch", "i386", *args]) == EXIT_USAGE
    assert rec.built == []
    err = capsys.readouterr().err
    assert "busybox-i386 not found" in err
    assert "./install-deps.sh" in err and "apt-get download busybox-static:i386" in err
    assert "dpkg-deb -x" in err
