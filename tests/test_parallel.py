"""One job over several ranks (``--parallel N``, context parallel) on the CPU with gloo: the frames of one
process, refusals before any rank starts, a failing or interrupted run leaves no process and no results.

Each parallel run spawns its ranks (seconds each to import torch and load the tiny model), so the runs
are few and marked ``slow``: a one-expert job through the CLI, a two-expert long job of two windows
through ``run_job``, a local and a Ray batch, and two runs that fail on purpose.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import numpy as np
import pytest
from helpers import make_job

from vacelab import RunSettings, load_result, save_job
from vacelab.batch import run_batch
from vacelab.cli import main
from vacelab.generation.parallel import FAIL_RANK_ENV
from vacelab.generation.run import run_job
from vacelab.geometry import plan_windows
from vacelab.job import Job
from vacelab.manifest import load_manifest
from vacelab.testing.tiny import save_tiny_pipeline

STEPS = 2
PROMPT = "a red car"


@pytest.fixture(scope="module")
def job_dir(tmp_path_factory) -> Path:
    return save_job(make_job(frames=5), tmp_path_factory.mktemp("jobs") / "job", preview=False)


def plain_settings(model) -> RunSettings:
    """What ``cli`` runs, as settings (CLI defaults = RunSettings defaults)."""
    return RunSettings(prompt=PROMPT, steps=STEPS, model=str(model), device="cpu")


@pytest.fixture(scope="module")
def reference(tiny_model_dir, job_dir, tmp_path_factory) -> np.ndarray:
    """The job's frames from one process."""
    return run_job(job_dir, tmp_path_factory.mktemp("one") / "out", plain_settings(tiny_model_dir)).video


def cli(capsys, model, job, out, *extra) -> tuple[int, str]:
    args = ["run", job, "--model", model, "--prompt", PROMPT, "--steps", STEPS, "--device", "cpu"]
    code = main([*map(str, args), "--out", str(out), *map(str, extra)])
    return code, capsys.readouterr().err


def close(a: np.ndarray, b: np.ndarray) -> bool:
    """Equal within one level of 255 (Ulysses computes each head's whole attention on one rank)."""
    return a.shape == b.shape and int(np.abs(a.astype(int) - b.astype(int)).max()) <= 1


def rank_processes(mark: str) -> list[int]:
    """The pids of the processes whose environment carries ``mark`` (a run and everything it started)."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if mark.encode() in (entry / "environ").read_bytes():
                    found.append(int(entry.name))
            except OSError:
                continue
    return found


def own_ranks() -> list:
    """Rank processes this test process started and left behind (a ``multiprocessing`` spawn child)."""
    psutil = pytest.importorskip("psutil")
    return [p for p in psutil.Process().children(recursive=True) if "spawn_main" in " ".join(p.cmdline())]


# ---------------------------------------------------------------------------------------- the same frames
@pytest.mark.slow
def test_two_ranks_give_the_frames_of_one(tiny_model_dir, job_dir, reference, tmp_path, capsys):
    code, err = cli(capsys, tiny_model_dir, job_dir, tmp_path / "two", "--parallel", 2)
    assert code == 0, err
    two = load_result(tmp_path / "two")
    assert close(reference, two.video)
    used = two.run["used"]["parallel"]
    assert used["ranks"] == 2 and used["mode"] == "ulysses" and used["backend"] == "gloo"
    assert len(used["peak_memory"]) == 2 and all(m["cpu_peak_rss_bytes"] > 0 for m in used["peak_memory"])
    assert two.run["settings"]["parallel"] == 2
    assert not own_ranks()


@pytest.mark.slow
def test_a_two_expert_long_job_splits_every_window(tmp_path):
    model = save_tiny_pipeline(tmp_path / "two-experts", experts=2)
    job = make_job(frames=13)
    job.windows = plan_windows(13, 9, 5)
    assert len(job.windows) == 2
    settings = RunSettings(prompt=PROMPT, steps=STEPS, model=str(model), device="cpu")
    one = run_job(job, tmp_path / "one", settings)
    assert one.run["used"]["experts"]["steps"] == {"transformer": [0], "transformer_2": [1]}
    two = run_job(job, tmp_path / "two", RunSettings(**{**settings.as_dict(), "parallel": 2}))
    assert close(one.video, two.video)
    assert len(two.run["windows"]) == 2 and two.run["used"]["parallel"]["ranks"] == 2
    assert two.run["used"]["experts"]["steps"] == one.run["used"]["experts"]["steps"]  # both experts ran
    assert not (tmp_path / "two.partial").exists()


def split_manifest(model, job_dir, folder: Path) -> Path:
    body = f'[defaults]\nmodel = "{model}"\nsteps = {STEPS}\ndevice = "cpu"\nprompt = "{PROMPT}"\n'
    body += f'[[jobs]]\nname = "split"\njob = "{job_dir}"\nparallel = 2\n'
    (folder / "batch.toml").write_text(body)
    return folder / "batch.toml"


@pytest.mark.slow
@pytest.mark.parametrize("ray", [False, True], ids=["local", "ray"])
def test_a_batch_with_parallel_2_gives_the_same_outputs(tiny_model_dir, job_dir, reference, tmp_path, ray):
    manifest = load_manifest(split_manifest(tiny_model_dir, job_dir, tmp_path))
    if ray:
        ray_module = pytest.importorskip("ray")
        ray_module.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
        try:
            outcomes = run_batch(manifest, tmp_path / "out", ray=True)
        finally:
            ray_module.shutdown()
    else:
        outcomes = run_batch(manifest, tmp_path / "out")
    assert [(o.name, o.status) for o in outcomes] == [("split", "done")], outcomes
    split = load_result(tmp_path / "out" / "split")
    assert close(reference, split.video) and split.run["used"]["parallel"]["ranks"] == 2


def test_local_batch_runs_parallel_jobs_side_by_side_on_disjoint_gpus(tmp_path, monkeypatch):
    """Scheduling only (a runner that records its GPUs): 4 GPUs, jobs of parallel = 2 run two at a time."""
    import threading

    from vacelab import batch

    monkeypatch.setattr(batch, "visible_gpus", lambda: 4)
    running, seen, lock = [], [], threading.Lock()

    def runner(job, out, settings, *, pipeline, progress, gpus=None):
        with lock:
            running.append(gpus)
            seen.append([list(g) for g in running])
        time.sleep(0.3)
        with lock:
            running.remove(gpus)

    jobs = tmp_path / "j"
    save_job(make_job(frames=5), jobs, preview=False)
    body = "".join(f'[[jobs]]\nname = "j{i}"\njob = "{jobs}"\nparallel = 2\nseed = {i}\n' for i in range(4))
    (tmp_path / "m.toml").write_text(body)
    outcomes = run_batch(load_manifest(tmp_path / "m.toml"), tmp_path / "out", runner=runner)
    assert all(o.status == "done" for o in outcomes)
    assert max(len(s) for s in seen) == 2  # two jobs at once, never more
    for sets in seen:
        used = [gpu for s in sets for gpu in s]
        assert len(used) == len(set(used)) and set(used) <= {0, 1, 2, 3}  # disjoint GPU sets


def test_ranks_other_than_0_read_saved_windows_and_never_write_them(tmp_path):
    """A resumed parallel run: every rank reuses the same saved windows; only rank 0 saves or drops."""
    from vacelab.generation.windows import ReadOnlyStore, WindowStore
    from vacelab.geometry import WindowPlan

    window = WindowPlan.of(plan_windows(13, 9, 5), 13).window(0)
    frames = np.full((9, 4, 4, 3), 7, np.uint8)
    WindowStore(tmp_path / "out", "key").save(window, frames, {"index": 0})
    reader = ReadOnlyStore(tmp_path / "out", "key")
    saved, record = reader.load(window, (4, 4))
    assert np.array_equal(saved, frames) and record == {"index": 0}
    reader.save(window, frames + 1, {"index": 0})
    assert reader.drop_from(0) == 0 and np.array_equal(reader.load(window, (4, 4))[0], frames)


# ---------------------------------------------------------------------------------------------- refusals
@pytest.mark.parametrize(
    "extra, message",
    [
        (["--parallel", 0], "--parallel 0: must be at least 1"),
        (["--parallel", 3], "ring attention needs a backend that returns the log-sum-exp"),  # 2 heads
        (["--parallel", 2, "--parallel-mode", "ring"], "none runs on the CPU"),
        (["--parallel", 2, "--offload", "sequential"], "--offload sequential: moves weights block by block"),
        (["--parallel", 2, "--compile"], "--compile True: not tried with context parallelism"),
        (["--parallel", 2, "--cache", "0.1"], "--cache 0.1: the step cache decides per rank"),
    ],
)
def test_refusals_before_any_rank_starts(tiny_model_dir, job_dir, tmp_path, capsys, extra, message):
    code, err = cli(capsys, tiny_model_dir, job_dir, tmp_path / "out", *extra)
    assert code == 2 and err.count("error:") == 1 and message in err, err
    assert len(err.strip().splitlines()) == 1  # nothing else: no audit, no rank
    assert not (tmp_path / "out").exists() and not own_ranks()


def test_a_sequence_that_does_not_split_evenly_is_refused(tiny_model_dir, tmp_path, capsys):
    frames, size = 9, 48  # 3 latent steps x 3 x 3 tokens = 27
    video = np.full((frames, size, size, 3), 100, np.uint8)
    mask = np.zeros((frames, size, size), bool)
    mask[:, 16:32, 16:32] = True
    folder = save_job(Job("inpaint", video, mask, 16.0, original=video), tmp_path / "job", preview=False)
    code, err = cli(capsys, tiny_model_dir, folder, tmp_path / "out", "--parallel", 2)
    assert code == 2 and "--parallel 2: the job has 27 tokens, which do not split evenly over 2 ranks" in err


# ----------------------------------------------------------------------------- failures end every rank
def refuse_on_rank_1(report, steps: int) -> None:
    """A rank's work for ``launch``: rank 0 reports and logs, then waits for rank 1, which refuses."""
    import logging

    import torch.distributed as dist

    from vacelab.errors import InputError

    report("denoise", 1, steps)
    logging.getLogger("vacelab").warning("from rank %d", dist.get_rank())
    dist.barrier()
    if dist.get_rank() == 1:
        time.sleep(1)  # rank 0's messages are on their way before this failure
        raise InputError("must be at least 1", field="steps", value=steps)
    dist.barrier()  # never passed: rank 1 is gone


@pytest.mark.slow
def test_a_bad_input_on_a_rank_comes_back_as_that_input_error(caplog):
    from vacelab.errors import InputError
    from vacelab.generation.parallel import launch

    reports = []
    with caplog.at_level("INFO", logger="vacelab"), pytest.raises(InputError) as caught:
        launch(refuse_on_rank_1, (0,), ranks=2, device="cpu", progress=lambda *a: reports.append(a))
    assert caught.value.render("--steps") == "--steps 0: must be at least 1"  # exit 2 on the command line
    assert reports == [("denoise", 1, 0)] and caplog.messages == ["from rank 0"]  # rank 0's only
    assert not own_ranks()


def start_cli(tiny_model_dir, job_dir, out, mark: str, **env) -> subprocess.Popen:
    args = [sys.executable, "-m", "vacelab", "run", str(job_dir), "--model", str(tiny_model_dir)]
    args += ["--prompt", PROMPT, "--steps", "50", "--device", "cpu", "--parallel", "2", "--out", str(out)]
    environment = {**os.environ, "VACELAB_TEST_MARK": mark, **env}
    return subprocess.Popen(args, env=environment, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


@pytest.mark.slow
def test_a_failing_rank_ends_every_rank_with_one_error_line(tiny_model_dir, job_dir, tmp_path):
    mark = uuid.uuid4().hex
    run = start_cli(tiny_model_dir, job_dir, tmp_path / "out", mark, **{FAIL_RANK_ENV: "1"})
    _, err = run.communicate(timeout=300)
    lines = err.strip().splitlines()
    assert (
        run.returncode == 1
        and lines[-1] == f"error: rank 1: RuntimeError: failure injected into rank 1 ({FAIL_RANK_ENV})"
    )
    assert sum(line.startswith("error:") for line in lines) == 1 and "Traceback" not in err
    assert not (tmp_path / "out").exists() and not list(tmp_path.glob(".out*"))
    assert rank_processes(mark) == []  # rank 0 was waiting for rank 1 in a collective: ended too


def test_ctrl_c_ends_every_rank(tiny_model_dir, job_dir, tmp_path):
    mark = uuid.uuid4().hex
    run = start_cli(tiny_model_dir, job_dir, tmp_path / "out", mark)
    deadline = time.monotonic() + 240
    while len(rank_processes(mark)) < 3 and time.monotonic() < deadline:  # the command and its two ranks
        time.sleep(0.2)
    assert len(rank_processes(mark)) >= 3
    time.sleep(2)
    run.send_signal(signal.SIGINT)  # to the command only: it must end its ranks itself
    _, err = run.communicate(timeout=120)
    assert run.returncode == 130 and err.strip().splitlines()[-1] == "error: interrupted"
    assert not (tmp_path / "out").exists()
    deadline = time.monotonic() + 5
    while rank_processes(mark) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert rank_processes(mark) == []
