"""Are the drift and performance triggers calibrated? Seeded simulations through the real checks.

    .venv/bin/python benchmarks/trigger_calibration.py [--paths 300] [--seed 20260101] [--workers 2]

Every number comes from `bot.core.triggers.drift_check` / `performance_check` with the default
`TriggerSettings` (30 recent vs 90 reference log returns, alpha 0.05; 14 recent vs 60 baseline days,
+15% RMSE, alpha 0.05).

Drift, on geometric random walks (900 CLP start; daily log-return sd 0.4%, 0.7%, 1.2%; normal or
Student-t(4) returns scaled to that sd):
- false positives: constant volatility, a check every 5 observations (weekly) from observation 120;
  share of checks that fire (checks of one path overlap, so the +- is a per-path cluster SE).
- detection: volatility doubles (x2 sd) from a change day placed at a random phase of the weekly
  schedule; detected when a weekly check that has seen 1..10 changed returns fires. "chance" is the
  same rule applied to the checks just before the change. With daily checks instead: the number of
  changed returns seen when the first check fires (median, share <= 7 and <= 10).
- oracle (normal returns only): a one-sided F test at the same alpha that KNOWS the change day, on the
  same weekly checks -- an upper bound no test that must find the change day itself can reach.

Performance, on stationary errors (no change at all; the false-positive rate should be <= 5%):
- iid normal and iid Student-t(4) errors, one per banking day;
- 7d forecast log: naive random-walk forecasts issued every banking day, 5 steps each (errors of
  nearby target dates share return shocks);
- 7d backtest: the same 5-step paths from origins every 5 banking days;
- 15d forecast log: 10-step paths issued daily (the recent window is shorter than the dependence,
  so the check declines to test -- the share tested is printed).
Power: the same scenarios with every error whose target date is in the recent window multiplied by
1.5 and by 2.

Measured with the defaults (seed 20260101, 300 paths, 2000 performance samples, --workers 1:
~235 CPU-seconds, 4.6 min on a shared 2-core machine):
  drift false positives per weekly check 4.6-5.6% per scenario (+-0.6%), pooled 5.0% (normal 4.8%,
  t4 5.2%). The test is scale-free, so the three volatility levels share one true rate, and
  distribution-free, so normal and t4 nearly do too: 60,000 independent 120-return windows through
  the same check (measured separately) give 5.0% +- 0.1% (normal 5.03%, t4 5.01%) -- the nominal
  alpha; the cells differ by noise only.
  detection of a volatility doubling within 10 trading days, weekly checks: normal 74-80% (pooled
  78%), t4 53-64% (pooled 59%) -- TARGET 80% NOT MET; the change-day-knowing F-test oracle reaches
  83-88% on normal returns; distribution-free tests TOLD the change day reach 82% / 67% (rank,
  normal / t4) and 84% / 69% (permutation on t8 scores), so 80% on t4 returns is out of reach for
  this kind of test with 6-10 changed returns.
  daily checks: median 4 (normal) / 5 (t4) changed returns until the first fire (stretch goal 7
  met); share within 7 days 77-83% / 63-69%, within 10 days 92-93% / 76-80%.
  performance false positives: iid normal 3.3%, iid t4 3.1%, 7d forecast log 5.0%, 7d backtest
  4.9% (+-0.5%); 15d forecast log never tested (recent window shorter than the dependence).
  power (errors x1.5 / x2 in the recent window): iid 23-28% / 52-56%, 7d log 21% / 44%,
  7d backtest 12% / 23%.
"""

from __future__ import annotations

import argparse
import json
import math
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from datetime import date
from typing import Any

import numpy as np
import pandas as pd
from scipy import stats

from bot.core.params import TriggerSettings
from bot.core.performance import performance_check
from bot.core.triggers import drift_check

SETTINGS = TriggerSettings()
VOLS = (0.004, 0.007, 0.012)
DISTS = ("normal", "t4")
START = 120  # first check: needs 120 returns (30 + 90)
MAX_DAILY = 30


def shocks(rng: np.random.Generator, n: int, dist: str) -> np.ndarray:
    if dist == "normal":
        return rng.standard_normal(n)
    return rng.standard_t(4, n) / math.sqrt(2.0)  # unit variance


def walk(returns: np.ndarray) -> pd.DataFrame:
    dates = pd.bdate_range("2020-01-01", periods=len(returns) + 1)
    values = 900.0 * np.exp(np.concatenate([[0.0], np.cumsum(returns)]))
    return pd.DataFrame({"date": dates, "value": values})


def fires_at(series: pd.DataFrame, idx: int) -> bool:
    """The check run on the evening of observation `idx` (rows after it are not passed)."""
    as_of = pd.Timestamp(series["date"].iloc[idx]).date()
    return drift_check(series.iloc[: idx + 1], as_of, SETTINGS).fired


@dataclass(frozen=True)
class DriftJob:
    dist: str
    vol: float
    paths: int
    seed: int


def drift_scenario(job: DriftJob) -> dict[str, Any]:
    rng = np.random.default_rng(job.seed)
    fp_rates: list[float] = []
    detected: list[bool] = []
    chance: list[bool] = []
    oracle: list[bool] = []
    latency: list[int] = []
    n_weekly = 8
    crit = stats.f.ppf
    for _ in range(job.paths):
        # false positives: constant volatility
        series = walk(job.vol * shocks(rng, START + 5 * n_weekly, job.dist))
        fp_rates.append(float(np.mean([fires_at(series, START + 5 * k) for k in range(n_weekly)])))
        # change: returns with index >= t0 have twice the sd; a check at observation c has seen
        # c - t0 changed returns. Weekly checks at START + 5k; t0 at a random phase.
        t0 = START + 5 + int(rng.integers(0, 5))
        r = job.vol * shocks(rng, t0 + MAX_DAILY + 1, job.dist)
        r[t0:] *= 2.0
        series = walk(r)
        weekly = list(range(START, t0 + 11, 5))
        detected.append(any(fires_at(series, c) for c in weekly if 1 <= c - t0 <= 10))
        chance.append(fires_at(series, max(c for c in weekly if c <= t0)))
        if job.dist == "normal":
            hits = []
            for c in weekly:
                m = c - t0
                if 1 <= m <= 10:
                    pre = r[c - 120 : t0]
                    stat = np.mean(r[t0:c] ** 2) / np.mean(pre**2)
                    hits.append(stat > crit(1 - SETTINGS.drift_alpha, m, len(pre)))
            oracle.append(any(hits))
        first = next(
            (c - t0 for c in range(t0 + 1, t0 + MAX_DAILY + 1) if fires_at(series, c)), MAX_DAILY + 1
        )
        latency.append(first)
    lat = np.array(latency)
    fp = np.array(fp_rates)
    return {
        "dist": job.dist,
        "vol": job.vol,
        "paths": job.paths,
        "fp_rate": float(fp.mean()),
        "fp_se": float(fp.std(ddof=1) / math.sqrt(len(fp))),
        "fp_checks": len(fp) * n_weekly,
        "detect_weekly_10d": float(np.mean(detected)),
        "chance_weekly": float(np.mean(chance)),
        "oracle_weekly_10d": float(np.mean(oracle)) if oracle else None,
        "daily_latency_median": float(np.median(lat)),
        "daily_within_7": float(np.mean(lat <= 7)),
        "daily_within_10": float(np.mean(lat <= 10)),
    }


@dataclass(frozen=True)
class PerfJob:
    scenario: str
    reps: int
    seed: int


def error_frame(rng: np.random.Generator, scenario: str) -> tuple[pd.DataFrame, date]:
    days = pd.bdate_range("2024-01-01", periods=130)
    as_of = days[110].date()
    if scenario in ("iid_normal", "iid_t4"):
        e = shocks(rng, len(days), "normal" if scenario == "iid_normal" else "t4") * 6.0
        return pd.DataFrame({"target_date": days, "error": e}), as_of
    steps, every = {"7d_log": (5, 1), "7d_backtest": (5, 5), "15d_log": (10, 1)}[scenario]
    prices = walk(0.007 * rng.standard_normal(len(days) - 1))["value"].to_numpy()
    issue = np.arange(0, len(days) - steps, every)
    k = np.arange(1, steps + 1)
    targets = (issue[:, None] + k[None, :]).ravel()
    errors = (prices[issue][:, None] - prices[issue[:, None] + k[None, :]]).ravel()  # naive - actual
    frame = pd.DataFrame({"target_date": days[targets], "error": errors, "step": np.tile(k, len(issue))})
    return frame, as_of


def perf_scenario(job: PerfJob) -> dict[str, Any]:
    rng = np.random.default_rng(job.seed)
    out: dict[str, Any] = {"scenario": job.scenario}
    for factor in (1.0, 1.5, 2.0):
        reps = job.reps if factor == 1.0 else max(100, job.reps // 3)
        fired = tested = 0
        for _ in range(reps):
            frame, as_of = error_frame(rng, job.scenario)
            if factor != 1.0:
                recent = frame["target_date"] > pd.Timestamp(as_of) - pd.Timedelta(
                    days=SETTINGS.performance_recent_days
                )
                frame.loc[recent, "error"] *= factor
            check = performance_check(frame, as_of, SETTINGS, "backtest")
            fired += check.fired
            tested += check.p_value is not None
        key = "null" if factor == 1.0 else f"x{factor:g}"
        out[f"{key}_rate"] = fired / reps
        out[f"{key}_reps"] = reps
        out[f"{key}_tested"] = tested / reps
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--paths", type=int, default=300, help="paths per drift scenario")
    parser.add_argument(
        "--perf-reps", type=int, default=2000, help="stationary samples per performance scenario"
    )
    parser.add_argument("--seed", type=int, default=20260101)
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()
    started = time.perf_counter()
    drift_jobs = [
        DriftJob(dist, vol, args.paths, args.seed + 100 * i + j)
        for i, dist in enumerate(DISTS)
        for j, vol in enumerate(VOLS)
    ]
    perf_jobs = [
        PerfJob(s, args.perf_reps, args.seed + 1000 + i)
        for i, s in enumerate(("iid_normal", "iid_t4", "7d_log", "7d_backtest", "15d_log"))
    ]
    with ProcessPoolExecutor(max_workers=args.workers) as pool:
        drift_future = pool.map(drift_scenario, drift_jobs)
        perf_future = pool.map(perf_scenario, perf_jobs)
        drift = list(drift_future)
        perf = list(perf_future)
    elapsed = time.perf_counter() - started

    print("Drift trigger on geometric random walks (weekly checks = every 5 observations)")
    print(
        f"{'returns':8} {'vol':>5} {'FP/check':>13} {'detect<=10d':>12} {'chance':>7} {'oracle':>7} "
        f"{'daily: median':>14} {'<=7d':>6} {'<=10d':>6}"
    )
    for row in drift:
        oracle = f"{row['oracle_weekly_10d']:.1%}" if row["oracle_weekly_10d"] is not None else "-"
        print(
            f"{row['dist']:8} {row['vol']:>5.1%} {row['fp_rate']:>7.1%} +-{row['fp_se']:.1%} "
            f"{row['detect_weekly_10d']:>12.1%} {row['chance_weekly']:>7.1%} {oracle:>7} "
            f"{row['daily_latency_median']:>11.0f} d {row['daily_within_7']:>6.1%} {row['daily_within_10']:>6.1%}"
        )
    summary: dict[str, Any] = {}
    for dist in DISTS:
        rows = [r for r in drift if r["dist"] == dist]
        summary[dist] = {
            "fp_rate": float(np.mean([r["fp_rate"] for r in rows])),
            "detect_weekly_10d": float(np.mean([r["detect_weekly_10d"] for r in rows])),
            "daily_latency_median": float(np.median([r["daily_latency_median"] for r in rows])),
            "daily_within_7": float(np.mean([r["daily_within_7"] for r in rows])),
        }
        s = summary[dist]
        print(
            f"{dist:8} {'all':>5} {s['fp_rate']:>13.1%} {s['detect_weekly_10d']:>12.1%} {'':>7} {'':>7} "
            f"{s['daily_latency_median']:>11.0f} d {s['daily_within_7']:>6.1%}"
        )
    print("targets: FP/check <= 5%; detection within 10 trading days >= 80%; stretch: daily median <= 7 d")
    print()
    print("Performance trigger (RMSE +15% and one-sided batch-means test at 5%)")
    print(f"{'scenario':12} {'FP (stationary)':>16} {'tested':>7} {'power x1.5':>11} {'power x2':>9}")
    for row in perf:
        print(
            f"{row['scenario']:12} {row['null_rate']:>16.1%} {row['null_tested']:>7.0%} "
            f"{row['x1.5_rate']:>11.1%} {row['x2_rate']:>9.1%}"
        )
    print("target: FP <= 5% on stationary errors")
    print(f"elapsed {elapsed:.0f} s")
    result = {
        "benchmark": "trigger_calibration",
        "seed": args.seed,
        "paths": args.paths,
        "perf_reps": args.perf_reps,
        "drift": drift,
        "drift_summary": summary,
        "performance": perf,
        "targets": {
            "drift_fp_max": 0.05,
            "drift_detect_10d_min": 0.80,
            "performance_fp_max": 0.05,
            # per-scenario rates carry +-0.6% noise: the FP target is judged on the pooled rate
            "drift_fp_pooled": float(np.mean([r["fp_rate"] for r in drift])),
            "drift_fp_met": float(np.mean([r["fp_rate"] for r in drift])) <= 0.05,
            "drift_detect_met": all(r["detect_weekly_10d"] >= 0.80 for r in drift),
            "performance_fp_met": all(r["null_rate"] <= 0.05 for r in perf),
        },
        "elapsed_s": round(elapsed, 1),
    }
    print(json.dumps(result, separators=(",", ":")))


if __name__ == "__main__":
    main()
