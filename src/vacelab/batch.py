"""Run many jobs from a manifest, resumably, in one process or on a Ray cluster.

Layout of ``OUT/``::

    NAME/               what ``vacelab run --out`` writes for the job NAME (``run.json`` written last)
    .batch/NAME.json    what the batch asked of NAME (settings + job content hash), written BEFORE it runs
    .batch/NAME.log     the traceback of NAME's last failure
    .batch/jobs/NAME/   the job folder the batch prepared for NAME (``prepare = {...}`` entries)
    batch.json          {"jobs": [{"name", "status": done|failed|skipped, "error", "seconds"}, ...]}

A job is finished when ``NAME/run.json`` exists, its recorded settings are the job's settings and the
record in ``.batch/`` matches the job's settings and job-folder content. Finished jobs are skipped.
Anything else under the job's name (a folder made with other settings or from another job content, the
temporary sibling ``.NAME.<8 random>.part``) is removed and the job is redone from scratch — but only a
folder vacelab provably wrote (``folders.remove_own_folder``): an ``OUT/NAME`` holding a file vacelab
did not write fails that job with one line and is left as it is. Inputs of the batch (job folders,
``prepare`` files) may not lie inside OUT.
Because ``run_job`` builds ``NAME/`` under a temporary name and renames it when complete, and the
record is written before the run starts, a kill at any instant leaves either the old state or the
complete new one.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import sys
import threading
import time
import traceback
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path

from . import media
from .errors import InputError
from .fingerprint import fingerprint
from .folders import remove_own_folder, remove_parts
from .generation.cache import PipelineCache
from .generation.settings import RunSettings
from .manifest import Manifest

LEDGER = ".batch"
STATUSES = ("done", "failed", "skipped")


@dataclass
class Task:
    """One job of a batch, ready to run: where its job folder is and where its results go."""

    name: str
    job: Path
    settings: RunSettings
    out: Path  # the batch's OUT folder; results go to out / name

    @property
    def pipeline_key(self) -> tuple:
        """Jobs with equal keys share one loaded pipeline (``RunSettings.loading_key``)."""
        return self.settings.loading_key()


@dataclass
class Outcome:
    """What happened to one job: ``status`` is done, failed or skipped; ``error`` is one line."""

    name: str
    status: str
    error: str | None = None
    seconds: float = 0.0


# ------------------------------------------------------------------------------------------ resume state
def job_fingerprint(folder: str | Path) -> str:
    """Content hash of what a run reads from a job folder (job.json, the lossless arrays, the references)."""
    folder = Path(folder)
    files = (
        [folder / "job.json"]
        + sorted((folder / "arrays").glob("*"))
        + sorted((folder / "src_ref_images").glob("*"))
    )
    return fingerprint(files=[path for path in files if path.is_file()], root=folder)


def _record(task: Task) -> dict:
    """What ``.batch/NAME.json`` records: the settings, the job's fingerprint and its folder (relative to
    ``.batch``, so the record stays true when OUT moves with its jobs)."""
    job = os.path.relpath(Path(task.job).resolve(), (task.out / LEDGER).resolve())
    return {"settings": task.settings.as_dict(), "job_hash": job_fingerprint(task.job), "job": job}


def _read_json(path: Path) -> dict | None:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def is_finished(task: Task, record: dict) -> bool:
    """True when ``OUT/NAME`` holds a complete run of exactly this job content with these settings."""
    run = _read_json(task.out / task.name / "run.json")
    ledger = _read_json(task.out / LEDGER / f"{task.name}.json")
    if run is None or ledger is None:
        return False
    settings = record["settings"]
    return (
        run.get("settings") == settings
        and ledger.get("settings") == settings
        and ledger.get("job_hash") == record["job_hash"]
    )


def _log_failure(out: Path, name: str, exc: BaseException) -> None:
    """``OUT/.batch/NAME.log``: the whole traceback of NAME's failure (batch.json holds one line)."""
    media.write_text(out / LEDGER / f"{name}.log", "".join(traceback.format_exception(exc)))


def _start(task: Task, record: dict) -> None:
    """Clear the job's temporary leftovers and write what the batch asks of it, before it runs (its old
    ``OUT/NAME`` is already gone: :func:`_run_batch`)."""
    remove_parts(task.out, task.name)
    (task.out / LEDGER).mkdir(parents=True, exist_ok=True)
    (task.out / LEDGER / f"{task.name}.log").unlink(missing_ok=True)
    media.write_text(task.out / LEDGER / f"{task.name}.json", json.dumps(record, indent=2))


# ------------------------------------------------------------------------------------------- execution
def one_line(exc: BaseException) -> str:
    """A one-line description of an error (InputError messages worded for TOML, others with their type)."""
    text = exc.toml() if isinstance(exc, InputError) else str(exc)
    text = text.strip().splitlines()[0] if text.strip() else ""
    if isinstance(exc, InputError):
        return text
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def execute(task: Task, cache: PipelineCache, *, runner=None, progress=None, gpus=None) -> Outcome:
    """Run one job into ``OUT/NAME`` with a cached pipeline (a parallel job's ranks load their own, on the
    visible GPUs ``gpus``); any failure becomes a failed :class:`Outcome`."""
    if runner is None:
        from .generation.run import run_job as runner
    started = time.perf_counter()
    try:
        pipeline = cache.get(task.settings) if task.settings.parallel == 1 else None
        split = {"gpus": gpus} if task.settings.parallel > 1 else {}  # a runner that only splits takes it
        runner(task.job, task.out / task.name, task.settings, pipeline=pipeline, progress=progress, **split)
    except Exception as exc:
        _log_failure(task.out, task.name, exc)
        return Outcome(task.name, "failed", one_line(exc), round(time.perf_counter() - started, 3))
    return Outcome(task.name, "done", None, round(time.perf_counter() - started, 3))


def _grouped(tasks: list[Task]) -> list[Task]:
    """Tasks in manifest order, grouped so that jobs sharing a model run together (one load each)."""
    keys: dict[tuple, int] = {}
    for task in tasks:
        keys.setdefault(task.pipeline_key, len(keys))
    return sorted(tasks, key=lambda t: keys[t.pipeline_key])


def _run_local(tasks, records, progress, runner, loader, gpus: int) -> list[Outcome]:
    """One job at a time in this process (one loaded pipeline per model), then the parallel jobs
    (:func:`_run_split`) over the ``gpus`` visible GPUs."""
    cache = PipelineCache(loader)
    outcomes = []
    for task in _grouped([t for t in tasks if t.settings.parallel == 1]):
        progress.started(task.name)
        _start(task, records[task.name])
        outcome = execute(task, cache, runner=runner, progress=progress.stepper(task.name))
        progress.finished(outcome)
        outcomes.append(outcome)
    split = [t for t in tasks if t.settings.parallel > 1]
    if split:
        cache.clear()  # the GPUs go to the ranks
    return outcomes + _run_split(split, records, progress, runner, cache, gpus)


def _run_split(tasks, records, progress, runner, cache, gpus: int) -> list[Outcome]:
    """Jobs with ``parallel = N``: side by side on disjoint sets of N of the ``gpus`` GPUs (each set the
    ``CUDA_VISIBLE_DEVICES`` of its ranks); without GPUs (gloo on the CPU), or wanting more than there
    are (then refused by ``run_job`` in one line), one after another."""
    free, turn = list(range(gpus)), threading.Condition()

    def run(task: Task) -> Outcome:
        n = task.settings.parallel
        fits = 0 < n <= gpus
        with turn:
            turn.wait_for(lambda: not fits or len(free) >= n)
            mine = [free.pop(0) for _ in range(n)] if fits else None
            progress.started(task.name)
            _start(task, records[task.name])
        try:
            outcome = execute(task, cache, runner=runner, progress=progress.stepper(task.name), gpus=mine)
        finally:
            with turn:
                free.extend(mine or [])
                turn.notify_all()
        with turn:
            progress.finished(outcome)
        return outcome

    if not gpus:
        return [run(task) for task in tasks]
    with ThreadPoolExecutor(max_workers=gpus) as pool:
        return list(pool.map(run, tasks))


def visible_gpus() -> int:
    """The CUDA GPUs this process sees (0 without CUDA)."""
    from .generation.pipeline import torch_is_cpu_only

    if torch_is_cpu_only():
        return 0
    import torch

    return torch.cuda.device_count() if torch.cuda.is_available() else 0


class _Worker:
    """A Ray actor: keeps its loaded pipeline between the jobs it is given."""

    def __init__(self):
        self.cache = PipelineCache()

    def run(self, task: Task, steps) -> Outcome:
        """Run ``task``; its progress goes to the ``steps`` queue as ``(name, stage, done, total)``."""

        def report(stage: str, done: int, total: int) -> None:
            steps.put_nowait((task.name, stage, done, total))

        return execute(task, self.cache, progress=report)


def _run_ray(tasks, records, progress, address, max_parallel) -> list[Outcome]:
    import ray

    owned = not ray.is_initialized()
    if owned:
        ray.init(address=address or None, include_dashboard=False, log_to_driver=False)
    try:
        outcomes = []
        for ranks in sorted({t.settings.parallel for t in tasks}):  # one GPU per job first
            group = [t for t in tasks if t.settings.parallel == ranks]
            outcomes += _dispatch(ray, group, records, progress, max_parallel, ranks)
        return outcomes
    finally:
        if owned:
            ray.shutdown()


def _dispatch(ray, tasks, records, progress, max_parallel, ranks: int = 1) -> list[Outcome]:
    """Hand the tasks to a pool of :class:`_Worker` actors, a job at a time each; collect outcomes.

    ``ranks``: the tasks' ``parallel``; each actor then holds that many GPUs (Ray sets its
    ``CUDA_VISIBLE_DEVICES``) and its job starts its ranks there (on a CPU cluster: that many CPUs).
    """
    from ray.util.queue import Empty, Queue

    resources = ray.cluster_resources()
    gpus = int(resources.get("GPU", 0))
    slots = gpus // ranks if gpus else max(1, int(resources.get("CPU", 1)) // ranks)
    size = max(1, min(max_parallel or slots, len(tasks)))
    worker = ray.remote(num_gpus=ranks if gpus else 0, num_cpus=1)(_Worker)
    idle = [[worker.remote(), None] for _ in range(size)]  # [actor, key of its loaded pipeline]
    steps = Queue(actor_options={"num_cpus": 0})
    todo = _grouped(tasks)
    running: dict = {}
    outcomes = []
    while todo or running:
        while idle and todo:
            slot = idle.pop()
            task = next((t for t in todo if t.pipeline_key == slot[1]), todo[0])
            todo.remove(task)
            slot[1] = task.pipeline_key
            progress.started(task.name)
            _start(task, records[task.name])
            running[slot[0].run.remote(task, steps)] = (slot, task, time.perf_counter())
        ready, _ = ray.wait(list(running), num_returns=1, timeout=0.5)
        try:
            while True:
                name, stage, done, total = steps.get_nowait()
                progress.stepper(name)(stage, done, total)
        except Empty:
            pass
        if not ready:
            continue
        slot, task, started = running.pop(ready[0])
        try:
            outcome = ray.get(ready[0])
        except ray.exceptions.RayError as exc:  # the worker died (killed, out of memory...): replace it
            outcome = Outcome(task.name, "failed", one_line(exc), round(time.perf_counter() - started, 3))
            ray.kill(slot[0])
            slot[:] = [worker.remote(), None]
        progress.finished(outcome)
        outcomes.append(outcome)
        idle.append(slot)
    for slot in idle:
        ray.kill(slot[0])
    ray.kill(steps.actor)
    return outcomes


# ------------------------------------------------------------------------------------------ reporting
class Progress:
    """Progress across jobs on a stream: counts of done / failed / left and the running job's step.

    On a terminal the step count updates in place; otherwise one line per job start and end. An error
    is shown once: a later job failing with the same one names the first.
    """

    def __init__(self, total: int, stream=None):
        self.stream = stream or sys.stderr
        self.tty = self.stream.isatty()
        self.left = total
        self.counts = {status: 0 for status in STATUSES}
        self.first_with: dict[str, str] = {}  # error -> the first job that failed with it (said once)

    def _head(self) -> str:
        c = self.counts
        return f"[{c['done']} done, {c['failed']} failed, {c['skipped']} skipped, {self.left} left]"

    def _line(self, text: str, *, final: bool = True) -> None:
        if self.tty:
            self.stream.write("\r\x1b[2K" + text + ("\n" if final else ""))
        elif final:
            self.stream.write(text + "\n")
        self.stream.flush()

    def started(self, name: str) -> None:
        self._line(f"{self._head()} {name}: started", final=not self.tty)

    def stepper(self, name: str):
        """A ``progress(stage, done, total)`` callback for ``run_job`` showing the job's stage and step."""

        def report(stage: str, done: int, total: int) -> None:
            self._line(f"{self._head()} {name}: {stage} {done}/{total}", final=False)

        return report

    def finished(self, outcome: Outcome) -> None:
        self.counts[outcome.status] += 1
        self.left -= 1
        detail = f" ({outcome.error})" if outcome.error else f" in {outcome.seconds:.1f} s"
        if outcome.error in self.first_with:  # e.g. no weights: every job of the model fails alike
            detail = f" (the same error as {self.first_with[outcome.error]})"
        elif outcome.error:
            self.first_with[outcome.error] = outcome.name
        if outcome.status == "skipped":
            detail = " (finished before)"
        self._line(f"{self._head()} {outcome.name}: {outcome.status}{detail}")


def summary_table(outcomes: list[Outcome]) -> str:
    """The outcomes as an aligned plain-text table."""
    rows = [("job", "status", "seconds", "error")] + [
        (o.name, o.status, f"{o.seconds:.1f}", o.error or "") for o in outcomes
    ]
    widths = [max(len(row[i]) for row in rows) for i in range(3)]
    return "\n".join(
        f"{r[0]:<{widths[0]}}  {r[1]:<{widths[1]}}  {r[2]:>{widths[2]}}  {r[3]}".rstrip() for r in rows
    )


# ----------------------------------------------------------------------------------------------- entry
def check_out(manifest: Manifest, out: Path) -> None:
    """Refuse an OUT that is a file or lies inside a job folder, and inputs (job folders, ``prepare``
    files) inside OUT, where the batch may replace them."""
    from .manifest import prepare_inputs

    if out.exists() and not out.is_dir():
        raise InputError("is an existing file", field="out", value=out)
    resolved = out.resolve()
    for entry in manifest.jobs:
        if entry.job is not None and (resolved == entry.job or entry.job in resolved.parents):
            raise InputError(
                f"lies inside the job folder of {entry.name!r} ({entry.job})", field="out", value=out
            )
        inputs = {"job": entry.job} if entry.job is not None else prepare_inputs(entry.prepare or {})
        for key, path in inputs.items():
            if resolved in Path(path).resolve().parents:
                raise InputError(
                    f"holds {key} = {path} of {entry.name!r}, which a batch may replace; keep inputs "
                    "outside the batch's folder",
                    field="out",
                    value=out,
                )


def run_batch(
    manifest: Manifest,
    out: str | Path,
    *,
    ray: bool = False,
    address: str | None = None,
    max_parallel: int | None = None,
    stream=None,
    runner=None,
    loader=None,
) -> list[Outcome]:
    """Run every job of ``manifest`` into ``out`` (skipping finished ones) and write ``out/batch.json``.

    ``ray``: run on a Ray cluster (``address``; a local one when ``None``), at most ``max_parallel``
    jobs at once (default: one per GPU, or one per CPU without GPUs). ``runner`` and ``loader`` replace
    ``run_job`` and ``load_pipeline`` (local mode only; for tests of the scheduling). Returns one
    :class:`Outcome` per job, in manifest order.
    """
    out = Path(out)
    check_out(manifest, out)
    (out / LEDGER).mkdir(parents=True, exist_ok=True)
    with _lock(out):
        return _run_batch(manifest, out, ray, address, max_parallel, stream, runner, loader)


@contextlib.contextmanager
def _lock(out: Path):
    """Hold ``OUT/.batch/lock`` so that two batches never write into one OUT at the same time."""
    with open(out / LEDGER / "lock", "w") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise InputError("another batch is running into this folder", field="out", value=out) from None
        yield


def prepared_job(name: str, options: dict, out: Path) -> Path:
    """``OUT/.batch/jobs/NAME``, prepared from ``options`` unless already prepared from the same options
    and unchanged input files (recorded in ``OUT/.batch/jobs/NAME.json``)."""
    from .manifest import prepare_inputs
    from .tasks import prepare

    folder = out / LEDGER / "jobs" / name
    stamp = {
        "options": options,
        "inputs": {
            k: [Path(v).stat().st_size, Path(v).stat().st_mtime_ns]
            for k, v in prepare_inputs(options).items()
        },
    }
    record = folder.with_name(f"{name}.json")
    if (folder / "job.json").is_file() and _read_json(record) == json.loads(json.dumps(stamp)):
        return folder
    record.unlink(missing_ok=True)
    remove_own_folder(folder)
    remove_parts(folder.parent, name)
    options = dict(options)
    prepare(options.pop("task"), out=folder, **options)
    media.write_text(record, json.dumps(stamp, indent=2))
    return folder


def _run_batch(manifest, out, ray, address, max_parallel, stream, runner, loader) -> list[Outcome]:
    progress = Progress(len(manifest.jobs), stream)
    outcomes: dict[str, Outcome] = {}
    tasks = []
    for entry in manifest.jobs:
        job = entry.job
        if entry.prepare is not None:
            started = time.perf_counter()
            try:
                job = prepared_job(entry.name, entry.prepare, out)
            except Exception as exc:  # a bad input only building the job reveals: this job fails alone
                seconds = round(time.perf_counter() - started, 3)
                _log_failure(out, entry.name, exc)
                outcomes[entry.name] = Outcome(entry.name, "failed", f"prepare: {one_line(exc)}", seconds)
                progress.finished(outcomes[entry.name])
                continue
        tasks.append(Task(entry.name, job, entry.settings, out))
    records = {t.name: _record(t) for t in tasks}
    pending = []
    for task in tasks:
        remove_parts(task.out, task.name)
        if is_finished(task, records[task.name]):
            outcomes[task.name] = Outcome(task.name, "skipped")
        else:
            try:  # redone from scratch: its old results go, unless they hold what vacelab did not write
                remove_own_folder(task.out / task.name)
            except InputError as exc:
                outcomes[task.name] = Outcome(task.name, "failed", one_line(exc))
            else:
                pending.append(task)
                continue
        progress.finished(outcomes[task.name])
    if pending and ray:
        if runner is not None or loader is not None:
            raise ValueError("runner and loader can only be replaced in local mode")
        done = _run_ray(pending, records, progress, address, max_parallel)
    elif pending:
        gpus = visible_gpus() if any(t.settings.parallel > 1 for t in pending) else 0
        done = _run_local(pending, records, progress, runner, loader, gpus)
    else:
        done = []
    outcomes.update((o.name, o) for o in done)
    ordered = [outcomes[e.name] for e in manifest.jobs]
    media.write_text(out / "batch.json", json.dumps({"jobs": [asdict(o) for o in ordered]}, indent=2))
    return ordered
