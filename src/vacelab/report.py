"""The experiment / demo report: ONE self-contained HTML file (pictures embedded as data URIs, no URLs).

Pictures are kept small (the demo's report is about 5 MB): animations are GIFs of at most ``GIF_FRAMES``
frames (evenly subsampled), ``PANEL_WIDTH`` pixels per panel, ``GIF_COLORS`` colours; the audit pictures
are ``draw_audit``'s PNGs as palette images of their own 256 most used colours (flat drawings: every fill
and legend swatch keeps its exact colour).
"""

from __future__ import annotations

import base64
import html
import math
import tempfile
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

from . import __version__, media
from .audit import formats
from .audit.formats import html_text
from .render import mask_overlay, side_by_side

GIF_FRAMES = 27  # every 3rd frame of an 81-frame job: every position within a VAE group of 4 is shown
GIF_COLORS = 48
PANEL_WIDTH = 288  # each side of a side-by-side animation
REF_HEIGHT = 120  # the reference images' strip
METRIC_COLUMNS = [
    ("keep_psnr", "KEEP PSNR dB"),
    ("keep_ssim", "KEEP SSIM"),
    ("key_psnr", "key PSNR dB"),
    ("key_ssim", "key SSIM"),
    ("flicker", "flicker"),
    ("gen_psnr_vs_ref", "GENERATE PSNR vs ref dB"),
    ("gen_ssim_vs_ref", "GENERATE SSIM vs ref"),
    ("keep_exact", "KEEP exact"),
    ("speedup_vs_ref", "speed-up vs ref"),
]
DEFINITIONS = [
    (
        "KEEP PSNR / SSIM",
        "the output against the conditioning video on the KEEP pixels (what the model was told to "
        "preserve). Plans run with composite = false so that these measure the model itself; with "
        "compositing the KEEP pixels are pasted back and these read infinite (exact).",
    ),
    (
        "key PSNR / SSIM",
        "keyframe jobs only: the same measures over the frames given whole as keyframes "
        "(frames entirely KEEP).",
    ),
    (
        "flicker",
        "mean absolute change from each frame to the next (0-255, averaged over RGB) over the "
        "GENERATE pixels; the source's own motion counts too, so compare runs of one job with each other.",
    ),
    (
        "vs ref, KEEP exact, speed-up",
        "plans with [modes] (e.g. the shipped speed plan): each mode's output against the first mode's "
        "output of the same job (the exact reference), PSNR and SSIM over the GENERATE pixels: the quality a "
        "speed mode costs; KEEP exact: every KEEP pixel equals the source; speed-up: the reference's "
        "generation seconds over this run's (same machine, same process).",
    ),
    (
        "SSIM",
        "Wang et al. 2004 on luminance (BT.601), Gaussian window sigma 1.5 (11x11), K1 0.01, K2 0.03, "
        "the window renormalised over the measured region so pixels outside it never count.",
    ),
    (
        "time, memory",
        "from each run's run.json: generation and total seconds; peak accelerator memory "
        "allocated by torch, or the process's peak resident memory on CPU.",
    ),
]
STYLE = """
body{font:15px/1.45 system-ui,-apple-system,"Segoe UI",sans-serif;color:#222;max-width:1180px;
margin:24px auto;padding:0 18px;background:#fafafa}
h1{font-size:26px;margin:0 0 6px}
h2{font-size:20px;margin:34px 0 6px;border-bottom:2px solid #ddd;padding-bottom:4px}
h3{font-size:16px;margin:18px 0 6px}.meta{color:#666;font-size:13px}
.notice{background:#fff6d6;border:1px solid #e6c74c;padding:10px 14px;border-radius:6px;margin:14px 0}
.card{background:#fff;border:1px solid #e2e2e2;border-radius:8px;padding:12px 16px;margin:12px 0}
.figs{display:flex;flex-wrap:wrap;gap:14px;align-items:flex-start}
figure{margin:0}figcaption{font-size:12px;color:#555;margin-top:3px;max-width:720px}
img{border:1px solid #ddd;max-width:100%}
details summary{cursor:pointer;color:#335;font-size:13px}
table{border-collapse:collapse;font-size:13px;margin:8px 0}
th,td{border:1px solid #ddd;padding:3px 7px;text-align:right}
th{background:#f0f0f0}td.l,th.l{text-align:left}
.error{color:#b00020}.warning{color:#a15c00}.info{color:#2a5db0}
ul.findings{padding-left:18px;margin:6px 0}ul.findings li{margin:3px 0}
code{background:#f1f1f1;padding:0 3px;border-radius:3px}
"""


# ------------------------------------------------------------------------------------------- pictures
def data_uri(data: bytes, mime: str) -> str:
    return f"data:{mime};base64,{base64.b64encode(data).decode('ascii')}"


def gif_uri(frames: np.ndarray, fps: float, *, max_width: int) -> str:
    """An animated GIF of ``frames`` [F, H, W, 3], downscaled to ``max_width``, as a data URI."""
    with tempfile.TemporaryDirectory(prefix="vacelab-report-") as tmp:
        path = Path(tmp) / "a.gif"
        media.write_gif(path, np.ascontiguousarray(frames), fps, max_width=max_width, colors=GIF_COLORS)
        return data_uri(path.read_bytes(), "image/gif")


def audit_uri(audit, label: str) -> str:
    """The audit picture (``audit.plot.draw_audit``) as a PNG data URI; ``label`` names the job in it.

    The findings are not repeated in the picture: the report lists them under it."""
    from PIL import Image

    from .audit.plot import draw_audit

    audit.source = {"job": label, **{k: v for k, v in audit.source.items() if k != "job"}}
    with tempfile.TemporaryDirectory(prefix="vacelab-report-") as tmp:
        path = Path(tmp) / "audit.png"
        draw_audit(audit, path, findings=False)
        with Image.open(path) as image:
            exact_palette(image.convert("RGB")).save(path, format="PNG", optimize=True)
        return data_uri(path.read_bytes(), "image/png")


def exact_palette(image):
    """``image`` as a palette image of its own 256 most used colours, kept exactly (the audit picture's
    fills and legend swatches); rarer colours (the edges of anti-aliased text) take the nearest."""
    from PIL import Image

    counts = image.getcolors(image.width * image.height)
    common = sorted(counts, key=lambda item: -item[0])[:256]
    palette = Image.new("P", (1, 1))
    palette.putpalette([channel for _, rgb in common for channel in rgb])
    return image.quantize(palette=palette, dither=Image.Dither.NONE)


def _panels(job, *extra: np.ndarray) -> tuple[np.ndarray, float]:
    """Source | conditioning with the GENERATE area tinted | ``extra`` videos, and their frame rate.

    Only about ``GIF_FRAMES`` evenly spread frames (and the last) at about twice the panel width are taken
    (the work is a fraction of the job's); the GIF writer then scales the whole smoothly to its width.
    """
    frames, width = job.video.shape[0], job.video.shape[2]
    step_t, step_s = max(1, math.ceil(frames / GIF_FRAMES)), max(1, width // (2 * PANEL_WIDTH))
    if step_t % 4 == 0:  # a stride of whole VAE groups would show one position of each group only
        step_t += 1
    times = np.unique(np.r_[np.arange(0, frames, step_t), frames - 1])  # the last frame too (lastframe)
    view = np.s_[times, ::step_s, ::step_s]
    given = mask_overlay(np.asarray(job.video)[view], job.mask[view])
    panels = side_by_side(job.source_frames()[view], given, *(np.asarray(v)[view] for v in extra))
    return panels, job.fps / step_t


def preview_uri(job) -> str:
    """Source | what the model is given (GENERATE tinted red)."""
    return gif_uri(*_panels(job), max_width=2 * PANEL_WIDTH + 4)


def refs_uri(job) -> str:
    """The job's reference images side by side, in the order the model gets them, as a PNG data URI."""
    from PIL import Image

    strip = [Image.fromarray(np.asarray(ref)) for ref in job.refs]
    strip = [im.resize((max(1, round(im.width * REF_HEIGHT / im.height)), REF_HEIGHT)) for im in strip]
    canvas = Image.new("RGB", (sum(im.width for im in strip) + 6 * (len(strip) - 1), REF_HEIGHT), "white")
    x = 0
    for im in strip:
        canvas.paste(im, (x, 0))
        x += im.width + 6
    with tempfile.TemporaryDirectory(prefix="vacelab-report-") as tmp:
        path = Path(tmp) / "refs.png"
        canvas.save(path, format="PNG", optimize=True)
        return data_uri(path.read_bytes(), "image/png")


def compare_uri(job, output: np.ndarray) -> str:
    """Source | what the model is given | the output."""
    return gif_uri(*_panels(job, output), max_width=3 * PANEL_WIDTH + 8)


# ---------------------------------------------------------------------------------------------- html
def esc(value) -> str:
    return html.escape(str(value), quote=True)


def figure(uri: str, caption: str) -> str:
    image = f'<img src="{uri}" alt="{esc(caption)}">'
    return f"<figure>{image}<figcaption>{html_text(caption)}</figcaption></figure>"


def fmt_metric(value) -> str:
    if isinstance(value, bool):
        return "yes" if value else "no"
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "–"
    if value == "inf" or (isinstance(value, float) and math.isinf(value)):
        return "∞ (exact)"
    return f"{value:.4f}" if abs(value) < 1.5 else f"{value:.2f}"


def fmt_memory(memory: dict) -> str:
    """Peak accelerator memory (torch's allocations), else the process's peak resident memory."""
    if memory.get("accelerator_bytes"):
        return f"{memory['accelerator_bytes'] / 1024**3:.2f} GiB GPU"
    if memory.get("cpu_rss_bytes"):
        return f"{memory['cpu_rss_bytes'] / 1024**3:.2f} GiB RSS"
    return "–"


def table(headers: list[str], rows: list[list[str]], left: int = 1) -> str:
    """An HTML table; the first ``left`` columns are left-aligned text, cells are already-escaped HTML."""
    head = "".join(f'<th class="l">{h}</th>' if i < left else f"<th>{h}</th>" for i, h in enumerate(headers))
    body = "".join(
        "<tr>"
        + "".join(f'<td class="l">{c}</td>' if i < left else f"<td>{c}</td>" for i, c in enumerate(r))
        + "</tr>"
        for r in rows
    )
    return f"<table><tr>{head}</tr>{body}</table>"


def _run_rows(runs: list[dict], *, with_variant: bool) -> tuple[list[str], list[list[str]]]:
    axes = list(dict.fromkeys(k for r in runs for k in r["axes"]))
    headers = ["run"] + (["job"] if with_variant else []) + [esc(a) for a in axes] + ["status"]
    headers += [label for _, label in METRIC_COLUMNS] + ["s/step", "generate s", "total s", "peak memory"]
    rows = []
    for r in runs:
        metrics, seconds, memory = r.get("metrics", {}), r.get("seconds", {}), r.get("peak_memory", {})
        status = esc(r["status"]) + (
            f'<br><span class="error">{esc(r["error"])}</span>' if r.get("error") else ""
        )
        rows.append(
            [esc(r["name"])]
            + ([esc(r["variant"])] if with_variant else [])
            + [esc(_axis_value(r["axes"].get(a))) for a in axes]
            + [status]
            + [fmt_metric(metrics.get(key)) for key, _ in METRIC_COLUMNS]
            + [fmt_metric(seconds.get(k)) for k in ("per_step", "generate", "total")]
            + [fmt_memory(memory)]
        )
    left = 2 + with_variant + len(axes)
    return headers, rows, left


def _axis_value(value) -> str:
    if value is None:
        return "–"
    text = str(value)
    return Path(text).name if "/" in text and Path(text).is_absolute() else text


def write_experiment_report(
    path, plan, variants, jobs: dict, record: dict, *, notice: str | None = None
) -> None:
    """Write the report of ``run_plan``: a summary, the runs table, then per job its pictures, findings
    and runs."""
    from .audit import audit_job
    from .result import load_result

    out = Path(path).parent
    runs = record.get("runs", [])
    audits = {}  # variant name -> {mask encoding: audit}, each encoding its runs use (else the default)
    for variant in variants:
        mine = [r for r in runs if r["variant"] == variant.name]
        encodings = list(dict.fromkeys(r["settings"]["mask_encoding"] for r in mine)) or ["reference"]
        audits[variant.name] = {e: audit_job(jobs[variant.name], encoding=e) for e in encodings}
    parts = [f"<h1>{esc(plan.title)}</h1>"]
    stamp = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    overrides = ", ".join(f"--{k} {_axis_value(v)}" for k, v in plan.overrides.items())
    parts.append(
        f'<p class="meta">vacelab {esc(__version__)} · {esc(stamp)} · plan {esc(plan.source)}'
        + (f" · overrides {esc(overrides)}" if overrides else "")
        + "</p>"
    )
    if plan.about:
        parts.append(f"<p>{html_text(plan.about)}</p>")
    if notice:
        parts.append(f'<div class="notice">{html_text(notice)}</div>')
    parts.append("<h2>At a glance</h2>" + _summary(variants, jobs, audits))
    made = [r for r in runs if r["status"] != "not run"]
    if made:
        headers, rows, left = _run_rows(made, with_variant=True)
        parts.append("<h2>All runs</h2>" + table(headers, rows, left))
    for job in plan.jobs:
        parts.append(f"<h2>{esc(job.title)}</h2>")
        if job.about:
            parts.append(f"<p>{html_text(job.about)}</p>")
        for variant in (v for v in variants if v.plan_job is job):
            mine = [r for r in runs if r["variant"] == variant.name]
            parts.append(
                _variant_html(variant, jobs[variant.name], audits[variant.name], mine, out, load_result)
            )
    if made:
        parts.append("<h2>What the numbers mean</h2><ul>")
        parts += [f"<li><b>{esc(name)}</b>: {html_text(text)}</li>" for name, text in DEFINITIONS]
        parts.append("</ul>")
    document = (
        f'<!DOCTYPE html><html lang="en"><head><meta charset="utf-8"><title>{esc(plan.title)}</title>'
        f"<style>{STYLE}</style></head><body>{''.join(parts)}</body></html>"
    )
    media.write_text(path, document)


def _summary(variants, jobs: dict, audits: dict) -> str:
    """One row per job and mask encoding: what it is, what the audit found, whether it reads as drawn."""
    rows = []
    for variant in variants:
        job = jobs[variant.name]
        for encoding, audit in audits[variant.name].items():
            count = {s: sum(f.severity == s for f in audit.findings) for s in ("error", "warning", "info")}
            codes = ", ".join(dict.fromkeys(f.code for f in audit.findings if f.severity != "info"))
            if count["error"]:
                verdict = '<span class="error">not read as drawn</span>'
            elif count["warning"]:
                verdict = '<span class="warning">usable, check the warnings</span>'
            else:
                verdict = "read as drawn"
            rows.append(
                [
                    f'<a href="#{esc(variant.name)}">{esc(variant.name)}</a>',
                    esc(job.task),
                    esc(encoding),
                    verdict,
                    esc(codes) or "–",
                    str(count["error"]),
                    str(count["warning"]),
                    str(count["info"]),
                ]
            )
    headers = ["job", "task", "mask encoding", "verdict", "codes (warnings and errors)", "errors", "warnings"]
    return table(headers + ["notes"], rows, left=5)


def _variant_html(variant, job, audits: dict, runs: list[dict], out: Path, load_result) -> str:
    axes = ", ".join(f"{k} = {v}" for k, v in variant.axes.items())
    g = job.geometry
    parts = [
        f'<div class="card" id="{esc(variant.name)}">',
        f"<h3>{esc(variant.name)}" + (f" <small>({esc(axes)})</small>" if axes else "") + "</h3>",
        f'<p class="meta">{esc(job.task)} · {g.frames} frames · {g.width}x{g.height} · {len(job.refs)} '
        f"reference image(s) · job folder <code>jobs/{esc(variant.name)}</code></p>",
    ]
    figures = [figure(preview_uri(job), "source | what the model is given (red = GENERATE)")]
    if job.refs:
        figures.append(
            figure(refs_uri(job), f"the {len(job.refs)} reference image(s), in the order the model gets them")
        )
    parts.append(f'<div class="figs">{"".join(figures)}</div>')
    for encoding, audit in audits.items():
        chart = figure(
            audit_uri(audit, f"jobs/{variant.name}"), f"what the model sees (mask encoding {encoding})"
        )
        parts.append(f"{chart}<p><b>Audit (mask encoding {esc(encoding)})</b></p>{formats.html_list(audit)}")
    if job.notes:
        notes = "".join(f"<li>{html_text(n)}</li>" for n in job.notes)
        parts.append(
            f"<details><summary>preparation notes ({len(job.notes)})</summary><ul>{notes}</ul></details>"
        )
    made = [r for r in runs if r["status"] != "not run"]
    if made:
        headers, rows, left = _run_rows(made, with_variant=False)
        parts.append(table(headers, rows, left))
        compares = [
            figure(
                compare_uri(job, load_result(out / "runs" / r["name"]).video),
                f"{r['name']}: source | given | output",
            )
            for r in made
            if r["status"] == "done"
        ]
        if compares:
            parts.append(f'<div class="figs">{"".join(compares)}</div>')
    parts.append("</div>")
    return "".join(parts)
