"""What a user waits for after the last denoising step: composite, colour match and writing the results.

Clip: the bundled sample scene, 81 frames at 832x480 with its object mask (``vacelab.sample.make_sample``).
"Model output": the source with a global colour drift and noise (what VACE's raw output looks like next to
its source), so the composite and colour match have real work to do.

Figures (median of ``--repeats``), each with its baseline measured in the same run:
  composite      ``generation.composite.composite`` (feather 16)  vs  a plain paste (``np.where``)
  color_match    ``generation.composite.color_match``             vs  the same plain paste
  write          ``result.write_result`` (lossless .npy, out_video.mp4, out_video.gif, compare.mp4, run.json)
                 vs  one H.264 encode of the output (``media.write_mp4``, libx264 crf 18 veryfast): the
                 least any tool that hands back a video must do
  all            composite + color_match + write, as ``vacelab run --color-match`` does them after the
                 last denoising step, vs the same one H.264 encode

The CPU load average is printed with the figures: on a shared machine it moves them more than any change.

    python benchmarks/bench_composite_encode.py [--repeats 3]
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np

from vacelab import media
from vacelab.generation.composite import color_match, composite
from vacelab.result import write_result
from vacelab.sample import make_sample

FRAMES = 81


def inputs() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    frames, mask = make_sample()
    source, mask = frames[:FRAMES], mask[:FRAMES]
    rng = np.random.default_rng(0)
    drift = source.astype(np.int16) * 15 // 16 + np.array([9, 4, -3], np.int16)
    output = np.clip(drift + rng.integers(-6, 7, source.shape, dtype=np.int16), 0, 255).astype(np.uint8)
    return source, mask, output


def timed(fn, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    source, mask, output = inputs()
    print(f"{FRAMES} frames at {source.shape[2]}x{source.shape[1]}, GENERATE share {mask.mean():.1%}")
    print(f"{os.cpu_count()} CPUs, load average before: {os.getloadavg()[0]:.2f}")

    paste = timed(lambda: np.where(mask[..., None], output, source), args.repeats)
    comp = timed(lambda: composite(output, source, mask, 16), args.repeats)
    colour = timed(lambda: color_match(output, source, mask), args.repeats)
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        counter = iter(range(10**6))
        encode = timed(lambda: media.write_mp4(tmp / f"o{next(counter)}.mp4", output, 16), args.repeats)
        write = timed(
            lambda: write_result(
                tmp / f"r{next(counter)}", output, {"bench": True}, fps=16, source=source, mask=mask
            ),
            args.repeats,
        )
    print(f"{'stage':<14}{'seconds':>9}  baseline{'':<28}{'seconds':>9}{'ratio':>8}")
    for name, value, base_name, base in (
        ("composite", comp, "plain paste (np.where)", paste),
        ("color_match", colour, "plain paste (np.where)", paste),
        ("write", write, "one H.264 encode (write_mp4)", encode),
        ("all", comp + colour + write, "one H.264 encode (write_mp4)", encode),
    ):
        print(f"{name:<14}{value:9.3f}  {base_name:<36}{base:9.3f}{value / base:8.1f}")
    print(f"load average after: {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
