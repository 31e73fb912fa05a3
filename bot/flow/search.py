"""Search strategies over the engine: full grid, seeded random subset, successive halving.

- grid: every candidate on every tuning origin.
- random: a seeded subset sized to fit `time_budget_seconds` (estimated from one timed predict);
  the fallback when the grid would exceed the budget.
- halving: successive halving over predict groups (T5 candidates that share a predict call, same
  context and temperature, are one arm: dropping one member saves nothing). All groups are scored
  on the first rung of origins, the best third go on to the next, larger rung, until the survivors
  have every tuning origin. Rungs are prefixes of the tuning origins in spread (van der Corput)
  order, so each rung spans the whole history and next week's rungs reuse this week's origins.

Only candidates scored on all tuning origins can win; the others are reported with the origins they
were scored on.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field

import pandas as pd

from bot.core.backtest import spread_order
from bot.core.config import HorizonConfig, config_hash
from bot.core.search import halving_schedule, keep_best
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
    return _halving(engine, candidates, origins, progress)


def _halving(
    engine: Engine, candidates: Sequence[HorizonConfig], origins: Sequence[int], progress: ProgressFn | None
) -> SearchResult:
    """Successive halving over call groups (T5 configs that share a predict call are one arm).

    Rungs are prefixes of the tuning origins in spread order (every rung spans the history), of
    the sizes `halving_schedule` gives; after each rung the best third of the groups (by their best
    member's RMSE on the origins so far) go on.
    """
    notes: list[str] = []
    groups: dict[tuple[object, ...], list[HorizonConfig]] = {}
    for c in candidates:
        groups.setdefault(draw_group_key(c), []).append(c)
    names = {g: repr(g) for g in groups}
    step = math.gcd(*origins) if origins else 1
    ordered = [origins[i] for i in spread_order([o // step for o in origins])]
    rungs = halving_schedule(len(ordered), len(groups))
    alive = list(groups)
    scored: dict[str, list[pd.DataFrame]] = {config_hash(c): [] for c in candidates}
    seconds: dict[str, dict[pd.Timestamp, float]] = {config_hash(c): {} for c in candidates}
    by_key = {config_hash(c): c for c in candidates}
    total_calls = _halving_calls(len(groups), rungs)
    done = 0
    for start, stop in zip([0, *rungs[:-1]], rungs, strict=True):
        members = [c for g in alive for c in groups[g]]

        def tick(d: int, t: int, base: int = done) -> None:
            if progress:
                progress(base + d, max(total_calls, base + t))

        evals = engine.evaluate(members, ordered[start:stop], progress=tick)
        done += len(alive) * (stop - start)
        for key, ev in evals.items():
            scored[key].append(ev.steps)
            seconds[key].update(ev.seconds)
        if stop == len(ordered):
            break
        best = {names[g]: min(_rmse(pd.concat(scored[config_hash(c)])) for c in groups[g]) for g in alive}
        keep = keep_best(best)
        dropped = len(alive) - len(keep)
        alive = [g for g in alive if names[g] in keep]
        notes.append(
            f"halving after {stop} of {len(ordered)} origins (spread over the history): kept {len(alive)} "
            f"predict group(s), dropped {dropped} (worse RMSE)"
        )
    evaluations = {
        k: Evaluation(by_key[k], k, pd.concat(frames, ignore_index=True), seconds[k])
        for k, frames in scored.items()
        if frames
    }
    complete = {config_hash(c) for g in alive for c in groups[g]}
    return SearchResult(evaluations, complete, "halving", notes)


def _halving_calls(n_groups: int, rungs: list[int], eta: int = 3) -> int:
    calls, alive = 0, n_groups
    for start, stop in zip([0, *rungs[:-1]], rungs, strict=True):
        calls += alive * (stop - start)
        alive = max(1, -(-alive // eta))
    return calls
