"""The Gradio page of ``vacelab ui``: load a clip, set up a task, watch the audit, build, run, compare.

Layout, top to bottom: (1) source and task, (2) the mask editor (inpaint / remove) or the task's own
settings, (3) what the model sees: preview, audit picture and findings, refreshed on every change,
(4) build the job folder (zip) and, with ``--model``, generate and compare. Every element a test or a
user script needs has a stable ``elem_id``. All work goes through :mod:`vacelab.ui.workbench`.
"""

from __future__ import annotations

import os
from pathlib import Path

import gradio as gr

from .. import media
from ..errors import InputError, cli_flag
from ..generation.settings import RunSettings
from ..tasks.options import CONTROL_KINDS
from .policy import Policy
from .results import queue_section
from .runqueue import RunQueue
from .settings_form import page_fields, settings_from, widget
from .workbench import Form, Models, Workbench

TASK_LABELS = {
    "inpaint": "inpaint: regenerate a painted / boxed region",
    "remove": "remove: erase an object (grown mask, negative prompt)",
    "outpaint": "outpaint: shrink the video, generate the band around it",
    "firstframe": "firstframe: a clip that starts on the first frame",
    "lastframe": "lastframe: a clip that ends on the last frame",
    "firstlast": "firstlast: a clip between the first and last frames",
    "keyframes": "keyframes: generate the frames between keyframes",
    "extend": "extend: keep the first N frames, generate what follows",
    "control": "control: follow a control video drawn from the clip, whole or inside the mask",
    "reference": "reference: a clip from the reference images alone (R2V)",
}
STAGES = {
    "audit": "auditing",
    "load": "loading the model",
    "denoise": "denoising",
    "composite": "compositing",
    "write": "writing results",
}
FORM_FIELDS = (
    "task", "size", "frames", "box_x0", "box_y0", "box_x1", "box_y1", "grow", "what", "outpaint_mode",
    "ratio", "expand", "auto_refs", "keys", "every", "strategy", "anchor_px", "keep", "kind", "prompt",
    "negative_prompt",
)  # fmt: skip
START = "Load a video to start: upload one, open a path, or press **Load sample clip**."
REFRESH = {"concurrency_id": "refresh", "concurrency_limit": 2}  # prepares at once, all sessions
CSS = "#findings {min-height: 8em} #status {min-height: 1.5em}"


def form_from(values) -> Form:
    """The :class:`Form` for the values of ``FORM_FIELDS`` in order."""
    v = dict(zip(FORM_FIELDS, values, strict=True))
    box = tuple(v.pop(k) for k in ("box_x0", "box_y0", "box_x1", "box_y1"))
    return Form(box=None if not any(box) else box, **v)  # empty number fields arrive as 0 or None


def build_app(policy: Policy, models: Models) -> gr.Blocks:
    """The whole interface as a ``gr.Blocks`` (not launched)."""
    runs = RunQueue(policy.results, models)
    with gr.Blocks(title="vacelab", delete_cache=(600, 3600), analytics_enabled=False) as app:
        bench = gr.State(value=lambda: Workbench(policy), delete_callback=lambda b: b and b.close())
        gr.Markdown(
            "# vacelab\nPrepare a VACE job, see what Wan2.1 VACE will actually see of your mask (the audit "
            "refreshes on every change), build the job folder and run it."
        )
        # ------------------------------------------------------------------------------------- 1 source
        with gr.Row():
            with gr.Column(scale=1):
                gr.Markdown("### 1 · Video")
                sample_btn = gr.Button("Load sample clip", elem_id="load-sample", variant="primary")
                upload = gr.File(
                    label=f"Upload a video (up to {policy.max_upload // 1024**2} MB)",
                    file_types=sorted(media.VIDEO_SUFFIXES),
                    type="filepath",
                    elem_id="upload",
                )
                with gr.Row():
                    path_box = gr.Textbox(
                        label="…or a path inside an allowed folder",
                        placeholder=", ".join(str(p) for p in policy.allowed) or "start with --allow FOLDER",
                        interactive=bool(policy.allowed),
                        elem_id="path",
                        scale=4,
                    )
                    open_btn = gr.Button(
                        "Open", elem_id="open-path", interactive=bool(policy.allowed), scale=1
                    )
                status = gr.Markdown(START, elem_id="status")
            with gr.Column(scale=1):
                source_video = gr.Video(label="Source (at 16 fps)", interactive=False, elem_id="source-video")
        # --------------------------------------------------------------------------------------- 2 task
        gr.Markdown("### 2 · Task")
        with gr.Row():
            task = gr.Dropdown(
                [(label, name) for name, label in TASK_LABELS.items()], value="inpaint", label="Task",
                elem_id="task", scale=3,
            )  # fmt: skip
            size = gr.Textbox("480p", label="Size (--size: 480p, 720p or WxH)", elem_id="size", scale=1)
            frames = gr.Number(81, label="Frames (--frames, 4n+1)", precision=0, elem_id="frames", scale=1)
        with gr.Group(visible=True) as mask_group:
            gr.Markdown(
                "Paint what to **generate** on a frame (brush; eraser removes), choose the frames it "
                "applies to and press **Apply to frames**. A box (source pixels) is added to the painting."
            )
            with gr.Row():
                with gr.Column(scale=3):
                    editor = gr.ImageEditor(
                        label="Mask editor",
                        type="numpy",
                        sources=(),
                        transforms=(),
                        layers=False,
                        brush=gr.Brush(colors=[("#ff3030", 0.6)], color_mode="fixed", default_size=24),
                        eraser=gr.Eraser(default_size=24),
                        height=520,
                        elem_id="mask-editor",
                    )
                    edit_frame = gr.Slider(0, 80, value=0, step=1, label="Frame shown", elem_id="edit-frame")
                with gr.Column(scale=1):
                    with gr.Row():
                        first = gr.Number(0, label="From frame", precision=0, elem_id="range-first")
                        last = gr.Number(80, label="To frame", precision=0, elem_id="range-last")
                    apply_btn = gr.Button("Apply to frames", elem_id="apply-mask", variant="primary")
                    clear_btn = gr.Button("Clear painted mask", elem_id="clear-mask")
                    gr.Markdown("Box (--bbox, source pixels, X1/Y1 exclusive)")
                    with gr.Row():
                        box_x0 = gr.Number(None, label="X0", precision=0, elem_id="box-x0", min_width=60)
                        box_y0 = gr.Number(None, label="Y0", precision=0, elem_id="box-y0", min_width=60)
                    with gr.Row():
                        box_x1 = gr.Number(None, label="X1", precision=0, elem_id="box-x1", min_width=60)
                        box_y1 = gr.Number(None, label="Y1", precision=0, elem_id="box-y1", min_width=60)
                    grow = gr.Number(None, label="Grow (--grow px; remove: 8)", precision=0, elem_id="grow")
                    what = gr.Textbox(label="Remove what (--what → negative prompt)", elem_id="what")
            with gr.Accordion("Click to track an object (SAM 2)", open=False, elem_id="track"):
                gr.Markdown(
                    "Click on the object in the frame shown (choose **background** to click on what is not "
                    "it), then press **Track**: SAM 2 follows it through the job's frames, and its mask "
                    "becomes the painted mask of each frame. Scrub with *Frame shown*; correct a frame with "
                    "the brush and **Apply to frames** on that frame alone."
                )
                with gr.Row():
                    click_view = gr.Image(label="Click on the object", type="numpy", interactive=False,
                                          elem_id="click-view", scale=3)  # fmt: skip
                    with gr.Column(scale=1):
                        click_kind = gr.Radio(["object", "background"], value="object", label="A click marks",
                                              elem_id="click-kind")  # fmt: skip
                        track_btn = gr.Button("Track", elem_id="track-btn", variant="primary")
                        clear_clicks_btn = gr.Button("Clear clicks", elem_id="clear-clicks")
        with gr.Group(visible=False) as outpaint_group, gr.Row():
            outpaint_mode = gr.Radio(
                ["ratio", "expand"], value="ratio", label="Outpaint by", elem_id="outpaint-mode"
            )
            ratio = gr.Slider(0.3, 0.95, value=0.8, step=0.05, label="Ratio (--ratio)", elem_id="ratio")
            expand = gr.Textbox(
                label="Expand L,T,R,B px (--expand)", placeholder="0,0,128,0", elem_id="expand"
            )
            auto_refs = gr.Number(
                0, label="Mood crops as references (--auto-refs)", precision=0, elem_id="auto-refs"
            )
        with gr.Group(visible=False) as keyframes_group, gr.Row():
            keys = gr.Textbox(label="Keyframes: frame numbers of the clip to keep", placeholder="0,8,16,24",
                              elem_id="keys")  # fmt: skip
            every = gr.Number(None, label="…or one every K frames (--every)", precision=0, elem_id="every")
            strategy = gr.Radio(
                ["naive", "aligned", "anchor"], value="aligned", label="Strategy", elem_id="strategy"
            )
            anchor_px = gr.Number(16, label="Anchor strip px (--anchor-px)", precision=0, elem_id="anchor-px")
        with gr.Group(visible=False) as extend_group:
            keep = gr.Number(17, label="Keep the first N frames (--keep)", precision=0, elem_id="keep")
        with gr.Group(visible=False) as control_group:
            kind = gr.Radio(
                list(CONTROL_KINDS), value=CONTROL_KINDS[0], elem_id="kind",
                label="Control video drawn from the clip (--kind; depth and pose need their models' weights, "
                "layout the painted mask or a box); inside the painted mask or box if any, else over "
                "the whole frame",
            )  # fmt: skip
        with gr.Row():
            refs = gr.File(
                label="Reference images (--ref, in order)", file_count="multiple", file_types=["image"],
                type="filepath", elem_id="refs",
            )  # fmt: skip
            with gr.Column():
                prompt = gr.Textbox(label="Prompt", lines=2, elem_id="prompt")
                negative_prompt = gr.Textbox(
                    label="Negative prompt (empty: Wan's standard one + the job's suggestion)", lines=2,
                    elem_id="negative-prompt",
                )  # fmt: skip
        # ----------------------------------------------------------------------------- 3 model's view
        gr.Markdown("### 3 · What the model sees", elem_id="view")
        preview = gr.Video(label="Source | conditioning (red = GENERATE)", interactive=False,
                           autoplay=True, loop=True, elem_id="preview")  # fmt: skip
        audit_png = gr.Image(label="Audit: latent steps against frames (full width: one row per step)",
                             interactive=False, type="filepath", elem_id="audit-png")  # fmt: skip
        findings = gr.Markdown("The audit appears here once a video is loaded.", elem_id="findings")
        with gr.Accordion("Full audit report", open=False):
            report = gr.Textbox(lines=14, show_label=False, elem_id="report", buttons=["copy"])
        # ---------------------------------------------------------------------------------- 4 build/run
        gr.Markdown("### 4 · Build and run", elem_id="build-run")
        with gr.Row():
            with gr.Column():
                build_btn = gr.Button("Build job folder", elem_id="build", variant="primary")
                job_zip = gr.File(label="Job folder (zip)", interactive=False, elem_id="job-zip")
            with gr.Column():
                run_widgets = {}  # every run setting, grouped; read back through RunSettings.validate
                for group, names in page_fields().items():
                    slug = group.lower().replace(" ", "-")
                    with gr.Accordion(group, open=group == "Sampling", elem_id=f"settings-{slug}"):
                        for row in range(0, len(names), 3):  # three to a row: labels stay readable
                            with gr.Row():
                                run_widgets.update({name: widget(name) for name in names[row : row + 3]})
                memory = gr.Markdown("", elem_id="memory")
                run_btn = gr.Button(
                    "Run (joins the queue)",
                    elem_id="run",
                    variant="primary",
                    interactive=models.model is not None,
                )
                run_status = gr.Markdown(
                    f"Model: `{models.model}` (loaded on the first run)." if models.model else
                    "**No model configured**: this interface builds and audits jobs, it cannot generate. "
                    "Restart it with `vacelab ui --model ID_OR_PATH` to run, or run the job folder with "
                    "`vacelab run JOB`.",
                    elem_id="run-status",
                )  # fmt: skip
        browser_key = queue_section(app, runs, bench, run_status)

        form = [task, size, frames, box_x0, box_y0, box_x1, box_y1, grow, what, outpaint_mode, ratio, expand,
                auto_refs, keys, every, strategy, anchor_px, keep, kind, prompt, negative_prompt]  # fmt: skip
        view = [preview, audit_png, findings, report]

        # ------------------------------------------------------------------------------------- handlers
        def refresh(bench: Workbench, *values):
            if bench.source is None and form_from(values).task != "reference":
                return None, None, "The audit appears here once a video is loaded.", ""
            try:
                shown = bench.preview(form_from(values))
            except InputError as exc:
                return None, None, f"✖ **This job cannot be built yet**: {exc}", ""
            return str(shown.preview), str(shown.audit), shown.findings, shown.report_text

        def show(dependency):
            """Refresh the model's view after ``dependency`` (an event) has run."""
            return dependency.then(refresh, [bench, *form], view, **REFRESH)

        def loaded(bench: Workbench, message: str, wanted):
            n, count = len(bench.source.frames), bench.frames_for(wanted)
            if count < n:
                message += f" The job takes its first {count} (Frames; up to {bench.frames_for(n)})."
            return (
                str(bench.source.video), message, count, bench.editor_value(0),
                gr.update(maximum=count - 1, value=0), 0, count - 1, bench.clicks_view(0),
            )  # fmt: skip

        def job_span(bench: Workbench, wanted):
            """The frame slider and range end follow Frames: a painted frame past the job would be lost."""
            if bench.source is None or not wanted or wanted < 1:
                return gr.update(), gr.update()
            count = bench.frames_for(wanted)
            return gr.update(maximum=count - 1), count - 1

        def failed(message: str):
            return (gr.update(),) + (f"✖ {message}",) + (gr.update(),) * 6

        def load_sample(bench: Workbench, wanted):
            from ..sample import sample_path

            bench.load(sample_path(), "sample clip")
            n = len(bench.source.frames)
            return loaded(bench, f"Loaded the **sample clip** ({n} frames at 16 fps).", wanted)

        def load_upload(bench: Workbench, path, wanted):
            if not path:
                return failed("no file")
            name = Path(path).name
            try:
                bench.policy.check_upload(path, "video", name=name)
                bench.load(bench.folder.adopt(path, "upload"), name)
            except InputError as exc:
                return failed(str(exc))
            n = len(bench.source.frames)
            return loaded(bench, f"Loaded upload **{name}** ({n} frames at 16 fps).", wanted)

        def load_path(bench: Workbench, text, wanted):
            try:
                path = bench.policy.open_path(text)
                bench.load(path, str(path))
            except InputError as exc:
                return failed(str(exc))
            return loaded(bench, f"Opened **{path}** ({len(bench.source.frames)} frames at 16 fps).", wanted)

        frames.change(job_span, [bench, frames], [edit_frame, last])
        load_outputs = [source_video, status, frames, editor, edit_frame, first, last, click_view]
        for event, fn, inputs in (
            (sample_btn.click, load_sample, [bench, frames]),
            (upload.upload, load_upload, [bench, upload, frames]),
            (open_btn.click, load_path, [bench, path_box, frames]),
        ):
            show(event(fn, inputs, load_outputs, api_name=fn.__name__))

        def show_frame(bench: Workbench, index):
            return bench.editor_value(int(index or 0)) if bench.source else gr.update()

        edit_frame.release(show_frame, [bench, edit_frame], editor)
        edit_frame.release(
            lambda b, i: b.clicks_view(int(i or 0)) if b.source else gr.update(),
            [bench, edit_frame],
            click_view,
        )

        def on_click(bench: Workbench, kind_of_click, index, evt: gr.SelectData):
            if bench.source is None:
                return gr.update(), "Load a video first."
            x, y = evt.index
            image = bench.click(x, y, int(index or 0), kind_of_click == "object")
            return image, (
                f"{len(bench.clicks)} click(s) on frame {bench.click_frame}, the last one on the "
                f"{kind_of_click} at ({x}, {y}) px. Press **Track**."
            )

        click_view.select(on_click, [bench, click_kind, edit_frame], [click_view, status])

        def clear_clicks(bench: Workbench, index):
            bench.clicks = []
            return (bench.clicks_view(int(index or 0)) if bench.source else gr.update()), "Clicks cleared."

        clear_clicks_btn.click(clear_clicks, [bench, edit_frame], [click_view, status])

        def on_track(bench: Workbench, wanted, index, progress=gr.Progress()):  # noqa: B008 (Gradio's way)
            try:
                message = bench.track(
                    wanted, models.track_model, lambda done, total: progress((done, total), desc="tracking")
                )
            except InputError as exc:
                return gr.update(), f"✖ {exc}"
            return bench.editor_value(int(index or 0)), message

        show(track_btn.click(on_track, [bench, frames, edit_frame], [editor, status], api_name="track"))

        def apply_paint(bench: Workbench, value, a, b):
            try:
                area = bench.apply_paint(value, int(a or 0), int(b or 0))
            except InputError as exc:
                return f"✖ {exc}"
            return f"Painted mask ({area:.1%} of the frame) applied to frames {int(a)}–{int(b)}."

        def clear_paint(bench: Workbench, index):
            if bench.source is None:
                return gr.update(), "Nothing to clear."
            bench.paint.clear()
            return bench.editor_value(int(index or 0)), "Painted mask cleared."

        for event in (apply_btn.click, editor.apply):
            show(event(apply_paint, [bench, editor, first, last], status))
        show(clear_btn.click(clear_paint, [bench, edit_frame], [editor, status]))

        def set_refs(bench: Workbench, paths):
            try:
                adopted = bench.add_refs(paths or [])
            except InputError as exc:
                bench.refs = []
                return f"✖ {exc}"
            return f"{len(adopted)} reference image(s)." if adopted else "No reference images."

        for event in (refs.upload, refs.clear, refs.delete):
            show(event(set_refs, [bench, refs], status))

        def show_task(name):
            return [
                gr.update(visible=name in ("inpaint", "remove", "control")),
                gr.update(visible=name == "outpaint"),
                gr.update(visible=name == "keyframes"),
                gr.update(visible=name == "extend"),
                gr.update(visible=name == "control"),
            ]

        groups = [mask_group, outpaint_group, keyframes_group, extend_group, control_group]
        task.change(show_task, task, groups)
        # one listener for every field: while a refresh runs, only the latest change waits (debounce)
        gr.on([c.change for c in form], refresh, [bench, *form], view, trigger_mode="always_last", **REFRESH)

        def build(bench: Workbench, *values):
            try:
                job, archive = bench.build(form_from(values))
                shown = bench.view(job)
            except InputError as exc:
                return None, gr.update(), gr.update(), f"✖ **Not built**: {exc}", gr.update()
            findings_text = f"Job folder **{job.path.name}** built (download the zip).\n\n{shown.findings}"
            return str(archive), str(shown.preview), str(shown.audit), findings_text, shown.report_text

        build_btn.click(build, [bench, *form], [job_zip, *view])

        run_names = list(run_widgets)

        def run_settings(values, form_values: Form) -> RunSettings:
            return settings_from(
                run_names, values, model=models.model, prompt=form_values.prompt or "",
                negative_prompt=form_values.negative_prompt or None,
            )  # fmt: skip

        def show_memory(bench: Workbench, *values):
            if models.model is None or bench.viewed is None:
                return ""
            try:
                settings = run_settings(values[: len(run_names)], form_from(values[len(run_names) :]))
            except InputError as exc:
                return f"✖ {exc.render(cli_flag(exc.field) if exc.field else None)}"
            return bench.memory_text(models.model, settings)

        memory_inputs = [bench, *run_widgets.values(), *form]
        triggers = [c.change for c in run_widgets.values()] + [audit_png.change]
        gr.on(triggers, show_memory, memory_inputs, memory, trigger_mode="always_last")

        def run(bench: Workbench, key, *values):
            if models.model is None:
                return "**No model configured**: restart with `vacelab ui --model ID_OR_PATH`."
            form_values = form_from(values[len(run_names) :])
            try:
                settings = run_settings(values[: len(run_names)], form_values)
                entry = bench.enqueue(form_values, settings, runs, key)
            except InputError as exc:  # named as the page's field, or the model as `vacelab ui --model`'s
                return f"✖ **Not run**: {exc.render(cli_flag(exc.field) if exc.field else None)}"
            return f"Queued as run **#{entry.id}** ({entry.label})."

        run_btn.click(run, [bench, browser_key, *run_widgets.values(), *form], run_status, api_name="run")

    return app


def serve(
    policy: Policy, models: Models, *, host: str = "127.0.0.1", port: int | None = None, block: bool = True
):
    """Launch the interface; Gradio's cache lives inside ``policy.root`` and nothing else is served.

    Returns ``(app, url)``; with ``block`` it only returns when the server stops (Ctrl+C).
    """
    for name, sub in (("GRADIO_TEMP_DIR", "gradio"), ("GRADIO_EXAMPLES_CACHE", "examples")):
        os.environ[name] = str(policy.root / sub)
    app = build_app(policy, models)
    try:
        _, url, _ = app.launch(
            server_name=host,
            server_port=port,
            max_file_size=policy.max_upload,
            allowed_paths=[],
            show_error=True,
            ssr_mode=False,
            footer_links=[],
            run_history=False,
            enable_monitoring=False,
            mcp_server=False,
            share=False,
            prevent_thread_lock=True,
            quiet=True,
            css=CSS,
        )
    except OSError:
        raise InputError(
            f"cannot listen on {host}:{port} (in use or not allowed); choose another --port",
            field="port",
            value=port,
        ) from None
    if block:
        app.block_thread()
    return app, url


__all__ = ["build_app", "form_from", "serve"]
