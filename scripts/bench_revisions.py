"""Training speed of several git revisions, side by side in one run (before/after a change).

    python scripts/bench_revisions.py bf1702c 40a529c -- configs/multi30k/transformer_best.yaml \
        --steps 30 --warmup 5 --rounds 3

Checks each revision out into a temporary git worktree, then runs that revision's
scripts/bench_train.py with that revision's package (PYTHONPATH), from the current directory
(everything after ``--`` is passed to it; the config and data are read from the current
checkout, so every revision trains the same config on the same data) once per revision per round,
alternating the order every round so that a drift of the machine's speed hits all revisions
alike. Prints each run's target tokens/s and, per revision, the median and its ratio to the
first revision's median.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _env(tree: Path) -> dict[str, str]:
    """The revision's package first on sys.path; PYTHONSAFEPATH keeps the current directory
    (this checkout) off it."""
    return dict(os.environ, PYTHONPATH=str(tree), PYTHONSAFEPATH="1")


def add_worktree(rev: str, tree: Path) -> Path:
    """Check ``rev`` out into ``tree`` and make sure its package is the one imported there."""
    git = ["git", "-C", str(ROOT), "worktree", "add", "--detach", str(tree), rev]
    subprocess.run(git, check=True, capture_output=True)
    where = subprocess.run(
        [sys.executable, "-c", "import seq2seq; print(seq2seq.__file__)"],
        env=_env(tree),
        check=True,
        capture_output=True,
        text=True,
    ).stdout.strip()
    if not Path(where).is_relative_to(tree):  # an installed seq2seq would shadow it
        sys.exit(f"bench_revisions.py: {rev} imports seq2seq from {where}, not {tree}")
    return tree


def main() -> int:
    argv = sys.argv[1:]
    if "--" not in argv:
        sys.exit(
            "usage: bench_revisions.py REV [REV ...] [--rounds N] -- CONFIG [bench_train args]"
        )
    split = argv.index("--")
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("revisions", nargs="+")
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args(argv[:split])
    bench_args = argv[split + 1 :]
    if not bench_args:
        sys.exit("bench_revisions.py: give the config (and bench_train options) after --")
    config = str(Path(bench_args[0]).resolve())
    rates: dict[str, list[float]] = {rev: [] for rev in args.revisions}
    with tempfile.TemporaryDirectory(prefix="bench-revisions-") as tmp:
        trees: dict[str, Path] = {}
        try:  # worktrees made before a failure are removed too
            for i, rev in enumerate(args.revisions):
                trees[rev] = add_worktree(rev, Path(tmp) / f"rev{i}")
            for r in range(args.rounds):
                order = args.revisions if r % 2 == 0 else args.revisions[::-1]
                for rev in order:
                    script = str(trees[rev] / "scripts" / "bench_train.py")
                    cmd = [sys.executable, script, config, *bench_args[1:], "--json"]
                    out = subprocess.run(
                        cmd, env=_env(trees[rev]), check=True, capture_output=True, text=True
                    ).stdout
                    rate = json.loads(out.strip().splitlines()[-1])["tgt_tokens_per_s"]
                    rates[rev].append(rate)
                    print(f"round {r + 1} {rev}: {rate:,.0f} target tokens/s", flush=True)
        finally:
            for tree in trees.values():
                subprocess.run(
                    ["git", "-C", str(ROOT), "worktree", "remove", "--force", str(tree)],
                    check=False,
                    capture_output=True,
                )
    base = statistics.median(rates[args.revisions[0]])
    print("\n| revision | target tokens/s (median) | runs | vs first |\n|---|---|---|---|")
    for rev in args.revisions:
        median = statistics.median(rates[rev])
        runs = " / ".join(f"{x:,.0f}" for x in rates[rev])
        print(f"| {rev} | {median:,.0f} | {runs} | {median / base:.2f}x |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
