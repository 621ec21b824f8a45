"""GPU benchmark in one table: training speed per precision, SDPA backends, peak memory, decoding.

    python scripts/bench_gpu.py                         # about two minutes on one GPU
    python scripts/bench_gpu.py --steps 400 --json      # longer runs, one JSON object per row
    python scripts/bench_gpu.py --device cpu --precisions fp32 --steps 10   # dry run, no GPU

Without a CUDA device (and without --device cpu) it prints "bench_gpu: no CUDA device: nothing
checked" and exits with status 0: nothing failed, nothing was measured.

What each column is:

* precision: fp32 (float32 with TF32 matrix products unless --set train.tf32=false), bf16
  (only on GPUs with native bf16: compute capability 8.0 or later), fp16 (with the gradient
  scaler), each a ``seq2seq train`` of CONFIG (default configs/multi30k/transformer.yaml) for
  --steps steps in a process of its own, through ``python -m seq2seq.measure``.
* train tgt tok/s: median of ``tgt_tok_per_s`` over the ``train`` records of the run's
  metrics.jsonl (one every --log-every steps), the first one left out (kernel selection,
  allocator growth).
* peak GPU MiB: the CUDA caching allocator's peak of allocated memory in that training process
  (``torch.cuda.max_memory_allocated``), validation included.
* SDPA (no mask / causal / padding): the kernel ``F.scaled_dot_product_attention`` picks, with
  every backend enabled, for the calls the model makes: encoder or cross attention on a batch
  without padding (no mask), decoder self-attention (``is_causal``, no mask) and attention over
  a padded source (a boolean key mask), in the precision's dtype on [64, 4, 32, 64] tensors
  (64 sentences, 4 heads of 64 as in the config), through the project's own kernel
  (``seq2seq.attention.kernel.fused_attention``). Read from the profiler's operator names
  (``aten::_scaled_dot_product_flash_attention`` and so on). Below the table: the backends
  that run each case when forced alone with ``torch.nn.attention.sdpa_kernel``.
* greedy / beam 5 sent/s: the test set (first --decode-sentences sentences) translated by the
  model that run trained, through ``Translator`` at batch 64 in that precision, after one
  warm-up batch; fp16 has no decoding precision (``Translator`` takes fp32 and bf16): "-".

Data: Multi30k from data/multi30k or ../shared/data/multi30k when its files are there, else the
generated demo corpus (``seq2seq.demo``, 30,000 training pairs, a 1,000-piece vocabulary)
in a temporary directory; nothing is downloaded. The subword model and the prepared data are
made once (``seq2seq prepare``) and reused by every training run.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path

import torch
from torch.nn.attention import SDPBackend, sdpa_kernel

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from seq2seq.attention.kernel import fused_attention  # noqa: E402
from seq2seq.config import load_config  # noqa: E402
from seq2seq.runtime.device import cpu_has_native_bf16, cuda_has_native_bf16  # noqa: E402

MULTI30K = (ROOT / "data" / "multi30k", ROOT.parent / "shared" / "data" / "multi30k")
MULTI30K_FILES = {
    "train": "train.{}.gz",
    "valid": "val.{}.gz",
    "test": "test_2016_flickr.{}.gz",
}
DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}
SDPA_OPS = {
    "aten::_scaled_dot_product_flash_attention": "flash",
    "aten::_scaled_dot_product_flash_attention_for_cpu": "flash",
    "aten::_scaled_dot_product_efficient_attention": "efficient",
    "aten::_scaled_dot_product_cudnn_attention": "cudnn",
    "aten::_scaled_dot_product_attention_math": "math",
}
BACKENDS = {
    "flash": SDPBackend.FLASH_ATTENTION,
    "efficient": SDPBackend.EFFICIENT_ATTENTION,
    "cudnn": SDPBackend.CUDNN_ATTENTION,
    "math": SDPBackend.MATH,
}
CASES = ("no mask", "causal", "padding")


def data_overrides(tmp: Path) -> tuple[list[str], str]:
    """--set items pointing the config at Multi30k, or at a freshly generated demo corpus."""
    for folder in MULTI30K:
        paths = {
            split: [folder / pattern.format(lang) for lang in ("en", "de")]
            for split, pattern in MULTI30K_FILES.items()
        }
        if all(p.is_file() for pair in paths.values() for p in pair):
            items = [
                f"data.{split}.{side}={path}"
                for split, pair in paths.items()
                for side, path in zip(("src", "tgt"), pair, strict=True)
            ]
            return items, f"Multi30k ({folder})"
    from seq2seq.demo.corpus import generate_demo

    folder = tmp / "demo"
    generate_demo(folder, seed=1)
    items = [
        f"data.{split}.{side}={folder / f'{split}.{lang}'}"
        for split in ("train", "valid", "test")
        for side, lang in (("src", "en"), ("tgt", "de"))
    ]
    return [*items, "data.tokenizer.vocab_size=1000"], f"demo corpus (generated in {folder})"


def sets(items: list[str]) -> list[str]:
    return [word for item in items for word in ("--set", item)]


def run_seq2seq(args: list[str], stats: Path | None = None) -> dict:
    """``seq2seq ARGS`` in a new process (through the measuring wrapper when ``stats``)."""
    command = [sys.executable, "-m", "seq2seq", *args]
    if stats is not None:
        command = [sys.executable, "-m", "seq2seq.measure", str(stats), *args]
    proc = subprocess.run(command, capture_output=True, text=True, cwd=ROOT, check=False)
    if proc.returncode != 0:
        raise SystemExit(
            f"bench_gpu: {' '.join(command[1:])} failed ({proc.returncode}):\n{proc.stderr[-3000:]}"
        )
    return json.loads(stats.read_text(encoding="utf-8")) if stats is not None else {}


def train_speed(run_dir: Path) -> float | None:
    """Median target tokens/s of the run's train records, the first (warm-up) left out."""
    lines = (run_dir / "metrics.jsonl").read_text(encoding="utf-8").splitlines()
    speeds = [r["tgt_tok_per_s"] for r in map(json.loads, lines) if r.get("split") == "train"]
    speeds = speeds[1:] or speeds
    return statistics.median(speeds) if speeds else None


def sdpa_choice(dtype: torch.dtype, device: torch.device, case: str) -> tuple[str, list[str]]:
    """(backend SDPA picks with all enabled, backends that run when forced) for one case."""
    shape = (64, 4, 32, 64)  # [sentences, heads, tokens, head size]
    q, k, v = (torch.randn(shape, device=device, dtype=dtype) for _ in range(3))
    mask = None
    if case == "padding":
        mask = torch.ones(shape[0], 1, 1, shape[2], dtype=torch.bool, device=device)
        mask[1::2, ..., 25:] = False  # every other sentence padded

    def call() -> torch.Tensor:
        return fused_attention(q, k, v, mask, 0.0, shape[-1] ** -0.5, causal=case == "causal")

    usable = []
    with warnings.catch_warnings():  # SDPA warns why each refused kernel cannot run
        warnings.simplefilter("ignore")
        for name, backend in BACKENDS.items():
            try:
                with sdpa_kernel([backend]):
                    call()
                usable.append(name)
            except RuntimeError:
                pass
        activities = [torch.profiler.ProfilerActivity.CPU]
        with quiet_stderr(), torch.profiler.profile(activities=activities) as prof:
            call()
    chosen = [SDPA_OPS[e.name] for e in prof.events() if e.name in SDPA_OPS]
    return (chosen[0] if chosen else "?"), usable


@contextlib.contextmanager
def quiet_stderr():
    """Hides file descriptor 2, where the profiler's C++ side logs its start and stop."""
    sys.stderr.flush()
    saved = os.dup(2)
    with open(os.devnull, "w") as null:
        os.dup2(null.fileno(), 2)
        try:
            yield
        finally:
            os.dup2(saved, 2)
            os.close(saved)


def decode_speed(run_dir: Path, device: torch.device, precision: str, lines: list[str]) -> dict:
    """Sentences/s of greedy and beam 5 over ``lines`` at batch 64."""
    from seq2seq.checkpoint import load_run
    from seq2seq.inference.translate import Translator

    run = load_run(run_dir, device=device)
    speeds = {}
    for name, beam in (("greedy", 1), ("beam5", 5)):
        translator = Translator.from_run(run, beam=beam, batch_size=64, precision=precision)
        list(translator.translate(lines[:64]))  # warm-up
        start = time.perf_counter()
        list(translator.translate(lines))  # the strings are on the host: the work is done
        speeds[name] = len(lines) / (time.perf_counter() - start)
    return speeds


def precisions_to_run(device: torch.device, asked: list[str] | None) -> list[str]:
    native = cuda_has_native_bf16() if device.type == "cuda" else cpu_has_native_bf16()
    default = ["fp32", "bf16", "fp16"] if native else ["fp32", "fp16"]
    return asked or default


def cell(value: float | None, fmt: str) -> str:
    return "-" if value is None else format(value, fmt)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--config", default=str(ROOT / "configs/multi30k/transformer.yaml"))
    parser.add_argument("--steps", type=int, default=200, help="training steps per precision")
    parser.add_argument("--log-every", type=int, default=20, help="steps per train record")
    parser.add_argument("--max-time", default="60s", help="cap of each training run")
    parser.add_argument("--decode-sentences", type=int, default=1000)
    parser.add_argument("--precisions", nargs="+", choices=tuple(DTYPES))
    parser.add_argument("--device", choices=("cuda", "cpu"), default="cuda")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="K=V")
    parser.add_argument("--json", action="store_true", help="print JSON lines instead")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.device == "cuda" and not torch.cuda.is_available():
        print("bench_gpu: no CUDA device: nothing checked")
        return 0
    device = torch.device(args.device)
    precisions = precisions_to_run(device, args.precisions)
    with tempfile.TemporaryDirectory(prefix="bench-gpu-") as tmp_name:
        tmp = Path(tmp_name)
        data, data_name = data_overrides(tmp)
        run_dir = tmp / "run"
        common = [f"train.device={args.device}", *data, *args.overrides]
        tf32 = load_config(args.config, common).train.tf32 and device.type == "cuda"
        started = time.perf_counter()
        run_seq2seq(["prepare", args.config, "--run-dir", str(run_dir), "--quiet", *sets(common)])
        prepare_seconds = time.perf_counter() - started
        from seq2seq.data import read_lines

        test = next(item for item in data if item.startswith("data.test.src="))
        lines = [x for x in read_lines(test.split("=", 1)[1]) if x.strip()]
        lines = lines[: args.decode_sentences]
        rows = []
        for precision in precisions:
            settings = [
                f"train.precision={precision}",
                f"train.max_steps={args.steps}",
                f"train.max_time={args.max_time}",
                f"train.log_every={args.log_every}",
                f"train.validate_every={args.steps}",
                "train.valid_max_sentences=64",
                "train.num_alignment_plots=0",
                "train.keep_checkpoints=0",
            ]
            command = ["train", args.config, "--run-dir", str(run_dir), "--overwrite", "--quiet"]
            stats = run_seq2seq([*command, *sets([*common, *settings])], tmp / "stats.json")
            dtype = DTYPES[precision]
            sdpa = {case: sdpa_choice(dtype, device, case) for case in CASES}
            decode = (
                decode_speed(run_dir, device, precision, lines)
                if precision != "fp16"
                else {"greedy": None, "beam5": None}
            )
            rows.append(
                {
                    "precision": precision,
                    "train_tgt_tok_per_s": train_speed(run_dir),
                    "peak_gpu_mib": stats.get("peak_gpu_mib"),
                    "sdpa": {case: chosen for case, (chosen, _) in sdpa.items()},
                    "sdpa_usable": {case: usable for case, (_, usable) in sdpa.items()},
                    "greedy_sent_per_s": decode["greedy"],
                    "beam5_sent_per_s": decode["beam5"],
                }
            )
    if args.json:
        for row in rows:
            print(json.dumps(row))
        return 0
    print_table(rows, device, data_name, args, prepare_seconds, len(lines), tf32)
    return 0


def print_table(rows, device, data_name, args, prepare_seconds, sentences, tf32) -> None:
    if device.type == "cuda":
        major, minor = torch.cuda.get_device_capability(device)
        where = f"{torch.cuda.get_device_name(device)} (compute capability {major}.{minor})"
    else:
        where = "CPU (dry run)"
    print(
        f"{where}, torch {torch.__version__}, CUDA {torch.version.cuda}; {args.config} on "
        f"{data_name}; {args.steps} steps per precision (subword model and data prepared once "
        f"in {prepare_seconds:.0f} s); decoding {sentences} test sentences at batch 64\n"
    )
    header = (
        "| precision | train tgt tok/s | peak GPU MiB | SDPA (no mask / causal / padding) "
        "| greedy sent/s | beam 5 sent/s |"
    )
    print(header + "\n|---|---|---|---|---|---|")
    for r in rows:
        name = "fp32 (TF32)" if r["precision"] == "fp32" and tf32 else r["precision"]
        sdpa = " / ".join(r["sdpa"][case] for case in CASES)
        print(
            f"| {name} | {cell(r['train_tgt_tok_per_s'], ',.0f')} "
            f"| {cell(r['peak_gpu_mib'], ',.0f')} | {sdpa} "
            f"| {cell(r['greedy_sent_per_s'], ',.1f')} | {cell(r['beam5_sent_per_s'], ',.1f')} |"
        )
    print("\nSDPA backends that run when forced alone (sdpa_kernel):")
    for r in rows:
        usable = "; ".join(f"{case}: {', '.join(r['sdpa_usable'][case])}" for case in CASES)
        print(f"  {r['precision']}: {usable}")


if __name__ == "__main__":
    raise SystemExit(main())
