"""`vacelab prepare TASK ... --out JOB`: build a VACE job folder, audit it, say where it is."""

from __future__ import annotations

import argparse
import sys

TASK_HELP = {
    "inpaint": "regenerate a masked region (mask file, box, polygon or a tracked object)",
    "remove": "remove an object: inpaint with a grown mask and a negative-prompt suggestion",
    "outpaint": "shrink the video into the frame and generate the band around it",
    "firstframe": "generate a clip that starts from an image",
    "lastframe": "generate a clip that ends on an image",
    "firstlast": "generate a clip between a first and a last image",
    "keyframes": "generate the frames between keyframes (naive | aligned | anchor)",
    "extend": "keep the first N frames of a video and generate what follows",
    "reference": "generate a clip from reference images alone (R2V): --ref IMG [--ref IMG2 ...]",
    "control": "follow a control video drawn from --video (--kind gray|edges|scribble|depth|pose|layout), "
    "in a mask or not",
}


EXAMPLES = """\
examples (S is a clip; every task takes --out JOB):
  vacelab prepare remove    --video S --bbox 63,230,262,358@0 --bbox 531,169,729,293@80 --what "gun" --out j1
  vacelab prepare inpaint   --video S --mask mask.png --frames all --window 81 --out j2
  vacelab prepare inpaint   --video S --track-points 180,280@0 --out j3      # SAM 2 follows the object
  vacelab prepare outpaint  --video S --ratio 0.8 --auto-refs 3 --ref mood.png --out j4
  vacelab prepare firstlast --image first.jpg --image2 last.jpg --frames 49 --out j5
  vacelab prepare keyframes --video S --every 8 --strategy anchor --out j6
  vacelab prepare extend    --video S --keep 33 --out j7
  vacelab prepare control   --kind edges --video S --bbox 0,0,416,480 --out j8
  vacelab prepare reference --ref face.png --ref jacket.png --frames 49 --out j9

Each option group above names the tasks it applies to; an option a task does not take is refused.
"""


def fps_value(text: str) -> float | str:
    """``--fps``: a number, or ``source`` (the clip's own rate)."""
    if text.strip().lower() == "source":
        return "source"
    try:
        return float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number or 'source', got {text!r}") from None


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "prepare",
        help="build a job folder for a VACE task",
        description="Build src_video.mp4 / src_mask.mp4 / src_ref_images (and a lossless copy) for one task, "
        "then audit what the model will see. Coordinates are job pixels (after resizing) unless "
        "--coords source.",
        epilog=EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("task", choices=TASK_HELP, help="; ".join(f"{k}: {v}" for k, v in TASK_HELP.items()))
    parser.add_argument("--out", required=True, help="the job folder to create (must not exist or be empty)")

    common = parser.add_argument_group("common")
    common.add_argument("--video", help="source: mp4/mov/mkv/webm/gif or a folder of images")
    common.add_argument("--size", help="480p (default; 832x480, 480x832 for portrait), 720p or WxH")
    common.add_argument(
        "--frames",
        help="a count of the form 4n+1: 5, 9, ..., 81 (default 81, fewer if the clip is shorter) or 'all'",
    )
    common.add_argument(
        "--fps",
        type=fps_value,
        help="frame rate of the job, or 'source' for the clip's own (default: source for inpaint, remove and "
        "outpaint, 16 for the others, Wan's training rate); the source is resampled to it",
    )
    common.add_argument("--start", type=float, help="start at this many seconds into the source")
    common.add_argument("--ref", action="append", help="reference image (repeatable, order kept)")
    common.add_argument("--window", type=int, help="long jobs: frames per window, 4n+1 (default 81)")
    common.add_argument(
        "--overlap",
        type=int,
        help="long jobs: frames shared by windows, 4j+1 (default: the fewest whole VAE groups read as "
        "KEEP to the end, 29 for 81-frame windows)",
    )
    common.add_argument("--prompt", help="suggested prompt stored in job.json")
    common.add_argument("--negative-prompt", help="suggested negative prompt stored in job.json")

    masking = parser.add_argument_group("inpaint / remove")
    masking.add_argument(
        "--mask", help="mask video, one image for all frames, or an image folder (white = generate)"
    )
    masking.add_argument(
        "--bbox",
        action="append",
        help="X0,Y0,X1,Y1 box on every frame (X1, Y1 exclusive); or X0,Y0,X1,Y1@FRAME, repeated: boxes "
        "keyed to frames, moving linearly between keys",
    )
    masking.add_argument("--polygon", help='JSON: [[x,y],...] or [{"frames":[a,b],"points":[[x,y],...]},...]')
    masking.add_argument("--coords", choices=("job", "source"), help="pixel space of boxes, polygons, clicks")
    masking.add_argument("--grow", type=int, help="dilate the mask by PX pixels (remove: 8 by default)")
    masking.add_argument(
        "--fill-feather",
        type=int,
        help="fade the gray fill into the source over PX px inside the mask (not run --feather, the "
        "paste-back's seam band)",
    )
    masking.add_argument(
        "--fill", help="GENERATE pixels: gray (default) or source; outpaint: gray, black or edge"
    )
    masking.add_argument("--what", help="remove: what to remove, e.g. 'gun, weapon' (-> negative prompt)")
    masking.add_argument("--track-box", action="append", help="X0,Y0,X1,Y1[@FRAME]: track this object")
    masking.add_argument(
        "--track-points",
        action="append",
        help="X,Y[,X,Y...][@FRAME]: clicks on one object; -X,Y is a negative click",
    )
    masking.add_argument("--segment", help="track every instance of this phrase (SAM 3)")
    masking.add_argument("--track-model", help="SAM 2 / SAM 3 weights: hub id or local folder")

    control = parser.add_argument_group("control")
    control.add_argument(
        "--kind",
        help="gray (colourise), edges (Canny line drawing), scribble (simplified thick lines), depth "
        "(Depth Anything V2), pose (ViTPose skeletons), layout (the outline of the object given by "
        "--bbox/--track-*/--mask/--polygon); for the others --mask/--bbox/--polygon/--track-* restrict "
        "the control to a region",
    )
    control.add_argument(
        "--control-model",
        help="depth: a depth model (default depth-anything/Depth-Anything-V2-Small-hf); pose: a ViTPose "
        "model (default usyd-community/vitpose-base-simple); hub id or local folder",
    )
    control.add_argument(
        "--person-model",
        help="pose without a mask: the person detector (default PekingU/rtdetr_r50vd_coco_o365); with a "
        "mask the person is the mask's box on each frame",
    )

    outpaint = parser.add_argument_group("outpaint")
    outpaint.add_argument("--ratio", type=float, help="scale the content to R (0 < R < 1) and centre it")
    outpaint.add_argument("--expand", help="L,T,R,B pixels of band; the content fills the inner box")
    outpaint.add_argument("--auto-refs", type=int, help="add K mood crops of the source as references")

    frames = parser.add_argument_group("firstframe / lastframe / firstlast / keyframes / extend")
    frames.add_argument("--image", help="the first (or last) frame")
    frames.add_argument("--image2", help="firstlast: the last frame")
    frames.add_argument("--key", action="append", help="keyframes: FRAME=IMAGE (repeatable)")
    frames.add_argument("--every", type=int, help="keyframes from --video: one every K frames")
    frames.add_argument(
        "--strategy", choices=("naive", "aligned", "anchor"), help="keyframe placement (aligned)"
    )
    frames.add_argument("--anchor-px", type=int, help="anchor: KEEP strip width in pixels (16)")
    frames.add_argument(
        "--anchor-edge", choices=("bottom", "top", "left", "right"), help="anchor strip (bottom)"
    )
    frames.add_argument("--keep", type=int, help="extend: keep the first N frames of --video")
    parser.set_defaults(handler=handle)


def handle(args: argparse.Namespace) -> int:
    from ..tasks import prepare

    skip = ("task", "out", "command", "handler")
    options = {k: v for k, v in vars(args).items() if k not in skip and v is not None}
    if len(options.get("bbox") or ()) == 1:
        options["bbox"] = options["bbox"][0]  # one box: recorded as given, as before keyed boxes
    job = prepare(args.task, out=args.out, **options)
    geometry = job.geometry
    print(
        f"{job.task}: {geometry.frames} frames {geometry.width}x{geometry.height} at {job.fps:g} fps, "
        f"{len(job.refs)} reference(s), {job.generate_share():.1%} GENERATE"
    )
    for note in job.notes:
        print(f"  note: {note}")
    from ..audit import audit_job

    print(audit_job(job).text())
    print(f"job written to {job.path}")
    sys.stdout.flush()
    return 0
