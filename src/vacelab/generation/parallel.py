"""One job over several processes: diffusers' context parallelism with a plan for the VACE transformer.

``settings.parallel = N`` runs a job in N ranks that vacelab starts itself (``torch.multiprocessing``,
spawn): NCCL with one GPU per rank on CUDA, gloo on the CPU. Every rank runs the whole job with the same
seed and inputs; inside each transformer call the token sequence is split over the ranks
(:data:`VACE_CP_PLAN`) and attention gathers what it needs - Ulysses (an all-to-all: each rank gets the
whole sequence for ``heads / N`` heads; exact) or ring (key/value blocks passed round; needs a backend that
returns the log-sum-exp, none of which runs on the CPU). Rank 0 alone writes the results folder.

- :func:`check_options`, :func:`check_split`: every refusal that can be made before a rank starts
  (offload, compile; degree against heads, tokens of each window, device, attention backend).
- :func:`launch`: start the ranks, forward rank 0's log records and progress, end every rank when one
  fails or on Ctrl-C; a failed rank's bad input is raised again as that :class:`InputError`, anything
  else as :class:`~vacelab.errors.WorkerFailed`.
- :func:`enable` (in each rank, from ``place_pipeline``): the plan on every expert.

diffusers 0.42.1 ships ``_cp_plan`` for ``WanTransformer3DModel`` only; Wan's plan does not fit VACE (the
VACE blocks would see the unsplit sequence). The plan below also splits the inputs of the first VACE
block, so each hint is made on the shard of the main stream it is added to (``benchmarks/cp_vace_probe.py``
shows it exact against one process).
"""

from __future__ import annotations

import contextlib
import logging
import os
import tempfile
import time
import traceback
import warnings
from pathlib import Path

from ..errors import InputError, WorkerFailed
from .settings import RunSettings

log = logging.getLogger("vacelab")

MODES = ("ulysses", "ring")
FAIL_RANK_ENV = "VACELAB_FAIL_RANK"  # tests: the rank with this index raises once started (see launch)
_STOP_SECONDS = 10  # a rank still alive this long after terminate() is killed
_state = {"rank": None, "world": 1}  # set in a rank process by _rank_main


def vace_cp_plan() -> dict:
    """The context-parallel plan of ``WanVACETransformer3DModel``: Wan's (RoPE, ``blocks.0``, ``proj_out``)
    plus ``vace_blocks.0``'s ``hidden_states`` and ``control_hidden_states``. Wan's per-token timestep
    entry is left out: ``WanVACEPipeline`` passes one timestep per sample."""
    from diffusers.models._modeling_parallel import ContextParallelInput, ContextParallelOutput

    split = ContextParallelInput(split_dim=1, expected_dims=3, split_output=False)
    rope = ContextParallelInput(split_dim=1, expected_dims=4, split_output=True)
    return {
        "rope": {0: rope, 1: rope},
        "vace_blocks.0": {"hidden_states": split, "control_hidden_states": split},  # what Wan's plan lacks
        "blocks.0": {"hidden_states": split},
        "proj_out": ContextParallelOutput(gather_dim=1, expected_dims=3),
    }


def resolve_mode(settings: RunSettings, heads: int) -> str:
    """``parallel_mode``, ``auto`` resolved: Ulysses where the ranks divide the attention heads, else ring."""
    if settings.parallel_mode != "auto":
        return settings.parallel_mode
    return "ulysses" if heads % settings.parallel == 0 else "ring"


# ------------------------------------------------------------------------------------------- refusals
def _refuse(message: str, field: str, value) -> InputError:
    return InputError(message, field=field, value=value)


def check_options(settings: RunSettings, pipeline=None) -> None:
    """Refuse settings a parallel run cannot combine with (before anything is loaded): a loaded
    ``pipeline`` (the ranks load their own), block-wise offload, compile, the step cache."""
    if pipeline is not None:
        raise _refuse(
            "the ranks load the model themselves: no loaded pipeline", "parallel", settings.parallel
        )
    if settings.offload in ("group", "sequential"):
        raise _refuse(
            "moves weights block by block inside the transformer, where context parallelism splits "
            "and gathers the sequence; use offload none or model with parallel",
            "offload",
            settings.offload,
        )
    if settings.compile:
        raise _refuse("not tried with context parallelism in this version; leave it out", "compile", True)
    if settings.cache > 0:  # each rank would decide on its own shard of the sequence: ranks could part ways
        raise _refuse(
            "the step cache decides per rank, and ranks must run the same steps; not with parallel yet",
            "cache",
            settings.cache,
        )


def check_split(settings: RunSettings, heads: int | None, device: str, tokens: list[int]) -> None:
    """Refuse, before any rank starts, a split this model, job or machine cannot do.

    ``heads``: the transformer's ``num_attention_heads`` (``None``: unknown before loading, checked again
    in the ranks); ``device``: the resolved device; ``tokens``: the sequence length of each window.
    """
    n = settings.parallel

    def refuse(message: str, field: str = "parallel", value=n):
        raise _refuse(message, field, value)

    if device not in ("cpu", "cuda"):
        refuse(f"runs on the CPU (gloo) or on CUDA GPUs cuda:0..N-1 (NCCL), not on {device}")
    if device == "cuda":
        import torch

        if torch.cuda.device_count() < n:
            refuse(f"needs one GPU per rank; {torch.cuda.device_count()} visible (CUDA_VISIBLE_DEVICES)")
    for index, count in enumerate(tokens):
        if count % n:
            where = f"window {index + 1} has" if len(tokens) > 1 else "the job has"
            refuse(f"{where} {count} tokens, which do not split evenly over {n} ranks")
    mode = settings.parallel_mode if heads is None else resolve_mode(settings, heads)
    if mode == "ulysses" and heads is not None and heads % n:
        refuse(f"Ulysses splits the model's {heads} attention heads over the ranks: {n} does not divide them")
    if mode == "ring":
        from .profiles import EXACT_BACKENDS

        lse = ring_backends()
        if device == "cpu":
            refuse(
                f"ring attention needs a backend that returns the log-sum-exp ({', '.join(lse)}); none runs "
                f"on the CPU"
                + (f" (and Ulysses needs {n} to divide the {heads} heads)" if heads and heads % n else "")
            )
        if settings.attention is not None and settings.attention not in lse:
            refuse(f"ring attention needs one of {', '.join(lse)}", "attention", settings.attention)
        if settings.attention is None and not settings.fast:
            usable = [b for b in EXACT_BACKENDS if b in lse]
            refuse(f"ring attention needs attention {' or '.join(usable)}, or fast", "parallel_mode", mode)
    if settings.attention is not None and settings.attention not in parallel_backends():
        refuse("does not support context parallelism in diffusers", "attention", settings.attention)


def parallel_backends() -> list[str]:
    """The attention backends diffusers can run context-parallel (Ulysses)."""
    from diffusers.models.attention_dispatch import _AttentionBackendRegistry

    return sorted(_AttentionBackendRegistry._supports_context_parallel)


def ring_backends() -> list[str]:
    """The context-parallel backends that return the log-sum-exp ring attention merges with (not native)."""
    return [name for name in parallel_backends() if name not in ("native", "_native_npu")]


# ------------------------------------------------------------------------------------------ in a rank
def rank() -> int | None:
    """This process's rank in a parallel run (``None`` outside one)."""
    return _state["rank"]


def writes() -> bool:
    """True where a run writes its outputs: outside a parallel run, or on its rank 0."""
    return _state["rank"] in (None, 0)


def enable(pipe, settings: RunSettings) -> dict:
    """Split every expert of ``pipe`` over the ranks (call after the attention backend is set); return
    what ``run.json`` records (ranks, mode, communication backend)."""
    import torch
    import torch.distributed as dist
    from diffusers.models._modeling_parallel import ContextParallelConfig
    from diffusers.utils import logging as diffusers_logging
    from torch.distributed.device_mesh import init_device_mesh

    from .experts import experts

    heads = pipe.transformer.config.num_attention_heads
    check_split(settings, heads, "cpu" if dist.get_backend() == "gloo" else "cuda", [])
    mode = resolve_mode(settings, heads)
    verbosity = diffusers_logging.get_verbosity()
    diffusers_logging.set_verbosity_error()  # its "experimental feature" warning, once per rank and expert
    # diffusers picks a rank's device as rank % torch.accelerator.device_count(), which is 0 on the CPU
    count, gloo = torch.accelerator.device_count, dist.get_backend() == "gloo"
    if gloo:
        torch.accelerator.device_count = lambda: 1
    try:
        for _, module in experts(pipe):
            config = ContextParallelConfig(**{f"{mode}_degree": settings.parallel})
            if gloo:  # a CPU mesh, whatever accelerator torch is built for (gloo ranks see no GPU)
                config.mesh = init_device_mesh("cpu", config.mesh_shape, mesh_dim_names=config.mesh_dim_names)
            module.enable_parallelism(config=config, cp_plan=vace_cp_plan())
    finally:
        torch.accelerator.device_count = count
        diffusers_logging.set_verbosity(verbosity)
    return {"ranks": settings.parallel, "mode": mode, "backend": dist.get_backend()}


def gather(value) -> list:
    """``value`` of every rank, in rank order (``[value]`` outside a parallel run)."""
    if _state["rank"] is None:
        return [value]
    import torch.distributed as dist

    values = [None] * _state["world"]
    dist.all_gather_object(values, value)
    return values


class _QueueHandler(logging.Handler):
    """Rank 0's log records to the launching process (formatted there by its own handlers)."""

    def __init__(self, queue) -> None:
        super().__init__()
        self.queue = queue

    def emit(self, record: logging.LogRecord) -> None:
        record.msg, record.args, record.exc_info = record.getMessage(), None, None
        self.queue.put(("log", record))


def _rank_main(index, world, init_file, gpus, level, queue, target, args) -> None:
    """A rank: join the group, run ``target(report, *args)``; a failure goes to the launcher first."""
    _state.update(rank=index, world=world)
    # diffusers 0.42.1 calls a torch collective torch deprecates, once per transformer call: not the user's
    warnings.filterwarnings("ignore", "`torch.distributed._functional_collectives", FutureWarning)
    logger = logging.getLogger("vacelab")
    logger.handlers, logger.propagate = [_QueueHandler(queue)] if index == 0 else [], False
    logger.setLevel(level if index == 0 else logging.CRITICAL + 1)
    os.environ["CUDA_VISIBLE_DEVICES"] = ",".join(gpus or [])  # gloo: no GPU, as diffusers picks one if seen
    try:
        import torch
        import torch.distributed as dist

        backend = "nccl" if gpus is not None else "gloo"
        if backend == "nccl":
            torch.cuda.set_device(index)
        dist.init_process_group(backend, init_method=f"file://{init_file}", rank=index, world_size=world)
        if os.environ.get(FAIL_RANK_ENV) == str(index):
            raise RuntimeError(f"failure injected into rank {index} ({FAIL_RANK_ENV})")

        def report(stage, done, total) -> None:
            if index == 0:
                queue.put(("progress", (stage, done, total)))

        target(report, *args)
        dist.barrier()  # rank 0 writes the outputs after the last step: no rank leaves the group before it
        dist.destroy_process_group()
    except BaseException as exc:
        if isinstance(exc, InputError):
            failure = InputError(exc.message, field=exc.field, value=exc.value)
        else:
            first = (str(exc).strip().splitlines() or [""])[0]
            failure = WorkerFailed(f"rank {index}: {type(exc).__name__}" + (f": {first}" if first else ""))
        with contextlib.suppress(Exception):
            queue.put(("failed", (failure, traceback.format_exc())))
        raise SystemExit(1) from None


def launch(target, args: tuple, *, ranks: int, device: str, progress, gpus: list[int] | None = None):
    """Run ``target(report, *args)`` in ``ranks`` new processes joined in one process group; wait for all.

    ``device``: ``cpu`` (gloo) or ``cuda`` (NCCL, rank i on ``gpus[i]``, indices among the visible GPUs;
    default the first ``ranks``). Rank 0's progress goes to ``progress``, its ``vacelab`` log records to
    this process's logger; other ranks are silent. When a rank fails, every rank is ended and its error
    raised here; so is a Ctrl-C (``KeyboardInterrupt``). No rank outlives this call.
    """
    import torch.multiprocessing as mp

    if device == "cuda":  # CUDA_VISIBLE_DEVICES of the ranks: the ids of the GPUs they use
        visible = os.environ.get("CUDA_VISIBLE_DEVICES")
        indices = gpus if gpus is not None else range(ranks)
        gpus = [visible.split(",")[i] if visible else str(i) for i in indices]
    spawn = mp.get_context("spawn")
    messages = spawn.Queue()
    level = logging.getLogger("vacelab").getEffectiveLevel()
    with tempfile.TemporaryDirectory(prefix="vacelab-ranks-") as folder:
        init_file = Path(folder) / "group"
        workers = [
            spawn.Process(
                target=_rank_main,
                args=(i, ranks, init_file, gpus, level, messages, target, args),
                name=f"vacelab-rank-{i}",
            )
            for i in range(ranks)
        ]
        try:
            for worker in workers:
                worker.start()
            failure = None
            while failure is None and any(w.exitcode is None for w in workers):
                failure = _pump(messages, progress, timeout=0.2)
                if failure is None and any(w.exitcode not in (None, 0) for w in workers):
                    failure = _pump(messages, progress) or _died(workers)  # its last words, if any
            failure = failure or _pump(messages, progress)
            if failure is None and any(w.exitcode for w in workers):
                failure = _died(workers)
            if failure is not None:
                raise failure
        finally:
            _stop(workers)
            messages.close()
            messages.join_thread()


def _pump(messages, progress, timeout: float | None = None) -> Exception | None:
    """Handle the ranks' messages: wait up to ``timeout`` for the first (``None``: only those already
    sent); return a rank's failure as soon as one is read."""
    import queue as queues

    while True:
        try:
            kind, body = messages.get(timeout=timeout) if timeout else messages.get_nowait()
        except queues.Empty:
            return None
        timeout = None
        if kind == "log":
            log.handle(body)
        elif kind == "progress":
            progress(*body)
        else:
            failure, text = body
            failure.__cause__ = RankTraceback(text)  # in a batch's log of the job, not on the command line
            return failure


class RankTraceback(Exception):
    """The traceback of a rank's failure, as the rank printed it."""


def _died(workers) -> WorkerFailed:
    index, code = next((i, w.exitcode) for i, w in enumerate(workers) if w.exitcode)
    return WorkerFailed(f"rank {index} ended with exit code {code}")


def _stop(workers) -> None:
    """End every rank still running (terminate, then kill) and reap them all."""
    for worker in workers:
        if worker.exitcode is None and worker.pid is not None:
            worker.terminate()
    deadline = time.monotonic() + _STOP_SECONDS
    for worker in workers:
        if worker.pid is None:
            continue
        worker.join(max(0.0, deadline - time.monotonic()))
        if worker.exitcode is None:
            worker.kill()
            worker.join()
