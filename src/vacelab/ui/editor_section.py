"""The mask editor of ``vacelab ui``'s page (section 2 for inpaint / remove / control): a brush on any frame
applied to a range of frames, a box, grow, and an object's mask from clicks (SAM 2) or a phrase (SAM 3)
that follows it through the clip. All work goes through :class:`~vacelab.ui.workbench.Workbench`.
"""

from __future__ import annotations

from dataclasses import dataclass

import gradio as gr

from ..errors import InputError
from .workbench import Models, Workbench


@dataclass
class Editor:
    """The section's components that the rest of the page reads or updates."""

    group: gr.Group
    editor: gr.ImageEditor
    frame: gr.Slider  # the frame shown
    first: gr.Number
    last: gr.Number
    click_view: gr.Image
    box: tuple  # X0, Y0, X1, Y1
    grow: gr.Number
    what: gr.Textbox
    controls: dict  # the section's own buttons and inputs, wired by wire_editor


def editor_section() -> Editor:
    """Lay out the mask editor and the tracking accordion (wired later by :func:`wire_editor`)."""
    with gr.Group(visible=True) as group:
        gr.Markdown(
            "Paint what to **generate** on a frame (brush; eraser removes), choose the frames it applies to "
            "and press **Apply to frames**. A box (source pixels) is added to the painting."
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
                frame = gr.Slider(0, 80, value=0, step=1, label="Frame shown", elem_id="edit-frame")
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
        with gr.Accordion(
            "Click to track an object (SAM 2), or name it (SAM 3)", open=False, elem_id="track"
        ):
            gr.Markdown(
                "Click on the object in the frame shown (choose **background** to click on what is not it), "
                "then press **Track**: SAM 2 follows it through the job's frames, and its mask becomes the "
                "painted mask of each frame. Or name it and press **Find and track**: SAM 3 finds every "
                "instance of the phrase and follows them. Scrub with *Frame shown*; correct a frame with the "
                "brush and **Apply to frames** on that frame alone."
            )
            with gr.Row():
                click_view = gr.Image(label="Click on the object", type="numpy", interactive=False,
                                      elem_id="click-view", scale=3)  # fmt: skip
                with gr.Column(scale=1):
                    click_kind = gr.Radio(["object", "background"], value="object", label="A click marks",
                                          elem_id="click-kind")  # fmt: skip
                    track_btn = gr.Button("Track", elem_id="track-btn", variant="primary")
                    clear_clicks_btn = gr.Button("Clear clicks", elem_id="clear-clicks")
                    phrase = gr.Textbox(label="…or a phrase (SAM 3, --segment)", placeholder="the red car",
                                        elem_id="phrase")  # fmt: skip
                    segment_btn = gr.Button("Find and track", elem_id="segment-btn")
    controls = {
        "apply": apply_btn, "clear": clear_btn, "track": track_btn, "clear_clicks": clear_clicks_btn,
        "segment": segment_btn, "click_kind": click_kind, "phrase": phrase,
    }  # fmt: skip
    box = (box_x0, box_y0, box_x1, box_y1)
    return Editor(group, editor, frame, first, last, click_view, box, grow, what, controls)


def wire_editor(parts: Editor, bench: gr.State, models: Models, frames: gr.Number, status, show) -> None:
    """Connect the editor's events; ``show(event)`` refreshes the model's view after ``event``."""
    b = parts.controls

    def show_frame(bench: Workbench, index):
        return bench.editor_value(int(index or 0)) if bench.source else gr.update()

    parts.frame.release(show_frame, [bench, parts.frame], parts.editor)
    parts.frame.release(
        lambda bench, i: bench.clicks_view(int(i or 0)) if bench.source else gr.update(),
        [bench, parts.frame],
        parts.click_view,
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

    parts.click_view.select(on_click, [bench, b["click_kind"], parts.frame], [parts.click_view, status])

    def clear_clicks(bench: Workbench, index):
        bench.clicks = []
        return (bench.clicks_view(int(index or 0)) if bench.source else gr.update()), "Clicks cleared."

    b["clear_clicks"].click(clear_clicks, [bench, parts.frame], [parts.click_view, status])

    def tracked(bench: Workbench, index, follow):
        """Run ``follow(progress)`` (a tracker) and show its mask on the frame shown."""
        try:
            message = follow()
        except InputError as exc:
            return gr.update(), f"✖ {exc}"
        return bench.editor_value(int(index or 0)), message

    def on_track(bench: Workbench, wanted, index, progress=gr.Progress()):  # noqa: B008 (Gradio's way)
        report = lambda done, total: progress((done, total), desc="tracking")  # noqa: E731
        return tracked(bench, index, lambda: bench.track(wanted, models.track_model, report))

    def on_segment(bench: Workbench, wanted, index, text, progress=gr.Progress()):  # noqa: B008
        report = lambda done, total: progress((done, total), desc="segmenting")  # noqa: E731
        return tracked(bench, index, lambda: bench.segment(wanted, text, models.segment_model, report))

    inputs = [bench, frames, parts.frame]
    show(b["track"].click(on_track, inputs, [parts.editor, status], api_name="track"))
    show(b["segment"].click(on_segment, [*inputs, b["phrase"]], [parts.editor, status], api_name="segment"))

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

    for event in (b["apply"].click, parts.editor.apply):
        show(event(apply_paint, [bench, parts.editor, parts.first, parts.last], status))
    show(b["clear"].click(clear_paint, [bench, parts.frame], [parts.editor, status]))


__all__ = ["Editor", "editor_section", "wire_editor"]
