"""Which models a server serves: ``--model NAME=PATH``, ``--models-dir``, a models file,
aliases, LoRA adapters and the default model (``tether.pool.spec``)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tether.config import DEFAULT_MODEL_ID, ServerConfig
from tether.pool.spec import model_table


def test_one_model_is_served_as_before(tmp_path: Path) -> None:
    gguf = tmp_path / "my-model-Q4_K_M.gguf"
    table = model_table(ServerConfig(model_path=str(gguf), model_id="me/model"))
    [spec] = table.specs
    assert (spec.name, spec.path, spec.pinned) == ("me/model", str(gguf), True)
    assert table.single and table.default == "me/model"
    # The file's stem names it too, but /v1/models does not list it twice.
    assert table.resolve("my-model-Q4_K_M") == "me/model"
    assert table.listed == ()


def test_the_embedded_model_alone() -> None:
    table = model_table(ServerConfig())
    assert [spec.name for spec in table.specs] == [DEFAULT_MODEL_ID]
    assert table.default == DEFAULT_MODEL_ID


def test_named_models_load_on_demand_with_aliases_and_a_default() -> None:
    config = ServerConfig(
        models=("small=/m/small.gguf", "big=/m/big.gguf"),
        aliases=("meta-llama/Meta-Llama-3.1-8B-Instruct-Turbo=small",),
        default_model="big",
        model_ttl=60,
    )
    table = model_table(config)
    assert [(s.name, s.path, s.pinned, s.ttl_s) for s in table.specs] == [
        ("small", "/m/small.gguf", False, 60.0),
        ("big", "/m/big.gguf", False, 60.0),
    ]
    assert table.specs[0].config.model_id == "small"
    assert table.resolve("meta-llama/Meta-Llama-3.1-8B-Instruct-Turbo") == "small"
    assert table.listed == ("meta-llama/Meta-Llama-3.1-8B-Instruct-Turbo",)
    assert table.default == "big"
    assert not table.single


def test_several_models_without_a_default_have_none() -> None:
    table = model_table(ServerConfig(models=("a=/a.gguf", "b=/b.gguf")))
    assert table.default is None


def test_a_models_dir_serves_every_gguf_by_its_stem(tmp_path: Path) -> None:
    for name in ("b-model.gguf", "a-model.gguf", "notes.txt"):
        (tmp_path / name).write_bytes(b"")
    table = model_table(ServerConfig(models_dir=str(tmp_path)))
    assert [spec.name for spec in table.specs] == ["a-model", "b-model"]


def test_a_models_file_gives_each_model_its_own_settings(tmp_path: Path) -> None:
    (tmp_path / "models.toml").write_text(
        """
default = "chat"

[models.small]
path = "small.gguf"
ctx_size = 2048
max_seqs = 4
sampling_defaults = { temperature = 0.2 }
aliases = ["gpt-4o-mini"]
pinned = true

[models.chat]
path = "/abs/chat.gguf"
tool_call_parser = "hermes"
reasoning_parser = "qwen3"
ttl = 30

[models.tuned]
lora = "tuned-lora.gguf"
base = "small"
scale = 0.5

[aliases]
"meta-llama/Llama-3.3-70B-Instruct-Turbo" = "chat"
""",
        encoding="utf-8",
    )
    table = model_table(ServerConfig(models_file=str(tmp_path / "models.toml"), model_ttl=900))
    small, chat, tuned = table.specs
    assert small.path == str(tmp_path / "small.gguf")
    assert (small.config.ctx_size, small.config.max_seqs) == (2048, 4)
    assert small.config.sampling_defaults == {"temperature": 0.2}
    assert (small.pinned, small.ttl_s, small.aliases) == (True, 900.0, ("gpt-4o-mini",))
    assert chat.path == "/abs/chat.gguf"
    assert (chat.config.tool_call_parser, chat.config.reasoning_parser) == ("hermes", "qwen3")
    assert chat.ttl_s == 30.0
    # A LoRA model runs on its base's settings, under its own name.
    assert tuned.lora is not None
    assert (tuned.lora.path, tuned.lora.base, tuned.lora.scale) == (
        str(tmp_path / "tuned-lora.gguf"),
        "small",
        0.5,
    )
    assert tuned.path == small.path and tuned.config.ctx_size == 2048
    assert tuned.config.model_id == "tuned"
    assert table.default == "chat"
    assert table.resolve("gpt-4o-mini") == "small"
    assert table.resolve("meta-llama/Llama-3.3-70B-Instruct-Turbo") == "chat"


def test_a_lora_flag_names_its_base() -> None:
    config = ServerConfig(models=("base=/m/base.gguf",), loras=("tuned=/m/l.gguf@base",))
    tuned = model_table(config).specs[1]
    assert tuned.lora is not None and tuned.lora.base == "base"
    assert tuned.path == "/m/base.gguf"


@pytest.mark.parametrize(
    ("config", "message"),
    [
        (ServerConfig(models=("a=/a.gguf", "a=/b.gguf")), "two models are named 'a'"),
        (ServerConfig(models=("a=/a.gguf",), aliases=("x=b",)), "'b', which is not a model"),
        (
            ServerConfig(models=("a=/a.gguf", "b=/b.gguf"), aliases=("a=b",)),
            "'a' names two models",
        ),
        (ServerConfig(models=("a=/a.gguf",), default_model="z"), "default model 'z'"),
        (ServerConfig(models=("noequals",)), "expected NAME=PATH"),
        (ServerConfig(models=("a=/a.gguf",), loras=("t=/l.gguf@zz",)), "its base 'zz'"),
        (ServerConfig(models=("a=/a.gguf",), loras=("t=/l.gguf",)), "NAME=PATH@BASE"),
        (ServerConfig(models_dir="/no/such/dir"), "not a directory"),
    ],
)
def test_a_configuration_that_cannot_work_is_refused_at_startup(
    config: ServerConfig, message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        model_table(config)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("[models.a]\nctx_size = 1\n", "needs a path"),
        ("[models.a]\npath = 'a.gguf'\ncolour = 'red'\n", r"unknown settings \['colour'\]"),
        ("[models.a]\npath = 'a.gguf'\nmax_seqs = 999\n", "max_seqs must be in"),
        ("[modles.a]\npath = 'a.gguf'\n", "unknown top-level keys"),
        ("[models\n", "models.toml"),
        ("[models.a]\npath = 'a.gguf'\naliases = [{}]\n", "aliases must be a list of names"),
        ("[models.a]\npath = 'a.gguf'\naliases = 'xyz'\n", "aliases must be a list of names"),
        ("[models.a]\npath = 'a.gguf'\npinned = 'false'\n", "pinned must be true or false"),
        ("[models.a]\npath = 'a.gguf'\nmax_seqs = 2.5\n", "max_seqs must be an int"),
        ("[models.a]\npath = 3\n", "model_path must be a str"),
        ("[models.a]\npath = 'a.gguf'\nttl = nan\n", "ttl must be a number of seconds"),
        (
            "[models.a]\npath = 'a.gguf'\n[models.t]\nlora = 'l.gguf'\nbase = 'a'\nctx_size = 8\n",
            "a LoRA model runs with its base's settings",
        ),
    ],
)
def test_a_bad_models_file_names_what_is_wrong(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "models.toml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(ValueError, match=message):
        model_table(ServerConfig(models_file=str(path)))


def test_a_model_path_next_to_other_models_is_named_by_its_id(tmp_path: Path) -> None:
    (tmp_path / "other.gguf").write_bytes(b"")
    config = ServerConfig(
        model_path="/m/base.gguf",
        model_id="base",
        models_dir=str(tmp_path),
        loras=("tuned=/m/l.gguf@base",),
    )
    table = model_table(config)
    assert [spec.name for spec in table.specs] == ["base", "other", "tuned"]
    assert table.specs[0].path == "/m/base.gguf"


@pytest.mark.parametrize("ttl", [float("nan"), float("inf"), -1.0])
def test_a_model_ttl_must_be_a_real_duration(ttl: float) -> None:
    with pytest.raises(ValueError, match="model_ttl must be in"):
        ServerConfig(model_ttl=ttl)
