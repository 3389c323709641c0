"""Tiny randomly initialised control annotators, saved offline as the hub ships them (model and image
processor): Depth Anything (a 4-layer DINOv2 backbone), ViTPose (COCO-17 heatmaps) and an RT-DETR person
detector (a 4-stage ResNet backbone), each well under 0.2 M parameters."""

from __future__ import annotations

from pathlib import Path


def save_tiny_depth(folder: str | Path, seed: int = 0) -> Path:
    """Depth Anything V2's architecture at 56 px (patch 14), with its ``DPTImageProcessor`` settings."""
    import torch
    from transformers import (
        DepthAnythingConfig,
        DepthAnythingForDepthEstimation,
        Dinov2Config,
        DPTImageProcessor,
    )

    torch.manual_seed(seed)
    backbone = Dinov2Config(
        hidden_size=32, num_hidden_layers=4, num_attention_heads=2, intermediate_size=64, image_size=56,
        patch_size=14, out_features=["stage1", "stage2", "stage3", "stage4"], reshape_hidden_states=False,
    )  # fmt: skip
    config = DepthAnythingConfig(
        backbone_config=backbone, reassemble_hidden_size=32, neck_hidden_sizes=[8, 16, 32, 32],
        fusion_hidden_size=16, head_hidden_size=8,
    )  # fmt: skip
    DepthAnythingForDepthEstimation(config).eval().save_pretrained(folder)
    processor = DPTImageProcessor(
        size={"height": 56, "width": 56}, keep_aspect_ratio=True, ensure_multiple_of=14, do_pad=False
    )  # the hub model's settings (518 px, aspect kept, multiples of 14) at 56 px
    processor.save_pretrained(folder)
    return Path(folder)


def save_tiny_vitpose(folder: str | Path, seed: int = 0) -> Path:
    """ViTPose (simple decoder, 17 COCO keypoints) on 64x48 person crops, with its image processor."""
    import torch
    from transformers import (
        VitPoseBackboneConfig,
        VitPoseConfig,
        VitPoseForPoseEstimation,
        VitPoseImageProcessor,
    )

    torch.manual_seed(seed)
    backbone = VitPoseBackboneConfig(
        hidden_size=32, num_hidden_layers=2, num_attention_heads=2, mlp_ratio=2, image_size=[64, 48],
        patch_size=[16, 16], out_indices=[2],
    )  # fmt: skip
    config = VitPoseConfig(backbone_config=backbone, num_labels=17)
    VitPoseForPoseEstimation(config).eval().save_pretrained(folder)
    VitPoseImageProcessor(size={"height": 64, "width": 48}).save_pretrained(folder)
    return Path(folder)


def save_tiny_person_detector(folder: str | Path, seed: int = 0) -> Path:
    """RT-DETR with two classes (``person``, ``car``) at 64 px. Its random weights find boxes of both
    classes at scores near 0.33; which ones depends on the frame."""
    import torch
    from transformers import RTDetrConfig, RTDetrForObjectDetection, RTDetrImageProcessor, RTDetrResNetConfig

    torch.manual_seed(seed)
    backbone = RTDetrResNetConfig(
        embedding_size=8, hidden_sizes=[8, 16, 16, 32], depths=[1, 1, 1, 1], layer_type="basic",
        out_features=["stage2", "stage3", "stage4"],
    )  # fmt: skip
    config = RTDetrConfig(
        backbone_config=backbone, use_pretrained_backbone=False, encoder_in_channels=[16, 16, 32],
        feat_strides=[8, 16, 32], encoder_hidden_dim=16, encoder_ffn_dim=32, encoder_attention_heads=2,
        d_model=16, decoder_in_channels=[16, 16, 16], decoder_ffn_dim=32, decoder_attention_heads=2,
        decoder_layers=1, num_queries=10, num_labels=2, id2label={0: "person", 1: "car"},
    )  # fmt: skip
    RTDetrForObjectDetection(config).eval().save_pretrained(folder)
    RTDetrImageProcessor(size={"height": 64, "width": 64}).save_pretrained(folder)
    return Path(folder)
