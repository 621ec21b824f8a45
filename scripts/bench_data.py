"""The data pipeline at scale: prepare, start-up, memory and data wait for an N-pair corpus.

    python scripts/bench_data.py --pairs 10000000                      # Multi30k repeated
    python scripts/bench_data.py --pairs 1000000 --source demo --config configs/demo.yaml

Builds an N-pair training corpus in --workdir (the Multi30k training set repeated, from
--multi30k, or the generated demo corpus), plus a 29,000-pair reference corpus cut from it,
then measures with the `seq2seq` command line, one process at a time:

- `seq2seq prepare`: seconds and pairs/s, and its peak resident memory;
- time to the first training step (the timestamp of the "step 1" log line, from the moment
  the process is started) for a fresh run that prepares its data, a fresh run whose data are
  already prepared, and a resume; the peak resident memory of each process;
- the same fresh run under `torchrun --nproc_per_node=2` (peak resident memory per process);
- training target tokens/s and the share of time the loop waited for data, on the N-pair and
  the reference corpus side by side (`scripts/bench_train.py`, --rounds alternating runs,
  medians).

Prints one Markdown table (and --json writes the numbers). Validation uses 20 pairs.
"""

from __future__ import annotations

import argparse
import datetime as dt
import gzip
import itertools
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
REFERENCE_PAIRS = 29_000
VALID_PAIRS = 20


def read_text(path: Path) -> list[str]:
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rt", encoding="utf-8") as f:
        return f.read().splitlines()


def write_repeated(lines: list[str], n: int, path: Path) -> None:
    """The first ``n`` lines of ``lines`` repeated, written in blocks."""
    path.parent.mkdir(parents=True, exist_ok=True)
    block = "\n".join(lines) + "\n"
    full, rest = divmod(n, len(lines))
    with open(path, "w", encoding="utf-8") as f:
        for _ in range(full):
            f.write(block)
        if rest:
            f.write("\n".join(lines[:rest]) + "\n")


def build_corpus(args: argparse.Namespace, work: Path) -> dict[str, Path]:
    """Training (N pairs and the reference) and validation files; reused when present."""
    out = {
        "big": work / "corpus" / f"train{args.pairs}",
        "ref": work / "corpus" / f"train{REFERENCE_PAIRS}",
        "valid": work / "corpus" / "valid",
    }
    if all(Path(f"{p}.{side}").is_file() for p in out.values() for side in ("src", "tgt")):
        return out
    if args.source == "multi30k":
        base = Path(args.multi30k)
        src = read_text(base / f"train.{args.src}.gz")
        tgt = read_text(base / f"train.{args.tgt}.gz")
        valid = (read_text(base / f"val.{args.src}.gz"), read_text(base / f"val.{args.tgt}.gz"))
    else:
        from seq2seq.demo.corpus import generate_demo

        demo = work / "demo"
        generate_demo(demo, seed=1, n_train=REFERENCE_PAIRS, n_valid=VALID_PAIRS, n_test=10)
        src, tgt = read_text(demo / "train.en"), read_text(demo / "train.de")
        valid = (read_text(demo / "valid.en"), read_text(demo / "valid.de"))
    for lines_src, lines_tgt, n, prefix in (
        (src, tgt, args.pairs, out["big"]),
        (src, tgt, REFERENCE_PAIRS, out["ref"]),
        (valid[0], valid[1], VALID_PAIRS, out["valid"]),
    ):
        write_repeated(lines_src, n, Path(f"{prefix}.src"))
        write_repeated(lines_tgt, n, Path(f"{prefix}.tgt"))
    return out


def overrides(corpus: Path, valid: Path, extra: list[str]) -> list[str]:
    items = [
        f"data.train.src={corpus}.src",
        f"data.train.tgt={corpus}.tgt",
        f"data.valid.src={valid}.src",
        f"data.valid.tgt={valid}.tgt",
        "data.test=null",
        "train.log_every=1",
        "train.validate_every=1000000",
        "train.num_alignment_plots=0",
        "train.keep_checkpoints=0",
        "train.quiet=true",
        *extra,
    ]
    return [arg for item in items for arg in ("--set", item)]


def run(cmd: list[str], log: Path) -> tuple[float, float, float]:
    """Runs ``cmd`` to its end; returns (start time, seconds, peak resident MiB of the largest
    process it or its children ran)."""
    started = time.time()
    with open(log, "w", encoding="utf-8") as out:
        proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, cwd=ROOT)
        _, status, usage = os.wait4(proc.pid, 0)
    seconds = time.time() - started
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"failed: {' '.join(cmd)}\n{log.read_text()[-3000:]}")
    return started, seconds, usage.ru_maxrss / 1024


_STEP = re.compile(r"^(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3}) INFO \S+: step (\d+) \|")


def step_time(train_log: Path, step: int) -> float:
    """Epoch seconds of the log line of training step ``step`` in train.log."""
    for line in train_log.read_text(encoding="utf-8").splitlines():
        match = _STEP.match(line)
        if match and int(match.group(2)) == step:
            stamp = dt.datetime.strptime(match.group(1), "%Y-%m-%d %H:%M:%S,%f")
            return stamp.timestamp()
    raise SystemExit(f"{train_log}: no log line of step {step}")


def seq2seq(*args: str) -> list[str]:
    return [sys.executable, "-m", "seq2seq", *args]


def start_up(config: str, corpus: Path, valid: Path, work: Path, name: str) -> dict[str, float]:
    """Prepare, fresh runs (preparing, then reusing) and a resume of one corpus."""
    result: dict[str, float] = {}
    run_dir = work / "runs" / name
    shutil.rmtree(run_dir, ignore_errors=True)
    sets = overrides(corpus, valid, ["train.max_steps=1"])
    _, result["prepare_s"], result["prepare_rss_mib"] = run(
        seq2seq("prepare", config, "--run-dir", str(run_dir), "--quiet", *sets),
        work / f"{name}.prepare.log",
    )
    shutil.rmtree(run_dir)
    for key, mode in (("fresh_prepare", []), ("fresh_prepared", ["--overwrite"])):
        started, _, result[f"{key}_rss_mib"] = run(
            seq2seq("train", config, "--run-dir", str(run_dir), *mode, *sets),
            work / f"{name}.{key}.log",
        )
        result[f"{key}_first_step_s"] = step_time(run_dir / "train.log", 1) - started
    sets = overrides(corpus, valid, ["train.max_steps=2"])
    started, _, result["resume_rss_mib"] = run(
        seq2seq("train", config, "--run-dir", str(run_dir), "--resume", *sets),
        work / f"{name}.resume.log",
    )
    result["resume_first_step_s"] = step_time(run_dir / "train.log", 2) - started
    ddp_dir = work / "runs" / f"{name}-ddp"
    shutil.rmtree(ddp_dir, ignore_errors=True)
    shutil.copytree(run_dir / "prepared", ddp_dir / "prepared")
    for model in run_dir.glob("spm*.model"):
        shutil.copy2(model, ddp_dir / model.name)
    sets = overrides(corpus, valid, ["train.max_steps=1"])
    torchrun = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2"]
    _, _, result["ddp2_rss_mib"] = run(
        [*torchrun, "-m", "seq2seq", "train", config, "--run-dir", str(ddp_dir), *sets],
        work / f"{name}.ddp.log",
    )
    shutil.rmtree(ddp_dir)
    return result


def speed(
    config: str, corpora: dict[str, Path], work: Path, rounds: int, steps: int
) -> dict[str, dict[str, float]]:
    """bench_train.py on both corpora, alternating, ``rounds`` times each: medians."""
    samples: dict[str, list[dict[str, float]]] = {"big": [], "ref": []}
    for _, name in itertools.product(range(rounds), ("ref", "big")):
        sets = overrides(corpora[name], corpora["valid"], [])
        out = work / f"speed.{name}.json"
        cmd = [sys.executable, str(ROOT / "scripts" / "bench_train.py"), config, "--json"]
        cmd += ["--run-dir", str(work / "runs" / name), "--steps", str(steps), "--warmup", "5"]
        cmd += sets
        run(cmd, out)
        samples[name].append(json.loads(out.read_text().strip().splitlines()[-1]))
    return {
        name: {
            key: statistics.median(r[key] for r in rows)
            for key in ("tgt_tokens_per_s", "data_wait", "peak_rss_mib")
        }
        for name, rows in samples.items()
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--pairs", type=int, default=1_000_000)
    parser.add_argument("--source", choices=("multi30k", "demo"), default="multi30k")
    parser.add_argument("--multi30k", default=str(ROOT.parent / "shared" / "data" / "multi30k"))
    parser.add_argument("--src", default="en")
    parser.add_argument("--tgt", default="de")
    parser.add_argument("--config", default="configs/multi30k/transformer.yaml")
    parser.add_argument("--workdir", default="runs/bench-data")
    parser.add_argument("--rounds", type=int, default=3, help="speed runs per corpus")
    parser.add_argument("--steps", type=int, default=20, help="timed steps per speed run")
    parser.add_argument("--json", metavar="FILE", help="also write the numbers here")
    args = parser.parse_args(argv)
    work = Path(args.workdir).resolve()
    work.mkdir(parents=True, exist_ok=True)
    corpora = build_corpus(args, work)
    results = {
        "pairs": args.pairs,
        "big": start_up(args.config, corpora["big"], corpora["valid"], work, "big"),
        "ref": start_up(args.config, corpora["ref"], corpora["valid"], work, "ref"),
        "speed": speed(args.config, corpora, work, args.rounds, args.steps),
    }
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")
    big, ref, sp = results["big"], results["ref"], results["speed"]
    rows = [
        ("prepare, seconds", "prepare_s", "{:.1f}"),
        ("prepare, peak resident MiB", "prepare_rss_mib", "{:,.0f}"),
        ("fresh run (prepares), seconds to step 1", "fresh_prepare_first_step_s", "{:.1f}"),
        ("fresh run (data prepared), seconds to step 1", "fresh_prepared_first_step_s", "{:.1f}"),
        ("resume, seconds to its first step", "resume_first_step_s", "{:.1f}"),
        ("train, peak resident MiB (1 process)", "fresh_prepared_rss_mib", "{:,.0f}"),
        ("resume, peak resident MiB", "resume_rss_mib", "{:,.0f}"),
        ("train, 2 DDP processes, peak resident MiB per process", "ddp2_rss_mib", "{:,.0f}"),
    ]
    print(f"| measure | {args.pairs:,} pairs | {REFERENCE_PAIRS:,} pairs |")
    print("|---|---|---|")
    print(
        f"| prepare, pairs/s | {args.pairs / big['prepare_s']:,.0f} |"
        f" {REFERENCE_PAIRS / ref['prepare_s']:,.0f} |"
    )
    for label, key, fmt in rows:
        print(f"| {label} | {fmt.format(big[key])} | {fmt.format(ref[key])} |")
    print(
        f"| training target tokens/s (median of {args.rounds}) |"
        f" {sp['big']['tgt_tokens_per_s']:,.0f} | {sp['ref']['tgt_tokens_per_s']:,.0f} |"
    )
    print(
        f"| data wait, share of training time | {100 * sp['big']['data_wait']:.2f} % |"
        f" {100 * sp['ref']['data_wait']:.2f} % |"
    )
    ratio = sp["big"]["tgt_tokens_per_s"] / sp["ref"]["tgt_tokens_per_s"]
    print(f"\ntokens/s ratio, {args.pairs:,} / {REFERENCE_PAIRS:,} pairs: {ratio:.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
