"""How long `vacelab prepare` takes against PyAV alone doing the unavoidable part of the work.

Source: a 1280x720, 16 fps clip of 97 frames (the sample scene drawn at 720p, written with
``media.write_mp4``). Job: ``remove`` at 480p (832x480, 81 frames) with a box mask, through the public
``vacelab.tasks.prepare(..., out=...)``: decode + resize, mask, fill, lossless arrays, src_video.mp4,
src_mask.mp4, original.mp4, preview.gif, job.json.

Baseline, measured in the same run: PyAV alone decoding the same 81 source frames to 832x480 RGB (its
own scaler) and encoding two 832x480 H.264 files (video and mask) with the same encoder settings.
Prints the median of ``--repeats`` runs of each and their ratio (target: under 2x).

    python benchmarks/bench_prepare.py [--repeats 3]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from fractions import Fraction
from pathlib import Path

import av
import numpy as np

from vacelab import media
from vacelab.sample import make_sample
from vacelab.tasks import prepare

FRAMES, SIZE = 81, (480, 832)


def make_source(path: Path) -> None:
    frames, _ = make_sample()
    from PIL import Image

    big = np.stack(
        [np.asarray(Image.fromarray(f).resize((1280, 720), Image.Resampling.BILINEAR)) for f in frames]
    )
    media.write_mp4(path, big, 16)


def baseline(source: Path, out: Path) -> float:
    """PyAV alone: decode 81 frames scaled to 832x480, encode a video and a mask mp4."""
    start = time.perf_counter()
    frames = []
    with av.open(str(source)) as container:
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        for frame in container.decode(stream):
            # cover size of 1280x720 into 832x480 is 853x480; crop the centre like prepare does
            array = frame.to_ndarray(width=853, height=480, format="rgb24", interpolation="AREA")
            frames.append(array[:, 10:842])
            if len(frames) == FRAMES:
                break
    video = np.stack(frames)
    mask = np.zeros(video.shape[:3], np.uint8)
    mask[:, 180:340, 100:420] = 255
    for name, data, fmt in (("video.mp4", video, "rgb24"), ("mask.mp4", mask, "gray")):
        with av.open(str(out / name), "w", format="mp4") as container:
            stream = container.add_stream("libx264", rate=Fraction(16))
            stream.width, stream.height, stream.pix_fmt = SIZE[1], SIZE[0], "yuv420p"
            stream.options = {"crf": "18", "preset": "veryfast"}
            stream.thread_type = "AUTO"
            for array in data:
                container.mux(
                    stream.encode(av.VideoFrame.from_ndarray(np.ascontiguousarray(array), format=fmt))
                )
            container.mux(stream.encode())
    return time.perf_counter() - start


def vacelab_prepare(source: Path, out: Path) -> float:
    start = time.perf_counter()
    prepare("remove", video=str(source), bbox="100,180,420,340", what="gun", out=out / "job")
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        source = tmp / "source_720p.mp4"
        make_source(source)
        base, ours = [], []
        for i in range(args.repeats):
            for name, fn, times in (("baseline", baseline, base), ("prepare", vacelab_prepare, ours)):
                out = tmp / f"{name}{i}"
                out.mkdir()
                times.append(fn(source, out))
        b, o = statistics.median(base), statistics.median(ours)
        print(f"source 1280x720 -> job 832x480, {FRAMES} frames, median of {args.repeats}")
        print(f"PyAV decode + 2 encodes : {b:.2f} s  (runs: {', '.join(f'{t:.2f}' for t in base)})")
        print(f"vacelab prepare remove  : {o:.2f} s  (runs: {', '.join(f'{t:.2f}' for t in ours)})")
        print(f"ratio                   : {o / b:.2f}x (target < 2x)")


if __name__ == "__main__":
    main()
