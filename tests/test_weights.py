"""Errors without weights (vacelab.weights): one line, exit code 2, before anything heavy loads.

Each command runs in a subprocess without network and without ``HF_HUB_OFFLINE`` (the hub is a local port
nobody listens on, the Hugging Face cache empty): what a new user without weights sees. The driver reports
which heavy libraries the command imported, so that "refused before torch" is checked, not timed.
"""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from helpers import cli_env, make_job

from vacelab import save_job
from vacelab.errors import InputError
from vacelab.generation.pipeline import torch_is_cpu_only
from vacelab.weights import MissingWeights, check_weights, missing

HUB_ID = "Wan-AI/Wan2.1-VACE-1.3B-diffusers"
HEAVY = ("torch", "diffusers", "transformers")
# runs `vacelab ARGS...` through its entry point, then prints the heavy libraries it imported on stdout
DRIVER = (
    "import sys\n"
    "from vacelab.cli import main\n"
    "code = main(sys.argv[1:])\n"
    f"print('imported:', *[m for m in {HEAVY!r} if m in sys.modules])\n"
    "sys.exit(code)\n"
)


def vacelab(args: list[str], tmp_path, **env) -> tuple[int, list[str], list[str]]:
    """``(exit code, stderr lines, heavy libraries imported)`` of ``vacelab ARGS`` without network."""
    proc = subprocess.run(
        [sys.executable, "-c", DRIVER, *map(str, args)],
        capture_output=True,
        text=True,
        env=cli_env(tmp_path, **env),
        timeout=300,
    )
    imported = next(line for line in proc.stdout.splitlines() if line.startswith("imported:")).split()[1:]
    return proc.returncode, proc.stderr.splitlines(), imported


@pytest.fixture(scope="module")
def job_dir(tmp_path_factory):
    return save_job(make_job(), tmp_path_factory.mktemp("jobs") / "job", preview=False)


def assert_no_weights_line(lines: list[str], model: str, option: str) -> None:
    assert len(lines) == 1, lines  # no diffusers/huggingface noise, no retries, no bar before it
    line = lines[0]
    assert line.startswith(f"error: {option} {model}: no weights"), line
    assert f"`hf download {model}`" in line and f"{option} FOLDER" in line, line
    assert "huggingface-cli" not in line and len(line) < 300, line


def test_run_without_network_is_one_line_before_torch(job_dir, tmp_path):
    args = ["run", job_dir, "--prompt", "x", "--model", HUB_ID, "--out", tmp_path / "res"]
    code, lines, imported = vacelab(args, tmp_path)
    assert code == 2
    assert_no_weights_line(lines, HUB_ID, "--model")
    assert "the hub does not answer" in lines[0] and str(tmp_path / "hf") in lines[0]
    assert imported == [] and not (tmp_path / "res").exists()


@pytest.mark.parametrize(
    "extra, message",
    [
        (["--model", "./no-such-model"], "error: --model ./no-such-model: folder not found"),
        (["--model", "/no/such/model"], "error: --model /no/such/model: folder not found"),
        (["--model", "~/no-such-model"], "error: --model ~/no-such-model: folder not found"),
        (["--lora", "missing.safetensors"], "error: --lora missing.safetensors: no such file"),
        (["--offload", "group", "--device", "cpu"], "error: --offload group: offloading moves weights"),
    ],
)
def test_cheap_refusals_come_before_torch(job_dir, tmp_path, extra, message):
    args = ["run", job_dir, "--prompt", "x", "--out", tmp_path / "res", *extra]
    code, lines, imported = vacelab(args, tmp_path)
    assert code == 2 and len(lines) == 1 and lines[0].startswith(message), lines
    assert imported == []  # refused in well under a second: torch (several seconds) never imported


@pytest.mark.skipif(not torch_is_cpu_only(), reason="this torch can use an accelerator")
def test_offload_on_a_cpu_only_torch_is_refused_before_torch(job_dir, tmp_path):
    code, lines, imported = vacelab(
        ["run", job_dir, "--prompt", "x", "--out", tmp_path / "res", "--offload", "group"], tmp_path
    )
    assert code == 2 and len(lines) == 1 and "(device cpu)" in lines[0], lines
    assert imported == []


def test_torch_is_cpu_only_agrees_with_torch():
    import torch

    assert torch_is_cpu_only() == (sys.platform != "darwin" and not (torch.version.cuda or torch.version.hip))


def test_tracking_without_network_is_one_line_before_torch(tmp_path):
    from vacelab.sample import sample_path

    model = "vacelab-tests/no-sam2"
    args = ["prepare", "remove", "--video", sample_path(), "--size", "112x64", "--frames", "9"]
    args += ["--track-box", "10,10,40,40@0", "--track-model", model, "--out", tmp_path / "job"]
    code, lines, imported = vacelab(args, tmp_path)
    assert code == 2
    assert_no_weights_line(lines, model, "--track-model")  # no "Retrying", no "tracking: 0%" bar
    assert "torch" not in imported and not (tmp_path / "job").exists()


@pytest.mark.parametrize(
    ("kind", "option", "model"),
    [
        ("depth", "--control-model", "vacelab-tests/no-depth"),
        ("pose", "--person-model", "vacelab-tests/no-detr"),
    ],
)
def test_control_models_without_network_are_one_line_before_torch(tmp_path, kind, option, model):
    from vacelab.sample import sample_path

    args = [
        "prepare",
        "control",
        "--kind",
        kind,
        "--video",
        sample_path(),
        "--size",
        "112x64",
        "--frames",
        "9",
    ]
    if kind == "pose":
        args += ["--control-model", tmp_path]  # a folder: its contents are the loader's to judge, later
    code, lines, imported = vacelab([*args, option, model, "--out", tmp_path / "job"], tmp_path)
    assert code == 2
    assert_no_weights_line(lines, model, option)
    assert "torch" not in imported and not (tmp_path / "job").exists()


def test_experiment_without_weights_says_it_once(tmp_path):
    plan = tmp_path / "plan.toml"
    plan.write_text(
        '[run]\nprompt = "x"\n[[jobs]]\nname = "f"\ntask = "firstframe"\nvideo = "sample:"\n'
        "[jobs.grid]\nseed = [1, 2, 3]\n"
    )
    out = tmp_path / "out"
    args = ["experiment", plan, "--out", out, "--size", "112x64", "--frames", "9", "--model", HUB_ID]
    code, lines, _ = vacelab(args, tmp_path)
    assert code == 1
    said = [line for line in lines if "no weights" in line]
    assert len(said) == 1 and f"`hf download {HUB_ID}`" in said[0], lines
    assert sum("the same error as f-1" in line for line in lines) == 2, lines
    record = json.loads((out / "experiment.json").read_text())
    assert all("no weights" in run["error"] for run in record["runs"])  # each run still records it


def test_missing_weights_is_worded_per_interface():
    error = missing("owner/model", "unreachable")
    assert isinstance(error, MissingWeights) and isinstance(error, InputError)
    cli = error.render("--model")
    assert cli.startswith("--model owner/model: no weights: not in the Hugging Face cache (")
    assert cli.endswith("; get them with `hf download owner/model` or use --model FOLDER")
    assert error.toml().startswith("model = owner/model: no weights")
    assert error.toml().endswith('or use model = "FOLDER"')
    assert str(error).endswith("or use model FOLDER")


def test_check_weights_refuses_folders_that_are_not_there(tmp_path):
    assert check_weights(str(tmp_path), "model_index.json") is True  # a folder: read it, ask no hub
    with pytest.raises(InputError, match="folder not found") as info:
        check_weights(str(tmp_path / "nope"), "config.json", field="track_model")
    assert info.value.field == "track_model"


@pytest.fixture
def fake_hub(monkeypatch):
    """A local HTTP server standing in for the hub: ``answers[path] = (status, headers, body)``."""
    import threading
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    from huggingface_hub import constants

    import vacelab.weights

    answers: dict[str, tuple[int, dict, bytes]] = {}

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802 (http.server's name)
            status, headers, body = answers.get(self.path, (404, {}, b""))
            self.send_response(status)
            for key, value in headers.items():
                self.send_header(key, value)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    monkeypatch.setattr(constants, "ENDPOINT", f"http://127.0.0.1:{server.server_port}")
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    monkeypatch.setattr(vacelab.weights, "_probes", {})
    yield answers
    server.shutdown()


def test_only_the_hubs_own_answer_counts(fake_hub):
    from vacelab.weights import hub_answer

    json_type = {"Content-Type": "application/json"}
    fake_hub["/api/models/owner/there"] = (200, json_type, b'{"id": "owner/there"}')
    fake_hub["/api/models/owner/gone"] = (404, {"X-Error-Code": "RepoNotFound"}, b"{}")
    assert hub_answer("owner/there") == "found"
    assert hub_answer("owner/gone") == "unknown"
    assert hub_answer("owner/portal") == "silent"  # a bare 404, as a proxy or portal answers: not the hub
    with pytest.raises(MissingWeights, match=r"the hub has no such model \(or it is private\)"):
        check_weights("owner/gone", "model_index.json")
    with pytest.raises(MissingWeights, match="the hub does not answer"):
        check_weights("owner/portal", "model_index.json")
    assert check_weights("owner/there", "model_index.json") is False  # to be downloaded
