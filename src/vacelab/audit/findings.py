"""The audit's findings: codes, severities and the plain-language message of each, from the numbers of
:mod:`.analysis`. Each finding says what the model will do with the mask and what to change."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from .. import geometry as geo
from .analysis import NOTABLE, SEVERE, MaskAnalysis, runs
from .formats import format_ints, frames_text, pct, plural

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


def mask_findings(seen: MaskAnalysis) -> list[Finding]:
    """Every finding about the mask the model reads (all codes but BAD_GEOMETRY and LONG_JOB)."""
    return [
        *mixed_group(seen),
        *mask_sample_mismatch(seen),
        *phase_drift(seen),
        *anchors(seen),
        *thin_mask(seen),
    ]


def sort_findings(findings: list[Finding]) -> list[Finding]:
    """Worst first, then in the order of :data:`CODES`."""
    return sorted(findings, key=lambda f: (SEVERITIES.index(f.severity), CODES.index(f.code)))


def geometry_findings(geometry: geo.Geometry, usable, video_shape) -> list[Finding]:
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


def span(seen: MaskAnalysis, steps) -> str:
    """``steps 7-13 (frames 25-52)`` for a set of latent steps."""
    return f"step{'s' * (len(steps) > 1)} {format_ints(steps)} ({frames_text(seen.frames_of(steps))})"


def advice(seen: MaskAnalysis, steps) -> str:
    """What to change for mismatched steps: uniform groups and/or reading each step's own group."""
    mixed = any(seen.steps[t].mixed for t in steps)
    outside = [t for t in steps if seen.encoding == "reference" and seen.reads[t][0] not in seen.groups[t]]
    tips = []
    if mixed:
        tips.append("make KEEP/GENERATE uniform over each VAE group (for keyframes: --strategy aligned)")
    if outside:
        tips.append(
            "run with --mask-encoding aligned, which reads each step's own group (for step"
            f"{'s' * (len(outside) > 1)} {format_ints(outside)} the frame read lies in the next group)"
        )
    elif seen.encoding == "reference":
        tips.append("run with --mask-encoding aligned, which reads each step's own group")
    text = "; or ".join(tips)
    return text[0].upper() + text[1:] + "."


def mixed_group(seen: MaskAnalysis) -> list[Finding]:
    steps = [s.index for s in seen.steps if s.mixed]
    if not steps:
        return []
    worst = max(seen.steps[t].mixed_fraction for t in steps)
    if steps == [len(seen.steps) - 1] and seen.last_frame_pattern():
        severity = "info"
        message = (
            f"The last frame is encoded together with frames {format_ints(seen.groups[-1][:-1])} "
            "(GENERATE) into the last latent step, so it survives only as part of a blend - the mask "
            "VACE's own last-frame and first/last-frame tasks produce."
        )
    elif worst >= SEVERE:
        severity = "warning"
        message = (
            f"In {span(seen, steps)} the VAE encodes KEEP and GENERATE frames into one latent (up to "
            f"{pct(worst)} of the frame switches between KEEP and GENERATE inside a group of 4): it "
            "blends the kept content with the gray fill, so kept frames come back softened or grayed and "
            "the frames around them start from a blend. Make KEEP/GENERATE uniform over each VAE group "
            "(frames 0 | 1-4 | 5-8 | ...); for keyframes use --strategy aligned."
        )
    else:
        severity = "info"
        message = (
            f"In {span(seen, steps)} the mask changes a little inside VAE groups (up to {pct(worst)} of "
            "the frame, e.g. the edges of a moving mask); the VAE blends those pixels over 4 frames. "
            "Usually harmless; grow the mask a few pixels if edges ghost."
        )
    return [
        Finding(
            "MIXED_GROUP",
            severity,
            message,
            seen.frames_of(steps),
            steps,
            {"max_mixed_fraction": round(worst, 4)},
        )
    ]


def mask_sample_mismatch(seen: MaskAnalysis) -> list[Finding]:
    out = []
    lost = {f: share for f, share in seen.lost.items() if share >= NOTABLE}
    if 0 in lost and seen.reads[0] != [0]:
        out.append(
            Finding(
                "MASK_SAMPLE_MISMATCH",
                "info",
                f"Frame 0's mask is never read: for step 0 the model reads frame {seen.reads[0][0]}'s "
                f"mask, which says GENERATE on {pct(lost[0])} of the frame where frame 0 is KEEP. "
                "Frame 0 still reaches the model through the inactive latent - the first-frame pattern "
                "VACE was trained on, so this is expected and needs no change.",
                [0],
                [0],
                {"lost_keep_fraction": round(float(lost.pop(0)), 4)},
            )
        )
    last = seen.frames - 1
    if last in lost and seen.last_frame_pattern():
        out.append(
            Finding(
                "MASK_SAMPLE_MISMATCH",
                "info",
                f"The last frame ({last}) is KEEP but the model reads frame {seen.reads[-1][0]}'s mask "
                "(GENERATE) for its step: it reaches the model only through the inactive latent. This is "
                "the mask VACE's own last-frame and first/last-frame tasks produce.",
                [last],
                [len(seen.steps) - 1],
                {"lost_keep_fraction": round(float(lost.pop(last)), 4)},
            )
        )
    if lost:
        frames = sorted(lost)
        steps = sorted({seen.step_of(f) for f in frames})
        worst = max(lost.values())
        details = {"lost_keep_fraction": {str(f): round(float(lost[f]), 4) for f in frames}}
        if worst < SEVERE:
            message = (
                f"For {frames_text(frames)} the mask the model reads says GENERATE on up to "
                f"{pct(worst)} of the frame where the frame itself is KEEP (typically the edge of a "
                "moving mask): the model regenerates a slightly larger area there. Usually harmless."
            )
            out.append(Finding("MASK_SAMPLE_MISMATCH", "info", message, frames, steps, details))
            return out + imposed(seen)
        unread = [f for f in frames if f not in seen.read_set]
        never = ""
        if unread:
            which = (
                "their masks are" if unread == frames else f"the masks of frames {format_ints(unread)} are"
            )
            never = f" ({which} never read at all)"
        message = (
            f"Frames {format_ints(frames)} are marked KEEP (up to {pct(worst)} of the frame), but the "
            f"mask the model reads for their latent step says GENERATE there{never}: the model will "
            "regenerate them, with the kept content only as a hint in the inactive latent. "
            f"{advice(seen, steps)}"
        )
        out.append(Finding("MASK_SAMPLE_MISMATCH", "warning", message, frames, steps, details))
    return out + imposed(seen)


def imposed(seen: MaskAnalysis) -> list[Finding]:
    """Steps that read KEEP where frames of their own group are GENERATE (reference encoding only)."""
    out = []
    imposed = [s.index for s in seen.steps if s.imposes_keep]  # reference encoding only
    if imposed:
        worst = max(seen.steps[t].imposed_fraction for t in imposed)
        reads = [seen.steps[t].mask_frame for t in imposed]
        where = f"For {span(seen, imposed)} the model reads KEEP from {frames_text(reads)}"
        if worst >= SEVERE:
            severity = "error"
            message = (
                f"{where} over up to {pct(worst)} of the frame where frames of the step's own VAE group "
                "are GENERATE (gray fill): it will faithfully keep the blend of kept and gray frames, so "
                f"these frames come out degraded toward gray. {advice(seen, imposed)}"
            )
        else:
            severity = "warning"
            message = (
                f"{where} over up to {pct(worst)} of the frame where a frame of the step's own VAE "
                "group is GENERATE (typically the edge of a moving mask): those pixels are kept as a "
                "blend and can leave a ghost of what should be replaced. Grow the mask (e.g. --grow 8) "
                "or run with --mask-encoding aligned."
            )
        out.append(
            Finding(
                "MASK_SAMPLE_MISMATCH",
                severity,
                message,
                seen.frames_of(imposed),
                imposed,
                {"max_imposed_fraction": round(worst, 4)},
            )
        )
    return out


def phase_drift(seen: MaskAnalysis) -> list[Finding]:
    keys = seen.key_runs()
    if seen.encoding != "reference" or len(keys) < 3:
        return []
    gaps = np.diff([r[0] for r in keys])
    if gaps.max() - gaps.min() > 1:
        return []  # not periodic
    phase = [any(f in seen.read_set for f in range(a, b + 1)) for a, b in keys]
    if all(phase) or not any(phase):
        return []
    stretches = {True: [], False: []}  # in phase / out of phase: (first step, last step)
    i = 0
    while i < len(keys):
        j = i
        while j + 1 < len(keys) and phase[j + 1] == phase[i]:
            j += 1
        stretches[phase[i]].append((seen.step_of(keys[i][0]), seen.step_of(keys[j][1])))
        i = j + 1

    def describe(spans):
        return ", ".join(
            f"frames {seen.groups[a][0]}-{seen.groups[b][-1]} (steps {a}-{b})"
            if a != b
            else f"frames {seen.groups[a][0]}-{seen.groups[a][-1]} (step {a})"
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
    frames = [f for a, b in keys for f in range(a, b + 1)]
    details = {
        "period": period,
        "in_phase": [[seen.groups[a][0], seen.groups[b][-1]] for a, b in stretches[True]],
        "out_of_phase": [[seen.groups[a][0], seen.groups[b][-1]] for a, b in stretches[False]],
    }
    steps = sorted({seen.step_of(f) for f in frames})
    return [Finding("PHASE_DRIFT", "warning", message, frames, steps, details)]


def anchors(seen: MaskAnalysis) -> list[Finding]:
    anchored = runs(seen.frame_anchor)  # runs of frames with a token-thick KEEP region
    if len(anchored) < 2:
        return []
    last_frame = seen.frames - 1
    trained = len(anchored) == 2 and anchored[0][0] == 0 and anchored[1][1] == last_frame  # first/last
    severity = "info" if trained else "warning"
    pattern = " This is the first/last-frame pattern VACE was trained on." if trained else ""
    out = []
    first, last = seen.step_of(anchored[0][0]), seen.step_of(anchored[-1][1])
    empty = [t for t in range(first, last + 1) if not seen.steps[t].has_keep]
    if empty:
        gaps = [b - a + 1 for a, b in runs([t in empty for t in range(len(seen.steps))])]
        out.append(
            Finding(
                "NO_ANCHOR",
                severity,
                f"{span(seen, empty)[0].upper()}{span(seen, empty)[1:]} hold no KEEP pixel at all between "
                f"anchors (gaps of up to {plural(max(gaps), 'step')} = {max(gaps) * 4} frames): the "
                "inactive input is zero there, attention has nothing to copy from, and the model must "
                "invent these frames."
                + (
                    pattern
                    or " Put KEEP frames closer together, add a spatial anchor (--strategy anchor "
                    "--anchor-px 16 keeps a strip) or use the 14B model."
                ),
                seen.frames_of(empty),
                empty,
            )
        )
    bare = [t for t in range(first, last + 1) if not seen.steps[t].spatial_anchor]
    if bare:
        out.append(
            Finding(
                "NO_SPATIAL_ANCHOR",
                severity,
                f"{span(seen, bare)[0].upper()}{span(seen, bare)[1:]} have no KEEP region at least one "
                "token "
                "(16x16 px) thick that stays KEEP through their VAE group: the model has only scattered "
                "frames to hold on to, which it does poorly (temporal interpolation is VACE's weak spot)."
                + (
                    pattern
                    or " A KEEP strip of 16 px or more in every frame (--strategy anchor --anchor-px 16) "
                    "stabilises it."
                ),
                seen.frames_of(bare),
                bare,
            )
        )
    return out


def thin_mask(seen: MaskAnalysis) -> list[Finding]:
    out = []
    for part, severity, blocks, scale in seen.thin_blocks():
        size = "one 8x8 latent pixel" if scale == geo.VAE_STRIDE_S else "one 16x16 token"
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
                sorted({seen.step_of(i) for i in frames}),
                {"part": part.lower(), "bbox": bbox, "thin_blocks": int(blocks.sum()), "block_px": scale},
            )
        )
    return out


def long_job(part: geo.Window) -> Finding:
    """LONG_JOB: the audited window of a job that runs in several (frames counted from its start)."""
    index, count, start, stop, head = part.index, part.count, part.start, part.stop, part.head
    context = (
        f" Its first {head} frames (clip frames {start}-{start + head - 1}) are the kept head: "
        "`vacelab run` fills them with the output so far and marks them KEEP, and so does this report."
        if head
        else ""
    )
    return Finding(
        "LONG_JOB",
        "info",
        f"This long job runs in {count} windows, each seen by the model as a clip of its own. "
        f"This report is window {index} (clip frames {start}-{stop - 1}), frames counted from "
        f"its start.{context} Audit the others with --window 0-{count - 1}.",
        details={"window": index, "windows": count, "clip_frames": [start, stop - 1], "kept_head": head},
    )
