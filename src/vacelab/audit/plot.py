"""The audit picture: frames against latent steps, drawn with Pillow (no plotting library needed).

One row per latent step (reference steps first, in gray). In each row the step's VAE group is a framed
block whose cells are coloured by each frame's KEEP share; a black dot marks the frame whose mask the
model reads (a dot outside the block is a read outside the step's own frames). On top: KEEP share per
frame. On the right: KEEP share of the mask read per step, then one column per finding with a mark on
each step it concerns, coloured by severity. A legend and the finding list close the picture (or, where
the findings are listed beside the picture, a key to the column heads).
"""

from __future__ import annotations

import textwrap

import numpy as np

from .formats import CODE_LABELS, caption

KEEP = (42, 157, 143)
GENERATE = (231, 111, 81)
REF = (190, 190, 190)
INK = (30, 30, 30)
GRID = (215, 215, 215)
SEVERITY = {"error": (200, 30, 30), "warning": (235, 150, 20), "info": (70, 120, 200)}


def _mix(keep: float) -> tuple[int, int, int]:
    """Colour of a KEEP share: green (all KEEP) to orange-red (all GENERATE)."""
    k = float(np.clip(keep, 0.0, 1.0))
    return tuple(int(round(g + (c - g) * k)) for c, g in zip(KEEP, GENERATE, strict=True))


def draw_audit(report, path, *, findings: bool = True) -> None:
    """Draw ``report`` (an :class:`vacelab.audit.AuditReport`) as a PNG at ``path``, atomically; with
    ``report.spatial`` set, the frame's spatial view is drawn below the latent steps. ``findings=False``
    leaves out the finding list (for pages that list the findings themselves) and keys the column heads."""
    from ..media import atomic_path

    image = _timeline(report, findings)
    if getattr(report, "spatial", None) is not None:
        image = _with_spatial(image, report.spatial)
    with atomic_path(path) as tmp:
        image.save(tmp, format="PNG")


def _timeline(report, findings: bool = True):
    """The picture of frames against latent steps (the "when"), as a Pillow image."""
    from PIL import Image, ImageDraw, ImageFont

    font = ImageFont.load_default(size=13)
    small = ImageFont.load_default(size=11)
    bold = ImageFont.load_default(size=16)
    g = report.geometry
    frames = len(report.frame_keep)
    steps = report.latents
    refs = g.ref_frames
    cw = max(3, min(24, 1000 // max(frames, 1)))  # pixels per frame column
    rh = 16 if len(steps) + refs <= 40 else 10  # pixels per latent-step row
    left, top_bar, bar_h = 120, 62, 48
    grid_top = top_bar + bar_h + 46
    grid_w = frames * cw
    rows = refs + len(steps)
    bar_x = left + grid_w + 24
    bar_w = 70
    find_x = bar_x + bar_w + 24
    fcol = 30
    width = max(find_x + fcol * max(len(report.findings), 1) + 30, 900)
    if findings:
        wrapped = [(f, textwrap.wrap(caption(f), 150)) for f in report.findings]
    else:  # one line keying the column heads; the page lists the findings
        codes = dict.fromkeys(f.code for f in report.findings)
        key = "columns: " + ", ".join(f"{CODE_LABELS[c]} = {c}" for c in codes) + " (findings listed below)"
        wrapped = [(None, [key])] if codes else []
    legend_top = grid_top + rows * rh + 40
    height = legend_top + 60 + sum(16 * len(lines) + 6 for _, lines in wrapped) + 20
    image = Image.new("RGB", (width, height), "white")
    draw = ImageDraw.Draw(image)

    # Title.
    refs_text = f" + {refs} reference step{'s' * (refs != 1)}" if refs else ""
    draw.text((12, 10), "What VACE sees of this mask", font=bold, fill=INK)
    draw.text(
        (12, 32),
        f"{g.frames} frames x {g.width}x{g.height} -> {g.latent_frames} latent steps{refs_text}, "
        f"{g.tokens:,} tokens; mask encoding: {report.encoding}"
        + ("; " + ", ".join(f"{k} {v}" for k, v in report.source.items()) if report.source else ""),
        font=font,
        fill=INK,
    )

    # KEEP share per frame (bars), read frames ticked below.
    read = {s.mask_frame for s in steps if isinstance(s.mask_frame, int)}
    draw.text((12, top_bar + 6), "KEEP share", font=font, fill=INK)
    draw.text((12, top_bar + 22), "per frame", font=font, fill=INK)
    for f, keep in enumerate(report.frame_keep):
        x0 = left + f * cw
        split = top_bar + bar_h * (1 - keep)
        draw.rectangle([x0, top_bar, x0 + cw - 2, top_bar + bar_h], fill=GENERATE)
        if keep > 0:
            draw.rectangle([x0, split, x0 + cw - 2, top_bar + bar_h], fill=KEEP)
        if f in read:
            cx = x0 + (cw - 1) / 2
            draw.polygon(
                [(cx, top_bar + bar_h + 3), (cx - 3, top_bar + bar_h + 9), (cx + 3, top_bar + bar_h + 9)],
                fill=INK,
            )
    # Frame axis labels.
    every = next(n for n in (1, 2, 4, 8, 16, 32, 64, 128, 256) if n * cw >= 28)
    for f in range(0, frames, every):
        draw.text((left + f * cw, top_bar + bar_h + 12), str(f), font=small, fill=INK)
    draw.text((12, top_bar + bar_h + 12), "frame", font=small, fill=INK)

    # Grid: one row per step.
    draw.text((12, grid_top - 18), "latent step", font=font, fill=INK)
    draw.text((bar_x, grid_top - 30), "KEEP share", font=small, fill=INK)
    draw.text((bar_x, grid_top - 17), "of mask read", font=small, fill=INK)
    for r in range(refs):
        y = grid_top + r * rh
        draw.text((12, y + 1), f"ref {r + 1}", font=small, fill=INK)
        draw.rectangle([left, y + 2, left + grid_w - 2, y + rh - 2], fill=REF)
        draw.text((left + 4, y + 1), "reference image (mask: KEEP)", font=small, fill=INK)
        draw.rectangle([bar_x, y + 2, bar_x + bar_w, y + rh - 2], fill=KEEP)
    for s in steps:
        y = grid_top + (refs + s.index) * rh
        draw.line([left, y + rh // 2, left + grid_w - 2, y + rh // 2], fill=GRID)
        draw.text((12, y + 1), f"{s.index}", font=small, fill=INK)
        for f in s.frames:
            x0 = left + f * cw
            draw.rectangle([x0, y + 2, x0 + cw - 2, y + rh - 2], fill=_mix(report.frame_keep[f]))
        gx0, gx1 = left + s.frames[0] * cw - 1, left + (s.frames[-1] + 1) * cw - 1
        draw.rectangle([gx0, y + 1, gx1, y + rh - 1], outline=INK, width=1)
        picks = [s.mask_frame] if isinstance(s.mask_frame, int) else []
        for f in picks:
            cx, cy = left + f * cw + (cw - 1) / 2, y + rh / 2
            rad = max(2, min(cw, rh) / 2 - 1)
            draw.ellipse([cx - rad, cy - rad, cx + rad, cy + rad], fill=INK, outline="white")
        draw.rectangle([bar_x, y + 2, bar_x + bar_w, y + rh - 2], fill=GENERATE)
        if s.keep_fraction > 0:
            draw.rectangle([bar_x, y + 2, bar_x + bar_w * s.keep_fraction, y + rh - 2], fill=KEEP)
        draw.text((bar_x + bar_w + 3, y + 1), f"{s.keep_fraction:.0%}", font=small, fill=INK)

    # Finding columns.
    find_x += 14
    for i, finding in enumerate(report.findings):
        x = find_x + i * fcol
        colour = SEVERITY[finding.severity]
        draw.text((x, grid_top - 17), CODE_LABELS[finding.code], font=small, fill=colour)
        for t in finding.latents:
            y = grid_top + (refs + t) * rh
            draw.rectangle([x + 4, y + 3, x + 18, y + rh - 3], fill=colour)
        if not finding.latents:
            draw.text((x + 2, grid_top + 2), "all", font=small, fill=colour)

    # Legend.
    y = legend_top
    items = [
        (KEEP, "KEEP (frame kept)"),
        (GENERATE, "GENERATE (frame generated)"),
        (None, "framed block = the frames the VAE encodes into one latent step"),
    ]
    _legend_row(draw, font, items, 12, y)
    y += 22
    x = 12
    draw.ellipse([x + 2, y + 3, x + 12, y + 13], fill=INK)
    label = "frame whose mask the model reads for the step (also ticked under the frame axis)"
    if report.encoding == "aligned":
        label = (
            "aligned encoding: each step reads its whole framed group (KEEP only where all its frames are)"
        )
    draw.text((x + 20, y), label, font=font, fill=INK)
    x += 20 + int(draw.textlength(label, font=font)) + 24
    for sev, colour in SEVERITY.items():
        draw.rectangle([x, y + 2, x + 14, y + 14], fill=colour)
        draw.text((x + 20, y), sev, font=font, fill=INK)
        x += 20 + int(draw.textlength(sev, font=font)) + 16

    # Findings list.
    y += 30
    if not wrapped:
        draw.text((12, y), "No findings: the model reads the mask as drawn.", font=font, fill=INK)
    for finding, lines in wrapped:
        for j, line in enumerate(lines):
            draw.text(
                (12 if j == 0 else 28, y),
                line,
                font=small,
                fill=SEVERITY[finding.severity] if finding and j == 0 else INK,
            )
            y += 16
        y += 6
    return image


# ------------------------------------------------------------------------------------------ spatial view
LATENT_LINE = ((255, 255, 255), 0.45)  # the 8 px latent grid: light lines
TOKEN_LINE = ((0, 0, 0), 0.55)  # the 16 px token grid: dark lines
VIEW_FILL = 160  # background of a mask audited without its video
THIN_WORDS = {8: "too thin for one 8x8 latent pixel", 16: "too thin for one 16x16 token"}


def spatial_pixels(view) -> tuple[np.ndarray, int]:
    """The frame of ``view`` (an :class:`vacelab.audit.SpatialView`) with GENERATE tinted, thin parts
    highlighted and both grids drawn, enlarged to at least ~640 px wide: (uint8 [H*s, W*s, 3], s)."""
    from ..geometry import TOKEN_PX, VAE_STRIDE_S

    height, width = view.mask.shape
    scale = max(1, min(8, 640 // width))
    base = view.image if view.image is not None else np.full((height, width, 3), VIEW_FILL, np.uint8)
    rgb = base.astype(np.float32)
    rgb[view.mask] = rgb[view.mask] * 0.55 + np.float32(GENERATE) * 0.45
    for _, severity, blocks, px in view.thin:
        hit = np.repeat(np.repeat(blocks, px, axis=0), px, axis=1)[:height, :width]
        rgb[hit] = rgb[hit] * 0.35 + np.float32(SEVERITY[severity]) * 0.65
    big = np.repeat(np.repeat(rgb, scale, axis=0), scale, axis=1)
    for step, (colour, alpha) in ((VAE_STRIDE_S, LATENT_LINE), (TOKEN_PX, TOKEN_LINE)):
        ink = np.float32(colour) * alpha
        big[:: step * scale] = big[:: step * scale] * (1 - alpha) + ink
        big[:, :: step * scale] = big[:, :: step * scale] * (1 - alpha) + ink
    return big.round().clip(0, 255).astype(np.uint8), scale


def _with_spatial(timeline, view):
    """``timeline`` with the spatial view of one frame below it (the "where" beside the "when")."""
    from PIL import Image, ImageDraw, ImageFont

    font, bold = ImageFont.load_default(size=13), ImageFont.load_default(size=16)
    pixels, scale = spatial_pixels(view)
    height, width = view.mask.shape
    top, image_top = timeline.height, timeline.height + 54
    legend_top = image_top + pixels.shape[0] + 12
    out = Image.new("RGB", (max(timeline.width, pixels.shape[1] + 24), legend_top + 50), "white")
    out.paste(timeline, (0, 0))
    out.paste(Image.fromarray(pixels), (12, image_top))
    draw = ImageDraw.Draw(out)
    draw.line([0, top + 2, out.width, top + 2], fill=GRID)
    clip = f" (clip frame {view.clip_frame})" if view.clip_frame != view.frame else ""
    draw.text((12, top + 10), f"Where: frame {view.frame}{clip}, mask over the frame", font=bold, fill=INK)
    shown = "its conditioning video" if view.image is not None else "no video given: gray"
    draw.text(
        (12, top + 32),
        f"{width}x{height} px, shown x{scale}, over {shown}; "
        f"{width // 8}x{height // 8} latent pixels, {width // 16}x{height // 16} tokens",
        font=font,
        fill=INK,
    )
    y = legend_top
    items = [(GENERATE, "GENERATE")]
    items += [(SEVERITY[sev], f"{part} {THIN_WORDS[px]}") for part, sev, _, px in view.thin]
    if not view.thin:
        items.append((None, "no part too thin for the VAE in this frame"))
    _legend_row(draw, font, items, 12, y)
    x, y = 12, y + 22
    for (colour, alpha), label in ((LATENT_LINE, "8 px latent grid"), (TOKEN_LINE, "16 px token grid")):
        swatch = tuple(int(round(VIEW_FILL * (1 - alpha) + c * alpha)) for c in colour)
        draw.rectangle([x, y + 2, x + 14, y + 14], fill=(VIEW_FILL,) * 3)
        draw.line([x, y + 8, x + 14, y + 8], fill=swatch, width=2)
        draw.text((x + 20, y), label, font=font, fill=INK)
        x += 20 + int(draw.textlength(label, font=font)) + 24
    return out


def _legend_row(draw, font, items, x: int, y: int) -> None:
    """Draw ``(colour, label)`` legend entries left to right from ``x`` (no swatch where colour is None)."""
    for colour, label in items:
        if colour is not None:
            draw.rectangle([x, y + 2, x + 14, y + 14], fill=colour)
            x += 20
        draw.text((x, y), label, font=font, fill=INK)
        x += int(draw.textlength(label, font=font)) + 24
