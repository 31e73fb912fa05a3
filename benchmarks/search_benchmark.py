"""Search engine benchmark: naive loop vs engine cold vs engine warm, side by side, one run.

    .venv/bin/python benchmarks/search_benchmark.py [--origins 8] [--horizons 7d,30d] [--json-only]

Uses the real series (../shared/data/usdclp_daily.csv) when present, else the demo's synthetic one
(said in the output), and a RANDOM-WEIGHT tiny T5 (same compute as chronos-t5-tiny; its forecasts
are meaningless, so only times, memory and agreement between methods mean anything).

Each variant runs in its own subprocess so peak RSS (ru_maxrss) is measured per variant:
- naive:  one predict call per config per origin, each num_samples drawn separately, no cache,
          no de-duplication (the original project's loop), through the stock `ChronosPipeline.predict`;
- cold-stock: the engine (grid strategy, empty cache) with the stock pipeline
          (CHRONOPS_T5_SAMPLER=stock): what shared draws and chunking alone give;
- cold:   the engine (grid strategy), empty backtest cache, with the shared-context T5 sampler
          (the default);
- halving: the engine with successive halving, empty cache;
- warm:   the engine with the cache left by `cold`, after 5 new observations were appended.
All at the same tuning origins. Monte-Carlo noise: the engine's and the naive loop's winners rescored
with 10 other seeds (`mc_noise`), to judge whether two winners differ by more than sampling luck.
Also: the Bolt-tiny grid for all four horizons (24 tuning + 24 validation origins each).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

REAL = ROOT.parent / "shared" / "data" / "usdclp_daily.csv"
PRED = {"7d": 5, "15d": 10, "30d": 21, "90d": 63}
CHUNK = 0


def load_series(drop_last: int) -> tuple[pd.DataFrame, str]:
    from bot.commands.demo import synthetic_series
    from bot.core.series import validate_series

    if REAL.exists():
        raw, label = pd.read_csv(REAL, dtype=str), "real USD/CLP (../shared/data/usdclp_daily.csv)"
    else:
        raw, label = synthetic_series(), "SYNTHETIC series (real data absent)"
    frame, _ = validate_series(raw, source=label, max_gap_days=30)
    if drop_last:
        frame = frame.iloc[:-drop_last].reset_index(drop=True)
    return frame, label


def candidates(horizon: str, model_dir: str) -> list:  # type: ignore[type-arg]
    from bot.core.config import Family, HorizonConfig
    from bot.core.search import build_plan
    from bot.settings import SearchSettings

    s = SearchSettings()
    base = HorizonConfig(horizon, PRED[horizon], model_dir, Family.T5, 180, 100, 1.0, 50, 1.0)
    plan = build_plan(
        base, context_lengths=s.context_length[horizon], num_samples=s.num_samples, temperatures=s.temperature
    )
    return [c.config for c in plan.candidates]


def origins_for(n_obs: int, horizon: str, n: int, max_ctx: int) -> tuple[int, ...]:
    from bot.core.backtest import origin_step, walk_forward_origins

    plan = walk_forward_origins(
        n_obs, prediction_length=PRED[horizon], max_context=max_ctx, n_tuning=n, n_validation=1,
        step=origin_step(PRED[horizon], 5),
    )  # fmt: skip
    return plan.tuning


def rmse_of(steps: pd.DataFrame) -> float:
    return float(np.sqrt(np.mean((steps["point"] - steps["actual"]) ** 2)))


def run_variant(args: argparse.Namespace) -> dict[str, object]:
    """Runs inside the child process."""
    from bot.adapters.chronos import load_model
    from bot.core.config import config_hash
    from bot.core.metrics import step_rows
    from bot.flow.engine import BacktestCache, Engine
    from bot.flow.search import run_search

    series, _ = load_series(0 if args.variant == "warm" else 5)
    values = series["value"].to_numpy()
    model = load_model(args.model)
    configs = candidates(args.horizon, args.model)
    max_ctx = max(c.effective_context_length for c in configs)
    # warm sees 5 more observations; origins sit on a fixed grid, so it gets at most one new origin
    origins = origins_for(len(values), args.horizon, args.origins, max_ctx)
    started = time.perf_counter()
    scores: dict[str, float] = {}
    calls = 0
    if args.variant == "naive":
        assert model.sampler is None, "the naive loop must run the stock pipeline"
        import torch

        for cfg in configs:
            frames = []
            for o in origins:
                ctx = values[max(0, o - cfg.effective_context_length) : o]
                torch.manual_seed(args.seed)
                out = model.pipeline.predict(
                    torch.tensor(ctx, dtype=torch.float32), prediction_length=cfg.prediction_length,
                    num_samples=cfg.num_samples, temperature=cfg.temperature, top_k=cfg.top_k, top_p=cfg.top_p,
                )  # fmt: skip
                calls += 1
                from bot.core.metrics import Forecast

                fc = Forecast.from_samples(out[0].numpy().astype(np.float64))
                actual = values[o : o + cfg.prediction_length]
                dates = list(series["date"].iloc[o : o + cfg.prediction_length])
                frames.append(step_rows(fc, actual, float(ctx[-1]), series["date"].iloc[o], dates))
            scores[config_hash(cfg)] = rmse_of(pd.concat(frames))
    else:
        from bot.settings import SearchSettings

        engine = Engine(
            model, series["date"], values, seed=args.seed, sample_chunk=args.sample_chunk or SearchSettings().sample_chunk,
            cache=BacktestCache(Path(args.cache)) if args.cache else None,
        )  # fmt: skip
        strategy = "halving" if args.variant == "halving" else "grid"
        result = run_search(engine, configs, origins, strategy=strategy, seed=args.seed, budget_seconds=1e9)
        calls = engine.stats.predict_calls
        scores = {k: rmse_of(ev.steps) for k, ev in result.evaluations.items() if k in result.complete}
    elapsed = time.perf_counter() - started
    by_key = {config_hash(c): c for c in configs}
    best = min(scores, key=lambda k: (scores[k], k))
    w = by_key[best]
    return {
        "variant": args.variant,
        "horizon": args.horizon,
        "seconds": round(elapsed, 2),
        "predict_calls": calls,
        "peak_rss_mib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
        "winner": f"ctx={w.effective_context_length} ns={w.num_samples} T={w.temperature}",
        "winner_key": best,
        "winner_tuning_rmse": round(scores[best], 4),
        "scores": scores,
    }


MC_SEEDS = tuple(range(101, 111))


def mc_noise(model: str, horizon: str, engine_key: str, naive_key: str, n_origins: int) -> dict[str, float]:
    """Monte-Carlo noise of the tuning RMSE: the engine winner and the naive loop's winner rescored
    with 10 other seeds (same origins; both configs share each seed's draws).

    `std` is the seed-to-seed std of the engine winner's RMSE (the noise of the metric itself);
    `gap` is the mean over seeds of RMSE(engine winner) - RMSE(naive winner), with its standard
    error: a gap within about two standard errors means the two picks are equally good as far as
    the metric can tell.
    """
    from bot.adapters.chronos import load_model
    from bot.core.config import config_hash
    from bot.flow.engine import Engine

    series, _ = load_series(5)
    values = series["value"].to_numpy()
    configs = {config_hash(c): c for c in candidates(horizon, model)}
    origins = origins_for(
        len(values), horizon, n_origins, max(c.effective_context_length for c in configs.values())
    )
    m = load_model(model)
    engine_rmse, naive_rmse = [], []
    for seed in MC_SEEDS:
        pair = [configs[engine_key], configs[naive_key]]
        ev = Engine(m, series["date"], values, seed=seed, sample_chunk=25).evaluate(pair, origins)
        engine_rmse.append(rmse_of(ev[engine_key].steps))
        naive_rmse.append(rmse_of(ev[naive_key].steps))
    gaps = np.array(engine_rmse) - np.array(naive_rmse)
    return {
        "seeds": len(MC_SEEDS),
        "std": round(float(np.std(engine_rmse, ddof=1)), 2),
        "engine_winner_mean": round(float(np.mean(engine_rmse)), 2),
        "naive_winner_mean": round(float(np.mean(naive_rmse)), 2),
        "gap": round(float(gaps.mean()), 2),
        "gap_se": round(float(gaps.std(ddof=1) / np.sqrt(len(gaps))), 2),
    }


def bolt_grid(model: str) -> dict[str, float]:
    from bot.adapters.chronos import load_model
    from bot.core.backtest import origin_step, walk_forward_origins
    from bot.core.config import Family, HorizonConfig
    from bot.core.search import build_plan
    from bot.flow.engine import Engine
    from bot.flow.search import run_search
    from bot.settings import SearchSettings

    s = SearchSettings()
    series, _ = load_series(0)
    values = series["value"].to_numpy()
    m = load_model(model)
    times = {}
    total_start = time.perf_counter()
    for h in ("7d", "15d", "30d", "90d"):
        base = HorizonConfig(h, PRED[h], model, Family.BOLT, 365)
        plan = build_plan(
            base, context_lengths=s.context_length[h], num_samples=s.num_samples, temperatures=s.temperature
        )
        cfgs = [c.config for c in plan.candidates]
        o = walk_forward_origins(
            len(values), prediction_length=PRED[h], max_context=max(c.effective_context_length for c in cfgs),
            n_tuning=s.tuning_origins, n_validation=s.validation_origins, step=origin_step(PRED[h], s.min_origin_step),
        )  # fmt: skip
        started = time.perf_counter()
        eng = Engine(m, series["date"], values, seed=s.seed, sample_chunk=50)
        result = run_search(eng, cfgs, o.tuning, strategy="grid", seed=s.seed, budget_seconds=1e9)
        best = min(result.evaluations.values(), key=lambda e: rmse_of(e.steps))
        eng.evaluate([base, best.config], o.validation)
        times[h] = round(time.perf_counter() - started, 2)
    times["total"] = round(time.perf_counter() - total_start, 2)
    return times


def child(variant: str, horizon: str, model: str, origins: int, cache: str, seed: int) -> dict[str, object]:
    cmd = [sys.executable, __file__, "--child", variant, "--horizon", horizon, "--model", model,
           "--origins", str(origins), "--cache", cache, "--seed", str(seed), "--sample-chunk", str(CHUNK)]  # fmt: skip
    sampler = "stock" if variant in ("naive", "cold-stock") else "shared"
    env = {**os.environ, "PYTHONWARNINGS": "ignore", "CHRONOPS_T5_SAMPLER": sampler}
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False, env=env)
    if proc.returncode != 0:
        raise SystemExit(f"{variant} {horizon} failed:\n{proc.stderr[-3000:]}")
    result: dict[str, object] = json.loads(proc.stdout.strip().splitlines()[-1])
    return result


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument(
        "--origins", type=int, default=8, help="tuning origins per horizon (equal for all variants)"
    )
    p.add_argument("--horizons", default="7d,30d")
    p.add_argument("--seed", type=int, default=20260101)
    p.add_argument("--child", dest="variant")
    p.add_argument("--horizon")
    p.add_argument("--model")
    p.add_argument("--cache", default="")
    p.add_argument("--json-only", action="store_true")
    p.add_argument(
        "--variants",
        default="naive,cold-stock,cold,warm,halving",
        help="subset to run (cold is needed for warm)",
    )
    p.add_argument("--no-bolt", action="store_true", help="skip the Bolt-tiny grid")
    p.add_argument("--sample-chunk", type=int, default=0, help="engine sample chunk (0 = settings default)")
    args = p.parse_args()
    if args.variant:
        print(json.dumps(run_variant(args)))
        return

    from bot.adapters.tiny import build_tiny_model
    from bot.core.config import Family

    tmp = Path(tempfile.mkdtemp(prefix="chronops-bench-"))
    t5 = str(build_tiny_model(Family.T5, tmp / "t5"))
    bolt = str(build_tiny_model(Family.BOLT, tmp / "bolt"))
    _, label = load_series(0)
    report: dict[str, object] = {
        "series": label,
        "origins": args.origins,
        "model": "random-weight tiny T5",
        "horizons": {},
    }
    rows = []
    global CHUNK
    CHUNK = args.sample_chunk
    wanted = args.variants.split(",")
    for h in args.horizons.split(","):
        cache = str(tmp / f"cache-{h}.parquet")
        got: dict[str, dict[str, object]] = {}
        for name in ("naive", "cold-stock", "cold", "warm", "halving"):
            if name in wanted:
                use_cache = name in ("cold", "warm")
                got[name] = child(name, h, t5, args.origins, cache if use_cache else "", args.seed)
                if not args.json_only:
                    v = got[name]
                    print(f"  {h} {name}: {v['seconds']} s, {v['predict_calls']} calls, peak {v['peak_rss_mib']} MiB, "
                          f"winner {v['winner']} (tuning RMSE {v['winner_tuning_rmse']})", flush=True)  # fmt: skip
        scores = {k: v.pop("scores") for k, v in got.items()}
        entry: dict[str, object] = dict(got)

        def ratio(a: str, b: str, got: dict[str, dict[str, object]] = got) -> float | None:
            if a in got and b in got:
                return round(float(got[a]["seconds"]) / max(float(got[b]["seconds"]), 1e-3), 2)  # type: ignore[arg-type]
            return None

        entry["speedup_cold_vs_naive"] = ratio("naive", "cold")
        entry["speedup_cold_stock_vs_naive"] = ratio("naive", "cold-stock")
        entry["speedup_halving_vs_naive"] = ratio("naive", "halving")
        entry["speedup_warm_vs_cold"] = ratio("cold", "warm")
        if "cold" in got:
            naive_key = str(got["naive"]["winner_key"]) if "naive" in got else str(got["cold"]["winner_key"])
            entry["mc_noise"] = mc_noise(t5, h, str(got["cold"]["winner_key"]), naive_key, args.origins)
            if "naive" in scores:
                entry["naive_rmse_of_engine_winner"] = round(
                    scores["naive"][str(got["cold"]["winner_key"])], 4
                )
        report["horizons"][h] = entry  # type: ignore[index]
        for name, v in got.items():
            rows.append(
                (
                    h,
                    name,
                    v["seconds"],
                    v["predict_calls"],
                    v["peak_rss_mib"],
                    v["winner"],
                    v["winner_tuning_rmse"],
                )
            )
    report["bolt_tiny_grid_seconds"] = {} if args.no_bolt else bolt_grid(bolt)
    if not args.json_only:
        print(
            f"series: {label}; {args.origins} tuning origins; random-weight tiny T5 (forecasts meaningless)"
        )
        print(
            f"{'h':<4} {'variant':<10} {'seconds':>8} {'calls':>6} {'peak MiB':>9}  {'winner':<24} {'tuning RMSE':>12}"
        )
        for r in rows:
            print(f"{r[0]:<4} {r[1]:<10} {r[2]:>8} {r[3]:>6} {r[4]:>9}  {r[5]:<24} {r[6]:>12}")
        for h, e in report["horizons"].items():  # type: ignore[attr-defined]
            print(
                f"{h}: cold {e['speedup_cold_vs_naive']}x faster than naive (stock sampler: "
                f"{e['speedup_cold_stock_vs_naive']}x), halving {e['speedup_halving_vs_naive']}x, "
                f"warm {e['speedup_warm_vs_cold']}x faster than cold"
            )
            mc = e.get("mc_noise")
            if mc:
                print(
                    f"  MC noise over {mc['seeds']} seeds: std of the engine winner's tuning RMSE {mc['std']}; "
                    f"engine winner - naive winner {mc['gap']:+} (se {mc['gap_se']})"
                )
        print(f"Bolt-tiny grid, all four horizons (24+24 origins): {report['bolt_tiny_grid_seconds']}")
    print(json.dumps(report))


if __name__ == "__main__":
    main()
