"""Which models a server serves: ``ModelSpec`` (one model and its own settings) and
``ModelTable`` (all of them, their aliases and the default), read from ``ServerConfig``.

    tether serve                                  the embedded model, as before
    tether serve --model PATH [--model-id ID]     one model, as before
    tether serve --model small=a.gguf --model big=b.gguf --alias gpt=small
    tether serve --models-dir DIR                 every .gguf in DIR, named by its stem
    tether serve --models-file models.toml        each model with its own settings
    tether serve --lora NAME=PATH@BASE            a LoRA adapter on BASE, as a model

A single model (the first two forms) is loaded at startup and never unloaded, as before;
with several, each loads when a request first asks for it (``tether.pool.pool``), unless
it is pinned.
"""

from __future__ import annotations

import dataclasses
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tether.config import ServerConfig


@dataclass(frozen=True, slots=True)
class LoraSpec:
    """A GGUF LoRA adapter applied to its base model's weights at ``scale``."""

    path: str
    base: str
    scale: float = 1.0


@dataclass(frozen=True, slots=True)
class ModelSpec:
    """One model: its name, and the server configuration it runs under (the server's,
    with the models file's settings for it over it; ``config.model_id`` is ``name``)."""

    name: str
    config: ServerConfig
    aliases: tuple[str, ...] = ()
    pinned: bool = False
    ttl_s: float = 0.0  # unloaded after this long idle; 0: never
    lora: LoraSpec | None = None

    @property
    def path(self) -> str | None:
        return self.config.model_path


@dataclass(frozen=True, slots=True)
class ModelTable:
    """Every configured model, the aliases that name them, and the default model."""

    specs: tuple[ModelSpec, ...]
    aliases: dict[str, str]  # alias → model name (the names themselves included)
    default: str | None
    single: bool  # one model, the pre-pool way: loaded at startup, a failure is fatal
    listed: tuple[str, ...] = ()  # the aliases /v1/models lists (a file's stem is not)

    def resolve(self, requested: str) -> str | None:
        return self.aliases.get(requested)

    def spec(self, name: str) -> ModelSpec:
        return next(spec for spec in self.specs if spec.name == name)


# Settings a models file may give a model, and the ServerConfig field each one sets.
_FILE_SETTINGS = {
    "path": "model_path",
    "engine": "engine",
    "ctx_size": "ctx_size",
    "max_seqs": "max_seqs",
    "max_queue": "max_queue",
    "batch_tokens": "batch_tokens",
    "prefill_chunk": "prefill_chunk",
    "speculative": "speculative",
    "spec_max_draft": "spec_max_draft",
    "speculative_config": "speculative_config",
    "sampling_defaults": "sampling_defaults",
    "chat_template": "chat_template",
    "tool_call_parser": "tool_call_parser",
    "reasoning_parser": "reasoning_parser",
    "max_model_len": "max_model_len",
    "tensor_parallel_size": "tensor_parallel_size",
    "dtype": "dtype",
    "engine_args": "engine_args",
}
_FILE_OWN = {"aliases", "pinned", "ttl", "lora", "base", "scale"}
MAX_TTL_S = 366 * 24 * 3600.0


def model_table(config: ServerConfig) -> ModelTable:
    """The models ``config`` names; ``ValueError`` (startup) for a configuration that
    cannot work: a duplicate name, an alias of nothing, a default that is not served."""
    specs: list[ModelSpec] = []
    file_aliases: dict[str, str] = {}
    file_default: str | None = None
    named = [_split(entry, "--model", "NAME=PATH") for entry in config.models]
    for name, path in named:
        specs.append(_spec(config, name, path, ttl_s=config.model_ttl))
    if config.models_dir:
        specs.extend(_from_dir(config))
    if config.models_file:
        more, file_aliases, file_default = _from_file(config)
        specs.extend(more)
    for entry in config.loras:
        name, rest = _split(entry, "--lora", "NAME=PATH@BASE")
        path, at, base = rest.rpartition("@")
        if not at or not path or not base:
            raise ValueError(f"--lora {entry!r}: expected NAME=PATH@BASE")
        specs.append(_lora(config, name, LoraSpec(path, base), {}))
    if specs and config.model_path:  # --model PATH next to other models: named --model-id
        specs.insert(0, _spec(config, config.model_id, config.model_path, ttl_s=config.model_ttl))
    single = not specs
    hidden: tuple[str, ...] = ()
    if single:  # today's one model: --model PATH (or the embedded one), named --model-id
        specs.append(ModelSpec(config.model_id, config, pinned=True))
        # The file's stem names it too (the name its user sees), without being listed.
        hidden = (Path(config.model_path).stem,) if config.model_path else ()
    table = _table(specs, config, file_aliases, file_default, single)
    for stem in hidden:
        table.aliases.setdefault(stem, config.model_id)
    return dataclasses.replace(table, specs=tuple(_on_base(table, s) for s in table.specs))


def _on_base(table: ModelTable, spec: ModelSpec) -> ModelSpec:
    """A LoRA model runs with its base model's settings, under its own name."""
    if spec.lora is None:
        return spec
    name = table.resolve(spec.lora.base)
    if name is None or table.spec(name).lora is not None:
        raise ValueError(f"LoRA {spec.name!r}: its base {spec.lora.base!r} is not a model")
    base = table.spec(name)
    lora = dataclasses.replace(spec.lora, base=name)
    config = dataclasses.replace(base.config, model_id=spec.name)
    return dataclasses.replace(spec, config=config, lora=lora)


def _table(
    specs: list[ModelSpec],
    config: ServerConfig,
    file_aliases: dict[str, str],
    file_default: str | None,
    single: bool,
) -> ModelTable:
    aliases: dict[str, str] = {}
    for spec in specs:
        if spec.name in aliases:
            raise ValueError(f"two models are named {spec.name!r}")
        aliases[spec.name] = spec.name
    names = set(aliases)
    wanted: list[tuple[str, str]] = [(a, s.name) for s in specs for a in s.aliases]
    wanted += list(file_aliases.items())
    wanted += [_split(entry, "--alias", "ALIAS=NAME") for entry in config.aliases]
    for alias, target in wanted:
        name = aliases.get(target)
        if name is None:
            raise ValueError(f"alias {alias!r} names {target!r}, which is not a model")
        if aliases.get(alias, name) != name:
            raise ValueError(f"{alias!r} names two models: {aliases[alias]!r} and {name!r}")
        aliases[alias] = name
    listed = tuple(dict.fromkeys(alias for alias, _ in wanted if alias not in names))
    default_name = config.default_model or file_default
    default = None
    if default_name is not None:
        default = aliases.get(default_name)
        if default is None:
            raise ValueError(f"default model {default_name!r} is not a model")
    elif len(specs) == 1:
        default = specs[0].name
    return ModelTable(tuple(specs), aliases, default, single, listed)


def _split(entry: str, flag: str, form: str) -> tuple[str, str]:
    left, eq, right = entry.partition("=")
    if not eq or not left.strip() or not right.strip():
        raise ValueError(f"{flag} {entry!r}: expected {form}")
    return left.strip(), right.strip()


def _spec(
    config: ServerConfig, name: str, path: str | None, *, ttl_s: float, **settings: Any
) -> ModelSpec:
    fields = {"model_path": path, "model_id": name, **settings}
    return ModelSpec(name, dataclasses.replace(config, **fields), ttl_s=ttl_s)


def _from_dir(config: ServerConfig) -> list[ModelSpec]:
    folder = Path(config.models_dir or "")
    if not folder.is_dir():
        raise ValueError(f"--models-dir {str(folder)!r} is not a directory")
    files = sorted(folder.glob("*.gguf"))
    return [_spec(config, file.stem, str(file), ttl_s=config.model_ttl) for file in files]


def _from_file(config: ServerConfig) -> tuple[list[ModelSpec], dict[str, str], str | None]:
    """``[models.NAME]`` tables (``path`` or ``lora`` + ``base``, and the settings above),
    an optional ``[aliases]`` table and a top-level ``default``."""
    path = Path(config.models_file or "")
    try:
        document = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise ValueError(f"--models-file {str(path)!r}: {exc}") from exc
    unknown = set(document) - {"models", "aliases", "default"}
    if unknown:
        raise ValueError(f"--models-file: unknown top-level keys {sorted(unknown)}")
    models = document.get("models", {})
    if not isinstance(models, dict) or not all(isinstance(v, dict) for v in models.values()):
        raise ValueError("--models-file: [models.NAME] must be tables")
    specs = []
    for name, table in models.items():
        try:
            specs.append(_file_spec(config, name, table, path.parent))
        except (TypeError, ValueError) as exc:
            raise ValueError(f"--models-file: model {name!r}: {exc}") from exc
    aliases = document.get("aliases", {})
    if not isinstance(aliases, dict) or not all(isinstance(v, str) for v in aliases.values()):
        raise ValueError("--models-file: [aliases] must map names to model names")
    default = document.get("default")
    if default is not None and not isinstance(default, str):
        raise ValueError("--models-file: default must be a model name")
    return specs, aliases, default


def _file_spec(config: ServerConfig, name: str, table: dict[str, Any], folder: Path) -> ModelSpec:
    unknown = set(table) - set(_FILE_SETTINGS) - _FILE_OWN
    if unknown:
        raise ValueError(f"unknown settings {sorted(unknown)}")
    settings = {_FILE_SETTINGS[key]: value for key, value in table.items() if key in _FILE_SETTINGS}
    for key, value in settings.items():
        _check_type(key, value)
    if "model_path" in settings:
        settings["model_path"] = _relative(str(settings["model_path"]), folder)
    if "chat_template" in settings:
        settings["chat_template"] = _relative(str(settings["chat_template"]), folder)
    if "lora" in table:
        lora, base, scale = table["lora"], table.get("base", ""), table.get("scale", 1.0)
        if not isinstance(lora, str) or not isinstance(base, str):
            raise ValueError("lora and base must be strings")
        if isinstance(scale, bool) or not isinstance(scale, int | float):
            raise ValueError("scale must be a number")
        adapter = LoraSpec(_relative(lora, folder), base, float(scale))
        return _lora(config, name, adapter, table)
    if "model_path" not in settings:
        raise ValueError("needs a path (or lora and base)")
    spec = _spec(config, name, None, ttl_s=_ttl(table, config), **settings)
    return dataclasses.replace(spec, aliases=_aliases(table), pinned=_pinned(table))


def _lora(config: ServerConfig, name: str, lora: LoraSpec, table: dict[str, Any]) -> ModelSpec:
    if not lora.base:
        raise ValueError(f"LoRA {name!r} needs a base model")
    own = set(table) - _FILE_OWN - {"path"}
    if own:
        raise ValueError(f"a LoRA model runs with its base's settings; set {sorted(own)} there")
    # The adapter's path stands in for the model's until its base's settings replace them.
    spec = _spec(config, name, lora.path, ttl_s=_ttl(table, config))
    return dataclasses.replace(spec, lora=lora, aliases=_aliases(table), pinned=_pinned(table))


# The type each models-file setting must have (TOML has integers, floats, strings, tables).
_TYPES: dict[str, type | tuple[type, ...]] = {
    "model_path": str,
    "engine": str,
    "chat_template": str,
    "tool_call_parser": str,
    "reasoning_parser": str,
    "dtype": str,
    "speculative": str,
    "sampling_defaults": dict,
    "engine_args": dict,
    "speculative_config": dict,
}


def _check_type(key: str, value: Any) -> None:
    wanted = _TYPES.get(key, int)
    if isinstance(value, bool) or not isinstance(value, wanted):
        kind = wanted.__name__ if isinstance(wanted, type) else "a value"
        raise ValueError(f"{key} must be {'an' if kind == 'int' else 'a'} {kind}")


def _aliases(table: dict[str, Any]) -> tuple[str, ...]:
    aliases = table.get("aliases", [])
    if not isinstance(aliases, list) or not all(isinstance(a, str) and a for a in aliases):
        raise ValueError("aliases must be a list of names")
    return tuple(aliases)


def _pinned(table: dict[str, Any]) -> bool:
    pinned = table.get("pinned", False)
    if not isinstance(pinned, bool):
        raise ValueError("pinned must be true or false")
    return pinned


def _ttl(table: dict[str, Any], config: ServerConfig) -> float:
    ttl = table.get("ttl", config.model_ttl)
    if isinstance(ttl, bool) or not isinstance(ttl, int | float) or not 0 <= ttl < MAX_TTL_S:
        raise ValueError(f"ttl must be a number of seconds in [0, {MAX_TTL_S:g})")
    return float(ttl)


def _relative(path: str, folder: Path) -> str:
    """A models file's paths are relative to the file."""
    return str(folder / path) if not Path(path).is_absolute() else path
