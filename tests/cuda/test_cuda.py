"""The CUDA path: attention kernels, training in every precision, decoding, two-GPU NCCL.

Every test is marked ``cuda`` and skipped where torch sees no CUDA device (tests/conftest.py).
Run them on a GPU machine with ``bash scripts/gpu_check.sh`` or ``python -m pytest -m cuda``.
"""

from __future__ import annotations

import importlib.util
import math
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import pytest
import torch
import yaml
from torch.nn.attention import SDPBackend, sdpa_kernel

from seq2seq.attention import build_attention, causal_mask
from seq2seq.checkpoint import load_checkpoint
from seq2seq.inference.search import beam_search, greedy_search
from seq2seq.runtime.device import cuda_has_native_bf16, peak_memory_mib, set_tf32
from seq2seq.vocab import PAD_ID

pytestmark = pytest.mark.cuda

TESTS = Path(__file__).resolve().parents[1]
CUDA = torch.device("cuda", 0)


def _load(path: Path) -> ModuleType:
    """A helper module of another test folder, loaded by path (as tests/test_compare.py does)."""
    spec = importlib.util.spec_from_file_location(path.stem, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[path.stem] = module
    spec.loader.exec_module(module)
    return module


run_factory = _load(TESTS / "training" / "run_factory.py")
models_util = _load(TESTS / "models" / "models_util.py")


HAS_CUDA = torch.cuda.is_available()  # without it, tests/conftest.py skips everything here
# Conditions below are False without CUDA, so that the skip reason shown is conftest's.
NO_NATIVE_BF16 = pytest.mark.skipif(
    HAS_CUDA and not cuda_has_native_bf16(), reason="this GPU has no native bf16"
)
NO_FLASH = pytest.mark.skipif(
    HAS_CUDA and torch.cuda.get_device_capability(CUDA) < (8, 0),
    reason="flash attention needs compute capability 8.0",
)
ONE_GPU = pytest.mark.skipif(HAS_CUDA and torch.cuda.device_count() < 2, reason="needs two GPUs")
HALF_DTYPES = [
    pytest.param(torch.float16, id="fp16"),
    pytest.param(torch.bfloat16, id="bf16", marks=NO_NATIVE_BF16),
]
PRECISIONS = ["fp32", pytest.param("bf16", marks=NO_NATIVE_BF16), "fp16"]


@pytest.fixture
def ieee_fp32() -> Iterator[None]:
    """float32 matrix products without TF32 during the test (CPU and GPU then agree closely)."""
    set_tf32(False)
    yield
    set_tf32(True)


# --- attention kernels ------------------------------------------------------------------------

FUSED_SPECS = [
    {"type": "scaled_dot", "heads": 4},
    {"type": "dot", "heads": 4},
    {"type": "general", "heads": 4},
    {"type": "scaled_dot"},
]
MASKS = ("none", "padding", "causal", "causal+padding")


@pytest.mark.parametrize("dtype", HALF_DTYPES)
@pytest.mark.parametrize("masking", MASKS)
@pytest.mark.parametrize("spec", FUSED_SPECS, ids=lambda s: f"{s['type']}-h{s.get('heads', 0)}")
def test_fused_equals_explicit_under_autocast(spec, masking, dtype):
    torch.manual_seed(0)
    dim, batch, length = 64, 3, 37
    module = build_attention(spec, dim, dim).to(CUDA).eval()
    x = torch.randn(batch, length, dim, device=CUDA)
    keys = torch.ones(batch, 1, length, dtype=torch.bool, device=CUDA)
    keys[1, 0, 30:] = False  # right padding, as batches have
    mask = keys if "padding" in masking else None
    causal = masking.startswith("causal")
    with torch.autocast("cuda", dtype=dtype):
        fused, _ = module(x, x, x, mask=mask, causal=causal)
        explicit, _ = module(x, x, x, mask=mask, causal=causal, need_weights=True)
    assert fused.dtype == explicit.dtype
    tol = 2e-2 if dtype == torch.float16 else 6e-2
    torch.testing.assert_close(fused.float(), explicit.float(), atol=tol, rtol=tol)
    # and both near the float64 computation on the CPU, with the mask written out
    full = None if mask is None else mask.cpu()
    if causal:
        full = causal_mask(length) if full is None else full & causal_mask(length)
    x64 = x.double().cpu()
    reference, _ = module.double().cpu()(x64, x64, x64, mask=full, need_weights=True)
    torch.testing.assert_close(fused.double().cpu(), reference, atol=tol, rtol=tol)


@NO_FLASH
@pytest.mark.parametrize("dtype", HALF_DTYPES)
def test_unpadded_transformer_runs_on_flash_attention_only(dtype):
    """Without padding every SDPA call of the model (encoder, causal decoder, cross) is flash
    eligible: no mask tensor reaches SDPA. A padded batch needs another kernel."""
    cfg = models_util.tiny_config("transformer", attention=("scaled_dot", 2), embed_dim=32)
    model = models_util.make_model(cfg, dtype=torch.float32).to(CUDA)
    src, tgt_in = (t.to(CUDA) for t in models_util.random_batch(batch=3, seed=1))
    unpadded_src, unpadded_tgt = src[:1], tgt_in[:1]  # row 0 of random_batch has no padding
    with torch.autocast("cuda", dtype=dtype):
        expected, _ = model(unpadded_src, unpadded_tgt)
        with sdpa_kernel([SDPBackend.FLASH_ATTENTION]):
            flash, _ = model(unpadded_src, unpadded_tgt)
            with pytest.raises(RuntimeError):  # the padding mask rules flash out
                model(src, tgt_in)
    torch.testing.assert_close(flash, expected, atol=1e-2, rtol=1e-2)


# --- training -----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return run_factory.write_tiny_corpus(tmp_path_factory.mktemp("cuda_corpus"))


def _train_records(run_dir: Path) -> list[dict]:
    lines = (run_dir / "metrics.jsonl").read_text(encoding="utf-8").splitlines()
    return [r for r in map(yaml.safe_load, lines) if r["split"] == "train"]


@pytest.mark.parametrize("arch", ["transformer", "rnn"])
@pytest.mark.parametrize("precision", PRECISIONS)
def test_training_step_in_each_precision(corpus, tmp_path, arch, precision):
    from seq2seq.training.trainer import train

    settings = [
        "train.device=cuda",
        f"train.precision={precision}",
        "train.max_steps=2",
        "train.log_every=1",
        "train.validate_every=2",
        "train.num_alignment_plots=0",
        "train.valid_max_sentences=2",
    ]
    torch.cuda.reset_peak_memory_stats(CUDA)
    train(run_factory.tiny_config(corpus, arch, settings), tmp_path / "run")
    records = _train_records(tmp_path / "run")
    assert [r["step"] for r in records] == [1, 2]
    assert all(math.isfinite(r["loss"]) for r in records)
    assert load_checkpoint(tmp_path / "run" / "last.pt")["step"] == 2
    assert peak_memory_mib(CUDA) > 0


# --- decoding -----------------------------------------------------------------------------------


@pytest.mark.usefixtures("ieee_fp32")
@pytest.mark.parametrize("arch", ["transformer", "rnn"])
def test_decoding_on_cuda_equals_the_cpu(arch):
    """Same float32 weights, same sentences: the same greedy and beam outputs on both devices."""
    cfg = models_util.tiny_config(arch, attention=("scaled_dot", 2))
    cpu_model = models_util.make_model(cfg, seed=3, dtype=torch.float32)
    src, _ = models_util.random_batch(batch=6, src_len=9, seed=2)
    assert (src == PAD_ID).any()
    for name, search in (
        ("greedy", lambda m, s: [[h] for h in greedy_search(m, s, max_len=12)]),
        ("beam", lambda m, s: beam_search(m, s, beam=4, n_best=2, max_len=12)),
    ):
        gpu_model = models_util.make_model(cfg, seed=3, dtype=torch.float32).to(CUDA)
        on_cpu, on_gpu = search(cpu_model, src), search(gpu_model, src.to(CUDA))
        for a, b in zip(on_cpu, on_gpu, strict=True):
            assert [h.tokens for h in a] == [h.tokens for h in b], name
            for h_cpu, h_gpu in zip(a, b, strict=True):
                assert h_gpu.log_prob == pytest.approx(h_cpu.log_prob, abs=1e-3), name


def test_translator_on_cuda_equals_the_cpu(corpus, tmp_path, ieee_fp32):
    """A trained tiny run: `Translator` greedy output on the GPU equals the CPU's."""
    from seq2seq.checkpoint import load_run
    from seq2seq.data import read_lines
    from seq2seq.inference.translate import Translator
    from seq2seq.training.trainer import train

    cfg = run_factory.tiny_config(corpus, "transformer", ["train.max_steps=40"])  # on the CPU
    train(cfg, tmp_path / "run")
    lines = read_lines(corpus / "test.en")
    outputs = {}
    for device in ("cpu", "cuda"):
        run = load_run(tmp_path / "run", device=device)
        translator = Translator.from_run(run, beam=1, precision="fp32")
        outputs[device] = [t.text for t in translator.translate(lines)]
    assert outputs["cuda"] == outputs["cpu"]


# --- two GPUs -----------------------------------------------------------------------------------


@ONE_GPU
def test_two_gpus_train_with_nccl(corpus, tmp_path):
    """torchrun on two GPUs (NCCL): a finite loss whose first value, computed before any update,
    equals that of one GPU on the same global batch (2 x 180 = 360 target tokens)."""
    settings = {
        "device": "cuda",
        "precision": "fp32",
        "tf32": False,
        "max_steps": 2,
        "validate_every": 2,
        "log_every": 1,
        "num_alignment_plots": 0,
        "valid_max_sentences": 2,
    }
    cfg = run_factory.tiny_config_dict(corpus)
    cfg["model"]["dropout"] = 0.0
    cfg["train"].update(settings, batch_tokens=180)  # per process
    config = tmp_path / "ddp.yaml"
    config.write_text(yaml.safe_dump(cfg), encoding="utf-8")
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2"]
    command += ["-m", "seq2seq", "train", str(config), "--run-dir", str(tmp_path / "ddp")]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.run(command, capture_output=True, text=True, env=env, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    checkpoint = load_checkpoint(tmp_path / "ddp" / "last.pt")
    assert checkpoint["step"] == 2 and checkpoint["rng"]["world_size"] == 2
    two = _train_records(tmp_path / "ddp")
    assert all(math.isfinite(r["loss"]) for r in two)

    from seq2seq.training.trainer import train

    overrides = [f"train.{k}={v}" for k, v in settings.items()]
    overrides += ["model.dropout=0.0", "train.batch_tokens=360"]
    train(run_factory.tiny_config(corpus, overrides=overrides), tmp_path / "one")
    one = _train_records(tmp_path / "one")
    assert two[0]["loss"] == pytest.approx(one[0]["loss"], rel=1e-4)
