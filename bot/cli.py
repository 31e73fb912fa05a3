"""The `chronops` command line. Thin: parse, call a command function, map errors to exit codes.

Known errors print one line to stderr and exit 1 (or their own code); Ctrl-C exits 130; anything
unexpected exits 3 with the traceback written to a log file whose path is printed.
"""

from __future__ import annotations

import logging
import os
import sys
import tempfile
import traceback
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated

import click
import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from bot.errors import EXIT_CRASH, EXIT_INTERRUPTED, EXIT_USAGE, ChronopsError

app = typer.Typer(
    name="chronops",
    help="GitOps bot that keeps Chronos USD/CLP forecasting configs tuned: triggers, walk-forward "
    "search, validation gate, pull requests. Merge = deploy, revert = rollback.",
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
JsonOpt = Annotated[bool, typer.Option("--json", help="Machine-readable JSON on stdout.")]


def _progress_factory(progress: Progress) -> Callable[[str, int], Callable[[int, int], None]]:
    def make(label: str, _total: int) -> Callable[[int, int], None]:
        task = progress.add_task(label, total=None)

        def tick(done: int, total: int) -> None:
            progress.update(task, completed=done, total=total)

        return tick

    return make


@contextmanager
def progress_bars(enabled: bool = True) -> Iterator[Callable[[str, int], Callable[[int, int], None]] | None]:
    if not enabled:
        yield None
        return
    progress = Progress(
        TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
        console=err, transient=False, disable=not err.is_terminal and os.environ.get("CHRONOPS_PROGRESS") != "1",
    )  # fmt: skip
    with progress:
        yield _progress_factory(progress)


# ---------------------------------------------------------------------------------------------
@app.command()
def init(
    directory: Annotated[
        Path, typer.Argument(help="Where to scaffold (default: current directory).")
    ] = Path(),
    model_id: Annotated[
        str, typer.Option(help="model_id for the four configs (Hugging Face id or local directory).")
    ] = "amazon/chronos-t5-small",
) -> None:
    """Scaffold a workspace: four configs, chronops.toml with the seed's defaults, data/. Never overwrites."""
    from bot.scaffold import scaffold

    created, kept = scaffold(directory, model_id=model_id)
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
    from bot.demo import run_demo

    with progress_bars() as progress:
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
    workspace: WorkspaceOpt = Path(),
) -> None:
    """Validate a date,value series and store it as data/series.parquet (atomically; a rejected
    ingest leaves the existing store untouched)."""
    from bot.ingest import ingest_series

    report = ingest_series(workspace, source=source, path=path, url=url, start_year=start_year)
    for warning in report.warnings:
        err.print(f"warning: {warning}")
    out.print(f"stored {report.rows} observations {report.first} → {report.last}")


@config_app.command("validate")
def config_validate(
    paths: Annotated[
        list[Path] | None, typer.Argument(help="Config files (default: configs/*.json).")
    ] = None,
    strict: Annotated[
        bool, typer.Option("--strict", help="Also reject knobs the family ignores and over-limit contexts.")
    ] = False,
    workspace: WorkspaceOpt = Path(),
) -> None:
    """Check horizon configs; each problem names the file, the key, the bad value and the fix."""
    from bot.adapters.configs import read_config
    from bot.core.config import HORIZONS

    files = paths or [workspace / "configs" / f"{h}.json" for h in HORIZONS]
    failures = []
    for f in files:
        try:
            cfg = read_config(f, strict=strict)
            out.print(f"ok       {f} ({cfg.model_family.value}, context {cfg.context_length})")
        except ChronopsError as exc:
            failures.append(str(exc))
    if failures:
        raise ChronopsError("\n".join(failures))


@model_app.command("tiny")
def model_tiny(
    family: Annotated[str, typer.Option(help="t5, bolt or chronos2.")],
    out_dir: Annotated[Path, typer.Option("--out", help="Directory to write the model to.")],
    seed: Annotated[int, typer.Option(help="Weight initialisation seed.")] = 0,
) -> None:
    """Build a random-weight Chronos model of the real tiny architecture, offline (forecasts are noise)."""
    from bot.adapters.tiny import build_tiny_model
    from bot.core.config import Family

    try:
        fam = Family(family)
    except ValueError:
        raise ChronopsError(f"unknown family '{family}' (use t5, bolt or chronos2)") from None
    path = build_tiny_model(fam, out_dir, seed=seed)
    out.print(f"wrote random-weight {fam.value} tiny model to {path} (forecasts are meaningless)")


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
            is_flag=False,
            flag_value="plan",
        ),
    ] = None,
    automerge: Annotated[
        bool | None, typer.Option("--automerge/--no-automerge", help="Override settings.forge.automerge.")
    ] = None,
    force_approve: Annotated[
        bool, typer.Option("--force-approve", help="Approve whatever the gate says (needs --reason).")
    ] = False,
    reason: Annotated[str | None, typer.Option(help="Why --force-approve was used (recorded).")] = None,
    forge: Annotated[str | None, typer.Option(help="local or github (default: settings.forge.kind).")] = None,
    workspace: WorkspaceOpt = Path(),
) -> None:
    """Run the loop: triggers → search → gate → report → pull request (merged when approved)."""
    from bot.commands import run_command

    with progress_bars() as progress:
        code = run_command(
            workspace, horizon=horizon, all_=all_, force=force, dry_run=dry_run, automerge=automerge,
            force_approve=force_approve, reason=reason, forge_kind=forge, progress=progress, say=out.print,
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
    from bot.commands import rollback_command

    rollback_command(
        workspace, horizon=horizon, to=to, reason=reason, merge=merge, forge_kind=forge, say=out.print
    )


@app.command()
def status(json_: JsonOpt = False, workspace: WorkspaceOpt = Path()) -> None:
    """What is live per horizon, and the last run's outcome."""
    from bot.commands import status_rows

    rows = status_rows(workspace)
    if json_:
        import json

        out.print_json(json.dumps(rows, default=str))
        return
    table = Table("horizon", "model", "context", "ns", "T", "version", "from", "last run", "outcome")
    for r in rows:
        table.add_row(*(str(r.get(k, "")) for k in (
            "horizon", "model_id", "context_length", "num_samples", "temperature", "version", "source",
            "last_run", "last_status",
        )))  # fmt: skip
    out.print(table)


@app.command()
def history(horizon: HorizonOpt = None, json_: JsonOpt = False, workspace: WorkspaceOpt = Path()) -> None:
    """Past optimizations (data/optimization_history.parquet)."""
    from bot.history import read_history
    from bot.workspace import Workspace

    ws = Workspace.open(workspace)
    frame = read_history(ws.history_path)
    if horizon:
        frame = frame[frame["horizon"] == horizon]
    if json_:
        out.print_json(frame.to_json(orient="records", date_format="iso"))
        return
    cols = ["optimization_date", "run_id", "horizon", "triggered_by", "status", "verdict", "pull_request"]
    table = Table(*cols)
    for _, row in frame.iterrows():
        table.add_row(*(str(row[c]) for c in cols))
    out.print(table)


@app.command()
def validate(
    run_id: Annotated[str, typer.Option("--run", help="Run id (a folder under data/runs/).")],
    horizon: HorizonOpt = None,
    min_rmse_improvement_pct: Annotated[float | None, typer.Option(help="Override the threshold.")] = None,
    min_mape_improvement_pct: Annotated[float | None, typer.Option(help="Override the threshold.")] = None,
    max_std_increase_pct: Annotated[float | None, typer.Option(help="Override the threshold.")] = None,
    max_inference_time_increase_pct: Annotated[float | None, typer.Option(help="Override the threshold.")] = None,
    min_ci95_coverage_pct: Annotated[float | None, typer.Option(help="Override the threshold.")] = None,
    max_abs_bias: Annotated[float | None, typer.Option(help="Override the threshold (CLP).")] = None,
    max_noise_probability: Annotated[float | None, typer.Option(help="Override; 1.0 = seed's exact rule.")] = None,
    json_: JsonOpt = False,
    workspace: WorkspaceOpt = Path(),
) -> None:
    """Re-run the gate on a stored run's per-origin results (no forecast is recomputed)."""
    import json

    from bot.revalidate import revalidate, run_dirs, with_overrides
    from bot.workspace import Workspace

    ws = Workspace.open(workspace)
    approval = with_overrides(
        ws.settings.approval,
        {
            "min_rmse_improvement_pct": min_rmse_improvement_pct,
            "min_mape_improvement_pct": min_mape_improvement_pct,
            "max_std_increase_pct": max_std_increase_pct,
            "max_inference_time_increase_pct": max_inference_time_increase_pct,
            "min_ci95_coverage_pct": min_ci95_coverage_pct,
            "max_abs_bias": max_abs_bias,
            "max_noise_probability": max_noise_probability,
        },
    )
    docs = []
    for run_dir in run_dirs(ws, run_id):
        if horizon and run_dir.name != horizon:
            continue
        verdict, stored = revalidate(run_dir, approval)
        same = stored is not None and stored.to_dict() == verdict.to_dict()
        docs.append({"horizon": run_dir.name, "verdict": verdict.to_dict(), "same_as_stored": same})
        if not json_:
            out.print(f"{run_dir.name}: {verdict.headline}" + ("" if same else "  (differs from the stored verdict)"))
            for c in verdict.criteria:
                mark = "pass" if c.passed else "FAIL"
                value = "n/a" if c.value is None else f"{c.value:.4g}"
                out.print(f"  {mark}  {c.label}: {value} {c.comparator} {c.threshold:g}")
    if json_:
        out.print_json(json.dumps({"run_id": run_id, "horizons": docs}, default=str))


# ---------------------------------------------------------------------------------------------
def _write_crash_log() -> Path:
    fd, name = tempfile.mkstemp(prefix="chronops-crash-", suffix=".log")
    with os.fdopen(fd, "w") as fh:
        fh.write(f"chronops crashed: {' '.join(sys.argv)}\n\n")
        fh.write(traceback.format_exc())
    return Path(name)


def main(argv: list[str] | None = None) -> None:
    """Console entry point: maps every outcome to an exit code, never shows a traceback for known errors."""
    logging.basicConfig(
        level=os.environ.get("CHRONOPS_LOG", "WARNING"), format="%(levelname)s %(name)s: %(message)s"
    )
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
    try:
        result = app(args=argv, standalone_mode=False)
        code = result if isinstance(result, int) else 0
    except ChronopsError as exc:
        for line in str(exc).splitlines() or [type(exc).__name__]:
            err.print(f"error: {line}", markup=False, highlight=False)
        code = exc.exit_code
    except click.exceptions.Exit as exc:
        code = exc.exit_code
    except click.exceptions.Abort:
        err.print("interrupted")
        code = EXIT_INTERRUPTED
    except click.ClickException as exc:
        exc.show()
        code = EXIT_USAGE if isinstance(exc, click.UsageError) else exc.exit_code
    except KeyboardInterrupt:
        err.print("interrupted")
        code = EXIT_INTERRUPTED
    except Exception as exc:
        log = _write_crash_log()
        err.print(
            f"error: unexpected {type(exc).__name__}: {exc} (details in {log}; please report it)",
            markup=False,
        )
        code = EXIT_CRASH
    sys.exit(code)
