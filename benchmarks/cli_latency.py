"""How long the read-only commands take, end to end, as a person types them (issue 17: under 2 s).

    .venv/bin/python benchmarks/cli_latency.py --workspace demo/repo [--repeat 5]

Runs each command in a fresh `python -m bot` process (interpreter start and imports included, which
is most of the cost) `--repeat` times on an existing workspace (build one with `chronops demo`) and
prints the median and the slowest wall time per command. Prints numbers; asserts nothing.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

COMMANDS = (
    ("status",),
    ("status", "--json"),
    ("check", "--horizon", "7d"),
    ("history",),
    ("watchdog", "--no-email", "--json"),
)


def time_command(args: tuple[str, ...], workspace: Path, repeat: int) -> list[float]:
    env = {**os.environ, "COLUMNS": "100"}
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        proc = subprocess.run(
            [sys.executable, "-m", "bot", *args, "-w", str(workspace)],
            capture_output=True, text=True, env=env, check=False,
        )  # fmt: skip
        times.append(time.perf_counter() - started)
        if proc.returncode not in (0, 6):  # watchdog exits 6 when runs were missed
            raise SystemExit(
                f"chronops {' '.join(args)} failed ({proc.returncode}): {proc.stderr.strip()[-300:]}"
            )
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workspace", type=Path, default=Path("demo/repo"))
    parser.add_argument("--repeat", type=int, default=5)
    opts = parser.parse_args()
    if not opts.workspace.is_dir():
        raise SystemExit(f"{opts.workspace}: no workspace (run `chronops demo` first)")
    print(f"workspace {opts.workspace}, {opts.repeat} runs each, {os.cpu_count()} CPUs")
    print(f"{'command':<36} {'median s':>9} {'max s':>7}")
    for args in COMMANDS:
        times = time_command(args, opts.workspace, opts.repeat)
        print(f"{'chronops ' + ' '.join(args):<36} {statistics.median(times):>9.2f} {max(times):>7.2f}")


if __name__ == "__main__":
    main()
