"""Experiment plans: jobs x a grid of run settings -> prepared, audited, generated, measured, reported.

A plan is a TOML file (docs/experiments.md)::

    title = "..."
    [prepare]                 # `vacelab prepare` options for every job (underscores), e.g. size, frames
    [run]                     # `vacelab run` options for every run (what a batch manifest's [defaults] takes)
    [grid]                    # axes crossed into every job's own grid, e.g. seed = [1, 2]
    [modes]                   # named sets of run options, each job run once per mode (axis "mode");
    exact = {}                # the first is the reference the others are measured against
    cache = {cache = 0.1}
    [[jobs]]
    name = "keyframes"        # folder-safe and unique
    task = "keyframes"        # a `vacelab prepare` task
    video = "sample:"         # any prepare option; paths relative to the plan; "sample:..." = bundled
    every = 8
    [jobs.run]                # run options of this job's runs
    [jobs.grid]               # lists: a run option -> one run per value; a prepare option -> one job each
    strategy = ["naive", "aligned", "anchor"]
    mask_encoding = ["reference", "aligned"]

Run settings are checked with the batch manifest's validator (:mod:`vacelab.manifest`); prepare options by
``vacelab.tasks.prepare`` itself. Every job is prepared before any run starts, and the runs go through
``vacelab.batch.run_batch`` (one model load per model, a failed run recorded and the others carried on,
finished runs skipped when the same command is run again).

Layout of ``OUT/``::

    jobs/NAME/          the prepared job folders (built together, atomically)
    runs/NAME/          one `vacelab run` results folder per run (+ runs/batch.json)
    experiment.json     the expanded plan, each run's status and metrics
    report.html         the self-contained report
"""

from __future__ import annotations

import itertools
import json
import math
import os
import re
import tempfile
from dataclasses import dataclass, field, fields, replace
from pathlib import Path

import numpy as np

from . import media
from .errors import InputError
from .fingerprint import fingerprint as _fingerprint
from .folders import write_folder
from .generation.settings import RunSettings
from .job import TASKS, Job, load_job, save_job
from .manifest import build_settings, check_settings, job_tables, read_toml, validate_settings
from .mode_costs import MODE, compare_modes
from .sample import SAMPLE_PREFIX, SampleInputs

PATH_OPTIONS = ("video", "mask", "polygon", "image", "image2")  # prepare options naming one input file
EXPERIMENT_FORMAT = 1
MAX_RUNS = 1000  # the most runs one plan may make: a plan is read whole before anything runs
PLAN_KEYS = {"title", "about", "prepare", "run", "grid", "modes", "jobs"}
JOB_KEYS = {"name", "task", "title", "about", "run", "grid"}


# --------------------------------------------------------------------------------------------- plans
@dataclass
class PlanJob:
    """One ``[[jobs]]`` entry: a task, its prepare options and its own run settings and grid."""

    name: str
    task: str
    title: str = ""
    about: str = ""
    options: dict = field(default_factory=dict)
    run: dict = field(default_factory=dict)
    grid: dict = field(default_factory=dict)


@dataclass
class Plan:
    """A checked plan. ``base``: the folder relative inputs are taken from; ``overrides``: CLI settings."""

    title: str
    about: str
    jobs: list[PlanJob]
    prepare: dict = field(default_factory=dict)
    run: dict = field(default_factory=dict)
    grid: dict = field(default_factory=dict)
    modes: dict = field(default_factory=dict)  # name -> run options; the first is the reference
    base: Path | None = None
    source: str = "plan"
    overrides: dict = field(default_factory=dict)


@dataclass
class Variant:
    """One job to prepare: a plan job with one value of each of its prepare axes."""

    name: str
    plan_job: PlanJob
    options: dict
    axes: dict


@dataclass
class RunSpec:
    """One run: a variant with complete run settings; ``axes`` are the grid values that vary in its job."""

    name: str
    variant: Variant
    settings: RunSettings
    axes: dict


def _run_fields() -> set[str]:
    return {f.name for f in fields(RunSettings)}


def _prepare_fields() -> set[str]:
    from .tasks.options import Options

    return {f.name for f in fields(Options)}


def _table(value, where: str) -> dict:
    if not isinstance(value, dict):
        raise InputError(f"{where}: expected a table")
    return dict(value)


def _check_grid(grid: dict, where: str, base: Path | None) -> dict:
    """Each axis a non-empty list; run-setting axes checked value by value with the manifest validator."""
    run_fields, prepare_fields = _run_fields(), _prepare_fields()
    checked = {}
    for key, values in grid.items():
        if not isinstance(values, list) or not values:
            raise InputError(f"{where}: {key} = {values!r}: a grid axis is a non-empty list of values")
        if key in run_fields:
            values = [check_settings({key: v}, where, base=base)[key] for v in values]
        elif key not in prepare_fields:
            raise InputError(
                f"{where}: unknown key {key!r} (neither a `vacelab run` nor a `vacelab prepare` option)"
            )
        checked[key] = values
    return checked


def plan_from_dict(data: dict, *, base: Path | None = None, source: str = "plan") -> Plan:
    """Check a plan given as a dict (a parsed TOML file); ``source`` names it in every error."""
    for key in data:
        if key not in PLAN_KEYS:
            raise InputError(f"{source}: unknown key {key!r} (a plan has {', '.join(sorted(PLAN_KEYS))})")
    prepare = _table(data.get("prepare", {}), f"{source}: [prepare]")
    unknown = set(prepare) - _prepare_fields()
    if unknown:
        raise InputError(
            f"{source}: [prepare]: unknown key {sorted(unknown)[0]!r} (not a `vacelab prepare` option)"
        )
    run = check_settings(_table(data.get("run", {}), f"{source}: [run]"), f"{source}: [run]", base=base)
    grid = _check_grid(_table(data.get("grid", {}), f"{source}: [grid]"), f"{source}: [grid]", base)
    modes = {
        name: check_settings(
            _table(table, f"{source}: [modes] {name}"), f"{source}: [modes] {name}", base=base
        )
        for name, table in _table(data.get("modes", {}), f"{source}: [modes]").items()
    }
    jobs = []
    for name, where, entry in job_tables(data.get("jobs"), source):
        task = entry.get("task")
        if task not in TASKS:
            raise InputError(f"{where}: task = {task!r}: choose from {', '.join(TASKS)}")
        job_run = check_settings(_table(entry.get("run", {}), f"{where}: run"), f"{where}: run", base=base)
        job_grid = _check_grid(_table(entry.get("grid", {}), f"{where}: grid"), f"{where}: grid", base)
        options = {k: v for k, v in entry.items() if k not in JOB_KEYS}
        unknown = set(options) - _prepare_fields()
        if unknown:
            raise InputError(f"{where}: unknown key {sorted(unknown)[0]!r} (not a `vacelab prepare` option)")
        jobs.append(
            PlanJob(
                name=name,
                task=task,
                title=str(entry.get("title", name)),
                about=str(entry.get("about", "")),
                options=options,
                run=job_run,
                grid=job_grid,
            )
        )
    plan = Plan(
        title=str(data.get("title", "Experiment")),
        about=str(data.get("about", "")),
        jobs=jobs,
        prepare=prepare,
        run=run,
        grid=grid,
        modes=modes,
        base=base,
        source=source,
    )
    expand(plan)  # every run's settings are complete and valid
    return plan


PLANS = Path(__file__).parent / "plans"


def plan_path(name: str | os.PathLike) -> Path:
    """A plan file, or the name of a plan shipped with vacelab (``field_report``)."""
    path = Path(name)
    if not path.exists() and (PLANS / f"{path.name}.toml").is_file() and path.name == str(name):
        return PLANS / f"{path.name}.toml"
    return path


def load_plan(path: str | os.PathLike, **overrides) -> Plan:
    """Read and check a plan file (or a shipped plan's name). ``overrides``: ``model``, ``steps`` (every
    run), ``size``, ``frames`` (every job) replace what the plan says, grid axes included."""
    path = plan_path(path)
    plan = plan_from_dict(read_toml(path), base=path.resolve().parent, source=str(path))
    return with_overrides(plan, **overrides)


def with_overrides(plan: Plan, **overrides) -> Plan:
    """``plan`` with CLI overrides (``model``, ``steps``, ``size``, ``frames``; ``None`` = not given)."""
    given = {k: v for k, v in overrides.items() if v is not None}
    unknown = set(given) - {"model", "steps", "size", "frames"}
    if unknown:
        raise ValueError(f"unknown overrides {sorted(unknown)}")
    if "model" in given or "steps" in given:
        run_part = {k: given[k] for k in ("model", "steps") if k in given}
        given.update(check_settings(run_part, "--model/--steps", base=Path.cwd()))
    plan = replace(plan, overrides={**plan.overrides, **given})
    expand(plan)
    return plan


# ------------------------------------------------------------------------------------------- expansion
def _slug(value) -> str:
    text = Path(str(value)).name if isinstance(value, str) and os.sep in value else str(value)
    return re.sub(r"[^A-Za-z0-9._]+", "-", text).strip("-.")[:40] or "x"


def _unique(name: str, taken: set[str]) -> str:
    candidate, n = name, 1
    while candidate.lower() in taken:
        n += 1
        candidate = f"{name}-{n}"
    taken.add(candidate.lower())
    return candidate


def expand(plan: Plan) -> tuple[list[Variant], list[RunSpec]]:
    """The jobs to prepare and the runs to make, in plan order (overrides applied, duplicates dropped)."""
    run_fields = _run_fields()
    prepare_over = {k: plan.overrides[k] for k in ("size", "frames") if k in plan.overrides}
    run_over = {k: plan.overrides[k] for k in ("model", "steps") if k in plan.overrides}
    variants, runs = [], []
    variant_names: set[str] = set()
    run_names: set[str] = set()
    axes_of = []
    for job in plan.jobs:
        grid = {**plan.grid, **job.grid}
        prep_axes = {
            k: ([prepare_over[k]] if k in prepare_over else v) for k, v in grid.items() if k not in run_fields
        }
        run_axes = {k: ([run_over[k]] if k in run_over else v) for k, v in grid.items() if k in run_fields}
        axes_of.append(({k: list(dict.fromkeys(v)) for k, v in prep_axes.items()}, run_axes))
    total = sum(math.prod(map(len, p.values())) * math.prod(map(len, r.values())) for p, r in axes_of)
    if total > MAX_RUNS:
        raise InputError(
            f"{plan.source}: the plan's grids make {total} runs, more than the {MAX_RUNS} a plan may hold; "
            "shrink the grids or split the plan"
        )
    for job, (prep_axes, run_axes) in zip(plan.jobs, axes_of, strict=True):
        varying_runs = [k for k, v in run_axes.items() if len({str(x) for x in v}) > 1]
        for combo in itertools.product(*prep_axes.values()):
            axes = dict(zip(prep_axes, combo, strict=True))
            varying = [axes[k] for k in axes if len(prep_axes[k]) > 1]
            name = _unique("-".join([job.name, *map(_slug, varying)]), variant_names)
            options = {**plan.prepare, **job.options, **axes, **prepare_over}
            variant = Variant(name=name, plan_job=job, options=options, axes=axes)
            variants.append(variant)
            seen_settings = set()
            for combo in itertools.product(*run_axes.values()):
                values = dict(zip(run_axes, combo, strict=True))
                for mode, mode_run in (plan.modes or {None: {}}).items():
                    settings = build_settings(plan.run, job.run, values, mode_run, run_over)
                    validate_settings(settings, f"{plan.source}: [[jobs]] {job.name!r}")
                    key = json.dumps(settings.as_dict(), sort_keys=True, default=str)
                    if key in seen_settings:
                        continue
                    seen_settings.add(key)
                    shown = {k: values[k] for k in varying_runs} | ({MODE: mode} if mode else {})
                    run_name = "-".join([variant.name, *map(_slug, shown.values())])
                    runs.append(RunSpec(_unique(run_name, run_names), variant, settings, {**axes, **shown}))
    return variants, runs


def _resolve_inputs(options: dict, base: Path | None, samples: SampleInputs, where: str) -> dict:
    """Prepare options with input paths made absolute (relative to the plan) and samples resolved."""

    def path(value, option):
        if not isinstance(value, str):
            return value
        if value.startswith(SAMPLE_PREFIX):
            return samples.resolve(value, f"{where}: {option}", options.get("size", "480p"))
        if base is not None and not os.path.isabs(value):
            return str(base / value)
        return value

    resolved = dict(options)
    for option in PATH_OPTIONS:
        if option in resolved:
            resolved[option] = path(resolved[option], option)
    if "ref" in resolved:
        refs = resolved["ref"] if isinstance(resolved["ref"], list) else [resolved["ref"]]
        resolved["ref"] = [path(r, "ref") for r in refs]
    if "key" in resolved:
        from .tasks.options import key_spec

        keys = resolved["key"] if isinstance(resolved["key"], list) else [resolved["key"]]
        resolved["key"] = [f"{f}={path(p, 'key')}" for f, p in map(key_spec, keys)]
    return resolved


def prepare_variant(variant: Variant, plan: Plan, samples: SampleInputs) -> Job:
    """Prepare one variant in memory; ``job.params`` records the plan's own text for inputs."""
    from .tasks import prepare

    where = f"{plan.source}: [[jobs]] {variant.plan_job.name!r}"
    options = _resolve_inputs(variant.options, plan.base, samples, where)
    try:
        job = prepare(variant.plan_job.task, **options)
    except InputError as exc:
        raise InputError(f"{where}: {exc.toml()}") from None
    for option in (*PATH_OPTIONS, "ref", "key"):
        if option in job.params and option in variant.options:
            job.params[option] = variant.options[option]
    return job


def key_frames(job: Job) -> list[int] | None:
    """Frames given whole as keyframes (entirely KEEP) in a keyframes job; ``None`` for other tasks."""
    if job.task != "keyframes":
        return None
    return [int(i) for i in np.flatnonzero(~job.mask.any(axis=(1, 2)))]


# ------------------------------------------------------------------------------------------- running
def fingerprint(variants: list[Variant], plan: Plan) -> str:
    """What the prepared jobs depend on (a resumed experiment must match it)."""
    return _fingerprint([[v.name, v.plan_job.task, v.options] for v in variants] + [str(plan.base)])


def _check_out(out: Path, stamp: str) -> bool:
    """True to resume (same plan); refuse a folder that holds anything else."""
    if out.exists() and not out.is_dir():
        raise InputError("is an existing file", field="out", value=out)
    if not out.is_dir() or not any(out.iterdir()):
        return False
    try:
        record = json.loads((out / "experiment.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        record = None
    if not isinstance(record, dict) or record.get("jobs_fingerprint") != stamp:
        raise InputError(
            "folder exists and is not empty (nothing is overwritten); it holds no unfinished run of this "
            "plan to resume",
            field="out",
            value=out,
        )
    return True


def run_plan(
    plan: Plan,
    out: str | os.PathLike,
    *,
    generate: bool = True,
    loader=None,
    stream=None,
    notice: str | None = None,
) -> dict:
    """Prepare and audit every job of ``plan`` into ``out``, run them (``generate``), measure, report.

    Returns the content of ``experiment.json``. Running the same plan into the same ``out`` again
    resumes it: prepared jobs are kept, finished runs skipped. ``loader`` replaces ``load_pipeline``
    (a loaded pipeline for the demo); ``notice`` is one line shown at the top of the report.
    """
    from .report import write_experiment_report

    out = Path(out)
    variants, runs = expand(plan)
    stamp = fingerprint(variants, plan)
    resume = _check_out(out, stamp)
    created = not out.exists()
    out.mkdir(parents=True, exist_ok=True)
    if not (resume and (out / "jobs").is_dir()):
        try:
            _prepare_all(variants, plan, out / "jobs")
        except BaseException:
            if created and not any(out.iterdir()):
                out.rmdir()  # a plan that cannot be prepared leaves nothing behind
            raise
    record = {
        "vacelab_experiment": EXPERIMENT_FORMAT,
        "jobs_fingerprint": stamp,
        "title": plan.title,
        "plan": plan.source,
        "overrides": plan.overrides,
        "generate": generate,
    }
    media.write_text(
        out / "experiment.json", json.dumps(record, indent=2, default=str)
    )  # resumable from here
    jobs = {v.name: load_job(out / "jobs" / v.name) for v in variants}
    outcomes = {}
    if generate and runs:
        from .batch import run_batch
        from .manifest import Manifest, ManifestJob

        manifest = Manifest(
            path=Path(plan.source),
            jobs=[ManifestJob(r.name, (out / "jobs" / r.variant.name).resolve(), r.settings) for r in runs],
        )
        outcomes = {o.name: o for o in run_batch(manifest, out / "runs", loader=loader, stream=stream)}
    record["variants"] = [
        {
            "name": v.name,
            "job": v.plan_job.name,
            "task": v.plan_job.task,
            "axes": v.axes,
            "options": v.options,
        }
        for v in variants
    ]
    record["runs"] = [_run_record(r, jobs[r.variant.name], out, outcomes.get(r.name)) for r in runs]
    if plan.modes:
        compare_modes(record["runs"], jobs, out, reference=next(iter(plan.modes)))
    media.write_text(out / "experiment.json", json.dumps(_finite(record), indent=2, default=str))
    write_experiment_report(out / "report.html", plan, variants, jobs, record, notice=notice)
    return record


def _prepare_all(variants: list[Variant], plan: Plan, folder: Path) -> None:
    """Prepare every variant into ``folder`` (one atomic folder: all jobs or none)."""

    def fill(tmp: Path) -> None:
        with tempfile.TemporaryDirectory(prefix="vacelab-samples-") as scratch:
            samples = SampleInputs(Path(scratch))
            for variant in variants:
                save_job(prepare_variant(variant, plan, samples), tmp / variant.name)

    write_folder(folder, fill)


def _run_record(run: RunSpec, job: Job, out: Path, outcome) -> dict:
    record = {
        "name": run.name,
        "variant": run.variant.name,
        "axes": run.axes,
        "settings": run.settings.as_dict(),
        "status": "not run" if outcome is None else outcome.status,
        "error": getattr(outcome, "error", None),
    }
    if record["status"] in ("done", "skipped"):
        from .metrics import run_metrics
        from .result import load_result

        result = load_result(out / "runs" / run.name)
        record["status"] = "done"
        record["metrics"] = run_metrics(
            np.asarray(job.video), job.mask, result.video, key_frames=key_frames(job)
        )
        timings, memory = result.run.get("timings", {}), result.run.get("memory", {})
        passes = run.settings.steps * len(result.run.get("windows") or [None])
        generate = timings.get("generate")
        record["seconds"] = {
            "generate": generate,
            "total": timings.get("total"),
            "per_step": generate / passes if generate is not None else None,
        }
        record["peak_memory"] = {
            "accelerator_bytes": memory.get("accelerator_peak_bytes"),
            "cpu_rss_bytes": memory.get("cpu_peak_rss_bytes"),
        }
    return record


def _finite(value):
    """JSON-safe copy: ``inf`` -> "inf", ``nan`` -> None."""
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_finite(v) for v in value]
    if isinstance(value, float) and not math.isfinite(value):
        return None if math.isnan(value) else ("inf" if value > 0 else "-inf")
    return value
