"""Side-by-side decoding of one run: this toolkit (fp32, int8) against CTranslate2 (float32,
int8) on the same weights; run through ``python scripts/bench_decode.py RUN --ctranslate2``.

The run is exported to a temporary directory (``seq2seq.export``, float32 and int8). Every
configuration then runs in a fresh process, round after round, configurations alternating, so
that each reports the peak resident memory of a process that loads the model and translates
(VmHWM): ours imports torch and loads the checkpoint, CTranslate2's imports only ctranslate2
and sentencepiece. Each process translates --batch sentences untimed (warm-up), then all the
sentences timed: subword encoding, length-sorted batching, beam search and detokenization on
both sides (CTranslate2's ``translate_batch`` with ``max_batch_size`` sorts by length itself).
With --workers N both engines decode N batches at once, each on threads / N threads: our
Translator's workers, CTranslate2's ``inter_threads`` (its sub-batches go to its replicas).

Both engines get the run's output limit, floor((source pieces + 1) * max_len_ratio +
max_len_offset) capped at max_positions: per sentence in ours; CTranslate2 takes one
``max_decoding_length`` per call, the largest of these. CTranslate2 is also told what our
search allows (``min_decoding_length=0``, ``<pad>`` and ``<s>`` never produced). Length
penalty rules: "default" is each engine's own rule with the run's alpha (ours GNMT
((5 + n) / 6) ** alpha, CTranslate2 n ** alpha); "equal" is alpha = 0 for both, where both rank
hypotheses by their log-probability alone (only the stopping rules still differ).
"""

from __future__ import annotations

import gzip
import json
import math
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROWS = (
    ("seq2seq", "fp32"),
    ("seq2seq", "int8"),
    ("ctranslate2", "float32"),
    ("ctranslate2", "int8"),
)
PENALTIES = ("default", "equal")


def read_text_lines(path: Path) -> list[str]:
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rt", encoding="utf-8") as f:
        return [line.rstrip("\n") for line in f]


def peak_rss_mib() -> float:
    """The process's peak resident memory (VmHWM), MiB."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def output_limit(pieces: int, decode: dict) -> int:
    """Our per-sentence output limit (the source's EOS counted), capped at max_positions."""
    limit = math.floor((pieces + 1) * decode["max_len_ratio"] + decode["max_len_offset"])
    return max(1, min(limit, decode["max_positions"]))


def ct2_worker(job: dict) -> dict:
    """One timed CTranslate2 configuration (imports no torch)."""
    import ctranslate2
    import sentencepiece as spm

    model_dir = Path(job["model_dir"])
    meta = json.loads((model_dir / "export.json").read_text())
    models = meta["subword_models"]
    src_sp = spm.SentencePieceProcessor(model_file=str(model_dir / models["source"]))
    tgt_sp = spm.SentencePieceProcessor(model_file=str(model_dir / models["target"]))
    engine = ctranslate2.Translator(
        str(model_dir),
        device="cpu",
        compute_type=job["compute_type"],
        inter_threads=job["workers"],
        intra_threads=max(1, job["threads"] // job["workers"]),
    )
    decode = {**meta["decode"], "max_positions": meta["max_positions"]}
    lines = read_text_lines(Path(job["src"]))[: job["max_sentences"]]

    def translate(texts: list[str]) -> tuple[list[str], int, int]:
        pieces = [p[: decode["max_positions"] - 1] for p in src_sp.encode(texts, out_type=str)]
        limit = max(output_limit(len(p), decode) for p in pieces)
        results = engine.translate_batch(
            pieces,
            max_batch_size=job["batch"],
            beam_size=job["beam"],
            length_penalty=job["alpha"],
            max_decoding_length=limit,
            min_decoding_length=0,
            suppress_sequences=[["<pad>"], ["<s>"]],
        )
        hyps = [r.hypotheses[0] for r in results]
        return [tgt_sp.decode(h) for h in hyps], sum(len(h) + 1 for h in hyps), limit

    translate(lines[: job["batch"]])  # warm-up
    start = time.perf_counter()
    texts, tokens, limit = translate(lines)
    seconds = time.perf_counter() - start
    return finish(job, texts, tokens, seconds, extra={"max_decoding_length": limit})


def ours_worker(job: dict) -> dict:
    """One timed configuration of this toolkit's Translator."""
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from seq2seq.inference.translate import Translator
    from seq2seq.runtime.device import configure_threads

    configure_threads(max(1, job["threads"] // job["workers"]))
    try:
        translator = Translator.load(
            job["run"],
            device="cpu",
            workers=job["workers"],
            precision=job["precision"],
            beam=job["beam"],
            batch_size=job["batch"],
            length_penalty=job["alpha"],
            stopping=job["stopping"],
        )
    except (ValueError, TypeError) as exc:  # a precision this version does not offer
        return {"unavailable": str(exc).splitlines()[0]}
    lines = read_text_lines(Path(job["src"]))[: job["max_sentences"]]
    list(translator.translate(lines[: job["batch"]]))  # warm-up
    start = time.perf_counter()
    outputs = list(translator.translate(lines))
    seconds = time.perf_counter() - start
    tokens = sum(len(t.tokens) + 1 for t in outputs)  # + EOS (or the step cut at the limit)
    return finish(job, [t.text for t in outputs], tokens, seconds)


def finish(job: dict, texts: list[str], tokens: int, seconds: float, extra=None) -> dict:
    """The worker's result; the translations go to job["hyp"] for BLEU in the parent."""
    Path(job["hyp"]).write_text("\n".join(texts) + "\n", encoding="utf-8")
    return {
        "sentences": len(texts),
        "seconds": seconds,
        "sent_per_s": len(texts) / seconds,
        "tok_per_s": tokens / seconds,
        "peak_mib": peak_rss_mib(),
        **(extra or {}),
    }


def busy_cpu_seconds() -> float:
    """CPU seconds the whole machine has been busy since boot (/proc/stat, all cores)."""
    fields = Path("/proc/stat").read_text().splitlines()[0].split()[1:]
    user, nice, system, _idle, _iowait, irq, softirq, steal = (int(f) for f in fields[:8])
    return (user + nice + system + irq + softirq + steal) / os.sysconf("SC_CLK_TCK")


def wait_until_quiet(max_other: float, poll: float = 15.0) -> None:
    """Blocks while other processes keep more than ``max_other`` of a core busy."""
    while True:
        before, start = busy_cpu_seconds(), time.monotonic()
        time.sleep(3.0)
        if (busy_cpu_seconds() - before) / (time.monotonic() - start) <= max_other:
            return
        print(f"  (machine busy, waiting {poll:.0f} s)", flush=True)
        time.sleep(poll)


def run_job(job: dict, *, max_other: float = 0.15, attempts: int = 20) -> dict:
    """Runs one configuration in a fresh process on a quiet machine and returns its JSON
    result. The CPU time the machine spent outside the worker during the run is checked: above
    ``max_other`` cores on average the timing is thrown away and the run repeated."""
    import resource

    for _ in range(attempts):
        wait_until_quiet(max_other)
        children = resource.getrusage(resource.RUSAGE_CHILDREN)
        busy, start = busy_cpu_seconds(), time.monotonic()
        done = subprocess.run(
            [sys.executable, __file__, "--worker", json.dumps(job)],
            capture_output=True,
            text=True,
            check=False,
        )
        wall = time.monotonic() - start
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        own = (after.ru_utime - children.ru_utime) + (after.ru_stime - children.ru_stime)
        other = max(0.0, busy_cpu_seconds() - busy - own) / wall
        if done.returncode != 0:
            raise SystemExit(f"bench worker failed ({job['engine']} {job['type']}):\n{done.stderr}")
        if other <= max_other:
            return {**json.loads(done.stdout.strip().splitlines()[-1]), "other_load": other}
        print(f"  (other processes used {other:.2f} cores meanwhile: measuring again)", flush=True)
    raise SystemExit(f"bench: the machine never stayed quiet for {job['engine']} {job['type']}")


def export_run(run: str, out: Path) -> dict[str, Path]:
    """The run exported as float32 and int8 under ``out``."""
    from seq2seq.export import export_ctranslate2

    return {q: export_ctranslate2(run, out / q, quantization=q) for q in ("float32", "int8")}


def bench(run: str, src: Path, ref: Path, config, args) -> list[dict]:
    """All rows x penalty rules, ``args.rounds`` rounds alternating; medians per row."""
    from seq2seq.evaluation.metrics import corpus_bleu

    refs = read_text_lines(ref)[: args.max_sentences]
    alpha = config.decode.length_penalty
    results: dict[tuple, list[dict]] = {}
    outputs: dict[tuple, list[str]] = {}  # first round's translations
    with tempfile.TemporaryDirectory(prefix="bench-ct2-") as tmp:
        exported = export_run(run, Path(tmp))
        for round_ in range(args.rounds):
            for rule in PENALTIES:
                for engine, kind in ROWS:
                    job = {
                        "engine": engine,
                        "type": kind,
                        "run": run,
                        "src": str(src),
                        "hyp": str(Path(tmp) / f"{engine}-{kind}-{rule}.txt"),
                        "beam": args.beam,
                        "batch": args.batch,
                        "threads": args.threads,
                        "workers": args.workers,
                        "alpha": alpha if rule == "default" else 0.0,
                        "stopping": config.decode.stopping,
                        "max_sentences": args.max_sentences,
                        "precision": kind,
                        "model_dir": str(exported.get(kind, "")),
                        "compute_type": kind,
                    }
                    result = run_job(job)
                    if "unavailable" not in result:
                        hyps = read_text_lines(Path(job["hyp"]))
                        result["bleu"] = corpus_bleu(hyps, refs)
                        outputs.setdefault((rule, engine, kind), hyps)
                        fp32 = outputs[(rule, "seq2seq", "fp32")]
                        result["same_as_fp32"] = sum(
                            a == b for a, b in zip(hyps, fp32, strict=True)
                        )
                    results.setdefault((rule, engine, kind), []).append(result)
                    print(f"  round {round_ + 1} {rule:7} {engine} {kind}: {summary(result)}")
    return [median_row(key, rows) for key, rows in results.items()]


def summary(result: dict) -> str:
    if "unavailable" in result:
        return f"not available ({result['unavailable']})"
    return (
        f"{result['sent_per_s']:.1f} sent/s, {result['tok_per_s']:.0f} tok/s, "
        f"peak {result['peak_mib']:.0f} MiB, BLEU {result['bleu']:.2f}"
    )


def median_row(key: tuple, rows: list[dict]) -> dict:
    rule, engine, kind = key
    row = {"rule": rule, "engine": engine, "type": kind, "rounds": len(rows)}
    if "unavailable" in rows[0]:
        return {**row, "unavailable": rows[0]["unavailable"]}
    row["sentences"] = rows[0]["sentences"]
    for field in ("sent_per_s", "tok_per_s", "peak_mib", "seconds"):
        row[field] = statistics.median(r[field] for r in rows)
    row["sent_per_s_range"] = (
        min(r["sent_per_s"] for r in rows),
        max(r["sent_per_s"] for r in rows),
    )
    row["bleu"], row["same_as_fp32"] = rows[0]["bleu"], rows[0]["same_as_fp32"]
    row["bleu_same_every_round"] = len({round(r["bleu"], 4) for r in rows}) == 1
    return row


def print_table(rows: list[dict], alpha: float) -> None:
    for rule in PENALTIES:
        how = (
            f"each engine's own length penalty, alpha {alpha:g} (ours GNMT ((5+n)/6)^a, "
            "CTranslate2 n^a)"
            if rule == "default"
            else "equal rule: alpha 0 for both (rank by log-probability)"
        )
        print(f"\n{how}")
        print(
            "| engine | weights | sentences/s (x fp32; min-max) | target tokens/s "
            "| peak memory (MiB) | BLEU | outputs equal to this toolkit's fp32 |"
        )
        print("|---|---|---|---|---|---|---|")
        base = next(r for r in rows if r["rule"] == rule and r["type"] == "fp32")
        for r in (r for r in rows if r["rule"] == rule):
            name = "this toolkit" if r["engine"] == "seq2seq" else "CTranslate2"
            if "unavailable" in r:
                print(f"| {name} | {r['type']} | not available | | | | |")
                continue
            ratio = r["sent_per_s"] / base["sent_per_s"] if "sent_per_s" in base else math.nan
            low, high = r["sent_per_s_range"]
            print(
                f"| {name} | {r['type']} | {r['sent_per_s']:.1f} ({ratio:.2f}x; "
                f"{low:.0f}-{high:.0f}) | "
                f"{r['tok_per_s']:.0f} | {r['peak_mib']:.0f} | {r['bleu']:.2f} | "
                f"{r['same_as_fp32']} of {r['sentences']} |"
            )


def main(run: str, src: Path, ref: Path, config, args) -> int:
    """Entry point of ``bench_decode.py RUN --ctranslate2``."""
    print(
        f"{run}: test set {src} ({args.max_sentences or 'all'} sentences), refs {ref}; beam "
        f"{args.beam}, batch {args.batch}, {args.threads} threads in {args.workers} "
        f"worker(s) (ours: Translator workers; CTranslate2: inter_threads), {args.rounds} rounds "
        f"(medians), each configuration in a fresh process, CPU {os.cpu_count()} cores"
    )
    rows = bench(run, src, ref, config, args)
    print_table(rows, config.decode.length_penalty)
    if args.json:
        print(json.dumps(rows))
    return 0


if __name__ == "__main__" and sys.argv[1:2] == ["--worker"]:
    job = json.loads(sys.argv[2])
    worker = ct2_worker if job["engine"] == "ctranslate2" else ours_worker
    print(json.dumps(worker(job)))
