"""Tiny randomly initialised SAM 2 video model (about 1.4 M parameters, 128 px), built and saved offline."""

from __future__ import annotations

from pathlib import Path

from .tiny import word_tokenizer

IMAGE_SIZE = 128


def tracker_settings(image_size: int, patch_size: int, hidden: int) -> dict:
    """The tiny SAM 2-style tracker (prompt encoder, mask decoder, memory) shared by both models' configs."""
    grid = image_size // patch_size
    return dict(
        prompt_encoder_config=dict(hidden_size=hidden, image_size=image_size, patch_size=patch_size),
        mask_decoder_config=dict(
            hidden_size=hidden, mlp_dim=128, num_attention_heads=2, iou_head_hidden_dim=hidden
        ),
        image_size=image_size,
        num_maskmem=3,
        memory_attention_hidden_size=hidden,
        memory_attention_num_layers=1,
        memory_attention_feed_forward_hidden_size=128,
        memory_attention_rope_feat_sizes=[grid, grid],
        memory_encoder_hidden_size=hidden,
        memory_encoder_output_channels=64,
        mask_downsampler_embed_dim=hidden,
        memory_fuser_embed_dim=hidden,
        memory_fuser_intermediate_dim=128,
        memory_fuser_num_layers=1,
    )


def tiny_sam2_config():
    from transformers import Sam2VideoConfig

    s, hidden = IMAGE_SIZE, 128  # hidden must be a multiple of the memory width (64, fixed in transformers)
    return Sam2VideoConfig(
        vision_config=dict(
            model_type="sam2_vision_model",
            backbone_config=dict(
                model_type="sam2_hiera_det_model",
                image_size=[s, s],
                hidden_size=16,
                blocks_per_stage=[1, 1, 2, 1],
                embed_dim_per_stage=[16, 32, 64, 128],
                num_attention_heads_per_stage=[1, 1, 1, 1],
                window_size_per_stage=[8, 4, 4, 4],
                global_attention_blocks=[3],
                window_positional_embedding_background_size=[4, 4],
            ),
            backbone_channel_list=[128, 64, 32, 16],
            backbone_feature_sizes=[[s // 4, s // 4], [s // 8, s // 8], [s // 16, s // 16]],
            fpn_hidden_size=hidden,
        ),
        **tracker_settings(s, 16, hidden),
    )


def save_tiny_sam2(folder: str | Path, seed: int = 0) -> Path:
    """Build the tiny model with a fixed seed and ``save_pretrained`` it to ``folder``."""
    import torch
    from transformers import Sam2VideoModel

    torch.manual_seed(seed)
    model = Sam2VideoModel(tiny_sam2_config()).eval()
    model.save_pretrained(folder)
    return Path(folder)


SAM3_IMAGE_SIZE = 112  # 8 x 8 patches of 14 px
SAM3_WORDS = ["<pad>", "<unk>", "<s>", "</s>", "red", "car", "gun", "hand", "beam", "the", "a"]


def tiny_sam3_config(max_objects: int = 2):
    """A tiny SAM 3 video config whose random detector reports (at most ``max_objects``) objects."""
    from transformers import Sam3VideoConfig

    s, grid, hidden = SAM3_IMAGE_SIZE, SAM3_IMAGE_SIZE // 14, 128
    vision = dict(
        model_type="sam3_vision_model",
        backbone_config=dict(
            model_type="sam3_vit_model",
            hidden_size=32,
            intermediate_size=64,
            num_hidden_layers=2,
            num_attention_heads=2,
            image_size=s,
            patch_size=14,
            window_size=4,
            global_attn_indexes=[1],
            pretrain_image_size=s,
        ),
        fpn_hidden_size=hidden,
        backbone_feature_sizes=[[4 * grid, 4 * grid], [2 * grid, 2 * grid], [grid, grid]],
    )
    small = dict(hidden_size=hidden, num_layers=1, num_attention_heads=2, intermediate_size=64)
    detector = dict(
        vision_config=vision,
        text_config=dict(
            model_type="clip_text_model",
            vocab_size=len(SAM3_WORDS),
            hidden_size=32,
            intermediate_size=64,
            projection_dim=32,
            num_hidden_layers=1,
            num_attention_heads=2,
            max_position_embeddings=32,
            pad_token_id=0,
            bos_token_id=2,
            eos_token_id=3,
        ),
        geometry_encoder_config=small,
        detr_encoder_config=small,
        detr_decoder_config=dict(small, num_queries=4),
        mask_decoder_config=dict(hidden_size=hidden, num_upsampling_stages=3, num_attention_heads=2),
    )
    tracker = dict(
        vision_config=vision,
        **tracker_settings(s, 14, hidden),
    )
    # thresholds at 0 so random weights detect something; the object cap keeps it small and fast
    return Sam3VideoConfig(
        detector_config=detector,
        tracker_config=tracker,
        low_res_mask_size=4 * grid,
        score_threshold_detection=0.0,
        new_det_thresh=0.0,
        hotstart_delay=0,
        max_num_objects=max_objects,
    )


def save_tiny_sam3(folder: str | Path, seed: int = 0) -> Path:
    """Tiny SAM 3 video model plus a word-level tokenizer (``tokenizers`` library), saved to ``folder``."""
    import torch
    from transformers import Sam3VideoModel

    torch.manual_seed(seed)
    Sam3VideoModel(tiny_sam3_config()).eval().save_pretrained(folder)
    tokenizer = word_tokenizer(
        SAM3_WORDS, pad_token="<pad>", unk_token="<unk>", bos_token="<s>", eos_token="</s>"
    )
    tokenizer.save_pretrained(folder)
    return Path(folder)
