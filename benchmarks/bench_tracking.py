"""Tracking quality and speed of ``vacelab.tracking.track_mask`` on a synthetic clip with a known answer.

Clip: a solid disc moves along a curve across a textured background (smoothed random noise, fixed seed).
Prompt: the disc's bounding box on frame 0. Truth: the disc on every frame. Printed: IoU of the tracked
mask with the truth per frame, its mean, and the same for the baseline measured in the same run: the
frame-0 box held still (what a fixed ``--bbox`` mask gives). Speed: frames/s, the median of ``--repeats``
runs (model loading included, as ``vacelab prepare`` pays it).

Without ``--model`` the tracker has RANDOM weights, so the IoU measures only the plumbing (masks arrive for
every frame at the right size), never tracking quality: ``--random tiny`` (default, 1.4 M parameters,
256 px) or ``--random full`` (transformers' default SAM 2 config, the size of sam2.1-hiera-tiny, so its
frames/s is representative of the real tiny model on this machine). Anyone with the real weights:

    python benchmarks/bench_tracking.py --model facebook/sam2.1-hiera-tiny [--device cuda --dtype bf16]
    python benchmarks/bench_tracking.py --random full --frames 9 --repeats 1
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np

from vacelab.tracking import track_mask


def synthetic_clip(frames: int, height: int, width: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """(video uint8 [F, H, W, 3], truth bool [F, H, W]): a red disc moving on smoothed colour noise."""
    rng = np.random.default_rng(seed)
    noise = rng.random((height // 8 + 2, width // 8 + 2, 3))
    texture = np.kron(noise, np.ones((8, 8, 1)))[:height, :width]  # blocky texture, 8 px cells
    background = (60 + 120 * texture).astype(np.uint8)
    yy, xx = np.mgrid[:height, :width]
    radius = min(height, width) / 8
    video = np.repeat(background[None], frames, axis=0)
    truth = np.zeros((frames, height, width), dtype=bool)
    for i in range(frames):
        t = i / max(frames - 1, 1)
        cx = radius * 1.5 + t * (width - 3 * radius)
        cy = height / 2 + (height / 2 - 1.5 * radius) * np.sin(2 * np.pi * t)
        truth[i] = (xx - cx) ** 2 + (yy - cy) ** 2 <= radius**2
        video[i][truth[i]] = (220, 30, 30)
    return video, truth


def bounding_box(mask: np.ndarray) -> tuple[int, int, int, int]:
    ys, xs = np.nonzero(mask)
    return int(xs.min()), int(ys.min()), int(xs.max()) + 1, int(ys.max()) + 1


def iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Per-frame IoU of two bool [F, H, W] masks."""
    union = (a | b).sum(axis=(1, 2))
    return np.where(union > 0, (a & b).sum(axis=(1, 2)) / np.maximum(union, 1), 1.0)


def random_model(kind: str, folder: Path) -> str:
    import torch
    from transformers import Sam2VideoConfig, Sam2VideoModel

    from vacelab.testing.sam import tiny_sam2_config

    torch.manual_seed(0)
    config = tiny_sam2_config() if kind == "tiny" else Sam2VideoConfig()
    Sam2VideoModel(config).eval().save_pretrained(folder)
    return str(folder)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--model", help="SAM 2 video weights (hub id or folder); default: random weights")
    parser.add_argument(
        "--random", choices=("tiny", "full"), default="tiny", help="random config without --model"
    )
    parser.add_argument("--frames", type=int, default=17)
    parser.add_argument("--size", default="320x192", help="WxH of the clip")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--dtype", default="auto")
    args = parser.parse_args()
    width, height = (int(v) for v in args.size.split("x"))
    video, truth = synthetic_clip(args.frames, height, width)
    box = bounding_box(truth[0])

    with tempfile.TemporaryDirectory() as tmp:
        model = args.model or random_model(args.random, Path(tmp) / "model")
        label = args.model or f"RANDOM {args.random} SAM 2 (measures plumbing only, not tracking quality)"
        times, mask = [], None
        for _ in range(args.repeats):
            start = time.perf_counter()
            mask = track_mask(
                video, boxes=[(box, 0)], model=model, device=args.device, dtype=args.dtype, progress=False
            )
            times.append(time.perf_counter() - start)

    static = np.repeat(np.zeros_like(truth[0])[None], args.frames, axis=0)
    static[:, box[1] : box[3], box[0] : box[2]] = True
    tracked_iou, static_iou = iou(mask, truth), iou(static, truth)
    print(f"model: {label}")
    print(f"clip: {args.frames} frames {width}x{height}, box on frame 0: {box}")
    print(f"device {args.device}, dtype {args.dtype}")
    print("frame  IoU(tracked)  IoU(static box)  mask area")
    for i in range(args.frames):
        print(f"{i:5d}  {tracked_iou[i]:12.3f}  {static_iou[i]:15.3f}  {int(mask[i].sum()):9d}")
    ratio = tracked_iou.mean() / max(static_iou.mean(), 1e-9)
    print(
        f"mean IoU: tracked {tracked_iou.mean():.3f}, static box {static_iou.mean():.3f} (ratio {ratio:.2f}x)"
    )
    median = statistics.median(times)
    print(
        f"speed: {args.frames / median:.2f} frames/s (median of {args.repeats} runs: {median:.2f} s per clip)"
    )


if __name__ == "__main__":
    main()
