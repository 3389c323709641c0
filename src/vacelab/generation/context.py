"""What travels through one run: the :class:`RunContext` every stage reads, its clock and its progress."""

from __future__ import annotations

import time
from collections.abc import Callable
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime

from ..geometry import Window, WindowPlan
from ..job import Job
from .pipeline import LoadedPipeline
from .settings import RunSettings

Progress = Callable[[str, int, int], None]  # progress(stage, done, total)


def no_progress(stage: str, done: int, total: int) -> None:
    """The progress callback of a run nobody watches."""


class Stopwatch:
    """Seconds per named stage."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = {}

    @contextmanager
    def __call__(self, stage: str):
        start = time.perf_counter()
        try:
            yield
        finally:
            self.seconds[stage] = self.seconds.get(stage, 0.0) + time.perf_counter() - start

    def add(self, other: Stopwatch) -> None:
        """Add ``other``'s seconds into this clock, stage by stage (``total`` excepted)."""
        for stage, seconds in other.seconds.items():
            if stage != "total":
                self.seconds[stage] = self.seconds.get(stage, 0.0) + seconds


@dataclass
class RunContext:
    """One run of one job: the job and its windows, the settings and the words resolved once for them
    (prompt, negative prompt, flow shift), the loaded pipeline, each window's audit, the clock and the
    progress callback."""

    job: Job
    settings: RunSettings
    prompt: str
    negative: str
    report: Progress = no_progress
    clock: Stopwatch = field(default_factory=Stopwatch)
    loaded: LoadedPipeline | None = None  # set once the pipeline is loaded
    audits: list[dict] = field(default_factory=list)  # each window's audit summary, once audited
    expert_steps: dict[str, list[int]] = field(default_factory=dict)  # the steps each expert ran
    cache: dict | None = None  # the last pass's step cache record (``--cache``), None when off
    started: datetime = field(default_factory=lambda: datetime.now(UTC))
    run_start: float = field(default_factory=time.perf_counter)

    @property
    def plan(self) -> WindowPlan:
        return self.job.plan

    def prompt_for(self, window: Window) -> str:
        """Window ``window``'s prompt: its line of ``settings.window_prompts`` (the last repeats), else
        the run's prompt."""
        prompts = self.settings.window_prompts
        return prompts[min(window.index, len(prompts) - 1)] if prompts else self.prompt

    @property
    def shift(self) -> float:
        """The scheduler's flow shift for this job's size (``settings.shift`` or its default)."""
        _, height, width = self.job.mask.shape
        return self.settings.flow_shift(height, width)
