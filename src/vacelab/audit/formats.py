"""Every rendering of an audit report from one set of words: plain text (``vacelab audit``), markdown (the
web UI), HTML (the experiment report) and the picture's captions (:mod:`.plot`)."""

from __future__ import annotations

import html
import re
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .api import AuditReport
    from .findings import Finding

SEVERITY_WORDS = {"error": "Error", "warning": "Warning", "info": "Note"}
SEVERITY_MARKS = {"error": "✖ Error", "warning": "⚠ Warning", "info": "ℹ Info"}
CODE_LABELS = {  # the picture's column heads
    "BAD_GEOMETRY": "GEO",
    "MIXED_GROUP": "MIX",
    "MASK_SAMPLE_MISMATCH": "MSM",
    "PHASE_DRIFT": "PHD",
    "NO_ANCHOR": "NOA",
    "NO_SPATIAL_ANCHOR": "NSA",
    "THIN_MASK": "THN",
    "LONG_JOB": "LNG",
}


# ---------------------------------------------------------------------------------------------- words
def plural(count: int, word: str) -> str:
    return f"{count} {word}{'s' * (count != 1)}"


def pct(share: float) -> str:
    return f"{share:.0%}" if share >= 0.01 or share == 0 else "<1%"


def frames_text(values) -> str:
    """``frame 5`` / ``frames 1-4, 9``."""
    values = sorted(set(values))
    return f"frame{'s' * (len(values) != 1)} {format_ints(values)}"


def format_ints(values, limit: int = 8) -> str:
    """Compact list of integers: ``1-4, 9, 12, 16, ..., 28`` (runs and arithmetic progressions folded).

    More than ``limit`` parts are shortened to the first four, ``...`` and the last two.
    """
    values = sorted(set(int(v) for v in values))
    parts, i = [], 0
    while i < len(values):
        j = i + 1
        step = values[j] - values[i] if j < len(values) else 0
        while j + 1 < len(values) and values[j + 1] - values[j] == step:
            j += 1
        count = j - i + 1 if step else 1
        if step == 1 and count >= 2:
            parts.append(f"{values[i]}-{values[j]}")
        elif count >= 4:
            parts.append(f"{values[i]}, {values[i] + step}, ..., {values[j]}")
        else:
            parts.append(str(values[i]))
            j = i
        i = j + 1
    if len(parts) > limit:
        parts = [*parts[:4], "...", *parts[-2:]]
    return ", ".join(parts)


def where(finding: Finding, step_word: str = "step") -> str:
    """``steps 7-13; frames 25-52``: the latent steps and frames a finding concerns ('' when none)."""
    return "; ".join(
        f"{name}{'s' * (len(values) > 1)} {format_ints(values)}"
        for name, values in ((step_word, finding.latents), ("frame", finding.frames))
        if values
    )


def counts_line(report: AuditReport, info_word: str = "info") -> str:
    counts = report.counts()
    return f"{counts['error']} error(s), {counts['warning']} warning(s), {counts['info']} {info_word}"


# ---------------------------------------------------------------------------------------------- formats
TASK_READS = {  # what the model reads in a job that has no KEEP frames to anchor it, by task
    "control": "control job: the GENERATE area holds a control video drawn from the source (gray, edges, "
    "scribble, depth, pose or layout); the model follows its structure there and keeps the source where "
    "the mask is KEEP",
    "reference": "reference job: every frame is GENERATE; the model reads only the reference images and "
    "the prompt (no KEEP is expected)",
}


def text(report: AuditReport) -> str:
    """The human-readable report: geometry, the read table, then findings, worst first."""
    g = report.geometry
    lines = []
    if report.source:
        lines.append("audit of " + ", ".join(f"{k} {v}" for k, v in report.source.items()))
    refs = f" (+{g.ref_frames} reference step{'s' * (g.ref_frames != 1)})" if g.ref_frames else ""
    lines.append(
        f"geometry: {g.frames} frames x {g.width}x{g.height} px -> {g.latent_frames} latent steps{refs} "
        f"x {g.latent_width}x{g.latent_height} latents, {g.tokens:,} tokens; mask encoding {report.encoding}"
    )
    if report.source.get("task") in TASK_READS:
        lines.append(TASK_READS[report.source["task"]])
    lines += ["", "step  VAE group  mask read  KEEP read  KEEP group  note"]
    for s in report.latents:
        read = s.mask_frame if isinstance(s.mask_frame, int) else f"{s.mask_frame[0]}-{s.mask_frame[-1]}"
        group = f"{s.frames[0]}-{s.frames[-1]}" if len(s.frames) > 1 else str(s.frames[0])
        note = []
        if s.reads_outside:
            note.append("reads outside its group")
        if s.mixed:
            note.append("mixed group")
        if s.imposes_keep:
            note.append("KEEP read over GENERATE frames")
        keep = f"{s.keep_fraction:9.0%}  {s.group_keep_fraction:10.0%}"
        row = f"{s.index:4d}  {group:>9}  {read!s:>9}  {keep}"
        lines.append(f"{row}  {', '.join(note)}".rstrip())
    lines += ["", f"findings: {counts_line(report)}"]
    for f in report.findings:
        place = where(f)
        lines.append(f"{f.severity.upper():7s} {f.code}" + (f" ({place})" if place else ""))
        lines.append(f"        {f.message}")
    return "\n".join(lines)


def markdown(report: AuditReport) -> str:
    """The findings as markdown, worst first (the web UI)."""
    if not report.findings:
        return "**No findings**: every latent step sees the mask you drew."
    lines = [f"**{counts_line(report, 'note(s)')}** from the audit of what the model sees:"]
    for f in report.findings:
        place = where(f, "latent step")
        lines.append(
            f"- {SEVERITY_MARKS[f.severity]} **{f.code}**{f' ({place})' if place else ''}: {f.message}"
        )
    return "\n".join(lines)


def html_text(text) -> str:
    """``text`` escaped for HTML, its Markdown code spans (`like this`) as ``<code>``."""
    return re.sub(r"`([^`]+)`", r"<code>\1</code>", html.escape(str(text), quote=True))


def html_list(report: AuditReport) -> str:
    """The findings as an HTML list, worst first (the experiment report)."""
    if not report.findings:
        return "<p>The audit found nothing to warn about: the model reads this mask as drawn.</p>"
    items = "".join(
        f'<li><b class="{f.severity}">{SEVERITY_WORDS[f.severity]}</b> <code>{html.escape(f.code)}</code> '
        f"(column {CODE_LABELS[f.code]}): "
        f"{html_text(f.message)}</li>"
        for f in report.findings
    )
    return f'<ul class="findings">{items}</ul>'


def caption(finding: Finding) -> str:
    """One finding as the picture writes it under the grid."""
    return f"{finding.severity.upper()} {finding.code} [{CODE_LABELS[finding.code]}]: {finding.message}"
