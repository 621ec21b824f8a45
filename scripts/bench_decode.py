"""Benchmark decoding speed of a trained run on Multi30k test_2016_flickr.

Usage:
    python scripts/bench_decode.py RUN_DIR                    # default data: data/multi30k,
                                                              # else ../shared/data/multi30k
    python scripts/bench_decode.py RUN_DIR --data DIR --limit 100 --precision fp32 --json
    python scripts/bench_decode.py RUN_DIR --profile runs/profile/decode   # torch.profiler
    python scripts/bench_decode.py RUN_DIR --device cuda      # on the GPU (default: the CPU)
    python scripts/bench_decode.py RUN_DIR --ctranslate2      # against CTranslate2, same weights

What is measured:
* throughput: greedy and beam 5 at batch sizes 1 and 64 through `Translator` (subword encoding,
  length-sorted batching, search, detokenization), on the source side of test_2016_flickr
  (`data.src_lang` of the run's config). Batch size 1 runs on the first --limit sentences.
  Reported: sentences/s, target tokens/s (subword tokens of the outputs, EOS included) and the
  peak resident memory of the configuration (VmHWM after resetting the peak counter through
  /proc/self/clear_refs; elsewhere the process-wide ru_maxrss, which can only overstate it),
  and on CUDA the peak GPU memory allocated by tensors (`torch.cuda.max_memory_allocated`
  after `reset_peak_memory_stats`). One untimed warm-up batch runs before each configuration.
* cost per output token: one batch of --steps-batch sentences is encoded once, then the decoder
  is stepped --steps times feeding its own argmax but never stopping at EOS (outputs forced to
  be long); the table shows the mean time of a step in windows of steps. With decoder caches
  the cost stays flat as the prefix grows; re-decoding the prefix each step would grow
  linearly with it.
* --ctranslate2: instead, this toolkit (fp32, int8) against CTranslate2 (float32, int8) on the
  run exported by `seq2seq export`, beam --beam, batch --batch, --threads (default 2) shared
  by --workers (default 1) batches decoded at once, with
  sentences/s, target tokens/s, peak memory and BLEU against test_2016_flickr's references,
  medians of --rounds rounds, under both length-penalty rules: see scripts/bench_ctranslate2.py.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import resource
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import torch
from torch.profiler import record_function

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from seq2seq.checkpoint import load_run
from seq2seq.data import collate_src, read_lines
from seq2seq.inference.search import STOPPING_RULES
from seq2seq.inference.translate import Translator
from seq2seq.runtime.allocator import release_freed_memory, retain_freed_memory
from seq2seq.runtime.device import configure_threads, peak_memory_mib, resolve_device
from seq2seq.runtime.precision import DECODE_PRECISIONS, resolve_precision
from seq2seq.vocab import BOS_ID, EOS_ID

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_DATA = (ROOT / "data" / "multi30k", ROOT.parent / "shared" / "data" / "multi30k")


def find_test_file(data: Path | None, lang: str) -> Path:
    dirs = [data] if data is not None else list(DEFAULT_DATA)
    for d in dirs:
        for name in (f"test_2016_flickr.{lang}.gz", f"test_2016_flickr.{lang}"):
            if (d / name).is_file():
                return d / name
    raise SystemExit(
        f"bench_decode: no test_2016_flickr.{lang}[.gz] in "
        f"{', '.join(map(str, dirs))}; pass --data DIR"
    )


def reset_peak_memory(device: torch.device) -> bool:
    """Resets the peak counters (resident memory, and the GPU's on CUDA); False when the
    resident peak cannot be reset here."""
    release_freed_memory()  # the heap keeps freed blocks (retain_freed_memory): return them first
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    try:
        Path("/proc/self/clear_refs").write_text("5")
        return True
    except OSError:
        return False


def peak_rss_mib(reset_ok: bool) -> float:
    if reset_ok:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


def make_translator(run, *, beam: int, batch_size: int, precision: str) -> Translator:
    return Translator(
        model=run.model,
        tokenizer=run.tokenizer,
        beam=beam,
        batch_size=batch_size,
        length_penalty=run.config.decode.length_penalty,
        stopping=run.config.decode.stopping,
        max_len_ratio=run.config.decode.max_len_ratio,
        max_len_offset=run.config.decode.max_len_offset,
        precision=precision,
        pack=True,  # the run is this script's own, as in Translator.load: decode as the CLI does
    )


def throughput(run, lines: list[str], *, beam: int, batch_size: int, precision: str) -> dict:
    translator = make_translator(run, beam=beam, batch_size=batch_size, precision=precision)
    list(translator.translate(lines[:batch_size]))  # warm-up
    reset_ok = reset_peak_memory(translator.device)
    start = time.perf_counter()
    outputs = list(translator.translate(lines))  # its strings are on the host: work finished
    seconds = time.perf_counter() - start
    tokens = sum(len(t.tokens) + 1 for t in outputs)  # + EOS (or the step cut at max_len)
    return {
        "search": "greedy" if beam == 1 else f"beam {beam}",
        "batch_size": batch_size,
        "sentences": len(lines),
        "seconds": seconds,
        "sent_per_s": len(lines) / seconds,
        "tok_per_s": tokens / seconds,
        "peak_mib": peak_rss_mib(reset_ok),
        "peak_gpu_mib": peak_memory_mib(translator.device),
    }


def step_costs(run, lines: list[str], *, steps: int, batch: int, precision: str) -> list[float]:
    """Seconds per decoder step at steps 1..`steps`, never stopping at EOS."""
    model = run.model
    device = next(model.parameters()).device
    ids = [ids[: model.max_positions - 1] for ids in run.tokenizer.encode_src_batch(lines[:batch])]
    src = collate_src(ids).to(device)
    chosen = resolve_precision(precision, device, allowed=DECODE_PRECISIONS, option="precision")
    dtype = None if chosen.name == "fp32" else chosen.dtype
    times = []
    with (
        torch.inference_mode(),
        torch.autocast(device.type, dtype=dtype or torch.bfloat16, enabled=dtype is not None),
    ):
        state = model.init_state(model.encode(src))
        prev = torch.full((src.size(0),), BOS_ID, dtype=torch.long, device=device)
        for _ in range(min(steps, model.max_positions)):
            start = time.perf_counter()
            logits, state, _ = model.step(prev, state)
            logits[:, EOS_ID] = float("-inf")
            prev = logits.argmax(dim=-1)
            if device.type == "cuda":
                torch.cuda.synchronize(device)  # time the step, not its launch
            times.append(time.perf_counter() - start)
    return times


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("run", metavar="RUN_DIR")
    parser.add_argument("--data", type=Path, help="directory holding test_2016_flickr.*")
    parser.add_argument("--limit", type=int, default=100, help="sentences at batch size 1")
    parser.add_argument("--max-sentences", type=int, help="use only the first N sentences")
    parser.add_argument("--precision", choices=("auto", "fp32", "bf16"), default="auto")
    parser.add_argument("--threads", type=int, help="torch threads (default: all cores)")
    parser.add_argument(
        "--device", choices=("auto", "cpu", "cuda"), default="cpu", help="as train.device"
    )
    parser.add_argument("--steps", type=int, default=100, help="steps of the per-token check")
    parser.add_argument("--steps-batch", type=int, default=64, help="batch of the check")
    parser.add_argument("--json", action="store_true", help="print JSON lines only")
    parser.add_argument(
        "--profile",
        metavar="OUT",
        help="instead of the tables, profile beam 5 at --batch (default 64) over the sentences "
        "with torch.profiler: OUT.txt (phases, operators by self time) and OUT.trace.json",
    )
    parser.add_argument(
        "--ctranslate2",
        action="store_true",
        help="compare with CTranslate2 on the same weights (needs the export extra)",
    )
    parser.add_argument("--beam", type=int, default=5, help="beam of --ctranslate2")
    parser.add_argument(
        "--batch", type=int, help="batch size of --ctranslate2 (default 32) and --profile (64)"
    )
    parser.add_argument("--rounds", type=int, default=3, help="rounds of --ctranslate2")
    parser.add_argument(
        "--workers",
        type=int,
        default=1,
        help="--ctranslate2: batches decoded at once by each engine (ours: Translator workers, "
        "CTranslate2: inter_threads), each on --threads / N threads (default 1)",
    )
    parser.add_argument(
        "--length-penalty", type=float, metavar="A", help="alpha (default: the run's config)"
    )
    parser.add_argument(
        "--stopping", choices=STOPPING_RULES, help="beam search's rule (default: the run's config)"
    )
    args = parser.parse_args(argv)
    retain_freed_memory()
    if args.ctranslate2:
        return side_by_side(args)

    # over-long lines are truncated (and warned about) at every repetition: warn once here
    logging.getLogger("seq2seq.inference.translate").setLevel(logging.ERROR)
    threads = configure_threads(args.threads)
    device = resolve_device(args.device)
    run = load_run(args.run, device=device)
    if args.length_penalty is not None:
        run.config.decode.length_penalty = args.length_penalty
    if args.stopping is not None:
        run.config.decode.stopping = args.stopping
    path = find_test_file(args.data, run.config.data.src_lang)
    lines = [line for line in read_lines(path) if line.strip()][: args.max_sentences]
    too_long = sum(
        len(ids) >= run.model.max_positions  # the source + </s> must fit
        for ids in run.tokenizer.encode_src_batch(lines)
    )
    if too_long:
        print(
            f"note: {too_long} sentences longer than max_positions are truncated", file=sys.stderr
        )
    if not args.json:
        print(
            f"{args.run}: {run.config.model.arch}, {path} ({len(lines)} sentences), "
            f"{device}, {threads} threads, precision {args.precision}"
        )
    if args.profile:
        return profile_beam(run, lines, args)
    rows = []
    for beam in (1, 5):
        for batch_size in (1, 64):
            subset = lines[: args.limit] if batch_size == 1 else lines
            rows.append(
                throughput(run, subset, beam=beam, batch_size=batch_size, precision=args.precision)
            )
            row = rows[-1]
            gpu = row["peak_gpu_mib"]
            print(
                json.dumps(row)
                if args.json
                else f"{row['search']:>7}  batch {batch_size:>3}  {row['sentences']:>5} sent  "
                f"{row['sent_per_s']:8.1f} sent/s  {row['tok_per_s']:9.1f} tok/s  "
                f"peak {row['peak_mib']:7.0f} MiB"
                + ("" if gpu is None else f"  peak GPU {gpu:7.0f} MiB")
            )
    times = step_costs(
        run, lines, steps=args.steps, batch=args.steps_batch, precision=args.precision
    )
    print_step_costs(times, batch=args.steps_batch, as_json=args.json)
    return 0


#: --profile labels: (phase, module, attribute) of the functions and methods wrapped in a
#: ``record_function`` of that name while profiling (those missing in this version are skipped).
PROFILE_LABELS = (
    ("search: log_softmax", "seq2seq.inference.search", "_log_probs"),
    ("search: top-k (each row's, then each sentence's)", "seq2seq.inference.search", "_expand"),
    ("search: length penalty and stopping", "seq2seq.inference.search", "_best_finished"),
    ("search: length penalty and stopping", "seq2seq.inference.search", "_cannot_improve"),
    ("search: host sync", "seq2seq.inference.search", "_fetch"),
    ("search: token history", "seq2seq.inference.hypotheses", "History.extend"),
    ("search: token history", "seq2seq.inference.hypotheses", "History.select"),
    ("search: finished hypotheses", "seq2seq.inference.hypotheses", "Finished.add"),
    ("step: embedding", "seq2seq.models.transformer", "TransformerSeq2Seq._embed"),
    ("step: attention", "seq2seq.attention.module", "Attention.forward"),
    ("step: self-attention K/V", "seq2seq.attention.module", "Attention.memory"),
    ("step: cache extend", "seq2seq.attention.memory", "AttentionMemory.extend"),
    ("step: feed-forward", "seq2seq.models.transformer", "FeedForward.forward"),
    ("step: output projection", "seq2seq.models.embeddings", "OutputProjection.forward"),
    # fp32 on the CPU: the output projection and the feed-forward layers run packed (inside
    # "step: feed-forward" for the latter), so this row overlaps that one
    ("step: prepacked products", "seq2seq.runtime.packed", "PackedLinear.forward"),
)


@contextlib.contextmanager
def labelled_phases() -> Iterator[list[str]]:
    """Wraps the functions of PROFILE_LABELS in ``record_function``; yields the phases."""
    import importlib

    undo, phases = [], []
    for label, module_name, attribute in PROFILE_LABELS:
        owner = importlib.import_module(module_name)
        *path, name = attribute.split(".")
        for part in path:
            owner = getattr(owner, part, None)
        original = getattr(owner, name, None) if owner is not None else None
        if original is None:
            continue

        def wrapped(*a, _f=original, _label=label, **kw):
            with record_function(_label):
                return _f(*a, **kw)

        setattr(owner, name, wrapped)
        undo.append((owner, name, original))
        if label not in phases:
            phases.append(label)
    try:
        yield phases
    finally:
        for owner, name, original in reversed(undo):
            setattr(owner, name, original)


#: --profile's time by kind: aten and oneDNN operators (by name) in groups; the rest of the
#: wall-clock time is Python and dispatch (the search's loop, module calls, argument checks).
OP_KINDS = (
    (
        "matrix products",
        ("aten::addmm", "aten::mm", "aten::bmm", "aten::baddbmm", "mkldnn::_linear_pointwise"),
    ),
    ("attention kernel", ("aten::_scaled_dot_product_flash_attention_for_cpu",)),
    ("log_softmax, logsumexp and top-k", ("aten::_log_softmax", "aten::logsumexp", "aten::topk")),
    (
        "copies (cat, index_select, copy_)",
        ("aten::cat", "aten::index_select", "aten::copy_", "aten::clone", "aten::index"),
    ),
)


def time_by_kind(averages, wall: float) -> str:
    """Markdown rows: operator self time by OP_KINDS, other operators, and the remainder."""
    ops = [e for e in averages if e.key.startswith(("aten::", "mkldnn::"))]
    lines = ["| kind | ms | share of wall time |", "|---|---|---|"]
    used = 0.0
    for kind, names in OP_KINDS:
        ms = sum(e.self_cpu_time_total for e in ops if e.key in names) / 1e3
        used += ms
        lines.append(f"| {kind} | {ms:.0f} | {ms / (wall * 1e3):.1%} |")
    other = sum(e.self_cpu_time_total for e in ops) / 1e3 - used
    rest = wall * 1e3 - used - other
    lines.append(
        f"| other operators (element-wise, layer norm, masks) | {other:.0f} | "
        f"{other / (wall * 1e3):.1%} |"
    )
    lines.append(
        f"| outside operators: Python, dispatch, profiler | {rest:.0f} | "
        f"{rest / (wall * 1e3):.1%} |"
    )
    return "\n".join(lines) + "\n\n"


def profile_beam(run, lines: list[str], args: argparse.Namespace) -> int:
    """--profile: beam 5 at --batch (default 64) under torch.profiler, the search's parts and
    the decoder step's parts labelled (see PROFILE_LABELS), operators' time by kind."""
    from torch.profiler import ProfilerActivity, profile

    from seq2seq.fileio import write_atomic
    from seq2seq.profiling import phase_table

    batch = args.batch or 64
    translator = make_translator(run, beam=5, batch_size=batch, precision=args.precision)
    list(translator.translate(lines[:batch]))  # warm-up
    start = time.perf_counter()
    list(translator.translate(lines))
    plain = time.perf_counter() - start
    with labelled_phases() as labels, profile(activities=[ProfilerActivity.CPU]) as prof:
        start = time.perf_counter()
        list(translator.translate(lines))
        wall = time.perf_counter() - start
    averages = prof.key_averages()
    phases = ("encode", "decoder step", "reorder state", *labels)
    table = (
        f"unprofiled: {plain:.2f} s, {len(lines) / plain:.1f} sentences/s (beam 5, batch "
        f"{batch}, precision {args.precision})\n"
        + phase_table(averages, phases, wall)
        + time_by_kind(averages, wall)
        + averages.table(sort_by="self_cpu_time_total", row_limit=30)
    )
    out = Path(args.profile)
    write_atomic(table + "\n", out.with_name(out.name + ".txt"), parents=True)
    prof.export_chrome_trace(str(out.with_name(out.name + ".trace.json")))
    print(table)
    print(f"written: {out}.txt, {out}.trace.json")
    return 0


def side_by_side(args: argparse.Namespace) -> int:
    """``--ctranslate2``: this toolkit against CTranslate2 (scripts/bench_ctranslate2.py)."""
    import bench_ctranslate2

    from seq2seq.checkpoint import find_checkpoint, load_checkpoint
    from seq2seq.config import config_from_dict

    state = load_checkpoint(find_checkpoint(args.run), map_location="meta")
    config = config_from_dict(state["config"])
    src = find_test_file(args.data, config.data.src_lang)
    ref = find_test_file(args.data, config.data.tgt_lang)
    args.threads, args.batch = args.threads or 2, args.batch or 32
    if args.length_penalty is not None:
        config.decode.length_penalty = args.length_penalty
    if args.stopping is not None:
        config.decode.stopping = args.stopping
    return bench_ctranslate2.main(args.run, src, ref, config, args)


def print_step_costs(times: list[float], *, batch: int, as_json: bool) -> None:
    """The per-step decoding times, as JSON or as means over tenths of the steps."""
    if as_json:
        print(json.dumps({"step_ms": [1000 * t for t in times]}))
        return
    window = max(1, len(times) // 10)
    print(f"cost per output token (batch {batch}, greedy, EOS suppressed):")
    for i in range(0, len(times), window):
        chunk = times[i : i + window]
        first, last, mean = i + 1, min(i + window, len(times)), sum(chunk) / len(chunk)
        print(f"  steps {first:>3}-{last:<3}  {1000 * mean:7.2f} ms/step")


if __name__ == "__main__":
    raise SystemExit(main())
