"""The run settings on the page: one field per :class:`RunSettings` field, grouped as users think of them.

The fields come from the dataclass (its types, defaults and ``choices``), so a new run option appears on the
page without touching it (in **More** until a group names it); values go back through
:meth:`RunSettings.validate`, the rule every interface shares.
"""

from __future__ import annotations

from dataclasses import MISSING, fields

from ..errors import InputError
from ..generation.presets import PRESETS
from ..generation.settings import COLOR_METHODS, RunSettings

GROUPS = {  # a field not named here is shown under "More"
    "Sampling": ("steps", "guidance", "shift", "seed", "scheduler", "guidance_2", "boundary"),
    "VACE": ("conditioning_scale", "vace_end", "mask_encoding"),
    "Speed and memory": (
        "fast",
        "preset",
        "cache",
        "fp8",
        "offload",
        "vae_tiling",
        "dtype",
        "attention",
        "compile",
        "parallel",
        "parallel_mode",
    ),
    "Finishing": ("composite", "feather", "color_match"),
    "LoRAs": ("lora", "lora_high", "lora_low"),
}
# set elsewhere on the page (prompts), by `vacelab ui` itself (model, device) or not offered here (a file
# of per-window prompts: the page's one prompt applies to every window)
NOT_ON_PAGE = {"prompt", "negative_prompt", "model", "device", "window_prompts"}
FILE_LISTS = {"lora", "lora_high", "lora_low"}  # FILE[:SCALE] per line, each file checked by the page
COLOR_CHOICES = ("off", "on", *COLOR_METHODS)  # color_match: False, True (the default method), a method
PRESET_CHOICES = ("none", *PRESETS)  # preset: None or a recipe


def page_fields() -> dict[str, list[str]]:
    """Group name -> the RunSettings fields shown in it, in order (every field on the page exactly once)."""
    names = [f.name for f in fields(RunSettings) if f.name not in NOT_ON_PAGE]
    groups = {group: [n for n in members if n in names] for group, members in GROUPS.items()}
    grouped = {n for members in groups.values() for n in members}
    more = [n for n in names if n not in grouped]
    return {**groups, **({"More": more} if more else {})}


def default(name: str):
    """The page's initial value of field ``name`` (the dataclass default, in the widget's terms)."""
    spec = next(f for f in fields(RunSettings) if f.name == name)
    value = spec.default if spec.default is not MISSING else spec.default_factory()
    if name == "color_match":
        return COLOR_CHOICES[int(value)] if isinstance(value, bool) else value
    if name == "preset":
        return value or "none"
    if name in FILE_LISTS:
        return "\n".join(value)
    return value


def widget(name: str):
    """The Gradio component for field ``name``, labelled with its ``vacelab run`` option."""
    import gradio as gr

    label = f"{name.replace('_', ' ').capitalize()} (--{name.replace('_', '-')})"
    elem_id = name.replace("_", "-")
    value = default(name)
    choices = RunSettings.choices(name)
    if name in ("color_match", "preset"):
        words = COLOR_CHOICES if name == "color_match" else PRESET_CHOICES
        return gr.Dropdown(list(words), value=value, label=label, elem_id=elem_id)
    if choices:
        return gr.Dropdown(list(choices), value=value, label=label, elem_id=elem_id)
    kind = RunSettings.field_types()[name]
    if name in FILE_LISTS:
        return gr.Textbox(
            value, label=f"{label}: FILE[:SCALE] per line, .safetensors inside an --allow folder", lines=2,
            placeholder="/loras/style.safetensors:0.8", elem_id=elem_id,
        )  # fmt: skip
    if kind is bool:
        return gr.Checkbox(value=value, label=label, elem_id=elem_id)
    if kind in (int, float):
        return gr.Number(value, label=label, precision=0 if kind is int else None, elem_id=elem_id)
    # optional values (a number or text whose default the job decides): empty text means that default
    return gr.Textbox(
        "" if value is None else str(value), label=label, placeholder="default", elem_id=elem_id
    )


def settings_from(names: list[str], values, open_file=None, **fixed) -> RunSettings:
    """:class:`RunSettings` from the page's values of ``names`` (in order) and ``fixed`` fields, validated.

    An empty field means the default (``None`` where the default is "decided by the job"); an optional
    number arrives as text. A LoRA field holds ``FILE[:SCALE]`` lines; ``open_file(text, field)`` checks
    each file (the page's access rule; without it any file listed is refused) and returns its path."""
    chosen = {}
    for name, value in zip(names, values, strict=True):
        if value is None or value == "":
            continue
        kinds = _members(RunSettings.field_types()[name])
        if name in FILE_LISTS:
            value = [_lora_line(line, name, open_file) for line in value.splitlines() if line.strip()]
        elif name == "color_match":
            value = {"off": False, "on": True}.get(value, value)
        elif name == "preset":
            value = None if value == "none" else value
        elif isinstance(value, str) and (int in kinds or float in kinds):  # an optional number, as text
            value = _number(name, value, int if int in kinds else float)
        elif int in kinds and not isinstance(value, bool):
            value = int(value)
        chosen[name] = value
    settings = RunSettings(**chosen, **fixed)
    settings.validate()
    return settings


def _lora_line(line: str, name: str, open_file) -> str:
    """One ``FILE[:SCALE]`` line: the file checked by ``open_file`` and read for LoRA weights."""
    from ..generation.lora import parse_lora_spec, split_lora_spec

    path, scale = split_lora_spec(line.strip())
    if open_file is None:
        raise InputError("LoRA files are not accepted here", field=name, value=line.strip())
    spec = str(open_file(path, name)) + ("" if scale is None else f":{scale}")
    parse_lora_spec(spec, name)  # holds LoRA weights: refused now, not after the model has loaded
    return spec


def _number(name: str, text: str, kind: type):
    try:
        return kind(text.strip())
    except ValueError:
        raise InputError(
            f"expected a{'n integer' if kind is int else ' number'}", field=name, value=text
        ) from None


def _members(kind) -> tuple:
    return getattr(kind, "__args__", (kind,))


__all__ = ["GROUPS", "page_fields", "settings_from", "widget"]
