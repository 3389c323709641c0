"""The cost of a plan's ``[modes]``: each mode's runs measured against the first (reference) mode's.

``vacelab experiment`` calls :func:`compare_modes` once every run is recorded (``experiment.json``); the
shipped ``speed`` plan uses it to show what each speed mode costs against the exact run of the same job.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

MODE = "mode"  # the run axis of a plan's [modes]


def compare_modes(records: list[dict], jobs: dict, out: Path, *, reference: str) -> None:
    """Add to each finished run of a mode other than ``reference`` its quality cost against the
    reference run of the same job and axes (``metrics``): ``gen_psnr_vs_ref`` / ``gen_ssim_vs_ref`` over the
    GENERATE pixels, ``keep_exact`` (every KEEP pixel equal to the source), and ``speedup_vs_ref``
    (the reference's generation seconds over this run's)."""
    from .metrics import masked_psnr, masked_ssim
    from .result import load_result

    def same_run(record: dict) -> str:
        axes = {k: v for k, v in record["axes"].items() if k != MODE}
        return json.dumps([record["variant"], axes], sort_keys=True, default=str)

    done = [r for r in records if r["status"] == "done"]
    references = {same_run(r): r for r in done if r["axes"].get(MODE) == reference}
    for record in done:
        ref = references.get(same_run(record))
        if ref is None:
            continue
        job = jobs[record["variant"]]
        keep = ~np.asarray(job.mask, bool)
        output = load_result(out / "runs" / record["name"]).video
        source = np.asarray(job.video)
        record["metrics"]["keep_exact"] = bool(np.array_equal(output[keep], source[keep]))
        if record is ref:
            continue
        exact = load_result(out / "runs" / ref["name"]).video
        record["metrics"]["gen_psnr_vs_ref"] = masked_psnr(output, exact, ~keep)
        record["metrics"]["gen_ssim_vs_ref"] = masked_ssim(output, exact, ~keep)
        own, base = record["seconds"]["generate"], ref["seconds"]["generate"]
        record["metrics"]["speedup_vs_ref"] = base / own if own and base else None
