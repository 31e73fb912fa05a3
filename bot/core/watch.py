"""The daily volatility watch: a sequential detector on log returns. Pure: arrays and dates in, state out.

Why daily and sequential: a weekly two-window test waits for the week's end and judges 1-10 changed
returns at once; a CUSUM checked every banking day accumulates evidence as it arrives and stops on
the first day it is enough (measured: benchmarks/watch_calibration.py).

The statistic, for each new log return r_t:
1. u_t = the mid-rank of |r_t| among the |r| of the `REFERENCE_OBS` returns before it, as a share
   in (0, 1). For independent returns of any continuous distribution u_t is uniform whatever the
   tail shape, so one threshold holds for normal and Student-t returns alike.
2. score_t = the log-likelihood ratio of "volatility x DESIGN_RATIO" against "unchanged" for a
   Student-t(`SCORE_DOF`) return whose |value| sits at quantile u_t: bounded (a rank cannot exceed
   the reference's largest; one return beyond the whole reference year scores about 3.1), and
   negative on average when nothing changed.
3. CUSUM: S_t = max(0, S_{t-1} + score_t); an alarm when S_t >= threshold. The onset estimate is
   the first return of the current excursion of S above 0 (the CUSUM's change-point estimate).
One episode, one alarm: an alarm opens an episode, in which no alarm is raised; a mirror CUSUM
("unchanged" against a rise of RECOVERY_RATIO, ranked against the reference year before the
episode's onset, frozen) ends it when volatility is back (after at least `cooldown_obs` returns),
or MAX_EPISODE_OBS returns pass (the new level has become the normal one). A lasting change calls
one run; after a false alarm the episode ends within a couple of weeks.

The threshold comes from the false-alarm budget (`false_alarm_weeks`: at most one false alarm per
that many weeks of a random walk) through `THRESHOLDS`, derived by simulation
(`benchmarks/watch_calibration.py --derive` prints the table) for two null models: "iid"
(independent returns: exact for any continuous distribution) and "garch" (the larger of that and
the thresholds that hold the budget on GARCH(1,1)-t walks, whose volatility clusters look like
changes to any detector).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import date
from typing import Any, Literal

import numpy as np

from bot.core.config import HORIZONS
from bot.errors import DataError

REFERENCE_OBS = 250  # returns each new return is ranked against (about one year)
SCORE_DOF = 5.0  # Student-t degrees of freedom of the score
DESIGN_RATIO = 2.5  # the volatility change the score is tuned for
RECOVERY_RATIO = 2.0  # an episode ends on evidence for "unchanged" against this smaller rise
RECOVERY_SHARE = 1.5  # ... when the mirror reaches this multiple of the alarm threshold
MAX_EPISODE_OBS = 125  # ... or after half a reference year: the new level has become the normal one
DEFAULT_COOLDOWN_OBS = 10
STATE_VERSION = 1
NullModel = Literal["iid", "garch"]
NULL_MODELS: tuple[NullModel, ...] = ("iid", "garch")

# null model -> {false_alarm_weeks: CUSUM threshold}, for REFERENCE_OBS, SCORE_DOF, DESIGN_RATIO and
# a cooldown of DEFAULT_COOLDOWN_OBS. Printed by `benchmarks/watch_calibration.py --derive --paths 600
# --days 2500` (seed 20261130; 0.05 grid; 724 s); interpolated linearly in log(weeks) in between. At
# 10-20 weeks the GARCH walks need no more than independent returns: an episode absorbs a cluster.
THRESHOLDS: dict[str, dict[float, float]] = {
    "iid": {10.0: 1.8, 20.0: 2.5, 52.0: 3.4, 104.0: 4.1},
    "garch": {10.0: 1.8, 20.0: 2.5, 52.0: 4.0, 104.0: 6.95},
}

@dataclass(frozen=True)
class WatchSettings:
    """`[watch]` in chronops.toml."""

    enabled: bool = True
    # At most one false alarm per this many weeks on a random walk (calibrated range 10-104).
    false_alarm_weeks: float = 20.0
    # "garch": the budget holds on volatility-clustering (GARCH) walks too; "iid": on independent
    # returns only (faster detection, more alarms in calm-to-busy swings).
    null_model: str = "garch"
    # Shortest episode after an alarm, in returns (no new alarm meanwhile).
    cooldown_obs: int = DEFAULT_COOLDOWN_OBS
    # Horizons an alarm re-optimizes (a volatility change affects every horizon).
    horizons: list[str] = field(default_factory=lambda: list(HORIZONS))
    # An alarm dated more than this many days before the day the watch first sees it (a catch-up
    # after missed days, or a first run replaying history) is recorded but calls no run.
    act_within_days: int = 7

    def problem(self) -> str | None:
        """What is wrong with these settings (one line), or None."""
        if self.null_model not in NULL_MODELS:
            return f"watch.null_model must be one of {', '.join(NULL_MODELS)}, got {self.null_model!r}"
        table = THRESHOLDS[self.null_model]
        lo, hi = min(table), max(table)
        if not lo <= self.false_alarm_weeks <= hi:
            return f"watch.false_alarm_weeks = {self.false_alarm_weeks:g} is outside the calibrated {lo:g}..{hi:g}"
        if self.cooldown_obs < 1:
            return "watch.cooldown_obs must be >= 1"
        bad = [h for h in self.horizons if h not in HORIZONS]
        if bad or not self.horizons:
            return f"watch.horizons must name horizons among 7d, 15d, 30d, 90d (got {self.horizons})"
        return None

    @property
    def threshold(self) -> float:
        return threshold_for(self.false_alarm_weeks, self.null_model)


def threshold_for(weeks: float, null_model: str = "garch") -> float:
    """The calibrated CUSUM threshold for at most one false alarm per `weeks` weeks."""
    table = THRESHOLDS[null_model]
    keys = sorted(table)
    if not keys[0] <= weeks <= keys[-1]:
        raise ValueError(
            f"false-alarm budget {weeks:g} weeks is outside the calibrated {keys[0]:g}..{keys[-1]:g}"
        )
    return float(np.interp(math.log(weeks), np.log(keys), [table[k] for k in keys]))


def rank_score(u: np.ndarray, ratio: float = DESIGN_RATIO) -> np.ndarray:
    """Log-likelihood ratio of scale `ratio` vs 1 for a Student-t(SCORE_DOF) |return| at quantile u."""
    from scipy.special import (
        stdtrit,  # the t quantile scipy.stats.t.ppf calls; scipy.stats costs ~1 s to import
    )

    x = stdtrit(SCORE_DOF, (1.0 + np.asarray(u, dtype=np.float64)) / 2.0)
    nu, rho = SCORE_DOF, ratio
    x2 = x * x
    return np.asarray(
        -math.log(rho) + (nu + 1.0) / 2.0 * (np.log1p(x2 / nu) - np.log1p(x2 / (nu * rho * rho)))
    )


# ---------------------------------------------------------------- the detector (vectorized over paths)


@dataclass
class Cursor:
    """The detector's position on P paths (mutable working state; `WatchState` is the stored form).

    `onset` is a position in the returns array (-1 when S is 0); `since_alarm` counts the returns
    after the last alarm; `episode` is True from an alarm until the episode ends; `recovery` is
    the mirror CUSUM that ends it.
    """

    statistic: np.ndarray
    episode: np.ndarray
    since_alarm: np.ndarray
    onset: np.ndarray
    recovery: np.ndarray
    episode_onset: np.ndarray  # onset of the episode's alarm (-1 outside an episode)

    @classmethod
    def fresh(cls, paths: int) -> Cursor:
        return cls(
            np.zeros(paths),
            np.zeros(paths, bool),
            np.zeros(paths, np.int64),
            np.full(paths, -1, np.int64),
            np.zeros(paths),
            np.full(paths, -1, np.int64),
        )


@dataclass(frozen=True)
class Trace:
    """Per path and step (steps = returns first..T-1): rank share, score, S and alarms."""

    rank: np.ndarray
    score: np.ndarray
    statistic: np.ndarray
    alarm: np.ndarray
    onset: np.ndarray  # onset position of each alarm step (-1 elsewhere)


def sequential_ranks(abs_returns: np.ndarray, first: int) -> np.ndarray:
    """Mid-rank share u of each |return| from position `first` on among the REFERENCE_OBS before it.

    Ties count half, plus a half for the value itself: u = (below + ties/2 + 1/2) / (REFERENCE_OBS + 1),
    strictly inside (0, 1). Last axis = time; needs first >= REFERENCE_OBS.
    """
    a = np.atleast_2d(np.asarray(abs_returns, dtype=np.float64))
    if first < REFERENCE_OBS:
        raise ValueError(f"the watch needs {REFERENCE_OBS} returns before the first one it scores")
    n = a.shape[-1]
    cur = a[:, first:]
    below = np.zeros(cur.shape)
    ties = np.zeros(cur.shape)
    for lag in range(1, REFERENCE_OBS + 1):
        ref = a[:, first - lag : n - lag]
        below += ref < cur
        ties += ref == cur
    return (below + 0.5 * ties + 0.5) / (REFERENCE_OBS + 1)


def advance(returns: np.ndarray, first: int, threshold: float, cooldown: int, cursor: Cursor) -> Trace:
    """Run the detector over returns[:, first:] (P x T), updating `cursor` in place.

    Outside an episode: an alarm when S reaches the threshold; the alarm opens an episode and S
    restarts at 0. In an episode no alarm is raised and a mirror CUSUM runs: the log-likelihood
    ratio of "unchanged" against a rise of RECOVERY_RATIO, on ranks against the reference year
    before the episode's onset (frozen, so the new level never leaks into it). The episode ends
    when the mirror reaches the threshold (volatility is back) and `cooldown` returns have passed,
    or after MAX_EPISODE_OBS returns (the new level has become the normal one). A lasting change
    calls one run; after a false alarm the mirror ends the episode within a couple of weeks.
    """
    r = np.atleast_2d(np.asarray(returns, dtype=np.float64))
    a = np.abs(r)
    return run_cusum(sequential_ranks(a, first), a, first, threshold, cooldown, cursor)


def frozen_ranks(abs_returns: np.ndarray, t: int, onset: np.ndarray) -> np.ndarray:
    """Rank share of |r_t| among the REFERENCE_OBS returns before `onset` (per path; positions < 0 skipped)."""
    idx = onset[:, None] - np.arange(REFERENCE_OBS, 0, -1)[None, :]
    valid = idx >= 0
    ref = abs_returns[np.arange(len(onset))[:, None], np.maximum(idx, 0)]
    x = abs_returns[:, t : t + 1]
    below = np.count_nonzero(valid & (ref < x), axis=1)
    ties = np.count_nonzero(valid & (ref == x), axis=1)
    return np.asarray((below + 0.5 * ties + 0.5) / (np.count_nonzero(valid, axis=1) + 1), dtype=np.float64)


def run_cusum(
    u: np.ndarray, abs_returns: np.ndarray, first: int, threshold: float, cooldown: int, c: Cursor
) -> Trace:
    """The CUSUM with episodes over precomputed rank shares (P x steps; step j is return first + j)."""
    scores = rank_score(u)
    paths, steps = scores.shape
    out_stat = np.zeros((paths, steps))
    out_alarm = np.zeros((paths, steps), dtype=bool)
    out_onset = np.full((paths, steps), -1, np.int64)
    for j in range(steps):
        t = first + j
        calm = ~c.episode
        prev = c.statistic
        stat = np.where(calm, np.maximum(0.0, prev + scores[:, j]), 0.0)
        c.onset = np.where(stat <= 0.0, -1, np.where((prev <= 0.0) & (stat > 0.0), t, c.onset))
        fire = calm & (stat >= threshold)
        rows = np.flatnonzero(c.episode)
        if len(rows):
            u_back = frozen_ranks(abs_returns[rows], t, c.episode_onset[rows])
            c.recovery[rows] = np.maximum(0.0, c.recovery[rows] - rank_score(u_back, RECOVERY_RATIO))
        c.since_alarm = np.where(fire, 0, c.since_alarm + 1)
        ended = c.episode & (
            ((c.recovery >= RECOVERY_SHARE * threshold) & (c.since_alarm >= cooldown))
            | (c.since_alarm >= MAX_EPISODE_OBS)
        )
        out_stat[:, j], out_alarm[:, j] = stat, fire
        out_onset[:, j] = np.where(fire, c.onset, -1)
        c.episode = (c.episode & ~ended) | fire
        c.episode_onset = np.where(fire, c.onset, np.where(ended, -1, c.episode_onset))
        c.recovery = np.where(ended | fire, 0.0, c.recovery)
        c.statistic = np.where(fire, 0.0, stat)
        c.onset = np.where(fire, -1, c.onset)
    return Trace(u, scores, out_stat, out_alarm, out_onset)


def weeks_with_alarm(alarm: np.ndarray, days_per_week: int = 5) -> np.ndarray:
    """Per path and block of `days_per_week` steps: whether the block holds an alarm."""
    a = np.atleast_2d(alarm)
    weeks = a.shape[-1] // days_per_week
    return np.asarray(a[..., : weeks * days_per_week].reshape(a.shape[0], weeks, days_per_week).any(axis=-1))


# ---------------------------------------------------------------- the daily state


@dataclass(frozen=True)
class WatchState:
    """What a daily run needs to resume, stored as JSON in the workspace (dates, not positions).

    The returns are re-read from the series each day; `threshold` is the one the state was built
    with (a changed setting rebuilds it).
    """

    last_date: date | None = None
    statistic: float = 0.0
    episode: bool = False  # inside an alarm's episode (no new alarm until it ends)
    since_alarm: int = 0  # returns since the last alarm
    recovery: float = 0.0  # the mirror CUSUM that ends an episode
    episode_onset: date | None = None  # onset of the episode's alarm (its frozen reference ends there)
    onset: date | None = None
    last_alarm: date | None = None
    alarms: int = 0
    threshold: float | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "version": STATE_VERSION,
            "last_date": _iso(self.last_date),
            "statistic": self.statistic,
            "episode": self.episode,
            "since_alarm": self.since_alarm,
            "recovery": self.recovery,
            "episode_onset": _iso(self.episode_onset),
            "onset": _iso(self.onset),
            "last_alarm": _iso(self.last_alarm),
            "alarms": self.alarms,
            "threshold": self.threshold,
        }

    @classmethod
    def from_json(cls, raw: Any, *, source: str = "watch state") -> WatchState:
        if not isinstance(raw, dict) or raw.get("version") != STATE_VERSION:
            raise DataError(
                f"{source}: not a version-{STATE_VERSION} watch state (delete the file to rebuild it)"
            )
        try:
            return cls(
                last_date=_date(raw.get("last_date")),
                statistic=float(raw["statistic"]),
                episode=bool(raw["episode"]),
                since_alarm=int(raw["since_alarm"]),
                recovery=float(raw["recovery"]),
                episode_onset=_date(raw.get("episode_onset")),
                onset=_date(raw.get("onset")),
                last_alarm=_date(raw.get("last_alarm")),
                alarms=int(raw.get("alarms", 0)),
                threshold=None if raw.get("threshold") is None else float(raw["threshold"]),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise DataError(
                f"{source}: malformed watch state ({exc}); delete the file to rebuild it"
            ) from None


@dataclass(frozen=True)
class Alarm:
    day: date  # date of the return that raised it
    statistic: float
    threshold: float
    onset: date
    ratio: float  # RMS of the returns since onset / RMS of the reference before the onset
    observations: int  # returns since onset, the alarm's included
    actionable: bool  # fresh enough to call a run

    @property
    def reason(self) -> str:
        return (
            f"Volatility watch: CUSUM {self.statistic:.2f} >= {self.threshold:.2f} on {self.day} "
            f"(volatility x{self.ratio:.2f} over the {self.observations} returns since {self.onset})"
        )

    def to_json(self) -> dict[str, Any]:
        return {
            "day": self.day.isoformat(),
            "statistic": round(self.statistic, 4),
            "threshold": round(self.threshold, 4),
            "onset": self.onset.isoformat(),
            "ratio": round(self.ratio, 4) if math.isfinite(self.ratio) else None,
            "observations": self.observations,
            "actionable": self.actionable,
            "reason": self.reason,
        }


@dataclass(frozen=True)
class WatchUpdate:
    state: WatchState
    alarms: tuple[Alarm, ...]
    steps: int  # returns processed
    rebuilt: bool  # replayed from the start of the series
    note: str | None = None

    @property
    def actionable(self) -> Alarm | None:
        """The newest alarm that should call a run, if any."""
        fresh = [a for a in self.alarms if a.actionable]
        return fresh[-1] if fresh else None


def update(
    dates: list[date], values: np.ndarray, state: WatchState, settings: WatchSettings, as_of: date
) -> WatchUpdate:
    """Advance the watch over every return dated after `state.last_date`.

    `dates`/`values`: the series known as of `as_of`, sorted, positive. The state is rebuilt by a
    replay from the start of the series when it is empty, was built with another threshold, or its
    dates are no longer in the series (a revised history): the replay reaches the state daily runs
    would have reached. Alarms dated more than `act_within_days` before `as_of` are not actionable.
    """
    threshold = settings.threshold
    if len(values) < REFERENCE_OBS + 2:
        note = (
            f"too few observations ({len(values)} known as of {as_of}; the watch needs {REFERENCE_OBS + 2})"
        )
        return WatchUpdate(state, (), 0, False, note)
    returns = np.diff(np.log(np.asarray(values, dtype=np.float64)))
    days = list(dates[1:])
    pos = {d: i for i, d in enumerate(days)}
    resumable = (
        state.last_date in pos
        and state.threshold is not None
        and math.isclose(state.threshold, threshold)
        and (state.onset is None or state.onset in pos)
        and (state.episode_onset is None or state.episode_onset in pos)
    )
    start = state if resumable else WatchState(threshold=threshold)
    first = REFERENCE_OBS if not resumable else max(REFERENCE_OBS, pos[state.last_date] + 1)  # type: ignore[index]
    if first >= len(returns):
        return WatchUpdate(start, (), 0, not resumable, f"no new returns after {start.last_date}")
    cursor = Cursor(
        np.array([start.statistic]),
        np.array([start.episode]),
        np.array([start.since_alarm], np.int64),
        np.array([pos[start.onset] if start.onset else -1], np.int64),
        np.array([start.recovery]),
        np.array([pos[start.episode_onset] if start.episode_onset else -1], np.int64),
    )
    trace = advance(returns[None, :], first, threshold, settings.cooldown_obs, cursor)
    alarms: list[Alarm] = []
    for j in np.flatnonzero(trace.alarm[0]):
        i, o = first + int(j), int(trace.onset[0, j])
        ref_lo = max(0, o - REFERENCE_OBS)
        ref_rms = _rms(returns[ref_lo:o])
        ratio = _rms(returns[o : i + 1]) / ref_rms if ref_rms > 0 else math.inf
        fresh = (as_of - days[i]).days <= settings.act_within_days
        alarms.append(
            Alarm(days[i], float(trace.statistic[0, j]), threshold, days[o], ratio, i - o + 1, fresh)
        )
    onset = int(cursor.onset[0])
    new_state = WatchState(
        last_date=days[-1],
        statistic=float(cursor.statistic[0]),
        episode=bool(cursor.episode[0]),
        since_alarm=int(cursor.since_alarm[0]),
        recovery=float(cursor.recovery[0]),
        episode_onset=days[int(cursor.episode_onset[0])] if cursor.episode_onset[0] >= 0 else None,
        onset=days[onset] if onset >= 0 else None,
        last_alarm=alarms[-1].day if alarms else start.last_alarm,
        alarms=start.alarms + len(alarms),
        threshold=threshold,
    )
    return WatchUpdate(new_state, tuple(alarms), len(returns) - first, not resumable)


def _rms(x: np.ndarray) -> float:
    return float(np.sqrt(np.mean(np.square(x)))) if len(x) else 0.0


def _iso(day: date | None) -> str | None:
    return day.isoformat() if day else None


def _date(raw: Any) -> date | None:
    return None if raw in (None, "") else date.fromisoformat(str(raw))
