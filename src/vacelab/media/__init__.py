"""Media I/O: what vacelab reads (video, images, masks; the resize policy), what it writes (H.264/H.265/
ProRes with copied audio, GIF, PNG) and the exact files behind both (atomic writes, lossless arrays).

Callers use ``from vacelab import media; media.read_video(...)``; the three modules hold the code.
"""

from __future__ import annotations

from .files import (  # noqa: F401
    FrameReader,
    FrameWriter,
    PackedMask,
    atomic_path,
    default_mode,
    load_array,
    load_mask,
    mask_counts,
    release,
    save_array,
    save_mask,
    write_text,
)
from .read import (  # noqa: F401
    IMAGE_SUFFIXES,
    MAX_IMAGE_PIXELS,
    VIDEO_SUFFIXES,
    as_frames,
    centre_crop,
    cover_crop,
    cover_placement,
    cover_size,
    fit_on_canvas,
    iter_video,
    list_image_folder,
    read_image,
    read_mask,
    read_mask_image,
    read_video,
    resize_image,
    stream_video,
    to_binary_mask,
)
from .write import (  # noqa: F401
    CODECS,
    write_gif,
    write_mp4,
    write_png,
    write_video,
)
