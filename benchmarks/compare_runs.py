"""Behaviour check for refactors: run the tiny pipeline through the CLI, save frames + records, compare.

Three runs, each through the real command line (``python -m vacelab``) on the same saved tiny model and
the same job folders (made once by ``setup`` with ``vacelab prepare``):

- ``short``: one window (17 frames, 64x64, a box mask, one reference image, ``--color-match``);
- ``long``: 45 frames in windows of 17 with an overlap of 5 (4 windows), ``--color-match``;
- ``batch``: ``vacelab batch`` over two jobs (the short job with ``--vace-end 0.5`` and seed 7, the long
  job with ``--mask-encoding aligned``).

``record OUT`` copies each run's exact output frames (``arrays/video.npy``) and ``run.json`` (and the batch's
``batch.json``) under ``OUT``. ``compare A B`` says whether the frames are bit-identical and the records the
same once timings, dates, memory peaks and paths are left aside (a relative path is resolved against the
folder it was read from before comparing). Exit code 0 when everything matches, 1 otherwise.

    python benchmarks/compare_runs.py setup /tmp/h14-base
    python benchmarks/compare_runs.py record /tmp/h14-base /tmp/h14-before
    python benchmarks/compare_runs.py compare /tmp/h14-before /tmp/h14-after
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
SIZE = 64
# keys whose values differ from run to run by nature (clocks, dates, memory peaks, the machine's state)
VOLATILE = {"timings", "started", "finished", "seconds", "memory", "versions"}


def vacelab(*args) -> None:
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src"), "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}
    proc = subprocess.run([sys.executable, "-m", "vacelab", *map(str, args)], env=env, capture_output=True)
    if proc.returncode != 0:
        raise SystemExit(f"vacelab {' '.join(map(str, args))} failed:\n{proc.stderr.decode()[-3000:]}")


def setup(base: Path) -> None:
    """The saved tiny model, a clip, a reference image, two job folders and a manifest."""
    from vacelab import media
    from vacelab.testing.tiny import save_tiny_pipeline

    base.mkdir(parents=True)
    save_tiny_pipeline(base / "model")
    t = np.arange(45)[:, None, None]
    y, x = np.mgrid[0:SIZE, 0:SIZE]
    stripes = ((x + y + t) // 6 % 2) * 120 + 60
    clip = np.stack([stripes, t * 4 + 40 + 0 * x, 255 - stripes], -1).astype(np.uint8)
    media.write_mp4(base / "clip.mp4", clip, 16, crf=0)
    rng = np.random.default_rng(0)
    media.write_png(base / "ref.png", rng.integers(0, 256, (40, 30, 3), dtype=np.uint8))
    common = ["inpaint", "--video", base / "clip.mp4", "--bbox", "16,16,48,44", "--size", f"{SIZE}x{SIZE}"]
    vacelab("prepare", *common, "--frames", 17, "--ref", base / "ref.png", "--out", base / "short")
    vacelab("prepare", *common, "--frames", "all", "--window", 17, "--overlap", 5, "--out", base / "long")
    (base / "batch.toml").write_text(
        f'[defaults]\nmodel = "{base / "model"}"\nprompt = "a red car"\nsteps = 2\n'
        '[[jobs]]\nname = "a"\njob = "short"\nseed = 7\nvace_end = 0.5\n'
        '[[jobs]]\nname = "b"\njob = "long"\nmask_encoding = "aligned"\n'
    )


def record(base: Path, out: Path) -> None:
    """Run the three cases from ``base`` and keep their frames and records under ``out``."""
    runs = base / "runs" / out.name
    shutil.rmtree(runs, ignore_errors=True)
    options = ["--model", base / "model", "--prompt", "a red car", "--steps", 2, "--color-match"]
    vacelab("run", base / "short", *options, "--out", runs / "short")
    vacelab("run", base / "long", *options, "--out", runs / "long")
    vacelab("batch", base / "batch.toml", "--out", runs / "batch")
    out.mkdir(parents=True, exist_ok=True)
    for name, folder in [("short", runs / "short"), ("long", runs / "long"), ("batch-a", runs / "batch/a"),
                         ("batch-b", runs / "batch/b")]:  # fmt: skip
        (out / name).mkdir(exist_ok=True)
        shutil.copy(folder / "arrays" / "video.npy", out / name / "video.npy")
        (out / name / "run.json").write_text(json.dumps(normalised(folder / "run.json", base), indent=2))
    (out / "batch.json").write_text(json.dumps(normalised(runs / "batch" / "batch.json", base), indent=2))


def normalised(path: Path, base: Path):
    """The JSON at ``path`` with volatile keys dropped and paths written relative to ``base``."""
    folder = path.parent

    def walk(value):
        if isinstance(value, dict):
            return {k: walk(v) for k, v in value.items() if k not in VOLATILE}
        if isinstance(value, list):
            return [walk(v) for v in value]
        if isinstance(value, str) and ("/" in value) and not value.startswith(("a ", "as ")):
            candidate = Path(value) if os.path.isabs(value) else folder / value
            if candidate.exists():
                resolved = candidate.resolve()
                inside = resolved.is_relative_to(base.resolve())
                return "<base>/" + str(resolved.relative_to(base.resolve())) if inside else str(resolved)
        return value

    return walk(json.loads(path.read_text()))


def compare(a: Path, b: Path) -> int:
    """Print what differs between two recordings; 0 when frames and records all match."""
    failures = 0
    for case in sorted(p.name for p in a.iterdir() if p.is_dir()):
        same_frames = np.array_equal(np.load(a / case / "video.npy"), np.load(b / case / "video.npy"))
        ra, rb = (json.loads((x / case / "run.json").read_text()) for x in (a, b))
        diffs = list(differences(ra, rb))
        shape = np.load(a / case / "video.npy").shape
        verdict = "bit-identical" if same_frames else "DIFFERENT"
        print(f"{case:8s} frames {shape}: {verdict}; run.json: {'same' if not diffs else 'DIFFERS'}")
        for line in diffs[:20]:
            print(f"    {line}")
        failures += (not same_frames) + bool(diffs)
    diffs = list(differences(*(json.loads((x / "batch.json").read_text()) for x in (a, b))))
    print(f"batch.json: {'same' if not diffs else 'DIFFERS'}")
    for line in diffs:
        print(f"    {line}")
    return 1 if failures or diffs else 0


def differences(a, b, where="$"):
    if isinstance(a, dict) and isinstance(b, dict):
        for key in sorted(set(a) | set(b)):
            if key not in a or key not in b:
                yield f"{where}.{key}: only in {'second' if key not in a else 'first'}"
            else:
                yield from differences(a[key], b[key], f"{where}.{key}")
    elif isinstance(a, list) and isinstance(b, list) and len(a) == len(b):
        for i, (x, y) in enumerate(zip(a, b, strict=True)):
            yield from differences(x, y, f"{where}[{i}]")
    elif a != b:
        yield f"{where}: {a!r} != {b!r}"


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("setup").add_argument("base", type=Path)
    rec = sub.add_parser("record")
    rec.add_argument("base", type=Path)
    rec.add_argument("out", type=Path)
    cmp = sub.add_parser("compare")
    cmp.add_argument("a", type=Path)
    cmp.add_argument("b", type=Path)
    args = parser.parse_args(argv)
    if args.command == "setup":
        setup(args.base)
    elif args.command == "record":
        record(args.base, args.out)
    else:
        return compare(args.a, args.b)
    return 0


if __name__ == "__main__":
    sys.exit(main())
