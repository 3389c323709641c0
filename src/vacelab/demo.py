"""``vacelab demo``: every task of the field report on the bundled sample, audited, in one HTML report.

The demo is an experiment plan (:mod:`vacelab.experiment`) written here in Python: it prepares each task on
the sample, audits it and, only when a model is given and loads, generates each job once. Without a model
the report (and stdout) say in one line how to add one; no output is ever made up.
"""

from __future__ import annotations

import copy
import os
from pathlib import Path

from .errors import InputError
from .experiment import plan_from_dict, run_plan, with_overrides
from .folders import check_new_folder, write_folder

DEMO_SIZE = "416x240"  # small enough to prepare and audit every job in seconds; --size 480p for real runs
DEMO_FRAMES = 81
ADD_MODEL = (
    "No model given, so no outputs were generated. To add them, download the weights "
    "(`hf download Wan-AI/Wan2.1-VACE-1.3B-diffusers`) and run `vacelab demo --model "
    "Wan-AI/Wan2.1-VACE-1.3B-diffusers --out NEW_DIR`, or pass --model a local diffusers folder."
)
SCENE = "a slow pan along a steel roof lattice over a wide plain, distant hills, clear sky"

DEMO_PLAN = {
    "title": "vacelab demo: the field report's tasks on the bundled sample",
    "about": (
        "The field report is a practitioner's write-up of four VACE experiments (irregular inpainting, "
        "removal, outpainting, keyframe interpolation) and of why some failed: masks and keyframes that the "
        "model reads differently from how they were drawn. vacelab is built from it. Each section builds one "
        "of those tasks on the bundled synthetic clip (a steel roof lattice over a plain, a gun-like object "
        "crossing the frame, a slow pan), shows what the model is given, and audits what the model will "
        "actually see of the mask once the VAE has compressed it 4x in time and 8x in space. The table "
        "below sums up the audits; each job's section shows them step by step."
    ),
    "prepare": {"size": DEMO_SIZE, "frames": DEMO_FRAMES},
    "run": {"composite": False, "prompt": SCENE},
    "jobs": [
        {
            "name": "inpaint-beams", "task": "inpaint", "video": "sample:", "mask": "sample:beams", "grow": 4,
            "title": "1. Inpainting with an irregular mask",
            "about": "The mask follows the steel beams (not a rectangle), grown by 4 px (the shipped plan "
            "grows it by 8 px at 480p). The field report found this works when the mask keeps a clear "
            "boundary after the VAE's 8x spatial compression; the audit points at the parts that do not.",
            "run": {"prompt": "open sky above a wide plain, distant hills, no roof structure"},
        },
        {
            "name": "remove-object", "task": "remove", "video": "sample:", "mask": "sample:object",
            "what": "gun, weapon",
            "title": "2. Removing an object with a negative prompt",
            "about": "The moving object's mask, grown to cover its edge at VAE resolution; `--what \"gun, "
            "weapon\"` becomes the negative prompt. The surrounding video does most of the work.",
        },
        {
            "name": "outpaint-mood", "task": "outpaint", "video": "sample:", "ratio": 0.8, "auto_refs": 3,
            "title": "3. Outpainting with mood references",
            "about": "The clip is shrunk to 80% and centred; the outer band is generated. Three loose crops "
            "of the source are passed as reference images: they carry the mood, not the layout. The report "
            "found 1.3B weak here and 14B usable.",
        },
        {
            "name": "firstframe", "task": "firstframe", "video": "sample:",
            "title": "4a. Video from the first frame",
            "about": "Frame 0 is KEEP, everything after it is generated: one clear anchor in time, a task "
            "VACE was trained on (the audit notes that frame 0's mask is never read, and why that is fine).",
        },
        {
            "name": "firstlast", "task": "firstlast", "video": "sample:",
            "title": "4b. Video between a first and a last frame",
            "about": "The clip's first and last frames are kept at frames 0 and 80.",
        },
        {
            "name": "extend", "task": "extend", "video": "sample:",  # keep: set by demo_plan
            "title": "5. Extending a clip",
            "about": "The first half of the clip (whole VAE groups) is kept, the rest is generated.",
        },
        {
            "name": "keyframes", "task": "keyframes", "video": "sample:", "every": 8,
            "grid": {"strategy": ["naive", "aligned", "anchor"], "mask_encoding": ["reference", "aligned"]},
            "title": "6. Keyframe interpolation: naive vs aligned vs anchored, under both mask encodings",
            "about": "Every 8th frame of the clip is a keyframe. naive keeps each keyframe on its own frame "
            "only (the report's failing setup); aligned fills each keyframe's whole 4-frame VAE group; "
            "anchor adds a 16 px KEEP strip on every frame. Under the reference mask encoding (what "
            "diffusers does) every strategy still loses KEEP where a latent step reads the next group's "
            "frame; `vacelab run --mask-encoding aligned` reads each step's own group, and with it the "
            "anchored job reads exactly as drawn. Compare the audits.",
        },
        {
            "name": "control-layout", "task": "control", "video": "sample:", "kind": "layout",
            "mask": "sample:object",
            "title": "7. A control video: the moving object's layout",
            "about": "The object's outline on each frame, black on white, replaces the whole video: the "
            "model generates a scene from the prompt with something moving along that path. The other "
            "control videos (`--kind gray`, `edges`, `scribble`; `depth` and `pose` with their models' "
            "weights) are built the same way: see docs/prepare.md.",
        },
    ],
}  # fmt: skip


def demo_plan(
    *, model: str | None = None, steps: int | None = None, size: str | None = None, frames: int | None = None
):
    """The demo as a checked :class:`~vacelab.experiment.Plan` with the given overrides."""
    from .tasks.options import frame_count

    length = frame_count(frames) or DEMO_FRAMES
    if length == "all" or length < 5:
        raise InputError("the demo needs at least 5 frames (4n+1)", field="frames", value=frames)
    data = copy.deepcopy(DEMO_PLAN)
    extend = next(job for job in data["jobs"] if job["task"] == "extend")
    extend["keep"] = (length - 1) // 8 * 4 + 1  # about half the clip, in whole VAE groups (4n+1 frames)
    plan = plan_from_dict(data, source="vacelab demo")
    return with_overrides(plan, model=model, steps=steps, size=size, frames=frames)


def run_demo(
    out: str | os.PathLike,
    *,
    model: str | None = None,
    steps: int | None = None,
    size: str | None = None,
    frames: int | None = None,
    stream=None,
) -> Path:
    """Write the demo folder ``out`` (atomically: complete or absent) and return its ``report.html``.

    With ``model`` the pipeline is loaded first (a missing model is a one-line :class:`InputError` before
    anything is written) and every job is generated once with ``steps``.
    """
    out = check_new_folder(out)
    plan = demo_plan(model=model, steps=steps, size=size, frames=frames)
    loader = None
    if model is not None:
        from .experiment import expand
        from .generation.cache import PipelineCache

        cache = PipelineCache()
        cache.get(expand(plan)[1][0].settings)  # loaded before anything is written: every run shares it
        loader = cache.get
    notice = None if model is not None else ADD_MODEL

    def fill(folder: Path) -> None:  # the run records name their jobs relative to themselves
        run_plan(plan, folder, generate=model is not None, loader=loader, stream=stream, notice=notice)

    write_folder(out, fill)
    return out / "report.html"
