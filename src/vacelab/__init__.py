"""vacelab: a workbench for video editing with VACE on Wan2.1.

The public Python API is imported lazily so that ``import vacelab`` stays light (no torch); type checkers
read the same names from the ``TYPE_CHECKING`` block below.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

__version__ = "0.1.0"  # the one place the version is written (pyproject.toml reads it)

_API = {
    "Job": "vacelab.job",
    "load_job": "vacelab.job",
    "save_job": "vacelab.job",
    "Geometry": "vacelab.geometry",
    "Window": "vacelab.geometry",
    "WindowPlan": "vacelab.geometry",
    "plan_windows": "vacelab.geometry",
    "InputError": "vacelab.errors",
    "RunSettings": "vacelab.generation.settings",
    "apply_fast_profile": "vacelab.generation.profiles",
    "apply_loras": "vacelab.generation.lora",
    "parse_lora_spec": "vacelab.generation.lora",
    "LoraSpec": "vacelab.generation.lora",
    "prepare": "vacelab.tasks",
    "sample_clip": "vacelab.sample",
    "run_job": "vacelab.generation.run",
    "load_pipeline": "vacelab.generation.pipeline",
    "place_pipeline": "vacelab.generation.pipeline",
    "LoadedPipeline": "vacelab.generation.pipeline",
    "PipelineCache": "vacelab.generation.cache",
    "Result": "vacelab.result",
    "load_result": "vacelab.result",
    "export_run": "vacelab.export",
    "Export": "vacelab.export",
    "track_mask": "vacelab.tracking",
    "estimate_depth": "vacelab.annotators",
    "estimate_poses": "vacelab.annotators",
    "audit_job": "vacelab.audit",
    "audit_arrays": "vacelab.audit",
    "AuditReport": "vacelab.audit",
    "draw_audit": "vacelab.audit.plot",
    "load_manifest": "vacelab.manifest",
    "Manifest": "vacelab.manifest",
    "run_batch": "vacelab.batch",
    "Outcome": "vacelab.batch",
    "load_plan": "vacelab.experiment",
    "run_plan": "vacelab.experiment",
    "Plan": "vacelab.experiment",
    "run_demo": "vacelab.demo",
    "match_colors": "vacelab.colors",
}

if TYPE_CHECKING:  # the names of _API, for type checkers and IDEs (a test keeps the two lists equal)
    from .annotators import estimate_depth, estimate_poses
    from .audit import AuditReport, audit_arrays, audit_job
    from .audit.plot import draw_audit
    from .batch import Outcome, run_batch
    from .colors import match_colors
    from .demo import run_demo
    from .errors import InputError
    from .experiment import Plan, load_plan, run_plan
    from .export import Export, export_run
    from .generation.cache import PipelineCache
    from .generation.lora import LoraSpec, apply_loras, parse_lora_spec
    from .generation.pipeline import LoadedPipeline, load_pipeline, place_pipeline
    from .generation.profiles import apply_fast_profile
    from .generation.run import run_job
    from .generation.settings import RunSettings
    from .geometry import Geometry, Window, WindowPlan, plan_windows
    from .job import Job, load_job, save_job
    from .manifest import Manifest, load_manifest
    from .result import Result, load_result
    from .sample import sample_clip
    from .tasks import prepare
    from .tracking import track_mask

__all__ = sorted(_API)


def __getattr__(name: str):
    if name in _API:
        import importlib

        return getattr(importlib.import_module(_API[name]), name)
    raise AttributeError(f"module 'vacelab' has no attribute {name!r}")
