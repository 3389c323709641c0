"""The Gradio page of ``vacelab ui``: load a clip, set up a task, watch the audit, build, run, compare.

Layout, top to bottom: (1) source and task, (2) the mask editor (inpaint / remove) or the task's own
settings, (3) what the model sees: preview, audit picture and findings, refreshed on every change,
(4) build the job folder (zip) and, with ``--model``, generate and compare. Every element a test or a
user script needs has a stable ``elem_id``. All work goes through :mod:`vacelab.ui.workbench`.
"""

from __future__ import annotations

import os

import gradio as gr

from ..errors import InputError, cli_flag
from ..generation.settings import RunSettings
from ..tasks.options import CONTROL_KINDS
from .editor_section import editor_section, wire_editor
from .policy import Policy
from .results import queue_section
from .runqueue import RunQueue
from .settings_form import page_fields, settings_from, widget
from .source_section import source_section, wire_source
from .views import memory_text
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
    "ratio", "expand", "auto_refs", "keys", "every", "strategy", "anchor_px", "keep", "kind", "window",
    "overlap", "prompt", "negative_prompt",
)  # fmt: skip
NO_VIEW = "The audit appears here once a video is loaded."
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
        src = source_section(policy)
        # --------------------------------------------------------------------------------------- 2 task
        gr.Markdown("### 2 · Task")
        with gr.Row():
            task = gr.Dropdown(
                [(label, name) for name, label in TASK_LABELS.items()], value="inpaint", label="Task",
                elem_id="task", scale=3,
            )  # fmt: skip
            size = gr.Textbox("480p", label="Size (--size: 480p, 720p or WxH)", elem_id="size", scale=1)
            frames = gr.Number(81, label="Frames (--frames, 4n+1)", precision=0, elem_id="frames", scale=1)
            window = gr.Textbox("", label="Window (--window, long jobs)", placeholder="81", elem_id="window",
                                scale=1)  # fmt: skip
            overlap = gr.Textbox("", label="Overlap (--overlap)", placeholder="default", elem_id="overlap",
                                 scale=1)  # fmt: skip
        ed = editor_section()
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
        audit_window = gr.Slider(0, 1, value=0, step=1, visible=False, elem_id="audit-window",
                                 label="Window audited (a long job runs window by window; each is audited "
                                 "as the run conditions it)")  # fmt: skip
        audit_png = gr.Image(label="Audit: latent steps against frames (full width: one row per step)",
                             interactive=False, type="filepath", elem_id="audit-png")  # fmt: skip
        findings = gr.Markdown(NO_VIEW, elem_id="findings")
        with gr.Accordion("Full audit report", open=False):
            report = gr.Textbox(lines=14, show_label=False, elem_id="report", buttons=["copy"])
        # ---------------------------------------------------------------------------------- 4 build/run
        gr.Markdown("### 4 · Build and run", elem_id="build-run")
        with gr.Row():
            with gr.Column():
                build_btn = gr.Button("Build job folder", elem_id="build", variant="primary")
                job_zip = gr.File(label="Job folder (zip)", interactive=False, elem_id="job-zip")
            with gr.Column():
                model_pick = gr.Dropdown(
                    list(models.models), value=models.model, elem_id="model", visible=bool(models.models),
                    interactive=len(models.models) > 1,
                    label="Model (from vacelab ui --model; loaded by the first run using it, one at a time)",
                )  # fmt: skip
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
                    "Pick the model and the settings, then **Run**." if models.model else
                    "**No model configured**: this interface builds and audits jobs, it cannot generate. "
                    "Restart it with `vacelab ui --model ID_OR_PATH` to run, or run the job folder with "
                    "`vacelab run JOB`.",
                    elem_id="run-status",
                )  # fmt: skip
        browser_key = queue_section(app, runs, bench, run_status)

        form = [task, size, frames, *ed.box, ed.grow, ed.what, outpaint_mode, ratio, expand, auto_refs, keys,
                every, strategy, anchor_px, keep, kind, window, overlap, prompt, negative_prompt]  # fmt: skip
        view = [preview, audit_window, audit_png, findings, report]

        # ------------------------------------------------------------------------------------- handlers
        def shown_view(shown):
            """The view's outputs for a :class:`View` (the window slider only for a long job)."""
            pick = gr.update(visible=shown.windows > 1, maximum=max(shown.windows - 1, 1), value=shown.window)
            return str(shown.preview), pick, str(shown.audit), shown.findings, shown.report_text

        def refresh(bench: Workbench, audited, *values):
            try:
                if bench.source is None and form_from(values).task != "reference":
                    return None, gr.update(visible=False), None, NO_VIEW, ""
                shown = bench.preview(form_from(values), int(audited or 0))
            except InputError as exc:
                return None, gr.update(visible=False), None, f"✖ **This job cannot be built yet**: {exc}", ""
            return shown_view(shown)

        view_inputs = [bench, audit_window, *form]

        def show(dependency):
            """Refresh the model's view after ``dependency`` (an event) has run."""
            return dependency.then(refresh, view_inputs, view, **REFRESH)

        wire_source(src, bench, frames, ed, show)
        wire_editor(ed, bench, models, frames, src.status, show)

        def set_refs(bench: Workbench, paths):
            try:
                adopted = bench.add_refs(paths or [])
            except InputError as exc:
                bench.refs = []
                return f"✖ {exc}"
            return f"{len(adopted)} reference image(s)." if adopted else "No reference images."

        for event in (refs.upload, refs.clear, refs.delete):
            show(event(set_refs, [bench, refs], src.status))

        def show_task(name):
            return [
                gr.update(visible=name in ("inpaint", "remove", "control")),
                gr.update(visible=name == "outpaint"),
                gr.update(visible=name == "keyframes"),
                gr.update(visible=name == "extend"),
                gr.update(visible=name == "control"),
            ]

        groups = [ed.group, outpaint_group, keyframes_group, extend_group, control_group]
        task.change(show_task, task, groups)
        # one listener for every field: while a refresh runs, only the latest change waits (debounce)
        changes = [c.change for c in (*form, audit_window)]
        gr.on(changes, refresh, view_inputs, view, trigger_mode="always_last", **REFRESH)

        def build(bench: Workbench, *values):
            try:
                job, archive = bench.build(form_from(values))
                shown = bench.view(job)
            except InputError as exc:
                return None, gr.update(), gr.update(), gr.update(), f"✖ **Not built**: {exc}", gr.update()
            preview_path, pick, audit, found, text = shown_view(shown)
            found = f"Job folder **{job.path.name}** built (download the zip).\n\n{found}"
            return str(archive), preview_path, pick, audit, found, text

        build_btn.click(build, [bench, *form], [job_zip, *view])

        run_names = list(run_widgets)

        def run_settings(model, values) -> tuple[RunSettings, Form]:
            """The run settings and the job's form from the page's values (run settings, then the form)."""
            form_values = form_from(values[len(run_names) :])
            settings = settings_from(
                run_names, values[: len(run_names)], policy.open_lora, model=models.checked(model),
                prompt=form_values.prompt or "", negative_prompt=form_values.negative_prompt or None,
            )  # fmt: skip
            return settings, form_values

        def show_memory(bench: Workbench, model, *values):
            if models.model is None or bench.viewed is None:
                return ""
            try:
                settings, _ = run_settings(model, values)
            except InputError as exc:
                return f"✖ {exc.render(cli_flag(exc.field) if exc.field else None)}"
            return memory_text(bench.viewed, settings.model, settings)

        run_inputs = [model_pick, *run_widgets.values(), *form]
        triggers = [c.change for c in (model_pick, *run_widgets.values())] + [audit_png.change]
        gr.on(triggers, show_memory, [bench, *run_inputs], memory, trigger_mode="always_last")

        def run(bench: Workbench, key, model, *values):
            if models.model is None:
                return "**No model configured**: restart with `vacelab ui --model ID_OR_PATH`."
            try:
                settings, form_values = run_settings(model, values)
                entry = bench.enqueue(form_values, settings, runs, key)
            except InputError as exc:  # named as the page's field, or the model as `vacelab ui --model`'s
                return f"✖ **Not run**: {exc.render(cli_flag(exc.field) if exc.field else None)}"
            return f"Queued as run **#{entry.id}** ({entry.label})."

        run_btn.click(run, [bench, browser_key, *run_inputs], run_status, api_name="run")

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
