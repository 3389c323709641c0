"""Regenerate the small input files the README's examples use (``python examples/make_examples.py``).

Everything is drawn from the bundled sample clip or from code, so the files are ours to ship:

- ``first.jpg``, ``last.jpg``: the sample's first and last frames (firstlast);
- ``mood.png``: a dusk gradient with a low sun (an outpainting mood reference);
- ``beams.json``: an irregular polygon over one bay of the roof truss (inpaint);
- ``mask.png``: a white ellipse on the ground, black elsewhere (one mask image for every frame).

``shots.toml`` (the batch example) is written by hand; it names the job folders the README's earlier
examples create.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from vacelab.sample import HEIGHT, WIDTH, sample_clip

HERE = Path(__file__).parent
BEAMS = [[330, 34], [446, 34], [446, 124], [392, 142], [330, 124]]


def mood() -> Image.Image:
    """A 320x180 dusk sky: violet at the top, orange at the horizon, a pale sun."""
    rows = np.linspace(0.0, 1.0, 180)[:, None, None]
    top, horizon = np.array([52, 40, 96]), np.array([236, 132, 60])
    sky = (top + (horizon - top) * rows**1.5).repeat(320, axis=1)
    image = Image.fromarray(sky.astype(np.uint8))
    ImageDraw.Draw(image).ellipse((200, 120, 250, 170), fill=(255, 214, 150))
    return image


def main() -> None:
    frames, _ = sample_clip()
    Image.fromarray(frames[0]).save(HERE / "first.jpg", quality=92)
    Image.fromarray(frames[-1]).save(HERE / "last.jpg", quality=92)
    mood().save(HERE / "mood.png", optimize=True)
    (HERE / "beams.json").write_text(json.dumps(BEAMS) + "\n", encoding="utf-8")
    mask = Image.new("L", (WIDTH, HEIGHT), 0)
    ImageDraw.Draw(mask).ellipse((300, 360, 560, 440), fill=255)
    mask.save(HERE / "mask.png", optimize=True)


if __name__ == "__main__":
    main()
