"""Encoding video (H.264/H.265 mp4, ProRes mov, with an audio track copied from a source), GIF and PNG,
each written atomically."""

from __future__ import annotations

import os

import numpy as np

from .files import atomic_path

CODECS = {  # --codec -> (encoder, pixel format, container format)
    "h264": ("libx264", "yuv420p", "mp4"),
    "h265": ("libx265", "yuv420p", "mp4"),
    "prores": ("prores_ks", "yuv422p10le", "mov"),  # ProRes 422 HQ, what editors import as-is
}


def write_mp4(
    path: str | os.PathLike, frames, fps: float, *, crf: int = 18, preset: str = "veryfast"
) -> None:
    """Encode uint8 [F, H, W, 3] (or bool/uint8 [F, H, W] masks as gray) as H.264 yuv420p, atomically.

    ``frames`` may also be any iterable of such frames (e.g. a generator: no whole-clip array needed).
    ``preset``: x264 speed preset (``ultrafast`` is about 2x faster than ``veryfast``, files ~5x larger).
    """
    write_video(path, frames, fps, crf=crf, preset=preset)


def write_video(
    path: str | os.PathLike,
    frames,
    fps: float,
    *,
    codec: str = "h264",
    crf: int = 18,
    preset: str = "veryfast",
    audio: tuple[str | os.PathLike, float, float] | None = None,
) -> bool:
    """Encode frames as :func:`write_mp4` does, with ``codec`` (:data:`CODECS`), atomically.

    ``audio`` = ``(source, start, end)``: the source's first audio track between ``start`` and ``end``
    seconds is carried over, its packets copied (no re-encode) and interleaved with the video. Returns
    whether an audio track was written (``False`` when the source has none).
    """
    from fractions import Fraction

    import av

    encoder, pix_fmt, container_format = CODECS[codec]
    with atomic_path(path) as tmp, av.open(str(tmp), "w", format=container_format) as container:
        sound = _AudioCopy(container, *audio) if audio is not None else None
        rate = Fraction(fps).limit_denominator(1001)
        stream = None
        for index, array in enumerate(frames):
            gray = array.ndim == 2  # masks: encoded from 8-bit gray frames, never expanded to RGB
            height, width = array.shape[:2]
            if stream is None:
                stream = container.add_stream(encoder, rate=rate)
                stream.width, stream.height = width + width % 2, height + height % 2
                stream.pix_fmt = pix_fmt
                stream.options = (
                    {"crf": str(crf), "preset": preset} if codec != "prores" else {"profile": "3"}
                )
                if codec == "h265":
                    stream.codec_tag = "hvc1"  # how Apple players and editors expect HEVC in mp4
                    stream.options["x265-params"] = "log-level=error"  # x265 prints its settings otherwise
                stream.thread_type = "AUTO"
            if gray:
                array = array.astype(np.uint8) * np.uint8(255 if array.dtype == bool else 1)
            if array.shape[:2] != (stream.height, stream.width):
                pads = [(0, stream.height - height), (0, stream.width - width)]
                pads += [(0, 0)] * (array.ndim - 2)
                array = np.pad(array, pads, "edge")
            frame = av.VideoFrame.from_ndarray(
                np.ascontiguousarray(array), format="gray" if gray else "rgb24"
            )
            if sound is not None:
                sound.mux_until(index / float(rate))
            container.mux(stream.encode(frame))
        if stream is None:
            raise ValueError("write_video: no frames")
        container.mux(stream.encode())
        if sound is not None:
            sound.mux_until(float("inf"))
    return bool(sound and sound.packets_written)


class _AudioCopy:
    """The packets of a source's first audio track in ``[start, end)`` s, copied into ``container``."""

    def __init__(self, container, source, start: float, end: float):
        from collections import deque

        import av

        self.container, self.stream, self.pending, self.packets_written = container, None, deque(), 0
        with av.open(str(source)) as reader:
            if not reader.streams.audio:
                return
            track = reader.streams.audio[0]
            shift = round(start / track.time_base)  # the output starts at the job's start in the source
            for packet in reader.demux(track):
                if packet.pts is None or packet.size == 0:
                    continue
                when = float(packet.pts * track.time_base)
                if when < start - 1e-6:
                    continue
                if when >= end:
                    break
                packet.pts -= shift
                packet.dts = packet.pts if packet.dts is None else packet.dts - shift
                self.pending.append((when - start, packet))
            self.stream = container.add_stream_from_template(track)
        for _, packet in self.pending:
            packet.stream = self.stream

    def mux_until(self, seconds: float) -> None:
        """Mux the pending packets that play before ``seconds`` into the output."""
        while self.pending and self.pending[0][0] <= seconds:
            self.container.mux(self.pending.popleft()[1])
            self.packets_written += 1


def write_gif(
    path: str | os.PathLike, frames, fps: float, *, max_width: int = 480, colors: int = 255
) -> None:
    """Write an animated GIF (downscaled to ``max_width``), atomically.

    One palette of ``colors`` colours, computed from four frames spread over the clip, serves every frame:
    about 6x faster than a palette per frame, and no palette flicker. Fewer colours, smaller file.
    ``frames``: uint8 [F, H, W, 3], or anything indexed by frame with a ``shape`` (a ``FrameReader``):
    frames are read, scaled and quantised one at a time.
    """
    from PIL import Image

    count, frame_h, frame_w = frames.shape[:3]

    def scaled(f: int) -> Image.Image:
        image = Image.fromarray(np.ascontiguousarray(frames[f]))
        if frame_w > max_width:
            height = max(2, round(frame_h * max_width / frame_w))
            image = image.resize((max_width, height), Image.Resampling.BILINEAR)
        return image

    picks = sorted({round(i * (count - 1) / 3) for i in range(4)})
    mosaic = Image.fromarray(np.concatenate([np.asarray(scaled(i)) for i in picks], axis=0))
    palette = mosaic.quantize(colors, method=Image.Quantize.MEDIANCUT)
    images = (scaled(f).quantize(palette=palette, dither=Image.Dither.NONE) for f in range(count))
    with atomic_path(path) as tmp, open(tmp, "wb") as handle:
        stream_gif(handle, images, round(1000 / fps))


def stream_gif(handle, images, duration: int) -> None:
    """Write palette images (Pillow, mode P, one palette) to ``handle`` as a GIF looping for ever, frame by
    frame: the bytes of Pillow's ``save(save_all=True, loop=0, optimize=False, duration=duration)``
    (each frame after the first cut to where it differs from the one before, with its own colour table; a
    frame equal to the one before lengthens it instead), without holding every frame as that writer does
    (~130 KB a frame at 480 px wide): only the frame waiting for its duration is held."""
    held, previous = None, None  # the frame not yet written: [image, changed box (None: the first), duration]
    for image in images:
        pixels = np.asarray(image)
        box = None
        if previous is not None:
            changed = pixels != previous
            rows, cols = np.flatnonzero(changed.any(axis=1)), np.flatnonzero(changed.any(axis=0))
            if not len(rows):
                held[2] += duration
                continue
            _write_gif_frame(handle, *held)
            box = (int(cols[0]), int(rows[0]), int(cols[-1]) + 1, int(rows[-1]) + 1)
        held, previous = [image, box, duration], pixels
    if held is None:
        raise ValueError("write_gif: no frames")
    if held[1] is None:  # one distinct frame: Pillow writes it as a still image (interlaced)
        held[0].save(handle, format="GIF", save_all=True, duration=held[2], loop=0, optimize=False)
        return
    _write_gif_frame(handle, *held)
    handle.write(b";")  # the GIF trailer


def _write_gif_frame(handle, image, box, duration: int) -> None:
    """One frame of :func:`stream_gif` (Pillow's own GIF chunk writers): the first (``box`` None) after
    the GIF's header, a later one cut to ``box`` with its own colour table."""
    from PIL import GifImagePlugin

    if box is None:
        info = {"loop": 0, "duration": duration, "optimize": False}
        header, _ = GifImagePlugin.getheader(image, None, info)
        chunks = [*header, *GifImagePlugin.getdata(image, (0, 0), duration=duration)]
    else:
        part = image.crop(box) if box != (0, 0, *image.size) else image
        chunks = GifImagePlugin.getdata(part, box[:2], duration=duration, include_color_table=True)
    handle.write(b"".join(chunks))


def write_png(path: str | os.PathLike, image: np.ndarray) -> None:
    """Write an image losslessly as PNG, atomically."""
    from PIL import Image

    with atomic_path(path) as tmp:
        Image.fromarray(image).save(tmp, format="PNG")
