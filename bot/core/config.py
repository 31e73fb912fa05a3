"""Horizon configs: the schema, parsing with actionable errors, and the effective config.

Pure: no file IO. `bot.adapters.configs` reads and writes the JSON files.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from enum import StrEnum
from typing import Any

from bot.errors import ConfigError

HORIZONS: tuple[str, ...] = ("7d", "15d", "30d", "90d")
SCHEMA_VERSION = 1


class Family(StrEnum):
    """Chronos model families. They differ in what they output and which knobs exist."""

    T5 = "t5"  # ChronosPipeline: sample paths; num_samples/temperature/top_k/top_p matter
    BOLT = "bolt"  # ChronosBoltPipeline: quantiles 0.1..0.9, no sampling knobs
    CHRONOS2 = "chronos2"  # Chronos2Pipeline: quantiles 0.01..0.99, no sampling knobs


# Longest context each family reads; longer contexts are silently cut to the last N points.
CONTEXT_LIMIT: dict[Family, int] = {Family.T5: 512, Family.BOLT: 2048, Family.CHRONOS2: 8192}
SAMPLING_KNOBS = ("num_samples", "temperature", "top_k", "top_p")

# Default prediction length in observations of a banking-day series (about 5 per calendar week).
DEFAULT_PREDICTION_LENGTH: dict[str, int] = {"7d": 5, "15d": 10, "30d": 21, "90d": 63}


@dataclass(frozen=True)
class Provenance:
    """Which run / PR produced a config."""

    source: str = "manual"  # "manual", "init", "chronops"
    run_id: str | None = None
    pull_request: str | None = None
    updated_at: str | None = None


@dataclass(frozen=True)
class HorizonConfig:
    horizon: str
    prediction_length: int
    model_id: str
    model_family: Family
    context_length: int
    num_samples: int | None = None
    temperature: float | None = None
    top_k: int | None = None
    top_p: float | None = None
    version: int = 1
    provenance: Provenance = field(default_factory=Provenance)

    @property
    def effective_context_length(self) -> int:
        return min(self.context_length, CONTEXT_LIMIT[self.model_family])

    def knobs(self) -> dict[str, Any]:
        """The hyperparameters that change forecasts, with model limits applied."""
        out: dict[str, Any] = {
            "model_id": self.model_id,
            "model_family": self.model_family.value,
            "prediction_length": self.prediction_length,
            "context_length": self.effective_context_length,
        }
        if self.model_family is Family.T5:
            out.update(
                num_samples=self.num_samples,
                temperature=self.temperature,
                top_k=self.top_k,
                top_p=self.top_p,
            )
        return out

    def with_knobs(self, **changes: Any) -> HorizonConfig:
        return replace(self, **changes)


def config_hash(cfg: HorizonConfig) -> str:
    """Hash of what changes forecasts (not version or provenance): 12 hex chars."""
    blob = json.dumps(cfg.knobs(), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(blob.encode()).hexdigest()[:12]


def config_to_dict(cfg: HorizonConfig) -> dict[str, Any]:
    out: dict[str, Any] = {
        "schema_version": SCHEMA_VERSION,
        "horizon": cfg.horizon,
        "prediction_length": cfg.prediction_length,
        "model_id": cfg.model_id,
        "model_family": cfg.model_family.value,
        "context_length": cfg.context_length,
    }
    if cfg.model_family is Family.T5:
        for knob in SAMPLING_KNOBS:
            out[knob] = getattr(cfg, knob)
    out["version"] = cfg.version
    prov = {k: v for k, v in vars(cfg.provenance).items() if v is not None}
    out["provenance"] = prov
    return out


def render_config(cfg: HorizonConfig) -> str:
    """The canonical file text: stable key order, 2-space indent, trailing newline (minimal diffs)."""
    return json.dumps(config_to_dict(cfg), indent=2, ensure_ascii=False) + "\n"


_T5_DEFAULTS = {"num_samples": 100, "temperature": 1.0, "top_k": 50, "top_p": 1.0}
_ALLOWED_KEYS = {
    "$schema",
    "schema_version",
    "horizon",
    "prediction_length",
    "model_id",
    "model_family",
    "context_length",
    *SAMPLING_KNOBS,
    "version",
    "provenance",
}


def detect_family(model_id: str) -> Family | None:
    """Guess the family from a model id such as 'amazon/chronos-bolt-small'."""
    name = model_id.lower().rsplit("/", 1)[-1]
    if "chronos-2" in name or "chronos2" in name:
        return Family.CHRONOS2
    if "bolt" in name:
        return Family.BOLT
    if "t5" in name:
        return Family.T5
    return None


class _Checker:
    """Collects problems as 'key: bad value (fix)' strings."""

    def __init__(self, data: Mapping[str, Any]) -> None:
        self.data = data
        self.problems: list[str] = []

    def fail(self, key: str, msg: str) -> None:
        self.problems.append(f"key '{key}': {msg}")

    def require(self, key: str) -> Any:
        if key not in self.data:
            self.fail(key, "missing (add it)")
            return None
        return self.data[key]

    def integer(self, key: str, lo: int, hi: int, *, required: bool = True) -> int | None:
        value = self.require(key) if required else self.data.get(key)
        if value is None:
            return None
        if isinstance(value, bool) or not isinstance(value, int):
            self.fail(key, f"{value!r} is {type(value).__name__}, expected an integer between {lo} and {hi}")
            return None
        if not lo <= value <= hi:
            self.fail(key, f"{value} is out of range (use an integer between {lo} and {hi})")
            return None
        return value

    def number(self, key: str, lo: float, hi: float, *, lo_open: bool = False) -> float | None:
        value = self.data.get(key)
        if value is None:
            return None
        if isinstance(value, bool) or not isinstance(value, int | float):
            self.fail(key, f"{value!r} is {type(value).__name__}, expected a number in [{lo}, {hi}]")
            return None
        bad_low = value <= lo if lo_open else value < lo
        if bad_low or value > hi or value != value:  # NaN (json reads the literal) compares false both ways
            bound = f"({lo}, {hi}]" if lo_open else f"[{lo}, {hi}]"
            self.fail(key, f"{value} is out of range (use a number in {bound})")
            return None
        return float(value)


def parse_config(data: object, *, strict: bool = False, expected_horizon: str | None = None) -> HorizonConfig:
    """Validate a decoded JSON document. Raises ConfigError listing every problem found."""
    if not isinstance(data, dict):
        raise ConfigError(f"the document is a JSON {type(data).__name__}, expected an object {{...}}")
    chk = _Checker(data)
    unknown = sorted(set(data) - _ALLOWED_KEYS)
    for key in unknown:
        chk.fail(key, "unknown key (remove it; see configs/horizon-config.schema.json)")

    horizon = chk.require("horizon")
    if horizon is not None and horizon not in HORIZONS:
        chk.fail("horizon", f"{horizon!r} is not one of {', '.join(HORIZONS)}")
    if expected_horizon and horizon is not None and horizon != expected_horizon:
        chk.fail("horizon", f"{horizon!r} does not match the file name (expected {expected_horizon!r})")

    model_id = chk.require("model_id")
    if model_id is not None and (not isinstance(model_id, str) or not model_id.strip()):
        chk.fail("model_id", f"{model_id!r} must be a non-empty string (a Hugging Face id or a directory)")
        model_id = None

    family_raw = data.get("model_family")
    family: Family | None = None
    if family_raw is None:
        family = detect_family(model_id) if isinstance(model_id, str) else None
        if family is None and model_id is not None:
            chk.fail("model_family", "missing and not detectable from model_id (set t5, bolt or chronos2)")
    elif family_raw not in {f.value for f in Family}:
        chk.fail("model_family", f"{family_raw!r} is not one of t5, bolt, chronos2")
    else:
        family = Family(family_raw)

    pred = chk.integer("prediction_length", 1, 366)
    ctx = chk.integer("context_length", 8, 100_000)
    version = chk.integer("version", 1, 10**9, required=False)
    if family is not None and ctx is not None and strict and ctx > CONTEXT_LIMIT[family]:
        chk.fail(
            "context_length",
            f"{ctx} exceeds the {family.value} limit of {CONTEXT_LIMIT[family]} "
            f"(the model would silently use the last {CONTEXT_LIMIT[family]}; set it to at most that)",
        )

    knobs: dict[str, Any] = {}
    knobs["num_samples"] = chk.integer("num_samples", 1, 10_000, required=False)
    knobs["temperature"] = chk.number("temperature", 0.0, 10.0, lo_open=True)
    knobs["top_k"] = chk.integer("top_k", 0, 100_000, required=False)
    knobs["top_p"] = chk.number("top_p", 0.0, 1.0, lo_open=True)
    if family in (Family.BOLT, Family.CHRONOS2):
        present = [k for k in SAMPLING_KNOBS if k in data]
        if strict:
            for knob in present:
                chk.fail(knob, f"{family.value} models output quantiles and ignore '{knob}' (remove it)")
        knobs = dict.fromkeys(SAMPLING_KNOBS)
    elif family is Family.T5:
        for knob, default in _T5_DEFAULTS.items():
            if knobs[knob] is None and knob not in data:
                if strict:
                    chk.fail(knob, f"missing for a t5 config (add it, e.g. {default})")
                knobs[knob] = default

    provenance = _parse_provenance(chk, data.get("provenance"))
    if chk.problems:
        raise ConfigError("; ".join(chk.problems))
    assert family is not None and isinstance(model_id, str) and pred is not None and ctx is not None
    return HorizonConfig(
        horizon=str(horizon),
        prediction_length=pred,
        model_id=model_id,
        model_family=family,
        context_length=ctx,
        version=version or 1,
        provenance=provenance,
        **knobs,
    )


def _parse_provenance(chk: _Checker, raw: object) -> Provenance:
    if raw is None:
        return Provenance()
    if not isinstance(raw, dict):
        chk.fail("provenance", f'{raw!r} must be an object like {{"source": "manual"}}')
        return Provenance()
    allowed = {"source", "run_id", "pull_request", "updated_at"}
    for key, value in raw.items():
        if key not in allowed:
            chk.fail(f"provenance.{key}", f"unknown key (allowed: {', '.join(sorted(allowed))})")
        elif value is not None and not isinstance(value, str):
            chk.fail(f"provenance.{key}", f"{value!r} must be a string")
    if any(p.startswith("key 'provenance") for p in chk.problems):
        return Provenance()
    return Provenance(
        source=str(raw.get("source") or "manual"),
        run_id=raw.get("run_id"),
        pull_request=raw.get("pull_request"),
        updated_at=raw.get("updated_at"),
    )


def json_schema() -> dict[str, Any]:
    """The JSON Schema for editors (configs/horizon-config.schema.json is generated from this)."""
    sampling = {
        "num_samples": {"type": "integer", "minimum": 1, "maximum": 10000},
        "temperature": {"type": "number", "exclusiveMinimum": 0, "maximum": 10},
        "top_k": {"type": "integer", "minimum": 0},
        "top_p": {"type": "number", "exclusiveMinimum": 0, "maximum": 1},
    }
    quantile_family = {
        "if": {"properties": {"model_family": {"enum": ["bolt", "chronos2"]}}, "required": ["model_family"]},
        "then": {"not": {"anyOf": [{"required": [k]} for k in SAMPLING_KNOBS]}},
    }
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": "horizon-config.schema.json",
        "title": "chronops horizon config",
        "description": "One Chronos forecasting config per horizon. Validate with `chronops config validate`.",
        "type": "object",
        "additionalProperties": False,
        "required": ["horizon", "prediction_length", "model_id", "context_length"],
        "properties": {
            "$schema": {"type": "string"},
            "schema_version": {"const": SCHEMA_VERSION},
            "horizon": {"enum": list(HORIZONS)},
            "prediction_length": {
                "type": "integer",
                "minimum": 1,
                "maximum": 366,
                "description": "Steps ahead, in observations of the (banking-day) series.",
            },
            "model_id": {"type": "string", "minLength": 1, "description": "Hugging Face id or local dir."},
            "model_family": {"enum": [f.value for f in Family]},
            "context_length": {
                "type": "integer",
                "minimum": 8,
                "description": "Observations of history fed to the model (t5 <= 512, bolt <= 2048).",
            },
            **sampling,
            "version": {"type": "integer", "minimum": 1},
            "provenance": {
                "type": "object",
                "additionalProperties": False,
                "properties": {
                    k: {"type": ["string", "null"]}
                    for k in ("source", "run_id", "pull_request", "updated_at")
                },
            },
        },
        "allOf": [quantile_family],
    }


def is_initial(cfg: HorizonConfig) -> bool:
    """A scaffolded config (provenance.source == 'init') was never validated: initial deployment."""
    return cfg.provenance.source == "init"
