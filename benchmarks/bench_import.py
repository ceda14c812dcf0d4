"""The cost of ``import lakekit`` and of the CLI's modules (issue 10), from ``-X importtime``.

Each round starts a fresh interpreter with ``-X importtime`` and reads the cumulative
microseconds of the ``lakekit`` line (everything lakekit imports, itself included), and
notes heavy packages (polars, pyarrow, ...) when they appear (they should not: the public
names are imported lazily). The same for ``import lakekit.cli``, what every ``lakekit``
command pays before it parses its arguments. ``import json`` in the same kind of fresh
interpreter is the baseline, so a slow machine shows as a slow baseline. Pass
``--checkout DIR`` to measure another checkout (a git worktree of an older commit) side by
side with this one, interleaved.

Imports run from bytecode caches (written by a first, unmeasured import), as in an
installed package, even where ``PYTHONDONTWRITEBYTECODE`` is set.

Run: ``python benchmarks/bench_import.py [--rounds 40] [--checkout DIR]``; prints Markdown.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def import_times(code: str, checkout: Path) -> dict[str, int]:
    """Cumulative import time (µs) per top-level module of one fresh ``python -c code``."""
    env = dict(os.environ, PYTHONPATH=str(checkout))
    env.pop("PYTHONDONTWRITEBYTECODE", None)  # measure imports from bytecode, as installed
    proc = subprocess.run([sys.executable, "-X", "importtime", "-c", code], env=env,
                          capture_output=True, text=True, timeout=60, check=True)
    out: dict[str, int] = {}
    for line in proc.stderr.splitlines():
        if not line.startswith("import time:") or "|" not in line:
            continue
        _, cumulative, name = (part.strip() for part in line.split(":", 1)[1].split("|"))
        if not name.startswith(" ") and cumulative.isdigit():
            out[name.strip()] = int(cumulative)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=40)
    ap.add_argument("--checkout", type=Path, action="append", default=[],
                    help="another checkout to measure beside this one (repeatable)")
    args = ap.parse_args()
    checkouts = [ROOT, *args.checkout]
    targets = ["lakekit", "lakekit.cli"]
    samples: dict[tuple[str, Path], list[int]] = {(t, c): [] for t in targets for c in checkouts}
    heavy: dict[tuple[str, Path], set[str]] = {key: set() for key in samples}
    baseline: list[int] = []
    for target in targets:  # a first import writes the bytecode caches; not measured
        for checkout in checkouts:
            import_times(f"import {target}", checkout)
    for _ in range(args.rounds):
        baseline.append(import_times("import json", ROOT).get("json", 0))
        for target in targets:
            for checkout in checkouts:
                times = import_times(f"import {target}", checkout)
                samples[target, checkout].append(times[target])
                heavy[target, checkout] |= {m for m in ("polars", "pyarrow", "pandas",
                                                        "deltalake", "pandera", "fsspec")
                                            if m in times}
    print(f"machine: {platform.node()} ({os.cpu_count()} cores), Python "
          f"{platform.python_version()}, {args.rounds} fresh interpreters each\n")
    print("| import | checkout | median | p90 | heavy packages imported |")
    print("|---|---|---:|---:|---|")
    for (target, checkout), values in samples.items():
        ordered = sorted(values)
        p90 = ordered[int(0.9 * (len(ordered) - 1))]
        name = "this" if checkout == ROOT else str(checkout)
        print(f"| `{target}` | {name} | {statistics.median(ordered) / 1000:.1f} ms | "
              f"{p90 / 1000:.1f} ms | {', '.join(sorted(heavy[target, checkout])) or 'none'} |")
    print(f"| `json` (baseline) | | {statistics.median(baseline) / 1000:.1f} ms | | |")


if __name__ == "__main__":
    main()
