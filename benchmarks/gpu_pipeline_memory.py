"""Peak GPU memory of a whole `vacelab run` (text encoder, transformer, VAE decode) per offload mode.

`gpu_step.py` measures the transformer alone. This script answers the user's question instead: does the
1.3B job at 81x480x832 fit my GPU with `--offload group`? It builds the full-size Wan2.1 VACE 1.3B pipeline
(`--model a14b`: Wan2.2 VACE-Fun A14B, two 14B experts and the 0.875 boundary) with random weights from
the published configs (the VACE transformer, the UMT5-XXL text encoder, the Wan
VAE; a word-level tokenizer stands in for UMT5's, and the pipeline pads every prompt to the same 512
tokens either way), prepares an 81x480x832 inpaint job from the bundled sample, and runs it through
vacelab's own path (`place_pipeline` + `run_job`, 2 steps) once per mode. Per mode it prints:

  peak allocated   torch.cuda.max_memory_allocated over the run, as run.json records it (prompt encoding,
                   denoising, VAE decode, paste-back)
  peak reserved    the caching allocator's peak: what the GPU must really hold, CUDA context not included
  estimate         vacelab's own preflight estimate for the mode (vacelab.generation.memory)
  seconds          per stage, from run.json

Nothing is downloaded. `--tiny` runs the same path with tiny configs on CPU (offload modes need an
accelerator there, so only `none`) to check the script before spending GPU time. Without CUDA and without
`--tiny` it exits 0 with a message. On a GPU machine without the stack, carry the wheels (see
docs/performance.md) and run from the repository root with PYTHONPATH pointing at them.
"""

from __future__ import annotations

import argparse
import copy
import gc
import json
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from vacelab.generation.settings import MODEL_ALIASES  # noqa: E402 - whose sizes the estimate uses
from vacelab.testing.models import (  # noqa: E402 - the same published configs as gpu_step.py
    CONFIGS,
    UMT5_TINY,
    UMT5_XXL,
    VAE_TINY,
    build_transformer,
    default_dtype,
)
from vacelab.testing.tiny import word_tokenizer  # noqa: E402 - UMT5's own tokenizer cannot be downloaded

MODES = ("none", "model", "group", "group+tiling", "sequential+tiling")
GIB = 2**30
PROMPT = "an empty street at dusk"


def build_pipeline(tiny: bool, device: str, experts: int = 1):
    """The full-size (or tiny) WanVACEPipeline with random weights, on the CPU, dtypes as load_pipeline
    gives them on a GPU: bf16 (fp32 islands kept) but the VAE in fp32. The random numbers are drawn on
    ``device`` (a CPU draws 7.8 B of them single-threaded, for minutes) and the weights moved to the CPU."""
    import torch
    from diffusers import AutoencoderKLWan, UniPCMultistepScheduler, WanVACEPipeline
    from transformers import UMT5Config, UMT5EncoderModel

    dtype = torch.float32 if tiny else torch.bfloat16
    torch.manual_seed(0)
    config = CONFIGS["tiny" if tiny else "1.3b" if experts == 1 else "a14b"]
    transformer = build_transformer(config, device, dtype=dtype).to("cpu")
    second = {}
    if experts == 2:  # Wan2.2 A14B: the low-noise expert and the boundary of the published model_index.json
        second = {"transformer_2": build_transformer(config, device, dtype=dtype, seed=1).to("cpu")}
        second["boundary_ratio"] = 0.875
    # bf16 throughout, as transformers loads UMT5 in bf16 (no fp32 islands)
    with default_dtype(dtype), torch.device("meta"):
        text_encoder = UMT5EncoderModel(UMT5Config(**(UMT5_TINY if tiny else UMT5_XXL)))
    text_encoder = text_encoder.to_empty(device="cpu").eval()
    text_encoder.tie_weights()  # to_empty untied embed_tokens from shared: 2.1 GB UMT5 does not hold
    with torch.no_grad():  # N(0, 0.02) everywhere: memory and time do not depend on the values
        for param in text_encoder.parameters():
            param.copy_(torch.randn(param.shape, device=device, dtype=dtype).mul_(0.02))
    if device == "cuda":
        torch.cuda.empty_cache()
    vae = AutoencoderKLWan(**(VAE_TINY if tiny else {})).eval()
    scheduler = UniPCMultistepScheduler(
        prediction_type="flow_prediction", use_flow_sigmas=True, flow_shift=3.0
    )
    words = ["<pad>", "</s>", "<unk>", *PROMPT.split()]  # ids below every vocab size used here
    pipe = WanVACEPipeline(
        tokenizer=word_tokenizer(words, pad_token="<pad>", eos_token="</s>", unk_token="<unk>"),
        text_encoder=text_encoder,
        vae=vae,
        transformer=transformer,
        scheduler=scheduler,
        **second,
    )
    pipe.set_progress_bar_config(disable=True)
    return pipe


def measure_mode(base, job, mode: str, device: str, out: Path, steps: int, hub_id: str) -> dict:
    """One `vacelab run` of ``job`` on a copy of ``base`` placed as ``mode`` says."""
    import torch

    from vacelab.generation.memory import estimate_memory
    from vacelab.generation.pipeline import place_pipeline
    from vacelab.generation.run import run_job
    from vacelab.generation.settings import RunSettings

    offload, _, tiling = mode.partition("+")
    settings = RunSettings(
        prompt=PROMPT, steps=steps, seed=0, device=device, offload=offload, vae_tiling=bool(tiling)
    )
    pipe = copy.deepcopy(base)  # offload hooks stay on a pipeline: each mode gets a fresh copy
    loaded = place_pipeline(pipe, settings)
    loaded.model = "random weights, published configs (benchmark)"
    start = time.perf_counter()
    result = run_job(job, out / mode, settings, pipeline=loaded)
    row = {"mode": mode, "seconds": round(time.perf_counter() - start, 2), "stages_s": result.run["timings"]}
    peak = result.run["memory"].get("accelerator_peak_bytes")
    if peak is not None:
        row["peak_allocated_gib"] = peak / GIB
        row["peak_reserved_gib"] = torch.cuda.max_memory_reserved() / GIB
    estimate = estimate_memory(hub_id, job.geometry, dtype_bytes=2, vae_tiling=bool(tiling))
    row["estimate_gib"] = estimate.per_mode[offload] / GIB
    del pipe, loaded, result
    gc.collect()
    if device == "cuda":
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats()
    return row


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tiny", action="store_true", help="tiny configs on CPU: checks the script")
    parser.add_argument(
        "--model", choices=["1.3b", "a14b"], default="1.3b", help="a14b: Wan2.2 A14B, two 14B experts"
    )
    parser.add_argument("--modes", default=",".join(MODES), help=f"comma list from {', '.join(MODES)}")
    parser.add_argument("--steps", type=int, default=2)
    parser.add_argument("--out", type=Path, default=None, help="write the figures as JSON here")
    args = parser.parse_args(argv)
    modes = [m for m in args.modes.split(",") if m]
    if unknown := set(modes) - set(MODES):
        parser.error(f"--modes: unknown {', '.join(sorted(unknown))}; choose from {', '.join(MODES)}")

    import torch

    if not args.tiny and not torch.cuda.is_available():
        print("gpu_pipeline_memory: no CUDA device here, nothing measured (use --tiny to check the script)")
        return 0
    device = "cpu" if args.tiny else "cuda"
    if args.tiny:
        modes = [m for m in modes if m.partition("+")[0] == "none"] or ["none"]  # offload needs a GPU

    from vacelab.sample import sample_path
    from vacelab.tasks import prepare

    size, frames, bbox = ("112x64", 9, "40,16,88,48") if args.tiny else ("480p", 81, "300,150,560,370")
    job = prepare("inpaint", video=str(sample_path()), bbox=bbox, size=size, frames=frames)
    start = time.perf_counter()
    experts = 2 if args.model == "a14b" else 1
    base = build_pipeline(args.tiny, device, experts)
    hub_id = MODEL_ALIASES["2.2-a14b" if experts == 2 else "1.3b"]
    res = {
        "device": torch.cuda.get_device_name() if device == "cuda" else "cpu",
        "torch": torch.__version__,
        "job": {"task": job.task, **job.geometry.as_dict()},
        "steps": args.steps,
        "build_s": round(time.perf_counter() - start, 1),
        "parameters_b": {
            name: sum(p.numel() for p in getattr(base, name).parameters()) / 1e9
            for name in ("transformer", "transformer_2", "text_encoder", "vae")
            if getattr(base, name, None) is not None
        },
        "modes": [],
    }
    print(f"built in {res['build_s']} s: {res['parameters_b']}", flush=True)
    with tempfile.TemporaryDirectory(prefix="vacelab-memory-") as scratch:
        for mode in modes:
            try:
                row = measure_mode(base, job, mode, device, Path(scratch), args.steps, hub_id)
            except Exception as exc:  # one mode failing (e.g. out of memory) leaves the others measured
                row = {"mode": mode, "error": f"{type(exc).__name__}: {exc}"[:300]}
            res["modes"].append(row)
            print(json.dumps(row), flush=True)
            if args.out:
                args.out.parent.mkdir(parents=True, exist_ok=True)
                args.out.write_text(json.dumps(res, indent=2, default=str))
    print(f"\nwhole {args.model} pipeline, {res['job']}, {args.steps} steps, {res['device']}")
    print(f"{'mode':<20}{'allocated GiB':>15}{'reserved GiB':>14}{'estimate GiB':>14}{'seconds':>9}")
    for row in res["modes"]:
        if "error" in row:
            print(f"{row['mode']:<20} FAILED: {row['error'][:90]}")
            continue
        cells = [row.get("peak_allocated_gib", float("nan")), row.get("peak_reserved_gib", float("nan"))]
        print(
            f"{row['mode']:<20}{cells[0]:15.2f}{cells[1]:14.2f}{row['estimate_gib']:14.2f}{row['seconds']:9.1f}"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
