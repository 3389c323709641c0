"""The latent-view audit: the field report's findings, the JSON contract, the picture, the CLI."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from helpers import prepare_masks

from vacelab import geometry as geo
from vacelab import media
from vacelab.audit import audit_arrays, audit_job, format_ints
from vacelab.cli import main
from vacelab.job import Job, load_job, save_job

H, W = 64, 96  # small but token-aligned (4 x 6 tokens)


@pytest.fixture(scope="module")
def pipe():
    from vacelab.testing.tiny import build_tiny_pipeline

    return build_tiny_pipeline()


def keyframes_mask(frames: int = 81, every: int = 4, height: int = H, width: int = W) -> np.ndarray:
    """KEEP at frames 0, every, 2*every, ...; GENERATE elsewhere (the field report's experiment 4)."""
    mask = np.ones((frames, height, width), bool)
    mask[::every] = False
    return mask


def make_job(
    tmp_path, mask: np.ndarray, *, refs: int = 0, task: str = "keyframes", name: str = "job"
) -> Path:
    video = np.full((*mask.shape, 3), 127, np.uint8)
    ref_images = [np.full((32, 32, 3), 40 * (i + 1), np.uint8) for i in range(refs)]
    return save_job(Job(task, video, mask, 16.0, refs=ref_images), tmp_path / name, preview=False)


def by_code(report, code: str, severity: str | None = None):
    return [f for f in report.findings if f.code == code and (severity is None or f.severity == severity)]


# ------------------------------------------------------------------------------- the field report's case
def test_keyframes_every_4_reproduce_the_field_report():
    report = audit_arrays(keyframes_mask())
    steps = report.latents
    assert [s.mask_frame for s in steps] == geo.mask_read_frames(81).tolist()
    # The model reads KEEP only for steps 7-13, whose groups are frames 25-52.
    kept = [s.index for s in steps if s.keep_fraction == 1.0]
    assert kept == list(range(7, 14))
    assert all(s.keep_fraction == 0.0 for s in steps if s.index not in kept)
    assert [f for t in kept for f in steps[t].frames] == list(range(25, 53))

    # Frame 0's mask is never read: info, the trained first-frame pattern.
    (first,) = by_code(report, "MASK_SAMPLE_MISMATCH", "info")
    assert first.frames == [0] and first.latents == [0] and "never read" in first.message
    # Steps 7-13 keep a gray blend: an error naming the stretch.
    (gray,) = by_code(report, "MASK_SAMPLE_MISMATCH", "error")
    assert gray.latents == list(range(7, 14)) and gray.frames == list(range(25, 53))
    assert "steps 7-13 (frames 25-52)" in gray.message and "gray" in gray.message
    # KEEP frames 4..24 and 56..80 are regenerated (their KEEP mark never reaches the model).
    (lost,) = by_code(report, "MASK_SAMPLE_MISMATCH", "warning")
    assert lost.frames == list(range(4, 25, 4)) + list(range(56, 81, 4))
    assert lost.latents == list(range(1, 7)) + list(range(14, 21))
    # Every group of 4 mixes one KEEP frame with three GENERATE frames.
    (mixed,) = by_code(report, "MIXED_GROUP")
    assert mixed.severity == "warning" and mixed.latents == list(range(1, 21))
    # In phase 25-52, out of phase 0-24 and 53-80.
    (drift,) = by_code(report, "PHASE_DRIFT")
    assert drift.details["in_phase"] == [[25, 52]]
    assert drift.details["out_of_phase"] == [[0, 24], [53, 80]]
    assert "frames 25-52" in drift.message
    (bare,) = by_code(report, "NO_SPATIAL_ANCHOR")
    assert bare.severity == "warning" and bare.latents == list(range(1, 21))
    assert report.has_errors


def test_aligned_encoding_reads_groups_and_never_keeps_gray():
    report = audit_arrays(keyframes_mask(), encoding="aligned")
    assert [s.mask_frame for s in report.latents] == [list(g) for g in geo.vae_groups(81)]
    assert report.latents[0].keep_fraction == 1.0
    assert all(s.keep_fraction == 0.0 and s.imposed_fraction == 0.0 for s in report.latents[1:])
    assert not by_code(report, "PHASE_DRIFT") and not report.has_errors
    assert by_code(report, "MASK_SAMPLE_MISMATCH", "warning")[0].frames == list(range(4, 81, 4))


def test_keyframes_with_token_strip_have_a_spatial_anchor():
    mask = keyframes_mask()
    mask[:, -16:, :] = False  # a 16 px KEEP strip at the bottom, token aligned
    report = audit_arrays(mask)
    assert all(s.spatial_anchor for s in report.latents)
    assert not by_code(report, "NO_SPATIAL_ANCHOR") and not by_code(report, "THIN_MASK")
    mask = keyframes_mask()
    mask[:, -8:, :] = False  # 8 px: thinner than a token
    report = audit_arrays(mask)
    assert by_code(report, "NO_SPATIAL_ANCHOR")
    (thin,) = by_code(report, "THIN_MASK")
    assert thin.severity == "info" and thin.details["part"] == "keep" and thin.details["bbox"][1] == H - 16


def test_sparse_aligned_keyframes_report_no_anchor():
    mask = np.ones((81, H, W), bool)
    mask[0] = False
    for key in (16, 32, 48, 64, 80):
        mask[key - 3 : key + 1] = False  # whole VAE groups 4, 8, 12, 16, 20
    report = audit_arrays(mask, encoding="aligned")
    (gap,) = by_code(report, "NO_ANCHOR")
    assert gap.severity == "warning"
    assert gap.latents == [1, 2, 3, 5, 6, 7, 9, 10, 11, 13, 14, 15, 17, 18, 19]
    assert not by_code(report, "MIXED_GROUP")


def test_trained_patterns_are_info_only():
    first = np.ones((81, H, W), bool)
    first[0] = False
    firstlast = first.copy()
    firstlast[-1] = False
    for mask in (first, firstlast):
        report = audit_arrays(mask)
        assert report.findings and {f.severity for f in report.findings} == {"info"}


def test_clean_inpainting_has_no_findings():
    mask = np.zeros((17, H, W), bool)
    mask[:, 16:48, 32:80] = True
    report = audit_arrays(mask)
    assert report.findings == []
    assert all(s.keep_fraction == pytest.approx(1 - 32 * 48 / (H * W)) for s in report.latents)


def test_moving_mask_edges_and_thin_parts():
    mask = np.zeros((17, H, W), bool)
    for f in range(17):
        mask[f, 16:48, 8 + 3 * f : 40 + 3 * f] = True  # moves 3 px per frame
    mask[:, 4:60, 90:93] = True  # a 3 px GENERATE line
    report = audit_arrays(mask)
    (edges,) = by_code(report, "MASK_SAMPLE_MISMATCH", "warning")
    assert "moving mask" in edges.message and edges.details["max_imposed_fraction"] < 0.1
    (regrown,) = [f for f in by_code(report, "MASK_SAMPLE_MISMATCH", "info") if f.frames != [0]]
    assert "moving mask" in regrown.message
    (mixed,) = by_code(report, "MIXED_GROUP")
    assert mixed.severity == "info"
    (thin,) = [f for f in by_code(report, "THIN_MASK") if f.details["part"] == "generate"]
    assert thin.severity == "warning" and thin.details["part"] == "generate"
    x0, y0, x1, y1 = thin.details["bbox"]
    assert x0 <= 90 and x1 >= 93 and x1 - x0 <= 16 and y0 <= 4 and y1 >= 60


def test_bad_geometry_is_reported():
    report = audit_arrays(np.ones((80, 72, 96), bool))
    problems = by_code(report, "BAD_GEOMETRY")
    assert len(problems) == 2 and all(p.severity == "error" for p in problems)
    assert problems[0].frames == [77, 78, 79] and "use 77 or 81" in problems[0].message
    assert report.geometry.frames == 80 and len(report.latents) == 20
    job_mismatch = audit_arrays(np.ones((17, H, W), bool), video_shape=(21, H, W))
    assert by_code(job_mismatch, "BAD_GEOMETRY") and job_mismatch.has_errors


def test_report_dict_follows_the_contract():
    report = audit_arrays(keyframes_mask(), ref_frames=2)
    data = json.loads(json.dumps(report.to_dict()))
    geometry = data["geometry"]
    assert {k: geometry[k] for k in ("frames", "height", "width", "latent_frames", "ref_frames")} == {
        "frames": 81,
        "height": H,
        "width": W,
        "latent_frames": 21,
        "ref_frames": 2,
    }
    assert geometry["tokens"] == 23 * (H // 16) * (W // 16)
    assert (geometry["latent_height"], geometry["latent_width"]) == (H // 8, W // 8)
    assert [step["frames"] for step in data["latents"]] == [list(g) for g in geo.vae_groups(81)]
    for step in data["latents"]:
        assert {"index", "frames", "mask_frame", "keep_fraction", "group_keep_fraction", "mixed"} <= set(step)
    for finding in data["findings"]:
        assert set(finding) >= {"code", "severity", "message", "frames", "latents"}
        assert finding["severity"] in ("error", "warning", "info")
    assert data["summary"] == report.counts()
    assert "step" in report.text() and "MASK_SAMPLE_MISMATCH" in report.text()


def test_format_ints():
    assert format_ints([1, 2, 3, 4, 9]) == "1-4, 9"
    assert format_ints(range(4, 25, 4)) == "4, 8, ..., 24"
    assert format_ints([0, 5, 7]) == "0, 5, 7"


# ----------------------------------------------------------------------------------------------- the CLI
def run_cli(capsys, *argv) -> tuple[int, str, str]:
    code = main(["audit", *map(str, argv)])
    out, err = capsys.readouterr()
    return code, out, err


def test_cli_json_png_and_mask_latent_match_diffusers(tmp_path, capsys, pipe):
    rng = np.random.default_rng(3)
    mask = keyframes_mask(frames=21)
    mask |= rng.random(mask.shape) < 0.1  # irregular
    job = make_job(tmp_path, mask, refs=2)
    code, out, err = run_cli(
        capsys, job, "--json", "--png", tmp_path / "audit.png", "--save-mask-latent", tmp_path / "m.npy"
    )
    assert code == 0 and err == ""
    data = json.loads(out)  # exactly one JSON object
    assert data["geometry"]["ref_frames"] == 2 and len(data["latents"]) == 6
    assert data == json.loads(
        json.dumps(audit_job(load_job(make_job(tmp_path, mask, refs=2, name="j2"))).to_dict())
    ) | {"source": data["source"]}
    saved = np.load(tmp_path / "m.npy")
    assert saved.dtype == np.float32 and saved.shape == (64, 2 + 6, H // 8, W // 8)
    np.testing.assert_array_equal(saved, prepare_masks(pipe, mask, 2))
    from PIL import Image

    with Image.open(tmp_path / "audit.png") as png:
        assert png.format == "PNG" and png.width >= 900 and png.height > 300


def test_cli_text_report_and_strict(tmp_path, capsys):
    job = make_job(tmp_path, keyframes_mask())
    code, out, _ = run_cli(capsys, job)
    assert code == 0 and "ERROR   MASK_SAMPLE_MISMATCH" in out and "frames 25-52" in out
    code, _, _ = run_cli(capsys, job, "--strict")
    assert code == 3
    clean = make_job(tmp_path, np.zeros((5, H, W), bool), task="inpaint", name="clean")
    code, out, _ = run_cli(capsys, clean, "--strict")
    assert code == 0 and "0 error(s)" in out


def test_cli_files_made_elsewhere(tmp_path, capsys):
    mask = keyframes_mask(frames=17)
    media.write_mp4(tmp_path / "v.mp4", np.full((17, H, W, 3), 127, np.uint8), 16)
    media.write_mp4(tmp_path / "m.mp4", mask, 16)
    code, out, _ = run_cli(
        capsys, "--video", tmp_path / "v.mp4", "--mask", tmp_path / "m.mp4", "--refs", 1, "--json"
    )
    data = json.loads(out)
    assert code == 0 and data["geometry"]["frames"] == 17 and data["geometry"]["ref_frames"] == 1
    assert [s["keep_fraction"] for s in data["latents"]] == [
        s.keep_fraction for s in audit_arrays(mask).latents
    ]
    # One mask image for all frames, length from --frames.
    media.write_png(tmp_path / "m.png", np.zeros((H, W, 3), np.uint8))
    code, out, _ = run_cli(capsys, "--mask", tmp_path / "m.png", "--frames", 9, "--json")
    assert code == 0 and json.loads(out)["geometry"]["frames"] == 9
    # A mask of another length: BAD_GEOMETRY, still a report.
    media.write_mp4(tmp_path / "m13.mp4", mask[:13], 16)
    code, out, _ = run_cli(capsys, "--video", tmp_path / "v.mp4", "--mask", tmp_path / "m13.mp4", "--json")
    assert code == 0 and any(f["code"] == "BAD_GEOMETRY" for f in json.loads(out)["findings"])


@pytest.mark.parametrize(
    "case",
    [
        "missing job",
        "unreadable video",
        "mask of other size",
        "garbage mask",
        "job and mask",
        "png over input",
    ],
)
def test_cli_bad_inputs_exit_2_with_one_line(tmp_path, capsys, case):
    media.write_mp4(tmp_path / "v.mp4", np.full((5, H, W, 3), 127, np.uint8), 16)
    media.write_png(tmp_path / "m.png", np.zeros((H, W, 3), np.uint8))
    args = {
        "missing job": [tmp_path / "nope"],
        "unreadable video": ["--video", tmp_path / "bad.mp4", "--mask", tmp_path / "m.png"],
        "mask of other size": ["--video", tmp_path / "v.mp4", "--mask", tmp_path / "small.png"],
        "garbage mask": ["--video", tmp_path / "v.mp4", "--mask", tmp_path / "noise.png"],
        "job and mask": [tmp_path / "nope", "--mask", tmp_path / "m.png"],
        "png over input": [
            "--video",
            tmp_path / "v.mp4",
            "--mask",
            tmp_path / "m.png",
            "--png",
            tmp_path / "m.png",
        ],
    }[case]
    (tmp_path / "bad.mp4").write_text("not a video")
    media.write_png(tmp_path / "small.png", np.zeros((32, 48, 3), np.uint8))
    media.write_png(
        tmp_path / "noise.png", np.random.default_rng(0).integers(0, 256, (H, W, 3), dtype=np.uint8)
    )
    before = (tmp_path / "m.png").read_bytes()
    code, out, err = run_cli(capsys, *args)
    assert code == 2 and out == ""
    assert err.startswith("error: ") and err.count("\n") == 1 and "Traceback" not in err
    assert (tmp_path / "m.png").read_bytes() == before


def test_audit_process_does_not_import_torch(tmp_path):
    job = make_job(tmp_path, keyframes_mask(frames=9))
    code = (
        "import sys; from vacelab.cli import main; "
        f"rc = main(['audit', {str(job)!r}, '--json', '--png', {str(tmp_path / 'a.png')!r}]); "
        "sys.stderr.write('torch' if 'torch' in sys.modules else 'no-torch'); sys.exit(rc)"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stderr == "no-torch"
    assert json.loads(done.stdout)["geometry"]["frames"] == 9


def test_long_job_is_audited_window_by_window(tmp_path, capsys):
    mask = keyframes_mask(frames=29)
    mask[21:25] = False  # a KEEP group inside the second window only (its frames 9-12)
    video = np.full((*mask.shape, 3), 127, np.uint8)
    job = save_job(
        Job("keyframes", video, mask, 16.0, windows=[(0, 17), (12, 29)]), tmp_path / "long", preview=False
    )
    code, out, _ = run_cli(capsys, job, "--json", "--window", 1, "--save-mask-latent", tmp_path / "w1.npy")
    data = json.loads(out)
    assert code == 0 and data["geometry"]["frames"] == 17 and "window" in data["source"]
    # what the runner gives the model: the 5 frames shared with window 0 are the kept head, KEEP
    seen = mask[12:29].copy()
    seen[:5] = False
    np.testing.assert_array_equal(geo.WindowPlan.of([(0, 17), (12, 29)], 29).window(1).mask(mask), seen)
    assert [s["keep_fraction"] for s in data["latents"]] == [
        s.keep_fraction for s in audit_arrays(seen).latents
    ]
    own = audit_arrays(mask[12:29]).latents  # the user's mask alone: frames 1-3 of the window GENERATE
    assert [s["group_keep_fraction"] for s in data["latents"][:2]] == [1.0, 1.0]  # frames 0 | 1-4
    assert [s.group_keep_fraction for s in own[:2]] == [1.0, 0.25]
    assert data["latents"][0]["keep_fraction"] == 1.0 and own[0].keep_fraction == 0  # step 0 reads frame 1
    long_job = [f for f in data["findings"] if f["code"] == "LONG_JOB"]
    assert long_job and long_job[0]["window"] == 1 and long_job[0]["kept_head"] == 5
    np.testing.assert_array_equal(np.load(tmp_path / "w1.npy"), geo.mask_latent(seen))
    first = audit_job(load_job(job))  # default: window 0
    assert first.geometry.frames == 17 and by_code(first, "LONG_JOB")
    code, out, err = run_cli(capsys, job, "--window", 2)
    assert code == 2 and err.startswith("error: --window 2") and out == ""


def test_every_rendering_shows_every_finding_of_a_long_job(tmp_path):
    """Text, markdown, HTML and the picture come from one set of words: each shows every finding,
    LONG_JOB included (the picture once had no column label for it)."""
    from vacelab.audit import formats
    from vacelab.audit.plot import draw_audit

    mask = np.ones((161, 64, 96), bool)
    mask[::5] = False  # keyframes: mixed groups, mismatches, anchors
    report = audit_arrays(mask, windows=[(0, 81), (72, 153), (144, 161)], window=1)
    codes = {f.code for f in report.findings}
    assert {"LONG_JOB", "MIXED_GROUP"} <= codes
    renderings = [report.text(), formats.markdown(report), formats.html_list(report)]
    renderings.append("\n".join(formats.caption(f) for f in report.findings))
    for rendered in renderings:
        assert all(code in rendered for code in codes)
    assert "[LNG]" in formats.caption(next(f for f in report.findings if f.code == "LONG_JOB"))
    draw_audit(report, tmp_path / "audit.png")
    assert (tmp_path / "audit.png").stat().st_size > 0
