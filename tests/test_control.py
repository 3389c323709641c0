"""``prepare control``: gray, edges and scribble control videos drawn from the source, whole or masked."""

from __future__ import annotations

import numpy as np
import pytest

from vacelab import prepare
from vacelab.cli import main
from vacelab.sample import sample_path

COMMON = {"video": str(sample_path()), "size": "416x240", "frames": 17}


def test_gray_is_the_luminance_on_three_equal_channels():
    job = prepare("control", kind="gray", **COMMON)
    assert job.mask.all() and job.task == "control"
    assert (job.video[..., 0] == job.video[..., 1]).all() and (job.video[..., 1] == job.video[..., 2]).all()
    luma = job.original.astype(np.float64) @ np.array([0.299, 0.587, 0.114])
    assert np.corrcoef(luma.ravel(), job.video[..., 0].ravel())[0, 1] > 0.95


@pytest.mark.parametrize("kind", ["edges", "scribble"])
def test_edges_and_scribbles_are_line_drawings(kind):
    video = prepare("control", kind=kind, **COMMON).video
    lines = (video[..., 0] == 255).mean()
    assert set(np.unique(video)) <= {0, 255}  # no mid-tones: lines on black
    assert 0.005 < lines < 0.5  # not blank, not filled


def test_scribble_is_simpler_and_thicker_than_edges():
    edges = prepare("control", kind="edges", **COMMON).video[..., 0] > 0
    scribble = prepare("control", kind="scribble", **COMMON).video[..., 0] > 0
    assert scribble.mean() > edges.mean()  # dilated lines
    import cv2

    pieces = [cv2.connectedComponents(f.astype(np.uint8))[0] for f in (edges[0], scribble[0])]
    assert pieces[1] < pieces[0]  # fewer, joined strokes


def test_masked_control_generates_exactly_the_region_and_keeps_the_source():
    job = prepare("control", kind="edges", bbox="100,50,300,200", **COMMON)
    expected = np.zeros(job.mask.shape, bool)
    expected[:, 50:200, 100:300] = True
    assert np.array_equal(job.mask, expected)
    assert np.array_equal(job.video[~job.mask], job.original[~job.mask])  # KEEP: the source
    whole = prepare("control", kind="edges", **COMMON).video
    assert np.array_equal(job.video[job.mask], whole[job.mask])  # GENERATE: the control


def test_an_unknown_or_missing_kind_is_one_line(tmp_path, capsys):
    argv = ["prepare", "control", "--video", str(sample_path()), "--frames", "17", "--size", "416x240"]
    assert main([*argv, "--kind", "depthh", "--out", str(tmp_path / "a")]) == 2
    assert capsys.readouterr().err == "error: --kind depthh: choose from gray, edges, scribble\n"
    assert main([*argv, "--out", str(tmp_path / "b")]) == 2
    assert capsys.readouterr().err == "error: --kind: required: gray, edges, scribble\n"
    assert not (tmp_path / "a").exists() and not (tmp_path / "b").exists()


def test_the_audit_says_what_a_control_or_reference_job_reads(tmp_path):
    from vacelab import audit_job, media

    control = audit_job(prepare("control", kind="gray", **COMMON))
    assert "control job: the GENERATE area holds a control video" in control.text()
    assert not control.findings  # no KEEP expected: nothing to warn about
    media.write_png(tmp_path / "r.png", np.full((64, 64, 3), 90, np.uint8))
    reference = audit_job(prepare("reference", ref=[str(tmp_path / "r.png")], frames=17, size="416x240"))
    assert "reference job: every frame is GENERATE" in reference.text() and not reference.findings
