"""What the web interface may read, accept and serve (no Gradio here, so it is testable on its own).

- Paths typed by a user are opened only inside the folders given with ``--allow`` (after resolving
  symlinks and ``..``), never inside the app's own temporary folder (other sessions live there).
- Uploads are checked for size and for being real media (decoded, not trusted by their name).
- Each browser session works in its own folder under the app's temporary folder, created ``0700``;
  nothing a session builds is reachable from another one except through the unguessable copies Gradio
  serves from its cache (which is also inside the app's temporary folder).
- The queue's results live in ``results``: inside the temporary folder, or the ``--results`` folder, which
  must not overlap an ``--allow`` folder (another browser could then open a result by its path).
"""

from __future__ import annotations

import itertools
import os
import re
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

from .. import media
from ..errors import InputError

DEFAULT_MAX_UPLOAD = "500MB"
STORE_MARKER = ".vacelab-ui.json"  # what marks a folder as the queue's results folder (runqueue writes it)
_UNITS = {"b": 1, "kb": 1024, "mb": 1024**2, "gb": 1024**3}


def parse_size(text: str, option: str = "--max-upload") -> int:
    """``"500MB"`` -> bytes (units b, kb, mb, gb; case-insensitive)."""
    match = re.fullmatch(r"\s*(\d+)\s*([kmg]?b)?\s*", str(text).lower())
    if not match or int(match.group(1)) <= 0:
        raise InputError(f"{option} {text!r}: expected a size such as 500MB, 2GB or 800KB")
    return int(match.group(1)) * _UNITS[match.group(2) or "b"]


def _human(size: int) -> str:
    for unit in ("GB", "MB", "KB"):
        if size >= _UNITS[unit.lower()]:
            return f"{size / _UNITS[unit.lower()]:.1f} {unit}"
    return f"{size} bytes"


@dataclass(frozen=True)
class Policy:
    """The interface's access rules: ``allowed`` folders (resolved), the app's ``root`` folder, upload cap,
    and the queue's ``results`` folder (``root/results`` unless ``--results`` kept it elsewhere)."""

    allowed: tuple[Path, ...]
    root: Path
    max_upload: int
    results: Path

    @classmethod
    def create(
        cls,
        allowed=(),
        *,
        root: str | os.PathLike,
        max_upload: str | int = DEFAULT_MAX_UPLOAD,
        results: str | os.PathLike | None = None,
    ):
        """Validate ``--allow`` folders (they must exist) and ``--results`` (:func:`results_folder`) and
        build the policy."""
        folders = []
        for folder in allowed:
            path = Path(folder).expanduser()
            if not path.is_dir():
                raise InputError("not an existing folder", field="allow", value=folder)
            folders.append(path.resolve())
        size = max_upload if isinstance(max_upload, int) else parse_size(max_upload)
        root = Path(root).resolve()
        kept = root / "results" if results is None else results_folder(results, folders)
        return cls(allowed=tuple(folders), root=root, max_upload=size, results=kept)

    @property
    def keeps_results(self) -> bool:
        """Whether results outlive the process (``--results``), not only its temporary folder."""
        return not _inside(self.results, self.root)

    def open_path(self, text: str) -> Path:
        """A video file or image folder typed by the user, refused unless inside an allowed folder."""
        text = (text or "").strip()
        if not text:
            raise InputError("type the path of a video (or a folder of images) first")
        resolved = self._allowed(text)
        if not (resolved.is_file() or resolved.is_dir()):  # a FIFO would block the server on open
            raise InputError(f"{text}: not a regular file or folder")
        if resolved.is_file() and resolved.suffix.lower() not in media.VIDEO_SUFFIXES:
            raise InputError(f"{text}: not a video file ({', '.join(sorted(media.VIDEO_SUFFIXES))})")
        check_media(resolved, "video", name=text)
        return resolved

    def open_lora(self, text: str, field: str = "lora") -> Path:
        """A LoRA file (``.safetensors``) typed by the user, refused unless inside an allowed folder; errors
        name the run option ``field``. Torch checkpoints are refused here: the page reads no pickles."""
        resolved = self._allowed(text.strip(), field)
        if not resolved.is_file() or resolved.suffix.lower() != ".safetensors":
            raise InputError("not a .safetensors file", field=field, value=text)
        return resolved

    def _allowed(self, text: str, field: str | None = None) -> Path:
        """``text`` resolved (symlinks, ``..``), refused unless it exists inside an allowed folder and
        outside the app's own folder."""
        if not self.allowed:
            raise InputError(
                "opening files by path is off: start `vacelab ui --allow FOLDER` to allow a folder",
                field=field,
            )
        path = Path(text).expanduser()
        if not path.is_absolute():
            raise InputError(f"{text}: give an absolute path inside {self.allowed_text()}", field=field)
        try:
            resolved = path.resolve()
        except (RuntimeError, OSError):  # a symlink loop
            raise InputError(f"{text}: cannot be resolved (a symbolic link loop?)", field=field) from None
        if _inside(resolved, self.root) or not any(_inside(resolved, folder) for folder in self.allowed):
            raise InputError(f"{text}: not inside an allowed folder ({self.allowed_text()})", field=field)
        if not resolved.exists():
            raise InputError(f"{text}: no such file or folder", field=field)
        return resolved

    def allowed_text(self) -> str:
        return ", ".join(str(p) for p in self.allowed) or "none allowed"

    def check_upload(self, path: str | os.PathLike, kind: str, *, name: str | None = None) -> Path:
        """Refuse an upload that is too large or is not a real ``kind`` ("video" or "image") file."""
        path = Path(path)
        name = name or path.name
        size = path.stat().st_size
        if size > self.max_upload:
            raise InputError(
                f"upload {name}: {_human(size)}, over the {_human(self.max_upload)} limit (--max-upload)"
            )
        suffixes = media.VIDEO_SUFFIXES if kind == "video" else media.IMAGE_SUFFIXES
        if path.suffix.lower() not in suffixes:
            raise InputError(
                f"upload {name}: not {'a video' if kind == 'video' else 'an image'} "
                f"(accepted: {', '.join(sorted(suffixes))})"
            )
        check_media(path, kind, name=f"upload {name}")
        return path


def check_media(path: Path, kind: str, *, name: str) -> None:
    """Decode enough of ``path`` to know it is a real video (one frame) or image; InputError otherwise."""
    try:
        if kind == "image":
            media.read_image(path)
        else:
            frames, _ = media.read_video(path, max_frames=1)
            if not len(frames):
                raise InputError("no frames")
    except InputError:
        raise InputError(f"{name}: not a readable {kind} file (its content is not {kind} data)") from None


def results_folder(text: str | os.PathLike, allowed: tuple[Path, ...] | list[Path]) -> Path:
    """The ``--results`` folder, resolved and created (``0700``) if missing; refused when it is a file, when
    it overlaps an ``allowed`` folder (its results could be opened by path from any browser), when it holds
    files but is not a results folder of an earlier ``vacelab ui`` (no marker), or cannot be written."""
    path = Path(text).expanduser()
    if path.exists() and not path.is_dir():
        raise InputError("is a file, not a folder", field="results", value=text)
    try:
        resolved = path.resolve()
    except (RuntimeError, OSError):
        raise InputError("cannot be resolved (a symbolic link loop?)", field="results", value=text) from None
    for folder in allowed:
        if _inside(resolved, folder) or _inside(folder, resolved):
            raise InputError(
                f"overlaps the --allow folder {folder} (any browser could open the results by path there)",
                field="results",
                value=text,
            )
    if resolved.is_dir() and any(resolved.iterdir()) and not (resolved / STORE_MARKER).is_file():
        raise InputError(
            "holds files and is not the results folder of an earlier `vacelab ui --results`; give a new "
            "or empty folder (nothing is written among files vacelab did not write)",
            field="results",
            value=text,
        )
    try:  # a real probe: access() says yes to root on a read-only file system
        resolved.mkdir(parents=True, exist_ok=True, mode=0o700)
        os.rmdir(tempfile.mkdtemp(prefix=".vacelab-probe.", dir=resolved))
    except OSError as exc:
        raise InputError(f"cannot be written ({exc.strerror})", field="results", value=text) from None
    return resolved


def _inside(path: Path, folder: Path) -> bool:
    return path == folder or folder in path.parents


class SessionFolder:
    """One browser session's private working folder (``0700``) under ``root/sessions``."""

    def __init__(self, root: str | os.PathLike):
        sessions = Path(root) / "sessions"
        sessions.mkdir(parents=True, exist_ok=True, mode=0o700)
        self.path = Path(tempfile.mkdtemp(prefix="s-", dir=sessions))
        self._counter = itertools.count(1)

    def new(self, stem: str, suffix: str = "") -> Path:
        """A fresh, not yet existing path ``<session>/<stem>-<n><suffix>``."""
        return self.path / f"{stem}-{next(self._counter)}{suffix}"

    def adopt(self, upload: str | os.PathLike, stem: str) -> Path:
        """Copy an uploaded file into the session (the upload cache is shared by all sessions)."""
        target = self.new(stem, Path(upload).suffix.lower())
        shutil.copyfile(upload, target)
        return target

    def close(self) -> None:
        shutil.rmtree(self.path, ignore_errors=True)
