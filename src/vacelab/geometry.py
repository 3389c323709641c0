"""The geometry of Wan2.1 VACE: how frames, masks and references become latents and tokens.

Pure numpy (no torch import), so the audit can run in a fraction of a second. Every rule here mirrors
diffusers' ``WanVACEPipeline`` / ``AutoencoderKLWan`` (0.42.1) and the official VACE code:

- The causal VAE encodes frame 0 alone, then groups of 4 frames: latent ``t`` holds frame 0 (``t == 0``)
  or frames ``4t-3 .. 4t``. ``F = 4n+1`` frames give ``k+1`` latent steps; 8x spatial compression.
- The mask is not VAE-encoded: each 8x8 pixel block is folded into 64 channels, then time is resized from
  ``F`` to ``(F+3)//4`` steps with ``nearest-exact``: step ``t`` reads the mask of frame
  ``floor((t + 0.5) * F / T)``.
- The DiT patch is (1, 2, 2): a token is one latent step by 2x2 latents = 16x16 pixels.
- Each reference image is one extra latent step prepended on the time axis, with a KEEP (0) mask.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

from .errors import InputError

VAE_STRIDE_T = 4
VAE_STRIDE_S = 8
PATCH_S = 2
TOKEN_PX = VAE_STRIDE_S * PATCH_S  # 16 pixels per token side
MASK_CHANNELS = VAE_STRIDE_S * VAE_STRIDE_S  # 64

SIZES = {"480p": (480, 832), "720p": (720, 1280)}  # (height, width), landscape
MAX_SIDE = 2048  # the largest job side vacelab prepares: 1080p fits, 8192x8192 (~15 GB of frames) does not
DEFAULT_FRAMES = 81
MASK_ENCODINGS = ("reference", "aligned")


def is_valid_frame_count(frames: int) -> bool:
    """True when ``frames`` is 4n+1 (what the causal VAE encodes without dropping frames)."""
    return frames >= 1 and (frames - 1) % VAE_STRIDE_T == 0


def latent_frame_count(frames: int) -> int:
    """Latent steps the VAE produces for ``frames`` (frames beyond 4n+1 are dropped by the VAE)."""
    return (frames - 1) // VAE_STRIDE_T + 1


def mask_step_count(frames: int) -> int:
    """Time steps of the mask latent, ``(F + 3) // 4`` as in ``prepare_masks``."""
    return (frames + VAE_STRIDE_T - 1) // VAE_STRIDE_T


def vae_groups(frames: int) -> list[range]:
    """The frames VAE-encoded into each latent step: ``[0], [1..4], [5..8], ...``."""
    groups = [range(0, 1)]
    for t in range(1, latent_frame_count(frames)):
        groups.append(range(VAE_STRIDE_T * t - 3, VAE_STRIDE_T * t + 1))
    return groups


def mask_read_frames(frames: int) -> np.ndarray:
    """For each mask time step, the frame whose mask the model reads (torch ``nearest-exact``).

    Computed in float32 as torch's CPU/CUDA kernels do: ``min(floor((t + 0.5) * (F / T)), F - 1)``.
    """
    steps = mask_step_count(frames)
    scale = np.float32(frames) / np.float32(steps)
    index = np.floor((np.arange(steps, dtype=np.float32) + np.float32(0.5)) * scale).astype(np.int64)
    return np.minimum(index, frames - 1)


@dataclass(frozen=True)
class Geometry:
    """Sizes of one VACE job in pixels, latents and tokens."""

    frames: int
    height: int
    width: int
    ref_frames: int = 0

    @property
    def latent_frames(self) -> int:
        return latent_frame_count(self.frames)

    @property
    def latent_height(self) -> int:
        return self.height // VAE_STRIDE_S

    @property
    def latent_width(self) -> int:
        return self.width // VAE_STRIDE_S

    @property
    def tokens(self) -> int:
        """DiT sequence length, reference steps included."""
        return (self.ref_frames + self.latent_frames) * (self.height // TOKEN_PX) * (self.width // TOKEN_PX)

    def problems(self) -> list[str]:
        """Why this geometry cannot be generated as is (empty when it can)."""
        found = []
        if not is_valid_frame_count(self.frames):
            lower = (self.frames - 1) // VAE_STRIDE_T * VAE_STRIDE_T + 1
            found.append(
                f"{self.frames} frames is not 4n+1: the VAE drops the last {self.frames - lower} "
                f"(use {lower} or {lower + VAE_STRIDE_T})"
            )
        for name, size in (("height", self.height), ("width", self.width)):
            if size % TOKEN_PX:
                found.append(
                    f"{name} {size} is not a multiple of {TOKEN_PX} (use {size // TOKEN_PX * TOKEN_PX})"
                )
        return found

    def as_dict(self) -> dict:
        out = asdict(self)
        out.update(
            latent_frames=self.latent_frames,
            latent_height=self.latent_height,
            latent_width=self.latent_width,
            tokens=self.tokens,
        )
        return out


def fold_mask(mask: np.ndarray) -> np.ndarray:
    """Space-to-depth of a mask [F, H, W] into float32 [64, F, H/8, W/8] (``prepare_masks`` order)."""
    frames, height, width = mask.shape
    h, w = height // VAE_STRIDE_S, width // VAE_STRIDE_S
    folded = mask.reshape(frames, h, VAE_STRIDE_S, w, VAE_STRIDE_S).transpose(2, 4, 0, 1, 3)
    return folded.reshape(MASK_CHANNELS, frames, h, w).astype(np.float32)


def mask_latent(mask: np.ndarray, ref_frames: int = 0, encoding: str = "reference") -> np.ndarray:
    """The mask tensor the transformer is conditioned on: float32 [64, R + T, H/8, W/8], 1 = GENERATE.

    ``encoding="reference"`` is exactly ``WanVACEPipeline.prepare_masks`` (nearest-exact time read);
    ``"aligned"`` reads each step's own VAE group and marks a pixel GENERATE if any frame of the group does
    (a step is KEEP only where all its frames are KEEP).
    """
    if encoding not in MASK_ENCODINGS:
        raise ValueError(f"unknown mask encoding {encoding!r}; choose from {', '.join(MASK_ENCODINGS)}")
    mask = np.asarray(mask)
    frames = mask.shape[0]
    if encoding == "reference":
        picked = mask[mask_read_frames(frames)]
    else:
        picked = np.stack([mask[list(g)].max(axis=0) for g in vae_groups(frames)])
    latent = fold_mask(picked)
    if ref_frames:
        pad = np.zeros((MASK_CHANNELS, ref_frames) + latent.shape[2:], np.float32)
        latent = np.concatenate([pad, latent], axis=1)
    return latent


def read_frames_for(frames: int, encoding: str = "reference") -> list[list[int]]:
    """Per latent step, the frames whose mask the model reads under ``encoding``."""
    if encoding == "reference":
        return [[int(i)] for i in mask_read_frames(frames)]
    return [list(g) for g in vae_groups(frames)]


def target_size(size: str, source_hw: tuple[int, int] | None = None) -> tuple[int, int]:
    """Resolve ``480p`` / ``720p`` / ``WxH`` to (height, width); named sizes follow the source orientation.

    A size that is not one of these raises ``ValueError`` saying why (the caller names the field)."""
    size = size.strip().lower()
    if size in SIZES:
        height, width = SIZES[size]
        if source_hw is not None and source_hw[0] > source_hw[1]:
            height, width = width, height
        return height, width
    try:
        w_text, h_text = size.split("x")
        width, height = int(w_text), int(h_text)
    except ValueError:
        raise ValueError("is not 480p, 720p or WxH") from None
    if width <= 0 or height <= 0 or width % TOKEN_PX or height % TOKEN_PX:
        raise ValueError(f"width and height must be positive multiples of {TOKEN_PX}")
    if max(width, height) > MAX_SIDE:
        raise ValueError(f"at most {MAX_SIDE} px a side (Wan is trained at 480p and 720p)")
    return height, width


def default_overlap(window: int) -> int:
    """The default overlap of long-job windows: the fewest whole VAE groups (4j+1 frames) whose kept head
    the model reads as KEEP to its end under the default mask encoding (81 -> 29 frames: step 7 reads
    frame 28, inside its own group; with 17, step 4 would read frame 17, a generated frame). Falls back to
    groups covering about half a short window when no such head fits in half of it.
    """
    read = mask_read_frames(window)
    for j in range(1, len(read)):
        if read[j] <= VAE_STRIDE_T * j:  # the last kept step reads a frame of its own (kept) group
            overlap = VAE_STRIDE_T * j + 1
            if overlap <= (window - 1) // 2 + 1:
                return overlap
            break
    return max(1, (window - 1) // 8 * 4 + 1)


def plan_windows(
    frames: int, window: int = DEFAULT_FRAMES, overlap: int | None = None
) -> list[tuple[int, int]]:
    """Split ``frames`` into overlapping windows ``[(start, stop), ...]`` for long jobs.

    Every window but the last is ``window`` frames long (4n+1), starts on a multiple of 4 and overlaps
    the previous one by ``overlap`` frames (4j+1: frame 0 plus j whole VAE groups, the kept head). The
    last window ends exactly at ``frames`` and is as short as it can be: the shortest 4n+1 that holds the
    ``overlap`` frames it shares with the previous window plus the frames still to make, so it may share
    up to 3 frames more than ``overlap`` (blended, generated) but keeps exactly ``overlap`` frames (see
    :func:`kept_heads`). A clip no longer than one window is one window (and must be 4n+1); a longer clip
    may have any length. ``overlap=None`` takes :func:`default_overlap`.
    """
    if not is_valid_frame_count(window):
        raise ValueError(f"window {window} is not 4n+1 (e.g. 33, 49, 81)")
    if overlap is None:
        overlap = default_overlap(window)
    if not is_valid_frame_count(overlap):
        raise ValueError(f"overlap {overlap} is not 4j+1 whole VAE groups (e.g. 1, 5, 9, 17)")
    if overlap >= window:
        raise ValueError(f"overlap {overlap} must be smaller than the window {window}")
    if frames <= window and not is_valid_frame_count(frames):
        raise ValueError(f"{frames} frames is not 4n+1")
    if frames <= window:
        return [(0, frames)]
    step = window - overlap
    windows = []
    start = 0
    while start + window < frames:
        windows.append((start, start + window))
        start += step
    rest = frames - start  # > overlap: the previous window ends before ``frames``
    windows.append((frames - ((rest - 1 + VAE_STRIDE_T - 1) // VAE_STRIDE_T * VAE_STRIDE_T + 1), frames))
    return windows


def kept_heads(windows: list[tuple[int, int]]) -> list[int]:
    """Frames at the head of each window kept from the previous window's output (0 for the first).

    The largest 4j+1 (frame 0 plus j whole VAE groups) within the frames a window shares with the
    previous one, so the kept context never shares a VAE group with generated frames.
    """
    heads = [0]
    for (_, stop), (start, _) in zip(windows, windows[1:], strict=False):
        shared = stop - start
        heads.append((shared - 1) // VAE_STRIDE_T * VAE_STRIDE_T + 1 if shared >= 1 else 0)
    return heads


@dataclass(frozen=True)
class Window:
    """Window ``index`` of ``count``: clip frames ``start .. stop - 1``. Its first ``head`` frames are kept
    from the output so far (KEEP, :func:`kept_heads`); its first ``shared`` frames are shared with the
    previous window (cross-faded when stitched). A job that fits one window is window 0 of 1."""

    index: int
    count: int
    start: int
    stop: int
    head: int
    shared: int

    @property
    def frames(self) -> slice:
        """The window's clip frames, for indexing a job's arrays."""
        return slice(self.start, self.stop)

    def mask(self, mask: np.ndarray) -> np.ndarray:
        """The mask the model gets for this window, bool [N, H, W] (True = GENERATE): the job's ``mask``
        over the window's frames with the kept head KEEP (the runner fills it with the output so far). The
        one definition the runner and the audit both use."""
        out = np.array(mask[self.frames], dtype=bool)
        out[: self.head] = False
        return out

    def as_dict(self) -> dict:
        """Where the window, its kept head and its blended frames lie (clip frame numbers, inclusive)."""
        return {
            "index": self.index,
            "frames": [self.start, self.stop - 1],
            "kept_head": [self.start, self.start + self.head - 1] if self.head else None,
            "blended": [self.start, self.start + self.shared - 1] if self.shared else None,
        }

    def describe(self) -> str:
        """One line: ``window 2/5: frames 64-144, kept head 64-80 (...), blended 64-80``."""
        text = f"window {self.index + 1}/{self.count}: frames {self.start}-{self.stop - 1}"
        if self.head:
            text += (
                f", kept head {self.start}-{self.start + self.head - 1} (output so far, KEEP), "
                f"blended {self.start}-{self.start + self.shared - 1}"
            )
        return text


@dataclass(frozen=True)
class WindowPlan:
    """The windows a job is generated in, in order (one window for a job that fits one)."""

    frames: int
    windows: tuple[Window, ...]

    @classmethod
    def of(cls, bounds, frames: int) -> WindowPlan:
        """The plan of a job of ``frames`` frames whose windows are ``bounds`` ``[(start, stop), ...]``
        (as :func:`plan_windows` makes and ``job.json`` stores; ``None``: one window, the whole clip)."""
        spans = [(int(a), int(b)) for a, b in bounds] if bounds else [(0, frames)]
        heads = kept_heads(spans)
        shared = [0] + [prev[1] - cur[0] for prev, cur in zip(spans, spans[1:], strict=False)]
        count = len(spans)
        windows = tuple(Window(i, count, a, b, heads[i], shared[i]) for i, (a, b) in enumerate(spans))
        return cls(frames, windows)

    @property
    def is_long(self) -> bool:
        """True for a long job: more than one window."""
        return len(self.windows) > 1

    def __len__(self) -> int:
        return len(self.windows)

    def __iter__(self):
        return iter(self.windows)

    def window(self, index: int | None) -> Window:
        """Window ``index`` (``None``: the first); an index outside the plan is an :class:`InputError`."""
        index = 0 if index is None else index
        if not 0 <= index < len(self.windows):
            count = len(self.windows)
            raise InputError(f"the job has {count} window(s), 0-{count - 1}", field="window", value=index)
        return self.windows[index]
