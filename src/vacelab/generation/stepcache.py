"""``--cache R``: a residual step cache that is correct for VACE (lossy; 0 = off).

Why not diffusers' ``FirstBlockCache`` / ``MagCache``: they hook ``blocks.*`` only, while
``WanVACETransformer3DModel.forward`` runs the VACE blocks *before* the DiT blocks and adds their hints
in its own loop, so a cached step adds the hints on top of a residual that already holds them (or drops
them). cache-dit's Wan-VACE patch (PyPI ``cache-dit``) fixes that by replacing diffusers' forwards with
copies, and still runs the VACE blocks on every cached step.

This cache leaves diffusers' forward as it is and, for one pipeline call, puts a gate in front of each
VACE block and each DiT block of every expert (:func:`step_cache`):

- on the first branch (the prompt pass) of each step, the first VACE block's gate decides: the relative
  L1 change of the first DiT block's modulated input (``norm1(x) * (1 + scale) + shift``, TeaCache's
  signal) against the previous step is accumulated, and the step is skipped while the sum stays below
  ``R`` (a computed step resets it). The first step of each expert, the last step, and a step whose VACE
  scale differs from the cached one (``--vace-end``) are always computed;
- a computed step runs every block (VACE hints computed and added once, by diffusers' own loop) and keeps
  the residual ``output of the block loop - its input``, per expert and per guidance branch;
- a skipped step runs no block: the VACE gates return a zero hint (nothing computed), the first DiT gate
  returns ``input + residual`` (the hints' effect included, once) and the others pass through.

The negative-prompt pass of a step follows the decision made for its prompt pass, with its own residual.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

from .experts import experts


@dataclass
class _Expert:
    """One expert's cache: the last modulated input, the accumulated change, and one residual per branch."""

    previous: object = None  # modulated input of the previous step (prompt branch)
    accumulated: float = 0.0
    step: int | None = None  # the step being run
    branch: int = 0  # 0: the prompt pass of the step, 1: the negative prompt's
    skip: bool = False  # the decision for the current step
    scale: object = None  # control_hidden_states_scale of the current call
    residuals: dict = field(default_factory=dict)  # branch -> (residual, scale it was computed with)
    start: object = None  # input of the block loop of the current computed call
    skipped: list[int] = field(default_factory=list)
    changes: list[float] = field(default_factory=list)  # each decided step's relative change


class StepCache:
    """The state of one cached call; :meth:`record` is what ``run.json`` keeps (``used.cache``)."""

    def __init__(self, threshold: float, steps: int, step_of: Callable[[], int]) -> None:
        self.threshold, self.steps, self.step_of = threshold, steps, step_of
        self.experts: dict[str, _Expert] = {}

    def begin_call(self, state: _Expert, scale) -> None:
        """A transformer call starts: which step and branch it is."""
        step = self.step_of()
        state.branch = state.branch + 1 if step == state.step else 0
        state.step, state.scale = step, scale

    def decide(self, state: _Expert, block, hidden_states, temb) -> None:
        """Skip or compute the current call (see the module docstring)."""
        if state.branch > 0:  # the negative prompt follows its step's prompt pass
            state.skip = state.skip and state.branch in state.residuals
            return
        shift, scale = (block.scale_shift_table + temb.float()).chunk(6, dim=1)[:2]
        modulated = block.norm1(hidden_states.float()) * (1 + scale) + shift
        cached = state.residuals.get(0)
        if state.previous is None or cached is None:
            compute = True
        else:
            change = ((modulated - state.previous).abs().mean() / state.previous.abs().mean()).item()
            state.accumulated += change
            state.changes.append(round(change, 6))
            compute = (
                state.accumulated >= self.threshold
                or state.step >= self.steps - 1
                or not _same_scale(cached[1], state.scale)
            )
        state.previous = modulated
        state.skip = not compute
        if compute:
            state.accumulated = 0.0
        else:
            state.skipped.append(state.step)

    def record(self) -> dict:
        """``{"threshold", "skipped": [steps], "computed": n, "changes": [...]}``; per expert with two."""

        def one(state: _Expert) -> dict:
            return {"skipped": state.skipped, "changes": state.changes}

        skipped = sorted({s for state in self.experts.values() for s in state.skipped})
        out = {
            "threshold": self.threshold,
            "skipped": skipped,
            "computed": self.steps - len(skipped),
            "signal": "accumulated relative L1 change of the first block's modulated input",
        }
        if len(self.experts) > 1:
            out["experts"] = {name: one(state) for name, state in self.experts.items()}
        elif self.experts:
            out["changes"] = next(iter(self.experts.values())).changes
        return out


def _same_scale(a, b) -> bool:
    """Whether two ``control_hidden_states_scale`` values are the same (``None``: diffusers' ones)."""
    import torch

    return a is b or (a is not None and b is not None and torch.equal(a, b))


def _gates(cache: StepCache, state: _Expert, transformer):
    import torch

    first_block = transformer.blocks[0]

    class VaceGate(torch.nn.Module):
        def __init__(self, block, index):
            super().__init__()
            self.block, self.index = block, index

        def forward(self, hidden_states, encoder_hidden_states, control_hidden_states, temb, rotary_emb):
            if self.index == 0:
                cache.decide(state, first_block, hidden_states, temb)
            if state.skip:  # a zero hint: the residual already holds the hints' effect
                return hidden_states.new_zeros(()), control_hidden_states
            return self.block(hidden_states, encoder_hidden_states, control_hidden_states, temb, rotary_emb)

    class BlockGate(torch.nn.Module):
        def __init__(self, block, index):
            super().__init__()
            self.block, self.index = block, index

        def forward(self, hidden_states, *args):
            if state.skip:
                if self.index > 0:
                    return hidden_states
                residual = state.residuals[state.branch][0]
                return (hidden_states.float() + residual).type_as(hidden_states)
            if self.index == 0:
                state.start = hidden_states
            return self.block(hidden_states, *args)

    return (
        torch.nn.ModuleList(VaceGate(b, i) for i, b in enumerate(transformer.vace_blocks)),
        torch.nn.ModuleList(BlockGate(b, i) for i, b in enumerate(transformer.blocks)),
    )


@contextlib.contextmanager
def step_cache(transformers, threshold: float, steps: int, step_of: Callable[[], int]) -> Iterator[StepCache]:
    """Within the block, each of ``transformers`` (``(name, WanVACETransformer3DModel)`` pairs) skips steps
    as the module docstring says; ``step_of()`` gives the current denoising step, ``steps`` their number.
    The blocks are put back on exit. Yields the :class:`StepCache` (its ``record()`` for ``run.json``)."""
    cache = StepCache(threshold, steps, step_of)
    undo = []
    try:
        for name, transformer in transformers:
            state = cache.experts.setdefault(name, _Expert())

            def begin(module, args, kwargs, state=state):
                cache.begin_call(state, kwargs.get("control_hidden_states_scale"))

            def end_of_blocks(module, args, state=state):
                if not state.skip:  # norm_out gets the block loop's output (hints added), as fp32
                    state.residuals[state.branch] = (args[0] - state.start.float(), state.scale)
                state.start = None

            saved = transformer._modules["vace_blocks"], transformer._modules["blocks"]
            vace_gates, block_gates = _gates(cache, state, transformer)
            transformer._modules["vace_blocks"], transformer._modules["blocks"] = vace_gates, block_gates
            handles = [
                transformer.register_forward_pre_hook(begin, with_kwargs=True),
                transformer.norm_out.register_forward_pre_hook(end_of_blocks),
            ]
            undo.append((transformer, saved, handles))
        yield cache
    finally:
        for transformer, (vace_blocks, blocks), handles in undo:
            transformer._modules["vace_blocks"], transformer._modules["blocks"] = vace_blocks, blocks
            for handle in handles:
                handle.remove()


@contextlib.contextmanager
def cache_hook(pipe, threshold: float, steps: int) -> Iterator[StepCache | None]:
    """:func:`step_cache` over every expert of ``pipe`` for one call (steps read from its scheduler);
    ``threshold`` 0 installs nothing and yields ``None``: the call is exactly the plain one."""
    if threshold <= 0:
        yield None
        return
    with step_cache(experts(pipe), threshold, steps, lambda: pipe.scheduler.step_index or 0) as cache:
        yield cache
