"""run.py's image reuse: an image built from the same state is used again."""

import json
from pathlib import Path

from harness import run
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
    kept = run.reusable_image(req, dict(STATE))
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
        assert run.reusable_image(req, {**STATE, key: "other"}) is None, key
    req.at_head = "step"  # patchcheck and bisect build what is checked out
    assert run.reusable_image(req, dict(STATE)) is None
