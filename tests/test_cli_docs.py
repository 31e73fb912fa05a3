"""Every CLI command has help text and is documented in the README (sqlite-utils' habit)."""

from __future__ import annotations

import re
from pathlib import Path

import typer.main

from bot.cli import app

README = (Path(__file__).resolve().parent.parent / "README.md").read_text(encoding="utf-8")


def commands() -> list[str]:
    group = typer.main.get_command(app)
    names: list[str] = []
    for name, cmd in group.commands.items():  # type: ignore[attr-defined]
        sub = getattr(cmd, "commands", None)
        names += [f"{name} {s}" for s in sub] if sub else [name]
    return sorted(names)


def test_there_are_commands() -> None:
    assert {"run", "demo", "ingest", "config validate", "rollback", "status", "history", "check"} <= set(commands())


def test_every_command_has_help_and_is_in_the_readme() -> None:
    group = typer.main.get_command(app)
    for full in commands():
        cmd = group
        for part in full.split():
            cmd = cmd.commands[part]  # type: ignore[attr-defined]
        assert (cmd.help or "").strip(), f"{full} has no help text"
        assert re.search(rf"`chronops {re.escape(full)}\b", README), f"`chronops {full}` is not documented in README.md"
