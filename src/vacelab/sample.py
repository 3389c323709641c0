"""The bundled sample clip: a synthetic shot made by this module, shipped as a small H.264 file.

A steel-beam roof lattice over a horizon and textured ground (structure worth outpainting), a dark
gun-like object that crosses the frame (something to remove), and a slow camera pan. Everything is drawn
from a fixed seed; ``python -m vacelab.sample`` regenerates ``assets/sample.mp4``.

``sample_clip()`` returns the decoded file (what users and tests work on); ``sample_mask()`` the object's
true mask, drawn from the same geometry.
"""

from __future__ import annotations

import functools
from pathlib import Path

import numpy as np

from .errors import InputError

FRAMES, HEIGHT, WIDTH, FPS = 97, 480, 832, 16
PAN_PX = 1  # camera pan per frame (the world moves left)
SEED = 2025
ASSET = Path(__file__).parent / "assets" / "sample.mp4"


def sample_path() -> Path:
    """Path of the bundled sample clip (H.264 mp4, 97 frames, 832x480, 16 fps)."""
    return ASSET


@functools.lru_cache(maxsize=1)
def _decoded() -> tuple[np.ndarray, float]:
    from .media import read_video

    frames, fps = read_video(ASSET)
    frames.setflags(write=False)
    return frames, fps


def sample_clip() -> tuple[np.ndarray, float]:
    """The bundled sample decoded: uint8 [97, 480, 832, 3] and its fps (16)."""
    frames, fps = _decoded()
    return frames.copy(), fps


def sample_mask() -> np.ndarray:
    """The moving object's true mask, bool [97, 480, 832], True on the object."""
    return np.stack([_draw_object(i)[1] for i in range(FRAMES)])


def _object_shape(index: int) -> list[list[tuple[float, float]]]:
    """Polygons of the gun-like object in frame ``index``: barrel, body, grip (frame pixels)."""
    t = index / (FRAMES - 1)
    x = 110 + 560 * t
    y = 250 + 40 * np.sin(2 * np.pi * t)
    tilt = 0.15 * np.sin(3 * np.pi * t)
    parts = [
        [(0, -14), (150, -14), (150, 8), (0, 8)],  # barrel and slide
        [(-30, -20), (40, -20), (40, 18), (-30, 18)],  # body
        [(-20, 18), (12, 18), (2, 78), (-34, 74)],  # grip
        [(18, 18), (44, 18), (44, 34), (18, 34)],  # trigger guard
    ]
    cos, sin = np.cos(tilt), np.sin(tilt)
    return [[(x + px * cos - py * sin, y + px * sin + py * cos) for px, py in part] for part in parts]


def _draw_object(index: int, frame: np.ndarray | None = None) -> tuple[np.ndarray | None, np.ndarray]:
    from PIL import Image, ImageDraw

    mask_img = Image.new("L", (WIDTH, HEIGHT), 0)
    draw = ImageDraw.Draw(mask_img)
    for part in _object_shape(index):
        draw.polygon(part, fill=255)
    mask = np.asarray(mask_img) >= 128
    if frame is not None:
        shade = np.linspace(38, 70, HEIGHT, dtype=np.float32)[:, None, None]
        frame = np.where(mask[..., None], (shade + np.array([0, 2, 6], np.float32)).astype(np.uint8), frame)
    return frame, mask


def _world() -> np.ndarray:
    """The static scene, wider than the frame by the pan: uint8 [H, W + pan, 3]."""
    from PIL import Image, ImageDraw, ImageFilter

    rng = np.random.default_rng(SEED)
    width = WIDTH + PAN_PX * FRAMES
    horizon = int(HEIGHT * 0.62)
    y = np.arange(HEIGHT, dtype=np.float32)[:, None]
    sky = np.stack([150 + 60 * y / horizon, 175 + 45 * y / horizon, 215 + 20 * y / horizon], -1)
    world = np.broadcast_to(sky, (HEIGHT, width, 3)).astype(np.float32).copy()
    # ground: low-frequency noise (cheap to encode) over an earthy gradient
    coarse = rng.normal(size=(HEIGHT // 16 + 1, width // 16 + 1)).astype(np.float32)
    noise = np.asarray(Image.fromarray(coarse).resize((width, HEIGHT), Image.Resampling.BICUBIC))
    ground = np.array([118, 102, 84], np.float32) + 14 * noise[..., None]
    ground -= 0.25 * (y - horizon).clip(0)[..., None]
    world[horizon:] = ground[horizon:]
    image = Image.fromarray(world.clip(0, 255).astype(np.uint8))
    draw = ImageDraw.Draw(image)
    # distant ridge on the horizon
    ridge = [(x, horizon - 18 - 14 * np.sin(x / 57) - 9 * np.sin(x / 23)) for x in range(0, width + 8, 8)]
    draw.polygon([(0, horizon), *ridge, (width, horizon)], fill=(96, 110, 120))
    # steel roof lattice: a top chord, columns, diagonal braces, a lower tie
    beam = (52, 56, 64)
    draw.rectangle([0, 26, width, 40], fill=beam)
    draw.rectangle([0, 118, width, 126], fill=beam)
    for col in range(-40, width + 120, 120):
        draw.rectangle([col, 26, col + 12, horizon + 6], fill=beam)
        draw.line([(col + 6, 40), (col + 126, 118)], fill=beam, width=7)
        draw.line([(col + 126, 40), (col + 6, 118)], fill=beam, width=7)
    image = image.filter(ImageFilter.GaussianBlur(0.8))
    return np.asarray(image)


def make_sample() -> tuple[np.ndarray, np.ndarray]:
    """Draw the sample: uint8 frames [97, 480, 832, 3] and the object's bool mask [97, 480, 832]."""
    world = _world()
    frames, masks = [], []
    for i in range(FRAMES):
        view = world[:, i * PAN_PX : i * PAN_PX + WIDTH]
        frame, mask = _draw_object(i, view)
        frames.append(frame)
        masks.append(mask)
    return np.stack(frames), np.stack(masks)


def write_sample(path: str | Path = ASSET, *, crf: int = 23) -> Path:
    """Regenerate the bundled file (H.264; a few hundred KB)."""
    from .media import write_mp4

    frames, _ = make_sample()
    write_mp4(path, frames, FPS, crf=crf)
    return Path(path)


# ------------------------------------------------------------------------------ sample inputs of plans
SAMPLE_PREFIX = "sample:"
SAMPLE_INPUTS = {
    "": "the bundled sample clip (97 frames, 832x480, 16 fps)",
    "clip": "the bundled sample clip (97 frames, 832x480, 16 fps)",
    "object": "the true mask of the sample's moving object (a mask video)",
    "beams": "an irregular mask over part of the sample's steel roof lattice (a mask video)",
}


def sample_mask_of(kind: str) -> np.ndarray:
    """A mask on the bundled sample clip, bool [97, 480, 832]: ``object`` or ``beams`` (see SAMPLE_INPUTS)."""
    if kind == "object":
        return sample_mask()
    frames, _ = sample_clip()
    rows, cols = slice(20, 132), slice(150, 450)  # two and a half bays of the lattice, chords included
    luma = frames[:, rows, cols].astype(np.float32) @ np.array([0.299, 0.587, 0.114], np.float32)
    mask = np.zeros(frames.shape[:3], bool)
    mask[:, rows, cols] = luma < 110  # the dark steel, following its shape as the camera pans
    return mask


class SampleInputs:
    """Resolves ``sample:...`` references to files; a sample mask is written on first use as a lossless
    H.264 video at the job's size with the clip's own timing, so that ``--fps`` / ``--start`` / ``--frames``
    pick the same frames of the mask as of the clip (and nothing large is decoded again)."""

    def __init__(self, folder: Path):
        self.folder = folder
        self.made: dict[tuple, Path] = {}

    def resolve(self, value: str, where: str, size: str = "480p") -> str:
        kind = value[len(SAMPLE_PREFIX) :]
        if kind not in SAMPLE_INPUTS:
            choices = ", ".join(f"{SAMPLE_PREFIX}{k}" for k in SAMPLE_INPUTS if k)
            raise InputError(
                f"{where}: {value!r}: unknown sample input; choose from {SAMPLE_PREFIX}, {choices}"
            )
        if kind in ("", "clip"):
            return str(sample_path())
        from .geometry import target_size

        try:
            hw = target_size(str(size), (HEIGHT, WIDTH))
        except ValueError as exc:
            raise InputError(str(exc), field="size", value=size) from None
        if (kind, hw) not in self.made:
            from . import media

            mask = np.stack([media.cover_crop(m, hw, nearest=True) for m in sample_mask_of(kind)])
            target = self.folder / f"sample-{kind}-{hw[1]}x{hw[0]}.mp4"
            media.write_mp4(target, mask, FPS, crf=0)  # crf 0: lossless, the mask stays binary
            self.made[kind, hw] = target
        return str(self.made[kind, hw])


if __name__ == "__main__":
    out = write_sample()
    print(f"wrote {out} ({out.stat().st_size / 1024:.0f} KB)")
