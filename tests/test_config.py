"""Horizon config schema and `chronops config validate`."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from bot.commands.init import default_config
from bot.core.config import Family, HorizonConfig, config_hash, parse_config, render_config
from bot.errors import ConfigError
from tests.conftest import assert_one_line_error, run_cli

T5 = {
    "horizon": "7d", "prediction_length": 5, "model_id": "amazon/chronos-t5-small", "model_family": "t5",
    "context_length": 180, "num_samples": 100, "temperature": 1.0, "top_k": 50, "top_p": 1.0,
}  # fmt: skip


def write(tmp_path: Path, name: str, data: object | str) -> Path:
    path = tmp_path / name
    path.write_text(data if isinstance(data, str) else json.dumps(data))
    return path


def test_roundtrip_and_hash_ignores_provenance() -> None:
    cfg = parse_config(T5, strict=True)
    again = parse_config(json.loads(render_config(cfg)), strict=True)
    assert again == cfg
    assert config_hash(cfg.with_knobs(version=9)) == config_hash(cfg)
    assert config_hash(cfg.with_knobs(temperature=0.8)) != config_hash(cfg)


def test_t5_context_over_limit_is_the_same_effective_config() -> None:
    a = parse_config({**T5, "context_length": 540})
    b = parse_config({**T5, "context_length": 730})
    assert a.effective_context_length == b.effective_context_length == 512
    assert config_hash(a) == config_hash(b)


def test_family_detected_from_model_id() -> None:
    cfg = parse_config(
        {
            "horizon": "7d",
            "prediction_length": 5,
            "model_id": "amazon/chronos-bolt-small",
            "context_length": 90,
        }
    )
    assert cfg.model_family is Family.BOLT and cfg.num_samples is None


@pytest.mark.parametrize(
    ("data", "needle"),
    [
        ([1, 2], "JSON list"),
        ({k: v for k, v in T5.items() if k != "model_id"}, "key 'model_id': missing"),
        ({**T5, "context_length": "180"}, "key 'context_length': '180' is str"),
        ({**T5, "context_length": 3}, "key 'context_length': 3 is out of range"),
        ({**T5, "temperature": 0}, "key 'temperature': 0 is out of range"),
        ({**T5, "horizon": "8d"}, "key 'horizon': '8d'"),
        ({**T5, "typo": 1}, "key 'typo': unknown key"),
    ],
)
def test_parse_errors_name_key_value_and_fix(data: object, needle: str) -> None:
    with pytest.raises(ConfigError) as exc:
        parse_config(data)
    assert needle in str(exc.value)


def test_strict_rejects_ignored_knobs_and_over_limit_context() -> None:
    bolt = {**T5, "model_id": "amazon/chronos-bolt-small", "model_family": "bolt"}
    parse_config(bolt)  # lenient: knobs are dropped
    with pytest.raises(ConfigError, match="bolt models output quantiles and ignore 'temperature'"):
        parse_config(bolt, strict=True)
    with pytest.raises(ConfigError, match="exceeds the t5 limit of 512"):
        parse_config({**T5, "context_length": 730}, strict=True)


def test_scaffold_defaults_pass_strict() -> None:
    for h in ("7d", "15d", "30d", "90d"):
        cfg: HorizonConfig = default_config(h, "amazon/chronos-t5-small")
        assert parse_config(json.loads(render_config(cfg)), strict=True, expected_horizon=h) == cfg


def test_schema_file_is_current() -> None:
    from bot.core.config import json_schema

    on_disk = json.loads(
        (Path(__file__).parent.parent / "configs" / "horizon-config.schema.json").read_text()
    )
    assert on_disk == json_schema()


@pytest.mark.parametrize(
    ("content", "strict", "needles"),
    [
        ("{not json", False, ["7d.json", "invalid JSON at line 1"]),
        ({k: v for k, v in T5.items() if k != "horizon"}, False, ["7d.json", "key 'horizon': missing"]),
        ({**T5, "num_samples": "many"}, False, ["7d.json", "key 'num_samples'", "'many'"]),
        ({**T5, "top_p": 1.5}, False, ["7d.json", "key 'top_p': 1.5 is out of range"]),
        (
            {**T5, "model_id": "amazon/chronos-bolt-small", "model_family": "bolt"},
            True,
            ["7d.json", "ignore 'num_samples'", "(remove it)"],
        ),
    ],
)
def test_cli_validate_one_line_errors(
    tmp_path: Path, content: object, strict: bool, needles: list[str]
) -> None:
    path = write(tmp_path, "7d.json", content if isinstance(content, str) else json.dumps(content))
    args = ["config", "validate", str(path)] + (["--strict"] if strict else [])
    assert_one_line_error(run_cli(*args), *needles)


def test_cli_validate_ok(tmp_path: Path) -> None:
    path = write(tmp_path, "7d.json", T5)
    result = run_cli("config", "validate", "--strict", str(path))
    assert result.code == 0, result.stderr
    assert "ok" in result.stdout
