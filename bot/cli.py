"""The `chronops` command line. Thin: parse, call a command function, map errors to exit codes.

Known errors print one line to stderr and exit 1 (or their own code); Ctrl-C exits 130; anything
unexpected exits 3 with the traceback written to a log file whose path is printed.
"""

from __future__ import annotations

import logging
import os
import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from bot.commands.watch import cli_command as watch_cli_command
from bot.errors import EXIT_CRASH, EXIT_INTERRUPTED, EXIT_USAGE, ChronopsError
from bot.faults import write_crash_log
from bot.secrets import redact
from bot.settings import normalize_dry_run

app = typer.Typer(
    name="chronops",
    help="GitOps bot that keeps Chronos USD/CLP forecasting configs tuned: triggers, walk-forward "
    "search, validation gate, pull requests. Merge = deploy, revert = rollback. "
    "`chronops --version` prints the version; --verbose on any command logs at INFO (like CHRONOPS_LOG=INFO).",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
config_app = typer.Typer(help="Horizon config files (configs/<horizon>.json).", no_args_is_help=True)
model_app = typer.Typer(help="Chronos models (local directories, test models).", no_args_is_help=True)
app.add_typer(config_app, name="config")
app.add_typer(model_app, name="model")

out = Console(soft_wrap=True)
err = Console(stderr=True, soft_wrap=True)

WorkspaceOpt = Annotated[
    Path, typer.Option("--workspace", "-w", help="Workspace root (configs/, data/, chronops.toml).")
]
HorizonOpt = Annotated[str | None, typer.Option("--horizon", help="One horizon: 7d, 15d, 30d or 90d.")]
AllOpt = Annotated[bool, typer.Option("--all", help="All four horizons.")]
JsonOpt = Annotated[bool, typer.Option("--json", help="One JSON document on stdout (schema_version, ISO times).")]
VERBOSE_FLAGS = ("--verbose",)


# ---------------------------------------------------------------------------------------------
@app.command()
def init(
    directory: Annotated[
        Path, typer.Argument(help="Where to scaffold (default: current directory).")
    ] = Path(),
    model_id: Annotated[
        str, typer.Option(help="model_id for the four configs (Hugging Face id or local directory).")
    ] = "amazon/chronos-t5-small",
    github: Annotated[bool, typer.Option("--github", help="Also write the GitHub Actions workflows.")] = False,
    install: Annotated[str, typer.Option(help="With --github: the pinned chronops they install.")] = "",
) -> None:
    """Scaffold a workspace: configs, chronops.toml, data/ (and with --github --install SPEC workflows that
    install SPEC, a wheel URL, git+https://…@vX.Y.Z or chronops==X.Y.Z: docs/github.md). Never overwrites."""
    from bot.commands.init_github import init_workspace

    created, kept = init_workspace(directory, model_id=model_id, github=github, install=install)
    for path in created:
        out.print(f"created  {path}")
    for path in kept:
        out.print(f"kept     {path} (exists)")


@app.command()
def demo(
    directory: Annotated[Path, typer.Option("--dir", help="Demo workspace directory.")] = Path("demo"),
) -> None:
    """Build a self-contained offline workspace and run the whole loop: tune, gate, merge, roll back.

    Uses a synthetic series and a random-weight tiny T5 model: forecasts are meaningless.
    """
    from bot.commands.demo import run_demo
    from bot.commands.progress import progress_bars

    with progress_bars(err) as progress:
        summary = run_demo(directory, progress=progress, say=out.print)
    out.print(summary)


@app.command()
def ingest(
    source: Annotated[
        str, typer.Option(help="csv (a date,value CSV or parquet file) or mindicador (live API).")
    ],
    path: Annotated[Path | None, typer.Argument(help="The file, for --source csv.")] = None,
    url: Annotated[str | None, typer.Option(help="mindicador API base URL (default: public API).")] = None,
    start_year: Annotated[int, typer.Option(help="First year to fetch from mindicador.")] = 2003,
    json_: JsonOpt = False,
    workspace: WorkspaceOpt = Path(),
) -> None:
    """Validate a date,value series and store it as data/series.parquet (atomically; a rejected
    ingest leaves the existing store untouched)."""
    from bot.commands.output import ingest_main

    ingest_main(
        workspace, source=source, path=path, url=url, start_year=start_year, as_json=json_, out=out, err=err
    )


@config_app.command("validate")
def config_validate(
    paths: Annotated[
        list[Path] | None, typer.Argument(help="Config files (default: configs/*.json).")
    ] = None,
    strict: Annotated[
        bool, typer.Option("--strict", help="Also reject knobs the family ignores and over-limit contexts.")
    ] = False,
    json_: JsonOpt = False,
    workspace: WorkspaceOpt = Path(),
) -> None:
    """Check horizon configs; each problem names the file, the key, the bad value and the fix."""
    from bot.commands.config import config_validate_main

    config_validate_main(
        workspace, paths, strict=strict, as_json=json_, say=lambda line: out.print(line, markup=False, highlight=False)
    )


@model_app.command("tiny")
def model_tiny(
    family: Annotated[str, typer.Option(help="t5, bolt or chronos2.")],
    out_dir: Annotated[Path, typer.Option("--out", help="Directory to write the model to.")],
    seed: Annotated[int, typer.Option(help="Weight initialisation seed.")] = 0,
) -> None:
    """Build a random-weight Chronos model of the real tiny architecture, offline (forecasts are noise)."""
    from bot.commands.config import model_tiny_command

    model_tiny_command(family, out_dir, seed=seed, say=out.print)


@app.command()
def run(
    horizon: HorizonOpt = None,
    all_: AllOpt = False,
    force: Annotated[bool, typer.Option("--force", help="Optimize even if no trigger fires.")] = False,
    dry_run: Annotated[
        str | None,
        typer.Option(
            "--dry-run",
            help="plan: search and gate, write nothing to git; local: commit in a temporary worktree, "
            "push nowhere; full: everything but merging.",
        ),
    ] = None,
    automerge: Annotated[
        bool | None, typer.Option("--automerge/--no-automerge", help="Override settings.forge.automerge.")
    ] = None,
    force_approve: Annotated[
        bool, typer.Option("--force-approve", help="Approve whatever the gate says (needs --reason).")
    ] = False,
    reason: Annotated[str | None, typer.Option(help="Why --force-approve was used (recorded).")] = None,
    watch_reason: Annotated[str | None, typer.Option(help="The daily watch's alarm calling this run (recorded).")] = None,
    forge: Annotated[str | None, typer.Option(help="local or github (default: settings.forge.kind).")] = None,
    stage: Annotated[
        str | None,
        typer.Option(help="search: triggers+search+gate into --out DIR; propose: PRs from --from DIR."),
    ] = None,
    out_dir: Annotated[Path | None, typer.Option("--out", help="Where --stage search writes.")] = None,
    from_dir: Annotated[
        Path | None, typer.Option("--from", help="Search results for --stage propose.")
    ] = None,
    json_: JsonOpt = False,
    workspace: WorkspaceOpt = Path(),
) -> None:
    """Run the loop: triggers → search → gate → report → pull request (merged when approved).

    In GitHub Actions the matrix splits it: `--stage search --out DIR` per horizon, then one
    `--stage propose --from DIR` job with write permissions."""
    from bot.commands.progress import progress_bars
    from bot.commands.run import run_main

    with progress_bars(err) as progress:
        code = run_main(
            workspace, as_json=json_, horizon=horizon, all_=all_, force=force, dry_run=dry_run,
            automerge=automerge, force_approve=force_approve, reason=reason, forge_kind=forge,
            progress=progress, say=out.print, stage=stage, out_dir=out_dir, from_dir=from_dir, watch_reason=watch_reason,
        )  # fmt: skip
    raise typer.Exit(code)


@app.command()
def rollback(
    horizon: Annotated[str, typer.Option("--horizon", help="Horizon to roll back.")],
    to: Annotated[str | None, typer.Option("--to", help="PR number or merge sha to revert.")] = None,
    reason: Annotated[
        str, typer.Option(help="Why (shown in the revert PR and history).")
    ] = "manual rollback",
    merge: Annotated[bool, typer.Option("--merge", help="Merge the revert PR right away.")] = False,
    forge: Annotated[str | None, typer.Option(help="local or github (default: settings.forge.kind).")] = None,
    workspace: WorkspaceOpt = Path(),
) -> None:
    """Revert the last merged bot PR for a horizon with `git revert` (a new commit, no history rewrite)."""
    from bot.commands.rollback import rollback_command

    rollback_command(
        workspace, horizon=horizon, to=to, reason=reason, merge=merge, forge_kind=forge, say=out.print
    )


@app.command()
def status(
    json_: JsonOpt = False,
    at: Annotated[
        str | None,
        typer.Option(
            "--at",
            help="A date (YYYY-MM-DD): which config was live per horizon at the end of that day "
            "(UTC), from the git history of the base branch.",
        ),
    ] = None,
    workspace: WorkspaceOpt = Path(),
) -> None:
    """What is live per horizon (since when, from which PR), the last run, the next scheduled run, KPIs."""
    from bot.commands.status import status_command

    status_command(workspace, at=at, as_json=json_, console=out)


@app.command()
def history(horizon: HorizonOpt = None, json_: JsonOpt = False, workspace: WorkspaceOpt = Path()) -> None:
    """Past optimizations (data/optimization_history.parquet)."""
    from bot.commands.history import history_command

    history_command(workspace, horizon=horizon, as_json=json_, console=out)


@app.command()
def check(
    horizon: HorizonOpt = None,
    all_: AllOpt = False,
    data: Annotated[Path | None, typer.Option(help="Any date,value CSV or parquet series instead of the store.")] = None,
    as_of: Annotated[
        str | None, typer.Option("--as-of", help="Evaluate as if today were DATE (YYYY-MM-DD), with data known then.")
    ] = None,
    known_days_before: Annotated[int | None, typer.Option(help="--data: a value dated D is known on D minus this many days (1: USD/CLP, 0: on D).")] = None,
    json_: JsonOpt = False,
    workspace: WorkspaceOpt = Path(),
) -> None:
    """Would the triggers fire? Performance degradation, drift on log returns, time fallback.

    Exit 0 whether or not anything fires; non-zero only on errors."""
    from bot.commands.check import check_command

    check_command(workspace, horizon=horizon, all_=all_, data=data, as_of=as_of, as_json=json_, console=out, known_days_before=known_days_before)  # fmt: skip


app.command("watch")(watch_cli_command(out))  # defined beside its command function (this file's size)


@app.command()
def unlock(workspace: WorkspaceOpt = Path()) -> None:
    """Remove the workspace lock left by a run that died (a lock from a dead local process is
    recovered automatically; use this for one left by another host)."""
    from bot.commands.unlock import unlock_command

    unlock_command(workspace, say=out.print)


@app.command("schedule-guard")
def schedule_guard() -> None:
    """Exit 0 when it is Sunday 02:xx in America/Santiago, else 10 (the workflow's skip signal).

    With CHRONOPS_SCHEDULE set to the cron line that fired, judges that nominal slot (GitHub starts
    scheduled runs late under load) instead of the current time."""
    from datetime import UTC, datetime

    from bot.commands.schedule_guard import schedule_guard_command

    raise typer.Exit(schedule_guard_command(datetime.now(UTC), os.environ, out.print))


@app.command()
def validate(
    run_id: Annotated[str, typer.Option("--run", help="Run id (a folder under data/runs/).")],
    horizon: HorizonOpt = None,
    min_rmse_improvement_pct: Annotated[float | None, typer.Option(help="Override the threshold.")] = None,
    min_mape_improvement_pct: Annotated[float | None, typer.Option(help="Override the threshold.")] = None,
    max_std_increase_pct: Annotated[float | None, typer.Option(help="Override the threshold.")] = None,
    max_inference_time_increase_pct: Annotated[
        float | None, typer.Option(help="Override the threshold.")
    ] = None,
    min_ci95_coverage_pct: Annotated[float | None, typer.Option(help="Override the threshold.")] = None,
    max_abs_bias: Annotated[float | None, typer.Option(help="Override the threshold (CLP).")] = None,
    max_noise_probability: Annotated[
        float | None, typer.Option(help="Override; 1.0 = seed's exact rule.")
    ] = None,
    json_: JsonOpt = False,
    workspace: WorkspaceOpt = Path(),
) -> None:
    """Re-run the gate on a stored run's per-origin results (no forecast is recomputed)."""
    from bot.commands.validate import validate_command

    overrides = {k: v for k, v in locals().items() if k.startswith(("min_", "max_"))}  # the threshold options
    validate_command(workspace, run_id, horizon=horizon, overrides=overrides, as_json=json_, say=out.print)


@app.command()
def dashboard(
    out_dir: Annotated[Path, typer.Option("--out", help="Folder to write index.html to (e.g. site/).")],
    workspace: WorkspaceOpt = Path(),
) -> None:
    """Write the static HTML dashboard (self-contained: inline CSS and SVG, no external hosts)."""
    from datetime import UTC, datetime

    from bot.flow.status import write_dashboard
    from bot.workspace import Workspace

    path = write_dashboard(Workspace.open(workspace, require=True), out_dir, datetime.now(UTC))
    out.print(f"dashboard written to {path}")


@app.command()
def watchdog(
    max_days: Annotated[
        int | None, typer.Option("--max-days", help="Override watchdog.max_days_without_run.")
    ] = None,
    forge: Annotated[str | None, typer.Option(help="local or github (default: settings.forge.kind).")] = None,
    email: Annotated[
        bool, typer.Option("--email/--no-email", help="Email run_missed when runs were missed.")
    ] = True,
    json_: JsonOpt = False,
    workspace: WorkspaceOpt = Path(),
) -> None:
    """Alert when no optimization run succeeded for too long. Exit 0 healthy, 6 runs missed."""
    from datetime import UTC, datetime

    from bot.flow.watchdog import watchdog_command
    from bot.workspace import Workspace

    code, health = watchdog_command(
        Workspace.open(workspace, require=True), now=datetime.now(UTC), max_days=max_days, forge_kind=forge,
        email=email, say=(lambda _: None) if json_ else out.print,
    )  # fmt: skip
    if json_:
        from bot.commands.output import emit

        emit("watchdog", health.to_dict())
    raise typer.Exit(code)


@app.command()
def forecast(
    horizon: HorizonOpt = None,
    all_: AllOpt = False,
    as_of: Annotated[
        str | None,
        typer.Option("--as-of", help="Issue date YYYY-MM-DD (default: today in Chile); uses what was known then."),
    ] = None,
    live_dir: Annotated[
        Path | None,
        typer.Option("--live-dir", help="Read <DIR>/<horizon>.json instead of configs/<horizon>.json."),
    ] = None,
    json_: JsonOpt = False,
    workspace: WorkspaceOpt = Path(),
) -> None:
    """Forecast the next prediction_length business days with each live config and append them to
    data/forecasts.parquet (point = median, 95% interval). Re-running on the same issue date with
    the same config appends nothing. Exit 1 when any horizon failed."""
    from datetime import date

    from bot.commands.forecast import forecast_main

    try:
        issue = date.fromisoformat(as_of) if as_of else None
    except ValueError:
        raise ChronopsError(f"--as-of {as_of!r}: not a date (use YYYY-MM-DD)") from None
    code = forecast_main(
        workspace, horizon=horizon, all_=all_, as_of=issue, live_dir=live_dir, as_json=json_, say=out.print
    )
    raise typer.Exit(code)


@app.command()
def serve(
    horizon: HorizonOpt = None,
    all_: Annotated[bool, typer.Option("--all", help="All four horizons (the default).")] = False,
    host: Annotated[str, typer.Option(help="Address to listen on (0.0.0.0 in a container).")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="HTTP port.")] = 8080,
    live_dir: Annotated[
        Path | None, typer.Option("--live-dir", help="Live configs directory (default: deploy.live_dir).")
    ] = None,
    interval: Annotated[
        float | None,
        typer.Option(help="Seconds between forecast cycles (default: deploy.forecast_interval_seconds, a day)."),
    ] = None,
    once: Annotated[
        bool, typer.Option("--once", help="Load the live configs, forecast once, exit (no HTTP server).")
    ] = False,
    workspace: WorkspaceOpt = Path(),
) -> None:
    """The production forecaster: serves GET /healthz and GET /forecast/<horizon>, reloads a live
    config when its file changes (no restart; a broken one keeps the old one serving and is reported
    in /healthz), refreshes the series and forecasts into data/forecasts.parquet once per interval.
    SIGTERM or Ctrl-C stops it cleanly (exit 0)."""
    from bot.commands.serve import serve_command

    def say(line: str) -> None:
        out.print(line, markup=False, highlight=False)
        sys.stdout.flush()

    code = serve_command(
        workspace, horizon=horizon, all_=all_, host=host, port=port, live_dir=live_dir,
        interval=interval, once=once, say=say,
    )  # fmt: skip
    raise typer.Exit(code)


@app.command()
def deploy(
    auto_revert: Annotated[
        bool,
        typer.Option("--auto-revert", help="On failure also open and merge a revert PR per changed horizon."),
    ] = False,
    forge: Annotated[str | None, typer.Option(help="local or github (default: settings.forge.kind).")] = None,
    no_health_check: Annotated[
        bool, typer.Option("--no-health-check", help="Install without waiting for the forecasters.")
    ] = False,
    json_: JsonOpt = False,
    workspace: WorkspaceOpt = Path(),
) -> None:
    """Apply configs/<horizon>.json to the live dir (deploy.live_dir) after strict validation and the
    model allow-list; wait for the forecasters' deploy.health_urls to report the new config hashes;
    on failure restore the previous configs (and with --auto-revert revert the merge).

    Exit codes: 0 deployed, or nothing to deploy; 1 refused before installing anything (a config
    outside the schema or the model allow-list) or another known error; 3 crash (log written);
    5 deploy failed (health mismatch, timeout or unreachable): previous configs restored."""
    from bot.commands.deploy import deploy_main

    deploy_main(
        workspace, auto_revert=auto_revert, forge_kind=forge, health_check=not no_health_check, as_json=json_,
        say=lambda line: out.print(line, markup=False, highlight=False),
    )  # fmt: skip


# typer >= 0.20 vendors click; find its exception classes without importing a private module.
_ClickException: type[Exception] = next(c for c in typer.BadParameter.__mro__ if c.__name__ == "ClickException")
_UsageError: type[Exception] = next(c for c in typer.BadParameter.__mro__ if c.__name__ == "UsageError")


def main(argv: list[str] | None = None) -> None:
    """Console entry point: maps every outcome to an exit code, never shows a traceback for known errors."""
    from bot.settings import log_level, torch_threads

    args = list(sys.argv[1:] if argv is None else argv)
    verbose = any(a in VERBOSE_FLAGS for a in args)
    args = [a for a in args if a not in VERBOSE_FLAGS]  # accepted by every command, anywhere
    if args == ["--version"]:
        from bot.commands.output import version_line

        out.print(version_line(), markup=False, highlight=False)
        sys.exit(0)
    try:
        level = logging.INFO if verbose else log_level()
    except ChronopsError as exc:
        err.print(f"error: {exc}", markup=False, highlight=False)
        sys.exit(exc.exit_code)
    logging.basicConfig(level=level, format="%(levelname)s %(name)s: %(message)s")
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
    try:
        torch_threads()  # a bad value fails before any work, not halfway through a run
        args = normalize_dry_run(args)
        result = app(args=args, standalone_mode=False)
        code = result if isinstance(result, int) else 0
    except ChronopsError as exc:
        for line in redact(str(exc)).splitlines() or [type(exc).__name__]:
            err.print(f"error: {line}", markup=False, highlight=False)
        code = exc.exit_code
    except typer.Exit as exc:
        code = exc.exit_code
    except typer.Abort:
        err.print("interrupted")
        code = EXIT_INTERRUPTED
    except _ClickException as exc:
        exc.show()  # type: ignore[attr-defined]
        code = EXIT_USAGE if isinstance(exc, _UsageError) else int(getattr(exc, "exit_code", 1))
    except KeyboardInterrupt:
        err.print("interrupted")
        code = EXIT_INTERRUPTED
    except Exception as exc:
        log = write_crash_log()
        err.print(
            redact(f"error: unexpected {type(exc).__name__}: {exc} (details in {log}; please report it)"),
            markup=False,
        )
        code = EXIT_CRASH
    sys.exit(code)
