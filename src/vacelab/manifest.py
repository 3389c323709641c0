"""TOML manifests of runs: reading, and validation of run settings against :class:`RunSettings`.

A batch manifest (``vacelab batch``) has this shape::

    [defaults]              # any `vacelab run` option by its long name, dashes as underscores
    model = "Wan-AI/Wan2.1-VACE-1.3B-diffusers"
    steps = 30
    [[jobs]]
    name = "shot1"          # unique, safe as a folder name: results go to OUT/shot1/
    job = "jobs/shot1"      # a job folder, relative to the manifest
    seed = 7                # any run option here overrides [defaults]
    [[jobs]]
    name = "shot2"          # instead of `job`: `vacelab prepare` options, prepared by the batch
    prepare = {task = "remove", video = "clips/a.mp4", bbox = "100,80,300,240", what = "a car"}

Everything is checked before anything runs: an unknown key, a wrong type, a bad choice, a missing job
folder or a duplicate name raises :class:`InputError` with one line naming the manifest, the job and the
key. The settings helpers (:func:`read_toml`, :func:`check_settings`, :func:`build_settings`,
:func:`check_name`, :func:`job_tables`) are what other TOML front ends (``vacelab experiment`` plans)
reuse, so a run option means and validates the same everywhere.
"""

from __future__ import annotations

import difflib
import os
import re
import tomllib
import types
import typing
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path

from .errors import InputError
from .generation.lora import LORA_FIELDS
from .generation.settings import RunSettings

# Run options that may name a local file or folder; a relative one that exists beside the manifest is
# taken relative to the manifest (a hub id such as "Wan-AI/..." is left alone when no such path exists).
PATH_OPTIONS = ("model",)
# `vacelab prepare` options naming input files, taken relative to the manifest (refs and keys: lists).
PREPARE_FILES = ("video", "mask", "polygon", "image", "image2")
# `vacelab prepare` options naming a model: a folder beside the manifest, else a hub id (as PATH_OPTIONS).
PREPARE_MODELS = ("track_model", "control_model", "person_model")
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,99}")
_TYPE_WORDS = {bool: "true or false", int: "an integer", float: "a number", str: "a string"}


def read_toml(path: str | os.PathLike) -> dict:
    """Parse a TOML file; a missing file or a syntax error is an :class:`InputError` naming the file."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path}: no such file")
    try:
        with path.open("rb") as handle:
            return tomllib.load(handle)
    except tomllib.TOMLDecodeError as exc:
        raise InputError(f"{path}: not valid TOML ({exc})") from None
    except UnicodeDecodeError:
        raise InputError(f"{path}: not valid TOML (not UTF-8 text)") from None


def _describe(kind) -> str:
    if typing.get_origin(kind) in (typing.Union, types.UnionType):
        return " or ".join(_describe(arg) for arg in typing.get_args(kind) if arg is not type(None))
    if typing.get_origin(kind) is list:
        return f"a list of {_describe(typing.get_args(kind)[0]).removeprefix('a ').removeprefix('an ')}s"
    return _TYPE_WORDS[kind]


def _coerce(value, kind):
    """``value`` as ``kind`` (int accepted for float, a string for a list of strings), else TypeError."""
    if typing.get_origin(kind) in (typing.Union, types.UnionType):
        if value is None and type(None) in typing.get_args(kind):
            return None
        for arg in typing.get_args(kind):
            if arg is not type(None):
                try:
                    return _coerce(value, arg)
                except TypeError:
                    pass
        raise TypeError
    if typing.get_origin(kind) is list:
        (item,) = typing.get_args(kind)
        items = [value] if isinstance(value, str) and item is str else value
        if not isinstance(items, list):
            raise TypeError
        return [_coerce(v, item) for v in items]
    if kind is float and isinstance(value, int | float) and not isinstance(value, bool):
        return float(value)
    if kind is int and isinstance(value, bool):
        raise TypeError
    if kind in _TYPE_WORDS and isinstance(value, kind):
        return value
    raise TypeError


def _resolve_path(value: str, base: Path | None) -> str:
    if base is None or os.path.isabs(value):
        return value
    candidate = base / value
    return str(candidate.resolve()) if candidate.exists() else value


def _checked_lora(spec: str, base: Path | None, where: str, key: str) -> str:
    """A ``lora`` (``lora_high``, ``lora_low``) entry with its file taken relative to ``base`` (as a job's
    paths are), read now so that a missing or broken LoRA stops the batch before any job starts."""
    from .generation.lora import parse_lora_spec, split_lora_spec

    path, scale = split_lora_spec(spec)
    if base is not None and not os.path.isabs(os.path.expanduser(path)):
        path = str((base / path).resolve())
    resolved = path if scale is None else f"{path}:{scale}"
    try:
        parse_lora_spec(resolved)
    except InputError as exc:
        raise InputError(f"{where}: {key} = {spec!r}: {exc.message if exc.field else exc}") from None
    return resolved


def check_settings(table: dict, where: str, *, base: Path | None = None) -> dict:
    """Validate a table of run options: names and types against ``RunSettings.field_types()``.

    ``where`` prefixes every error (e.g. ``"plan.toml: [defaults]"``); ``base`` is the folder relative
    paths in :data:`PATH_OPTIONS` are taken from. Returns the options with values coerced (int -> float,
    one string -> a one-item list).
    """
    kinds = RunSettings.field_types()
    checked = {}
    for key, value in table.items():
        if key not in kinds:
            close = difflib.get_close_matches(key.replace("-", "_"), kinds, n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else " (not a `vacelab run` option)"
            raise InputError(f"{where}: unknown key {key!r}{hint}")
        try:
            value = _coerce(value, kinds[key])
        except TypeError:
            raise InputError(
                f"{where}: {key} = {value!r}: expected {_describe(kinds[key])}, got {type(value).__name__}"
            ) from None
        choices = RunSettings.choices(key)
        if choices and value not in choices:
            raise InputError(f"{where}: {key} = {value!r}: expected one of {', '.join(choices)}")
        if key in PATH_OPTIONS and value is not None:
            value = _resolve_path(value, base)
        if key in LORA_FIELDS:
            value = [_checked_lora(spec, base, where, key) for spec in value]
        checked[key] = value
    return checked


def validate_settings(settings: RunSettings, where: str) -> None:
    """``settings.validate()`` with an error worded for a TOML file: ``WHERE: steps = 0: must be ...``."""
    try:
        settings.validate()
    except InputError as exc:
        raise InputError(f"{where}: {exc.toml()}") from None


def build_settings(*tables: dict) -> RunSettings:
    """``RunSettings`` from checked tables, later tables overriding earlier ones (defaults, then a job's);
    a ``preset`` fills what neither its own table nor a later one sets (it overrides earlier tables)."""
    merged: dict = {}
    explicit: set[str] = set()
    for table in tables:
        merged.update(table)
        explicit = set(table) if "preset" in table else explicit | set(table)
    return replace(RunSettings(), **merged).with_preset(explicit=explicit)


def check_name(value, where: str, seen: set[str]) -> str:
    """A unique name usable as a folder name (letters, digits, ``._-``; starting with a letter or digit)."""
    if not isinstance(value, str):
        raise InputError(f"{where}: name = {value!r}: expected a string")
    if not _NAME.fullmatch(value):
        raise InputError(
            f"{where}: name = {value!r}: use letters, digits, '.', '_' or '-' (at most 100, starting with"
            " a letter or digit), so that it is a safe folder name"
        )
    if value.lower().endswith(".partial"):
        raise InputError(f"{where}: name = {value!r}: '.partial' ends the folders of unfinished long runs")
    if value.lower() in seen:
        raise InputError(f"{where}: name = {value!r}: duplicate name (each job needs its own output folder)")
    seen.add(value.lower())
    return value


def job_tables(entries, source) -> Iterator[tuple[str, str, dict]]:
    """Check a ``[[jobs]]`` array as it is iterated: a non-empty list of tables, each named (unique, see
    :func:`check_name`). Yields ``(name, where, rest)``: ``where`` names the job in errors, ``rest`` is a
    copy of its table without ``name``."""
    if not isinstance(entries, list) or not entries or not all(isinstance(e, dict) for e in entries):
        raise InputError(f"{source}: jobs: expected one or more [[jobs]] tables")
    seen: set[str] = set()
    for index, entry in enumerate(entries, 1):
        where = f"{source}: [[jobs]] #{index}"
        rest = dict(entry)
        if "name" not in rest:
            raise InputError(f"{where}: missing key 'name'")
        name = check_name(rest.pop("name"), where, seen)
        yield name, f"{source}: [[jobs]] {name!r}", rest


def _absolute(value, base: Path):
    return str((base / value).resolve()) if isinstance(value, str) and value else value


def check_prepare(table, where: str, base: Path) -> dict:
    """Validate a ``prepare = {task = ..., ...}`` table of ``vacelab prepare`` options (names, input files).

    Relative input paths are made absolute from ``base``; returns the table ready for
    ``vacelab.tasks.prepare(**table)``. What only building the job can find (a bbox off the frame, an
    unreadable video) is reported when the job is prepared.
    """
    from .tasks.options import make_options

    if not isinstance(table, dict):
        raise InputError(f"{where}: prepare: expected a table of `vacelab prepare` options")
    options = dict(table)
    task = options.pop("task", None)
    if not isinstance(task, str):
        raise InputError(f"{where}: prepare: missing key 'task' (inpaint, remove, outpaint, ...)")
    try:
        make_options(task, options)
    except InputError as exc:
        raise InputError(f"{where}: prepare: {exc.toml()}") from None
    for key in PREPARE_FILES:
        options[key] = _absolute(options.get(key), base)
    if isinstance(options.get("ref"), str | list):
        refs = options["ref"] if isinstance(options["ref"], list) else [options["ref"]]
        options["ref"] = [_absolute(ref, base) for ref in refs]
    if isinstance(options.get("key"), str | list):
        keys = options["key"] if isinstance(options["key"], list) else [options["key"]]
        options["key"] = [
            f"{k.partition('=')[0]}={_absolute(k.partition('=')[2], base)}" if isinstance(k, str) else k
            for k in keys
        ]
    for key in PREPARE_MODELS:
        if options.get(key):
            options[key] = _resolve_path(options[key], base)
    for key, value in prepare_inputs(options).items():
        if not Path(value).exists():
            raise InputError(f"{where}: prepare: {key} = {value!r}: no such file or folder")
    return {"task": task, **{k: v for k, v in options.items() if v is not None}}


def prepare_inputs(options: dict) -> dict[str, str]:
    """The input files a checked prepare table reads, by option (``ref[0]``, ``key[1]``, ...)."""
    found = {key: options[key] for key in PREPARE_FILES if options.get(key)}
    found.update({f"ref[{i}]": ref for i, ref in enumerate(options.get("ref") or []) if isinstance(ref, str)})
    for i, key in enumerate(options.get("key") or []):
        if isinstance(key, str) and "=" in key:
            found[f"key[{i}]"] = key.partition("=")[2]
    return found


@dataclass
class ManifestJob:
    """One entry of ``[[jobs]]``: its name, its job folder (or prepare options) and its run settings."""

    name: str
    job: Path | None
    settings: RunSettings
    prepare: dict | None = None  # `vacelab prepare` options (with "task") when the batch builds the job


@dataclass
class Manifest:
    """A checked batch manifest."""

    path: Path
    jobs: list[ManifestJob]


def load_manifest(path: str | os.PathLike) -> Manifest:
    """Read and check a batch manifest (see the module docstring); raises :class:`InputError` on any fault."""
    path = Path(path)
    data = read_toml(path)
    base = path.resolve().parent
    for key in data:
        if key not in ("defaults", "jobs"):
            raise InputError(f"{path}: unknown key {key!r} (a manifest has [defaults] and [[jobs]])")
    defaults = data.get("defaults", {})
    if not isinstance(defaults, dict):
        raise InputError(f"{path}: defaults: expected a table [defaults]")
    defaults = check_settings(defaults, f"{path}: [defaults]", base=base)
    jobs = []
    for name, where, entry in job_tables(data.get("jobs"), path):
        if ("job" in entry) == ("prepare" in entry):
            raise InputError(
                f"{where}: give either 'job' (a job folder made by `vacelab prepare`) or 'prepare' (its"
                " options)"
            )
        resolved, prepare = None, None
        if "prepare" in entry:
            prepare = check_prepare(entry.pop("prepare"), where, base)
        else:
            resolved = _job_folder(entry.pop("job"), where, base)
        settings = build_settings(defaults, check_settings(entry, where, base=base))
        validate_settings(settings, where)
        jobs.append(ManifestJob(name=name, job=resolved, settings=settings, prepare=prepare))
    return Manifest(path=path, jobs=jobs)


def _job_folder(folder, where: str, base: Path) -> Path:
    if not isinstance(folder, str):
        raise InputError(f"{where}: job = {folder!r}: expected a string (a folder path)")
    resolved = (base / folder).resolve()
    if not (resolved / "job.json").is_file():
        raise InputError(f"{where}: job = {folder!r}: no job folder at {resolved} (no job.json)")
    return resolved
