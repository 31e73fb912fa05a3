#!/usr/bin/env python3
"""Check the code map: which folder of `bot/` may import which, no import circles, no oversized files.

    python3 scripts/code_map.py          # prints the map and every violation; exit 1 if any

It reads the sources with `ast` (nothing is imported), and counts every import: module level,
inside functions, and under `if TYPE_CHECKING:`. The rules are the README's "Code map".
"""

from __future__ import annotations

import ast
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent / "bot"
MAX_LINES = 500
MAX_TOP_MODULES = 10

# Each layer, what it is, and the layers it may import (besides itself).
BASE = ("bot.settings", "bot.workspace", "bot.faults", "bot.secrets")
LAYERS: dict[str, tuple[str, tuple[str, ...]]] = {
    "cli": ("parse arguments, call a command, map errors to exit codes", ("*",)),
    "commands": ("one module per verb", ("flow", "render", "serve", "adapters", "base", "core", "errors")),
    "flow": ("the loop: search, gate, propose, deploy, recovery", ("render", "adapters", "base", "core", "errors")),
    "render": ("reports, dashboard, charts: data in, strings out", ("base", "core", "errors")),
    "serve": ("issuing forecasts and the HTTP service", ("adapters", "base", "core", "errors")),
    "adapters": ("IO: git, forges, files, models, mail, HTTP sources", ("base", "core", "errors")),
    "base": ("settings, workspace, faults, secrets", ("core", "errors")),
    "core": ("pure decisions and their parameters", ("errors",)),
    "errors": ("one exception family and its exit codes", ()),
}
# Narrower rules inside a layer's allowance.
FORBIDDEN = {
    "serve": ("bot.adapters.forges", "bot.adapters.git", "git", "github"),
    "core": ("git", "github", "jinja2", "torch", "chronos", "transformers"),
    "render": ("git", "github", "torch", "chronos"),
}


def layer_of(module: str) -> str:
    if module in ("bot.cli", "bot.__main__"):
        return "cli"
    if module in ("bot.errors", "bot", "bot.__init__"):
        return "errors"
    if module in BASE:
        return "base"
    parts = module.split(".")
    return parts[1] if len(parts) > 1 and parts[1] in LAYERS else "?"


def module_name(path: Path) -> str:
    rel = path.relative_to(ROOT.parent).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def imports_of(path: Path, modules: set[str]) -> list[tuple[int, str]]:
    """(line, imported name) for every import in the file; `bot.x` names resolved to a known module."""
    tree = ast.parse(path.read_text(), filename=str(path))
    found: list[tuple[int, str]] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.extend((node.lineno, alias.name) for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            for alias in node.names:
                sub = f"{node.module}.{alias.name}"
                found.append((node.lineno, sub if sub in modules else node.module))
    return found


def find_cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    cycles: list[list[str]] = []
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                cycles.append([*stack[stack.index(nxt) :], nxt])
            elif nxt not in state:
                visit(nxt)
        stack.pop()
        state[node] = 2

    for node in sorted(graph):
        if node not in state:
            visit(node)
    return cycles


def check() -> list[str]:
    files = sorted(ROOT.rglob("*.py"))
    modules = {module_name(f) for f in files}
    problems: list[str] = []
    graph: dict[str, set[str]] = {}
    for f in files:
        mod = module_name(f)
        layer = layer_of(mod)
        lines = len(f.read_text().splitlines())
        if lines > MAX_LINES:
            problems.append(f"{f.relative_to(ROOT.parent)}: {lines} lines (at most {MAX_LINES})")
        if layer == "?":
            problems.append(f"{mod}: in no layer of the code map")
            continue
        allowed = LAYERS[layer][1]
        for line, name in imports_of(f, modules):
            top = name.split(".")[0]
            for bad in FORBIDDEN.get(layer, ()):
                if name == bad or name.startswith(bad + "."):
                    problems.append(f"{mod}:{line}: {layer} must not import {name}")
            if top != "bot" or name == "bot":
                continue
            target = name if name in modules else name.rsplit(".", 1)[0]
            if target == mod:
                continue
            graph.setdefault(mod, set()).add(target)
            tlayer = layer_of(target)
            if tlayer != layer and "*" not in allowed and tlayer not in allowed:
                problems.append(f"{mod}:{line}: {layer} may not import {tlayer} ({target})")
    top_level = [f for f in ROOT.glob("*.py")]
    if len(top_level) > MAX_TOP_MODULES:
        problems.append(f"bot/ has {len(top_level)} modules directly inside (at most {MAX_TOP_MODULES})")
    problems.extend("import circle: " + " -> ".join(c) for c in find_cycles(graph))
    return problems


def main() -> int:
    print("code map (a layer may import the layers listed after it, never the other way):")
    for name, (what, allowed) in LAYERS.items():
        print(f"  {name:<9} {what}; imports: {', '.join(allowed) or 'nothing from bot'}")
    problems = check()
    for p in problems:
        print("violation:", p)
    print(f"{len(problems)} violation(s)")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
