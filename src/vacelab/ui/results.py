"""Section 5 of ``vacelab ui``'s page: the run queue, cancel, and the results that outlive a reload.

Its state is the :class:`~vacelab.ui.runqueue.RunQueue` (app-wide) and a random key in the browser's local
storage (``gr.BrowserState``) naming this browser's runs; a one-second timer shows both. A result's files
reach the page through links in the session folder (:func:`offered`), so that Gradio serves its own cached
copies wherever the results folder lies, and nothing else.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import gradio as gr

from ..errors import InputError
from .runqueue import KEY, RunQueue, new_key, settings_text
from .workbench import Workbench


def queue_section(app: gr.Blocks, runs: RunQueue, bench: gr.State, run_status: gr.Markdown):
    """Lay out the queue and results under the run button and wire them; return the browser key state
    (what a run is queued under)."""
    gr.Markdown("### 5 · Queue and results", elem_id="queue-results")
    with gr.Row():
        with gr.Column(scale=3):
            queue_table = gr.Dataframe(
                headers=["#", "job", "status", "progress"], value=[], interactive=False, elem_id="queue",
                label="Runs of this browser, in order (one at a time across all pages)",
            )  # fmt: skip
        with gr.Column(scale=1):
            cancel_id = gr.Number(None, label="Run #", precision=0, elem_id="cancel-id")
            cancel_btn = gr.Button("Cancel run", elem_id="cancel")
    result_pick = gr.Dropdown([], label="Results (kept across page reloads)", elem_id="results")
    with gr.Row():
        compare = gr.Video(label="Source | mask | output", interactive=False, elem_id="compare")
        outputs = gr.File(label="Outputs", file_count="multiple", interactive=False, elem_id="outputs")
    result_info = gr.Markdown("", elem_id="result-info")
    browser_key = gr.BrowserState("", storage_key="vacelab-browser-key", secret=runs.secret)
    ticker = gr.Timer(1.0)

    def ensure_key(key):
        return key if isinstance(key, str) and KEY.fullmatch(key) else new_key()

    app.load(ensure_key, browser_key, browser_key)

    def tick(bench: Workbench, key):
        """Every second: the queue, the results list, and the run this page queued last once it ends."""
        if not isinstance(key, str) or not KEY.fullmatch(key):
            return (gr.skip(),) * 5
        rows = [[e.id, e.label, e.status, e.progress_text()] for e in runs.entries_for(key)]
        names = [p.name for p in runs.results_for(key)]
        listed = gr.update(choices=names) if names != bench.listed else gr.skip()
        bench.listed = names
        ended = bench.ended()
        if ended is None:
            return rows, listed, gr.skip(), gr.skip(), gr.skip()
        if ended.status != "done":
            return (
                rows,
                listed,
                f"✖ Run **#{ended.id}** {ended.status}: {ended.message}",
                gr.skip(),
                gr.skip(),
            )
        message, video, files = offered(bench, ended.out)
        return rows, listed, message, video, files

    outputs_of_tick = [queue_table, result_pick, run_status, compare, outputs]
    ticker.tick(tick, [bench, browser_key], outputs_of_tick, show_progress="hidden")  # no overlay each second

    def cancel(key, number):
        try:
            return runs.cancel(key, int(number or 0))
        except InputError as exc:
            return f"✖ {exc}"

    cancel_btn.click(cancel, [browser_key, cancel_id], run_status)

    def show_result(bench: Workbench, key, name):
        if not name:
            return gr.skip(), gr.skip(), ""
        try:  # only a finished run of this browser: the name comes from the page, never a path
            folder = next((p for p in runs.results_for(key) if p.name == name), None)
        except InputError as exc:
            return gr.skip(), gr.skip(), f"✖ {exc}"
        if folder is None:
            return gr.skip(), gr.skip(), f"✖ {name}: no such result of this browser"
        message, video, files = offered(bench, folder)
        return video, files, "\n\n".join((message, settings_text(folder), where(bench, folder)))

    result_pick.change(
        show_result,
        [bench, browser_key, result_pick],
        [compare, outputs, result_info],
        api_name="show_result",
    )
    return browser_key


def offered(bench: Workbench, folder: Path) -> tuple[str, str, list[str]]:
    """:meth:`Workbench.offer` with the results folder's files linked (or copied, across file systems)
    into a new folder of the session: Gradio caches a returned file only from its temporary folder or the
    working directory, and a ``--results`` folder may lie anywhere."""
    message, video, files = bench.offer(folder)
    shown = bench.folder.new(folder.name)
    shown.mkdir()

    def linked(path: str) -> str:
        source, target = Path(path), shown / Path(path).name
        if source.parent != folder:
            return path  # the zip, already in the session
        if not target.exists():  # compare.mp4 is both the video and a file
            try:
                os.link(source, target)
            except OSError:
                shutil.copyfile(source, target)
        return str(target)

    return message, linked(video), [linked(path) for path in files]


def where(bench: Workbench, folder: Path) -> str:
    """Where the results folder is on disk, and whether it outlives ``vacelab ui``."""
    if bench.policy.keeps_results:
        return f"Folder: `{folder}`"
    return f"Folder: `{folder}` (temporary: removed when `vacelab ui` stops; `--results DIR` keeps results)"


__all__ = ["offered", "queue_section", "where"]
