"""A tiny random WanVACEPipeline built offline, saved with ``save_pretrained`` for the real loading path.

Every component is the real diffusers / transformers class with a toy config: the VAE, transformer, UMT5
text encoder, a tokenizer built with the ``tokenizers`` library and the hub's UniPC flow scheduler.
Nothing is downloaded. 81 frames at 128x128 with 4 steps take about 2 s on 2 CPU threads.
"""

from __future__ import annotations

from pathlib import Path

from .models import COMMON

TEXT_DIM = 32
TINY_TRANSFORMER = dict(  # the published Wan2.1 VACE transformer config, shrunk
    COMMON,
    num_attention_heads=2,
    attention_head_dim=12,
    text_dim=TEXT_DIM,
    ffn_dim=32,
    num_layers=3,
    vace_layers=[0, 2],
)


def word_tokenizer(words: list[str], **special_tokens):
    """A word-level fast tokenizer (``tokenizers`` library): ``words[i]`` has id ``i``, whitespace splits,
    anything else is ``<unk>`` (which ``words`` must hold); ``special_tokens`` as ``PreTrainedTokenizerFast``
    takes them (``pad_token="<pad>"``, ...)."""
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    raw = Tokenizer(models.WordLevel(vocab={w: i for i, w in enumerate(words)}, unk_token="<unk>"))
    raw.pre_tokenizer = pre_tokenizers.Whitespace()
    return PreTrainedTokenizerFast(tokenizer_object=raw, **special_tokens)


def build_tiny_pipeline(seed: int = 0, experts: int = 1, boundary_ratio: float = 0.875):
    """Return a freshly initialised tiny ``WanVACEPipeline`` (fp32, CPU).

    ``experts=2``: a two-expert pipeline as Wan2.2 A14B is built: a second transformer (``transformer_2``,
    the same config, initialised from ``seed + 1``) and ``boundary_ratio``; every other component is the
    one-expert pipeline's of the same seed.
    """
    import torch
    from diffusers import (
        AutoencoderKLWan,
        UniPCMultistepScheduler,
        WanVACEPipeline,
        WanVACETransformer3DModel,
    )
    from transformers import UMT5Config, UMT5EncoderModel

    torch.manual_seed(seed)
    vae = AutoencoderKLWan(
        base_dim=3, z_dim=16, dim_mult=[1, 1, 1, 1], num_res_blocks=1, temperal_downsample=[False, True, True]
    )
    transformer = WanVACETransformer3DModel(**TINY_TRANSFORMER)
    text_encoder = UMT5EncoderModel(
        UMT5Config(
            vocab_size=64,
            d_model=TEXT_DIM,
            d_kv=8,
            d_ff=64,
            num_layers=1,
            num_heads=4,
            relative_attention_num_buckets=8,
        )
    ).eval()
    words = ["<pad>", "</s>", "<unk>", "a", "an", "the", "gun", "weapon", "man", "street", "empty"]
    words += ["red", "blue", "car", "sky", "tree", "bird", "gray", "video", "of", "in"]
    tokenizer = word_tokenizer(words, pad_token="<pad>", eos_token="</s>", unk_token="<unk>")
    scheduler = UniPCMultistepScheduler(
        prediction_type="flow_prediction", use_flow_sigmas=True, flow_shift=3.0
    )
    second = {}
    if experts == 2:
        torch.manual_seed(seed + 1)
        second = {
            "transformer_2": WanVACETransformer3DModel(**TINY_TRANSFORMER),
            "boundary_ratio": boundary_ratio,
        }
    return WanVACEPipeline(
        tokenizer=tokenizer,
        text_encoder=text_encoder,
        vae=vae,
        transformer=transformer,
        scheduler=scheduler,
        **second,
    )


def save_tiny_pipeline(folder: str | Path, seed: int = 0, experts: int = 1) -> Path:
    """Build the tiny pipeline and ``save_pretrained`` it to ``folder`` (a folder ``--model`` accepts)."""
    folder = Path(folder)
    build_tiny_pipeline(seed, experts).save_pretrained(folder)
    return folder
