"""Search strategies over the engine: full grid, seeded random subset, successive halving.

- grid: every candidate on every tuning origin.
- random: a seeded subset sized to fit `time_budget_seconds` (estimated from one timed predict);
  the fallback when the grid would exceed the budget.
- halving: all candidates on the first rung of origins, then the best half (at least 3) continue to
  the next rung, until the survivors have every tuning origin. T5 candidates that share a predict
  call (same context and temperature) cost nothing extra, so a call is dropped only when all its
  candidates are.

Only candidates scored on all tuning origins can win; the others are reported with the origins they
were scored on.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import pandas as pd

from bot.core.config import HorizonConfig, config_hash
from bot.core.search import halving_rungs, halving_survivors
from bot.flow.engine import Engine, Evaluation, ProgressFn, draw_group_key

STRATEGIES = ("grid", "random", "halving")


@dataclass
class SearchResult:
    evaluations: dict[str, Evaluation]  # every candidate scored (some on fewer origins under halving)
    complete: set[str]  # keys scored on every tuning origin: only these may win
    strategy: str
    notes: list[str] = field(default_factory=list)


def _rmse(steps: pd.DataFrame) -> float:
    return float(((steps["point"] - steps["actual"]) ** 2).mean() ** 0.5)


def _calls(configs: Sequence[HorizonConfig]) -> int:
    return len({draw_group_key(c) for c in configs})


def run_search(
    engine: Engine,
    candidates: Sequence[HorizonConfig],
    origins: Sequence[int],
    *,
    strategy: str,
    seed: int,
    budget_seconds: float,
    progress: ProgressFn | None = None,
) -> SearchResult:
    notes: list[str] = []
    if strategy == "grid" or strategy == "random":
        chosen = list(candidates)
        pending = engine.pending_calls(chosen, origins)
        per_call = estimate = 0.0
        if pending:  # a warm cache needs no estimate (and no extra predict)
            biggest = max(candidates, key=lambda c: (c.num_samples or 0, c.effective_context_length))
            per_call = engine.time_one_call(biggest, origins[-1])
            estimate = per_call * pending
        if strategy == "random" or estimate > budget_seconds:
            import random

            rng = random.Random(seed)
            fit = max(1, int(budget_seconds / max(per_call * len(origins), 1e-9)))
            groups: dict[tuple[object, ...], list[HorizonConfig]] = {}
            for c in chosen:
                groups.setdefault(draw_group_key(c), []).append(c)
            keys = sorted(groups, key=repr)
            picked = sorted(rng.sample(range(len(keys)), min(fit, len(keys))))
            chosen = [c for i in picked for c in groups[keys[i]]]
            notes.append(
                f"random search: {len(chosen)} of {len(candidates)} candidates (seed {seed}); the full grid "
                f"was estimated at {estimate:.0f}s against a {budget_seconds:.0f}s budget"
                if strategy != "random"
                else f"random search: {len(chosen)} of {len(candidates)} candidates (seed {seed})"
            )
            strategy = "random"
        evals = engine.evaluate(chosen, origins, progress=progress)
        return SearchResult(evals, set(evals), strategy, notes)
    if strategy != "halving":
        raise ValueError(f"unknown search strategy {strategy!r} (use {', '.join(STRATEGIES)})")
    alive = list(candidates)
    scored: dict[str, list[pd.DataFrame]] = {config_hash(c): [] for c in candidates}
    seconds: dict[str, dict[pd.Timestamp, float]] = {config_hash(c): {} for c in candidates}
    by_key = {config_hash(c): c for c in candidates}
    done = 0
    rungs = halving_rungs(len(origins))
    total_calls = sum(_calls(candidates) * (b - a) for a, b in zip([0, *rungs[:-1]], rungs, strict=True))
    for start, stop in zip([0, *rungs[:-1]], rungs, strict=True):
        part = origins[start:stop]

        def tick(d: int, t: int, base: int = done) -> None:
            if progress:
                progress(base + d, max(total_calls, base + t))

        evals = engine.evaluate(alive, part, progress=tick)
        done += _calls(alive) * len(part)
        for key, ev in evals.items():
            scored[key].append(ev.steps)
            seconds[key].update(ev.seconds)
        if stop == len(origins):
            break
        rmse = {k: _rmse(pd.concat(scored[k])) for k in (config_hash(c) for c in alive)}
        keep = halving_survivors(rmse)
        dropped = len(alive) - len(keep)
        alive = [c for c in alive if config_hash(c) in keep]
        notes.append(f"halving after {stop} origins: kept {len(alive)}, dropped {dropped} (worse RMSE)")
    evaluations = {
        k: Evaluation(by_key[k], k, pd.concat(frames, ignore_index=True), seconds[k])
        for k, frames in scored.items()
        if frames
    }
    return SearchResult(evaluations, {config_hash(c) for c in alive}, "halving", notes)
