"""The validation gate: every criterion at its boundary, the paired test against references."""

from __future__ import annotations

import json
import math
from dataclasses import replace

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from bot.core.gate import NO_CURRENT, Verdict, evaluate_gate
from bot.core.metrics import Scores
from bot.core.noise_test import newey_west_variance, overlap_lag, paired_noise_test
from bot.core.params import ApprovalSettings

SETTINGS = ApprovalSettings()
ORIGINS = pd.date_range("2025-01-06", periods=8, freq="7D")


def scores(**overrides: float) -> Scores:
    base: dict[str, float] = {
        "rmse": 100.0,
        "mape": 10.0,
        "mae": 80.0,
        "bias": 0.0,
        "error_std": 100.0,
        "coverage95": 95.0,
        "crps": 50.0,
        "naive_rmse": 120.0,
        "skill": 1.0 - 100.0 / 120.0,
        "inference_seconds": 1.0,
        "n_origins": 8,
        "n_points": 40,
    }
    base.update(overrides)
    return Scores(**base)  # type: ignore[arg-type]


def losses(values: list[float]) -> pd.Series:
    return pd.Series(values, index=ORIGINS[: len(values)], dtype=float)


# Candidate clearly better on every origin (d = 2, 3, 2, 3, ...): the noise test passes easily.
CANDIDATE_LOSSES = losses([10.0, 11.0, 12.0, 13.0, 14.0, 15.0, 16.0, 17.0])
CURRENT_LOSSES = losses([12.0, 14.0, 14.0, 16.0, 16.0, 18.0, 18.0, 20.0])
# Current: rmse 100, mape 10; this candidate passes everything with margin.
GOOD = {"rmse": 90.0, "mape": 9.0, "error_std": 95.0, "bias": 1.0, "coverage95": 94.0}


def gate(
    candidate: Scores,
    current: Scores | None = None,
    *,
    settings: ApprovalSettings = SETTINGS,
    current_losses: pd.Series | None = CURRENT_LOSSES,
    candidate_losses: pd.Series = CANDIDATE_LOSSES,
    naive_rmse: float = 120.0,
    force_reason: str | None = None,
    prediction_length: int = 5,
    origin_step: int | None = None,
) -> Verdict:
    return evaluate_gate(
        current=current,
        candidate=candidate,
        naive_rmse=naive_rmse,
        current_losses=current_losses,
        candidate_losses=candidate_losses,
        prediction_length=prediction_length,
        settings=settings,
        force_reason=force_reason,
        origin_step=origin_step,
    )


def compare(settings: ApprovalSettings = SETTINGS, **candidate: float) -> Verdict:
    return gate(scores(**{**GOOD, **candidate}), scores(), settings=settings)


def test_good_candidate_is_approved_with_all_six_criteria() -> None:
    verdict = compare()
    assert verdict.approved and verdict.decision == "approved"
    assert [c.name for c in verdict.criteria] == [
        "rmse_or_mape",
        "error_std",
        "inference_time",
        "ci95_coverage",
        "abs_bias",
        "significance",
    ]
    assert all(c.passed for c in verdict.criteria)
    assert verdict.rmse_improvement_pct == pytest.approx(10.0)
    assert verdict.mape_improvement_pct == pytest.approx(10.0)
    assert verdict.reasons == ("all 6 criteria passed",)
    assert verdict.headline.startswith("APPROVED: RMSE 10.0% lower, MAPE 10.0% lower, chance the gain is noise ")


def test_headline_reads_like_the_spec() -> None:
    current_losses = losses([12.0, 12.0, 15.0, 12.0, 16.0, 16.0, 18.0, 18.0])  # p = 0.68%
    verdict = gate(scores(**{**GOOD, "rmse": 87.7, "mape": 9.19}), scores(), current_losses=current_losses)
    assert verdict.headline == "APPROVED: RMSE 12.3% lower, MAPE 8.1% lower, chance the gain is noise 0.7%"
    worse = compare(rmse=103.0, mape=10.2)
    assert worse.headline.startswith("REJECTED (failed: RMSE or MAPE improvement): RMSE 3.0% higher, MAPE 2.0% higher")
    # one sign convention everywhere: the criterion row says "improvement -3.0%" for "3.0% higher"
    assert worse.criterion("rmse_or_mape").value == pytest.approx(-3.0)
    assert compare().headline.endswith("chance the gain is noise <0.1%")


# --- criterion 1: RMSE OR MAPE ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("rmse", "mape", "passed"),
    [
        (95.0, 10.0, True),  # RMSE exactly 5% better, MAPE unchanged
        (95.01, 10.0, False),  # just under 5%, MAPE unchanged
        (100.0, 9.7, True),  # RMSE unchanged, MAPE exactly 3% better
        (100.0, 9.701, False),  # MAPE just under 3%
        (95.01, 9.701, False),  # both just short: OR of two misses is a miss
        (110.0, 9.7, True),  # RMSE worse, MAPE alone carries it
        (95.0, 12.0, True),  # MAPE worse, RMSE alone carries it
    ],
)
def test_rmse_or_mape_boundary_and_or_logic(rmse: float, mape: float, passed: bool) -> None:
    crit = compare(rmse=rmse, mape=mape).criterion("rmse_or_mape")
    assert crit.passed is passed
    assert crit.value == pytest.approx(100.0 - rmse)
    assert (crit.threshold, crit.comparator) == (5.0, ">=")


def test_rmse_or_mape_thresholds_come_from_settings() -> None:
    strict = replace(SETTINGS, min_rmse_improvement_pct=20.0, min_mape_improvement_pct=20.0)
    assert not compare(strict).criterion("rmse_or_mape").passed
    assert compare(strict, rmse=80.0).criterion("rmse_or_mape").passed


# --- criteria 2-5 ---------------------------------------------------------------------------------


@pytest.mark.parametrize(("std", "passed"), [(110.0, True), (110.01, False), (50.0, True)])
def test_error_std_increase_boundary(std: float, passed: bool) -> None:
    crit = compare(error_std=std).criterion("error_std")
    assert crit.passed is passed
    assert crit.value == pytest.approx(std - 100.0)


@pytest.mark.parametrize(("seconds", "passed"), [(1.5, True), (1.5001, False), (0.2, True)])
def test_inference_time_increase_boundary(seconds: float, passed: bool) -> None:
    crit = compare(inference_seconds=seconds).criterion("inference_time")
    assert crit.passed is passed
    assert crit.value == pytest.approx((seconds - 1.0) * 100.0)


@pytest.mark.parametrize(("coverage", "passed"), [(90.0, True), (89.99, False), (100.0, True)])
def test_coverage_boundary(coverage: float, passed: bool) -> None:
    verdict = compare(coverage95=coverage)
    assert verdict.criterion("ci95_coverage").passed is passed
    assert verdict.approved is passed


@pytest.mark.parametrize(("bias", "passed"), [(4.99, True), (5.0, False), (-5.0, False), (-4.99, True)])
def test_bias_is_strictly_below_the_limit(bias: float, passed: bool) -> None:
    crit = compare(bias=bias).criterion("abs_bias")
    assert crit.passed is passed
    assert crit.value == pytest.approx(abs(bias))
    assert crit.comparator == "<"


def test_rejection_names_every_failed_criterion() -> None:
    verdict = compare(rmse=99.0, mape=9.9, bias=7.0)
    assert verdict.decision == "rejected" and not verdict.approved
    assert [c.name for c in verdict.failed] == ["rmse_or_mape", "abs_bias"]
    assert len(verdict.reasons) == 2
    assert verdict.reasons[0].startswith("RMSE or MAPE improvement failed: ")
    assert verdict.headline.startswith("REJECTED (failed: RMSE or MAPE improvement, Absolute bias): RMSE 1.0% lower, MAPE 1.0% lower")


def test_zero_current_value_fails_closed_unless_candidate_is_also_zero() -> None:
    undefined = gate(scores(**{**GOOD, "inference_seconds": 0.5}), scores(inference_seconds=0.0))
    crit = undefined.criterion("inference_time")
    assert crit.value is None and not crit.passed and "undefined" in crit.detail
    both_zero = gate(scores(**{**GOOD, "inference_seconds": 0.0}), scores(inference_seconds=0.0))
    assert both_zero.criterion("inference_time").value == 0.0
    assert both_zero.approved


def test_non_finite_candidate_metric_fails_and_still_serialises() -> None:
    verdict = compare(rmse=float("nan"), mape=float("nan"), coverage95=float("nan"))
    assert not verdict.criterion("rmse_or_mape").passed
    assert verdict.criterion("ci95_coverage").value is None
    assert verdict.rmse_improvement_pct is None
    text = json.dumps(verdict.to_dict(), allow_nan=False)
    assert Verdict.from_dict(json.loads(text)) == verdict


# --- criterion 6: significance --------------------------------------------------------------------


def test_significance_boundary_uses_the_exact_p_value() -> None:
    p = paired_noise_test(CURRENT_LOSSES, CANDIDATE_LOSSES, lag=0).p_value
    at = replace(SETTINGS, max_noise_probability=p)
    below = replace(SETTINGS, max_noise_probability=math.nextafter(p, 0.0))
    assert compare(at).criterion("significance").passed
    assert compare(at).noise_probability == p
    verdict = compare(below)
    assert not verdict.criterion("significance").passed and verdict.decision == "rejected"


def test_noisy_gain_is_rejected_but_passes_the_seed_rule() -> None:
    noisy = losses([12.0, 9.0, 15.0, 11.0, 14.0, 16.0, 15.0, 18.0])  # mean gain 0.5, sd ~2.7
    verdict = gate(scores(**GOOD), scores(), current_losses=noisy)
    crit = verdict.criterion("significance")
    assert not crit.passed and verdict.decision == "rejected"
    assert crit.value is not None and crit.value > 0.05
    seed_rule = gate(
        scores(**GOOD), scores(), current_losses=noisy, settings=replace(SETTINGS, max_noise_probability=1.0)
    )
    crit = seed_rule.criterion("significance")
    assert seed_rule.approved and crit.passed and crit.value == verdict.noise_probability
    assert "reported only" in crit.detail


def test_missing_current_losses_fail_the_required_test() -> None:
    verdict = gate(scores(**GOOD), scores(), current_losses=None)
    crit = verdict.criterion("significance")
    assert crit.value is None and not crit.passed and verdict.noise_probability is None
    assert "cannot run" in crit.detail
    off = gate(
        scores(**GOOD), scores(), current_losses=None, settings=replace(SETTINGS, max_noise_probability=1.0)
    )
    assert off.approved


def test_origin_step_sets_the_overlap_lag() -> None:
    crit = gate(scores(**GOOD), scores(), prediction_length=21, origin_step=5).criterion("significance")
    assert "lag 4" in crit.detail
    assert "lag 0" in gate(scores(**GOOD), scores(), prediction_length=21).criterion("significance").detail


@pytest.mark.parametrize(
    ("h", "step", "lag"), [(5, 5, 0), (5, 10, 0), (21, 5, 4), (5, 1, 4), (5, 2, 2), (5, 3, 1), (1, 1, 0)]
)
def test_overlap_lag(h: int, step: int, lag: int) -> None:
    assert overlap_lag(h, step) == lag


def test_overlap_lag_rejects_nonsense() -> None:
    with pytest.raises(ValueError, match="origin_step"):
        overlap_lag(5, 0)


def test_dm_hand_computed() -> None:
    # d = 1, 2, 3, 4: mean 2.5, gamma0 = 1.25, DM = 2.5 / sqrt(1.25/4), HLN factor sqrt(3/4).
    test = paired_noise_test(losses([2.0, 4.0, 6.0, 8.0]), losses([1.0, 2.0, 3.0, 4.0]), lag=0)
    statistic = 2.5 / math.sqrt(1.25 / 4) * math.sqrt(3 / 4)
    assert test.statistic == pytest.approx(statistic) == pytest.approx(3.872983346)
    assert test.p_value == pytest.approx(float(stats.t.sf(statistic, 3)))
    assert test.mean_gain == pytest.approx(2.5) and test.n_origins == 4


def test_detectable_gain_is_the_80_percent_power_gain_at_the_observed_noise() -> None:
    # d = +1, -1 alternating over 8 origins: sample sd sqrt(8/7), se = sd / sqrt(8) = 1/sqrt(7)
    current = [100.0] * 8
    candidate = [100.0 - (1.0 if i % 2 == 0 else -1.0) for i in range(8)]
    test = paired_noise_test(losses(current), losses(candidate), lag=0, alpha=0.05)
    delta = (stats.t.ppf(0.95, 7) + stats.t.ppf(0.80, 7)) / math.sqrt(7)  # a mean MSE gain, CLP^2
    assert test.detectable_rmse_gain_pct == pytest.approx(100.0 * (1.0 - math.sqrt(1.0 - delta / 100.0)))
    # a stricter level needs a larger gain; the verdict carries the figure and serialises it
    strict = paired_noise_test(losses(current), losses(candidate), lag=0, alpha=0.01)
    assert strict.detectable_rmse_gain_pct is not None and test.detectable_rmse_gain_pct is not None
    assert strict.detectable_rmse_gain_pct > test.detectable_rmse_gain_pct
    verdict = evaluate_gate(
        current=scores(), candidate=scores(), naive_rmse=20.0, current_losses=losses(current),
        candidate_losses=losses(candidate), prediction_length=5, settings=ApprovalSettings(),
    )  # fmt: skip
    assert verdict.detectable_rmse_gain_pct == pytest.approx(test.detectable_rmse_gain_pct)
    assert Verdict.from_dict(json.loads(json.dumps(verdict.to_dict()))) == verdict


def test_dm_at_lag_zero_equals_the_one_sided_paired_t_test() -> None:
    rng = np.random.default_rng(7)
    cur = pd.Series(rng.gamma(2.0, 5.0, 24), index=pd.date_range("2024-01-01", periods=24, freq="7D"))
    cand = cur * 0.9 + rng.normal(0, 2.0, 24)
    reference = stats.ttest_rel(cur, cand, alternative="greater")
    test = paired_noise_test(cur, cand, lag=0)
    assert test.statistic == pytest.approx(reference.statistic, rel=1e-12)
    assert test.p_value == pytest.approx(reference.pvalue, rel=1e-10)


def _reference_dm(d: list[float], lag: int) -> tuple[float, float]:
    """Independent loop implementation: Newey-West (Bartlett) DM with the HLN factor."""
    n = len(d)
    mean = sum(d) / n
    gammas = []
    for k in range(lag + 1):
        acc = 0.0
        for t in range(k, n):
            acc += (d[t] - mean) * (d[t - k] - mean)
        gammas.append(acc / n)
    lrv = gammas[0] + sum(2 * (1 - k / (lag + 1)) * gammas[k] for k in range(1, lag + 1))
    h = lag + 1
    statistic = mean / math.sqrt(lrv / n) * math.sqrt((n + 1 - 2 * h + h * (h - 1) / n) / n)
    return statistic, float(stats.t.sf(statistic, n - 1))


@pytest.mark.parametrize("lag", [0, 1, 2, 4])
def test_dm_matches_a_loop_reference(lag: int) -> None:
    rng = np.random.default_rng(100 + lag)
    idx = pd.date_range("2024-01-01", periods=30, freq="B")
    shock = rng.normal(0, 1, 30 + lag)
    d = np.convolve(shock, np.ones(lag + 1), mode="valid")[:30] + 0.4  # MA(lag) differential
    cand = pd.Series(rng.gamma(3.0, 2.0, 30), index=idx)
    cur = cand + d
    statistic, p = _reference_dm(list(d), lag)
    test = paired_noise_test(cur, cand, lag=lag)
    assert test.statistic == pytest.approx(statistic, rel=1e-10)
    assert test.p_value == pytest.approx(p, rel=1e-9)
    assert newey_west_variance(d, lag) > 0


def test_dm_aligns_on_origins_and_ignores_order_and_gaps() -> None:
    shuffled = CURRENT_LOSSES.iloc[[3, 0, 7, 5, 1, 6, 2, 4]]
    extra = pd.concat([CANDIDATE_LOSSES, pd.Series([99.0], index=[pd.Timestamp("2030-01-01")])])
    aligned = paired_noise_test(shuffled, extra, lag=0)
    plain = paired_noise_test(CURRENT_LOSSES, CANDIDATE_LOSSES, lag=0)
    assert aligned.p_value == plain.p_value and aligned.n_origins == 8
    assert "1 unpaired or non-finite origins left out" in aligned.detail
    with_nan = CURRENT_LOSSES.copy()
    with_nan.iloc[0] = float("nan")
    assert paired_noise_test(with_nan, CANDIDATE_LOSSES, lag=0).n_origins == 7


def test_dm_worse_candidate_has_high_noise_probability() -> None:
    test = paired_noise_test(CANDIDATE_LOSSES, CURRENT_LOSSES, lag=0)
    assert test.p_value > 0.99


@pytest.mark.parametrize(
    ("cur", "cand", "needle"),
    [
        ([1.0, 2.0], [0.5, 1.0], "only 2 paired origins"),
        ([], [], "only 0 paired origins"),
        ([1.0, 2.0, 3.0, 4.0], [1.0, 2.0, 3.0, 4.0], "identical losses"),
        ([2.0, 3.0, 4.0, 5.0], [1.0, 2.0, 3.0, 4.0], "zero variance"),
    ],
)
def test_dm_degenerate_inputs_give_p_one(cur: list[float], cand: list[float], needle: str) -> None:
    test = paired_noise_test(losses(cur), losses(cand), lag=0)
    assert test.p_value == 1.0 and test.statistic is None
    assert needle in test.detail
    verdict = gate(scores(**GOOD), scores(), current_losses=losses(cur), candidate_losses=losses(cand))
    assert verdict.noise_probability == 1.0 and not verdict.criterion("significance").passed


def test_dm_lag_too_large_for_the_sample_gives_p_one() -> None:
    test = paired_noise_test(losses([3.0, 1.0, 4.0]), losses([1.0, 0.5, 1.0]), lag=5)
    assert test.p_value == 1.0 and "too few for lag 5" in test.detail


def test_dm_rejects_duplicate_origins_and_negative_lag() -> None:
    dup = pd.Series([1.0, 2.0, 3.0], index=[ORIGINS[0], ORIGINS[0], ORIGINS[1]])
    with pytest.raises(ValueError, match="current_losses has duplicate origins"):
        paired_noise_test(dup, losses([1.0, 2.0, 3.0]), lag=0)
    with pytest.raises(ValueError, match="lag"):
        paired_noise_test(losses([1.0, 2.0, 3.0]), losses([1.0, 2.0, 3.0]), lag=-1)


# --- initial deployment ---------------------------------------------------------------------------


def initial(candidate: Scores, naive_rmse: float = 120.0, **kw: object) -> Verdict:
    return gate(candidate, None, current_losses=None, naive_rmse=naive_rmse, **kw)  # type: ignore[arg-type]


def test_initial_deployment_beating_naive_is_approved() -> None:
    verdict = initial(scores(rmse=119.0, bias=1.0, coverage95=92.0))
    assert verdict.decision == "initial_approved" and verdict.approved and verdict.initial_deployment
    assert verdict.rmse_improvement_pct is None and verdict.noise_probability is None
    for name in ("rmse_or_mape", "error_std", "inference_time", "significance"):
        crit = verdict.criterion(name)
        assert (crit.value, crit.passed, crit.detail) == (None, True, NO_CURRENT)
    naive = verdict.criterion("beats_naive")
    assert (naive.value, naive.threshold, naive.comparator, naive.passed) == (119.0, 120.0, "<", True)
    assert verdict.headline.startswith("INITIAL DEPLOYMENT APPROVED: RMSE 119.00 CLP vs naive 120.00 CLP")


@pytest.mark.parametrize(
    ("overrides", "failed"),
    [
        ({"rmse": 120.0}, "beats_naive"),  # equal to the random walk is not beating it
        ({"coverage95": 89.0}, "ci95_coverage"),
        ({"bias": -5.0}, "abs_bias"),
    ],
)
def test_initial_deployment_rejections(overrides: dict[str, float], failed: str) -> None:
    verdict = initial(scores(**overrides))
    assert verdict.decision == "initial_rejected" and not verdict.approved
    assert [c.name for c in verdict.failed] == [failed]
    label = next(c.label for c in verdict.failed)
    assert verdict.headline.startswith(f"INITIAL DEPLOYMENT REJECTED (failed: {label})")


# --- manual override ------------------------------------------------------------------------------


def test_override_approves_and_still_shows_every_criterion() -> None:
    verdict = gate(scores(rmse=101.0, mape=10.5, bias=9.0), scores(), force_reason="ops: known data fix")
    assert verdict.approved and verdict.decision == "approved_override"
    assert verdict.override_reason == "ops: known data fix"
    assert len(verdict.criteria) == 6
    assert {c.name for c in verdict.failed} == {"rmse_or_mape", "abs_bias"}
    assert verdict.reasons[0] == "manual override: ops: known data fix"
    assert len(verdict.reasons) == 3
    assert verdict.headline.startswith("APPROVED BY MANUAL OVERRIDE (the gate failed: ")
    assert "ops: known data fix" not in verdict.headline  # the reports show the reason once, in its own place


def test_override_on_initial_deployment() -> None:
    verdict = initial(scores(rmse=130.0), force_reason="first deploy")
    assert verdict.decision == "approved_override" and verdict.initial_deployment
    assert [c.name for c in verdict.failed] == ["beats_naive"]


def test_override_needs_a_reason() -> None:
    with pytest.raises(ValueError, match="force_reason"):
        gate(scores(**GOOD), scores(), force_reason="  ")


# --- serialisation and determinism ------------------------------------------------------------


@pytest.mark.parametrize(
    "make",
    [
        lambda: compare(),
        lambda: compare(rmse=99.0, bias=8.0),
        lambda: initial(scores(rmse=110.0)),
        lambda: initial(scores(rmse=130.0)),
        lambda: gate(scores(rmse=101.0), scores(), force_reason="why not"),
        lambda: gate(scores(**GOOD), scores(), current_losses=None),
    ],
)
def test_verdict_json_round_trip(make: object) -> None:
    verdict = make()  # type: ignore[operator]
    text = json.dumps(verdict.to_dict(), allow_nan=False)
    assert Verdict.from_dict(json.loads(text)) == verdict


def test_verdict_from_dict_errors_are_actionable() -> None:
    raw = compare().to_dict()
    with pytest.raises(ValueError, match="missing headline"):
        Verdict.from_dict({k: v for k, v in raw.items() if k != "headline"})
    with pytest.raises(ValueError, match="not one of"):
        Verdict.from_dict({**raw, "decision": "maybe"})
    with pytest.raises(KeyError, match="no criterion named"):
        compare().criterion("nope")


def test_gate_is_deterministic_in_its_inputs() -> None:
    shuffled = CURRENT_LOSSES.sample(frac=1.0, random_state=3)
    assert compare() == compare()
    assert gate(scores(**GOOD), scores(), current_losses=shuffled) == compare()
