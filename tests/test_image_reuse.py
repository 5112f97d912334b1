"""The image store (harness/images.py): an image built from the same state is used again,
any other state says what changed."""

import json
from dataclasses import replace
from pathlib import Path

from harness import images, run
from harness.profile import Profile
from harness.results import RunRecord

STATE = {"base": "b" * 40, "series": "s" * 64, "fragments": "f" * 12, "compiler": "gcc 12"}


def _kept(tmp_path: Path, monkeypatch, state: dict) -> run.Request:
    monkeypatch.setenv("HARNESS_CACHE", str(tmp_path / "cache"))
    req = run.Request(profile=Profile())
    idir = run.image_dir(req)
    idir.mkdir(parents=True)
    (idir / "bzImage").write_bytes(b"kernel")
    (idir / "config").write_text("CONFIG_MEMCG=y\n")
    (idir / "image.json").write_text(json.dumps(
        {"kernel": "series", "release": "6.12", "head": "h" * 40, "commits": ["x"],
         "built_at": "2026-12-02T00:00:00+0000", "state": state}))
    return req


def test_an_image_of_the_same_state_is_reused_with_its_artifacts(tmp_path, monkeypatch):
    req = _kept(tmp_path, monkeypatch, STATE)
    kept, changes = images.find(req, dict(STATE))
    assert changes == []
    assert kept is not None
    rec = RunRecord(tmp_path / "results", "t")
    run._reuse(req, rec, kept)
    # The results directory looks like any build's: a build.log saying what
    # happened, and the config the image was built with.
    assert "nothing built" in rec.path("build.log").read_text()
    assert rec.path("kernel.config").read_text() == "CONFIG_MEMCG=y\n"
    assert rec.data["stages"]["build"] == {"status": "pass", "seconds": 0.0, "reused": True}


def test_another_state_or_a_bisect_step_builds(tmp_path, monkeypatch):
    req = _kept(tmp_path, monkeypatch, STATE)
    for key in STATE:
        kept, changes = images.find(req, {**STATE, key: "other"})
        assert kept is None and len(changes) == 1 and changes[0].startswith(f"{key}: "), key
    step = replace(req, at_head="step")  # patchcheck and bisect build what is checked out
    assert images.find(step, dict(STATE))[0] is None


def test_what_changed_names_the_files_when_the_image_kept_them():
    info = {"state": STATE, "commits": ["a", "b"],
            "inputs": {"patches": {"1.patch": "x", "2.patch": "y"},
                       "fragments": {"base.config": "f", "debuginfo.config": "d"}}}
    now = {"patches": {"1.patch": "x", "2.patch": "y2", "3.patch": "z"},
           "fragments": {"base.config": "f2"}}
    changes = images.changed(info, {**STATE, "series": "t" * 64, "fragments": "g" * 12}, now)
    assert changes == [
        f"series: {'s' * 12} -> {'t' * 12} (3.patch added, 2.patch edited)",
        f"fragments: {'f' * 12} -> {'g' * 12} (debuginfo.config removed, base.config edited)"]
    # An image from before inputs were kept: the digests, and the patch count.
    old = {"state": STATE, "commits": ["a", "b"]}
    assert images.changed(old, {**STATE, "series": ""}, now) == [
        f"series: {'s' * 12} -> none (the base alone) (2 -> 3 patches)"]
    assert images.changed({}, STATE) == [
        "state: not recorded (an image from before states were kept)"]


def test_a_current_image_is_reused_while_another_run_holds_the_tree(tmp_path, monkeypatch):
    # Another run building another config of the same source tree (a distro
    # kernel takes 25 minutes) must not hold up a run whose image is current.
    import fcntl
    import os
    import signal

    from harness.stages.source import SourceTree

    req = _kept(tmp_path, monkeypatch, STATE)
    monkeypatch.setattr(run, "prepare_source", lambda cfg, cache: SourceTree(
        tmp_path / "tree", STATE["base"], "k", "test tree", "6.12"))
    monkeypatch.setattr(images, "state", lambda *a, **kw: dict(STATE))
    lock = run.tree_lock_path(req)
    lock.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(lock, os.O_RDWR | os.O_CREAT)
    fcntl.flock(fd, fcntl.LOCK_EX)  # flock: another open file description blocks on it
    old = signal.signal(signal.SIGALRM, lambda *a: (_ for _ in ()).throw(TimeoutError))
    signal.alarm(10)
    try:
        img = run.build_kernel(req, RunRecord(tmp_path / "results", "t"))
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, old)
        os.close(fd)
    assert img.info["state"] == STATE
