"""Build VACE jobs: ``prepare(task, out=..., **options)`` is ``vacelab prepare TASK ... --out JOB``.

One builder per kind of task (``spatial``: inpaint, remove, outpaint; ``temporal``: first/last frame,
keyframes, extend); ``masks`` holds the mask geometry, ``source`` the shared inputs, ``options`` the
option set. Nothing here imports torch.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from ..folders import check_new_folder
from ..job import TASKS, Job, save_job
from .control import build_control
from .options import Options, key_spec, make_options
from .source import job_fps, windows_for
from .spatial import build_inpaint, build_outpaint
from .temporal import build_endframes, build_extend, build_keyframes, build_reference, place_keyframes

BUILDERS = {
    "inpaint": build_inpaint,
    "remove": build_inpaint,
    "outpaint": build_outpaint,
    "firstframe": build_endframes,
    "lastframe": build_endframes,
    "firstlast": build_endframes,
    "keyframes": build_keyframes,
    "extend": build_extend,
    "reference": build_reference,
    "control": build_control,
}
assert set(BUILDERS) == set(TASKS)


def prepare(task: str, *, out: str | os.PathLike | None = None, **options) -> Job:
    """Build the job for ``task`` from ``vacelab prepare`` options (underscored names); save it to ``out``.

    Raises :class:`~vacelab.errors.InputError` for every bad input, before anything is written.
    """
    opts = make_options(task, options)
    if out is not None:
        check_new_folder(out, _inputs(opts))
    given = _json_safe(opts.given())  # what the user set: the rate below is resolved from the clip
    opts.fps = job_fps(task, opts)
    job = BUILDERS[task](task, opts)
    job.windows = windows_for(opts, job.mask.shape[0])
    if job.windows:
        job.notes.append(
            f"long job: {len(job.windows)} windows " + ", ".join(f"{a}-{b - 1}" for a, b in job.windows)
        )
    job.params = given
    if out is not None:
        save_job(job, out)
    return job


def _inputs(opts: Options) -> list[str]:
    paths = [opts.video, opts.mask, opts.polygon, opts.image, opts.image2, *opts.ref]
    paths += [key_spec(k)[1] for k in opts.key]
    return [p for p in paths if p]


def _json_safe(params: dict) -> dict:
    return json.loads(json.dumps(params, default=lambda v: str(v) if isinstance(v, Path) else list(v)))


__all__ = ["BUILDERS", "Options", "place_keyframes", "prepare"]
