"""The backtest engine: evaluates candidate configs on walk-forward origins, fast and cached.

Speed by design:
- T5 is sampled with the context encoded once and its cross-attention shared by all sample paths
  (`bot.adapters.t5_sampler`): 3-5x faster per call than the stock pipeline, memory independent of
  context x samples.
- T5 candidates that differ only in num_samples share one predict per (context, temperature,
  origin): the largest num_samples is drawn once and smaller values use the first draws (valid
  because draws are independent; random streams of `search.sample_chunk` rows make the first k
  draws the same whatever the total). In such a shared call a config is charged its share of the
  call's seconds (k / total; an estimate that ignores the fixed part of the call, so it flatters
  small num_samples: used only to break ties in the ranking). The gate's timings come from
  `evaluate(share_draws=False)`: one call per config and origin, each timed on its own.
- Every configuration at an origin uses the same seed (common random numbers), so differences
  between configs are not sampling luck.
- A parquet backtest cache keyed by model id + revision, effective config and origin, validated by a
  fingerprint of exactly the values the forecast read (context window) and was scored on (actuals):
  the next run computes only new origins, and a revised past value recomputes only the origins
  whose windows contain it.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from bot.adapters.chronos import Model
from bot.adapters.store import file_lock, read_table, write_table
from bot.core.backtest import context_window, target_window
from bot.core.config import Family, HorizonConfig, config_hash
from bot.core.metrics import STEP_COLUMNS, Scores, pooled_scores, step_rows
from bot.core.series import fingerprint
from bot.faults import crash_point

ProgressFn = Callable[[int, int], None]
CACHE_COLUMNS = ["cache_key", "fingerprint", *STEP_COLUMNS, "seconds"]


@dataclass
class Evaluation:
    config: HorizonConfig
    key: str
    steps: pd.DataFrame  # STEP_COLUMNS, one row per origin x step
    seconds: dict[pd.Timestamp, float] = field(default_factory=dict)  # inference seconds per origin

    def scores(self) -> Scores:
        return pooled_scores(
            self.steps, float(np.median(list(self.seconds.values()))) if self.seconds else 0.0
        )

    def subset(self, origins: Sequence[pd.Timestamp]) -> Evaluation:
        keep = set(origins)
        steps = self.steps[self.steps["origin"].isin(keep)].reset_index(drop=True)
        return Evaluation(self.config, self.key, steps, {o: s for o, s in self.seconds.items() if o in keep})


@dataclass
class EngineStats:
    predict_calls: int = 0
    cache_hits: int = 0
    cache_misses: int = 0


class BacktestCache:
    """Per-origin step rows, loaded once, saved atomically (locked) after each evaluation with new rows.

    The stored table is indexed by (cache key, origin) -> row range once (sorted, no per-group
    frames), so opening a cache of hundreds of thousands of rows costs about one parquet read:
    a weekly rerun that finds everything cached pays little more than that.
    """

    def __init__(self, path: Path | None) -> None:
        self.path = path
        self._table = pd.DataFrame(columns=CACHE_COLUMNS)
        self._index: dict[tuple[str, int], tuple[int, int, str]] = {}  # (key, origin ns) -> rows, fp
        self._new: dict[tuple[str, int], tuple[str, pd.DataFrame]] = {}
        if path is not None and path.exists():
            self._load(read_table(path, columns=CACHE_COLUMNS))

    def _load(self, table: pd.DataFrame) -> None:
        table = table.sort_values(["cache_key", "origin", "step"], kind="stable", ignore_index=True)
        keys = table["cache_key"].to_numpy()
        when = table["origin"].to_numpy().astype("datetime64[ns]").view("int64")
        fps = table["fingerprint"].to_numpy()
        self._index = {}
        if len(table):
            change = np.r_[True, (keys[1:] != keys[:-1]) | (when[1:] != when[:-1])]
            starts = np.flatnonzero(change)
            ends = np.r_[starts[1:], len(table)]
            for start, end in zip(starts.tolist(), ends.tolist(), strict=True):
                self._index[(str(keys[start]), int(when[start]))] = (start, end, str(fps[start]))
        self._table = table
        self._new = {}

    def get(self, key: str, origin: pd.Timestamp, fp: str) -> pd.DataFrame | None:
        slot = (key, pd.Timestamp(origin).value)
        fresh = self._new.get(slot)
        if fresh is not None:
            return fresh[1] if fresh[0] == fp else None
        hit = self._index.get(slot)
        if hit is None or hit[2] != fp:
            return None
        return self._table.iloc[hit[0] : hit[1]].reset_index(drop=True)

    def put(self, key: str, origin: pd.Timestamp, fp: str, rows: pd.DataFrame, seconds: float) -> None:
        frame = rows.copy()
        frame.insert(0, "fingerprint", fp)
        frame.insert(0, "cache_key", key)
        frame["seconds"] = seconds
        self._new[(key, pd.Timestamp(origin).value)] = (fp, frame)

    def save(self) -> None:
        if self.path is None or not self._new:
            return
        keep = np.ones(len(self._table), dtype=bool)
        for slot in self._new:
            if slot in self._index:  # recomputed (a revised value): the new rows replace the old
                start, end, _ = self._index[slot]
                keep[start:end] = False
        frames = [self._table[keep], *(frame for _, frame in self._new.values())]
        merged = pd.concat([f for f in frames if len(f)], ignore_index=True)[CACHE_COLUMNS]
        with file_lock(self.path):
            write_table(self.path, merged)
        self._load(merged)

    def __len__(self) -> int:
        return len(set(self._index) | set(self._new))


def backtest_cache_key(model_id: str, revision: str, cfg: HorizonConfig) -> str:
    """The backtest cache's key for a config: model, its revision, and the hash of what changes forecasts."""
    return f"{model_id}@{revision}|{config_hash(cfg)}"


def draw_group_key(cfg: HorizonConfig, share_draws: bool = True) -> tuple[object, ...]:
    """Configs with the same key share one predict call per origin (they differ only in num_samples)."""
    key: tuple[object, ...] = (cfg.effective_context_length, cfg.prediction_length)
    if cfg.model_family is Family.T5:
        key = (*key, cfg.temperature, cfg.top_k, cfg.top_p)
        if not share_draws:
            key = (*key, cfg.num_samples)
    return key


def _origin_seed(seed: int, origin: pd.Timestamp) -> int:
    digest = hashlib.sha256(f"{seed}:{origin.date().isoformat()}".encode()).digest()
    return int.from_bytes(digest[:4], "big")


class Engine:
    def __init__(
        self,
        model: Model,
        dates: pd.Series,
        values: np.ndarray,
        *,
        seed: int,
        sample_chunk: int,
        cache: BacktestCache | None = None,
    ) -> None:
        self.model = model
        self.dates = pd.to_datetime(dates).reset_index(drop=True)
        self.values = np.asarray(values, dtype=np.float64)
        self.seed = seed
        self.sample_chunk = sample_chunk
        self.cache = cache if cache is not None else BacktestCache(None)
        self.stats = EngineStats()
        self._warm = False

    def pending_calls(
        self, configs: Sequence[HorizonConfig], origins: Sequence[int], *, share_draws: bool = True
    ) -> int:
        """Predict calls `evaluate` would make: (call group, origin) pairs not fully in the cache."""
        groups: dict[tuple[object, ...], list[HorizonConfig]] = {}
        for cfg in configs:
            groups.setdefault(draw_group_key(cfg, share_draws), []).append(cfg)
        pending = 0
        for members in groups.values():
            for origin in origins:
                when = pd.Timestamp(self.dates.iloc[origin])
                fp = self._fingerprint(members[0], origin)
                if any(self.cache.get(self.cache_key(c, not share_draws), when, fp) is None for c in members):
                    pending += 1
        return pending

    def time_one_call(self, cfg: HorizonConfig, origin: int) -> float:
        """Seconds of one warm predict at `cfg`'s largest draw (used to size a search to its budget)."""
        self._warm_up(cfg, origin)
        ctx = context_window(self.values, origin, cfg.effective_context_length)
        _, seconds = self.model.predict(
            ctx, cfg.prediction_length, num_samples=cfg.num_samples, temperature=cfg.temperature,
            top_k=cfg.top_k, top_p=cfg.top_p, seed=0, sample_chunk=self.sample_chunk,
        )  # fmt: skip
        return seconds

    def cache_key(self, cfg: HorizonConfig, solo: bool = False) -> str:
        """Rows from a call of its own (`share_draws=False`, timed alone) are cached apart: the same
        errors (same draws), but inference seconds measured, not apportioned."""
        return backtest_cache_key(self.model.model_id, self.model.revision, cfg) + ("|solo" if solo else "")

    def _fingerprint(self, cfg: HorizonConfig, origin: int) -> str:
        ctx = context_window(self.values, origin, cfg.effective_context_length)
        tgt = target_window(self.values, origin, cfg.prediction_length)
        stamp = f"{self.dates.iloc[origin - len(ctx)].date()}:{self.dates.iloc[origin + len(tgt) - 1].date()}"
        return f"{fingerprint(np.concatenate([ctx, tgt]))}:{stamp}"

    def _warm_up(self, cfg: HorizonConfig, origin: int) -> None:
        if not self._warm:
            ctx = context_window(self.values, origin, cfg.effective_context_length)
            self.model.predict(ctx, cfg.prediction_length, num_samples=min(self.sample_chunk, 10), seed=0)
            self._warm = True

    def evaluate(
        self,
        configs: Sequence[HorizonConfig],
        origins: Sequence[int],
        progress: ProgressFn | None = None,
        *,
        share_draws: bool = True,
    ) -> dict[str, Evaluation]:
        """Evaluate each config at each origin (index of the first target). Keys are config hashes.

        `share_draws=False` gives every config its own predict call (still with the same random
        streams, so the draws are the same): each config's inference time is then measured, not
        apportioned. The gate uses it for the current config and the winner.
        """
        configs = list({config_hash(c): c for c in configs}.values())
        groups: dict[tuple[object, ...], list[HorizonConfig]] = {}
        for cfg in configs:
            groups.setdefault(draw_group_key(cfg, share_draws), []).append(cfg)
        frames: dict[str, list[pd.DataFrame]] = {config_hash(c): [] for c in configs}
        seconds: dict[str, dict[pd.Timestamp, float]] = {config_hash(c): {} for c in configs}
        total = len(groups) * len(origins)
        done = 0
        for members in groups.values():
            for origin in origins:
                self._evaluate_group_at(members, origin, frames, seconds, solo=not share_draws)
                crash_point("engine:origin")
                done += 1
                if progress:
                    progress(done, total)
        self.cache.save()
        return {
            config_hash(c): Evaluation(
                c,
                config_hash(c),
                pd.concat(frames[config_hash(c)], ignore_index=True),
                seconds[config_hash(c)],
            )
            for c in configs
        }

    def _evaluate_group_at(
        self,
        members: list[HorizonConfig],
        origin: int,
        frames: dict[str, list[pd.DataFrame]],
        seconds: dict[str, dict[pd.Timestamp, float]],
        *,
        solo: bool = False,
    ) -> None:
        when = pd.Timestamp(self.dates.iloc[origin])
        fp = self._fingerprint(members[0], origin)
        cached = {config_hash(c): self.cache.get(self.cache_key(c, solo), when, fp) for c in members}
        if all(rows is not None for rows in cached.values()):
            self.stats.cache_hits += len(members)
            for key, rows in cached.items():
                assert rows is not None
                frames[key].append(rows[STEP_COLUMNS])
                seconds[key][when] = float(rows["seconds"].iloc[0])
            return
        self.stats.cache_misses += len(members)
        lead = members[0]
        self._warm_up(lead, origin)
        ctx = context_window(self.values, origin, lead.effective_context_length)
        actual = target_window(self.values, origin, lead.prediction_length)
        draws = max((c.num_samples or 0) for c in members) or None
        forecast, call_seconds = self.model.predict(
            ctx,
            lead.prediction_length,
            num_samples=draws,
            temperature=lead.temperature,
            top_k=lead.top_k,
            top_p=lead.top_p,
            seed=_origin_seed(self.seed, when),
            sample_chunk=self.sample_chunk,
        )
        self.stats.predict_calls += 1
        target_dates = [pd.Timestamp(d) for d in self.dates.iloc[origin : origin + len(actual)]]
        for cfg in members:
            key = config_hash(cfg)
            if cfg.model_family is Family.T5 and cfg.num_samples:
                used = forecast.head(cfg.num_samples)
                secs = call_seconds * min(1.0, cfg.num_samples / (draws or cfg.num_samples))
            else:
                used, secs = forecast, call_seconds
            rows = step_rows(used, actual, float(ctx[-1]), when, target_dates)
            frames[key].append(rows)
            seconds[key][when] = secs
            self.cache.put(self.cache_key(cfg, solo), when, fp, rows, secs)
