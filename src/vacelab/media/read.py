"""Reading video, images and masks (PyAV, Pillow), and the resize policy.

Policy (documented in README): sources are resized to the target size by *cover and centre crop* (the
official VACE policy): scale so both sides cover the target, then crop the centre. Frame rate is
resampled by picking, for each output time ``start + i / fps``, the source frame nearest in time, so a
clip keeps its real-time speed. Arrays are uint8 RGB ``[F, H, W, 3]``; masks are bool ``[F, H, W]`` with
True = GENERATE.
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

import numpy as np

from ..errors import InputError

VIDEO_SUFFIXES = {".mp4", ".mov", ".mkv", ".webm", ".gif", ".avi", ".m4v"}
IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".webp", ".bmp", ".tif", ".tiff"}


def cover_size(src_hw: tuple[int, int], dst_hw: tuple[int, int]) -> tuple[int, int]:
    """Size (h, w) to scale ``src_hw`` to so it covers ``dst_hw`` with the aspect kept."""
    scale = max(dst_hw[0] / src_hw[0], dst_hw[1] / src_hw[1])
    return max(dst_hw[0], round(src_hw[0] * scale)), max(dst_hw[1], round(src_hw[1] * scale))


def cover_placement(src_hw: tuple[int, int], dst_hw: tuple[int, int]) -> tuple[float, float, int, int]:
    """Where cover-and-centre-crop puts a ``src_hw`` image into ``dst_hw``: ``(scale_y, scale_x, top,
    left)``; source pixel (x, y) lands at (x * scale_x - left, y * scale_y - top)."""
    scaled = cover_size(src_hw, dst_hw)
    top, left = (scaled[0] - dst_hw[0]) // 2, (scaled[1] - dst_hw[1]) // 2
    return scaled[0] / src_hw[0], scaled[1] / src_hw[1], top, left


def centre_crop(image: np.ndarray, dst_hw: tuple[int, int]) -> np.ndarray:
    """Crop the centre ``dst_hw`` out of an [H, W, ...] array."""
    top = (image.shape[0] - dst_hw[0]) // 2
    left = (image.shape[1] - dst_hw[1]) // 2
    return image[top : top + dst_hw[0], left : left + dst_hw[1]]


def resize_image(image: np.ndarray, dst_hw: tuple[int, int], *, nearest: bool = False) -> np.ndarray:
    """Resize an [H, W, 3] uint8 or [H, W] array to exactly ``dst_hw`` (no aspect handling)."""
    from PIL import Image

    if image.shape[:2] == tuple(dst_hw):
        return image
    pil = Image.fromarray(image)
    resample = Image.Resampling.NEAREST if nearest else Image.Resampling.BICUBIC
    return np.asarray(pil.resize((dst_hw[1], dst_hw[0]), resample))


def cover_crop(image: np.ndarray, dst_hw: tuple[int, int], *, nearest: bool = False) -> np.ndarray:
    """Cover-resize then centre-crop an image to ``dst_hw`` (the official VACE policy)."""
    return centre_crop(resize_image(image, cover_size(image.shape[:2], dst_hw), nearest=nearest), dst_hw)


def fit_on_canvas(image: np.ndarray, dst_hw: tuple[int, int], fill: int = 255) -> np.ndarray:
    """Scale to fit inside ``dst_hw`` and centre it on a ``fill`` canvas (how VACE places references)."""
    scale = min(dst_hw[0] / image.shape[0], dst_hw[1] / image.shape[1])
    inner = (max(1, int(image.shape[0] * scale)), max(1, int(image.shape[1] * scale)))
    canvas = np.full((*dst_hw, 3), fill, np.uint8)
    top, left = (dst_hw[0] - inner[0]) // 2, (dst_hw[1] - inner[1]) // 2
    canvas[top : top + inner[0], left : left + inner[1]] = resize_image(image, inner)
    return canvas


# ------------------------------------------------------------------------------------------------ reading
MAX_IMAGE_PIXELS = 8192 * 8192  # the largest image vacelab reads (64 MP): 8K video is 33 MP


def _open_image(path: str | os.PathLike):
    """The decoded Pillow image at ``path``; one-line errors for a missing, non-regular, unreadable or
    oversized file (a decompression bomb is refused before its pixels are decoded)."""
    from PIL import Image, UnidentifiedImageError

    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path}: " + ("not a regular file" if path.exists() else "no such image file"))
    try:
        with Image.open(path) as pil:
            width, height = pil.size
            if width * height > MAX_IMAGE_PIXELS:
                limit = MAX_IMAGE_PIXELS // 10**6
                raise InputError(f"{path}: image is {width}x{height}, more than the {limit} MP vacelab reads")
            pil.load()
            return pil
    except InputError:
        raise
    except Image.DecompressionBombError:
        raise InputError(f"{path}: image is too large to read (a decompression bomb?)") from None
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as exc:
        raise InputError(f"{path}: not a readable image ({exc.__class__.__name__})") from None


def _has_alpha(pil) -> bool:
    return pil.mode in ("RGBA", "LA", "PA") or "transparency" in pil.info


def read_image(path: str | os.PathLike) -> np.ndarray:
    """Read an image (a reference, a keyframe, a frame) as uint8 RGB [H, W, 3]; transparency is
    flattened onto white, the canvas VACE places references on."""
    from PIL import Image

    pil = _open_image(path)
    if _has_alpha(pil):
        rgba = pil.convert("RGBA")
        pil = Image.alpha_composite(Image.new("RGBA", rgba.size, (255, 255, 255, 255)), rgba)
    return np.asarray(pil.convert("RGB"))


def read_mask_image(path: str | os.PathLike) -> np.ndarray:
    """Read a mask image as uint8 [H, W], 255 = GENERATE, 0 = KEEP (thresholded later).

    Colours: the brightest channel counts (white = GENERATE); a mask of only 0 and 1 values is read as
    0 = KEEP, 1 = GENERATE. Transparency: a transparent pixel is not painted (KEEP), so white strokes on
    a transparent layer are what is generated; when every painted pixel has one colour, the shape is in
    the alpha channel alone and opaque = GENERATE whatever that colour is.
    """
    pil = _open_image(path)
    if not _has_alpha(pil):
        gray = np.asarray(pil.convert("RGB")).max(axis=-1)
        lossless = pil.format in ("PNG", "BMP", "TIFF")
        return gray * np.uint8(255) if lossless and gray.max() == 1 else gray
    rgba = np.asarray(pil.convert("RGBA"))
    colour, alpha = rgba[..., :3], rgba[..., 3]
    painted = colour[alpha > 0]
    if (alpha < 255).any() and len(painted) and (painted == painted[0]).all():
        return alpha
    return (colour.max(axis=-1).astype(np.uint16) * alpha // 255).astype(np.uint8)


def list_image_folder(folder: Path) -> list[Path]:
    """The images of a folder in natural (numeric-aware) name order."""
    import re

    def key(p: Path):
        return [int(t) if t.isdigit() else t.lower() for t in re.split(r"(\d+)", p.name)]

    files = sorted((p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES), key=key)
    if not files:
        raise InputError(f"{folder}: folder holds no images ({', '.join(sorted(IMAGE_SUFFIXES))})")
    return files


def read_video(
    path: str | os.PathLike,
    *,
    size: tuple[int, int] | None = None,
    fps: float | None = None,
    start: float = 0.0,
    max_frames: int | None = None,
    nearest: bool = False,
    mask: bool = False,
    damage: list[str] | None = None,
) -> tuple[np.ndarray, float]:
    """Decode a video file or image folder to uint8 [F, H, W, 3] and its frame rate (``mask``: uint8
    [F, H, W] mask brightness, images read by :func:`read_mask_image`).

    ``size`` (h, w): cover-resize and centre-crop every frame. ``fps``: resample in time to this rate
    (nearest source frame for each output time), starting at ``start`` seconds; ``max_frames`` stops
    early. Image folders are taken frame for frame at ``fps`` (default 16). A video that ends before the
    duration its container states, or whose decoding fails part-way, gives the frames before the damage
    and, when ``damage`` is a list, one line saying so appended to it.
    """
    path = Path(path)
    if not path.exists():
        raise InputError(f"{path}: no such file or folder")
    if not (path.is_file() or path.is_dir()):  # a FIFO or a device: opening it could block for ever
        raise InputError(f"{path}: not a regular file or folder")
    if path.is_dir():
        files = list_image_folder(path)
        rate = fps or 16.0
        first = int(round(start * rate))
        files = files[first : None if max_frames is None else first + max_frames]
        frames = [(read_mask_image if mask else read_image)(f) for f in files]
        if not frames:
            raise InputError(f"{path}: no images after --start {start}")
        if size is not None:
            frames = [cover_crop(f, size, nearest=nearest) for f in frames]
        elif len({f.shape for f in frames}) > 1:
            raise InputError(f"{path}: images differ in size")
        return np.stack(frames), rate
    if path.suffix.lower() in IMAGE_SUFFIXES:
        image = (read_mask_image if mask else read_image)(path)
        if size is not None:
            image = cover_crop(image, size, nearest=nearest)
        return image[None], fps or 16.0
    video, rate = _decode(path, size=size, fps=fps, start=start, max_frames=max_frames, nearest=nearest,
                          damage=damage)  # fmt: skip
    return (video.max(axis=-1) if mask else video), rate


def iter_video(path: str | os.PathLike):
    """Every frame of a video file as uint8 RGB [H, W, 3], decoded as it is read (no resampling: for
    files vacelab wrote itself, whose frames are the job's)."""
    import av

    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        for frame in container.decode(stream):
            yield frame.to_ndarray(format="rgb24")


@contextlib.contextmanager
def _opened(path):
    """The container of the video file ``path`` and its first video stream (threaded decoding)."""
    import av

    try:
        container = av.open(str(path))
    except av.error.FFmpegError as exc:
        raise InputError(f"{path}: not a readable video ({exc.strerror or exc.__class__.__name__})") from None
    with container:
        if not container.streams.video:
            raise InputError(f"{path}: holds no video stream")
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        yield container, stream


def _decode(path, *, size, fps, start, max_frames, nearest, damage) -> tuple[np.ndarray, float]:
    with _opened(path) as (container, stream):
        rate = fps or float(stream.average_rate or stream.guessed_rate or 16)
        frames = _FrameBuffer(_expected_frames(container, stream, start, rate, max_frames))
        for array in _frames(path, container, stream, size, rate, start, max_frames, nearest, damage):
            frames.append(array)
        return frames.array(), rate


def stream_video(path: str | os.PathLike, *, fps: float, start: float = 0.0, max_frames: int | None = None):
    """The frames :func:`read_video` gives for the video file ``path`` at ``fps`` from ``start`` seconds
    (at most ``max_frames``; no resize), decoded as they are read: uint8 [H, W, 3] each, one held at a time.
    A frame repeated to fill the rate may be the same array twice: not to be written to."""
    with _opened(path) as (container, stream):
        yield from _frames(path, container, stream, None, fps, start, max_frames, False, None)


def _frames(path, container, stream, size, rate, start, max_frames, nearest, damage):
    """The decoding loop of :func:`_decode` and :func:`stream_video`: the source frame nearest each output
    time ``start + i / rate``, at ``size``; damage found is said in ``damage`` (a list) when given."""
    import av

    src_rate = float(stream.average_rate or stream.guessed_rate or 16)
    scaled = None
    if size is not None:
        scaled = cover_size((stream.codec_context.height, stream.codec_context.width), size)
    count = 0
    next_time = start
    previous = None  # (time, array) of the last decoded source frame
    last_time = None  # of the last decoded source frame, used or not
    try:
        for frame in container.decode(stream):
            if frame.time is None:
                continue
            last_time = frame.time
            if frame.time + 0.5 / src_rate < next_time:
                continue  # before the next output time by more than half a source frame
            array = _to_array(frame, scaled, size, nearest)
            while frame.time + 0.5 / src_rate >= next_time:
                use_previous = previous is not None and abs(previous[0] - next_time) < abs(
                    frame.time - next_time
                )
                yield previous[1] if use_previous else array
                count += 1
                next_time = start + count / rate
                if max_frames is not None and count >= max_frames:
                    return
            previous = (frame.time, array)
    except av.error.FFmpegError as exc:
        reason = exc.strerror or exc.__class__.__name__
        if not count:
            raise InputError(f"{path}: cannot decode video ({reason})") from None
        stopped = f"decoding failed after {last_time:.2f} s ({reason})"
    else:
        stated = ((container.start_time or 0) + (container.duration or 0)) / 1e6
        stopped = None
        if container.duration and last_time is not None and last_time + 1.5 / src_rate < stated:
            stopped = f"the file says {stated:.2f} s, decoding ended at {last_time:.2f} s"
    if stopped and damage is not None and count:
        damage.append(f"{path} is truncated or damaged: {stopped}; the frames after it are missing")
    if not count:
        raise InputError(f"{path}: no frames at or after --start {start}s")


def _expected_frames(container, stream, start: float, rate: float, max_frames: int | None) -> int:
    """How many frames :func:`_decode` will give, from the length the file states (a few more: the
    buffer need not grow for a rounding), at most ``max_frames``."""
    seconds = (container.duration or 0) / 1e6
    if stream.duration:
        seconds = float(stream.duration * stream.time_base)
    expected = int(max(0.0, seconds - start) * rate) + 16
    return expected if max_frames is None else min(expected, max_frames)


class _FrameBuffer:
    """Decoded frames written into one preallocated array as they come (a list of frames stacked at the
    end holds the clip twice); it grows by half when the file understated its length."""

    def __init__(self, capacity: int):
        self.capacity, self.count, self.frames = max(1, capacity), 0, None

    def __len__(self) -> int:
        return self.count

    def append(self, frame: np.ndarray) -> None:
        if self.frames is None:
            try:
                self.frames = np.empty((self.capacity, *frame.shape), frame.dtype)
            except MemoryError:  # a length stated beyond any memory (a damaged file): grow as frames come
                self.frames = np.empty((1, *frame.shape), frame.dtype)
        elif self.count == len(self.frames):
            grown = np.empty((len(self.frames) * 3 // 2 + 1, *frame.shape), frame.dtype)
            grown[: self.count] = self.frames
            self.frames = grown
        self.frames[self.count] = frame
        self.count += 1

    def array(self) -> np.ndarray:
        """The frames so far, uint8 [N, H, W, 3] (the buffer's unused end is never written: not resident)."""
        return self.frames[: self.count]


def _to_array(frame, scaled, size, nearest) -> np.ndarray:
    if scaled is None:
        return frame.to_ndarray(format="rgb24")
    interpolation = "POINT" if nearest else "AREA"
    array = frame.to_ndarray(width=scaled[1], height=scaled[0], format="rgb24", interpolation=interpolation)
    return np.ascontiguousarray(centre_crop(array, size))


def as_frames(video, what: str) -> np.ndarray:
    """``video`` as a uint8 ``[F, H, W, 3]`` array; anything else is an :class:`InputError` naming ``what``
    (the caller: tracking, depth, pose)."""
    video = np.asarray(video)
    if video.dtype != np.uint8 or video.ndim != 4 or video.shape[-1] != 3 or min(video.shape[:3]) < 1:
        raise InputError(f"{what} needs a uint8 video [F, H, W, 3], got {video.dtype} {list(video.shape)}")
    return video


def to_binary_mask(gray: np.ndarray, source: str) -> np.ndarray:
    """Threshold 8-bit mask values at 128 (white = GENERATE); refuse images that are not near-binary."""
    ambiguous = np.count_nonzero((gray > 48) & (gray < 208)) / max(gray.size, 1)
    if ambiguous > 0.05:
        raise InputError(
            f"{source}: not a black/white mask ({ambiguous:.0%} of pixels are mid-gray); "
            "use white = generate, black = keep"
        )
    return gray >= 128


def read_mask(
    path: str | os.PathLike,
    *,
    size: tuple[int, int],
    frames: int,
    fps: float | None = None,
    start: float = 0.0,
    source_hw: tuple[int, int] | None = None,
    notes: list[str] | None = None,
) -> np.ndarray:
    """Read a mask video, one image (used for every frame) or an image folder as bool [frames, H, W].

    A mask longer than the job is cut to ``frames``, and said in ``notes`` (when given) with any damage
    found while decoding it.

    With ``source_hw`` the mask must be exactly the job's ``size`` or the source video's size (then it is
    cover-resized and cropped like the source); without it, any size of the job's aspect is accepted.
    """
    path = Path(path)
    damage: list[str] = []
    video, _ = read_video(
        path, size=None, fps=fps, start=start, max_frames=frames + 1, mask=True, damage=damage
    )
    if notes is not None:
        notes += [f"warning: {line}" for line in damage]
        if len(video) > frames:
            notes.append(
                f"the mask {path.name} has more frames than the job's {frames}: using the first {frames}"
            )
    video = video[:frames]
    if video.shape[0] == 1:
        video = np.repeat(video, frames, axis=0)
    if video.shape[0] < frames:
        raise InputError(f"{path}: mask has {video.shape[0]} frames, the job needs {frames}")
    src_hw = video.shape[1:3]
    if source_hw is not None and src_hw not in (tuple(size), tuple(source_hw)):
        raise InputError(
            f"{path}: mask is {src_hw[1]}x{src_hw[0]}; it must be the source's {source_hw[1]}x{source_hw[0]} "
            f"or the job's {size[1]}x{size[0]}"
        )
    if source_hw is None and abs(src_hw[0] / src_hw[1] - size[0] / size[1]) > 0.02 and src_hw != tuple(size):
        raise InputError(
            f"{path}: mask is {src_hw[1]}x{src_hw[0]}, its aspect differs from the job's {size[1]}x{size[0]}"
        )
    binary = to_binary_mask(video, str(path))
    if src_hw != tuple(size):
        binary = np.stack([cover_crop(m.astype(np.uint8) * 255, size, nearest=True) >= 128 for m in binary])
    return binary
