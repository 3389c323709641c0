"""Options of ``vacelab prepare``: one dataclass, the parsers of their text forms, which task takes which.

Field names are the CLI long options with dashes as underscores. The Python API accepts either the CLI
text form (``bbox="10,20,200,160"``) or parsed values (``bbox=(10, 20, 200, 160)``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, fields

from ..errors import InputError
from ..geometry import DEFAULT_FRAMES, default_overlap, is_valid_frame_count

REMOVE_GROW = 8  # px: covers the object's edge at VAE resolution (one 8x8 latent pixel)
ANCHOR_EDGES = ("bottom", "top", "left", "right")
STRATEGIES = ("naive", "aligned", "anchor")
CONTROL_KINDS = ("gray", "edges", "scribble", "depth", "pose", "layout")
MODEL_KINDS = ("depth", "pose")  # control kinds drawn by a model (--control-model)
MASK_OPTIONS = ("mask", "bbox", "polygon", "track_box", "track_points", "segment")  # a region to control


@dataclass
class Options:
    """Every ``vacelab prepare`` option; ``None`` means "not given"."""

    # common
    video: str | None = None
    size: str = "480p"
    frames: int | str | None = None
    fps: float | str | None = None  # None: the task's default (tasks.source.job_fps); "source": the clip's
    start: float = 0.0
    ref: list = field(default_factory=list)
    window: int | None = None
    overlap: int | None = None
    prompt: str = ""
    negative_prompt: str = ""
    # inpaint / remove
    mask: str | None = None
    bbox: object = None
    polygon: str | None = None
    coords: str = "job"
    grow: int | None = None
    fill_feather: int = 0
    fill: str | None = None
    what: str | None = None
    track_box: list = field(default_factory=list)
    track_points: list = field(default_factory=list)
    segment: str | None = None
    track_model: str | None = None
    # outpaint
    ratio: float | None = None
    expand: object = None
    auto_refs: int = 0
    # first / last frame
    image: str | None = None
    image2: str | None = None
    # keyframes
    key: list = field(default_factory=list)
    every: int | None = None
    strategy: str = "aligned"
    anchor_px: int = 16
    anchor_edge: str = "bottom"
    # extend
    keep: int | None = None
    # control
    kind: str | None = None
    control_model: str | None = None
    person_model: str | None = None

    def given(self) -> dict:
        """The options that differ from their defaults (what ``job.json`` records as parameters)."""
        defaults = Options()
        return {
            f.name: getattr(self, f.name)
            for f in fields(self)
            if getattr(self, f.name) != getattr(defaults, f.name)
        }


COMMON = {"video", "size", "frames", "fps", "start", "ref", "window", "overlap", "prompt", "negative_prompt"}
MASKING = {"mask", "bbox", "polygon", "coords", "grow", "fill_feather", "fill"}
MASKING |= {"track_box", "track_points", "segment", "track_model"}
CONTROL = {"kind", "control_model", "person_model"}
TASK_OPTIONS = {
    "inpaint": COMMON | MASKING,
    "remove": COMMON | MASKING | {"what"},
    "outpaint": COMMON | {"ratio", "expand", "auto_refs", "fill"},
    "firstframe": COMMON | {"image"},
    "lastframe": COMMON | {"image"},
    "firstlast": COMMON | {"image", "image2"},
    "keyframes": COMMON | {"key", "every", "strategy", "anchor_px", "anchor_edge"},
    "extend": COMMON | {"keep"},
    "reference": {"size", "frames", "fps", "ref", "prompt", "negative_prompt"},
    "control": COMMON | CONTROL | MASKING - {"grow", "fill_feather", "fill"},
}


def make_options(task: str, options: dict) -> Options:
    """Build :class:`Options` for ``task``; refuse unknown options and options the task does not take."""
    if task not in TASK_OPTIONS:
        raise InputError(f"unknown task {task!r}; choose from {', '.join(TASK_OPTIONS)}")
    known = {f.name for f in fields(Options)}
    for name in options:
        if name not in known:
            raise InputError(f"unknown option {name!r}")
    opts = Options(**{k: v for k, v in options.items() if v is not None})
    defaults = Options()
    for name in known - TASK_OPTIONS[task]:
        if getattr(opts, name) != getattr(defaults, name):
            raise InputError(f"does not apply to {task}", field=name)
    opts.frames = frame_count(opts.frames)  # "17" from the command line is recorded as 17
    if opts.fps not in (None, "source") and not _number(opts.fps, lambda v: v > 0):
        raise InputError("must be a finite number > 0, or source", field="fps", value=opts.fps)
    if not _number(opts.start, lambda v: v >= 0):
        raise InputError("must be a finite number of seconds >= 0", field="start", value=opts.start)
    if task == "control":
        check_control(opts)
    return opts


def check_control(opts: Options) -> None:
    """``control``: a known ``kind``; a model only for the kinds a model draws, a detector only for pose."""
    if opts.kind is None:
        raise InputError(f"required: {', '.join(CONTROL_KINDS)}", field="kind")
    if opts.kind not in CONTROL_KINDS:
        raise InputError(f"choose from {', '.join(CONTROL_KINDS)}", field="kind", value=opts.kind)
    if opts.control_model and opts.kind not in MODEL_KINDS:
        raise InputError(
            f"kind {opts.kind} is drawn without a model (only {' and '.join(MODEL_KINDS)} use one)",
            field="control_model",
            value=opts.control_model,
        )
    if opts.person_model and opts.kind != "pose":
        raise InputError("only kind pose finds persons", field="person_model", value=opts.person_model)
    masked = any(getattr(opts, name) for name in MASK_OPTIONS)
    if opts.person_model and masked:
        raise InputError(
            "with a mask the person is the mask's box on each frame: no detector runs",
            field="person_model",
            value=opts.person_model,
        )
    if opts.kind == "layout" and not masked:
        raise InputError(
            "draws the outline of an object: give it with a box, keyed boxes, a mask, a polygon or a "
            "tracked object",
            field="kind",
            value="layout",
        )


def _number(value, ok) -> bool:
    """``value`` is a finite int or float (not a bool) for which ``ok(value)`` holds."""
    return (
        isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value) and ok(value)
    )


# ------------------------------------------------------------------------------------------------ parsers
def numbers(value, count: int | None, field: str, *, kind=int) -> tuple:
    """Parse ``"a,b,c"`` (or a sequence) into a tuple of ``count`` numbers."""
    try:
        items = value.split(",") if isinstance(value, str) else list(value)
        parsed = tuple(kind(str(v).strip()) if isinstance(v, str) else kind(v) for v in items)
    except (TypeError, ValueError):
        raise InputError("expected comma-separated numbers", field=field, value=repr(value)) from None
    if not all(math.isfinite(v) for v in parsed):
        raise InputError("expected finite numbers", field=field, value=repr(value))
    if count is not None and len(parsed) != count:
        raise InputError(
            f"expected {count} comma-separated numbers, got {len(parsed)}", field=field, value=repr(value)
        )
    return parsed


def split_at_frame(value, field: str) -> tuple[str, int | None]:
    """Split ``"...@FRAME"`` into the text before ``@`` and the frame (None when absent)."""
    if not isinstance(value, str):
        return value, None
    text, at, frame = value.partition("@")
    if not at:
        return text, None
    try:
        return text, int(frame)
    except ValueError:
        raise InputError("the frame after @ must be an integer", field=field, value=repr(value)) from None


def frame_count(value, field: str = "frames") -> int | str | None:
    """``None`` (default), ``"all"`` or a 4n+1 integer."""
    if value is None or value == "all":
        return value
    try:
        frames = int(value)
    except (TypeError, ValueError):
        raise InputError(
            "expected a 4n+1 integer (e.g. 81) or 'all'", field=field, value=repr(value)
        ) from None
    if not is_valid_frame_count(frames):
        lower = max(1, (frames - 1) // 4 * 4 + 1)
        raise InputError(
            f"not 4n+1 (the VAE encodes 4n+1 frames); use {lower} or {lower + 4}", field=field, value=frames
        )
    return frames


def key_spec(value) -> tuple[int, str]:
    """``"FRAME=IMAGE"`` (or a ``(frame, image)`` pair) -> ``(frame, image)``."""
    if not isinstance(value, str):
        frame, image = value
        return int(frame), str(image)
    frame, eq, image = value.partition("=")
    try:
        if not eq or not image:
            raise ValueError
        return int(frame), image
    except ValueError:
        raise InputError("expected FRAME=IMAGE, e.g. 0=first.png", field="key", value=repr(value)) from None


def window_settings(opts: Options) -> tuple[int, int]:
    """The ``--window`` / ``--overlap`` to plan with (defaults: 81 and ``geometry.default_overlap``: 29)."""
    window = DEFAULT_FRAMES if opts.window is None else opts.window
    try:
        window = int(window)
        overlap = default_overlap(window) if opts.overlap is None else int(opts.overlap)
    except (TypeError, ValueError):
        raise InputError(
            f"window {opts.window!r} / overlap {opts.overlap!r}: expected integers", field="window"
        ) from None
    return window, overlap
