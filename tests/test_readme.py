"""Every example in the README runs as written from a fresh copy of the repository.

The examples' input files ship in ``examples/``; later examples use the folders earlier ones write.
Only lines tagged with one of ``SKIPPED`` (downloaded weights, a Ray cluster, a server) are left out,
and the tags must say why.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SKIPPED = ("# needs weights", "# needs a Ray cluster", "# starts the web UI")


def blocks(language: str) -> list[str]:
    """The README's fenced code blocks of ``language``, continuation lines joined."""
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    found = re.findall(rf"```{language}\n(.*?)```", text, flags=re.S)
    return [block.replace("\\\n", " ") for block in found]


def runnable(block: str, placeholder: str) -> tuple[str, list[str]]:
    """``block`` with each tagged line replaced by ``placeholder``; also the tagged lines."""
    kept, skipped = [], []
    for line in block.splitlines():
        if any(line.rstrip().endswith(tag) for tag in SKIPPED):
            skipped.append(line)
            line = placeholder
        kept.append(line)
    return "\n".join(kept) + "\n", skipped


@pytest.fixture(scope="module")
def clone(tmp_path_factory) -> Path:
    """The files git would check out (tracked, plus new ones not ignored), copied to a temporary folder."""
    listed = subprocess.run(
        ["git", "ls-files", "-co", "--exclude-standard", "-z"], cwd=ROOT, capture_output=True, check=True
    ).stdout.decode()
    dest = tmp_path_factory.mktemp("clone")
    for name in filter(None, listed.split("\0")):
        if (ROOT / name).is_file():
            (dest / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(ROOT / name, dest / name)
    return dest


def test_the_shell_examples_run_from_a_fresh_clone(clone):
    setup, examples = blocks("bash")[:2]
    assert "vacelab demo" in setup and "vacelab prepare" in examples
    script, skipped = runnable(examples, ":")
    assert {line.split()[1] for line in skipped} <= {"run", "export", "prepare", "batch", "ui", "experiment"}
    done = subprocess.run(
        ["bash", "-euo", "pipefail", "-c", script], cwd=clone, capture_output=True, text=True, timeout=900
    )
    assert done.returncode == 0, done.stderr[-3000:]
    for job in ("remove", "beams", "outpaint", "fl", "extend", "keys", "gray", "layout", "long"):
        assert (clone / "jobs" / job / "job.json").is_file(), job
    assert (clone / "jobs/remove/audit.png").stat().st_size > 0
    audit = json.loads(done.stdout[done.stdout.index("\n{") :])  # the last command's --json report
    assert audit["geometry"]["frames"] == 81 and audit["geometry"]["ref_frames"] == 4


def test_the_python_example_runs_from_a_fresh_clone(clone):
    (block,) = blocks("python")
    script, skipped = runnable(block, "")
    assert len(skipped) == 4  # the run, its result and its export need weights
    done = subprocess.run(
        [sys.executable, "-c", script], cwd=clone, capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert "audit of job jobs/py, task remove" in done.stdout and (clone / "jobs/py/job.json").is_file()


def test_the_batch_example_manifest_is_valid(clone):
    from vacelab.manifest import load_manifest

    (clone / "jobs" / "remove").mkdir(parents=True, exist_ok=True)
    (clone / "jobs" / "remove" / "job.json").write_text("{}")  # the folder the first example writes
    manifest = load_manifest(clone / "examples/shots.toml")
    assert [job.name for job in manifest.jobs] == ["remove", "remove-late-vace", "beams"]
