"""`vacelab run JOB --prompt TEXT`: generate a job folder with WanVACEPipeline (see docs/run.md)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from ..generation.presets import describe_presets
from ..generation.settings import COLOR_METHODS, LONG_JOB_COLOR_METHOD, MODEL_ALIASES, RunSettings

DEFAULTS = RunSettings()


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "run",
        help="generate a job folder with WanVACEPipeline",
        description="Generate the edited video for a job folder. Writes out_video.mp4, out_video.gif, "
        "compare.mp4, arrays/video.npy and run.json into --out.",
    )
    p.add_argument("job", type=Path, help="job folder written by `vacelab prepare`")
    p.add_argument("--out", type=Path, help="results folder (new or empty; default: JOB-run, JOB-run-2, ...)")
    p.add_argument(
        "--export",
        type=Path,
        metavar="PATH",
        help="then put the result back into the source video (inpaint/remove): PATH.mp4, PATH.mov or a new "
        "folder of PNG frames, as `vacelab export` does",
    )
    p.add_argument("--prompt", help="what the result should show (default: the job's suggested prompt)")
    p.add_argument(
        "--negative-prompt", help="default: Wan's standard negative prompt + the job's suggested terms"
    )
    p.add_argument(
        "--model",
        default=DEFAULTS.model,
        help=f"hub id, local diffusers folder, or {' / '.join(MODEL_ALIASES)} (default {DEFAULTS.model})",
    )
    # steps, guidance, shift and scheduler default to None here so that a --preset knows what was set
    p.add_argument("--steps", type=int, help=f"denoising steps (default {DEFAULTS.steps})")
    p.add_argument("--guidance", type=float, help=f"CFG scale (default {DEFAULTS.guidance})")
    p.add_argument(
        "--guidance-2",
        type=float,
        help="two-expert models (--model 2.2-a14b): CFG scale of the low-noise expert (default --guidance)",
    )
    p.add_argument(
        "--boundary",
        type=float,
        help="two-expert models: where the low-noise expert takes over, 0 < R < 1 of the training "
        "timesteps (default the model's boundary_ratio, 0.875 for 2.2-a14b)",
    )
    p.add_argument("--shift", type=float, help="scheduler flow shift (default 3.0 up to 480p, 5.0 at 720p)")
    p.add_argument(
        "--scheduler",
        choices=RunSettings.choices("scheduler"),
        help="unipc: diffusers' Wan default; euler: first-order flow Euler on the same timesteps, as "
        f"step-distilled LoRAs are sampled (default {DEFAULTS.scheduler})",
    )
    p.add_argument(
        "--preset",
        metavar="NAME",
        help="a step-distilled LoRA's recipe (lossy; bring the LoRA with --lora): fills the options it names "
        f"that you did not set. {describe_presets()}. Sources: docs/performance.md",
    )
    p.add_argument(
        "--seed", type=int, default=DEFAULTS.seed, help="noise seed (default %(default)s, as VACE)"
    )
    p.add_argument(
        "--conditioning-scale",
        type=float,
        default=DEFAULTS.conditioning_scale,
        help="VACE hint strength (default %(default)s)",
    )
    p.add_argument(
        "--dtype",
        choices=RunSettings.choices("dtype"),
        default=DEFAULTS.dtype,
        help="auto: bf16 on GPU, fp32 on CPU",
    )
    p.add_argument("--device", default=DEFAULTS.device, help="auto, cuda, cuda:1, cpu ... (default auto)")
    p.add_argument(
        "--offload",
        choices=RunSettings.choices("offload"),
        default=DEFAULTS.offload,
        help="CPU offload mode (default %(default)s; see docs/performance.md)",
    )
    p.add_argument("--vae-tiling", action="store_true", help="decode the VAE in tiles (less memory)")
    p.add_argument("--attention", help="diffusers attention backend, e.g. flash, _native_cudnn, sage")
    p.add_argument("--compile", action="store_true", help="torch.compile the repeated transformer blocks")
    p.add_argument(
        "--fast",
        action="store_true",
        help="exact speed-ups (bf16, best attention, compile); the compile costs "
        "~25 s once per process: pays off for 14B, and for 1.3B from the second job of a batch",
    )
    p.add_argument(
        "--fp8",
        action="store_true",
        help="lossy: FP8 weights and activations in the DiT and VACE blocks (torchao; CUDA GPUs of compute "
        "capability 8.9+: Ada, Hopper, Blackwell; pip install 'vacelab[gpu]')",
    )
    p.add_argument(
        "--cache",
        type=float,
        default=DEFAULTS.cache,
        metavar="R",
        help="lossy step cache made for VACE: skip a step while the accumulated relative change of the "
        "first block's input stays below R (e.g. 0.1; default 0: off). Skipped steps go into run.json",
    )
    p.add_argument(
        "--parallel",
        type=int,
        default=DEFAULTS.parallel,
        metavar="N",
        help="one job over N ranks (context parallel): N GPUs, or N CPU processes (gloo) with --device cpu",
    )
    p.add_argument(
        "--parallel-mode",
        choices=RunSettings.choices("parallel_mode"),
        default=DEFAULTS.parallel_mode,
        help="how attention is split: ulysses (N divides the heads: 12 for 1.3B, 40 for 14B), ring "
        "(needs a flash/cuDNN backend), auto (ulysses where it can; default)",
    )
    p.add_argument(
        "--window-prompts",
        type=window_prompts,
        default=[],
        metavar="FILE",
        help="long jobs: one prompt per window, a line each (or a TOML file with prompts = [...]); fewer "
        "than the windows: the last repeats. Recorded in run.json",
    )
    p.add_argument(
        "--lora",
        action="append",
        default=[],
        metavar="FILE[:SCALE]",
        help="LoRA weights (repeatable), into every expert",
    )
    for option, expert in (
        ("--lora-high", "transformer, the high-noise"),
        ("--lora-low", "transformer_2, the low-noise"),
    ):
        p.add_argument(
            option,
            action="append",
            default=[],
            metavar="FILE[:SCALE]",
            help=f"two-expert models: LoRA weights into {expert} expert only (repeatable)",
        )
    p.add_argument(
        "--composite",
        action=argparse.BooleanOptionalAction,
        default=DEFAULTS.composite,
        help="KEEP pixels = source exactly, seam band inside GENERATE (default on)",
    )
    p.add_argument(
        "--feather", type=int, default=DEFAULTS.feather, help="seam band width, 0-16 px (default 16)"
    )
    p.add_argument(
        "--color-match",
        nargs="?",
        const=True,
        default=False,
        type=color_method,
        metavar="METHOD",
        help="match the generated region's colours to the kept pixels at its border; a long job's later "
        f"windows to the previous one on their shared frames with METHOD ({', '.join(COLOR_METHODS)}; "
        f"default {LONG_JOB_COLOR_METHOD})",
    )
    p.add_argument(
        "--vace-end",
        type=float,
        default=DEFAULTS.vace_end,
        help="VACE control for the first fraction F of steps (default %(default)s: every step)",
    )
    p.add_argument(
        "--mask-encoding",
        choices=RunSettings.choices("mask_encoding"),
        default=DEFAULTS.mask_encoding,
        help="reference: diffusers' nearest-exact read; aligned (experimental): each latent's own VAE group",
    )
    p.set_defaults(handler=handle)


def color_method(text: str) -> str:
    """``--color-match METHOD``: one of the colour-matching methods."""
    if text not in COLOR_METHODS:
        raise argparse.ArgumentTypeError(f"choose from {', '.join(COLOR_METHODS)}, got {text!r}")
    return text


def window_prompts(path: str) -> list[str]:
    """``--window-prompts FILE``: its non-empty lines, or ``prompts = [...]`` of a ``.toml`` file."""
    import tomllib

    try:
        text = Path(path).read_text(encoding="utf-8")
        prompts = tomllib.loads(text).get("prompts") if path.endswith(".toml") else text.splitlines()
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise argparse.ArgumentTypeError(f"{path}: cannot be read ({exc})") from None
    if not isinstance(prompts, list) or not all(isinstance(p, str) for p in prompts):
        raise argparse.ArgumentTypeError(f'{path}: expected prompts = ["...", ...]')
    prompts = [p.strip() for p in prompts if p.strip()]
    if not prompts:
        raise argparse.ArgumentTypeError(f"{path}: holds no prompt")
    return prompts


def settings_from_args(args: argparse.Namespace) -> RunSettings:
    """The RunSettings named by the parsed options (field names = option names), ``--preset`` applied
    to the options not given."""
    values = {name: getattr(args, name) for name in RunSettings.field_types() if hasattr(args, name)}
    values["prompt"] = values.get("prompt") or ""
    given = {name: value for name, value in values.items() if value is not None}  # unset options: None
    return RunSettings(**given).with_preset(explicit=given)


def default_out(job: Path) -> Path:
    """``JOB-run``, or the first of ``JOB-run-2``, ``JOB-run-3`` ... that does not exist."""
    job = job.resolve()
    candidate, n = job.with_name(f"{job.name}-run"), 1
    while candidate.exists():
        n += 1
        candidate = job.with_name(f"{job.name}-run-{n}")
    return candidate


class TqdmProgress:
    """A ``progress`` callable drawing one tqdm bar per stage (denoising steps counted) on stderr."""

    def __init__(self) -> None:
        self.stage: str | None = None
        self.bar = None

    def __call__(self, stage: str, done: int, total: int) -> None:
        from tqdm.auto import tqdm

        if stage != self.stage:
            self.close()
            self.stage = stage
            unit = "step" if stage == "denoise" else "stage"
            self.bar = tqdm(
                total=total,
                desc=stage,
                unit=unit,
                leave=stage == "denoise",
                file=sys.stderr,
                disable=not sys.stderr.isatty(),  # no bar redraws in a log or a pipe
            )
        self.bar.update(done - self.bar.n)

    def close(self) -> None:
        """Close the open bar (call it also when the run fails, so the error line stands alone)."""
        if self.bar is not None:
            self.bar.close()
            self.bar = None


def handle(args: argparse.Namespace) -> int:
    from ..generation.run import run_job

    out = args.out or default_out(args.job)
    if args.export is not None:  # refused now, not after generating
        from ..export import check_export
        from ..job import load_job

        check_export(load_job(args.job), args.export)
    progress = TqdmProgress()
    try:
        result = run_job(args.job, out, settings_from_args(args), progress=progress)
    finally:
        progress.close()
    frames, height, width, _ = result.video.shape
    timings = result.run["timings"]
    print(
        f"wrote {result.path} ({frames} frames {width}x{height}, "
        f"generate {timings.get('generate', 0):.1f} s, "
        f"total {timings['total']:.1f} s)",
        file=sys.stderr,
    )
    if args.export is not None:
        from ..export import export_run
        from .export import describe

        print(describe(export_run(result, args.export)), file=sys.stderr)
    print(result.path)
    return 0
