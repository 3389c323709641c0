"""`vacelab ui` without a browser: access policy, uploads, per-session folders, the painted mask reaching
prepare, and the running app's HTTP surface (file route, upload checks, no-model message)."""

from __future__ import annotations

import subprocess
import sys
import urllib.error
import urllib.request
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from ui_server import call, running_ui, upload

from vacelab.errors import InputError
from vacelab.sample import sample_path
from vacelab.ui.policy import Policy, SessionFolder, parse_size
from vacelab.ui.workbench import Form, Workbench


@pytest.fixture()
def policy(tmp_path) -> Policy:
    allowed = tmp_path / "allowed"
    allowed.mkdir()
    (allowed / "clip.mp4").write_bytes(sample_path().read_bytes())
    return Policy.create([allowed], root=tmp_path / "app", max_upload="2MB")


# --------------------------------------------------------------------------------------------- policy
def test_parse_size():
    assert parse_size("500MB") == 500 * 1024**2
    assert parse_size("2gb") == 2 * 1024**3
    assert parse_size("800") == 800
    for bad in ("", "0MB", "lots", "5 TB"):
        with pytest.raises(InputError, match="--max-upload"):
            parse_size(bad)


def test_open_path_only_inside_allowed_folders(policy, tmp_path):
    inside = policy.allowed[0] / "clip.mp4"
    assert policy.open_path(str(inside)) == inside.resolve()
    outside = tmp_path / "outside.mp4"
    outside.write_bytes(sample_path().read_bytes())
    escape = policy.allowed[0] / "link.mp4"
    escape.symlink_to(outside)  # a symlink inside an allowed folder pointing out of it
    for text in (str(outside), str(escape), f"{policy.allowed[0]}/../outside.mp4", "/etc/passwd"):
        with pytest.raises(InputError, match="not inside an allowed folder"):
            policy.open_path(text)
    with pytest.raises(InputError, match="absolute path"):
        policy.open_path("clip.mp4")
    with pytest.raises(InputError, match="--allow"):
        Policy.create([], root=tmp_path / "app2").open_path(str(inside))
    with pytest.raises(InputError, match="allow .*not an existing folder"):
        Policy.create([tmp_path / "missing"], root=tmp_path / "app3")


def test_open_path_refuses_the_apps_own_folder_even_when_allowed(tmp_path):
    """Allowing a parent of the app's temporary folder must not expose other sessions' files."""
    policy = Policy.create([tmp_path], root=tmp_path / "app")
    other = SessionFolder(policy.root)
    secret = other.path / "upload-1.mp4"
    secret.write_bytes(sample_path().read_bytes())
    with pytest.raises(InputError, match="not inside an allowed folder"):
        policy.open_path(str(secret))


def test_uploads_are_checked_for_size_and_content(policy, tmp_path):
    text = tmp_path / "notes.txt"
    text.write_text("not a video")
    with pytest.raises(InputError, match=r"upload notes.txt: not a video \(accepted: .*\.mp4"):
        policy.check_upload(text, "video")
    disguised = tmp_path / "notes.mp4"
    disguised.write_text("not a video either")
    with pytest.raises(InputError, match="upload notes.mp4: not a readable video file"):
        policy.check_upload(disguised, "video")
    big = tmp_path / "big.mp4"
    big.write_bytes(b"\0" * (3 * 1024**2))
    with pytest.raises(InputError, match=r"upload big.mp4: 3.0 MB, over the 2.0 MB limit \(--max-upload\)"):
        policy.check_upload(big, "video")
    fake_png = tmp_path / "ref.png"
    fake_png.write_text("text")
    with pytest.raises(InputError, match="upload ref.png: not a readable image file"):
        policy.check_upload(fake_png, "image")
    assert policy.check_upload(policy.allowed[0] / "clip.mp4", "video").is_file()


def test_session_folders_are_private_and_removed(policy):
    a, b = SessionFolder(policy.root), SessionFolder(policy.root)
    assert a.path != b.path and a.path.parent == b.path.parent == policy.root / "sessions"
    assert (a.path.stat().st_mode & 0o777) == 0o700
    first, second = a.new("job"), a.new("job")
    assert first != second and not first.exists()
    a.close()
    assert not a.path.exists() and b.path.exists()


# ------------------------------------------------------------------------------------------ workbench
def test_clicks_track_the_object_into_the_painted_mask(policy, tmp_path):
    """Clicks on one frame -> SAM 2 (a tiny random one, offline) -> the painted mask of each job frame."""
    from vacelab.tasks import prepare
    from vacelab.testing.sam import save_tiny_sam2
    from vacelab.tracking import track_mask

    model = str(save_tiny_sam2(tmp_path / "sam2"))
    bench = Workbench(policy)
    source = bench.load(sample_path(), "sample")
    with pytest.raises(InputError, match="no click on the object"):
        bench.track(9, model)
    bench.click(400, 300, 5, on_object=True)  # clicks on another frame start over
    bench.click(180, 280, 2, on_object=True)
    shown = bench.click(600, 100, 2, on_object=False)
    assert bench.clicks == [(180.0, 280.0, 1), (600.0, 100.0, 0)] and bench.click_frame == 2
    assert tuple(shown[280, 180]) == (40, 220, 90) and tuple(shown[100, 600]) == (240, 50, 50)
    message = bench.track(9, model)
    expected = track_mask(
        np.asarray(source.frames[:9]), points=[([(180, 280), (600, 100)], [1, 0], 2)], model=model
    )
    assert "through frames 0–8" in message
    painted = np.stack([bench.paint.frame(i) for i in range(9)])
    np.testing.assert_array_equal(painted, expected)  # the tracker's output, frame by frame
    assert len({frame.tobytes() for frame in painted}) > 1 and bench.paint.frame(9) is None
    task, opts = bench.options(Form(task="remove", size="832x480", frames=9, grow=0))
    np.testing.assert_array_equal(prepare(task, **opts).mask, expected)
    bench.click(10, 10, 40, on_object=True)
    with pytest.raises(InputError, match="clicks are on frame 40; the job has frames 0..8"):
        bench.track(9, model)
    bench.close()


def test_control_and_reference_tasks_from_the_workbench(policy, tmp_path):
    from PIL import Image

    from vacelab.tasks import prepare

    bench = Workbench(policy)
    with pytest.raises(InputError, match="reference images"):
        bench.options(Form(task="reference", size="256x144", frames=9))
    ref = tmp_path / "ref.png"
    Image.new("RGB", (64, 64), (200, 30, 30)).save(ref)
    bench.add_refs([str(ref)])
    task, opts = bench.options(Form(task="reference", size="256x144", frames=9))  # no video needed
    job = prepare(task, **opts)
    assert job.mask.all() and len(job.refs) == 1
    bench.load(sample_path(), "sample")
    bench.refs = []
    task, opts = bench.options(Form(task="control", kind="gray", size="832x480", frames=9))
    whole = prepare(task, **opts)
    assert whole.mask.all() and (whole.video[..., 0] == whole.video[..., 1]).all()
    form = Form(task="control", kind="edges", size="832x480", frames=9, box=(0, 0, 416, 480))
    task, opts = bench.options(form)
    boxed = prepare(task, **opts)
    assert boxed.mask[:, :, :416].all() and not boxed.mask[:, :, 416:].any()
    bench.close()


def test_painted_mask_reaches_prepare_on_its_frames_only(policy):
    from vacelab.tasks import prepare

    bench = Workbench(policy)
    source = bench.load(sample_path(), "sample")
    assert source.frames.shape[1:3] == (480, 832) and len(source.frames) == 97
    layer = np.zeros((480, 832, 4), np.uint8)
    layer[96:192, 160:320] = (255, 48, 48, 153)  # a 160x96 rectangle, as the editor's brush layer
    area = bench.apply_paint({"background": None, "layers": [layer], "composite": None}, 4, 8)
    assert area == pytest.approx(160 * 96 / (480 * 832))
    task, opts = bench.options(Form(task="inpaint", size="832x480", frames=17))
    job = prepare(task, **opts)
    expected = np.zeros((17, 480, 832), bool)
    expected[4:9, 96:192, 160:320] = True
    np.testing.assert_array_equal(job.mask, expected)
    # the editor shows the painted mask back as a layer on those frames only
    assert bench.editor_value(6)["layers"][0][100, 200, 3] == 153
    assert bench.editor_value(3)["layers"] == []
    # erasing (an empty layer) clears frames 4..6; a box adds to the painting
    bench.apply_paint({"layers": [np.zeros((480, 832, 4), np.uint8)]}, 4, 6)
    task, opts = bench.options(Form(task="inpaint", size="832x480", frames=17, box=(600, 300, 700, 400)))
    job = prepare(task, **opts)
    assert not job.mask[4:7, 96:192, 160:320].any() and job.mask[7:9, 96:192, 160:320].all()
    assert job.mask[:, 300:400, 600:700].all()
    # loading another clip resets the mask and drops the previous clip's session files
    upload = bench.folder.adopt(sample_path(), "upload")
    bench.load(upload, "upload")
    assert not bench.paint.any() and len(list(bench.folder.path.glob("frames-*.npy"))) == 1
    assert not list(bench.folder.path.glob("mask-*"))
    bench.load(sample_path(), "sample")
    assert not upload.exists() and len(list(bench.folder.path.glob("source-*.mp4"))) == 1
    bench.close()
    assert not bench.folder.path.exists()


def test_workbench_views_builds_and_explains(policy):
    bench = Workbench(policy)
    with pytest.raises(InputError, match="no video loaded yet"):
        bench.preview(Form())
    bench.load(sample_path(), "sample")
    with pytest.raises(InputError, match="no mask yet"):
        bench.preview(Form(size="320x192", frames=17))
    with pytest.raises(InputError, match="fill in all four"):
        bench.preview(Form(size="320x192", frames=17, box=(10, 10, None, 40)))
    # keyframes picked by frame number from the clip, placed naively: the audit explains the failure
    view = bench.preview(Form(task="keyframes", size="320x192", frames=33, keys="0,4,8,12,16,20,24,28,32",
                              strategy="naive"))  # fmt: skip
    assert view.preview.is_file() and view.audit.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "**keyframes** · 33 frames · 320×192 px" in view.findings
    assert "MASK_SAMPLE_MISMATCH" in view.findings and "⚠ Warning" in view.findings
    aligned = bench.preview(Form(task="keyframes", size="320x192", frames=33, keys="0,8,16,24,32"))
    assert aligned.findings != view.findings and not view.preview.exists()  # only the latest view is kept
    with pytest.raises(InputError, match="keyframe 200: the clip has frames 0..96"):
        bench.preview(Form(task="keyframes", size="320x192", frames=33, keys="0,200"))
    # build: a job folder and its zip, reused while nothing changes
    form = Form(task="outpaint", size="320x192", frames=17, ratio=0.75)
    job, archive = bench.build(form)
    assert (job.path / "job.json").is_file() and archive.suffix == ".zip"
    assert bench.build(form)[1] == archive
    assert bench.build(Form(task="outpaint", size="320x192", frames=17, ratio=0.5))[1] != archive
    bench.close()


@pytest.mark.parametrize(
    ("form", "expected"),
    [
        (Form(task="remove", box=(100, 200, 300, 330), what="gun, weapon"),
         {"what": "gun, weapon", "coords": "source", "bbox": (100.0, 200.0, 300.0, 330.0)}),
        (Form(task="outpaint", outpaint_mode="expand", expand="32,0,32,0", auto_refs=2),
         {"expand": "32,0,32,0", "auto_refs": 2}),
        (Form(task="outpaint", ratio=0.75), {"ratio": 0.75}),
        (Form(task="firstlast"), {}),
        (Form(task="keyframes", frames=33, every=8, strategy="anchor"), {"every": 8, "strategy": "anchor"}),
        (Form(task="extend", frames=33, keep=17), {"keep": 17}),
    ],
    ids=lambda v: v.task if isinstance(v, Form) else "",
)  # fmt: skip
def test_every_task_is_built_by_prepare_from_the_form(policy, form, expected):
    bench = Workbench(policy)
    bench.load(sample_path(), "sample")
    form.size, form.frames = "256x144", form.frames if form.frames != 81 else 17
    task, opts = bench.options(form)
    assert task == form.task and opts["video"] == str(sample_path())
    assert {k: opts[k] for k in expected} == expected
    view = bench.preview(form)
    assert view.findings.startswith(f"**{form.task}** · {form.frames} frames · 256×144 px")
    bench.close()


def test_reference_uploads_are_checked_and_kept_in_order(policy, tmp_path):
    from PIL import Image

    bench = Workbench(policy)
    bench.load(sample_path(), "sample")
    paths = []
    for i, colour in enumerate(("red", "blue")):
        paths.append(tmp_path / f"ref{i}.png")
        Image.new("RGB", (64, 48), colour).save(paths[-1])
    refs = bench.add_refs([str(p) for p in paths])
    assert [r.parent for r in refs] == [bench.folder.path] * 2  # copied into the session
    view = bench.preview(Form(task="outpaint", size="256x144", frames=17))
    assert "2 reference images" in view.findings
    bad = tmp_path / "notes.png"
    bad.write_text("text")
    with pytest.raises(InputError, match="upload notes.png: not a readable image"):
        bench.add_refs([str(paths[0]), str(bad)])
    bench.close()


def test_start_and_rate_decode_the_editor_and_reach_prepare(policy):
    """The editor reads the clip from --start at --fps; editor frame N is job frame N, painted or not."""
    from vacelab import media
    from vacelab.tasks import prepare

    bench = Workbench(policy)
    source = bench.load(sample_path(), "sample", start=2, fps="8")
    expected, _ = media.read_video(sample_path(), size=(480, 832), fps=8, start=2)
    assert (source.fps, source.start, len(source.frames)) == (8.0, 2.0, len(expected)) == (8.0, 2.0, 33)
    np.testing.assert_array_equal(source.frames, expected)
    layer = np.zeros((480, 832, 4), np.uint8)
    layer[96:192, 160:320] = (255, 48, 48, 153)
    bench.apply_paint({"layers": [layer]}, 3, 3)
    task, opts = bench.options(Form(task="inpaint", size="832x480", frames=9))
    assert (opts["fps"], opts["start"]) == (8.0, 2.0)
    job = prepare(task, **opts)
    assert job.mask[3].any() and not np.delete(job.mask, 3, axis=0).any()  # on its frame, after --start
    np.testing.assert_array_equal(job.video[0], source.frames[0])  # the same frames as the editor's
    # "source": the clip's own rate; re-reading renumbers the frames, so the painting starts over
    upload = bench.folder.adopt(sample_path(), "upload")
    bench.load(upload, "upload")
    bench.apply_paint({"layers": [layer]}, 0, 4)
    source = bench.reload(0, "source")
    assert (source.fps, len(source.frames)) == (16.0, 97) and not bench.paint.any()
    assert upload.exists()  # the clip being re-read is kept
    for start, fps, match in ((-1, 16, "start -1"), (0, "fast", "fps fast"), (0, 500, "fps 500")):
        with pytest.raises(InputError, match=match):
            bench.reload(start, fps)
    bench.close()


def test_long_job_windows_are_audited_one_by_one(policy):
    from vacelab.audit import audit_job
    from vacelab.tasks import prepare

    bench = Workbench(policy)
    bench.load(sample_path(), "sample")
    form = Form(task="inpaint", size="256x144", frames=97, box=(300, 150, 520, 330), window="49")
    first = bench.preview(form)
    assert (first.windows, first.window) == (3, 0)
    assert "Long job: 3 windows (frames 0–48, 32–80, 64–96)" in first.findings
    second = bench.preview(form, 1)
    assert second.window == 1 and "window 1 of 3 (clip frames 32-80" in second.findings
    assert second.preview == first.preview and second.preview.is_file()  # the same job: only a new audit
    task, opts = bench.options(form)
    job = prepare(task, **opts)
    assert second.report_text == audit_job(job, window=1).text()  # exactly what `vacelab audit --window 1`
    assert bench.preview(form, 99).window == 2  # clamped to the job's windows
    short = bench.preview(replace(form, frames=17))
    assert (short.windows, short.window) == (1, 0) and "Long job" not in short.findings
    with pytest.raises(InputError, match="overlap lots: expected a number of frames"):
        bench.preview(replace(form, overlap="lots"))
    bench.close()


def test_phrase_finds_and_tracks_with_sam3(policy, tmp_path):
    from vacelab.testing.sam import save_tiny_sam3
    from vacelab.tracking import track_mask

    model = str(save_tiny_sam3(tmp_path / "sam3"))
    bench = Workbench(policy)
    source = bench.load(sample_path(), "sample")
    with pytest.raises(InputError, match="type a phrase"):
        bench.segment(9, "  ", model)
    message = bench.segment(9, "gun", model)
    expected = track_mask(np.asarray(source.frames[:9]), text="gun", model=model)
    assert message.startswith("Found and tracked 'gun' through frames 0–8")
    np.testing.assert_array_equal(np.stack([bench.paint.frame(i) for i in range(9)]), expected)
    bench.close()


def test_lora_files_only_from_allowed_folders(policy, tmp_path):
    from safetensors.numpy import save_file

    from vacelab.ui.settings_form import settings_from

    allowed = policy.allowed[0]
    good = allowed / "style.safetensors"
    save_file({"transformer.blocks.0.attn1.to_q.lora_A.weight": np.zeros((4, 8), np.float32)}, good)
    settings = settings_from(["lora", "lora_low"], [f"{good}:0.7\n\n", ""], policy.open_lora)
    assert settings.lora == [f"{good}:0.7"] and settings.lora_low == []
    outside = tmp_path / "outside.safetensors"
    outside.write_bytes(good.read_bytes())
    (allowed / "link.safetensors").symlink_to(outside)
    (allowed / "weights.pt").write_bytes(b"not read")
    save_file({"blocks.0.weight": np.zeros(2, np.float32)}, allowed / "plain.safetensors")
    for line, match in (
        (str(outside), "not inside an allowed folder"),
        (str(allowed / "link.safetensors"), "not inside an allowed folder"),  # resolved first
        (str(allowed / "weights.pt"), "not a .safetensors file"),  # no pickles read by the page
        (str(allowed / "plain.safetensors"), "no LoRA weights"),
        ("style.safetensors", "give an absolute path"),
    ):
        with pytest.raises(InputError, match=match) as info:
            settings_from(["lora_high"], [line], policy.open_lora)
        assert info.value.field == "lora_high"
    with pytest.raises(InputError, match="not accepted here"):
        settings_from(["lora"], [str(good)])


def test_the_page_runs_only_the_models_it_was_started_with():
    from vacelab.ui.workbench import Models

    models = Models(["Wan-AI/Wan2.1-VACE-1.3B-diffusers", "/models/wan22"])
    assert models.model == "Wan-AI/Wan2.1-VACE-1.3B-diffusers"  # the first is chosen at start
    assert models.checked("/models/wan22") == "/models/wan22"
    for other in ("/etc", None, "Wan-AI/Wan2.1-VACE-14B-diffusers"):
        with pytest.raises(InputError, match="not one of the models") as info:
            models.checked(other)
        assert info.value.field == "model"
    assert Models("one").models == ("one",) and Models().model is None


# ------------------------------------------------------------------------------------------------ CLI
def test_cli_registers_without_gradio_and_refuses_bad_options(tmp_path):
    code = "import sys, vacelab.cli as c; c.build_parser(); print('gradio' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
    for args, message in (
        (["--allow", str(tmp_path / "missing")], "--allow"),
        (["--max-upload", "lots"], "--max-upload"),
        (["--model", str(tmp_path / "no-model")], "--model"),
        (["--port", "70000"], "--port"),
    ):
        run = subprocess.run([sys.executable, "-m", "vacelab", "ui", *args], capture_output=True, text=True)
        assert run.returncode == 2 and run.stderr.startswith(f"error: {message}"), run.stderr
        assert run.stderr.count("\n") == 1  # one line, no traceback
    run = subprocess.run(
        [sys.executable, "-m", "vacelab", "ui", "--host", "0.0.0.0", "--allow", str(tmp_path / "missing")],
        capture_output=True,
        text=True,
    )
    assert "warning: --host 0.0.0.0: the interface is reachable from other machines" in run.stderr


# ------------------------------------------------------------------------------------- running server
@pytest.fixture(scope="module")
def server(tmp_path_factory):
    allowed = tmp_path_factory.mktemp("allowed")
    (allowed / "clip.mp4").write_bytes(sample_path().read_bytes())
    with running_ui("--allow", str(allowed), "--max-upload", "1MB") as url:
        yield url, allowed


def _get(url: str) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(url, timeout=30) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, b""


def test_server_serves_its_own_files_and_nothing_else(server):
    url, allowed = server
    event, outputs = call(url, "load_sample", [81, 0, "16"])
    assert event == "complete" and "Loaded the **sample clip**" in outputs[1]
    # the 97-frame sample makes an 81-frame job: the message says so, the frame range ends at the job's end
    assert outputs[2] == 81 and "first 81 (Frames; up to 97)" in outputs[1]
    assert outputs[4]["maximum"] == 80 and outputs[6] == 80
    video = outputs[0]
    status, body = _get(video["url"])
    assert status == 200 and body[4:8] == b"ftyp"  # the app's own (cached) copy of the clip is served
    session_files = [p for p in (Path(video["path"]).parents[2] / "sessions").rglob("*") if p.is_file()]
    assert session_files  # the session's working files exist, but only Gradio's cached copies are served
    for path in ("/etc/passwd", allowed / "clip.mp4", *session_files):
        assert _get(f"{url}gradio_api/file={path}")[0] in (403, 404), path
    assert _get(f"{url}gradio_api/file=../../../../etc/passwd")[0] in (403, 404)


def test_port_in_use_is_one_error_line(server):
    port = server[0].rstrip("/").rsplit(":", 1)[1]
    command = [sys.executable, "-m", "vacelab", "ui", "--port", port]
    run = subprocess.run(command, capture_output=True, text=True)
    assert run.returncode == 2 and run.stderr == (
        f"error: --port {port}: cannot listen on 127.0.0.1:{port} (in use or not allowed); "
        "choose another --port\n"
    )


def test_server_opens_paths_only_inside_allowed_folders(server):
    url, allowed = server
    event, outputs = call(url, "load_path", [str(allowed / "clip.mp4"), 81, 0, "16"])
    assert event == "complete" and outputs[1].startswith("Opened **") and outputs[2] == 81
    event, outputs = call(url, "load_path", ["/etc/passwd", 81, 0, "16"])
    assert event == "complete" and outputs[1].startswith("✖ /etc/passwd: not inside an allowed folder")


def test_server_rejects_non_media_and_oversized_uploads(server):
    url, _ = server
    fake = upload(url, "notes.mp4", b"this is text, not a video")
    event, outputs = call(url, "load_upload", [fake, 81, 0, "16"])
    assert (
        event == "complete"
        and outputs[1] == "✖ upload notes.mp4: not a readable video file (its content is not video data)"
    )
    event, message = call(url, "load_upload", [upload(url, "notes.txt", b"plain text"), 81, 0, "16"])
    assert event == "error"  # Gradio's own file-type check on the upload field
    with pytest.raises(urllib.error.HTTPError) as refused:
        upload(url, "big.mp4", b"\0" * (1024**2 + 1))
    assert refused.value.code == 413


def test_server_without_model_says_so(server):
    url, _ = server
    call(url, "load_sample", [17, 0, "16"])
    from vacelab.ui.settings_form import default, page_fields

    settings = [default(name) for names in page_fields().values() for name in names]
    form = [
        "inpaint",
        "320x192",
        17,
        0,
        0,
        0,
        0,
        None,
        "",
        "ratio",
        0.8,
        "",
        0,
        "",
        None,
        "aligned",
        16,
        17,
        "gray",
        "",
        "",
    ]
    event, outputs = call(url, "run", ["", None, *settings, *form, "a prompt", ""])  # no browser key, model
    assert event == "complete" and "No model configured" in outputs[0]


def test_a_result_is_shown_only_by_its_name_among_this_browsers_runs(server):
    from vacelab.ui.runqueue import new_key

    url, _ = server
    for name in ("../../sessions", "run-1", "/etc"):  # Gradio refuses a value its list does not hold
        event, outputs = call(url, "show_result", [new_key(), name])
        assert event == "error" and "not in the list of choices" in outputs["error"]
    event, outputs = call(url, "show_result", ["../not-a-key", None])
    assert event == "complete" and outputs[2] == ""


def test_run_settings_on_the_page_are_every_run_option_read_back_by_its_rule():
    from dataclasses import fields

    from vacelab.generation.settings import RunSettings
    from vacelab.ui.settings_form import NOT_ON_PAGE, default, page_fields, settings_from

    groups = page_fields()
    names = [name for members in groups.values() for name in members]
    assert len(names) == len(set(names)) and set(names) | NOT_ON_PAGE == {f.name for f in fields(RunSettings)}
    assert groups["Sampling"][:4] == ["steps", "guidance", "shift", "seed"]
    defaults = settings_from(names, [default(n) for n in names], model="m")
    assert defaults == RunSettings(model="m")  # the page's initial values are the run defaults
    values = {n: default(n) for n in names} | {"steps": 4.0, "color_match": "reinhard", "offload": "group"}
    chosen = settings_from(names, list(values.values()), model="m")
    assert (chosen.steps, chosen.color_match, chosen.offload) == (4, "reinhard", "group")
    assert settings_from(names, [*(values | {"color_match": "on"}).values()], model="m").color_match is True
    shifted = settings_from(names, [" 4.5" if n == "shift" else v for n, v in values.items()], model="m")
    assert shifted.shift == 4.5 and shifted.boundary is None  # optional numbers: text, empty = default
    with pytest.raises(InputError, match="expected a number") as bad:
        settings_from(names, ["lots" if n == "shift" else v for n, v in values.items()], model="m")
    with pytest.raises(InputError) as bad:
        settings_from(names, [0 if n == "steps" else v for n, v in values.items()], model="m")
    assert bad.value.field == "steps" and "at least 1" in str(bad.value)


def test_run_queue_runs_in_order_cancels_and_keeps_results(tmp_path, tiny_model_dir):
    import time

    from vacelab.generation.settings import RunSettings
    from vacelab.result import load_result
    from vacelab.tasks import prepare
    from vacelab.ui.runqueue import RunQueue, new_key
    from vacelab.ui.workbench import Models

    job = prepare("inpaint", video=str(sample_path()), bbox="20,10,80,50", size="128x64", frames=5,
                  out=tmp_path / "job")  # fmt: skip
    runs = RunQueue(tmp_path / "app", Models(str(tiny_model_dir)))
    key, other = new_key(), new_key()

    def settings(seed: int, steps: int = 2) -> RunSettings:
        return RunSettings(model=str(tiny_model_dir), prompt="a roof", steps=steps, seed=seed, device="cpu")

    def wait(entries, timeout=300):
        deadline = time.monotonic() + timeout
        while any(e.status in ("queued", "running") for e in entries) and time.monotonic() < deadline:
            time.sleep(0.2)

    first, second, third = (runs.submit(key, job.path, settings(s), f"seed {s}") for s in (1, 2, 3))
    assert runs.cancel(key, third.id) == f"Run #{third.id} cancelled."  # still queued behind the others
    wait([first, second])
    assert [e.status for e in runs.entries_for(key)] == [
        "done",
        "done",
        "cancelled",
    ] and not runs.entries_for(other)
    done = runs.results_for(key)
    assert [p.name for p in done] == [f"run-{first.id}", f"run-{second.id}"]  # in the order queued
    assert [load_result(p).run["settings"]["seed"] for p in done] == [1, 2]
    assert not third.out.exists() and not third.job.exists()
    # a running run stops at its next step, leaving no results folder
    fourth = runs.submit(key, job.path, settings(4, steps=200), "long")
    deadline = time.monotonic() + 120
    while not (fourth.status == "running" and fourth.stage == "denoise") and time.monotonic() < deadline:
        time.sleep(0.05)
    assert runs.cancel(key, fourth.id) == f"Run #{fourth.id}: cancel requested."
    wait([fourth])
    assert fourth.status == "cancelled" and not fourth.out.exists() and len(runs.results_for(key)) == 2
    assert not list(fourth.out.parent.glob(".*"))  # no hidden partial folder either
    with pytest.raises(InputError, match="browser key"):
        runs.results_for("../../etc")
    with pytest.raises(InputError, match="no such run"):
        runs.cancel(other, first.id)  # another browser's run


# ---------------------------------------------------------------------------------- --results folder
def test_results_folder_is_created_and_refused_in_one_line(tmp_path):
    from vacelab.ui.policy import STORE_MARKER

    allowed = tmp_path / "clips"
    (allowed / "sub").mkdir(parents=True)
    temp = Policy.create([allowed], root=tmp_path / "app")
    assert temp.results == (tmp_path / "app" / "results").resolve() and not temp.keeps_results
    kept = Policy.create([allowed], root=tmp_path / "app", results=tmp_path / "new" / "results")
    assert kept.keeps_results and kept.results.is_dir() and (kept.results.stat().st_mode & 0o777) == 0o700
    (tmp_path / "file").write_text("a file")
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "notes.txt").write_text("the user's")
    for results, message in (
        (tmp_path / "file", "is a file, not a folder"),
        (allowed / "sub" / "results", "overlaps the --allow folder"),
        (tmp_path, "overlaps the --allow folder"),  # holds an --allow folder
        (tmp_path / "mine", "holds files and is not the results folder of an earlier"),
        ("/sys/vacelab-results", "cannot be written"),  # sysfs: no folder can be made there, even by root
    ):
        with pytest.raises(InputError, match=message) as refused:
            Policy.create([allowed], root=tmp_path / "app", results=results)
        assert refused.value.field == "results"
    assert (tmp_path / "mine").is_dir() and not (allowed / "sub" / "results").exists()
    (tmp_path / "mine" / STORE_MARKER).write_text("{}")  # an earlier `vacelab ui --results` folder
    assert Policy.create([allowed], root=tmp_path / "app", results=tmp_path / "mine").keeps_results


def test_cli_refuses_a_bad_results_folder_in_one_line(tmp_path):
    (tmp_path / "file").write_text("a file")
    inside = tmp_path / "r"
    for args, message in (
        (["--results", str(tmp_path / "file")], f"--results {tmp_path / 'file'}: is a file, not a folder"),
        (["--allow", str(tmp_path), "--results", str(inside)], f"--results {inside}: overlaps the --allow"),
    ):
        run = subprocess.run([sys.executable, "-m", "vacelab", "ui", *args], capture_output=True, text=True)
        assert run.returncode == 2 and run.stderr.startswith(f"error: {message}"), run.stderr
        assert run.stderr.count("\n") == 1


KILLED_QUEUE = """
import sys, time
from vacelab.generation.settings import RunSettings
from vacelab.ui.runqueue import RunQueue
from vacelab.ui.workbench import Models
folder, job, model, key = sys.argv[1:]
runs = RunQueue(folder, Models(model))
def settings(steps):
    return RunSettings(model=model, prompt="a roof", steps=steps, seed=1, device="cpu")
done = runs.submit(key, job, settings(1), "done")
while done.status != "done":
    time.sleep(0.05)
long = runs.submit(key, job, settings(500), "killed while running")
runs.submit(key, job, settings(1), "killed while queued")
while long.stage != "denoise":
    time.sleep(0.05)
print("denoising", flush=True)
time.sleep(600)
"""


def test_a_results_folder_outlives_a_killed_queue_without_its_unfinished_runs(tmp_path, tiny_model_dir):
    """SIGKILL a queue mid-run: the next queue on the folder lists the finished run only, drops what the
    killed runs left (but not a file a user added), numbers on after them, and shares the browser secret."""
    import json
    import os
    import signal
    import time

    from vacelab import media
    from vacelab.generation.settings import RunSettings
    from vacelab.tasks import prepare
    from vacelab.ui.policy import STORE_MARKER
    from vacelab.ui.runqueue import RunQueue, new_key
    from vacelab.ui.workbench import Models

    job = prepare("inpaint", video=str(sample_path()), bbox="20,10,80,50", size="128x64", frames=5,
                  out=tmp_path / "job")  # fmt: skip
    folder, key = tmp_path / "results", new_key()
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    command = [sys.executable, "-c", KILLED_QUEUE, str(folder), str(job.path), str(tiny_model_dir), key]
    killed = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, text=True)
    try:
        assert killed.stdout.readline() == "denoising\n"
    finally:
        killed.send_signal(signal.SIGKILL)
        killed.wait()
    runs_dir, jobs_dir = folder / key / "runs", folder / key / "jobs"
    left = {p.name for p in runs_dir.iterdir()}  # run-1, and the lock and frames folder of run #2
    part = next(name for name in left if name.endswith(".part"))
    assert left == {"run-1", ".run-2.lock", part} and part.startswith(".run-2."), left
    assert sorted(p.name for p in jobs_dir.iterdir()) == ["job-1", "job-2", "job-3"]
    media.save_array(runs_dir / "run-2.partial" / "windows" / "000.npy", np.zeros(3, np.uint8))  # long runs'
    (jobs_dir / "job-3" / "notes.txt").write_text("the user's")  # not vacelab's: kept

    marker = json.loads((folder / STORE_MARKER).read_text())  # written by the killed process
    runs = RunQueue(folder, Models(str(tiny_model_dir)))  # the killed process's lock went with it
    assert runs.secret == marker["browser_secret"] and len(runs.secret) >= 32  # the same key decrypts
    assert [p.name for p in runs.results_for(key)] == ["run-1"] and not runs.results_for(new_key())
    assert sorted(p.name for p in runs_dir.iterdir()) == ["run-1"]
    assert sorted(p.name for p in jobs_dir.iterdir()) == ["job-1", "job-3"]  # job-3 holds a user's file
    with pytest.raises(InputError, match="another `vacelab ui` uses this folder now") as busy:
        RunQueue(folder, Models(str(tiny_model_dir)))
    assert busy.value.field == "results"
    settings = RunSettings(model=str(tiny_model_dir), prompt="a roof", steps=500, device="cpu")
    long = runs.submit(key, job.path, settings, "after the restart")
    assert long.id == 4  # after the killed runs' numbers: no reuse of run-2 or job-3
    deadline = time.monotonic() + 120
    while long.stage != "denoise" and time.monotonic() < deadline:
        time.sleep(0.05)
    runs.cancel(key, long.id)
    while long.status == "running" and time.monotonic() < deadline:
        time.sleep(0.05)
    assert long.status == "cancelled" and not long.job.exists() and not list(runs_dir.glob("*run-4*"))


def test_a_restarted_server_lists_this_browsers_results_from_the_results_folder(tmp_path, monkeypatch,
                                                                                 tiny_model_dir):  # fmt: skip
    """A result made by one `vacelab ui --results DIR` is listed and shown by the next one, for the same
    browser key only; its files are served (DIR lies outside Gradio's temporary folder and the working
    directory) and its folder is named on the page."""
    import json
    import time

    from vacelab.ui.runqueue import new_key
    from vacelab.ui.settings_form import default, page_fields

    monkeypatch.setenv("TMPDIR", str(tmp_path / "tmp"))  # Gradio's own temporary folder: not DIR's parent
    (tmp_path / "tmp").mkdir()
    results, key, other = tmp_path / "kept", new_key(), new_key()
    names = [name for members in page_fields().values() for name in members]
    settings = [1 if name == "steps" else default(name) for name in names]
    form = ["inpaint", "256x144", 9, 300, 150, 520, 330, None, "", "ratio", 0.8, "", 0, "", None, "aligned",
            16, 17, "gray", "", "", "a roof", ""]  # fmt: skip

    def secret(url: str) -> str:
        with urllib.request.urlopen(f"{url}config", timeout=30) as response:
            config = json.loads(response.read())
        return next(c["props"]["secret"] for c in config["components"] if c["type"] == "browserstate")

    with running_ui("--model", str(tiny_model_dir), "--results", str(results)) as url:
        assert call(url, "load_sample", [9, 0, "16"], session="first")[0] == "complete"
        event, outputs = call(url, "run", [key, str(tiny_model_dir), *settings, *form], session="first")
        assert event == "complete" and "Queued as run **#1**" in outputs[0], outputs
        deadline = time.monotonic() + 180
        while time.monotonic() < deadline:
            event, outputs = call(url, "tick", [key], session="first")
            assert event == "complete", outputs
            rows = outputs[0]["data"]
            if rows[0][2] not in ("queued", "running"):
                break
            time.sleep(0.5)
        assert rows[0][2] == "done", rows
        first_secret = secret(url)
    assert (results / key / "runs" / "run-1" / "run.json").is_file()  # kept after the process stopped

    with running_ui("--results", str(results)) as url:  # no model: it lists and shows, it cannot run
        assert secret(url) == first_secret  # the browser's stored key is read again
        event, outputs = call(url, "tick", [key], session="second")
        assert event == "complete" and outputs[0]["data"] == []  # the queue is this process's
        assert [choice[0] for choice in outputs[1]["choices"]] == ["run-1"]
        event, outputs = call(url, "show_result", [key, "run-1"], session="second")
        assert event == "complete" and f"Folder: `{results.resolve() / key / 'runs' / 'run-1'}`" in outputs[2]
        assert "Generated **run-1**" in outputs[2] and "--steps 1" in outputs[2]
        status, body = _get(outputs[0]["url"])
        assert status == 200 and body[4:8] == b"ftyp"  # Gradio's cached copy of compare.mp4
        assert {Path(f["path"]).name for f in outputs[1]} >= {"compare.mp4", "out_video.mp4", "run.json"}
        for path in results.rglob("*"):
            assert _get(f"{url}gradio_api/file={path}")[0] in (403, 404), path
        event, outputs = call(url, "tick", [other], session="third")
        assert outputs[1]["choices"] == []
        event, outputs = call(url, "show_result", [other, "run-1"], session="third")
        assert event == "error" and "not in the list of choices" in outputs["error"]
