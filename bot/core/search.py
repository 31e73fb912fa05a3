"""Search plans: which configs to evaluate for a horizon, model-aware and de-duplicated.

T5 searches context_length × num_samples × temperature. Bolt and Chronos-2 output quantiles and
have no sampling knobs, so only context_length is searched for them. Configs that are identical
once the model's limits apply (T5 reads at most 512 points: 540 and 730 are both 512) are
evaluated once; the others are reported as duplicates of it.
"""

from __future__ import annotations

import itertools
import math
import random
from dataclasses import dataclass

from bot.core.config import CONTEXT_LIMIT, Family, HorizonConfig, config_hash


@dataclass(frozen=True)
class Candidate:
    config: HorizonConfig
    key: str  # config_hash of the effective config
    duplicates: tuple[int, ...] = ()  # requested context lengths that collapsed into this one


@dataclass(frozen=True)
class SearchPlan:
    horizon: str
    family: Family
    candidates: tuple[Candidate, ...]
    duplicates: tuple[str, ...]  # human-readable notes about collapsed configs
    ignored_knobs: tuple[str, ...]


def build_plan(
    base: HorizonConfig,
    *,
    context_lengths: list[int],
    num_samples: list[int],
    temperatures: list[float],
) -> SearchPlan:
    family = base.model_family
    limit = CONTEXT_LIMIT[family]
    ignored: tuple[str, ...] = ()
    grid: list[tuple[int, int | None, float | None]]
    if family is Family.T5:
        grid = list(
            itertools.product(
                sorted(set(context_lengths)), sorted(set(num_samples)), sorted(set(temperatures))
            )
        )
    else:
        grid = [(c, None, None) for c in sorted(set(context_lengths))]
        ignored = ("num_samples", "temperature", "top_k", "top_p")
    by_key: dict[str, Candidate] = {}
    notes: list[str] = []
    for ctx, ns, temp in grid:
        effective_ctx = min(ctx, limit)
        changes: dict[str, object] = {"context_length": effective_ctx}
        if family is Family.T5:
            changes.update(num_samples=ns, temperature=temp)
        cfg = base.with_knobs(**changes)
        key = config_hash(cfg)
        if key in by_key:
            kept = by_key[key]
            by_key[key] = Candidate(kept.config, key, (*kept.duplicates, ctx))
            notes.append(
                f"context_length {ctx} = {effective_ctx} for {family.value} (limit {limit}): evaluated once"
            )
        else:
            by_key[key] = Candidate(cfg, key, (ctx,) if ctx != effective_ctx else ())
    return SearchPlan(base.horizon, family, tuple(by_key.values()), tuple(dict.fromkeys(notes)), ignored)


def sample_candidates(plan: SearchPlan, n: int, seed: int) -> SearchPlan:
    """Seeded random subset of the plan (the fallback when the full grid exceeds the time budget)."""
    if n >= len(plan.candidates):
        return plan
    rng = random.Random(seed)
    picked = sorted(rng.sample(range(len(plan.candidates)), n))
    return SearchPlan(
        plan.horizon,
        plan.family,
        tuple(plan.candidates[i] for i in picked),
        plan.duplicates,
        plan.ignored_knobs,
    )


def halving_schedule(n_origins: int, n_arms: int, *, eta: int = 3, min_first: int | None = None) -> list[int]:
    """Origin counts of the rungs of successive halving with reduction factor `eta`.

    With r = ceil(log_eta(n_arms)) cuts, rung j (0-based) has n_origins / eta**(r - j) origins, so
    the last rung has them all: 9 arms over 540 origins give [60, 180, 540] (9 arms, then 3, then
    1). Rungs below `min_first` origins (default: a third of them, at least 30) are dropped, which
    means fewer cuts; a small set is a plain grid. The default comes from
    benchmarks/gate_simulation.py (27 arms, the truly 10% better one kept to the end): at the real
    series' h = 5 / 10 / 21 tuning origins (550 / 275 / 132) a first rung of 30 origins keeps it
    88% / 73% / 82% of the time, a third of the origins 97% / 91% / 82%, the full grid 99% / 99% / 91%.
    """
    if n_origins < 1 or n_arms < 1:
        raise ValueError(f"need >= 1 origin and >= 1 arm, got {n_origins} and {n_arms}")
    if eta < 2:
        raise ValueError(f"eta must be >= 2, got {eta}")
    first = max(30, -(-n_origins // 3)) if min_first is None else min_first
    cuts = 0
    while eta**cuts < n_arms:
        cuts += 1
    rungs = [math.ceil(n_origins / eta ** (cuts - j)) for j in range(cuts)]
    kept = [r for r in rungs if r >= min(first, n_origins) and r < n_origins]
    return [*sorted(set(kept)), n_origins]


def keep_best(score_by_arm: dict[str, float], *, eta: int = 3) -> set[str]:
    """After a rung: the best ceil(n / eta) arms by score (lower is better; ties at the cut kept).

    Every arm was scored on the same origins with the same seeds (common random numbers).
    """
    ordered = sorted(score_by_arm.items(), key=lambda kv: (kv[1], kv[0]))
    if not ordered:
        return set()
    keep = max(1, math.ceil(len(ordered) / eta))
    cut = ordered[keep - 1][1]
    return {k for k, v in ordered if v <= cut}
