"""Models with random weights for vacelab's tests and benchmarks (nothing here is used by a run).

- :mod:`vacelab.testing.tiny`: a tiny ``WanVACEPipeline`` built offline in well under a second, saved
  with ``save_pretrained`` so that tests load it through the real ``from_pretrained`` path;
- :mod:`vacelab.testing.sam`: tiny SAM 2 / SAM 3 video models for the tracking tests;
- :mod:`vacelab.testing.annotators`: tiny Depth Anything, ViTPose and RT-DETR models (with their image
  processors) for the depth and pose control tests;
- :mod:`vacelab.testing.models`: the published Wan2.1 VACE transformer and UMT5 configs built with random
  weights, one guided step and its FLOPs (the GPU benchmarks and their tests).
"""
