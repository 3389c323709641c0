"""`vacelab demo`: every task on the sample, audited, one self-contained report; outputs only with a model."""

from __future__ import annotations

import json
import re

from vacelab.cli import main
from vacelab.demo import ADD_MODEL, run_demo

VARIANTS = [
    "inpaint-beams", "remove-object", "outpaint-mood", "firstframe", "firstlast", "extend",
    "keyframes-naive", "keyframes-aligned", "keyframes-anchor", "control-layout",
]  # fmt: skip


def assert_self_contained(html: str) -> None:
    assert "http://" not in html and "https://" not in html
    sources = re.findall(r'src="([^"]*)"', html)
    assert sources and all(s.startswith("data:image/") for s in sources)


def test_demo_without_model(tmp_path, capsys):
    out = tmp_path / "demo"
    assert main(["demo", "--out", str(out)]) == 0  # the default size and length: what users run first
    stdout = capsys.readouterr().out
    assert ADD_MODEL in stdout and "vacelab demo --model Wan-AI/Wan2.1-VACE-1.3B-diffusers" in stdout
    assert sorted(p.name for p in (out / "jobs").iterdir() if not p.name.startswith(".")) == sorted(VARIANTS)
    for name in VARIANTS:
        job = json.loads((out / "jobs" / name / "job.json").read_text())
        geometry = job["geometry"]
        assert (geometry["frames"], geometry["width"], geometry["height"]) == (81, 416, 240)
        assert (out / "jobs" / name / "preview.gif").is_file()
    remove = json.loads((out / "jobs" / "remove-object" / "job.json").read_text())
    assert remove["negative_prompt"] == "gun, weapon"
    assert len(json.loads((out / "jobs" / "outpaint-mood" / "job.json").read_text())["refs"]) == 3
    assert not (out / "runs").exists()  # nothing generated, nothing faked
    html = (out / "report.html").read_text()
    assert_self_contained(html)
    assert ADD_MODEL.split("`")[0] in html and "</figcaption>" in html
    assert html.count("source | what the model is given") == 2 * len(VARIANTS)  # alt text + caption
    assert "output</figcaption>" not in html
    # the keyframe strategies audit differently: naive is told to keep blends of keyframes and gray
    naive = html.split("<h3>keyframes-naive")[1].split("<h3>")[0]
    aligned = html.split("<h3>keyframes-aligned")[1].split("<h3>")[0]
    assert "MIXED_GROUP" in naive and "MIXED_GROUP" not in aligned
    # the summary shows the fix: anchored keyframes under the aligned mask encoding read as drawn
    glance = html.split("<h2>At a glance</h2>")[1].split("<h2>")[0]
    rows = {
        tuple(re.sub("<[^>]+>", "", c) for c in re.findall(r"<td[^>]*>(.*?)</td>", r)[:4])
        for r in glance.split("<tr>")
    }
    assert ("keyframes-anchor", "keyframes", "aligned", "read as drawn") in rows
    assert ("keyframes-anchor", "keyframes", "reference", "not read as drawn") in rows
    assert "the 3 reference image(s), in the order the model gets them" in html  # outpaint's auto refs
    assert "What the numbers mean" not in html  # no metric without a run
    assert len(html) < 6_000_000
    assert "`" not in re.sub(r'data:[^"]+', "", html)  # Markdown code spans become <code>
    cards = html.split('<div class="card"')[1:]
    previews = [re.search(r'<img src="(data:image/gif[^"]+)"', card).group(1) for card in cards]
    assert len(previews) == len(VARIANTS) == len(set(previews))  # each job's preview shows its own input


def test_the_report_keeps_every_colour_of_the_audit_picture(tmp_path):
    """The legend swatches of the embedded audit pictures are the picture's own colours, exactly."""
    import base64
    import io

    import numpy as np
    from PIL import Image

    from vacelab import audit_job, prepare
    from vacelab.audit.plot import GENERATE, INK, KEEP, SEVERITY, draw_audit
    from vacelab.report import audit_uri
    from vacelab.sample import sample_path

    job = prepare("keyframes", video=str(sample_path()), every=4, strategy="naive", size="416x240")
    audit = audit_job(job)
    embedded = Image.open(io.BytesIO(base64.b64decode(audit_uri(audit, "jobs/k").split(",", 1)[1])))
    draw_audit(audit, tmp_path / "a.png", findings=False)  # the same label and form as audit_uri
    drawn = np.asarray(Image.open(tmp_path / "a.png").convert("RGB"))
    shown = np.asarray(embedded.convert("RGB"))
    for colour in [KEEP, GENERATE, INK, *SEVERITY.values()]:
        where = (drawn == colour).all(axis=-1)
        assert (shown[where] == colour).all(), colour  # every pixel of a fill or swatch keeps its colour


def test_demo_refuses_a_folder_that_is_not_empty(tmp_path, capsys):
    out = tmp_path / "demo"
    out.mkdir()
    (out / "mine.txt").write_text("keep me")
    assert main(["demo", "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error:") and "not empty" in err[0]
    assert [p.name for p in out.iterdir()] == ["mine.txt"] and (out / "mine.txt").read_text() == "keep me"


def test_demo_with_a_missing_model_stops_before_writing(tmp_path, capsys):
    out = tmp_path / "demo"
    assert main(["demo", "--out", str(out), "--model", str(tmp_path / "no-such-model")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "--model" in err[0] and "not found" in err[0]
    assert not out.exists()
    assert main(["demo", "--out", str(out), "--steps", "3"]) == 2  # --steps without --model


def test_demo_with_the_tiny_model_shows_outputs(tmp_path, tiny_model_dir):
    out = tmp_path / "demo"
    report = run_demo(out, model=str(tiny_model_dir), steps=2, size="112x64", frames=9)
    assert report == out / "report.html"
    runs = [v for v in VARIANTS if not v.startswith("keyframes")]  # keyframes: under both mask encodings
    runs += [f"{v}-{e}" for v in VARIANTS if v.startswith("keyframes") for e in ("reference", "aligned")]
    assert sorted(
        p.name for p in (out / "runs").iterdir() if p.is_dir() and not p.name.startswith(".")
    ) == sorted(runs)
    html = report.read_text()
    assert_self_contained(html)
    assert ADD_MODEL.split("`")[0] not in html
    assert html.count("source | given | output</figcaption>") == len(runs)
    record = json.loads((out / "experiment.json").read_text())
    assert {r["status"] for r in record["runs"]} == {"done"}
    # the runs name their jobs where they are, not in the temporary folder the demo was built in
    for name in runs:
        run = json.loads((out / "runs" / name / "run.json").read_text())
        job = name.rsplit("-", 1)[0] if name.startswith("keyframes") else name  # minus its encoding
        assert (out / "runs" / name / run["job"]["path"]).resolve() == (out / "jobs" / job).resolve()
    assert ".part" not in "".join(p.read_text() for p in (out / "runs").glob("**/*.json"))
    extend = json.loads((out / "jobs" / "extend" / "job.json").read_text())
    assert extend["params"]["keep"] == 5  # half of the 9 frames in whole VAE groups


def test_bare_vacelab_shows_what_it_can_do(capsys):
    assert main([]) == 0
    out = capsys.readouterr().out
    assert out.startswith("usage: vacelab") and "vacelab demo --out demo" in out
    assert all(command in out for command in ("prepare", "audit", "run", "export", "batch", "ui"))
