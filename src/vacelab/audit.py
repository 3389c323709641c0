"""The latent-view audit: what Wan2.1 VACE will actually see of a job's mask, before any GPU time is spent.

The user draws a mask per frame; the model sees something else (see ``geometry``): the causal VAE encodes
frames ``0 | 1-4 | 5-8 | ...`` together, the mask is resampled in time with ``nearest-exact`` (81 frames
-> 21 steps reading frames 1, 5, ..., 25, 28, ...), and the DiT works on 16x16-pixel tokens. The audit
compares the two and reports each consequence as a finding with a plain-language message.

Pure numpy, no torch: the whole analysis runs on the bit-packed mask (8 pixels per byte), so an
81x480x832 job is audited in a few tens of milliseconds.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from . import geometry as geo
from .errors import InputError

SEVERITIES = ("error", "warning", "info")
CODES = (
    "BAD_GEOMETRY",
    "MASK_SAMPLE_MISMATCH",
    "MIXED_GROUP",
    "PHASE_DRIFT",
    "NO_ANCHOR",
    "NO_SPATIAL_ANCHOR",
    "THIN_MASK",
    "LONG_JOB",
)
NOTABLE = 0.01  # share of the frame below which a difference between masks is ignored
SEVERE = 0.10  # share of the frame from which mixing / a mismatch is a real problem
KEY_MARGIN = 0.10  # a frame is a KEEP-marked "key" frame when its KEEP share beats the median by this


# ------------------------------------------------------------------------------------------ report types
@dataclass
class Finding:
    """One problem (or expected quirk) the audit found, with the frames and latent steps it concerns."""

    code: str
    severity: str
    message: str
    frames: list[int] = field(default_factory=list)
    latents: list[int] = field(default_factory=list)
    details: dict = field(default_factory=dict)

    def to_dict(self) -> dict:
        return {
            "code": self.code,
            "severity": self.severity,
            "message": self.message,
            "frames": self.frames,
            "latents": self.latents,
            **self.details,
        }


@dataclass
class LatentStep:
    """One latent time step: the frames the VAE encodes into it and the mask the model reads for it."""

    index: int
    frames: list[int]
    mask_frame: int | list[int]  # the frame read (reference encoding) or the frames read (aligned)
    keep_fraction: float  # KEEP share of the mask the model reads for this step
    group_keep_fraction: float  # KEEP share over all pixels of the frames encoded into this step
    mixed_fraction: float  # share of pixels that are KEEP in some frames of the group and GENERATE in others
    imposed_fraction: float  # share read as KEEP although some frame of the group is GENERATE there
    has_keep: bool  # some frame of the group has a KEEP pixel (the inactive latent carries content)
    spatial_anchor: bool  # a whole 16x16 token is KEEP in every frame of the group

    @property
    def mixed(self) -> bool:
        return self.mixed_fraction >= NOTABLE

    def to_dict(self) -> dict:
        return {
            "index": self.index,
            "frames": self.frames,
            "mask_frame": self.mask_frame,
            "keep_fraction": round(self.keep_fraction, 4),
            "group_keep_fraction": round(self.group_keep_fraction, 4),
            "mixed": self.mixed,
            "mixed_fraction": round(self.mixed_fraction, 4),
            "imposed_fraction": round(self.imposed_fraction, 4),
            "has_keep": self.has_keep,
            "spatial_anchor": self.spatial_anchor,
        }


@dataclass
class AuditReport:
    """What the model sees of one mask: geometry, one row per latent step, per-frame KEEP and findings."""

    geometry: geo.Geometry
    encoding: str
    latents: list[LatentStep]
    frame_keep: list[float]  # KEEP share of each analysed frame
    findings: list[Finding]
    source: dict = field(default_factory=dict)

    @property
    def has_errors(self) -> bool:
        return any(f.severity == "error" for f in self.findings)

    def counts(self) -> dict[str, int]:
        return {s: sum(f.severity == s for f in self.findings) for s in SEVERITIES}

    def to_dict(self) -> dict:
        """The JSON object of ``vacelab audit --json`` (see docs/audit.md)."""
        return {
            "source": self.source,
            "geometry": self.geometry.as_dict(),
            "mask_encoding": self.encoding,
            "latents": [step.to_dict() for step in self.latents],
            "frame_keep_fraction": [round(k, 4) for k in self.frame_keep],
            "findings": [f.to_dict() for f in self.findings],
            "summary": self.counts(),
        }

    def text(self) -> str:
        """The human-readable report: geometry, the read table, then findings, worst first."""
        g = self.geometry
        lines = []
        if self.source:
            lines.append("audit of " + ", ".join(f"{k} {v}" for k, v in self.source.items()))
        refs = f" (+{g.ref_frames} reference step{'s' * (g.ref_frames != 1)})" if g.ref_frames else ""
        lines.append(
            f"geometry: {g.frames} frames x {g.height}x{g.width} px -> {g.latent_frames} latent steps{refs} "
            f"x {g.latent_height}x{g.latent_width} latents, {g.tokens:,} tokens; mask encoding "
            f"{self.encoding}"
        )
        lines.append("")
        lines.append("step  VAE group  mask read  KEEP read  KEEP group  note")
        for s in self.latents:
            read = s.mask_frame if isinstance(s.mask_frame, int) else f"{s.mask_frame[0]}-{s.mask_frame[-1]}"
            group = f"{s.frames[0]}-{s.frames[-1]}" if len(s.frames) > 1 else str(s.frames[0])
            note = []
            if isinstance(s.mask_frame, int) and s.mask_frame not in s.frames:
                note.append("reads outside its group")
            if s.mixed:
                note.append("mixed group")
            if s.imposed_fraction >= NOTABLE:
                note.append("KEEP read over GENERATE frames")
            keep = f"{s.keep_fraction:9.0%}  {s.group_keep_fraction:10.0%}"
            row = f"{s.index:4d}  {group:>9}  {read!s:>9}  {keep}"
            lines.append(f"{row}  {', '.join(note)}".rstrip())
        counts = self.counts()
        lines.append("")
        lines.append(
            f"findings: {counts['error']} error(s), {counts['warning']} warning(s), {counts['info']} info"
        )
        for f in self.findings:
            where = []
            for name, values in (("step", f.latents), ("frame", f.frames)):
                if values:
                    where.append(f"{name}{'s' * (len(values) > 1)} {format_ints(values)}")
            lines.append(f"{f.severity.upper():7s} {f.code}" + (f" ({'; '.join(where)})" if where else ""))
            lines.append(f"        {f.message}")
        return "\n".join(lines)


# ------------------------------------------------------------------------------------------ public API
def audit_job(job, *, encoding: str = "reference", window: int | None = None) -> AuditReport:
    """Audit a :class:`vacelab.job.Job` (its mask, reference count and video size).

    A long job runs window by window; ``window`` picks the one to audit (default: the first).
    """
    report = audit_arrays(
        job.mask,
        ref_frames=len(job.refs),
        encoding=encoding,
        video_shape=tuple(job.video.shape[:3]),
        windows=job.windows,
        window=window,
    )
    report.source = {"job": str(job.path) if job.path else "(in memory)", "task": job.task, **report.source}
    return report


def audit_arrays(
    mask: np.ndarray,
    *,
    ref_frames: int = 0,
    encoding: str = "reference",
    video_shape: tuple[int, int, int] | None = None,
    windows: list[tuple[int, int]] | None = None,
    window: int | None = None,
) -> AuditReport:
    """Audit a mask bool [F, H, W] (True = GENERATE) with ``ref_frames`` reference images.

    ``video_shape`` (F, H, W) of the conditioning video, when known, is checked against the mask.
    A bad geometry is reported as ``BAD_GEOMETRY``; the other findings then describe the part the model
    could use (the first 4k+1 frames, the top-left multiple of 16 pixels). ``windows`` (a long job's
    ``[(start, stop), ...]``) and ``window`` audit one window exactly as ``vacelab run`` conditions it
    (``geometry.Window.mask``: the kept head KEEP); its frames are counted from its start.
    """
    if encoding not in geo.MASK_ENCODINGS:
        raise InputError(
            f"choose from {', '.join(geo.MASK_ENCODINGS)}", field="mask_encoding", value=encoding
        )
    mask = _as_bool_mask(mask)
    source, extra = {}, []
    plan = geo.WindowPlan.of(windows, mask.shape[0])
    if plan.is_long or window is not None:
        part = plan.window(window)
        index, count, start, stop, head = part.index, part.count, part.start, part.stop, part.head
        mask = part.mask(mask)  # exactly what `vacelab run` gives the model
        if video_shape is not None:
            video_shape = (min(video_shape[0], stop) - start, *video_shape[1:])
        kept = f"; kept head frames 0-{head - 1} (clip {start}-{start + head - 1}) KEEP" if head else ""
        source["window"] = (
            f"{index} of {count} (clip frames {start}-{stop - 1}; frames below count from {start}{kept})"
        )
        if count > 1:
            context = (
                f" Its first {head} frames (clip frames {start}-{start + head - 1}) are the kept head: "
                "`vacelab run` fills them with the output so far and marks them KEEP, and so does this "
                "report."
                if head
                else ""
            )
            extra.append(
                Finding(
                    "LONG_JOB",
                    "info",
                    f"This long job runs in {count} windows, each seen by the model as a clip of its own. "
                    f"This report is window {index} (clip frames {start}-{stop - 1}), frames counted from "
                    f"its start.{context} Audit the others with --window 0-{count - 1}.",
                    details={
                        "window": index,
                        "windows": count,
                        "clip_frames": [start, stop - 1],
                        "kept_head": head,
                    },
                )
            )
    frames, height, width = mask.shape
    geometry = geo.Geometry(frames=frames, height=height, width=width, ref_frames=ref_frames)
    usable = ((frames - 1) // geo.VAE_STRIDE_T * geo.VAE_STRIDE_T + 1, height // geo.TOKEN_PX * geo.TOKEN_PX)
    usable += (width // geo.TOKEN_PX * geo.TOKEN_PX,)
    if min(usable) <= 0:
        raise InputError(f"mask of {width}x{height} px is too small to audit (at least 16x16 px needed)")
    findings = _geometry_findings(geometry, usable, video_shape)
    packed = np.packbits(mask[: usable[0], : usable[1], : usable[2]], axis=-1)
    analysis = _Analysis(packed, usable, encoding)
    findings += analysis.findings() + extra
    findings.sort(key=lambda f: (SEVERITIES.index(f.severity), CODES.index(f.code)))
    return AuditReport(
        geometry=geometry,
        encoding=encoding,
        latents=analysis.steps,
        frame_keep=[float(k) for k in analysis.frame_keep],
        findings=findings,
        source=source,
    )


def save_mask_latent(path: str | Path, mask: np.ndarray, *, ref_frames: int = 0, encoding: str = "reference"):
    """Write the exact conditioning mask tensor, float32 [64, R + T, H/8, W/8], as ``.npy`` (atomically)."""
    from . import media

    mask = _as_bool_mask(mask)
    problems = geo.Geometry(*mask.shape).problems()
    if problems:
        raise InputError(
            f"bad geometry, nothing written ({problems[0]})", field="save_mask_latent", value=path
        )
    media.save_array(path, geo.mask_latent(mask, ref_frames=ref_frames, encoding=encoding))


# ------------------------------------------------------------------------------------------ formatting
def _plural(count: int, word: str) -> str:
    return f"{count} {word}{'s' * (count != 1)}"


def _frames(values) -> str:
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


def _runs(flags) -> list[tuple[int, int]]:
    """Inclusive (first, last) index runs where ``flags`` is true."""
    runs, start = [], None
    for i, flag in enumerate(list(flags) + [False]):
        if flag and start is None:
            start = i
        elif not flag and start is not None:
            runs.append((start, i - 1))
            start = None
    return runs


def _pct(share: float) -> str:
    return f"{share:.0%}" if share >= 0.01 or share == 0 else "<1%"


# ------------------------------------------------------------------------------------------ analysis
def _as_bool_mask(mask) -> np.ndarray:
    mask = np.asarray(mask)
    if mask.ndim != 3:
        raise InputError(f"mask must be [frames, height, width], got shape {list(mask.shape)}")
    if mask.dtype != bool:
        if not np.isin(mask, (0, 1)).all():
            raise InputError("mask must be binary (bool or 0/1; True/1 = GENERATE)")
        mask = mask.astype(bool)
    return mask


def _geometry_findings(geometry: geo.Geometry, usable, video_shape) -> list[Finding]:
    findings = []
    scope = ""
    if usable != (geometry.frames, geometry.height, geometry.width):
        scope = (
            f" The rest of this report describes frames 0-{usable[0] - 1} at {usable[2]}x{usable[1]} px "
            "(what the model could use)."
        )
    for problem in geometry.problems():
        dropped = (
            list(range(usable[0], geometry.frames)) if problem.startswith(f"{geometry.frames} frames") else []
        )
        findings.append(
            Finding(
                "BAD_GEOMETRY",
                "error",
                f"{problem[0].upper()}{problem[1:]}; prepare the job again.{scope}",
                frames=dropped,
            )
        )
    if video_shape is not None and tuple(video_shape) != (geometry.frames, geometry.height, geometry.width):
        vf, vh, vw = video_shape
        findings.append(
            Finding(
                "BAD_GEOMETRY",
                "error",
                f"The video ({vf} frames, {vw}x{vh}) and the mask ({geometry.frames} frames, "
                f"{geometry.width}x{geometry.height}) differ: the pipeline needs both the same length and "
                "size "
                "(diffusers crashes on a longer video and resizes a mask of another size). Make them "
                f"match.{scope}",
            )
        )
    return findings


def _popcount(bits: np.ndarray, axis=None) -> np.ndarray:
    return np.bitwise_count(bits).sum(axis=axis, dtype=np.int64)


def _keep_token(packed: np.ndarray, height: int, width: int) -> np.ndarray:
    """Per leading index of ``packed`` [..., H, W/8]: whether a whole 16x16 token is KEEP (bits all 0)."""
    lead = packed.shape[:-2]
    columns = np.ascontiguousarray(packed).view(np.uint16)  # one token column (16 px) per element
    rows = np.bitwise_or.reduce(columns.reshape(*lead, height // geo.TOKEN_PX, geo.TOKEN_PX, -1), axis=-2)
    return (rows == 0).reshape(*lead, -1).any(axis=-1)


def _dilate3(blocks: np.ndarray) -> np.ndarray:
    """3x3 dilation of bool [..., h, w] on the block grid."""
    padded = np.pad(blocks, [(0, 0)] * (blocks.ndim - 2) + [(1, 1), (1, 1)])
    h, w = blocks.shape[-2:]
    out = np.zeros_like(blocks)
    for dy in range(3):
        for dx in range(3):
            out |= padded[..., dy : dy + h, dx : dx + w]
    return out


class _Analysis:
    """All findings but BAD_GEOMETRY, computed on the bit-packed GENERATE mask [F, H, W/8]."""

    def __init__(self, packed: np.ndarray, shape: tuple[int, int, int], encoding: str):
        self.packed = packed
        self.frames, self.height, self.width = shape
        self.encoding = encoding
        self.area = self.height * self.width
        self.groups = [list(g) for g in geo.vae_groups(self.frames)]
        self.reads = geo.read_frames_for(self.frames, encoding)
        self.read_set = {f for r in self.reads for f in r}
        self.frame_keep = 1.0 - _popcount(packed.reshape(self.frames, -1), axis=1) / self.area
        # Frames holding a KEEP region at least one token thick: what the model can anchor on.
        self.frame_anchor = _keep_token(packed, self.height, self.width)
        self.lost: dict[int, float] = {}  # frame -> share of it that is KEEP but read as GENERATE
        self.steps = [self._step(t) for t in range(len(self.groups))]

    def _step(self, t: int) -> LatentStep:
        group = self.groups[t]
        bits = self.packed[group]
        union = np.bitwise_or.reduce(bits, axis=0)  # GENERATE in some frame of the group
        inter = np.bitwise_and.reduce(bits, axis=0)  # GENERATE in every frame of the group
        read = self.packed[self.reads[t][0]] if self.encoding == "reference" else union
        for f in group:
            self.lost[f] = _popcount(~self.packed[f] & read) / self.area
        return LatentStep(
            index=t,
            frames=group,
            mask_frame=self.reads[t][0] if self.encoding == "reference" else self.reads[t],
            keep_fraction=float(1.0 - _popcount(read) / self.area),
            group_keep_fraction=float(self.frame_keep[group].mean()),
            mixed_fraction=float(_popcount(union & ~inter) / self.area),
            imposed_fraction=float(_popcount(~read & union) / self.area),
            has_keep=bool(_popcount(inter) < self.area),
            spatial_anchor=bool(_keep_token(union, self.height, self.width)),
        )

    # -------------------------------------------------------------------------------------- helpers
    def span(self, steps) -> str:
        """``steps 7-13 (frames 25-52)`` for a set of latent steps."""
        frames = [f for t in steps for f in self.groups[t]]
        return f"step{'s' * (len(steps) > 1)} {format_ints(steps)} ({_frames(frames)})"

    def frames_of(self, steps) -> list[int]:
        return [f for t in steps for f in self.groups[t]]

    def key_runs(self) -> list[tuple[int, int]]:
        """Runs of frames marked KEEP clearly more than the typical frame (keyframes, kept clips)."""
        keep = self.frame_keep
        return _runs(keep >= min(np.median(keep) + KEY_MARGIN, 1.0)) if keep.max() > 0 else []

    def findings(self) -> list[Finding]:
        return [
            *self.mixed_group(),
            *self.mask_sample_mismatch(),
            *self.phase_drift(),
            *self.anchors(),
            *self.thin_mask(),
        ]

    # -------------------------------------------------------------------------------------- findings
    def mixed_group(self) -> list[Finding]:
        steps = [s.index for s in self.steps if s.mixed]
        if not steps:
            return []
        worst = max(self.steps[t].mixed_fraction for t in steps)
        if steps == [len(self.steps) - 1] and self.last_frame_pattern():
            severity = "info"
            message = (
                f"The last frame is encoded together with frames {format_ints(self.groups[-1][:-1])} "
                "(GENERATE) into the last latent step, so it survives only as part of a blend - the mask "
                "VACE's own last-frame and first/last-frame tasks produce."
            )
        elif worst >= SEVERE:
            severity = "warning"
            message = (
                f"In {self.span(steps)} the VAE encodes KEEP and GENERATE frames into one latent (up to "
                f"{_pct(worst)} of the frame switches between KEEP and GENERATE inside a group of 4): it "
                "blends the kept content with the gray fill, so kept frames come back softened or grayed and "
                "the frames around them start from a blend. Make KEEP/GENERATE uniform over each VAE group "
                "(frames 0 | 1-4 | 5-8 | ...); for keyframes use --strategy aligned."
            )
        else:
            severity = "info"
            message = (
                f"In {self.span(steps)} the mask changes a little inside VAE groups (up to {_pct(worst)} of "
                "the frame, e.g. the edges of a moving mask); the VAE blends those pixels over 4 frames. "
                "Usually harmless; grow the mask a few pixels if edges ghost."
            )
        return [
            Finding(
                "MIXED_GROUP",
                severity,
                message,
                self.frames_of(steps),
                steps,
                {"max_mixed_fraction": round(worst, 4)},
            )
        ]

    def mask_sample_mismatch(self) -> list[Finding]:
        out = []
        lost = {f: share for f, share in self.lost.items() if share >= NOTABLE}
        if 0 in lost and self.reads[0] != [0]:
            out.append(
                Finding(
                    "MASK_SAMPLE_MISMATCH",
                    "info",
                    f"Frame 0's mask is never read: for step 0 the model reads frame {self.reads[0][0]}'s "
                    f"mask, which says GENERATE on {_pct(lost[0])} of the frame where frame 0 is KEEP. "
                    "Frame 0 still reaches the model through the inactive latent - the first-frame pattern "
                    "VACE was trained on, so this is expected and needs no change.",
                    [0],
                    [0],
                    {"lost_keep_fraction": round(float(lost.pop(0)), 4)},
                )
            )
        last = self.frames - 1
        if last in lost and self.last_frame_pattern():
            out.append(
                Finding(
                    "MASK_SAMPLE_MISMATCH",
                    "info",
                    f"The last frame ({last}) is KEEP but the model reads frame {self.reads[-1][0]}'s mask "
                    "(GENERATE) for its step: it reaches the model only through the inactive latent. This is "
                    "the mask VACE's own last-frame and first/last-frame tasks produce.",
                    [last],
                    [len(self.steps) - 1],
                    {"lost_keep_fraction": round(float(lost.pop(last)), 4)},
                )
            )
        if lost:
            frames = sorted(lost)
            steps = sorted({self.step_of(f) for f in frames})
            worst = max(lost.values())
            details = {"lost_keep_fraction": {str(f): round(float(lost[f]), 4) for f in frames}}
            if worst < SEVERE:
                message = (
                    f"For {_frames(frames)} the mask the model reads says GENERATE on up to "
                    f"{_pct(worst)} of the frame where the frame itself is KEEP (typically the edge of a "
                    "moving mask): the model regenerates a slightly larger area there. Usually harmless."
                )
                out.append(Finding("MASK_SAMPLE_MISMATCH", "info", message, frames, steps, details))
                return out + self.imposed()
            unread = [f for f in frames if f not in self.read_set]
            never = ""
            if unread:
                which = (
                    "their masks are"
                    if unread == frames
                    else f"the masks of frames {format_ints(unread)} are"
                )
                never = f" ({which} never read at all)"
            message = (
                f"Frames {format_ints(frames)} are marked KEEP (up to {_pct(worst)} of the frame), but the "
                f"mask the model reads for their latent step says GENERATE there{never}: the model will "
                "regenerate them, with the kept content only as a hint in the inactive latent. "
                f"{self.advice(steps)}"
            )
            out.append(Finding("MASK_SAMPLE_MISMATCH", "warning", message, frames, steps, details))
        return out + self.imposed()

    def imposed(self) -> list[Finding]:
        """Steps that read KEEP where frames of their own group are GENERATE (reference encoding only)."""
        out = []
        imposed = [s.index for s in self.steps if s.imposed_fraction >= NOTABLE]  # reference encoding only
        if imposed:
            worst = max(self.steps[t].imposed_fraction for t in imposed)
            reads = [self.steps[t].mask_frame for t in imposed]
            where = f"For {self.span(imposed)} the model reads KEEP from {_frames(reads)}"
            if worst >= SEVERE:
                severity = "error"
                message = (
                    f"{where} over up to {_pct(worst)} of the frame where frames of the step's own VAE group "
                    "are GENERATE (gray fill): it will faithfully keep the blend of kept and gray frames, so "
                    f"these frames come out degraded toward gray. {self.advice(imposed)}"
                )
            else:
                severity = "warning"
                message = (
                    f"{where} over up to {_pct(worst)} of the frame where a frame of the step's own VAE "
                    "group is GENERATE (typically the edge of a moving mask): those pixels are kept as a "
                    "blend and can leave a ghost of what should be replaced. Grow the mask (e.g. --grow 8) "
                    "or run with --mask-encoding aligned."
                )
            out.append(
                Finding(
                    "MASK_SAMPLE_MISMATCH",
                    severity,
                    message,
                    self.frames_of(imposed),
                    imposed,
                    {"max_imposed_fraction": round(worst, 4)},
                )
            )
        return out

    def advice(self, steps) -> str:
        """What to change for mismatched steps: uniform groups and/or reading each step's own group."""
        mixed = any(self.steps[t].mixed for t in steps)
        outside = [
            t for t in steps if self.encoding == "reference" and self.reads[t][0] not in self.groups[t]
        ]
        tips = []
        if mixed:
            tips.append("make KEEP/GENERATE uniform over each VAE group (for keyframes: --strategy aligned)")
        if outside:
            tips.append(
                "run with --mask-encoding aligned, which reads each step's own group (for step"
                f"{'s' * (len(outside) > 1)} {format_ints(outside)} the frame read lies in the next group)"
            )
        elif self.encoding == "reference":
            tips.append("run with --mask-encoding aligned, which reads each step's own group")
        text = "; or ".join(tips)
        return text[0].upper() + text[1:] + "."

    def last_frame_pattern(self) -> bool:
        """Only the first frames and the last frame are KEEP (VACE's last-frame / first-last-frame tasks)."""
        runs = _runs(self.frame_keep > 0)
        last = self.frames - 1
        return (
            bool(runs)
            and runs[-1] == (last, last)
            and (len(runs) == 1 or (len(runs) == 2 and runs[0][0] == 0))
        )

    def step_of(self, frame: int) -> int:
        return 0 if frame == 0 else (frame + geo.VAE_STRIDE_T - 1) // geo.VAE_STRIDE_T

    def phase_drift(self) -> list[Finding]:
        runs = self.key_runs()
        if self.encoding != "reference" or len(runs) < 3:
            return []
        gaps = np.diff([r[0] for r in runs])
        if gaps.max() - gaps.min() > 1:
            return []  # not periodic
        phase = [any(f in self.read_set for f in range(a, b + 1)) for a, b in runs]
        if all(phase) or not any(phase):
            return []
        stretches = {True: [], False: []}  # in phase / out of phase: (first step, last step)
        i = 0
        while i < len(runs):
            j = i
            while j + 1 < len(runs) and phase[j + 1] == phase[i]:
                j += 1
            stretches[phase[i]].append((self.step_of(runs[i][0]), self.step_of(runs[j][1])))
            i = j + 1

        def describe(spans):
            return ", ".join(
                f"frames {self.groups[a][0]}-{self.groups[b][-1]} (steps {a}-{b})"
                if a != b
                else f"frames {self.groups[a][0]}-{self.groups[a][-1]} (step {a})"
                for a, b in spans
            )

        period = float(np.median(gaps))
        period_text = f"{period:g}"
        message = (
            f"The KEEP frames repeat every {period_text} frames but the mask read positions step by 4 with "
            "occasional steps of 3 (nearest-exact resampling), so the two drift in and out of phase. In "
            "phase "
            f"(a KEEP frame is the one read; its whole VAE group is kept): {describe(stretches[True])}. "
            "Out of "
            f"phase (the KEEP frame is not read; it is regenerated): {describe(stretches[False])}. "
            "Expect the "
            "two stretches to fail differently. Use --strategy aligned so that every group is uniform "
            "and the "
            "read position no longer matters."
        )
        frames = [f for a, b in runs for f in range(a, b + 1)]
        details = {
            "period": period,
            "in_phase": [[self.groups[a][0], self.groups[b][-1]] for a, b in stretches[True]],
            "out_of_phase": [[self.groups[a][0], self.groups[b][-1]] for a, b in stretches[False]],
        }
        steps = sorted({self.step_of(f) for f in frames})
        return [Finding("PHASE_DRIFT", "warning", message, frames, steps, details)]

    def anchors(self) -> list[Finding]:
        runs = _runs(self.frame_anchor)  # temporal anchors: runs of frames with a token-thick KEEP region
        if len(runs) < 2:
            return []
        last_frame = self.frames - 1
        trained = len(runs) == 2 and runs[0][0] == 0 and runs[1][1] == last_frame  # first/last-frame pattern
        severity = "info" if trained else "warning"
        pattern = " This is the first/last-frame pattern VACE was trained on." if trained else ""
        out = []
        first, last = self.step_of(runs[0][0]), self.step_of(runs[-1][1])
        empty = [t for t in range(first, last + 1) if not self.steps[t].has_keep]
        if empty:
            gaps = [b - a + 1 for a, b in _runs([t in empty for t in range(len(self.steps))])]
            out.append(
                Finding(
                    "NO_ANCHOR",
                    severity,
                    f"{self.span(empty)[0].upper()}{self.span(empty)[1:]} hold no KEEP pixel at all between "
                    f"anchors (gaps of up to {_plural(max(gaps), 'step')} = {max(gaps) * 4} frames): the "
                    "inactive input is zero there, attention has nothing to copy from, and the model must "
                    "invent these frames."
                    + (
                        pattern
                        or " Put KEEP frames closer together, add a spatial anchor (--strategy anchor "
                        "--anchor-px 16 keeps a strip) or use the 14B model."
                    ),
                    self.frames_of(empty),
                    empty,
                )
            )
        bare = [t for t in range(first, last + 1) if not self.steps[t].spatial_anchor]
        if bare:
            out.append(
                Finding(
                    "NO_SPATIAL_ANCHOR",
                    severity,
                    f"{self.span(bare)[0].upper()}{self.span(bare)[1:]} have no KEEP region at least one "
                    "token "
                    "(16x16 px) thick that stays KEEP through their VAE group: the model has only scattered "
                    "frames to hold on to, which it does poorly (temporal interpolation is VACE's weak spot)."
                    + (
                        pattern
                        or " A KEEP strip of 16 px or more in every frame (--strategy anchor --anchor-px 16) "
                        "stabilises it."
                    ),
                    self.frames_of(bare),
                    bare,
                )
            )
        return out

    def thin_mask(self) -> list[Finding]:
        out = []
        f, h, w = self.frames, self.height // geo.VAE_STRIDE_S, self.width // geo.VAE_STRIDE_S
        rows = self.packed.reshape(f, h, geo.VAE_STRIDE_S, w)
        some = np.bitwise_or.reduce(rows, axis=2) != 0  # 8x8 block holds a GENERATE pixel
        full = np.bitwise_and.reduce(rows, axis=2) == 255  # 8x8 block is all GENERATE
        for part, any8, all8 in (("GENERATE", some, full), ("KEEP", ~full, ~some)):
            thin8 = any8 & ~all8 & ~_dilate3(all8)
            any16 = any8.reshape(f, h // 2, 2, w // 2, 2).any(axis=(2, 4))
            all16 = all8.reshape(f, h // 2, 2, w // 2, 2).all(axis=(2, 4))
            thin16 = any16 & ~all16 & ~_dilate3(all16)
            if thin8.any():
                severity, blocks, scale, size = "warning", thin8, geo.VAE_STRIDE_S, "one 8x8 latent pixel"
            elif thin16.any():
                severity, blocks, scale, size = "info", thin16, geo.TOKEN_PX, "one 16x16 token"
            else:
                continue
            frames = np.flatnonzero(blocks.any(axis=(1, 2))).tolist()
            ys, xs = np.nonzero(blocks.any(axis=0))
            bbox = [
                int(xs.min()) * scale,
                int(ys.min()) * scale,
                (int(xs.max()) + 1) * scale,
                (int(ys.max()) + 1) * scale,
            ]
            if part == "GENERATE":
                effect = (
                    "the VAE blends them with their KEEP surroundings, so fine GENERATE details (hair tips, "
                    "fingertips) are mostly kept instead of replaced. Grow the mask (e.g. --grow 8) so each "
                    "part covers whole 8x8 blocks, ideally 16 px tokens."
                )
            else:
                effect = (
                    "the VAE blends them with the GENERATE fill, so the model cannot keep them reliably. "
                    "Make KEEP parts at least 16 px thick or include them in the GENERATE area."
                )
            out.append(
                Finding(
                    "THIN_MASK",
                    severity,
                    f"{part} parts too thin to fill {size} in frames {format_ints(frames)} (within x "
                    f"{bbox[0]}-"
                    f"{bbox[2]}, y {bbox[1]}-{bbox[3]} px): {effect}",
                    frames,
                    sorted({self.step_of(i) for i in frames}),
                    {"part": part.lower(), "bbox": bbox, "thin_blocks": int(blocks.sum()), "block_px": scale},
                )
            )
        return out
