"""End-to-end cost of whole-history origins: cold run, weekly rerun, weekly rerun with a new winner.

    nice -n 10 .venv/bin/python benchmarks/history_benchmark.py [--horizons 7d,30d] [--keep DIR]

Drives the real CLI (`python -m bot`) in a scratch workspace, each command under /usr/bin/time -v
(wall time and peak RSS of the whole command, start-up included), with a RANDOM-WEIGHT tiny T5
(the compute of chronos-t5-tiny; its forecasts are meaningless) and the real series
(../shared/data/usdclp_daily.csv; the benchmark exits when it is absent):

1. cold:   the series minus its last 5 observations, empty backtest cache,
           `chronops run --horizon H --force --dry-run plan`;
2. weekly: the 5 observations appended (re-ingest), the same command again (warm cache);
3. weekly, winner changed: from a copy of the workspace as the cold run left it, the same 5
           observations, and the cold winner's num_samples removed from `[search] num_samples`, so
           the weekly run must pick (and validate) another config.
Also the start-up cost: `chronops --help` and `chronops status`.

The live configs are marked as validated (provenance "manual") so that the gate compares and runs
its noise test, as in a real weekly run. The machine's load average is printed before and after:
on a shared machine compare the ratios, not the absolute seconds.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import pandas as pd

ROOT = Path(__file__).resolve().parent.parent
REAL = ROOT.parent / "shared" / "data" / "usdclp_daily.csv"
if not REAL.exists():
    REAL = Path("/work/shared/data/usdclp_daily.csv")
sys.path.insert(0, str(ROOT))


def timed(args: list[str], env: dict[str, str]) -> dict[str, Any]:
    """Run `python -m bot ARGS` under /usr/bin/time -v: exit code, wall seconds, peak RSS MiB."""
    cmd = ["/usr/bin/time", "-v", sys.executable, "-m", "bot", *args]
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, check=False)
    wall = re.search(r"Elapsed \(wall clock\) time \(h:mm:ss or m:ss\): (\S+)", proc.stderr)
    rss = re.search(r"Maximum resident set size \(kbytes\): (\d+)", proc.stderr)
    seconds = 0.0
    if wall:
        for part in wall.group(1).split(":"):
            seconds = seconds * 60 + float(part)
    if proc.returncode != 0:
        tail = "\n".join(proc.stderr.splitlines()[-15:])
        raise SystemExit(f"`chronops {' '.join(args)}` failed ({proc.returncode}):\n{tail}")
    return {"seconds": round(seconds, 1), "peak_rss_mib": round(int(rss.group(1)) / 1024) if rss else None,
            "stdout": proc.stdout}  # fmt: skip


def load_avg() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


def mark_validated(ws: Path) -> None:
    for path in (ws / "configs").glob("*.json"):
        cfg = json.loads(path.read_text())
        cfg["provenance"] = {"source": "manual"}
        path.write_text(json.dumps(cfg, indent=2) + "\n")


def run_meta(ws: Path, horizon: str, skip: set[str]) -> tuple[str, dict[str, Any]]:
    runs = sorted(p.name for p in (ws / "data" / "runs").iterdir() if p.name not in skip)
    run_id = runs[-1]
    meta = json.loads((ws / "data" / "runs" / run_id / horizon / "results_meta.json").read_text())
    return run_id, meta


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--horizons", default="7d", help="comma-separated horizons (default 7d)")
    parser.add_argument("--keep", type=Path, help="work in this directory and keep it (default: a temp dir)")
    parser.add_argument(
        "--max-history-years",
        type=float,
        default=0.0,
        help="[search] max_history_years for the runs (default 0: the whole history); a capped run is "
        "cheaper and its cold time scales with the origin count",
    )
    args = parser.parse_args()
    if not REAL.exists():
        raise SystemExit(f"real series absent ({REAL}); this benchmark needs it")
    from bot.adapters.tiny import build_tiny_model
    from bot.core.config import Family

    base = args.keep or Path(tempfile.mkdtemp(prefix="chronops-history-bench-"))
    base.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "PYTHONPATH": str(ROOT), "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}
    model = build_tiny_model(Family.T5, base / "t5-tiny-random")
    full = pd.read_csv(REAL, dtype=str)
    (base / "minus5.csv").write_text(full.iloc[:-5].to_csv(index=False))
    (base / "full.csv").write_text(full.to_csv(index=False))
    print(f"real series: {len(full)} observations, {full['date'].iloc[0]} .. {full['date'].iloc[-1]}")
    print(f"model: random-weight tiny T5 ({model}); forecasts are meaningless, times are real")
    print(f"load average before: {load_avg()} ({os.cpu_count()} CPUs)")
    results: dict[str, Any] = {
        "load_before": load_avg(),
        "horizons": {},
        "max_history_years": args.max_history_years,
    }

    startup_ws = base / "startup"
    if not startup_ws.exists():
        timed(["init", str(startup_ws), "--model-id", str(model)], env)
        timed(["ingest", "--source", "csv", str(base / "full.csv"), "-w", str(startup_ws)], env)
    results["help"] = timed(["--help"], env)["seconds"]
    results["status"] = timed(["status", "-w", str(startup_ws)], env)["seconds"]
    print(f"start-up: chronops --help {results['help']}s, chronops status {results['status']}s")

    for horizon in args.horizons.split(","):
        ws = base / f"ws-{horizon}"
        shutil.rmtree(ws, ignore_errors=True)
        timed(["init", str(ws), "--model-id", str(model)], env)
        mark_validated(ws)
        if args.max_history_years:
            toml = ws / "chronops.toml"
            text = re.sub(r"(?m)^max_history_years = .*$", f"max_history_years = {args.max_history_years}",
                          toml.read_text())  # fmt: skip
            toml.write_text(text)
        timed(["ingest", "--source", "csv", str(base / "minus5.csv"), "-w", str(ws)], env)
        run = ["run", "--horizon", horizon, "--force", "--dry-run", "plan", "-w", str(ws)]
        cold = timed(run, env)
        cold_id, meta = run_meta(ws, horizon, set())
        winner = meta["configs"][meta["winner_key"]]
        print(
            f"{horizon} cold:   {cold['seconds']:7.1f}s, peak {cold['peak_rss_mib']} MiB; "
            f"{meta['n_tuning']} tuning + {meta['n_validation']} validation origins; "
            f"winner ctx={winner['context_length']} ns={winner['num_samples']} T={winner['temperature']}"
        )
        changed_ws = base / f"ws-{horizon}-changed"
        shutil.rmtree(changed_ws, ignore_errors=True)
        shutil.copytree(ws, changed_ws)

        timed(["ingest", "--source", "csv", str(base / "full.csv"), "-w", str(ws)], env)
        weekly = timed(run, env)
        _, weekly_meta = run_meta(ws, horizon, {cold_id})
        print(
            f"{horizon} weekly: {weekly['seconds']:7.1f}s, peak {weekly['peak_rss_mib']} MiB; "
            f"cold/weekly {cold['seconds'] / max(weekly['seconds'], 1e-9):.1f}x; winner "
            f"{'unchanged' if weekly_meta['winner_key'] == meta['winner_key'] else 'changed'}"
        )

        settings = changed_ws / "chronops.toml"
        keep = [n for n in (50, 100, 200) if n != winner["num_samples"]]
        text = settings.read_text()
        text = re.sub(r"(?m)^num_samples = \[.*?\]", f"num_samples = {keep}", text, count=1)
        settings.write_text(text)
        timed(["ingest", "--source", "csv", str(base / "full.csv"), "-w", str(changed_ws)], env)
        changed = timed(
            ["run", "--horizon", horizon, "--force", "--dry-run", "plan", "-w", str(changed_ws)], env
        )
        _, changed_meta = run_meta(changed_ws, horizon, {cold_id})
        new = changed_meta["configs"][changed_meta["winner_key"]]
        print(
            f"{horizon} weekly, winner changed (num_samples {keep}): {changed['seconds']:7.1f}s, peak "
            f"{changed['peak_rss_mib']} MiB; cold/weekly {cold['seconds'] / max(changed['seconds'], 1e-9):.1f}x; "
            f"new winner ctx={new['context_length']} ns={new['num_samples']} T={new['temperature']}"
        )
        results["horizons"][horizon] = {
            "n_tuning": meta["n_tuning"],
            "n_validation": meta["n_validation"],
            "cold_seconds": cold["seconds"],
            "cold_peak_rss_mib": cold["peak_rss_mib"],
            "weekly_seconds": weekly["seconds"],
            "weekly_peak_rss_mib": weekly["peak_rss_mib"],
            "weekly_speedup": round(cold["seconds"] / max(weekly["seconds"], 1e-9), 1),
            "changed_seconds": changed["seconds"],
            "changed_speedup": round(cold["seconds"] / max(changed["seconds"], 1e-9), 1),
            "winner_changed": changed_meta["winner_key"] != meta["winner_key"],
        }
    results["load_after"] = load_avg()
    print(f"load average after: {load_avg()}")
    print(json.dumps(results, sort_keys=True))
    if not args.keep:
        shutil.rmtree(base, ignore_errors=True)


if __name__ == "__main__":
    main()
