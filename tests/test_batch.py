"""`vacelab batch`: manifest checks, resume, failure isolation, local vs Ray.

The end-to-end tests run the real ``run_job`` on the tiny offline pipeline. A few tests of pure
scheduling (model loaded once per key, what is cleared before a rerun) inject a fake runner/loader so
that they need no model; they are marked as such.
"""

from __future__ import annotations

import io
import json
import os
import signal
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from vacelab import media
from vacelab.batch import job_fingerprint, run_batch, summary_table
from vacelab.cli import main
from vacelab.errors import InputError
from vacelab.folders import write_folder
from vacelab.generation.settings import RunSettings
from vacelab.job import Job, load_job, save_job
from vacelab.manifest import check_settings, load_manifest
from vacelab.result import load_result

FRAMES, SIZE = 17, 64


def make_job(folder: Path, seed: int) -> Path:
    rng = np.random.default_rng(seed)
    video = rng.integers(0, 256, (FRAMES, SIZE, SIZE, 3), dtype=np.uint8)
    mask = np.zeros((FRAMES, SIZE, SIZE), bool)
    mask[:, 16:48, 16 + seed % 8 : 40 + seed % 8] = True
    video[mask] = 127
    return save_job(Job(task="inpaint", video=video, mask=mask, fps=16.0), folder, preview=False)


@pytest.fixture(scope="module")
def jobs_dir(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("batch-jobs")
    for i in range(4):
        make_job(root / "jobs" / f"clip{i}", seed=i)
    return root


def write_manifest(root: Path, text: str, name: str = "batch.toml") -> Path:
    path = root / name
    path.write_text(textwrap.dedent(text), encoding="utf-8")
    return path


def four_jobs(root: Path, model, *, extra: str = "", broken: bool = False) -> Path:
    jobs = "".join(
        f'[[jobs]]\nname = "{n}"\njob = "jobs/clip{i}"\nseed = {i}\n'
        + ('conditioning_scale = "x"\n' if broken and i == 2 else "")
        for i, n in enumerate(["first", "second", "third", "fourth"])
    )
    return write_manifest(
        root, f'[defaults]\nmodel = "{model}"\nsteps = 2\nprompt = "a red car"\n{extra}\n{jobs}', "four.toml"
    )


# --------------------------------------------------------------------------------------- manifest checks
def bad(root: Path, body: str, capsys) -> str:
    """Run `vacelab batch` on a manifest; it must refuse with one error line, exit 2, nothing started."""
    path = write_manifest(root, body, "bad.toml")
    out = root / "bad-out"
    assert main(["batch", str(path), "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and err.count("\n") == 1, err
    assert not out.exists()
    return err


GOOD_JOB = '[[jobs]]\nname = "a"\njob = "jobs/clip0"\n'


def test_bad_manifests_are_refused_naming_the_key(jobs_dir, capsys):
    err = bad(jobs_dir, f"[defaults]\nstpes = 3\n{GOOD_JOB}", capsys)
    assert "[defaults]" in err and "'stpes'" in err and "did you mean 'steps'" in err
    err = bad(jobs_dir, f"{GOOD_JOB}seed = 1.5\n", capsys)
    assert "'a'" in err and "seed = 1.5" in err and "integer" in err
    err = bad(jobs_dir, f"{GOOD_JOB}composite = 1\n", capsys)
    assert "composite" in err and "true or false" in err
    err = bad(jobs_dir, f"[defaults]\nsteps = 0\n{GOOD_JOB}", capsys)
    assert "'a'" in err and "steps = 0: must be at least 1" in err and "--" not in err
    err = bad(jobs_dir, f"{GOOD_JOB}guidance = inf\n", capsys)
    assert "'a'" in err and "guidance = inf: must be a finite number" in err
    err = bad(jobs_dir, f"{GOOD_JOB}seed = -1\n", capsys)
    assert "seed = -1: must be in 0.." in err
    err = bad(jobs_dir, f'{GOOD_JOB}offload = "gpu"\n', capsys)
    assert "offload" in err and "sequential" in err
    err = bad(jobs_dir, f'{GOOD_JOB}[[jobs]]\nname = "b"\njob = "jobs/nope"\n', capsys)
    assert "'b'" in err and "job = 'jobs/nope'" in err
    err = bad(jobs_dir, '[[jobs]]\nname = "a.partial"\njob = "jobs/clip0"\n', capsys)
    assert "'a.partial'" in err
    err = bad(jobs_dir, f"{GOOD_JOB}{GOOD_JOB}", capsys)
    assert "duplicate" in err and "'a'" in err
    err = bad(jobs_dir, '[[jobs]]\nname = "../x"\njob = "jobs/clip0"\n', capsys)
    assert "name = '../x'" in err
    err = bad(jobs_dir, f"{GOOD_JOB}[extra]\nx = 1\n", capsys)
    assert "'extra'" in err
    err = bad(jobs_dir, '[[jobs]]\nname = "p"\nprepare = {task = "inpaint", video = "nope.mp4"}\n', capsys)
    assert "'p'" in err and "video = " in err and "nope.mp4" in err
    err = bad(jobs_dir, '[[jobs]]\nname = "p"\nprepare = {task = "inpaint", ratio = 1.5}\n', capsys)
    assert "'p'" in err and "ratio: does not apply to inpaint" in err
    err = bad(jobs_dir, '[[jobs]]\nname = "p"\njob = "jobs/clip0"\nprepare = {task = "inpaint"}\n', capsys)
    assert "either 'job'" in err
    err = bad(jobs_dir, "[defaults]\nsteps = 2\n", capsys)
    assert "[[jobs]]" in err
    err = bad(jobs_dir, "[[jobs]\n", capsys)
    assert "bad.toml" in err and "TOML" in err
    # a broken job after a good one: refused before the good one runs (the out folder is never made)
    err = bad(jobs_dir, f'{GOOD_JOB}[[jobs]]\nname = "z"\njob = "jobs/clip1"\nlora = [1]\n', capsys)
    assert "'z'" in err and "lora" in err
    # a LoRA file is read when the manifest is: a missing one stops the batch before any job starts
    err = bad(jobs_dir, f'{GOOD_JOB}lora = ["missing.safetensors:0.5"]\n', capsys)
    assert "'a'" in err and "lora = 'missing.safetensors:0.5': no such file" in err
    assert str(jobs_dir / "missing.safetensors") in err


def test_settings_are_merged_and_coerced(jobs_dir, tmp_path):
    from safetensors.torch import save_file

    lora = jobs_dir / "style.safetensors"  # beside the manifest: found from any working directory
    save_file({"blocks.0.attn1.to_q.lora_A.weight": torch.zeros(4, 24)}, str(lora))
    path = write_manifest(
        jobs_dir,
        f"""
        [defaults]
        steps = 3
        guidance = 4
        lora = "style.safetensors:0.8"
        {GOOD_JOB}
        guidance = 6.5
        [[jobs]]
        name = "b"
        job = "jobs/clip1"
        lora = []
        """,
        "merge.toml",
    )
    a, b = load_manifest(path).jobs
    assert a.settings == RunSettings(steps=3, guidance=6.5, lora=[f"{lora.resolve()}:0.8"])
    assert b.settings.guidance == 4.0 and isinstance(b.settings.guidance, float) and b.settings.lora == []
    assert a.job == (jobs_dir / "jobs" / "clip0").resolve()
    # a relative model folder is taken from beside the manifest; a hub id is left alone
    (tmp_path / "m").mkdir()
    assert check_settings({"model": "m"}, "x", base=tmp_path)["model"] == str(tmp_path / "m")
    assert check_settings({"model": "Wan-AI/x"}, "x", base=tmp_path)["model"] == "Wan-AI/x"
    with pytest.raises(InputError, match="plan.toml: run 3: unknown key 'step'"):
        check_settings({"step": 1}, "plan.toml: run 3")


def test_out_inside_a_job_folder_is_refused(jobs_dir, capsys):
    path = write_manifest(jobs_dir, GOOD_JOB, "one.toml")
    assert main(["batch", str(path), "--out", str(jobs_dir / "jobs" / "clip0" / "out")]) == 2
    assert "inside the job folder" in capsys.readouterr().err
    path = write_manifest(jobs_dir, '[[jobs]]\nname = "clip0"\njob = "jobs/clip0"\n', "one.toml")
    assert main(["batch", str(path), "--out", str(jobs_dir / "jobs")]) == 2
    assert "holds job = " in capsys.readouterr().err
    assert main(["batch", str(path), "--out", str(jobs_dir / "o"), "--max-parallel", "2"]) == 2
    assert "--max-parallel: only with --ray" in capsys.readouterr().err
    with pytest.raises(SystemExit, match="2"):
        main(["batch", str(path), "--out", str(jobs_dir / "o"), "--ray", "--max-parallel", "0"])
    assert "expected a whole number >= 1" in capsys.readouterr().err
    assert not (jobs_dir / "o").exists()


# ------------------------------------------------------------------------- scheduling (fake runner/loader)
def fake_runner(job, out, settings, *, pipeline, progress):
    """Stands in for run_job in scheduling tests only: writes run.json like run_job does (last)."""
    if settings.seed == 99:
        raise RuntimeError("boom\nsecond line")
    run = {"settings": settings.as_dict(), "pipeline": pipeline}
    write_folder(out, lambda folder: (folder / "run.json").write_text(json.dumps(run)))


def test_scheduling_loads_each_model_once_and_isolates_failures(jobs_dir, tmp_path):
    """Fake runner/loader: jobs sharing a model share one load; a failing job fails alone."""
    loads = []

    def loader(settings):
        loads.append(settings.model)
        return settings.model

    body = "".join(
        f'[[jobs]]\nname = "j{i}"\njob = "jobs/clip{i % 4}"\nmodel = "{m}"\nseed = {s}\n'
        for i, (m, s) in enumerate([("A", 1), ("B", 1), ("A", 99), ("A", 3), ("B", 4)])
    )
    manifest = load_manifest(write_manifest(jobs_dir, body, "sched.toml"))
    outcomes = run_batch(manifest, tmp_path / "out", runner=fake_runner, loader=loader)
    assert loads == ["A", "B"]
    assert [(o.name, o.status) for o in outcomes] == [
        ("j0", "done"),
        ("j1", "done"),
        ("j2", "failed"),
        ("j3", "done"),
        ("j4", "done"),
    ]
    assert outcomes[2].error == "RuntimeError: boom"
    assert "second line" in (tmp_path / "out" / ".batch" / "j2.log").read_text()
    assert json.loads((tmp_path / "out" / "j4" / "run.json").read_text())["pipeline"] == "B"
    table = summary_table(outcomes)
    assert "j2   failed" in table and "RuntimeError: boom" in table


def test_pipeline_cache_remembers_a_failed_load():
    from vacelab.generation.cache import PipelineCache

    calls = []

    def loader(settings):
        calls.append(1)
        raise OSError("no weights")

    cache = PipelineCache(loader)
    for _ in range(2):
        with pytest.raises(OSError, match="no weights"):
            cache.get(RunSettings(model="x"))
    assert len(calls) == 1


def test_rerun_skips_finished_and_redoes_changed_or_half_done(jobs_dir, tmp_path):
    """Fake runner: what is skipped, what is cleared before a redo."""
    body = "".join(f'[[jobs]]\nname = "j{i}"\njob = "jobs/clip{i}"\nseed = {i}\n' for i in range(3))
    path = write_manifest(jobs_dir, body, "resume.toml")
    out = tmp_path / "out"
    run_batch(load_manifest(path), out, runner=fake_runner, loader=lambda s: None)
    (out / "j1" / "run.json").unlink()  # not finished: a folder without run.json
    left = Path(tempfile.mkdtemp(prefix=".j2.", suffix=".part", dir=out))  # left by a kill (write_folder's)
    before = (out / "j0" / "run.json").stat().st_mtime_ns
    outcomes = run_batch(load_manifest(path), out, runner=fake_runner, loader=lambda s: None)
    assert [o.status for o in outcomes] == ["skipped", "done", "skipped"]
    assert (out / "j0" / "run.json").stat().st_mtime_ns == before
    assert (out / "j1" / "run.json").is_file() and not left.exists()
    # changed settings -> redone
    path.write_text(body.replace("seed = 2", "seed = 5"))
    outcomes = run_batch(load_manifest(path), out, runner=fake_runner, loader=lambda s: None)
    assert [o.status for o in outcomes] == ["skipped", "skipped", "done"]
    assert json.loads((out / "batch.json").read_text()) == {
        "jobs": [{"name": o.name, "status": o.status, "error": None, "seconds": o.seconds} for o in outcomes]
    }


def test_job_fingerprint_follows_content(tmp_path):
    a = make_job(tmp_path / "a", seed=1)
    b = make_job(tmp_path / "b", seed=1)
    c = make_job(tmp_path / "c", seed=2)
    assert job_fingerprint(a) == job_fingerprint(b) != job_fingerprint(c)


# ---------------------------------------------------------------------- end to end (tiny offline model)
def break_job(folder: Path) -> Path:
    """A job folder that passes the manifest check but cannot be read: its video array is cut short."""
    make_job(folder, seed=9)
    array = folder / "arrays" / "video.npy"
    array.write_bytes(array.read_bytes()[:1000])
    return folder


@pytest.fixture(scope="module")
def manifest_path(jobs_dir, tiny_model_dir) -> Path:
    break_job(jobs_dir / "jobs" / "broken")
    path = four_jobs(jobs_dir, tiny_model_dir)
    path.write_text(path.read_text() + '[[jobs]]\nname = "broken"\njob = "jobs/broken"\n')
    return path


@pytest.fixture(scope="module")
def local_out(manifest_path, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("local") / "out"
    assert main(["batch", str(manifest_path), "--out", str(out)]) == 1  # 1: a job failed
    return out


NAMES = ["first", "second", "third", "fourth"]


def test_local_batch_runs_every_job_and_isolates_the_broken_one(local_out, capsys):
    report = json.loads((local_out / "batch.json").read_text())["jobs"]
    assert [(j["name"], j["status"]) for j in report] == [(n, "done") for n in NAMES] + [("broken", "failed")]
    assert "jobs/broken" in report[4]["error"] and "damaged" in report[4]["error"]
    assert "\n" not in report[4]["error"]
    assert all(j["error"] is None and j["seconds"] > 0 for j in report[:4])
    videos = [load_result(local_out / n).video for n in NAMES]
    assert all(v.shape == (FRAMES, SIZE, SIZE, 3) for v in videos)
    assert not np.array_equal(videos[0], videos[1])  # different jobs and seeds: different outputs
    assert load_result(local_out / "second").run["settings"]["seed"] == 1
    assert not (local_out / "broken").exists()


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_ray_batch_gives_the_same_outputs(manifest_path, local_out, tmp_path):
    ray = pytest.importorskip("ray")
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    terminal = Terminal()
    try:
        outcomes = run_batch(load_manifest(manifest_path), tmp_path / "out", ray=True, stream=terminal)
    finally:
        ray.shutdown()
    shown = terminal.getvalue()
    assert "first: denoise 2/2" in shown and "[4 done, 1 failed, 0 skipped, 0 left]" in shown
    assert [(o.name, o.status) for o in outcomes] == [(n, "done") for n in NAMES] + [("broken", "failed")]
    local = json.loads((local_out / "batch.json").read_text())["jobs"]
    assert outcomes[4].error == local[4]["error"]
    for name in NAMES:
        assert np.array_equal(load_result(tmp_path / "out" / name).video, load_result(local_out / name).video)


def no_partial_files(out: Path) -> list[str]:
    """Paths under ``out`` left by an unfinished write (temporary ``*.part*`` names, hidden siblings)."""
    hidden = [p for p in out.glob(".*") if p.name != ".batch"]
    return sorted(str(p) for p in [*hidden, *out.rglob("*.part*")])


def test_killed_batch_resumes_without_redoing_finished_jobs(manifest_path, local_out, tmp_path):
    out = tmp_path / "out"
    command = [sys.executable, "-m", "vacelab", "batch", str(manifest_path), "--out", str(out)]
    proc = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    first = out / "first" / "run.json"
    deadline = time.monotonic() + 120
    while not first.exists() and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.01)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert first.exists()
    # a kill at any instant: every result folder under its final name is complete
    assert all((p / "run.json").is_file() for p in out.iterdir() if p.is_dir() and not p.name.startswith("."))
    finished = {n for n in NAMES if (out / n / "run.json").exists()}
    assert finished != set(NAMES), "killed too late to test a resume"
    runs = {n: out / n / "run.json" for n in finished}
    before = {n: (path.stat().st_mtime_ns, path.read_bytes()) for n, path in runs.items()}

    assert main(command[3:]) == 1  # started again (in this process, to save a start-up); broken still fails
    report = {j["name"]: j["status"] for j in json.loads((out / "batch.json").read_text())["jobs"]}
    assert report == {**{n: "skipped" if n in finished else "done" for n in NAMES}, "broken": "failed"}
    for name, (mtime, content) in before.items():
        assert runs[name].stat().st_mtime_ns == mtime and runs[name].read_bytes() == content
    for name in NAMES:
        assert np.array_equal(load_result(out / name).video, load_result(local_out / name).video)
    assert no_partial_files(out) == []


def test_prepare_entries_are_built_once_and_fail_alone(jobs_dir, tiny_model_dir, tmp_path):
    video = np.random.default_rng(5).integers(0, 256, (FRAMES + 3, SIZE, SIZE, 3), dtype=np.uint8)
    media.write_mp4(jobs_dir / "clip.mp4", video, 16.0)
    common = 'task = "inpaint", video = "clip.mp4", size = "64x64", frames = 17'
    path = write_manifest(
        jobs_dir,
        f"""
        [defaults]
        model = "{tiny_model_dir}"
        steps = 2
        prompt = "a red car"
        [[jobs]]
        name = "boxed"
        prepare = {{{common}, bbox = "16,16,48,48"}}
        [[jobs]]
        name = "offframe"
        prepare = {{{common}, bbox = "16,16,480,48"}}
        """,
        "prepare.toml",
    )
    out = tmp_path / "out"
    outcomes = run_batch(load_manifest(path), out)
    assert [(o.name, o.status) for o in outcomes] == [("boxed", "done"), ("offframe", "failed")]
    assert outcomes[1].error.startswith("prepare: bbox = 16,16,480,48")
    log = (out / ".batch" / "offframe.log").read_text()  # the whole traceback, as for a failed run
    assert log.startswith("Traceback") and "InputError: bbox 16,16,480,48" in log
    job = load_job(out / ".batch" / "jobs" / "boxed")
    assert job.mask[:, 16:48, 16:48].all() and job.mask.mean() == 0.25
    assert load_result(out / "boxed").job_path == job.path.resolve()
    stamp = (job.path / "job.json").stat().st_mtime_ns
    outcomes = run_batch(load_manifest(path), out)
    assert [o.status for o in outcomes] == ["skipped", "failed"]
    assert (job.path / "job.json").stat().st_mtime_ns == stamp  # not prepared again


def test_a_job_clears_only_its_own_leftovers(tmp_path):
    """Job ``a`` starting (on one Ray worker) must not remove what job ``a.b`` is writing (on another)."""
    from vacelab.batch import Task, _start

    def temp(name: str) -> Path:  # what job.write_folder makes for a results folder NAME
        return Path(tempfile.mkdtemp(prefix=f".{name}.", suffix=".part", dir=tmp_path))

    own, other = temp("a"), temp("a.b")
    (tmp_path / "a.partial").mkdir()  # a long job's finished windows: kept to resume
    _start(Task("a", tmp_path / "job", RunSettings(), tmp_path), {"job": "x"})
    assert not own.exists() and other.is_dir() and (tmp_path / "a.partial").is_dir()
