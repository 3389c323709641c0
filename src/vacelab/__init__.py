"""vacelab: a workbench for video editing with VACE on Wan2.1.

The public Python API is imported lazily so that ``import vacelab`` stays light (no torch).
"""

from __future__ import annotations

__version__ = "0.1.0"

_API = {
    "Job": "vacelab.job",
    "load_job": "vacelab.job",
    "save_job": "vacelab.job",
    "Geometry": "vacelab.geometry",
    "plan_windows": "vacelab.geometry",
    "InputError": "vacelab.errors",
    "RunSettings": "vacelab.generation.settings",
    "apply_fast_profile": "vacelab.generation.profiles",
    "apply_loras": "vacelab.generation.lora",
    "parse_lora_spec": "vacelab.generation.lora",
    "prepare": "vacelab.tasks",
    "sample_clip": "vacelab.sample",
    "run_job": "vacelab.generation.run",
    "load_pipeline": "vacelab.generation.pipeline",
    "place_pipeline": "vacelab.generation.pipeline",
    "Result": "vacelab.result",
    "load_result": "vacelab.result",
    "track_mask": "vacelab.tracking",
    "audit_job": "vacelab.audit",
    "audit_arrays": "vacelab.audit",
    "AuditReport": "vacelab.audit",
    "draw_audit": "vacelab.audit_plot",
    "load_manifest": "vacelab.manifest",
    "run_batch": "vacelab.batch",
    "load_plan": "vacelab.experiment",
    "run_plan": "vacelab.experiment",
    "run_demo": "vacelab.demo",
}

__all__ = sorted(_API)


def __getattr__(name: str):
    if name in _API:
        import importlib

        return getattr(importlib.import_module(_API[name]), name)
    raise AttributeError(f"module 'vacelab' has no attribute {name!r}")
