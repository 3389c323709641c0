"""`vacelab audit`: show what VACE will see of a job's mask, before any GPU time is spent.

Exit codes: 0 report printed (whatever it found); 2 bad input; 3 with ``--strict`` when the report
holds an error finding. Imports stay light (numpy, Pillow, PyAV only when a video is read): no torch.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from ..errors import InputError

EXIT_STRICT = 3


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "audit",
        help="show what VACE will see of a job's mask (latent steps, mask reads, findings)",
        description=(
            "Audit a job folder (or a video + mask made elsewhere): which frames each latent step encodes, "
            "which frame's mask the model reads for it, how much of it is KEEP, and what will go wrong."
        ),
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog=(
            "examples:\n  vacelab audit JOB\n  vacelab audit JOB --json --png audit.png\n"
            "  vacelab audit JOB --png audit.png --frame 40   # and where, in frame 40\n"
            "  vacelab audit --video src_video.mp4 --mask src_mask.mp4 --refs 1\n\n"
            "exit codes: 0 report printed; 2 bad input; 3 with --strict when an error finding exists"
        ),
    )
    parser.add_argument("job", nargs="?", help="job folder written by `vacelab prepare`")
    parser.add_argument("--video", help="conditioning video made elsewhere (gives the geometry; optional)")
    parser.add_argument(
        "--mask", help="mask made elsewhere: video, one image, image folder or .npy (white = GENERATE)"
    )
    parser.add_argument(
        "--refs", type=int, default=0, help="number of reference images (with --mask; default 0)"
    )
    parser.add_argument("--frames", type=int, help="frame count for a one-image --mask without --video")
    parser.add_argument(
        "--mask-encoding",
        choices=("reference", "aligned"),
        default="reference",
        help="reference: as diffusers and official VACE (default); aligned: each step reads its VAE group",
    )
    parser.add_argument(
        "--json", action="store_true", help="print one JSON object instead of the text report"
    )
    parser.add_argument("--png", metavar="FILE", help="draw what the model sees into a PNG")
    parser.add_argument(
        "--frame",
        type=int,
        metavar="N",
        help="with --png: add the spatial view of frame N (the mask over it, the 8 px latent and 16 px "
        "token grids, parts too thin for the VAE highlighted)",
    )
    parser.add_argument(
        "--save-mask-latent",
        metavar="FILE.npy",
        help="write the exact conditioning mask, float32 [64, refs + latent steps, H/8, W/8]",
    )
    parser.add_argument("--window", type=int, help="long jobs: which window to audit (default 0)")
    parser.add_argument("--strict", action="store_true", help="exit 3 when the report holds an error finding")
    parser.set_defaults(handler=handle)


def handle(args) -> int:
    from .. import audit

    if args.frame is not None and not args.png:
        raise InputError(f"--frame {args.frame}: the spatial view is drawn into the picture; give --png FILE")
    mask, refs, video_shape, video, source, windows, inputs = _load(args)
    outputs = [p for p in (args.png, args.save_mask_latent) if p]
    _check_outputs(outputs, inputs)
    report = audit.audit_arrays(
        mask,
        ref_frames=refs,
        encoding=args.mask_encoding,
        video_shape=video_shape,
        windows=windows,
        window=args.window,
        frame=args.frame,
        video=video if args.frame is not None else None,
    )
    report.source = {**source, **report.source}
    if args.save_mask_latent:
        from ..geometry import WindowPlan

        audit.save_mask_latent(
            args.save_mask_latent,
            WindowPlan.of(windows, len(mask)).window(args.window).mask(mask),
            ref_frames=refs,
            encoding=args.mask_encoding,
        )
    if args.png:
        from ..audit.plot import draw_audit

        draw_audit(report, args.png)
    if args.json:
        sys.stdout.write(json.dumps(report.to_dict()) + "\n")
    else:
        sys.stdout.write(report.text() + "\n")
        for label, path in (("picture", args.png), ("mask latent", args.save_mask_latent)):
            if path:
                sys.stdout.write(f"wrote {label}: {path}\n")
    return EXIT_STRICT if args.strict and report.has_errors else 0


def _load(args):
    """(mask, ref count, video shape and video or None, source description, windows, input paths) from the
    options."""
    if args.refs < 0:
        raise InputError(f"--refs {args.refs}: must be 0 or more")
    if args.job:
        if args.video or args.mask or args.refs or args.frames:
            raise InputError("give either a JOB folder or --video/--mask/--refs/--frames, not both")
        from ..job import load_job_arrays, read_manifest

        manifest = read_manifest(args.job)  # the reference count is enough: no image decoding
        video, mask = load_job_arrays(args.job, manifest)
        source = {"job": args.job, "task": manifest.get("task")}
        refs, windows = len(manifest.get("refs", [])), manifest.get("windows")
        return mask, refs, tuple(video.shape[:3]), video, source, windows, [Path(args.job)]
    if not args.mask:
        raise InputError("give a JOB folder, or --mask (and optionally --video) for files made elsewhere")
    video = video_shape = None
    inputs = [Path(args.mask)]
    source = {"mask": args.mask}
    if args.video:
        from .. import media

        video, _ = media.read_video(args.video)
        video_shape = tuple(video.shape[:3])
        inputs.append(Path(args.video))
        source = {"video": args.video, **source}
    mask = _read_mask(Path(args.mask))
    if video_shape is not None and mask.shape[1:] != video_shape[1:]:
        raise InputError(
            f"--mask {args.mask}: mask is {mask.shape[2]}x{mask.shape[1]}, the video is "
            f"{video_shape[2]}x{video_shape[1]} (they must be the same size)"
        )
    if mask.shape[0] == 1:
        if args.frames is None and video_shape is None:
            raise InputError(f"--mask {args.mask}: one mask image; give --video or --frames N for the length")
        if args.frames is not None and args.frames < 1:
            raise InputError(f"--frames {args.frames}: must be 1 or more")
        import numpy as np

        mask = np.repeat(mask, args.frames if args.frames is not None else video_shape[0], axis=0)
        video_shape = None if video_shape is None else (mask.shape[0], *video_shape[1:])
    elif args.frames is not None:
        raise InputError("--frames only applies to a one-image --mask")
    return mask, args.refs, video_shape, video, source, None, inputs


def _read_mask(path: Path):
    """A mask file as bool [F, H, W]: .npy (bool, 0/1 or 0..255) or anything ``media.read_video`` reads."""
    import numpy as np

    from .. import media

    if path.suffix.lower() == ".npy" and path.is_file():
        try:
            array = media.load_array(path)
        except (OSError, ValueError) as exc:
            raise InputError(f"--mask {path}: not a readable .npy array ({exc})") from None
        if array.ndim == 1 and array.dtype == np.uint8:
            return media.load_mask(path)  # vacelab's own bit-packed mask (arrays/mask.npy)
        if array.ndim == 2:
            array = array[None]
        if array.ndim != 3:
            raise InputError(f"--mask {path}: array shape {list(array.shape)} is not [frames, height, width]")
        if array.dtype == bool or np.isin(array, (0, 1)).all():
            return array.astype(bool)
        if array.dtype == np.uint8:
            return media.to_binary_mask(array, f"--mask {path}")
        raise InputError(f"--mask {path}: dtype {array.dtype} is not a mask (bool, 0/1 or uint8 0..255)")
    frames, _ = media.read_video(path, mask=True)
    return media.to_binary_mask(frames, f"--mask {path}")


def _check_outputs(outputs: list[str], inputs: list[Path]) -> None:
    """Refuse output paths that are, or lie inside, an input (inputs are never overwritten)."""
    for out in outputs:
        resolved = Path(out).resolve()
        if Path(out).is_dir():
            raise InputError(f"{out}: is a folder; give a file name")
        for item in inputs:
            item = item.resolve()
            if resolved == item or (item.is_dir() and item in resolved.parents and resolved.exists()):
                raise InputError(f"{out}: would overwrite the input {item}")
    if len(set(outputs)) < len(outputs):
        raise InputError("--png and --save-mask-latent must be different files")
