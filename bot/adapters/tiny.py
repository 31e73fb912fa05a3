"""Random-weight Chronos models of the real tiny architectures, built offline.

Their compute cost equals the real tiny models'; their forecasts are noise. Tests, benchmarks and
the demo use them because no pretrained weights can be downloaded here. Every directory built
carries a CHRONOPS_RANDOM_WEIGHTS marker, and reports say the forecasts are meaningless.
"""

from __future__ import annotations

import contextlib
import io
import json
from pathlib import Path
from typing import Any

from bot.core.config import Family
from bot.errors import ModelError

MARKER = "CHRONOPS_RANDOM_WEIGHTS"
_T5_TINY: dict[str, Any] = {
    "d_model": 256,
    "d_ff": 1024,
    "num_layers": 4,
    "num_decoder_layers": 4,
    "num_heads": 4,
    "d_kv": 64,
}

_T5_COMMON: dict[str, Any] = {
    "decoder_start_token_id": 0,
    "pad_token_id": 0,
    "eos_token_id": 1,
    "feed_forward_proj": "relu",
    "dropout_rate": 0.1,
}


def is_random_weight_model(path: Path) -> bool:
    return (path / MARKER).exists()


def build_tiny_model(family: Family, out: Path, *, seed: int = 0) -> Path:
    """Write a random-weight `family` model of the tiny architecture to `out` and return it."""
    import torch

    if out.exists() and any(out.iterdir()):
        if is_random_weight_model(out):
            return out
        raise ModelError(f"{out}: directory exists and is not a chronops tiny model (choose another --out)")
    out.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(seed)
    with contextlib.redirect_stderr(io.StringIO()):
        if family is Family.T5:
            _build_t5(out)
        elif family is Family.BOLT:
            _build_bolt(out)
        else:
            _build_chronos2(out)
    (out / MARKER).write_text(
        json.dumps(
            {"family": family.value, "seed": seed, "note": "random weights: forecasts are meaningless"}
        )
        + "\n"
    )
    # Readable by the forecaster container's user, whatever the writer's umask or temp-file modes.
    for path in [out, *out.rglob("*")]:
        path.chmod(0o755 if path.is_dir() else 0o644)
    return out


def _build_t5(out: Path) -> None:
    from transformers import T5Config, T5ForConditionalGeneration

    kwargs: dict[str, Any] = {**_T5_TINY, **_T5_COMMON, "vocab_size": 4096}
    cfg = T5Config(**kwargs)
    cfg.chronos_config = {
        "tokenizer_class": "MeanScaleUniformBins",
        "tokenizer_kwargs": {"low_limit": -15.0, "high_limit": 15.0},
        "context_length": 512,
        "prediction_length": 64,
        "n_tokens": 4096,
        "n_special_tokens": 2,
        "pad_token_id": 0,
        "eos_token_id": 1,
        "use_eos_token": True,
        "model_type": "seq2seq",
        "num_samples": 20,
        "temperature": 1.0,
        "top_k": 50,
        "top_p": 1.0,
    }
    cfg.architectures = ["T5ForConditionalGeneration"]
    T5ForConditionalGeneration(cfg).save_pretrained(out)


def _build_bolt(out: Path) -> None:
    from chronos.chronos_bolt import ChronosBoltModelForForecasting
    from transformers import T5Config

    kwargs: dict[str, Any] = {**_T5_TINY, **_T5_COMMON, "vocab_size": 2}
    cfg = T5Config(**kwargs)
    cfg.chronos_config = {
        "context_length": 2048,
        "prediction_length": 64,
        "input_patch_size": 16,
        "input_patch_stride": 16,
        "quantiles": [0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9],
        "use_reg_token": True,
    }
    cfg.chronos_pipeline_class = "ChronosBoltPipeline"
    cfg.architectures = ["ChronosBoltModelForForecasting"]
    ChronosBoltModelForForecasting(cfg).save_pretrained(out)


def _build_chronos2(out: Path) -> None:
    from chronos.chronos2 import Chronos2CoreConfig, Chronos2Model

    cfg = Chronos2CoreConfig(d_model=256, d_kv=64, d_ff=1024, num_layers=4, num_heads=4)
    cfg.chronos_config = {
        "context_length": 8192,
        "output_patch_size": 16,
        "input_patch_size": 16,
        "input_patch_stride": 16,
        "quantiles": [0.01, 0.05, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 0.95, 0.99],
        "use_reg_token": True,
        "use_arcsinh": True,
        "max_output_patches": 64,
        "time_encoding_scale": 8192,
    }
    cfg.chronos_pipeline_class = "Chronos2Pipeline"
    cfg.architectures = ["Chronos2Model"]
    Chronos2Model(cfg).save_pretrained(out)
