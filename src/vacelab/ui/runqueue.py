"""The run queue of ``vacelab ui``: runs one after another, progress per run, cancel, and results that
outlive the page.

Each browser keeps a random key in its local storage (``gr.BrowserState``); its runs live under
``ROOT/results/KEY/`` (the queue's own copy of each job, and each results folder), so a reload, which starts
a new Gradio session, lists them again. One worker thread runs every browser's runs in the order they were
queued, through the app's shared pipeline (:class:`~vacelab.ui.workbench.Models`).
"""

from __future__ import annotations

import logging
import re
import secrets
import shutil
import threading
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import InputError
from ..generation.settings import RunSettings

log = logging.getLogger("vacelab")
KEY = re.compile(r"[0-9a-f]{32}")
ACTIVE = ("queued", "running")


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
        self.root = Path(root) / "results"
        self.root.mkdir(parents=True, exist_ok=True, mode=0o700)
        self.models = models
        self.entries: list[Entry] = []
        self._ids = 0
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
                entry.status, entry.message = "cancelled", "cancelled before it started"
                shutil.rmtree(entry.job, ignore_errors=True)
        return (
            f"Run #{number}: cancel requested." if entry.status == "running" else f"Run #{number} cancelled."
        )

    def entries_for(self, key: str) -> list[Entry]:
        return [e for e in self.entries if e.key == key]

    def results_for(self, key: str) -> list[Path]:
        """The finished results folders of browser ``key``, oldest first (one with run.json is complete)."""
        runs = self.folder(key) / "runs"
        found = [p for p in runs.glob("run-*") if (p / "run.json").is_file()] if runs.is_dir() else []
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
                entry.status, entry.message = "cancelled", "cancelled while running"
            except InputError as exc:
                entry.status, entry.message = "failed", str(exc)
            except Exception as exc:  # noqa: BLE001 - the queue goes on; the page shows the reason
                log.exception("queued run #%d failed", entry.id)
                entry.status, entry.message = "failed", f"{type(exc).__name__}: {exc}"
            else:
                entry.status, entry.message = "done", entry.out.name
            if entry.status != "done":  # a finished run keeps its job: run.json and export point at it
                shutil.rmtree(entry.job, ignore_errors=True)


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
