"""Generation through diffusers' ``WanVACEPipeline``: loading, hooks, compositing and results."""

from .settings import RunSettings

__all__ = ["RunSettings"]
