"""Drive the real ``vacelab ui`` in headless Chromium: sample clip, mask (box + brush), audit, build, run.

Needs Debian's ``chromium`` and ``chromium-driver`` (``.ci/run`` installs them); without them this test
FAILS, it does not skip. ``VACELAB_UI_SCREENSHOTS=DIR`` also saves the screenshots used in docs/ui.md.
"""

from __future__ import annotations

import io
import os
import shutil
import tempfile
import time
import urllib.request
import zipfile
from pathlib import Path

import pytest
from ui_server import running_ui

CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"
FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--window-size=1400,1000",
]


@pytest.fixture(scope="module")
def browser():
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    missing = [p for p in (CHROMIUM, CHROMEDRIVER) if not shutil.which(p)]
    assert not missing, f"{missing} not installed: apt-get install -y chromium chromium-driver"
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in FLAGS:
        options.add_argument(flag)
    profile = tempfile.mkdtemp(prefix="vacelab-chromium-")
    options.add_argument(f"--user-data-dir={profile}")
    driver = webdriver.Chrome(options=options, service=Service(CHROMEDRIVER))
    driver.set_page_load_timeout(60)
    try:
        yield driver
    finally:
        driver.quit()
        shutil.rmtree(profile, ignore_errors=True)


class Page:
    """Small helpers over the page's elem_ids, all with explicit waits."""

    def __init__(self, driver, shots: Path | None):
        from selenium.webdriver.support.ui import WebDriverWait

        self.driver = driver
        self.shots = shots
        self.wait = WebDriverWait(driver, 60, poll_frequency=0.2)

    def el(self, elem_id: str, css: str = ""):
        from selenium.webdriver.common.by import By

        selector = ", ".join(f"#{elem_id} {part.strip()}".strip() for part in css.split(","))
        return self.wait.until(lambda d: d.find_element(By.CSS_SELECTOR, selector))

    def text(self, elem_id: str) -> str:
        return self.el(elem_id).text

    def until_text(self, elem_id: str, check, timeout: float = 60) -> str:
        """Wait until the element is settled (no Gradio progress overlay) and its text passes ``check``."""
        from selenium.webdriver.support.ui import WebDriverWait

        def settled(driver):
            text = self.text(elem_id)
            busy = any(word in text for word in ("processing |", "queue:"))  # Gradio's progress overlay
            return text if not busy and check(text) else False

        return WebDriverWait(self.driver, timeout, poll_frequency=0.2).until(settled)

    def type(self, elem_id: str, value: str, css: str = "input, textarea") -> None:
        from selenium.webdriver.common.keys import Keys

        field = self.el(elem_id, css)
        self.driver.execute_script("arguments[0].scrollIntoView({block: 'center'})", field)
        field.send_keys(Keys.CONTROL, "a")
        field.send_keys(value)
        field.send_keys(Keys.TAB)

    def click(self, elem_id: str, css: str = "") -> None:
        button = self.el(elem_id, css)
        self.driver.execute_script("arguments[0].scrollIntoView({block: 'center'})", button)
        button.click()

    def shot(self, name: str, elem_id: str | None = None) -> None:
        if self.shots is None:
            return
        self.shots.mkdir(parents=True, exist_ok=True)
        if elem_id:
            self.driver.execute_script("arguments[0].scrollIntoView({block: 'start'})", self.el(elem_id))
        time.sleep(1.0)  # let videos show their first frame
        self.driver.save_screenshot(str(self.shots / f"ui-{name}.png"))


def test_browser_sample_mask_audit_build_run(browser, tiny_model_dir, tmp_path):
    from selenium.webdriver.common.action_chains import ActionChains

    shots = os.environ.get("VACELAB_UI_SCREENSHOTS")
    with running_ui("--model", str(tiny_model_dir)) as url:
        browser.get(url)
        page = Page(browser, Path(shots) if shots else None)
        page.type("size", "256x144")  # a small job for a fast run: 9 frames at 256x144
        page.type("frames", "9")
        page.click("load-sample")
        page.until_text("status", lambda t: "Loaded the sample clip" in t)
        page.el("source-video", "video")
        no_mask = page.until_text("findings", lambda t: "no mask yet" in t)
        page.shot("start")

        # a box in source pixels: the audit describes the job
        for elem_id, value in (("box-x0", "300"), ("box-y0", "150"), ("box-x1", "520"), ("box-y1", "330")):
            page.type(elem_id, value)
        boxed = page.until_text("findings", lambda t: "9 frames" in t and "256×144" in t and "GENERATE" in t)
        assert boxed != no_mask
        assert page.el("audit-png", "img").get_attribute("src")

        # a brush stroke on the editor's canvas, applied to every frame: the mask (and audit) grows
        canvas = page.el("mask-editor", "canvas")
        browser.execute_script("arguments[0].scrollIntoView({block: 'center'})", canvas)
        actions = ActionChains(browser).move_to_element_with_offset(canvas, -200, -60).click_and_hold()
        actions.move_by_offset(80, 10).move_by_offset(80, 10).move_by_offset(80, 10).release().perform()
        page.click("apply-mask")
        status = page.until_text("status", lambda t: "Painted mask" in t and "applied to frames 0–8" in t)
        assert "(0.0% of the frame)" not in status
        painted = page.until_text("findings", lambda t: t != boxed and "GENERATE" in t)
        share = lambda text: float(text.split("% of pixels to GENERATE")[0].rsplit("·", 1)[1])  # noqa: E731
        assert share(painted) > share(boxed)
        page.shot("mask", "mask-editor")

        # build: the job folder comes back as a zip holding the job
        page.type("prompt", "an empty sky over a steel roof")
        page.click("build")
        link = page.el("job-zip", "a")
        page.until_text("findings", lambda t: "built" in t)
        with urllib.request.urlopen(link.get_attribute("href"), timeout=30) as response:
            names = zipfile.ZipFile(io.BytesIO(response.read())).namelist()
        assert any(n.endswith("/job.json") for n in names) and any(
            n.endswith("arrays/mask.npy") for n in names
        )

        # the memory estimate of this job and these settings is shown before Run, and follows the offload
        estimate = page.until_text("memory", lambda t: "Memory estimate" in t and "offload none" in t)
        assert "9 frames of 256×144" in estimate
        page.click("settings-speed-and-memory", "button")  # open the group
        page.type("offload", "group\n", css="input")
        page.until_text("memory", lambda t: "offload group" in t)
        page.type("offload", "none\n", css="input")  # group offload needs a GPU: this run is on the CPU
        page.until_text("memory", lambda t: "offload none" in t)
        from selenium.webdriver.common.keys import Keys

        page.el("offload", "input").send_keys(Keys.ESCAPE)  # close its list (else open in the screenshot)

        # run with the tiny offline model: the side-by-side output video appears
        page.type("steps", "2")
        page.click("run")
        page.until_text("run-status", lambda t: "Generated" in t, timeout=150)
        assert page.el("compare", "video").get_attribute("src")
        hrefs = [a.get_attribute("href") for a in browser.find_elements("css selector", "#outputs a")]
        assert any(h.endswith("compare.mp4") for h in hrefs) and any(
            h.endswith("out_video.mp4") for h in hrefs
        )
        page.shot("run", "memory")  # the estimate, Run, its status, the queue and the comparison

        # two more runs in a row (seeds 1 and 2) through the queue
        for seed in ("1", "2"):
            page.type("seed", seed)
            page.click("run")
            page.until_text(
                "queue", lambda t, s=seed: f"seed {s}" in t
            )  # its row, whatever the status line says
        page.until_text("queue", lambda t: t.count("done") == 3, timeout=300)
        page.shot("queue", "queue-results")

        # another task: keyframes placed naively on frames 0, 4, 8; the audit warns in plain words
        page.type("task", "keyframes\n", css="input")
        page.type("keys", "0,4,8")
        browser.find_element("css selector", "#strategy input[value='naive']").click()
        page.until_text("findings", lambda t: "keyframes · 9 frames" in t and "MASK_SAMPLE_MISMATCH" in t)
        page.shot("audit", "view")

        # a reload: a new session, the same browser; its queue and results are still listed
        browser.refresh()
        page.until_text("queue", lambda t: t.count("done") == 3)  # the queue outlives the page
        page.click("results", "input")
        options = browser.find_elements("css selector", "#results [role='option']")
        # textContent: also the options scrolled out of view (their .text is ''); "✓" marks the chosen one
        listed = [o.get_attribute("textContent").replace("✓", "").strip() for o in options]
        assert len([name for name in listed if name.startswith("run-")]) == 3, listed
        page.type("results", f"{listed[-1]}\n", css="input")  # the last run, shown again after the reload
        shown = page.until_text("result-info", lambda t: "Generated" in t and "--seed 2" in t)
        assert listed[-1] in shown and page.el("compare", "video").get_attribute("src")


def test_browser_click_to_track_a_phrase_a_control_task_and_a_long_job(browser, tmp_path):
    """A click on the sample's object, SAM 2 (tiny, random, offline) tracks it; the built job's mask is the
    tracker's, frame by frame; a phrase for SAM 3 (tiny) replaces it; then a control task, the clip re-read
    from another second at another rate, and a long job audited window by window, from the same page."""
    import re

    from selenium.webdriver.common.action_chains import ActionChains

    from vacelab import media
    from vacelab.job import load_job
    from vacelab.sample import sample_path
    from vacelab.testing.sam import save_tiny_sam2, save_tiny_sam3
    from vacelab.tracking import track_mask
    from vacelab.ui.workbench import FPS, MAX_EDIT_FRAMES

    model = save_tiny_sam2(tmp_path / "sam2")
    sam3 = save_tiny_sam3(tmp_path / "sam3")
    shots = os.environ.get("VACELAB_UI_SCREENSHOTS")
    with running_ui("--track-model", str(model), "--segment-model", str(sam3)) as url:
        browser.get(url)
        page = Page(browser, Path(shots) if shots else None)
        page.type("size", "256x144")
        page.type("frames", "9")
        page.click("load-sample")
        page.until_text("status", lambda t: "Loaded the sample clip" in t)
        page.click("track", "button")  # open the accordion
        image = page.el("click-view", "img")
        browser.execute_script("arguments[0].scrollIntoView({block: 'center'})", image)
        ActionChains(browser).move_to_element_with_offset(image, -240, 15).click().perform()
        clicked = page.until_text("status", lambda t: "1 click(s) on frame 0" in t)
        x, y = (int(v) for v in re.search(r"object at \((\d+), (\d+)\) px", clicked).groups())
        page.click("track-btn")
        tracked = page.until_text("status", lambda t: "Tracked the object" in t, timeout=180)
        page.shot("track", "track")

        frames, _ = media.read_video(sample_path(), size=(480, 832), fps=FPS, max_frames=MAX_EDIT_FRAMES)
        expected = track_mask(frames[:9], points=[([(x, y)], [1], 0)], model=str(model))
        areas = expected.mean(axis=(1, 2))
        assert f"{areas.min():.1%}–{areas.max():.1%} of the frame" in tracked
        assert len({frame.tobytes() for frame in expected}) > 1  # the mask changes from frame to frame

        page.click("build")
        link = page.el("job-zip", "a")
        page.until_text("findings", lambda t: "built" in t)
        with urllib.request.urlopen(link.get_attribute("href"), timeout=30) as response:
            zipfile.ZipFile(io.BytesIO(response.read())).extractall(tmp_path / "zip")
        (job_json,) = (tmp_path / "zip").glob("*/job.json")
        job = load_job(job_json.parent)
        assert job.mask.shape == (9, 144, 256)
        # the job's mask is the tracker's, resized to the job (cover and crop): per frame the same share
        assert abs(job.mask.mean(axis=(1, 2)) - areas).max() < 0.03

        # a phrase instead: SAM 3 finds it on every frame, and its mask replaces the painted one
        page.type("phrase", "gun")
        page.click("segment-btn")
        found = page.until_text("status", lambda t: "Found and tracked 'gun'" in t, timeout=180)
        areas = track_mask(frames[:9], text="gun", model=str(sam3)).mean(axis=(1, 2))
        assert f"through frames 0–8: {areas.min():.1%}–{areas.max():.1%} of the frame" in found

        page.type("task", "control\n", css="input")
        page.until_text("findings", lambda t: "control · 9 frames" in t)

        # the clip from second 2 at 8 fps: read again, as the job will read it
        page.type("start", "2")
        page.type("fps", "8")
        page.until_text("status", lambda t: "(33 frames at 8 fps from 2 s)" in t)
        # a long job: 33 frames in windows of 17, each audited as the run conditions it
        page.type("frames", "33")
        page.type("window", "17")
        page.until_text("findings", lambda t: "Long job: 3 windows (frames 0–16, 8–24, 16–32)" in t)
        page.type("audit-window", "1", css="input[type='number']")
        page.until_text("findings", lambda t: "window 1 of 3 (clip frames 8-24" in t)
        page.shot("long", "view")


def test_browser_cancel_a_queued_and_a_running_run(browser, tiny_model_dir, tmp_path):
    """Cancel by number: a queued run is dropped, a running one stops at its next step; neither leaves a
    results folder (nor the queue's copy of its job), and the queue runs the next one to the end."""
    results = tmp_path / "results"
    with running_ui("--model", str(tiny_model_dir), "--results", str(results)) as url:
        browser.get(url)
        page = Page(browser, None)
        page.type("size", "256x144")
        page.type("frames", "9")
        page.click("load-sample")
        page.until_text("status", lambda t: "Loaded the sample clip" in t)
        for elem_id, value in (("box-x0", "300"), ("box-y0", "150"), ("box-x1", "520"), ("box-y1", "330")):
            page.type(elem_id, value)
        page.until_text("findings", lambda t: "9 frames" in t and "256×144" in t and "GENERATE" in t)
        page.type("prompt", "an empty sky over a steel roof")
        page.type("steps", "20000")  # never finishes: it is cancelled while running
        page.click("run")
        page.until_text("queue", lambda t: "denoise" in t, timeout=120)  # run 1 is denoising
        page.click("run")
        page.until_text("queue", lambda t: "queued" in t)  # run 2 waits behind it

        page.type("cancel-id", "2")
        page.click("cancel")
        page.until_text("run-status", lambda t: "Run #2 cancelled" in t)
        page.type("cancel-id", "1")
        page.click("cancel")
        page.until_text("queue", lambda t: "cancelled while running" in t, timeout=120)

        page.type("steps", "1")
        page.click("run")
        page.until_text("run-status", lambda t: "Generated" in t, timeout=150)
        table = page.until_text("queue", lambda t: "done" in t).split("\n")
        cells = table[table.index("progress") + 1 :]  # number, job, status, progress: row after row
        assert {cells[i]: cells[i + 2] for i in range(0, len(cells), 4)} == {
            "1": "cancelled", "2": "cancelled", "3": "done",
        }, table  # fmt: skip
    (home,) = [p for p in results.iterdir() if p.is_dir()]  # this browser's key
    assert sorted(p.name for p in (home / "runs").iterdir()) == ["run-3"]  # nothing hidden either
    assert sorted(p.name for p in (home / "jobs").iterdir()) == ["job-3"]
