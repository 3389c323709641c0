"""Boxes keyed to frames (``--bbox X0,Y0,X1,Y1@FRAME``, repeated): interpolation, errors, the README."""

from __future__ import annotations

import json
import shlex
from pathlib import Path

import numpy as np
import pytest

from vacelab.cli import main
from vacelab.errors import InputError
from vacelab.sample import sample_mask, sample_path
from vacelab.tasks import masks, prepare

ROOT = Path(__file__).resolve().parents[1]
SIZE = (192, 320)  # job (height, width)
SMALL = dict(size="320x192", frames=17)


def box_of(frame: np.ndarray) -> tuple[int, int, int, int]:
    rows, cols = np.nonzero(frame)
    return int(cols.min()), int(rows.min()), int(cols.max()) + 1, int(rows.max()) + 1


def test_keys_at_0_and_80_give_the_midpoint_at_40():
    mask = masks.keyed_bbox_mask([(0, (0, 0, 100, 50)), (80, (200, 100, 400, 250))], 81, (480, 832))
    assert box_of(mask[0]) == (0, 0, 100, 50) and box_of(mask[80]) == (200, 100, 400, 250)
    assert np.allclose(box_of(mask[40]), (100, 50, 250, 150), atol=1)
    # the same through prepare, at 480p on the sample, keys in any order
    job = prepare("inpaint", video=str(sample_path()), bbox=["200,100,400,250@80", "0,0,100,50@0"])
    assert job.mask.shape == (81, 480, 832)
    assert np.allclose(box_of(job.mask[40]), (100, 50, 250, 150), atol=1)
    assert np.allclose(box_of(job.mask[20]), (50, 25, 175, 100), atol=1)


def test_boxes_are_held_before_the_first_key_and_after_the_last():
    mask = masks.keyed_bbox_mask([(4, (10, 10, 20, 20)), (8, (30, 10, 40, 20))], 13, (32, 64))
    assert all(box_of(mask[f]) == (10, 10, 20, 20) for f in range(5))
    assert box_of(mask[6]) == (20, 10, 30, 20)
    assert all(box_of(mask[f]) == (30, 10, 40, 20) for f in range(8, 13))
    one = masks.keyed_bbox_mask([(3, (10, 10, 20, 20))], 5, (32, 64))  # one key: held on every frame
    assert np.array_equal(one, masks.bbox_mask((10, 10, 20, 20), 5, (32, 64)))


@pytest.mark.parametrize(
    "plain",
    ["40,30,120,90", ["40,30,120,90"], (40, 30, 120, 90), [40, 30, 120, 90], ["40", "30", "120", "90"]],
)
def test_a_plain_box_keeps_its_meaning_exactly(plain):
    job = prepare("inpaint", video=str(sample_path()), bbox=plain, **SMALL)
    expected = np.zeros((17, *SIZE), bool)
    expected[:, 30:90, 40:120] = True
    assert np.array_equal(job.mask, expected)


def test_source_coordinates_are_mapped_per_key():
    # 832x480 covers 320x192 at 333x192 (x 333/832, y 0.4), then 6 px are cropped on the left
    job = prepare("inpaint", video=str(sample_path()), bbox=["115,75,315,225@0", "415,75,615,225@16"],
                  coords="source", **SMALL)  # fmt: skip
    assert box_of(job.mask[0]) == (40, 30, 120, 90)
    assert box_of(job.mask[16]) == (160, 30, 240, 90)
    assert np.allclose(box_of(job.mask[8]), (100, 30, 180, 90), atol=1)


@pytest.mark.parametrize(
    ("bbox", "message"),
    [
        (["0,0,8,8@0", "0,0,8,8@17"], r"^bbox 0,0,8,8@17: key frame outside the job \(0\.\.16\)$"),
        (["0,0,8,8@-1"], r"^bbox 0,0,8,8@-1: key frame outside the job"),
        (["0,0,8,8@3", "8,8,16,16@3"], r"^bbox 8,8,16,16@3: two boxes keyed to frame 3$"),
        (["0,0,8,8@0", "8,8,16,16"], r"^bbox 0,0,8,8@0 8,8,16,16: mixes boxes keyed to a frame"),
        (["0,0,8,8", "8,8,16,16"], r"^bbox 0,0,8,8 8,8,16,16: several boxes without a frame"),
        (["0,0,8,8@x"], r"^bbox '0,0,8,8@x': the frame after @ must be an integer$"),
        (["0,0,8,8@0", "0,0,900,8@4"], r"^bbox 0,0,900,8: must satisfy 0 <= X0 < X1 <= 320"),
    ],
)
def test_bad_keys_are_one_line_errors_naming_the_field(bbox, message):
    with pytest.raises(InputError, match=message) as caught:
        prepare("inpaint", video=str(sample_path()), bbox=bbox, **SMALL)
    assert caught.value.field == "bbox" and "\n" not in str(caught.value)


def test_cli_repeats_bbox_and_words_errors_as_the_flag(tmp_path, capsys):
    base = ["prepare", "inpaint", "--video", str(sample_path()), "--size", "320x192", "--frames", "17"]
    code = main([*base, "--bbox", "0,0,8,8@0", "--bbox", "0,0,8,8@0", "--out", str(tmp_path / "a")])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and err == ["error: --bbox 0,0,8,8@0: two boxes keyed to frame 0"]
    assert not (tmp_path / "a").exists()
    out = tmp_path / "b"
    assert main([*base, "--bbox", "0,0,16,16@0", "--bbox", "64,0,80,16@16", "--out", str(out)]) == 0
    capsys.readouterr()
    params = json.loads((out / "job.json").read_text())["params"]
    assert params["bbox"] == ["0,0,16,16@0", "64,0,80,16@16"]
    out = tmp_path / "c"
    assert main([*base, "--bbox", "0,0,16,16", "--out", str(out)]) == 0  # one box: recorded as before
    assert json.loads((out / "job.json").read_text())["params"]["bbox"] == "0,0,16,16"


def test_keyed_boxes_in_a_batch_manifest(tmp_path):
    from vacelab.manifest import load_manifest

    common = f'task = "inpaint", video = "{sample_path()}", size = "320x192", frames = 17'
    (tmp_path / "batch.toml").write_text(
        f'[[jobs]]\nname = "keyed"\nprepare = {{{common}, bbox = ["0,0,16,16@0", "64,0,80,16@16"]}}\n'
        f'[[jobs]]\nname = "plain"\nprepare = {{{common}, bbox = [40, 30, 120, 90]}}\n',
        encoding="utf-8",
    )
    keyed, plain = (job.prepare for job in load_manifest(tmp_path / "batch.toml").jobs)
    job = prepare(keyed.pop("task"), **keyed)
    assert box_of(job.mask[0]) == (0, 0, 16, 16) and box_of(job.mask[16]) == (64, 0, 80, 16)
    assert box_of(job.mask[8]) == (32, 0, 48, 16)
    job = prepare(plain.pop("task"), **plain)
    assert all(box_of(frame) == (40, 30, 120, 90) for frame in job.mask)


# ------------------------------------------------------------------------- the README's remove example
def documented_remove(path: Path) -> list[str]:
    """The document's ``vacelab prepare remove ... --bbox ...`` command, as argv after ``vacelab``."""
    text = path.read_text(encoding="utf-8").replace("\\\n", " ")
    lines = [
        line for line in text.splitlines() if line.startswith("vacelab prepare remove") and "--bbox" in line
    ]
    assert len(lines) == 1, lines
    argv = shlex.split(lines[0].replace("$S", str(sample_path())), comments=True)
    return argv[1:]


@pytest.fixture(scope="module")
def truth() -> np.ndarray:
    return sample_mask()


@pytest.mark.parametrize("doc", ["README.md", "docs/prepare.md"])
def test_the_documented_remove_box_covers_the_moving_object_in_every_frame(doc, truth, monkeypatch, capsys):
    import vacelab.tasks

    real, built = vacelab.tasks.prepare, []

    def build_only(task, out=None, **options):  # the command's options, without writing the job
        built.append(real(task, **options))
        return built[-1]

    monkeypatch.setattr(vacelab.tasks, "prepare", build_only)
    argv = documented_remove(ROOT / doc)
    assert argv.count("--bbox") > 1 and all("@" in argv[i + 1] for i, a in enumerate(argv) if a == "--bbox")
    assert main(argv) == 0
    capsys.readouterr()
    (job,) = built
    assert job.mask.shape == (81, 480, 832)  # the default job: 81 frames at 480p
    obj = truth[: len(job.mask)]
    coverage = (obj & job.mask).sum(axis=(1, 2)) / obj.sum(axis=(1, 2))
    assert coverage.min() == 1.0, np.flatnonzero(coverage < 1)
    # the boxes themselves (before remove grows them by 8 px) already cover it
    boxes = [argv[i + 1] for i, a in enumerate(argv) if a == "--bbox"]
    bare = prepare("remove", video=str(sample_path()), bbox=boxes, grow=0)
    assert ((obj & ~np.asarray(bare.mask)).sum(axis=(1, 2)) == 0).all()


def test_a_static_box_misses_the_moving_object(truth):
    """What the README used to show: one box for every frame loses the object from frame 40 on."""
    job = prepare("remove", video=str(sample_path()), bbox="100,220,280,330")
    obj = truth[: len(job.mask)]
    coverage = (obj & job.mask).sum(axis=(1, 2)) / obj.sum(axis=(1, 2))
    assert coverage[0] > 0.85 and coverage[40:].max() == 0.0
