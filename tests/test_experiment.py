"""`vacelab experiment`: plan checks, grid expansion, inputs, the shipped plan end to end (tiny model)."""

from __future__ import annotations

import json
import math
import re
from pathlib import Path

import numpy as np
import pytest

from vacelab import media
from vacelab.cli import main
from vacelab.errors import InputError
from vacelab.experiment import expand, load_plan, run_plan

TINY = {"steps": 2, "size": "112x64", "frames": 9}


def assert_self_contained(html: str) -> None:
    assert "http://" not in html and "https://" not in html
    sources = re.findall(r'src="([^"]*)"', html)
    assert sources and all(s.startswith("data:image/") for s in sources)


def write_plan(folder: Path, text: str) -> Path:
    path = folder / "plan.toml"
    path.write_text(text, encoding="utf-8")
    return path


def test_shipped_plan_end_to_end(tmp_path, tiny_model_dir, capsys):
    out = tmp_path / "fr"
    args = ["experiment", "field_report", "--out", str(out), "--model", str(tiny_model_dir)]
    args += ["--steps", "2", "--size", "112x64", "--frames", "9"]
    assert main(args) == 0
    record = json.loads((out / "experiment.json").read_text())
    runs = {r["name"]: r for r in record["runs"]}
    # the model axes (1.3b vs 14b vs 2.2-a14b) collapse onto the model given; keyframes: 3 strategies x
    # 2 encodings; extension: one run
    assert len(runs) == 10
    assert all(r["status"] == "done" for r in runs.values()), [r["error"] for r in runs.values()]
    crossed = {
        (r["axes"]["strategy"], r["axes"]["mask_encoding"]) for r in runs.values() if "strategy" in r["axes"]
    }
    assert crossed == {(s, e) for s in ("naive", "aligned", "anchor") for e in ("reference", "aligned")}
    for run in runs.values():
        settings = run["settings"]
        assert settings["model"] == str(tiny_model_dir) and settings["steps"] == 2
        assert settings["composite"] is False  # the plan measures the model's own frames
        metrics = run["metrics"]
        assert all(math.isfinite(metrics[k]) for k in ("keep_psnr", "keep_ssim", "flicker"))
        assert 0 < metrics["keep_ssim"] < 1
        assert ("key_psnr" in metrics) == run["variant"].startswith("keyframes")
        assert run["seconds"]["total"] > 0 and run["peak_memory"]["cpu_rss_bytes"] > 0
        assert (out / "runs" / run["name"] / "run.json").is_file()
    # no negative prompt set: the run uses Wan's default + the job's suggested "gun, weapon"
    assert runs["remove-object"]["settings"]["negative_prompt"] is None
    job = json.loads((out / "jobs" / "remove-object" / "job.json").read_text())
    assert job["params"]["video"] == "sample:" and job["params"]["mask"] == "sample:object"
    assert job["geometry"]["frames"] == 9 and job["geometry"]["width"] == 112
    html = (out / "report.html").read_text()
    assert_self_contained(html)
    for name in runs:
        assert name in html
    assert html.count("source | given | output</figcaption>") == 10

    # the same plan into the same folder resumes: nothing is redone, the report is rebuilt
    plan = load_plan("field_report", model=str(tiny_model_dir), **TINY)
    again = run_plan(plan, out)
    batch = json.loads((out / "runs" / "batch.json").read_text())
    assert {j["status"] for j in batch["jobs"]} == {"skipped"}
    assert [r["metrics"] for r in again["runs"]] == [r["metrics"] for r in record["runs"]]


def test_grid_crosses_axes_and_overrides_collapse_them(tmp_path):
    plan = write_plan(
        tmp_path,
        """
[run]
prompt = "x"
[grid]
seed = [1, 2]
[[jobs]]
name = "keys"
task = "keyframes"
video = "sample:"
every = 8
[jobs.grid]
strategy = ["naive", "anchor"]
model = ["1.3b", "14b"]
""",
    )
    variants, runs = expand(load_plan(plan))
    assert [v.name for v in variants] == ["keys-naive", "keys-anchor"]
    assert len(runs) == 8 and len({r.name for r in runs}) == 8
    assert {(r.settings.seed, r.settings.model) for r in runs} == {
        (s, m) for s in (1, 2) for m in ("1.3b", "14b")
    }
    variants, runs = expand(load_plan(plan, model="my-model", steps=3, frames=9))
    assert len(runs) == 4 and {r.settings.model for r in runs} == {"my-model"}
    assert {r.settings.steps for r in runs} == {3}
    assert all(v.options["frames"] == 9 for v in variants)
    assert all("model" not in r.axes for r in runs)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('[run]\nstep = 3\n[[jobs]]\nname="a"\ntask="inpaint"', "unknown key 'step' (did you mean 'steps'?)"),
        ('[[jobs]]\nname="a"\ntask="paint"', "task = 'paint'"),
        ('[[jobs]]\nname="a"\ntask="inpaint"\ncolour=1', "unknown key 'colour'"),
        ('[[jobs]]\nname="a"\ntask="inpaint"\n[jobs.grid]\nseed=3', "a grid axis is a non-empty list"),
        ('[[jobs]]\nname="a"\ntask="inpaint"\n[jobs.grid]\nsteps=["x"]', "steps = 'x': expected an integer"),
        ('[[jobs]]\nname="a"\ntask="inpaint"\n[jobs.grid]\nfoo=[1]', "unknown key 'foo'"),
        (
            '[[jobs]]\nname="a"\ntask="inpaint"\n[jobs.run]\nsteps=0',
            "[[jobs]] 'a': steps = 0: must be at least 1",
        ),
        ('[[jobs]]\nname="a"\ntask="inpaint"\n[[jobs]]\nname="A"\ntask="inpaint"', "duplicate name"),
        ("title = 3\n[oops]\n", "unknown key 'oops'"),
        ("title = [", "not valid TOML"),
    ],
)
def test_bad_plans_are_refused_with_one_line(tmp_path, capsys, text, message):
    plan = write_plan(tmp_path, text)
    with pytest.raises(InputError) as info:
        load_plan(plan)
    assert message in str(info.value) and str(plan) in str(info.value)
    assert main(["experiment", str(plan), "--out", str(tmp_path / "out"), "--no-run"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error:")
    assert not (tmp_path / "out").exists()


def test_bad_prepare_option_is_refused_before_anything_runs(tmp_path):
    plan = write_plan(tmp_path, '[[jobs]]\nname="k"\ntask="keyframes"\nvideo="sample:"\nevery=8\nwhat="gun"')
    with pytest.raises(InputError, match=r"\[\[jobs\]\] 'k': what: does not apply to keyframes"):
        run_plan(load_plan(plan, size="112x64", frames=9), tmp_path / "out", generate=False)
    assert not (tmp_path / "out").exists()  # no half-prepared jobs, no empty folder left behind
    bad = write_plan(tmp_path, '[[jobs]]\nname="k"\ntask="inpaint"\nvideo="sample:"\nmask="sample:cat"')
    with pytest.raises(InputError, match="unknown sample input"):
        run_plan(load_plan(bad, size="112x64", frames=9), tmp_path / "out2", generate=False)


def test_inputs_are_relative_to_the_plan(tmp_path, monkeypatch):
    folder = tmp_path / "study"
    (folder / "clips").mkdir(parents=True)
    frames = np.zeros((9, 64, 112, 3), np.uint8)
    frames[:, :, :, 1] = np.linspace(0, 255, 112, dtype=np.uint8)
    media.write_mp4(folder / "clips" / "shot.mp4", frames, 16)
    media.write_png(folder / "clips" / "mood.png", frames[0])
    plan = write_plan(
        folder,
        """
title = "mine"
[prepare]
size = "112x64"
frames = 9
[[jobs]]
name = "wide"
task = "outpaint"
video = "clips/shot.mp4"
ref = ["clips/mood.png"]
expand = "16,0,16,0"
""",
    )
    monkeypatch.chdir(tmp_path)  # not the plan's folder
    record = run_plan(load_plan(plan), tmp_path / "out", generate=False)
    job = json.loads((tmp_path / "out" / "jobs" / "wide" / "job.json").read_text())
    assert job["params"]["video"] == "clips/shot.mp4" and job["params"]["ref"] == ["clips/mood.png"]
    assert len(job["refs"]) == 1
    assert [r["status"] for r in record["runs"]] == ["not run"]
    assert not (tmp_path / "out" / "runs").exists()
    html = (tmp_path / "out" / "report.html").read_text()
    assert_self_contained(html)
    assert "All runs" not in html and "what the model sees" in html


def test_out_holding_something_else_is_refused(tmp_path):
    plan = write_plan(tmp_path, '[[jobs]]\nname="f"\ntask="firstframe"\nvideo="sample:"')
    out = tmp_path / "out"
    out.mkdir()
    (out / "keep.txt").write_text("mine")
    with pytest.raises(InputError, match="not empty"):
        run_plan(load_plan(plan, size="112x64", frames=9), out, generate=False)
    assert [p.name for p in out.iterdir()] == ["keep.txt"]


def test_a_failed_run_is_reported_and_the_exit_code_is_1(tmp_path, capsys):
    plan = write_plan(
        tmp_path,
        '[run]\nprompt = "x"\n[[jobs]]\nname="f"\ntask="firstframe"\nvideo="sample:"\n'
        "[jobs.grid]\nseed = [1, 2]",
    )
    args = ["experiment", str(plan), "--out", str(tmp_path / "out"), "--size", "112x64", "--frames", "9"]
    assert main([*args, "--model", str(tmp_path / "missing-model")]) == 1
    record = json.loads((tmp_path / "out" / "experiment.json").read_text())
    assert [r["status"] for r in record["runs"]] == ["failed", "failed"]
    assert all("folder not found" in r["error"] for r in record["runs"])
    html = (tmp_path / "out" / "report.html").read_text()
    assert "folder not found" in html and "All runs" in html


def test_shipped_speed_plan_measures_each_mode_against_the_exact_run(tmp_path, tiny_model_dir, capsys):
    out = tmp_path / "speed"
    args = ["experiment", "speed", "--out", str(out), "--model", str(tiny_model_dir)]
    args += ["--steps", "3", "--size", "112x64", "--frames", "5"]
    assert main(args) == 1  # fp8 cannot run on a CPU: that run fails in one line, the others go on
    runs = {r["axes"]["mode"]: r for r in json.loads((out / "experiment.json").read_text())["runs"]}
    assert list(runs) == ["exact", "fast", "cache-0.1", "cache-0.2", "fp8"]
    assert runs["fp8"]["status"] == "failed" and "fp8: FP8 needs a CUDA GPU" in runs["fp8"]["error"]
    exact = runs["exact"]
    assert exact["metrics"]["keep_exact"] is True and "gen_psnr_vs_ref" not in exact["metrics"]
    assert exact["seconds"]["per_step"] == pytest.approx(exact["seconds"]["generate"] / 3)
    for mode in ("fast", "cache-0.1", "cache-0.2"):
        metrics = runs[mode]["metrics"]
        assert metrics["keep_exact"] is True  # composite on: KEEP is the source whatever the mode
        assert metrics["gen_psnr_vs_ref"] == "inf" or metrics["gen_psnr_vs_ref"] > 0
        assert 0 < metrics["gen_ssim_vs_ref"] <= 1 and metrics["speedup_vs_ref"] > 0
    html = (out / "report.html").read_text()
    assert "GENERATE PSNR vs ref dB" in html and "s/step" in html
