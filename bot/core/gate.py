"""The validation gate: may a candidate config replace the current one? Pure: no IO, no clock.

Inputs are the pooled `Scores` of both configs on the validation origins (later than, and disjoint
from, the tuning origins the candidate was picked on) and their per-origin losses on those origins.
The verdict is a deterministic function of its inputs, so a stored run can be re-judged later.

Criteria (thresholds from `ApprovalSettings`; "improvement" is relative to the current config,
positive = better):

1. `rmse_or_mape`    RMSE improvement >= min_rmse_improvement_pct OR MAPE improvement >=
                      min_mape_improvement_pct (the seed's rule).
2. `error_std`       error standard deviation increase <= max_std_increase_pct.
3. `inference_time`  inference time increase <= max_inference_time_increase_pct. The caller measures
                      `Scores.inference_seconds` warm (after a first call) as a median per origin.
4. `ci95_coverage`   candidate 95% interval coverage >= min_ci95_coverage_pct.
5. `abs_bias`        |candidate bias| < max_abs_bias (CLP, strict).
6. `significance`    chance the gain is noise <= max_noise_probability. It is the p-value of a
                      one-sided Diebold-Mariano test on the paired per-origin losses (see
                      `paired_noise_test`). With max_noise_probability >= 1.0 it is reported but not
                      required: exactly the seed's rule.

A percentage change against a current value of 0 is undefined unless the candidate is also 0 (or
lower); such a criterion fails closed, and a manual override can still ship the candidate.

Initial deployment (no current config): approved when coverage and bias pass AND the candidate
beats the naive random walk (`beats_naive`: candidate RMSE < naive RMSE on the same origins), since
the random walk is the forecast any config must beat to be worth deploying. Criteria that need a
current config are shown as n/a (value None, passed).

Manual override (`force_reason`): approved as "approved_override"; every criterion is still
evaluated and shown, and the reason is recorded.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import Any, Literal, cast, get_args

import pandas as pd

from bot.core.loss import NOISE_LOSSES
from bot.core.metrics import Scores
from bot.core.noise_test import NoiseTest, overlap_lag, paired_noise_test
from bot.core.params import ApprovalSettings

Decision = Literal["approved", "rejected", "approved_override", "initial_approved", "initial_rejected"]
DECISIONS: tuple[str, ...] = get_args(Decision)
NO_CURRENT = "no current config"


@dataclass(frozen=True)
class Criterion:
    name: str  # stable id: rmse_or_mape, error_std, inference_time, ci95_coverage, abs_bias, ...
    label: str
    value: float | None
    threshold: float
    comparator: str  # how value is compared with threshold: ">=", "<=", "<"
    passed: bool
    detail: str

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "label": self.label,
            "value": self.value,
            "threshold": self.threshold,
            "comparator": self.comparator,
            "passed": self.passed,
            "detail": self.detail,
        }

    @classmethod
    def from_dict(cls, raw: dict[str, Any]) -> Criterion:
        value = raw["value"]
        return cls(
            name=str(raw["name"]),
            label=str(raw["label"]),
            value=None if value is None else float(value),
            threshold=float(raw["threshold"]),
            comparator=str(raw["comparator"]),
            passed=bool(raw["passed"]),
            detail=str(raw["detail"]),
        )


@dataclass(frozen=True)
class Verdict:
    approved: bool
    decision: Decision
    criteria: tuple[Criterion, ...]
    reasons: tuple[str, ...]
    rmse_improvement_pct: float | None
    mape_improvement_pct: float | None
    noise_probability: float | None
    initial_deployment: bool
    override_reason: str | None
    headline: str
    # smallest RMSE gain (%) the test would confirm 4 times in 5 at this noise; None when untestable
    detectable_rmse_gain_pct: float | None = None
    # the per-origin loss the noise test compared (bot.core.loss.NOISE_LOSSES); None: no test
    noise_loss: str | None = None

    def criterion(self, name: str) -> Criterion:
        for crit in self.criteria:
            if crit.name == name:
                return crit
        raise KeyError(f"no criterion named {name!r} (have: {', '.join(c.name for c in self.criteria)})")

    @property
    def failed(self) -> tuple[Criterion, ...]:
        return tuple(c for c in self.criteria if not c.passed)

    def to_dict(self) -> dict[str, Any]:
        return {
            "approved": self.approved,
            "decision": self.decision,
            "criteria": [c.to_dict() for c in self.criteria],
            "reasons": list(self.reasons),
            "rmse_improvement_pct": self.rmse_improvement_pct,
            "mape_improvement_pct": self.mape_improvement_pct,
            "noise_probability": self.noise_probability,
            "initial_deployment": self.initial_deployment,
            "override_reason": self.override_reason,
            "headline": self.headline,
            "detectable_rmse_gain_pct": self.detectable_rmse_gain_pct,
            "noise_loss": self.noise_loss,
        }

    @classmethod
    def from_dict(cls, raw: dict[str, Any]) -> Verdict:
        missing = sorted(set(_VERDICT_KEYS) - set(raw))
        if missing:
            raise ValueError(f"verdict is missing {', '.join(missing)}; was it written by chronops?")
        decision = str(raw["decision"])
        if decision not in DECISIONS:
            raise ValueError(f"verdict decision {decision!r} is not one of {', '.join(DECISIONS)}")
        return cls(
            approved=bool(raw["approved"]),
            decision=cast(Decision, decision),
            criteria=tuple(Criterion.from_dict(c) for c in raw["criteria"]),
            reasons=tuple(str(r) for r in raw["reasons"]),
            rmse_improvement_pct=_opt_float(raw["rmse_improvement_pct"]),
            mape_improvement_pct=_opt_float(raw["mape_improvement_pct"]),
            noise_probability=_opt_float(raw["noise_probability"]),
            initial_deployment=bool(raw["initial_deployment"]),
            override_reason=None if raw["override_reason"] is None else str(raw["override_reason"]),
            headline=str(raw["headline"]),
            detectable_rmse_gain_pct=_opt_float(raw.get("detectable_rmse_gain_pct")),  # absent before v0.2
            noise_loss=_opt_str(raw.get("noise_loss")),  # absent before v0.3
        )


_VERDICT_KEYS = (
    "approved",
    "decision",
    "criteria",
    "reasons",
    "rmse_improvement_pct",
    "mape_improvement_pct",
    "noise_probability",
    "initial_deployment",
    "override_reason",
    "headline",
)


def _opt_float(value: Any) -> float | None:
    return None if value is None else float(value)


def _opt_str(value: Any) -> str | None:
    return None if value is None else str(value)


# --- the paired significance test -------------------------------------------------------------


# --- the gate ----------------------------------------------------------------------------------


def evaluate_gate(
    *,
    current: Scores | None,
    candidate: Scores,
    naive_rmse: float,
    current_losses: pd.Series | None,
    candidate_losses: pd.Series,
    prediction_length: int,
    settings: ApprovalSettings,
    force_reason: str | None = None,
    origin_step: int | None = None,
    noise_loss: str = "mse",
) -> Verdict:
    """Judge a candidate against the current config (or, with none, against the naive forecast).

    `origin_step` is the spacing of the validation origins in observations; None means
    `prediction_length` (walk-forward windows that just do not overlap, so the test uses lag 0).
    `noise_loss` names the per-origin loss in `current_losses` / `candidate_losses` (see
    bot.core.loss): it is recorded in the verdict and named in the significance detail.
    """
    if force_reason is not None and not force_reason.strip():
        raise ValueError("force_reason must say why the gate is overridden (got an empty string)")
    lag = overlap_lag(prediction_length, origin_step if origin_step is not None else prediction_length)
    if current is None:
        criteria = _initial_criteria(candidate, naive_rmse, settings)
        rmse_pct = mape_pct = noise = detectable = None
    else:
        rmse_pct = _improvement(current.rmse, candidate.rmse)
        mape_pct = _improvement(current.mape, candidate.mape)
        alpha = settings.max_noise_probability if 0.0 < settings.max_noise_probability < 1.0 else 0.05
        test = _run_test(current_losses, candidate_losses, lag, alpha)
        if test is not None:
            test = replace(test, detail=f"{test.detail}; loss: {NOISE_LOSSES.get(noise_loss, noise_loss)}")
        noise = None if test is None else test.p_value
        detectable = None if test is None else test.detectable_rmse_gain_pct
        criteria = _comparison_criteria(current, candidate, rmse_pct, mape_pct, test, settings)
    failed = [c for c in criteria if not c.passed]
    initial = current is None
    decision: Decision
    if force_reason is not None:
        decision = "approved_override"
    elif initial:
        decision = "initial_rejected" if failed else "initial_approved"
    else:
        decision = "rejected" if failed else "approved"
    reasons = _reasons(decision, criteria, failed, force_reason)
    body = _initial_body(criteria) if initial else _comparison_body(rmse_pct, mape_pct, noise)
    headline = _headline(decision, failed, body)
    return Verdict(
        approved=decision in ("approved", "approved_override", "initial_approved"),
        decision=decision,
        criteria=criteria,
        reasons=reasons,
        rmse_improvement_pct=rmse_pct,
        mape_improvement_pct=mape_pct,
        noise_probability=noise,
        initial_deployment=initial,
        override_reason=force_reason,
        headline=headline,
        detectable_rmse_gain_pct=detectable,
        noise_loss=None if current is None else noise_loss,
    )


def _run_test(current: pd.Series | None, candidate: pd.Series, lag: int, alpha: float) -> NoiseTest | None:
    return None if current is None else paired_noise_test(current, candidate, lag=lag, alpha=alpha)


def _improvement(old: float, new: float) -> float | None:
    """Relative decrease in percent (positive = lower = better); None when undefined."""
    change = _increase(old, new)
    return None if change is None else -change


def _increase(old: float, new: float) -> float | None:
    if not (math.isfinite(old) and math.isfinite(new)):
        return None
    if old > 0:
        return (new - old) * 100.0 / old  # exact for round inputs: 95 vs 100 gives -5.0
    return 0.0 if new <= old else None


def _meets(value: float | None, comparator: str, threshold: float) -> bool:
    if value is None or not math.isfinite(value):
        return False
    if comparator == ">=":
        return value >= threshold
    if comparator == "<=":
        return value <= threshold
    if comparator == "<":
        return value < threshold
    raise ValueError(f"unknown comparator {comparator!r}")  # pragma: no cover


def _finite(value: float) -> float | None:
    return value if math.isfinite(value) else None


def _pct(value: float | None) -> str:
    return "undefined" if value is None else f"{value:.1f}%"


def _comparison_criteria(
    current: Scores,
    candidate: Scores,
    rmse_pct: float | None,
    mape_pct: float | None,
    test: NoiseTest | None,
    s: ApprovalSettings,
) -> tuple[Criterion, ...]:
    rmse_ok = _meets(rmse_pct, ">=", s.min_rmse_improvement_pct)
    mape_ok = _meets(mape_pct, ">=", s.min_mape_improvement_pct)
    accuracy = Criterion(
        "rmse_or_mape",
        "RMSE or MAPE improvement",
        rmse_pct,
        s.min_rmse_improvement_pct,
        ">=",
        rmse_ok or mape_ok,
        f"RMSE {current.rmse:.3f} -> {candidate.rmse:.3f} (improvement {_pct(rmse_pct)}, need >= "
        f"{s.min_rmse_improvement_pct:g}%) or MAPE {current.mape:.3f}% -> {candidate.mape:.3f}% "
        f"(improvement {_pct(mape_pct)}, need >= {s.min_mape_improvement_pct:g}%)",
    )
    std_pct = _increase(current.error_std, candidate.error_std)
    time_pct = _increase(current.inference_seconds, candidate.inference_seconds)
    return (
        accuracy,
        Criterion(
            "error_std",
            "Error standard deviation increase",
            std_pct,
            s.max_std_increase_pct,
            "<=",
            _meets(std_pct, "<=", s.max_std_increase_pct),
            f"{current.error_std:.3f} -> {candidate.error_std:.3f} ({_pct(std_pct)}, "
            f"allowed <= {s.max_std_increase_pct:g}%)",
        ),
        Criterion(
            "inference_time",
            "Inference time increase",
            time_pct,
            s.max_inference_time_increase_pct,
            "<=",
            _meets(time_pct, "<=", s.max_inference_time_increase_pct),
            f"{current.inference_seconds:.3f}s -> {candidate.inference_seconds:.3f}s per origin "
            f"({_pct(time_pct)}, allowed <= {s.max_inference_time_increase_pct:g}%)",
        ),
        _coverage(candidate, s),
        _bias(candidate, s),
        _significance(test, s),
    )


def _coverage(candidate: Scores, s: ApprovalSettings) -> Criterion:
    value = _finite(candidate.coverage95)
    return Criterion(
        "ci95_coverage",
        "95% interval coverage",
        value,
        s.min_ci95_coverage_pct,
        ">=",
        _meets(value, ">=", s.min_ci95_coverage_pct),
        f"{_pct(value)} of actuals inside the candidate's 95% interval "
        f"(need >= {s.min_ci95_coverage_pct:g}%)",
    )


def _bias(candidate: Scores, s: ApprovalSettings) -> Criterion:
    value = _finite(abs(candidate.bias))
    return Criterion(
        "abs_bias",
        "Absolute bias",
        value,
        s.max_abs_bias,
        "<",
        _meets(value, "<", s.max_abs_bias),
        f"mean error {candidate.bias:+.3f} CLP (|bias| must be < {s.max_abs_bias:g})",
    )


def _significance(test: NoiseTest | None, s: ApprovalSettings) -> Criterion:
    required = s.max_noise_probability < 1.0
    if test is None:
        detail = "no per-origin losses for the current config; the test cannot run"
        return Criterion(
            "significance",
            "Chance the gain is noise",
            None,
            s.max_noise_probability,
            "<=",
            not required,
            detail,
        )
    rule = (
        f"need <= {_pct(s.max_noise_probability * 100.0)}"
        if required
        else "reported only: approval.max_noise_probability >= 1.0 turns the requirement off"
    )
    passed = _meets(test.p_value, "<=", s.max_noise_probability) or not required
    return Criterion(
        "significance",
        "Chance the gain is noise",
        test.p_value,
        s.max_noise_probability,
        "<=",
        passed,
        f"{_noise_text(test.p_value)} ({rule}); {test.detail}",
    )


def _initial_criteria(candidate: Scores, naive_rmse: float, s: ApprovalSettings) -> tuple[Criterion, ...]:
    def not_applicable(name: str, label: str, threshold: float, comparator: str) -> Criterion:
        return Criterion(name, label, None, threshold, comparator, True, NO_CURRENT)

    rmse = _finite(candidate.rmse)
    beats = rmse is not None and math.isfinite(naive_rmse) and rmse < naive_rmse
    naive = Criterion(
        "beats_naive",
        "Beats the naive random walk",
        rmse,
        naive_rmse,
        "<",
        beats,
        f"candidate RMSE {candidate.rmse:.3f} vs naive (last value) RMSE {naive_rmse:.3f} "
        "on the same origins",
    )
    return (
        not_applicable("rmse_or_mape", "RMSE or MAPE improvement", s.min_rmse_improvement_pct, ">="),
        not_applicable("error_std", "Error standard deviation increase", s.max_std_increase_pct, "<="),
        not_applicable("inference_time", "Inference time increase", s.max_inference_time_increase_pct, "<="),
        _coverage(candidate, s),
        _bias(candidate, s),
        not_applicable("significance", "Chance the gain is noise", s.max_noise_probability, "<="),
        naive,
    )


def _noise_text(p: float | None) -> str:
    if p is None:
        return "chance the gain is noise n/a"
    if 0 < p < 0.001:
        return "chance the gain is noise <0.1%"
    return f"chance the gain is noise {p * 100.0:.1f}%"


def _change_text(metric: str, improvement: float | None) -> str:
    """'RMSE 12.3% lower' / 'RMSE 64.8% higher': words, so no reader has to guess what a sign means
    (the gate's criteria report the same number as an improvement, positive = better)."""
    if improvement is None:
        return f"{metric} n/a"
    if round(improvement, 1) == 0:
        return f"{metric} unchanged"
    return f"{metric} {abs(improvement):.1f}% {'lower' if improvement > 0 else 'higher'}"


def _reasons(
    decision: Decision, criteria: tuple[Criterion, ...], failed: list[Criterion], force_reason: str | None
) -> tuple[str, ...]:
    failures = tuple(f"{c.label} failed: {c.detail}" for c in failed)
    if decision == "approved_override":
        return (f"manual override: {force_reason}", *failures)
    if decision == "initial_approved":
        return (
            "initial deployment: no current config; the candidate beats the naive random walk "
            "and passes coverage and bias",
        )
    if decision == "approved":
        return (f"all {len(criteria)} criteria passed",)
    return failures


def _headline(decision: Decision, failed: list[Criterion], body: str) -> str:
    """One line in words; the override's reason is not repeated here (reports show it once)."""
    failed_labels = ", ".join(c.label for c in failed)
    if decision == "approved":
        return f"APPROVED: {body}"
    if decision == "rejected":
        return f"REJECTED (failed: {failed_labels}): {body}"
    if decision == "initial_approved":
        return f"INITIAL DEPLOYMENT APPROVED: {body}"
    if decision == "initial_rejected":
        return f"INITIAL DEPLOYMENT REJECTED (failed: {failed_labels}): {body}"
    if failed:
        return f"APPROVED BY MANUAL OVERRIDE (the gate failed: {failed_labels}): {body}"
    return f"APPROVED BY MANUAL OVERRIDE (the gate passed too): {body}"


def _comparison_body(rmse_pct: float | None, mape_pct: float | None, noise: float | None) -> str:
    return f"{_change_text('RMSE', rmse_pct)}, {_change_text('MAPE', mape_pct)}, {_noise_text(noise)}"


def _initial_body(criteria: tuple[Criterion, ...]) -> str:
    by_name = {c.name: c for c in criteria}
    naive, coverage, bias = by_name["beats_naive"], by_name["ci95_coverage"], by_name["abs_bias"]
    rmse = "n/a" if naive.value is None else f"{naive.value:,.2f} CLP"
    bias_text = "n/a" if bias.value is None else f"{bias.value:,.2f} CLP"
    return (
        f"RMSE {rmse} vs naive {naive.threshold:,.2f} CLP, coverage {_pct(coverage.value)}, "
        f"|bias| {bias_text}"
    )
