"""Weights that are not here: the one place that finds out, before anything heavy loads, and words it.

Every loader (``vacelab run``, batch, experiment and demo through ``generation.pipeline``, tracking,
the UI) asks :func:`check_weights` first: a folder must exist; a hub id must be in the Hugging Face cache
or the hub must know it. The hub is asked once per model and process (one request for the model's
record, at most 5 s, its answer kept for a minute; an answer that is not the hub's, from a proxy or a
portal, counts as none), so that a machine without network gets one line at once instead of the retries
and warnings of diffusers, transformers and huggingface_hub. When the weights are cached and the hub does
not answer, the loaders read the cache only (``local_files_only``), which asks the hub nothing.

A refusal is a :class:`MissingWeights`: an :class:`~vacelab.errors.InputError` whose line names the model,
where it was looked for, ``hf download MODEL`` and the field to point at a folder instead, each interface
showing the field its own way (``--model FOLDER`` on the command line, ``model = "FOLDER"`` in TOML).
"""

from __future__ import annotations

import contextlib
import importlib
import logging
import sys
import time
from collections.abc import Iterator
from pathlib import Path

from .errors import InputError

PROBE_TIMEOUT = 5.0  # seconds the hub has to answer the probe
PROBE_KEPT = 60.0  # seconds a probe's answer is reused (a long-lived UI sees the network come back)
_probes: dict[str, tuple[float, str]] = {}
LOADING_LOGGERS = ("diffusers", "transformers", "huggingface_hub")
LIBRARY_BARS = ("diffusers", "transformers")  # libraries whose loading bars quiet_loading keeps off a log


class MissingWeights(InputError):
    """No weights for ``model``: ``where`` says where they were looked for and why none came."""

    def __init__(self, model: str, where: str, *, field: str = "model"):
        super().__init__(f"no weights: {where}", field=field, value=model)
        self.model = model
        self.where = where

    def render(self, label: str | None = None) -> str:
        label = label or self.field
        folder = f'{label} "FOLDER"' if label.endswith("=") else f"{label} FOLDER"
        return (
            f"{label} {self.model}: no weights: {self.where}; "
            f"get them with `hf download {self.model}` or use {folder}"
        )


def folder_not_found(model: str, field: str = "model") -> InputError:
    """A model given as a folder path that does not exist."""
    return InputError("folder not found", field=field, value=model)


def names_a_folder(model: str) -> bool:
    """True when ``model`` can only be a folder path, not a hub id ``owner/name``."""
    return model.startswith((".", "/", "~")) or model.count("/") != 1


def _cache_folder() -> str:
    from huggingface_hub import constants

    return str(constants.HF_HUB_CACHE)


def is_cached(model: str, filename: str) -> bool:
    """True when ``filename`` of the hub model ``model`` is in the Hugging Face cache."""
    from huggingface_hub import try_to_load_from_cache

    try:
        return isinstance(try_to_load_from_cache(model, filename), str)
    except Exception:  # not a valid hub id: the loader reports it
        return False


def hub_answer(model: str) -> str:
    """What the Hugging Face hub says of ``model``: ``found``, ``unknown`` (the hub answered that it has
    no such model, or none this user may see) or ``silent`` (no answer, or not the hub's: a proxy or a
    portal answering in its place). One request, kept for a minute."""
    from huggingface_hub import constants, get_session
    from huggingface_hub.utils import build_hf_headers

    key = f"{constants.ENDPOINT}/api/models/{model}"
    asked, answer = _probes.get(key, (float("-inf"), "silent"))
    if time.monotonic() - asked > PROBE_KEPT:
        answer = "silent"
        try:
            response = get_session().get(key, headers=build_hf_headers(), timeout=PROBE_TIMEOUT)
            if response.status_code == 200 and "id" in response.json():
                answer = "found"
            elif response.headers.get("x-error-code") in ("RepoNotFound", "RevisionNotFound"):
                answer = "unknown"
        except Exception:  # no route, no name, refused, timed out, not JSON...
            pass
        _probes[key] = (time.monotonic(), answer)
    return answer


def missing(model: str, reason: str, *, field: str = "model") -> MissingWeights:
    """The refusal for ``model``, whose weights are not in the cache because of ``reason``: ``offline``
    (HF_HUB_OFFLINE), ``unreachable`` (the hub did not answer), ``unknown`` (the hub has no such model),
    ``incomplete`` (some files cached, not all) or ``failed`` (the hub answered but the download failed)."""
    cache = f"the Hugging Face cache ({_cache_folder()})"
    where = {
        "offline": f"not in {cache} and HF_HUB_OFFLINE=1 is set",
        "unreachable": f"not in {cache} and the hub does not answer",
        "unknown": f"not in {cache} and the hub has no such model (or it is private)",
        "incomplete": f"only partly in {cache} and the hub does not answer",
        "failed": f"not in {cache} and the hub did not provide them",
    }[reason]
    return MissingWeights(model, where, field=field)


def check_weights(model: str, marker: str, *, field: str = "model") -> bool:
    """Refuse ``model`` (a folder or a hub id) when its weights cannot be had; return whether a loader
    must read local files only (a folder, offline, or cached while the hub does not answer).

    ``marker`` is the file every copy of the model has (``model_index.json``, ``config.json``). A folder
    is only checked to exist here: what it holds is the loader's to judge.
    """
    path = Path(model).expanduser()
    if path.exists():
        return True
    if names_a_folder(model):
        raise folder_not_found(model, field)
    from huggingface_hub import constants

    cached = is_cached(model, marker)
    if constants.HF_HUB_OFFLINE:
        if not cached:
            raise missing(model, "offline", field=field)
        return True
    answer = hub_answer(model)
    if answer == "found":
        return False
    if not cached:
        raise missing(model, "unreachable" if answer == "silent" else "unknown", field=field)
    return True


def load_failed(model: str, local_only: bool, *, field: str = "model") -> MissingWeights:
    """The refusal for a hub model whose loading found files missing (``local_only``: what the loader
    was told, see :func:`check_weights`)."""
    from huggingface_hub import constants

    if constants.HF_HUB_OFFLINE:
        return missing(model, "offline", field=field)
    return missing(model, "incomplete" if local_only else "failed", field=field)


@contextlib.contextmanager
def quiet_loading() -> Iterator[None]:
    """While a model loads: hold the log records of diffusers, transformers and huggingface_hub (shown
    after a load that succeeds, dropped after one that fails, whose error line then stands alone), and,
    where stderr is no terminal (a log, a pipe), keep the loading bars of diffusers and transformers off
    it; on a terminal they show as usual."""
    held: list[logging.LogRecord] = []

    class Hold(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            held.append(record)

    hold = Hold()
    loggers = [logging.getLogger(name) for name in LOADING_LOGGERS]
    saved = [(logger, logger.handlers[:], logger.propagate) for logger in loggers]
    bars = []
    if not sys.stderr.isatty():  # the libraries already imported (a loader imports its own first)
        bars = [importlib.import_module(f"{lib}.utils.logging") for lib in LIBRARY_BARS if lib in sys.modules]
    enabled = [lib.is_progress_bar_enabled() for lib in bars]
    for logger in loggers:
        logger.handlers, logger.propagate = [hold], False
    for lib in bars:
        lib.disable_progress_bar()
    try:
        yield
    finally:
        for logger, handlers, propagate in saved:
            logger.handlers, logger.propagate = handlers, propagate
        for lib, was in zip(bars, enabled, strict=True):
            if was:
                lib.enable_progress_bar()
    for record in held:  # only reached when the load succeeded
        logging.getLogger(record.name).handle(record)
