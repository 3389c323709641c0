"""Random-weight Wan2.1 VACE models at their published sizes, and the arithmetic of one step.

Shared by the GPU benchmarks (``benchmarks/gpu_step.py``, ``benchmarks/gpu_pipeline_memory.py``) and the
tests that check them: the transformer configs of the public checkpoints (``transformer/config.json`` of
``Wan-AI/Wan2.1-VACE-{1.3B,14B}-diffusers``) and a tiny one, the UMT5 encoder configs, builders that make
the models with random weights (nothing is downloaded), one guided denoising step, and the FLOPs of a
transformer forward counted layer by layer.
"""

from __future__ import annotations

import contextlib

# Wan2.1 VACE transformer configs (Wan-AI/Wan2.1-VACE-{1.3B,14B}-diffusers transformer/config.json).
COMMON = dict(
    patch_size=(1, 2, 2),
    attention_head_dim=128,
    in_channels=16,
    out_channels=16,
    text_dim=4096,
    freq_dim=256,
    cross_attn_norm=True,
    qk_norm="rms_norm_across_heads",
    eps=1e-6,
    rope_max_seq_len=1024,
    vace_in_channels=96,
)
CONFIGS = {
    "1.3b": dict(
        COMMON, num_attention_heads=12, ffn_dim=8960, num_layers=30, vace_layers=list(range(0, 30, 2))
    ),
    "14b": dict(
        COMMON, num_attention_heads=40, ffn_dim=13824, num_layers=40, vace_layers=list(range(0, 40, 5))
    ),
    # Wan2.2 VACE-Fun A14B: two experts, each of this architecture (VACE blocks every 5th layer, as the
    # 14B), with their own weights
    "a14b": dict(
        COMMON, num_attention_heads=40, ffn_dim=13824, num_layers=40, vace_layers=list(range(0, 40, 5))
    ),
    "tiny": dict(
        COMMON,
        num_attention_heads=2,
        attention_head_dim=16,
        text_dim=32,
        ffn_dim=64,
        num_layers=4,
        vace_layers=[0, 2],
    ),
}
GUIDANCE = 5.0  # the guidance of one guided step (guided_step)

UMT5_XXL = dict(  # google/umt5-xxl, the encoder Wan2.1 ships (text_encoder/config.json)
    vocab_size=256384,
    d_model=4096,
    d_kv=64,
    d_ff=10240,
    num_layers=24,
    num_heads=64,
    relative_attention_num_buckets=32,
    relative_attention_max_distance=128,
    feed_forward_proj="gated-gelu",
    tie_word_embeddings=False,
)
UMT5_TINY = dict(UMT5_XXL, vocab_size=64, d_model=32, d_kv=8, d_ff=64, num_layers=1, num_heads=4)
VAE_TINY = dict(base_dim=8, z_dim=16, dim_mult=[1, 1, 1, 1], num_res_blocks=1)  # Wan VAE: the defaults


def forward_flops(cfg: dict, tokens: int, text_len: int, batch: int = 1) -> float:
    """Multiply-add FLOPs (x2) of one transformer forward: every linear layer and both attentions."""
    d = cfg["num_attention_heads"] * cfg["attention_head_dim"]
    n, t, f = tokens, text_len, cfg["ffn_dim"]
    patch = 1 * 2 * 2
    block = (
        2 * n * d * d * 4  # self-attention q, k, v, out projections
        + 2 * 2 * n * n * d  # self-attention QK^T and AV
        + 2 * n * d * d * 2
        + 2 * t * d * d * 2  # cross-attention q, out on video tokens; k, v on text tokens
        + 2 * 2 * n * t * d  # cross-attention QK^T and AV
        + 2 * n * d * f * 2  # feed-forward
    )
    vace = len(cfg["vace_layers"])
    total = (
        (cfg["num_layers"] + vace) * block
        + vace * 2 * n * d * d
        + 2 * n * d * d  # VACE proj_out per block, proj_in in block 0
        + 2 * n * d * patch * (cfg["in_channels"] + cfg["vace_in_channels"])  # patch embeddings
        + 2 * n * d * patch * cfg["out_channels"]  # output projection
        + 2 * t * (cfg["text_dim"] * d + d * d)  # text embedder
        + 2 * (cfg["freq_dim"] * d + d * d + d * 6 * d)  # time embedder and its projection
    )
    return float(batch * total)


def floor_ops(cfg: dict, tokens: int, text_len: int) -> list[tuple[str, str, tuple, int]]:
    """The matmuls and attentions of one transformer forward: (name, kind, shape, count per forward).

    ``linear`` shapes are (rows, in, out); ``attention`` shapes are (heads, query len, key len, head dim).
    Together they hold all of ``forward_flops`` but the patch, text and time embeddings (under 1%).
    """
    heads, hd = cfg["num_attention_heads"], cfg["attention_head_dim"]
    d, n, t, f = heads * hd, tokens, text_len, cfg["ffn_dim"]
    vace = len(cfg["vace_layers"])
    blocks = cfg["num_layers"] + vace
    return [
        # self q, k, v, out and cross q, out per block; VACE proj_out per VACE block, proj_in once
        ("linear video d->d", "linear", (n, d, d), 6 * blocks + vace + 1),
        ("linear text d->d", "linear", (t, d, d), 2 * blocks),  # cross-attention k, v on the text
        ("linear ffn d->f", "linear", (n, d, f), blocks),
        ("linear ffn f->d", "linear", (n, f, d), blocks),
        ("self-attention", "attention", (heads, n, n, hd), blocks),
        ("cross-attention", "attention", (heads, n, t, hd), blocks),
    ]


def op_flops(kind: str, shape: tuple) -> float:
    if kind == "linear":
        rows, fan_in, fan_out = shape
        return 2.0 * rows * fan_in * fan_out
    heads, lq, lk, hd = shape
    return 4.0 * heads * lq * lk * hd  # QK^T and AV


@contextlib.contextmanager
def default_dtype(dtype):
    """Modules built inside get parameters of ``dtype`` directly (a 14B model built in fp32 needs 69 GB)."""
    import torch

    previous = torch.get_default_dtype()
    torch.set_default_dtype(dtype)
    try:
        yield
    finally:
        torch.set_default_dtype(previous)


def build_transformer(cfg: dict, device, dtype=None, seed: int = 0):
    """Random-weight transformer on ``device``; a ``dtype`` casts it as ``from_pretrained`` would."""
    import torch
    from diffusers import WanVACETransformer3DModel

    from vacelab.generation.profiles import cast_like_from_pretrained

    torch.manual_seed(seed)
    with default_dtype(dtype or torch.float32), torch.device(device):
        model = WanVACETransformer3DModel(**cfg)
    if dtype is not None:
        cast_like_from_pretrained(model, dtype)  # the _keep_in_fp32_modules back to fp32
    return model.eval().requires_grad_(False)


def make_inputs(cfg: dict, latent_thw: tuple, text_len: int, device, seed: int = 0) -> dict:
    import torch

    gen = torch.Generator(device="cpu").manual_seed(seed)
    t, h, w = latent_thw
    return dict(
        x=torch.randn(1, cfg["in_channels"], t, h, w, generator=gen).to(device),
        control=torch.randn(1, cfg["vace_in_channels"], t, h, w, generator=gen).to(device),
        cond=torch.randn(1, text_len, cfg["text_dim"], generator=gen).to(device),
        uncond=torch.randn(1, text_len, cfg["text_dim"], generator=gen).to(device),
        t=torch.full((1,), 500.0, device=device),
    )


def guided_step(model, inp: dict, dtype, batched: bool):
    """The transformer work of one pipeline step: cond and uncond passes, combined with guidance 5."""
    import torch

    x, control, cond, uncond = (inp[k].to(dtype) for k in ("x", "control", "cond", "uncond"))
    t = inp["t"]

    def forward(copies: int, text):
        return model(
            hidden_states=torch.cat([x] * copies),
            timestep=torch.cat([t] * copies),
            encoder_hidden_states=text,
            control_hidden_states=torch.cat([control] * copies),
            return_dict=False,
        )[0]

    if batched:
        noise_cond, noise_uncond = forward(2, torch.cat([cond, uncond])).chunk(2)
    else:
        noise_cond, noise_uncond = forward(1, cond), forward(1, uncond)
    return noise_uncond + GUIDANCE * (noise_cond - noise_uncond)
