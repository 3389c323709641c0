"""Shared fixtures: an offline tiny model folder and the bundled sample clip."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory) -> Path:
    """A tiny random WanVACEPipeline saved with ``save_pretrained``: pass it as ``--model``."""
    from vacelab.testing.tiny import save_tiny_pipeline

    return save_tiny_pipeline(tmp_path_factory.mktemp("tiny-vace") / "model")
