"""Section 1 of ``vacelab ui``'s page: the clip (the sample, an upload or a path inside an ``--allow``
folder), where it starts (``--start``) and the rate it is read at (``--fps``). The editor shows the clip as
the job sees it: frame N of the editor is frame N of the job.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import gradio as gr

from .. import media
from ..errors import InputError, cli_flag
from .editor_section import Editor
from .fields import FPS
from .policy import Policy
from .workbench import Workbench

START = "Load a video to start: upload one, open a path, or press **Load sample clip**."


@dataclass
class SourceParts:
    """The section's components (``status`` is the page's status line)."""

    sample: gr.Button
    upload: gr.File
    path: gr.Textbox
    open: gr.Button
    start: gr.Number
    fps: gr.Textbox
    status: gr.Markdown
    video: gr.Video


def source_section(policy: Policy) -> SourceParts:
    """Lay out the clip's section (wired by :func:`wire_source`)."""
    with gr.Row():
        with gr.Column(scale=1):
            gr.Markdown("### 1 · Video")
            sample = gr.Button("Load sample clip", elem_id="load-sample", variant="primary")
            upload = gr.File(
                label=f"Upload a video (up to {policy.max_upload // 1024**2} MB)",
                file_types=sorted(media.VIDEO_SUFFIXES),
                type="filepath",
                elem_id="upload",
            )
            with gr.Row():
                path = gr.Textbox(
                    label="…or a path inside an allowed folder",
                    placeholder=", ".join(str(p) for p in policy.allowed) or "start with --allow FOLDER",
                    interactive=bool(policy.allowed),
                    elem_id="path",
                    scale=4,
                )
                open_btn = gr.Button("Open", elem_id="open-path", interactive=bool(policy.allowed), scale=1)
            with gr.Row():
                start = gr.Number(0, label="Start at second (--start)", minimum=0, elem_id="start")
                fps = gr.Textbox("16", label="Frame rate (--fps: a rate, or 'source')", elem_id="fps")
            status = gr.Markdown(START, elem_id="status")
        with gr.Column(scale=1):
            video = gr.Video(label="Source, as the job reads it", interactive=False, elem_id="source-video")
    return SourceParts(sample, upload, path, open_btn, start, fps, status, video)


def wire_source(parts: SourceParts, bench: gr.State, frames: gr.Number, ed: Editor, show) -> None:
    """Connect loading, re-reading at another start or rate, and the editor's span following Frames;
    ``show(event)`` refreshes the model's view after ``event``."""

    def loaded(bench: Workbench, message: str, wanted):
        source = bench.source
        n, count = len(source.frames), bench.frames_for(wanted)
        message += f" ({n} frames at {source.fps:g} fps from {source.start:g} s)."
        if count < n:
            message += f" The job takes its first {count} (Frames; up to {bench.frames_for(n)})."
        return (
            str(source.video), message, count, bench.editor_value(0),
            gr.update(maximum=count - 1, value=0), 0, count - 1, bench.clicks_view(0),
        )  # fmt: skip

    def failed(exc: InputError):
        return (gr.update(), f"✖ {exc.render(cli_flag(exc.field) if exc.field else None)}") + (
            gr.update(),
        ) * 6

    def load_sample(bench: Workbench, wanted, start, fps):
        from ..sample import sample_path

        try:
            bench.load(sample_path(), "sample clip", start, fps)
        except InputError as exc:
            return failed(exc)
        return loaded(bench, "Loaded the **sample clip**", wanted)

    def load_upload(bench: Workbench, path, wanted, start, fps):
        if not path:
            return failed(InputError("no file"))
        name = Path(path).name
        try:
            bench.policy.check_upload(path, "video", name=name)
            bench.load(bench.folder.adopt(path, "upload"), name, start, fps)
        except InputError as exc:
            return failed(exc)
        return loaded(bench, f"Loaded upload **{name}**", wanted)

    def load_path(bench: Workbench, text, wanted, start, fps):
        try:
            path = bench.policy.open_path(text)
            bench.load(path, str(path), start, fps)
        except InputError as exc:
            return failed(exc)
        return loaded(bench, f"Opened **{path}**", wanted)

    def reread(bench: Workbench, wanted, start, fps):
        """Read the loaded clip again when Start or Frame rate changed (its frames are renumbered)."""
        source = bench.source
        if source is None or (float(start or 0), str(fps or f"{FPS:g}").strip().lower()) == (
            source.start,
            source.fps_given,
        ):
            return (gr.skip(),) * 8
        try:
            bench.reload(start, fps)
        except InputError as exc:
            return failed(exc)
        return loaded(bench, f"Re-read **{source.name}**; the painted mask and clicks start over", wanted)

    outputs = [parts.video, parts.status, frames, ed.editor, ed.frame, ed.first, ed.last, ed.click_view]
    timing = [frames, parts.start, parts.fps]
    for event, fn, inputs in (
        (parts.sample.click, load_sample, [bench, *timing]),
        (parts.upload.upload, load_upload, [bench, parts.upload, *timing]),
        (parts.open.click, load_path, [bench, parts.path, *timing]),
    ):
        show(event(fn, inputs, outputs, api_name=fn.__name__))
    rereads = [parts.start.submit, parts.start.blur, parts.fps.submit, parts.fps.blur]
    # always_last: a rate typed while the start is being re-read is read next, not dropped (Gradio's "once")
    show(gr.on(rereads, reread, [bench, *timing], outputs, api_name="reread", trigger_mode="always_last"))

    def job_span(bench: Workbench, wanted):
        """The frame slider and range end follow Frames: a painted frame past the job would be lost."""
        if bench.source is None or not wanted or wanted < 1:
            return gr.update(), gr.update()
        count = bench.frames_for(wanted)
        return gr.update(maximum=count - 1), count - 1

    frames.change(job_span, [bench, frames], [ed.frame, ed.last])


__all__ = ["START", "SourceParts", "source_section", "wire_source"]
