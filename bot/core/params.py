"""Thresholds the pure decisions take as parameters: the gate's approval criteria and the triggers'.

They live in core so that `bot.core.gate` and `bot.core.triggers` need nothing from the settings loader;
`bot.settings` reads them from chronops.toml (defaults from the seed).
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class ApprovalSettings:
    min_rmse_improvement_pct: float = 5.0
    min_mape_improvement_pct: float = 3.0
    max_std_increase_pct: float = 10.0
    max_inference_time_increase_pct: float = 50.0
    min_ci95_coverage_pct: float = 90.0
    max_abs_bias: float = 5.0
    # Chance the gain is noise (one-sided Diebold-Mariano p-value); 1.0 turns the test off.
    max_noise_probability: float = 0.05
    # The per-origin loss that test compares: vol_mse (squared error / variance of the
    # `volatility_window` daily changes before the origin) or mse (raw squared error).
    noise_loss: str = "vol_mse"
    volatility_window: int = 60


@dataclass(frozen=True)
class TriggerSettings:
    max_days_since_optimization: int = 14
    performance_recent_days: int = 14
    performance_baseline_days: int = 60
    performance_degradation_pct: float = 15.0
    performance_alpha: float = 0.05
    drift_recent_obs: int = 30
    drift_reference_obs: int = 90
    drift_alpha: float = 0.05
    stale_after_days: int = 7
    snooze_weeks: int = 4
