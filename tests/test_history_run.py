"""A run on whole-history origins: the gate's loss, the stored per-origin results, exact re-judging."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from tests.conftest import run_cli, tiny_workspace

# two T5 candidates (ns 10 and 20 share one predict call), a few origins of each set
SETTINGS = """\
[search]
num_samples = [10, 20]
temperature = [1.0]
tuning_origins = 4
validation_origins = 10
sample_chunk = 10

[search.context_length]
"7d" = [90]
"""


def test_run_stores_vol_mse_losses_and_validate_rejudges_exactly(tmp_path: Path, tiny_t5: Path) -> None:
    ws = tiny_workspace(tmp_path / "ws", tiny_t5)
    (ws / "chronops.toml").write_text(SETTINGS)
    cfg_path = ws / "configs" / "7d.json"
    cfg = json.loads(cfg_path.read_text())
    cfg["provenance"] = {"source": "manual"}  # a validated live config: the gate compares, not initial
    cfg["context_length"], cfg["num_samples"], cfg["temperature"] = 180, 20, 1.0  # not a candidate
    cfg_path.write_text(json.dumps(cfg))
    plan = run_cli("run", "--horizon", "7d", "--force", "--dry-run", "plan", "-w", str(ws), timeout=300)
    assert plan.code == 0, plan.stderr
    assert "origins: 4 tuning and 10 validation origins, one every 5 observations" in plan.stdout
    assert "resolution: these validation origins confirm a true RMSE gain of about" in plan.stdout
    (run_dir,) = [d / "7d" for d in (ws / "data" / "runs").iterdir()]

    meta = json.loads((run_dir / "results_meta.json").read_text())
    assert meta["noise_loss"] == "vol_mse" and meta["n_validation"] == 10 and meta["n_tuning"] == 4
    results = pd.read_parquet(run_dir / "results.parquet")
    val = results[results["set"] == "validation"]
    # the current config and both candidates were validated (cached for next week's winner)
    assert val["config_key"].nunique() == 3
    assert val["scale"].notna().all() and (val["scale"] > 0).all()
    assert results.loc[results["set"] == "tuning", "scale"].isna().all()
    # the gate's two configs were timed alone at the newest 8 validation origins, no others
    timed = val[val["config_key"] == meta["winner_key"]].groupby("origin")["seconds"].first()
    assert timed.notna().sum() == 8 and timed.sort_index().iloc[:2].isna().all()

    report = json.loads((run_dir / "report.json").read_text())
    verdict = report["verdict"]
    assert verdict["noise_loss"] == "vol_mse"
    significance = next(c for c in verdict["criteria"] if c["name"] == "significance")
    assert (
        "over 10 origins" in significance["detail"] and "variance of daily changes" in significance["detail"]
    )
    assert "alternating blocks" in report["origins_text"]
    assert "4 tuning and 10 validation origins" in report["origins_text"]

    # the stored loss reproduces the stored p-value: mse / scale^2 per origin, paired by origin
    def loss(key: str) -> pd.Series:
        rows = val[val["config_key"] == key]
        mse = ((rows["point"] - rows["actual"]) ** 2).groupby(rows["origin"]).mean()
        return mse / rows.groupby("origin")["scale"].first() ** 2

    d = (loss(meta["current_key"]) - loss(meta["winner_key"])).to_numpy()
    assert len(d) == 10 and np.ptp(d) > 0
    # lag 0 (step = h): the HLN factor is sqrt((T - 1) / T) and the statistic is Student-t, T - 1 df
    t = d.mean() / (d.std(ddof=0) / np.sqrt(len(d))) * np.sqrt((len(d) - 1) / len(d))
    assert significance["value"] == pytest.approx(float(stats.t.sf(t, len(d) - 1)), rel=1e-9)

    again = run_cli("validate", "--run", run_dir.parent.name, "--json", "-w", str(ws))
    assert again.code == 0, again.stderr
    doc = json.loads(again.stdout)["horizons"][0]
    assert doc["same_as_stored"] is True
    assert doc["verdict"]["noise_loss"] == "vol_mse"


CACHED_RUN = """
import sys, numpy as np, pandas as pd
from pathlib import Path
from bot.adapters.chronos import LazyModel
from bot.core.config import Family, HorizonConfig
from bot.flow.engine import BacktestCache, Engine
model_dir, cache = sys.argv[1], Path(sys.argv[2])
dates = pd.Series(pd.bdate_range("2020-01-01", periods=300))
values = 1000.0 + np.sin(np.arange(300) / 7.0) * 20
cfg = HorizonConfig("7d", 5, model_dir, Family.T5, 64, 20, 1.0, 50, 1.0)
model = LazyModel(model_dir, Family.T5)
engine = Engine(model, dates, values, seed=1, sample_chunk=10, cache=BacktestCache(cache))
ev = engine.evaluate([cfg], [100, 150, 200])
print(engine.stats.cache_hits, engine.stats.predict_calls, model.loaded, "torch" in sys.modules,
      round(float(ev[next(iter(ev))].steps["point"].sum()), 6))
"""


def test_a_fully_cached_evaluation_never_loads_the_model_or_imports_torch(
    tmp_path: Path, tiny_t5: Path
) -> None:
    import subprocess
    import sys

    cache = tmp_path / "cache.parquet"
    cold = subprocess.run([sys.executable, "-c", CACHED_RUN, str(tiny_t5), str(cache)],
                          capture_output=True, text=True, check=True)  # fmt: skip
    hits, calls, loaded, torch_imported, total = cold.stdout.split()
    assert (hits, calls, loaded, torch_imported) == ("0", "3", "True", "True")
    warm = subprocess.run([sys.executable, "-c", CACHED_RUN, str(tiny_t5), str(cache)],
                          capture_output=True, text=True, check=True)  # fmt: skip
    assert warm.stdout.split() == ["3", "0", "False", "False", total]
