"""Search plans: which configs to evaluate for a horizon, model-aware and de-duplicated.

T5 searches context_length × num_samples × temperature. Bolt and Chronos-2 output quantiles and
have no sampling knobs, so only context_length is searched for them. Configs that are identical
once the model's limits apply (T5 reads at most 512 points: 540 and 730 are both 512) are
evaluated once; the others are reported as duplicates of it.
"""

from __future__ import annotations

import itertools
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


def halving_rungs(n_origins: int, *, first: int = 4) -> list[int]:
    """Origin counts at which successive halving judges: e.g. 24 → [6, 12, 24]."""
    rungs: list[int] = []
    k = max(2, min(first, n_origins), n_origins // 4)
    while k < n_origins:
        rungs.append(k)
        k *= 2
    return [*rungs, n_origins]


def halving_survivors(
    rmse_by_key: dict[str, float], *, keep_fraction: float = 0.5, min_keep: int = 3
) -> set[str]:
    """The best `keep_fraction` (at least `min_keep`) by RMSE on the origins scored so far.

    Rule: after each rung every surviving candidate has been scored on the same origins; those ranked
    below the cut are dropped. Ties at the cut are kept. All candidates share each origin's seed
    (common random numbers), so a rung compares configs, not sampling luck.
    """
    ordered = sorted(rmse_by_key.items(), key=lambda kv: (kv[1], kv[0]))
    keep = max(min_keep, round(len(ordered) * keep_fraction))
    if keep >= len(ordered):
        return set(rmse_by_key)
    cut = ordered[keep - 1][1]
    return {k for k, v in ordered if v <= cut}
