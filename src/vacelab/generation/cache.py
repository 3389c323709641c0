"""The one pipeline cache of a process (batch workers, the web UI, the demo): the last loaded pipeline,
kept while runs ask for the same one (``RunSettings.loading_key``)."""

from __future__ import annotations

import sys
import threading

from .settings import RunSettings


class PipelineCache:
    """Keeps the last loaded pipeline; loads a new one (dropping the old) only when the key changes.

    ``loader(settings)`` loads (default :func:`~vacelab.generation.pipeline.load_pipeline`). A failed
    load is remembered too, so every run needing that model fails at once with the same error. Safe to
    share between threads: one load at a time.
    """

    def __init__(self, loader=None):
        self.loader = loader
        self.key: tuple | None = None
        self.value = None
        self.lock = threading.RLock()

    def get(self, settings: RunSettings):
        """The pipeline for ``settings``: the cached one if its loading fields agree, else a fresh load."""
        key = settings.loading_key()
        with self.lock:
            if key != self.key:
                self.clear()
                loader = self.loader
                if loader is None:
                    from .pipeline import load_pipeline as loader
                self.key = key
                try:
                    self.value = loader(settings)
                except Exception as exc:
                    self.value = exc
            if isinstance(self.value, Exception):
                raise self.value
            return self.value

    def clear(self) -> None:
        """Drop the cached pipeline and free its memory (e.g. before other processes take the GPUs)."""
        with self.lock:
            self.key, self.value = None, None
            _free_memory()


def _free_memory() -> None:
    import gc

    gc.collect()
    torch = sys.modules.get("torch")
    if torch is not None and torch.cuda.is_available():
        torch.cuda.empty_cache()
