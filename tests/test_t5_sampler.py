"""The shared-context T5 sampler: same logits as the stock model, same sampling rule as `generate`."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from scipy import stats

from bot.adapters import chronos as chronos_adapter
from bot.adapters.chronos import load_model
from bot.adapters.t5_sampler import T5Sampler, next_tokens
from bot.errors import ModelError

EOS = 1


def draw(
    logits: list[float], rows: int, *, top_k: int = 50, top_p: float = 1.0, temperature: float = 1.0
) -> np.ndarray:
    batch = torch.tensor([logits], dtype=torch.float32).expand(rows, -1)
    streams = [torch.Generator().manual_seed(i) for i in range(rows // 500)]
    return next_tokens(batch, EOS, temperature, top_k, top_p, streams, 500)[:, 0].numpy()


def assert_frequencies(tokens: np.ndarray, expected: dict[int, float]) -> None:
    assert set(np.unique(tokens)) <= set(expected), f"drew tokens outside {sorted(expected)}"
    observed = [int((tokens == t).sum()) for t in expected]
    p = stats.chisquare(observed, [len(tokens) * q for q in expected.values()]).pvalue
    assert p > 0.001, f"frequencies {observed} do not match {expected} (p={p:.2g})"


def test_eos_is_never_drawn_and_top_k_keeps_ties_like_generate() -> None:
    # EOS has the highest logit; tokens 2, 3, 4 tie at the 2nd-highest value: TopKLogitsWarper keeps all three
    tokens = draw([0.0, 9.0, 3.0, 3.0, 3.0, 1.0], 6000, top_k=2)
    assert_frequencies(tokens, {2: 1 / 3, 3: 1 / 3, 4: 1 / 3})


def test_top_p_and_temperature_follow_the_generate_warpers() -> None:
    logits = np.log([1e-9, 1e-9, 0.5, 0.3, 0.2]).tolist()  # token 0 (pad) and EOS practically never
    # TopPLogitsWarper(0.6): ascending cumulative 0.2, 0.5, 1.0 -> drops only the 0.2 token
    assert_frequencies(draw(logits, 6000, top_p=0.6), {2: 0.5 / 0.8, 3: 0.3 / 0.8})
    # temperature 2 takes the square root of the odds
    weights = np.sqrt([0.5, 0.3, 0.2])
    tokens = draw(logits, 6000, temperature=2.0)
    assert_frequencies(tokens[tokens > 1], dict(zip((2, 3, 4), weights / weights.sum(), strict=True)))


def test_logits_match_the_stock_forward_with_and_without_padding(tiny_t5: Path) -> None:
    sampler = T5Sampler(load_model(str(tiny_t5)).pipeline)
    assert sampler.self_check() is None
    context = 900.0 + torch.cumsum(torch.randn(60, generator=torch.Generator().manual_seed(2)), dim=0)
    context[:7] = float("nan")  # missing values: attention-masked by the tokenizer
    assert sampler.self_check(context) is None


def test_same_distribution_as_the_stock_pipeline(tiny_t5: Path) -> None:
    model = load_model(str(tiny_t5))
    assert model.sampler is not None
    context = torch.tensor(900.0 + np.cumsum(np.random.default_rng(3).normal(0, 6, 120)), dtype=torch.float32)
    torch.manual_seed(5)
    stock = model.pipeline.predict(context, prediction_length=3, num_samples=600)[0].numpy().ravel()
    fast = (
        model.sampler.sample(
            context, 3, num_samples=600, temperature=None, top_k=None, top_p=None, seed=7, stream_size=100
        )
        .numpy()
        .ravel()
    )
    colder = (
        model.sampler.sample(
            context, 3, num_samples=600, temperature=0.3, top_k=None, top_p=None, seed=7, stream_size=100
        )
        .numpy()
        .ravel()
    )
    assert stats.ks_2samp(stock, fast).pvalue > 0.01
    assert stats.ks_2samp(stock, colder).pvalue < 0.001  # the comparison can tell distributions apart


def test_first_draws_do_not_depend_on_the_total_and_long_horizons_roll(tiny_t5: Path) -> None:
    sampler = load_model(str(tiny_t5)).sampler
    assert sampler is not None
    context = torch.linspace(800.0, 900.0, 200)
    kw = {"temperature": 1.0, "top_k": 50, "top_p": 1.0, "seed": 11, "stream_size": 10}
    small = sampler.sample(context, 5, num_samples=20, **kw)
    large = sampler.sample(context, 5, num_samples=50, **kw)
    torch.testing.assert_close(small, large[:20])
    long = sampler.sample(context, 70, num_samples=12, **kw)  # 64 + 6: a second decode window
    assert long.shape == (12, 70) and bool(torch.isfinite(long).all())


def test_stock_sampler_by_choice_or_when_the_self_check_fails(
    tiny_t5: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    copy = tmp_path / "t5-copy"
    shutil.copytree(tiny_t5, copy)
    monkeypatch.setenv("CHRONOPS_T5_SAMPLER", "stock")
    assert load_model(str(copy)).sampler is None
    chronos_adapter._CACHE.clear()
    monkeypatch.setenv("CHRONOPS_T5_SAMPLER", "fastest")
    with pytest.raises(ModelError, match="CHRONOPS_T5_SAMPLER='fastest'"):
        load_model(str(copy))
    monkeypatch.delenv("CHRONOPS_T5_SAMPLER")
    monkeypatch.setattr(T5Sampler, "self_check", lambda self, context=None: "logits differ by 0.5")
    model = load_model(str(copy))
    assert model.sampler is None
    assert "shared-context sampler disabled (logits differ by 0.5)" in caplog.text
    forecast, seconds = model.predict(np.linspace(800, 900, 64), 5, num_samples=20, seed=1, sample_chunk=10)
    assert forecast.samples is not None and forecast.samples.shape == (20, 5) and seconds > 0
    chronos_adapter._CACHE.clear()
