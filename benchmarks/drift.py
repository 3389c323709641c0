"""Colour drift across the windows of a long job, and what each ``match_colors`` method leaves of it.

The field's most repeated VACE complaint: tint, saturation and contrast that grow at every window join.
This harness simulates that chain on a clean clip (the bundled sample, which is what an undrifted model
would return) without a model:

- the clip's first ``--windows`` windows of ``--window`` frames sharing ``--overlap`` (vacelab's
  ``plan_windows``; default 5 windows of 17 frames sharing 5: frames 0-16, 12-28, 24-40, 36-52, 48-64);
- window k (0-based) comes back with a known cast of strength k: one cast step applied k times, each
  time through 8-bit sRGB (gamut clipping included). One step, in CIE Lab: luminance contrast +6% and
  1 darker, chroma (saturation) +8%, a warm tint of +1.5 a* / +3 b*. Window 0 is the reference;
- each window is matched, with ``match_colors(window, previous, method, mask=overlap frames,
  apply_to=every frame)``, onto the previous window's *corrected* output on the frames they share
  (as a long job does: the overlap frames are the same frames, generated twice), in order, so what a
  method misses accumulates down the chain;
- the windows are stitched (each window's frames after the shared ones).

Printed: the mean CIE76 colour difference (Delta E) of each window against the clean clip, for no
correction (``none``) and each method, and the seam at each join: the mean Delta E between the stitched
frames either side of the join (the last shared frame, from window k, and the first new frame, from
window k+1); the ``clean`` row is the same figure on the clean clip (the shot's own change).

    python benchmarks/drift.py [--quick] [--regenerated] [--windows 5] [--window 17] [--overlap 5] [--time]

``--regenerated``: the shared frames are not quite the same frames twice, as with a real model: each later
window also gets its own noise (sigma 3 of 255) and one patch (a fifth of the height, a sixth of the
width) regenerated as other content; the figures leave the patches out.

``--quick``: the clip at a quarter of its size (120x208), a few seconds. ``--time``: also times each
method on an 81-frame 832x480 clip (the sample with mild noise, so it holds ~240k distinct colours).

Not here yet: ``--model DIR`` (the same table from a real model's windows, through ``vacelab run
--color-match METHOD``); no weights can be downloaded on the machine this was written on.
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from vacelab.colors import METHODS, lab_to_rgb, match_colors, mean_delta_e, rgb_to_lab
from vacelab.geometry import plan_windows
from vacelab.sample import sample_clip

STEP = {"contrast": 1.06, "darker": 1.0, "chroma": 1.08, "tint_a": 1.5, "tint_b": 3.0}


def cast_step(frames: np.ndarray, mid: float) -> np.ndarray:
    """One step of the drift (see the module's doc), around the clip's mean luminance ``mid``."""
    lab = rgb_to_lab(frames)
    lab[..., 0] = mid + STEP["contrast"] * (lab[..., 0] - mid) - STEP["darker"]
    lab[..., 1] = STEP["chroma"] * lab[..., 1] + STEP["tint_a"]
    lab[..., 2] = STEP["chroma"] * lab[..., 2] + STEP["tint_b"]
    return lab_to_rgb(lab)


def drifted_windows(clip: np.ndarray, bounds: list[tuple[int, int]]) -> list[np.ndarray]:
    """Window k of ``clip`` with k cast steps."""
    mid = float(rgb_to_lab(clip[:: max(1, len(clip) // 8)])[..., 0].mean())
    out = []
    for k, (start, stop) in enumerate(bounds):
        frames = clip[start:stop]
        for _ in range(k):
            frames = cast_step(frames, mid)
        out.append(frames)
    return out


def regenerate(raw: list[np.ndarray], sigma: float = 3.0) -> tuple[list[np.ndarray], np.ndarray]:
    """``raw`` as a model would differ from window to window besides the cast: each later window gets its
    own noise (``sigma``, 0-255) and one patch regenerated as other content (a copy of another part of
    the frame), in a place of its own. Also returns the pixels no patch touches, bool [H, W]."""
    rng = np.random.default_rng(0)
    height, width = raw[0].shape[1:3]
    ph, pw = height // 5, width // 6
    untouched = np.ones((height, width), bool)
    out = [raw[0]]
    for k, frames in enumerate(raw[1:], 1):
        noise = rng.normal(0.0, sigma, frames.shape).round()
        frames = np.clip(frames + noise, 0, 255).astype(np.uint8)
        y, x = height // 12 + (k - 1) * ph // 2, width // 12 + (k - 1) * pw
        frames[:, y : y + ph, x : x + pw] = frames[:, -ph:, -pw:]
        untouched[y : y + ph, x : x + pw] = False
        out.append(frames)
    return out, untouched


def correct(raw: list[np.ndarray], bounds: list[tuple[int, int]], method: str) -> list[np.ndarray]:
    """Each window matched onto the previous corrected window on the frames they share, in order."""
    done = [raw[0]]
    for k in range(1, len(raw)):
        shared = bounds[k - 1][1] - bounds[k][0]
        if method == "none":
            done.append(raw[k])
            continue
        overlap = np.zeros(raw[k].shape[:3], bool)
        overlap[:shared] = True
        reference = done[-1][-shared:]
        done.append(match_colors(raw[k], reference, method, mask=overlap, apply_to=np.ones_like(overlap)))
    return done


def stitch(windows: list[np.ndarray], bounds: list[tuple[int, int]]) -> np.ndarray:
    """The clip of the windows: each window's frames from its first frame not in the previous one."""
    parts = [windows[0]]
    for k in range(1, len(windows)):
        parts.append(windows[k][bounds[k - 1][1] - bounds[k][0] :])
    return np.concatenate(parts)


def seams(video: np.ndarray, bounds: list[tuple[int, int]], where: np.ndarray | None) -> list[float]:
    """Mean Delta E between the frames either side of each join of the stitched ``video``."""
    return [mean_delta_e(video[stop - 1], video[stop], where) for _, stop in bounds[:-1]]


def measure(
    clip: np.ndarray, bounds: list[tuple[int, int]], regenerated: bool = False
) -> dict[str, tuple[list[float], list[float]]]:
    """Per method (``none`` first): Delta E of each window against the clean clip, and the seams
    (``regenerated``: see :func:`regenerate`; the figures then leave out the regenerated patches)."""
    raw, where = drifted_windows(clip, bounds), None
    if regenerated:
        raw, where = regenerate(raw)
    clean = [clip[start:stop] for start, stop in bounds]
    rows = {"clean": ([0.0] * len(bounds), seams(clip[: bounds[-1][1]], bounds, where))}
    for method in ("none", *METHODS):
        windows = correct(raw, bounds, method)
        pick = (slice(None),) if where is None else (slice(None), where)
        drift = [mean_delta_e(w[pick], c[pick]) for w, c in zip(windows, clean, strict=True)]
        rows[method] = (drift, seams(stitch(windows, bounds), bounds, where))
    return rows


def table(rows: dict[str, tuple[list[float], list[float]]]) -> str:
    count = len(next(iter(rows.values()))[0])
    head = [f"window {k + 1}" for k in range(count)] + [f"seam {k + 1}-{k + 2}" for k in range(count - 1)]
    lines = ["| method | " + " | ".join(head) + " |", "|---|" + "---:|" * len(head)]
    for name, (drift, seam) in rows.items():
        lines.append(f"| {name} | " + " | ".join(f"{v:.2f}" for v in [*drift, *seam]) + " |")
    return "\n".join(lines)


def cuts(rows: dict[str, tuple[list[float], list[float]]]) -> str:
    """How many times each method cuts the drift of the last window, and the least drift there."""
    count, uncorrected = len(rows["none"][0]), rows["none"][0][-1]
    last = {name: drift[-1] for name, (drift, _) in rows.items() if name in METHODS}
    ratios = ", ".join(f"{name} {uncorrected / max(value, 1e-9):.1f}x" for name, value in last.items())
    return f"drift cut at window {count}: {ratios}; least drift there: {min(last, key=last.get)}"


def timings(repeats: int = 3) -> list[str]:
    """Seconds of each method on an 81-frame 832x480 clip, fitted on the first 5 frames, applied to all."""
    clip = sample_clip()[0][:81]
    noise = np.random.default_rng(0).integers(-6, 7, clip.shape, dtype=np.int16)
    clean = np.clip(clip + noise, 0, 255).astype(np.uint8)
    bad = cast_step(cast_step(clean, 50.0), 50.0)
    overlap = np.zeros(clip.shape[:3], bool)
    overlap[:5] = True
    out = []
    for method in METHODS:
        best = []
        for _ in range(repeats):
            start = time.perf_counter()
            match_colors(bad, clean, method)
            whole = time.perf_counter() - start
            start = time.perf_counter()
            match_colors(bad, clean[-5:], method, mask=overlap, apply_to=np.ones_like(overlap))
            best.append((whole, time.perf_counter() - start))
        whole, window = min(best)
        out.append(f"{method:9s}: clip onto clip {whole:.2f} s, clip onto 5 overlap frames {window:.2f} s")
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="the clip at a quarter of its size")
    parser.add_argument("--windows", type=int, default=5)
    parser.add_argument("--window", type=int, default=17)
    parser.add_argument("--overlap", type=int, default=5)
    parser.add_argument(
        "--regenerated",
        action="store_true",
        help="each later window also with its own noise and a patch of other content",
    )
    parser.add_argument("--time", action="store_true", help="time each method on an 81x480x832 clip")
    args = parser.parse_args()
    clip = sample_clip()[0]
    if args.quick:
        clip = np.ascontiguousarray(clip[:, ::4, ::4])
    step = args.window - args.overlap
    frames = args.window + step * (args.windows - 1)
    if frames > len(clip):
        parser.error(
            f"{args.windows} windows of {args.window} need {frames} frames; the sample has {len(clip)}"
        )
    bounds = plan_windows(frames, args.window, args.overlap)
    spans = ", ".join(f"{a}-{b - 1}" for a, b in bounds)
    print(f"sample clip {clip.shape[2]}x{clip.shape[1]}, windows {spans}; cast step per window: {STEP}")
    start = time.perf_counter()
    rows = measure(clip, bounds, args.regenerated)
    seconds = time.perf_counter() - start
    print(f"mean Delta E76 of each window against the clean clip, and at each join ({seconds:.1f} s):")
    print(table(rows))
    print(cuts(rows))
    if args.time:
        print("\n".join(timings()))


if __name__ == "__main__":
    main()
