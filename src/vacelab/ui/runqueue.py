"""The run queue of ``vacelab ui``: runs one after another, progress per run, cancel, and results that
outlive the page.

Each browser keeps a random key in its local storage (``gr.BrowserState``, encrypted with the folder's
own secret); its runs live under ``RESULTS/KEY/`` (the queue's own copy of each job, and each results
folder), so a reload, which starts a new Gradio session, lists them again. ``RESULTS`` is the app's
temporary folder, or the ``--results`` folder that a later ``vacelab ui`` reopens: one process at a time
(a lock), run numbers continuing after the largest one there, and what a killed process left of its
unfinished runs removed when provably the queue's own. One worker thread runs every browser's runs in the
order they were queued, through the app's shared pipeline (:class:`~vacelab.ui.workbench.Models`).
"""

from __future__ import annotations

import fcntl
import json
import logging
import re
import secrets
import shutil
import threading
from dataclasses import dataclass, field
from pathlib import Path

from .. import media
from ..errors import InputError
from ..folders import remove_own_folder, remove_parts
from ..generation.settings import RunSettings
from ..generation.windows import partial_folder
from .policy import STORE_MARKER

log = logging.getLogger("vacelab")
KEY = re.compile(r"[0-9a-f]{32}")
ACTIVE = ("queued", "running")
RUN = re.compile(r"run-(\d+)")
NUMBERED = re.compile(r"\.?(?:job|run)-(\d+)(?:\..*)?")  # job-N, run-N and what run_job writes beside it
WINDOW_FILE = re.compile(r"\d{3}\.(npy|json)|\.\d{3}\.(npy|json)\.\w+\.part\.(npy|json)")


def new_key() -> str:
    """A fresh browser key (what ``gr.BrowserState`` keeps)."""
    return secrets.token_hex(16)


class Cancelled(Exception):
    """Raised from a running entry's progress callback once it is cancelled."""


@dataclass
class Entry:
    """One queued run: what it runs, where it writes, how far it got."""

    id: int
    key: str
    label: str
    job: Path  # the queue's own copy of the job folder
    out: Path  # the results folder run_job writes (only once complete)
    settings: RunSettings
    status: str = "queued"  # queued | running | done | failed | cancelled
    stage: str = ""
    done: int = 0
    total: int = 0
    message: str = ""
    cancel: threading.Event = field(default_factory=threading.Event)

    def progress_text(self) -> str:
        if self.status != "running":
            return self.message
        return f"{self.stage} {self.done}/{self.total}" if self.total else self.stage


class RunQueue:
    """Every browser's runs, one at a time, in the order they were queued."""

    def __init__(self, root: str | Path, models):
        """The queue keeping its runs in ``root`` (created), held by this process until it ends."""
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True, mode=0o700)
        self._lock = _hold(self.root)
        self.secret = _browser_secret(self.root)  # what gr.BrowserState encrypts the key with
        self.models = models
        self.entries: list[Entry] = []
        self._ids = _recover(self.root)
        self._wake = threading.Condition()
        self._worker: threading.Thread | None = None

    def folder(self, key: str) -> Path:
        """The results folder of browser ``key`` (refused unless it is a key :func:`new_key` made)."""
        if not isinstance(key, str) or not KEY.fullmatch(key):
            raise InputError("this page has no valid browser key: reload it")
        return self.root / key

    def submit(self, key: str, job: Path, settings: RunSettings, label: str) -> Entry:
        """Queue a run of the job folder ``job`` (copied, so the session may go) with ``settings``."""
        settings.validate()
        home = self.folder(key)
        with self._wake:
            self._ids += 1
            number = self._ids
        copy = home / "jobs" / f"job-{number}"
        shutil.copytree(job, copy)
        entry = Entry(number, key, label, copy, home / "runs" / f"run-{number}", settings)
        with self._wake:
            self.entries.append(entry)
            if self._worker is None:
                self._worker = threading.Thread(target=self._work, name="vacelab-queue", daemon=True)
                self._worker.start()
            self._wake.notify()
        return entry

    def cancel(self, key: str, number: int) -> str:
        """Cancel run ``number`` of browser ``key``: a queued one is dropped, a running one stops at its next
        step. Returns what happened, in words."""
        with self._wake:
            entry = next((e for e in self.entries if e.id == number and e.key == key), None)
            if entry is None:
                raise InputError(f"run #{number}: no such run in this page's queue")
            if entry.status not in ACTIVE:
                return f"Run #{number} is already {entry.status}."
            entry.cancel.set()
            if entry.status == "queued":
                _discard(entry.job, entry.out)
                entry.status, entry.message = "cancelled", "cancelled before it started"
        return (
            f"Run #{number}: cancel requested." if entry.status == "running" else f"Run #{number} cancelled."
        )

    def entries_for(self, key: str) -> list[Entry]:
        return [e for e in self.entries if e.key == key]

    def results_for(self, key: str) -> list[Path]:
        """The finished results folders of browser ``key``, oldest first (one with run.json is complete)."""
        runs = self.folder(key) / "runs"
        found = [p for p in runs.glob("run-*") if RUN.fullmatch(p.name) and (p / "run.json").is_file()]
        return sorted(found, key=lambda p: int(p.name.removeprefix("run-")))

    # -------------------------------------------------------------------------------------------- worker
    def _next(self) -> Entry:
        with self._wake:
            while True:
                entry = next((e for e in self.entries if e.status == "queued"), None)
                if entry is not None:
                    entry.status = "running"
                    return entry
                self._wake.wait()

    def _work(self) -> None:
        from ..generation.run import run_job

        while True:
            entry = self._next()

            def progress(stage: str, done: int, total: int, entry=entry) -> None:
                entry.stage, entry.done, entry.total = stage, done, total
                if entry.cancel.is_set():
                    raise Cancelled

            try:
                with self.models.lock:
                    pipe = self.models.pipeline(entry.settings)
                    run_job(entry.job, entry.out, entry.settings, pipeline=pipe, progress=progress)
            except Cancelled:
                status, message = "cancelled", "cancelled while running"
            except InputError as exc:
                status, message = "failed", str(exc)
            except Exception as exc:  # noqa: BLE001 - the queue goes on; the page shows the reason
                log.exception("queued run #%d failed", entry.id)
                status, message = "failed", f"{type(exc).__name__}: {exc}"
            else:
                status, message = "done", entry.out.name
            if status != "done":  # a finished run keeps its job: run.json and export point at it
                _discard(entry.job, entry.out)
            entry.status, entry.message = status, message  # said last: what it says is already on disk


# --------------------------------------------------------------------------------------- results folder
def _hold(root: Path):
    """Lock ``root`` for this process (the lock goes with it): a second ``vacelab ui`` is refused."""
    try:
        handle = open(root / ".vacelab-ui.lock", "a")  # noqa: SIM115 - held open for the process's life
    except OSError as exc:
        raise InputError(f"cannot be written ({exc.strerror})", field="results", value=root) from None
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        handle.close()
        raise InputError("another `vacelab ui` uses this folder now", field="results", value=root) from None
    return handle


def _browser_secret(root: Path) -> str:
    """The secret of ``root``'s marker (written with a new one the first time): a browser's key, encrypted
    with it in local storage, is read again by a later process on the same folder."""
    marker = root / STORE_MARKER
    try:
        return json.loads(marker.read_text(encoding="utf-8"))["browser_secret"]
    except FileNotFoundError:
        secret = secrets.token_urlsafe(24)
        media.write_text(marker, json.dumps({"written_by": "vacelab ui", "browser_secret": secret}))
        return secret
    except (OSError, ValueError, KeyError, TypeError):
        raise InputError(f"{marker}: unreadable; move it away", field="results", value=root) from None


def _recover(root: Path) -> int:
    """The largest run number used in ``root`` (under any key); what a killed process left of runs that
    never finished (no complete results folder) is discarded first (:func:`_discard`)."""
    largest = 0
    for home in (p for p in root.iterdir() if KEY.fullmatch(p.name) and p.is_dir()):
        for folder in (home / "jobs", home / "runs"):
            names = [p.name for p in folder.iterdir()] if folder.is_dir() else []
            numbers = [int(m.group(1)) for m in map(NUMBERED.fullmatch, names) if m]
            largest = max([largest, *numbers])
        for job in (home / "jobs").glob("job-*"):
            out = home / "runs" / f"run-{job.name.removeprefix('job-')}"
            if not (out / "run.json").is_file():
                _discard(job, out)
    return largest


def _discard(job: Path, out: Path) -> None:
    """Remove what a run that did not finish left: the queue's copy of its job (only as vacelab wrote it),
    the hidden ``.run-N.*.part`` siblings and lock ``run_job`` writes beside ``out``, and a long run's
    saved windows (``run-N.partial``, only when it holds nothing else)."""
    try:
        remove_own_folder(job)
    except InputError as exc:
        log.warning("kept %s", exc)
    if out.parent.is_dir():
        remove_parts(out.parent, out.name)
    partial = partial_folder(out)
    if partial.is_dir() and [p.name for p in partial.iterdir()] == ["windows"] and _only_windows(partial):
        shutil.rmtree(partial)


def _only_windows(partial: Path) -> bool:
    """Whether ``partial/windows`` holds only what :class:`~vacelab.generation.windows.WindowStore` writes."""
    windows = partial / "windows"
    return windows.is_dir() and all(WINDOW_FILE.fullmatch(p.name) and p.is_file() for p in windows.iterdir())


def settings_text(folder: Path) -> str:
    """The run's settings that differ from the defaults, as ``vacelab run`` options."""
    import json

    from ..generation.settings import RunSettings

    given = json.loads((folder / "run.json").read_text(encoding="utf-8")).get("settings", {})
    defaults = RunSettings().as_dict()
    changed = {k: v for k, v in given.items() if k in defaults and v != defaults[k] and k != "prompt"}
    options = " ".join(f"--{k.replace('_', '-')} {v}" for k, v in changed.items())
    return f"Settings: `{options or 'the defaults'}`; prompt: {given.get('prompt') or '(the job’s)'}"


__all__ = ["Cancelled", "Entry", "RunQueue", "new_key", "settings_text"]
