"""Does the validation gate keep lucky winners out and let real gains in, at the origin counts the
real series holds? Which per-origin loss should its noise test compare? Seeded; no Chronos.

    nice -n 10 .venv/bin/python benchmarks/gate_simulation.py [--sims 2000] [--seed 20260101]

The experiment mirrors one bot run per horizon with the default whole-history origins
(`bot.core.backtest.history_origins`): the real series (2003-2026, 5,916 observations, 512 context)
holds ~1,080 / 540 / 257 / 85 non-overlapping origins at h = 5 / 10 / 21 / 63, split into
alternating blocks of ~250 observations (tuning, validation, tuning, ...). 27 candidate configs are
scored on the tuning origins, the lowest pooled tuning RMSE wins, and `bot.core.gate.evaluate_gate`
(the real one, default `ApprovalSettings`) judges the winner against the current config on the
validation origins, once per candidate noise-test loss:
- `mse`:     per-origin mean squared error (what the gate used before);
- `vol_mse`: the same divided by the variance of the 60 daily changes before the origin (a
             volatility known at the origin; `bot.core.loss`);
- `vol_mse_k`: as vol_mse with step k's squared error also divided by k (every step weighed alike);
- `crps`:    per-origin mean CRPS of a normal forecast around each config's point forecast with the
             spread the origin's volatility implies (sd = sigma_hat * sqrt(k) at step k);
- `vol_crps`: the same divided by sigma_hat.

Error model (CLP, h steps per origin, everything scaled by a per-origin volatility v_t):
- market: a random walk with daily sd 5.0 CLP, Student-t(5) shocks, volatility clustering (log v_t
  is AR(1) with persistence 0.995 per day, sd 0.45, E[v^2] = 1; all three calibrated to the real
  USD/CLP series, see `Market`), plus a per-origin
  drift mu_t (a trend known at the origin) so that the path to step k is P_k + U_k with P_k = k*mu_t.
  Origins are contiguous in time, so sigma_hat at an origin is estimated from the simulated daily
  changes of the origins before it (burn-in origins first).
- every ordinary config forecasts "no change" plus its own deviation path I_c (a random walk of
  config-specific noise), so its error is I_c - (P + U): configs share the market shock and differ by
  a little noise. Pooled, two ordinary configs' errors correlate `config_corr` (default 0.95).
- the current config and all 27 candidates are ordinary under the null ("equal true skill").
- "truly X% better in RMSE": one candidate knows the drift; its error is I_b - U, and the drift
  variance is set so its population RMSE is exactly (1 - X/100) times the others'.

Not simulated (fixed equal for both configs, so they always pass): interval coverage (95%) and inference
time. MAPE uses a constant level of 950 CLP. Bias and error std come from the simulated errors (at
h = 63 the |bias| < 5 CLP criterion fails for a fair share of runs of equal and better configs alike:
the pooled mean error over 42 origins of 63 correlated steps has a standard error of ~4.6 CLP).

Rates are printed with their Monte-Carlo standard error sqrt(p(1-p)/runs).
"""

from __future__ import annotations

import argparse
import json
import math
import time
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import pandas as pd
from scipy import special

from bot.core.backtest import spread_order
from bot.core.gate import evaluate_gate
from bot.core.metrics import Scores
from bot.core.params import ApprovalSettings
from bot.core.search import halving_schedule, keep_best
from bot.settings import SearchSettings

N_CANDIDATES = 27
# non-overlapping origins the real series holds at 512 context (issue 13), per prediction length
REAL_ORIGINS = {5: 1080, 10: 540, 21: 257, 63: 85}
BLOCK_OBS = 250
VOL_WINDOW = 60
LEVEL = 950.0
ALL_LOSSES = ("mse", "vol_mse", "vol_mse_k", "crps", "vol_crps")
LOSSES = ("mse", "vol_mse", "crps")  # printed by default (--losses adds the others)
CHOSEN = "vol_mse"
GAIN_SCAN = (10.0, 15.0, 20.0, 25.0, 30.0, 40.0, 50.0)
SQRT_PI = math.sqrt(math.pi)


@dataclass(frozen=True)
class Market:
    # calibrated to the real series (../shared/data/usdclp_daily.csv, 2003-2026): daily changes have
    # sd 4.95 CLP and excess kurtosis 7.4; the log of the sd of 63-day windows has sd 0.49 and
    # lag-1 autocorrelation 0.78 (daily persistence 0.996); removing the sampling noise of a
    # 63-day sd (variance (kurtosis - 1) / 4n = 0.036) leaves a log-volatility sd of ~0.45
    daily_sd: float = 5.0
    tail_df: float = 5.0
    vol_sd: float = 0.45
    vol_persistence_daily: float = 0.995
    config_corr: float = 0.95
    gain_rmse_pct: float = 10.0


@dataclass(frozen=True)
class Arm:
    """Per-origin sums of one config's errors: enough to rebuild pooled Scores exactly."""

    sq: np.ndarray  # (S, T) sum of e^2 over the h steps
    ab: np.ndarray  # (S, T) sum of |e|
    sm: np.ndarray  # (S, T) sum of e
    vsq: np.ndarray  # (S, T) mean e^2 / sigma_hat^2 (the vol_mse loss)
    vsqk: np.ndarray  # (S, T) mean e_k^2 / (k sigma_hat^2): every step weighed alike
    crps: np.ndarray  # (S, T) mean Gaussian CRPS
    vcrps: np.ndarray  # (S, T) mean Gaussian CRPS / sigma_hat


def split(n: int, h: int) -> tuple[np.ndarray, np.ndarray]:
    """Boolean masks (tuning, validation) over n contiguous origins, as `history_origins` splits."""
    block = max(1, round(BLOCK_OBS / h))
    if n < 4 * block:
        block = max(1, n // 4)
    val = (np.arange(n) // block) % 2 == 1
    return ~val, val


def component_scales(market: Market, h: int) -> tuple[float, float]:
    """(idio daily sd, drift sd) from the error correlation and the better config's gain."""
    k = np.arange(1, h + 1)
    m1, m2 = float(k.mean()), float((k**2).mean())
    g = 1.0 / (1.0 - market.gain_rmse_pct / 100.0) ** 2 - 1.0  # MSE ratio 1 + g
    a = m1 * market.daily_sd**2  # market shock share of the pooled MSE
    rho = market.config_corr
    if rho * (1 + g) <= g:
        raise ValueError(f"config_corr must exceed {g / (1 + g):.3f} for a {market.gain_rmse_pct}% gain")
    idio = a * (1.0 / (rho * (1 + g) - g) - 1.0)
    drift = g * (a + idio)
    return math.sqrt(idio / m1), math.sqrt(drift / m2)


def gaussian_crps(err: np.ndarray, sd: np.ndarray) -> np.ndarray:
    """CRPS of N(point, sd^2) at the actual, as a function of err = point - actual."""
    z = -err / sd
    pdf = np.exp(-0.5 * z * z) / math.sqrt(2 * math.pi)
    cdf = 0.5 * (1.0 + special.erf(z / math.sqrt(2)))
    return sd * (z * (2 * cdf - 1) + 2 * pdf - 1 / SQRT_PI)


def simulate_arms(
    rng: np.random.Generator, market: Market, sims: int, h: int, n_origins: int, better: bool
) -> tuple[list[Arm], Arm]:
    """Arms: index 0 the current config, 1..27 the candidates (1 is the better one if `better`)."""
    idio_sd, drift_sd = component_scales(market, h)
    burn = -(-(VOL_WINDOW + 1) // h)
    total = burn + n_origins
    phi = market.vol_persistence_daily**h
    log_vol = np.empty((sims, total))
    log_vol[:, 0] = rng.normal(0.0, market.vol_sd, sims)
    for t in range(1, total):
        log_vol[:, t] = phi * log_vol[:, t - 1] + math.sqrt(1 - phi**2) * rng.normal(0.0, market.vol_sd, sims)
    vol = np.exp(log_vol - market.vol_sd**2)[:, :, None]  # E[vol^2] = 1
    df = market.tail_df
    shocks = rng.standard_t(df, (sims, total, h)) / math.sqrt(df / (df - 2)) * market.daily_sd * vol
    mu = rng.normal(0.0, drift_sd, (sims, total, 1)) * vol
    daily = (shocks + mu).reshape(sims, total * h)  # the observed daily changes, contiguous
    # sample sd of the VOL_WINDOW daily changes strictly before each origin's first target
    c1 = np.concatenate([np.zeros((sims, 1)), np.cumsum(daily, axis=1)], axis=1)
    c2 = np.concatenate([np.zeros((sims, 1)), np.cumsum(daily**2, axis=1)], axis=1)
    ends = np.arange(burn, total) * h
    s1 = c1[:, ends] - c1[:, ends - VOL_WINDOW]
    s2 = c2[:, ends] - c2[:, ends - VOL_WINDOW]
    sigma = np.sqrt(np.maximum((s2 - s1**2 / VOL_WINDOW) / (VOL_WINDOW - 1), 1e-12))[:, :, None]
    k = np.sqrt(np.arange(1, h + 1))
    unpredictable = np.cumsum(shocks[:, burn:], axis=2)
    drift = mu[:, burn:] * np.arange(1, h + 1)
    market_error = -(drift + unpredictable)
    vol_t = vol[:, burn:]

    def summarise(err: np.ndarray) -> Arm:
        sq = err**2
        return Arm(
            sq=sq.sum(axis=2),
            ab=np.abs(err).sum(axis=2),
            sm=err.sum(axis=2),
            vsq=sq.mean(axis=2) / sigma[:, :, 0] ** 2,
            vsqk=(sq / k**2).mean(axis=2) / sigma[:, :, 0] ** 2,
            crps=(crps := gaussian_crps(err, sigma * k).mean(axis=2)),
            vcrps=crps / sigma[:, :, 0],
        )

    arms = []
    for c in range(1 + N_CANDIDATES):
        idio = np.cumsum(rng.normal(0.0, idio_sd, (sims, n_origins, h)) * vol_t, axis=2)
        err = idio - unpredictable if (better and c == 1) else idio + market_error
        arms.append(summarise(err))
    return arms, summarise(market_error)


def pooled(arm: Arm, s: int, cols: np.ndarray, h: int, naive: Arm) -> Scores:
    n = int(cols.sum()) * h
    sq, ab, sm = float(arm.sq[s, cols].sum()), float(arm.ab[s, cols].sum()), float(arm.sm[s, cols].sum())
    rmse = math.sqrt(sq / n)
    bias = sm / n
    naive_rmse = math.sqrt(float(naive.sq[s, cols].sum()) / n)
    return Scores(
        rmse=rmse,
        mape=ab / n / LEVEL * 100.0,
        mae=ab / n,
        bias=bias,
        error_std=math.sqrt(max(0.0, (sq - n * bias**2) / (n - 1))),
        coverage95=95.0,  # not simulated
        crps=0.0,
        naive_rmse=naive_rmse,
        skill=1.0 - rmse / naive_rmse,
        inference_seconds=1.0,  # not simulated
        n_origins=int(cols.sum()),
        n_points=n,
    )


def per_origin(arm: Arm, loss: str, s: int, cols: np.ndarray, h: int) -> np.ndarray:
    if loss == "mse":
        return np.asarray(arm.sq[s, cols] / h)
    if loss == "vol_mse":
        return np.asarray(arm.vsq[s, cols])
    if loss == "vol_mse_k":
        return np.asarray(arm.vsqk[s, cols])
    if loss == "vol_crps":
        return np.asarray(arm.vcrps[s, cols])
    return np.asarray(arm.crps[s, cols])


@dataclass
class Tally:
    runs: int = 0
    approved: dict[str, int] = field(default_factory=lambda: dict.fromkeys(ALL_LOSSES, 0))
    seed_rule: int = 0  # the five seed criteria alone (no noise test)
    picked_better: int = 0
    picked_better_halving: int = 0  # the same round by successive halving over spread origin subsets
    resolution: dict[str, list[float]] = field(default_factory=lambda: {k: [] for k in ALL_LOSSES})
    fails: dict[str, int] = field(default_factory=dict)  # seed criteria failed (first loss's verdict)

    def rate(self, loss: str | None = None) -> float:
        hits = self.seed_rule if loss is None else self.approved[loss]
        return hits / self.runs if self.runs else float("nan")

    def se(self, loss: str | None = None) -> float:
        p = self.rate(loss)
        return math.sqrt(p * (1 - p) / self.runs) if self.runs else float("nan")

    def median_resolution(self, loss: str) -> float | None:
        r = self.resolution[loss]
        return float(np.median(r)) if r else None


def run_scenario(
    rng: np.random.Generator,
    market: Market,
    sims: int,
    h: int,
    n_origins: int,
    better: bool,
    losses: tuple[str, ...] = LOSSES,
    batch: int = 50,
    pick: str = "halving",
) -> Tally:
    settings = ApprovalSettings()
    tally = Tally()
    tune, val = split(n_origins, h)
    index = pd.bdate_range("2004-01-05", periods=n_origins, freq=f"{h}B")[val]
    done = 0
    while done < sims:
        size = min(batch, sims - done)
        arms, naive = simulate_arms(rng, market, size, h, n_origins, better)
        tuning_mse = np.stack([a.sq[:, tune].sum(axis=1) for a in arms[1:]], axis=1)
        winners = 1 + np.argmin(tuning_mse, axis=1)
        halved = np.array([halving_winner(arms, s, tune) for s in range(size)])
        if better:
            tally.picked_better_halving += int(np.sum(halved == 1))
        for s in range(size):
            win = arms[int(halved[s] if pick == "halving" else winners[s])]
            current, candidate = pooled(arms[0], s, val, h, naive), pooled(win, s, val, h, naive)
            for loss in losses:
                verdict = evaluate_gate(
                    current=current,
                    candidate=candidate,
                    naive_rmse=candidate.naive_rmse,
                    current_losses=pd.Series(per_origin(arms[0], loss, s, val, h), index=index),
                    candidate_losses=pd.Series(per_origin(win, loss, s, val, h), index=index),
                    prediction_length=h,
                    settings=settings,
                    origin_step=h,
                    noise_loss=loss,
                )
                tally.approved[loss] += verdict.approved
                if verdict.detectable_rmse_gain_pct is not None:
                    tally.resolution[loss].append(verdict.detectable_rmse_gain_pct)
                if loss == losses[0]:
                    tally.seed_rule += all(c.passed for c in verdict.criteria if c.name != "significance")
                    for c in verdict.criteria:
                        if not c.passed and c.name != "significance":
                            tally.fails[c.name] = tally.fails.get(c.name, 0) + 1
        tally.picked_better += int(np.sum(winners == 1)) if better else 0
        tally.runs += size
        done += size
    return tally


def halving_winner(arms: list[Arm], s: int, tune: np.ndarray) -> int:
    """The tuning round as `search.strategy = "halving"` runs it: rungs on growing spread subsets."""
    cols = np.flatnonzero(tune)
    cols = cols[spread_order(cols.tolist())]
    alive = [str(c) for c in range(1, len(arms))]
    for stop in halving_schedule(len(cols), len(alive)):
        mse = {a: float(arms[int(a)].sq[s, cols[:stop]].sum()) for a in alive}
        if stop == len(cols):
            return int(min(mse.items(), key=lambda kv: (kv[1], kv[0]))[0])
        alive = sorted(keep_best(mse))
    raise AssertionError("unreachable")  # pragma: no cover


def rate_se(hits: int, runs: int) -> tuple[float, float]:
    p = hits / runs
    return p, math.sqrt(p * (1 - p) / runs)


def pct(p: float, se: float) -> str:
    return f"{p:6.1%} ±{se:4.1%}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sims", type=int, default=2000, help="runs per scenario and horizon (default 2000)")
    parser.add_argument("--scan-sims", type=int, default=500, help="runs per cell of the h=63 gain scan")
    parser.add_argument("--seed", type=int, default=SearchSettings().seed)
    parser.add_argument("--config-corr", type=float, default=Market().config_corr)
    parser.add_argument("--horizons", default="5,10,21,63", help="prediction lengths (default 5,10,21,63)")
    parser.add_argument(
        "--losses", default=",".join(LOSSES), help=f"noise-test losses among {', '.join(ALL_LOSSES)}"
    )
    parser.add_argument(
        "--pick",
        choices=("halving", "grid"),
        default="halving",
        help="how the tuning round picks the winner the gate judges (default: halving, the bot's default)",
    )
    args = parser.parse_args()
    started = time.perf_counter()
    market = Market(config_corr=args.config_corr)
    rng = np.random.default_rng(args.seed)
    horizons = [int(x) for x in args.horizons.split(",")]
    losses = tuple(args.losses.split(","))
    if CHOSEN not in losses or not set(losses) <= set(ALL_LOSSES):
        parser.error(f"--losses must include {CHOSEN} and only use {', '.join(ALL_LOSSES)}")

    print(f"Gate simulation: {args.sims} runs per cell, seed {args.seed}, {N_CANDIDATES} candidates, error")
    print(
        f"correlation {market.config_corr}; whole-history origins split into alternating ~{BLOCK_OBS}-observation"
    )
    print(
        "blocks; synthetic per-origin losses, no Chronos model involved. Rates ± Monte-Carlo standard error.\n"
    )
    head = (
        f"{'h':>3} {'tune/val':>9} {'scenario':<15} {'seed rule':>14} "
        + " ".join(f"{'gate, ' + loss:>15}" for loss in losses)
        + f" {'picked':>14} {'picked, halving':>15}"
    )
    print(head)
    print("-" * len(head))
    results: dict[str, dict[str, Any]] = {}
    for h in horizons:
        n = REAL_ORIGINS[h]
        tune, val = split(n, h)
        null = run_scenario(rng, market, args.sims, h, n, better=False, losses=losses, pick=args.pick)
        alt = run_scenario(rng, market, args.sims, h, n, better=True, losses=losses, pick=args.pick)
        for name, tally in (("null (equal)", null), ("one 10% better", alt)):
            picked = (
                f"{pct(*rate_se(tally.picked_better, tally.runs)):>14} "
                f"{pct(*rate_se(tally.picked_better_halving, tally.runs)):>15}"
                if tally is alt
                else f"{'-':>14} {'-':>15}"
            )
            cells = " ".join(f"{pct(tally.rate(loss), tally.se(loss)):>15}" for loss in losses)
            print(
                f"{h:>3} {f'{tune.sum()}/{val.sum()}':>9} {name:<15} {pct(tally.rate(), tally.se()):>14} {cells} {picked}"
            )
        results[f"h{h}"] = {
            "origins": n,
            "tuning": int(tune.sum()),
            "validation": int(val.sum()),
            "null_approval": {loss: null.rate(loss) for loss in losses},
            "null_approval_se": {loss: null.se(loss) for loss in losses},
            "alt_approval": {loss: alt.rate(loss) for loss in losses},
            "alt_approval_se": {loss: alt.se(loss) for loss in losses},
            "null_seed_rule": null.rate(),
            "alt_seed_rule": alt.rate(),
            "alt_picked_better": alt.picked_better / alt.runs,
            "alt_picked_better_halving": alt.picked_better_halving / alt.runs,
            "null_seed_criteria_failed": {k: v / null.runs for k, v in sorted(null.fails.items())},
            "alt_seed_criteria_failed": {k: v / alt.runs for k, v in sorted(alt.fails.items())},
            "median_resolution_pct_null": {loss: null.median_resolution(loss) for loss in losses},
            "median_resolution_pct_alt": {loss: alt.median_resolution(loss) for loss in losses},
        }
    print(f"\nThe gate judges the winner of the tuning round picked by {args.pick}.")
    print(
        "seed rule = the seed's five criteria alone; gate = the same plus the one-sided Diebold-Mariano test"
        "\n(chance the gain is noise <= 5%) on that per-origin loss; picked = how often the truly better"
        "\ncandidate won the tuning round (pooled tuning RMSE; halving: each of the 27 its own arm)."
    )
    print(
        "\nResolution the verdicts report (gain the test confirms 4 times in 5), median, null / one 10% better:"
    )
    for h in horizons:
        r = results[f"h{h}"]
        cells = ", ".join(
            f"{loss} {r['median_resolution_pct_null'][loss]:.1f}% / {r['median_resolution_pct_alt'][loss]:.1f}%"
            for loss in losses
        )
        print(f"  h={h:<3} {cells}")

    scan: dict[str, dict[str, float]] = {}
    smallest = None
    if 63 in horizons:
        print(
            f"\nh=63: approval of one truly X% better candidate ({CHOSEN} loss, {args.scan_sims} runs per cell):"
        )
        for gain in GAIN_SCAN:
            m = Market(config_corr=market.config_corr, gain_rmse_pct=gain)
            t = run_scenario(
                rng, m, args.scan_sims, 63, REAL_ORIGINS[63], better=True, losses=(CHOSEN,), pick=args.pick
            )
            fails = {k: v / t.runs for k, v in sorted(t.fails.items())}
            scan[str(gain)] = {
                "approval": t.rate(CHOSEN),
                "se": t.se(CHOSEN),
                "seed_rule": t.rate(),
                "fails": fails,
            }
            print(
                f"  {gain:4.0f}% better: {pct(t.rate(CHOSEN), t.se(CHOSEN))}  (seed rule alone {t.rate():.1%}; "
                + ", ".join(f"{k} fails {v:.0%}" for k, v in fails.items())
                + ")"
            )
            if smallest is None and t.rate(CHOSEN) >= 0.80:
                smallest = gain
        print(
            f"  smallest scanned gain approved >= 4 times in 5: {f'{smallest:.0f}%' if smallest else 'none scanned'}"
        )

    def meets(h: int, key: str, bound: float, above: bool) -> bool | None:
        if f"h{h}" not in results:
            return None
        v = results[f"h{h}"][key]
        v = v[CHOSEN] if isinstance(v, dict) else v
        return bool(v >= bound if above else v <= bound)

    targets = {
        **{f"null_le_5pct_h{h}": meets(h, "null_approval", 0.05, False) for h in (5, 10, 21, 63)},
        **{f"power_ge_80pct_h{h}": meets(h, "alt_approval", 0.80, True) for h in (5, 10)},
        "power_ge_70pct_h21": meets(21, "alt_approval", 0.70, True),
        "picked_better_ge_80pct_h5": meets(5, "alt_picked_better", 0.80, True),
        "picked_better_halving_ge_80pct_h5": meets(5, "alt_picked_better_halving", 0.80, True),
    }
    print(f"\nTargets with the chosen loss ({CHOSEN}):")
    for name, ok in targets.items():
        print(f"  {name:<28} {'-' if ok is None else 'yes' if ok else 'NO'}")
    elapsed = time.perf_counter() - started
    print(f"\n{elapsed:.0f}s")
    summary = {
        "benchmark": "gate_simulation",
        "seed": args.seed,
        "sims": args.sims,
        "scan_sims": args.scan_sims,
        "candidates": N_CANDIDATES,
        "block_obs": BLOCK_OBS,
        "vol_window": VOL_WINDOW,
        "chosen_loss": CHOSEN,
        "pick": args.pick,
        "market": asdict(market),
        "results": results,
        "h63_gain_scan": scan,
        "h63_smallest_gain_80pct": smallest,
        "targets": targets,
        "seconds": round(elapsed, 1),
    }
    print(json.dumps(summary, sort_keys=True))


if __name__ == "__main__":
    main()
