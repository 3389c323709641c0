"""What drawing each control video costs, on 81 frames of the bundled sample at 480p (832x480).

Model-free: ``control_frames`` (gray, edges, scribble), ``layout_frames`` of the sample's object mask,
``depth_frames`` of a random depth clip (the per-clip normalisation) and ``pose_frames`` of two
persons a frame (the skeleton drawing at VACE's 1024-px size and the area resize). With ``--models``,
the tiny random Depth Anything and ViTPose of ``vacelab.testing.annotators`` also run end to end
(``estimate_depth``, ``estimate_poses`` with given boxes): what the plumbing costs (processor, batches,
post-processing), not the real models' speed. Prints the median of ``--repeats`` runs in ms per frame.

    python benchmarks/bench_control.py [--repeats 3] [--models]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time

import numpy as np

from vacelab.annotators.drawing import depth_frames, layout_frames, pose_frames
from vacelab.sample import sample_clip, sample_mask
from vacelab.tasks.control import control_frames

FRAMES, SIZE = 81, (480, 832)
PERSON = np.array(
    [[400, 100], [390, 90], [410, 90], [380, 95], [420, 95], [360, 140], [440, 140], [340, 200], [460, 200],
     [330, 260], [470, 260], [370, 260], [430, 260], [365, 340], [435, 340], [360, 420], [440, 420]], float,
)  # fmt: skip


def median_ms_per_frame(fn, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times) * 1000 / FRAMES


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--models", action="store_true", help="also the tiny random models end to end")
    args = parser.parse_args()
    frames = sample_clip()[0][:FRAMES]
    assert frames.shape[1:3] == SIZE
    region = sample_mask()[:FRAMES]
    people = [[(PERSON, np.full(17, 0.9)), (PERSON + [250, 0], np.full(17, 0.9))]] * FRAMES
    depth = np.random.default_rng(0).random((FRAMES, *SIZE), dtype=np.float32)
    cases = {
        f"control_frames {kind}": (lambda k=kind: control_frames(frames, k))
        for kind in ("gray", "edges", "scribble")
    }
    cases["layout_frames (object mask)"] = lambda: layout_frames(region)
    cases["depth_frames (per-clip normalisation)"] = lambda: depth_frames(depth)
    cases["pose_frames (2 persons a frame)"] = lambda: pose_frames(people, SIZE)
    if args.models:
        from vacelab.annotators import estimate_depth, estimate_poses
        from vacelab.testing.annotators import save_tiny_depth, save_tiny_vitpose

        folder = tempfile.mkdtemp(prefix="bench-control-")
        depth_model, pose_model = save_tiny_depth(f"{folder}/depth"), save_tiny_vitpose(f"{folder}/pose")
        boxes = [[(300, 60, 500, 440)]] * FRAMES
        cases["estimate_depth (tiny random model)"] = lambda: estimate_depth(
            frames, model=str(depth_model), progress=False
        )
        cases["estimate_poses, one box a frame (tiny random model)"] = lambda: estimate_poses(
            frames, boxes=boxes, model=str(pose_model), progress=False
        )
    print(f"{FRAMES} frames at {SIZE[1]}x{SIZE[0]}, median of {args.repeats} run(s), ms per frame")
    for name, fn in cases.items():
        print(f"  {name:<52} {median_ms_per_frame(fn, args.repeats):8.2f}")


if __name__ == "__main__":
    main()
