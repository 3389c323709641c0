"""The latent-view audit: what Wan VACE will actually see of a job's mask, before any GPU time is spent.

The user draws a mask per frame; the model sees something else (see ``geometry``): the causal VAE encodes
frames ``0 | 1-4 | 5-8 | ...`` together, the mask is resampled in time with ``nearest-exact`` (81 frames
-> 21 steps reading frames 1, 5, ..., 25, 28, ...), and the DiT works on 16x16-pixel tokens. The audit
compares the two and reports each consequence as a finding with a plain-language message.

Layers: :mod:`.analysis` computes the numbers (pure numpy on the bit-packed mask, no torch),
:mod:`.findings` turns them into coded findings with their words, :mod:`.formats` renders a report as
text, markdown, HTML or picture captions, :mod:`.plot` draws the picture, :mod:`.api` ties them together.
"""

from .analysis import LatentStep
from .api import AuditReport, SpatialView, audit_arrays, audit_job, save_mask_latent
from .findings import CODES, SEVERITIES, Finding
from .formats import format_ints

__all__ = [
    "CODES",
    "SEVERITIES",
    "AuditReport",
    "Finding",
    "LatentStep",
    "SpatialView",
    "audit_arrays",
    "audit_job",
    "format_ints",
    "save_mask_latent",
]
