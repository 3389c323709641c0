"""The page's typed values read as ``vacelab prepare``'s options, each refused in one line naming it."""

from __future__ import annotations

from pathlib import Path

from ..errors import InputError

FPS = 16.0  # the job frame rate the UI prepares at unless told (Wan's training rate)


def start_and_rate(path: Path, start, fps) -> tuple[float, float, str]:
    """``--start`` seconds and the decoding rate for ``path`` from the page's fields, checked; the rate as
    typed comes back too ("source" stays a word on the page)."""
    from ..tasks.source import probe

    try:
        start = float(start or 0)
    except ValueError:
        raise InputError("expected seconds, e.g. 2.5", field="start", value=start) from None
    if not 0 <= start < 86400:
        raise InputError("must be 0 or more seconds into the clip", field="start", value=start)
    given = str(fps if fps not in (None, "") else f"{FPS:g}").strip().lower()
    if given == "source":
        rate = probe(path)[1]
        if rate is None:
            raise InputError("this clip has no frame rate of its own: give one", field="fps", value=fps)
        return start, rate, given
    try:
        rate = float(given)
    except ValueError:
        raise InputError("expected a frame rate, e.g. 16, or 'source'", field="fps", value=fps) from None
    if not 1 <= rate <= 120:
        raise InputError("expected a frame rate from 1 to 120, or 'source'", field="fps", value=fps)
    return start, rate, given


def window_frames(text, field: str) -> int | None:
    """A --window or --overlap typed on the page (empty: the option's default), or one line naming ``field``
    (prepare checks the value itself)."""
    text = str(text if text is not None else "").strip()
    if not text:
        return None
    try:
        return int(text)
    except ValueError:
        raise InputError("expected a number of frames, e.g. 49", field=field, value=text) from None


def optional_int(value) -> int | None:
    """An optional whole number from a number field (empty: None)."""
    return None if value is None or value == "" else int(value)


def frame_list(text: str) -> list[int]:
    """Frame numbers typed as ``0,8,16`` (commas, spaces or semicolons)."""
    items = [t for t in str(text or "").replace(";", ",").replace(" ", ",").split(",") if t]
    try:
        frames = [int(t) for t in items]
    except ValueError:
        raise InputError(f"keyframes {text!r}: expected frame numbers, e.g. 0,8,16,24") from None
    if not frames:
        raise InputError("keyframes: enter the frame numbers to keep, e.g. 0,8,16,24 (or 'every K')")
    return frames


__all__ = ["frame_list", "optional_int", "start_and_rate", "window_frames"]
