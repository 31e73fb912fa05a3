"""`chronops watch`: the daily volatility watch (run once per banking day; docs/watch.md)."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, date, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from bot.errors import ChronopsError

if TYPE_CHECKING:
    from bot.flow.watch import WatchResult


def cli_command(console: Any) -> Callable[..., None]:
    """The `chronops watch` typer command (registered by bot.cli; kept here so the CLI module stays small)."""

    def watch(
        as_of: Annotated[
            str | None, typer.Option("--as-of", help="Run as if today were DATE (YYYY-MM-DD).")
        ] = None,
        forge: Annotated[
            str | None, typer.Option(help="local or github (default: settings.forge.kind).")
        ] = None,
        dry_run: Annotated[
            str | None, typer.Option("--dry-run", help="Write and start nothing; show the day (flag alone).")
        ] = None,
        json_: Annotated[bool, typer.Option("--json", help="Machine-readable JSON on stdout.")] = False,
        workspace: Annotated[
            Path, typer.Option("--workspace", "-w", help="Workspace root (configs/, data/, chronops.toml).")
        ] = Path(),
    ) -> None:
        """The daily volatility watch, run once per banking day: a CUSUM on log returns whose alarm starts
        one out-of-cycle optimization per episode (local: the run itself; GitHub: a dispatch of
        optimize.yml), recorded in data/watch_alarms.parquet, the dashboard and an email. docs/watch.md."""
        preview = dry_run is not None  # a bare `--dry-run` arrives as `--dry-run plan` (bot.cli)
        code = watch_command(
            workspace, as_of=as_of, forge_kind=forge, dry_run=preview, as_json=json_, console=console
        )
        raise typer.Exit(code)

    return watch


def watch_command(
    root: Path, *, as_of: str | None, forge_kind: str | None, dry_run: bool, as_json: bool, console: Any
) -> int:
    from bot.adapters.forges.factory import make_forge
    from bot.adapters.sources import load_series
    from bot.flow.outcome import utcnow
    from bot.flow.watch import run_watch
    from bot.workspace import Workspace

    ws = Workspace.open(root)
    now = utcnow()
    today = _day(as_of) if as_of else datetime.now(UTC).date()
    series = load_series(ws, today)
    forge = None if dry_run else make_forge(ws, forge_kind)

    def say(text: str) -> None:
        if not as_json:
            console.print(text, markup=False, highlight=False)

    def run_locally(horizons: list[str], reason: str) -> int:
        from bot.commands.run import run_command

        say(f"watch alarm: optimizing {', '.join(horizons)} out of cycle")
        failed = 0
        for h in horizons:  # one run per horizon keeps a failure of one from stopping the others
            try:
                run_command(
                    root, horizon=h, all_=False, force=False, dry_run=None, automerge=None,
                    force_approve=False, reason=None, forge_kind=forge_kind, progress=None, say=say,
                    watch_reason=reason,
                )  # fmt: skip
            except ChronopsError as exc:
                say(f"{h}: {exc}")
                failed += 1
        return 1 if failed else 0

    result = run_watch(ws, series, today, now, forge=forge, run_locally=run_locally, dry_run=dry_run)
    if as_json:
        console.print_json(json.dumps(result.to_json(), default=str))
    else:
        console.print(describe(result), markup=False, highlight=False)
    if result.action == "dispatch_failed":
        raise ChronopsError(f"{result.detail} (recorded; the next `chronops watch` retries the dispatch)")
    if result.action == "run_failed":
        raise ChronopsError(
            f"the watch alarmed, but the out-of-cycle run failed ({result.detail}); see above"
        )
    return 0


def _day(text: str) -> date:
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise ChronopsError(f"--as-of {text!r} is not a date (use YYYY-MM-DD)") from None


def describe(result: WatchResult) -> str:
    up, s = result.update, result.update.state
    head = f"watch as of {result.as_of}: "
    if up.note:
        head += up.note
    else:
        head += f"{up.steps} new return(s) through {s.last_date}" + (" (state rebuilt)" if up.rebuilt else "")
    lines = [head]
    state = "in an alarm episode" if s.episode else f"CUSUM {s.statistic:.2f} of {s.threshold or 0:.2f}"
    lines.append(f"  {state}; {s.alarms} alarm(s) so far, last {s.last_alarm or 'never'}")
    for a in up.alarms:
        lines.append(f"  - {a.reason}" + ("" if a.actionable else " [too old to act on; recorded]"))
    if result.action not in ("none",):
        lines.append(f"  action: {result.action}" + (f" ({result.detail})" if result.detail else ""))
    return "\n".join(lines)
