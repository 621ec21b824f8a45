"""`seq2seq compare`: two tiny variants end to end, the report's numbers against the runs' own
files and `seq2seq evaluate`, skipping finished variants, resuming an interrupted one, errors."""

from __future__ import annotations

import importlib.util
import json
import re
import statistics
from pathlib import Path

import pytest
import yaml

from seq2seq.checkpoint import load_checkpoint, save_checkpoint
from seq2seq.cli import main
from seq2seq.config import load_config
from seq2seq.experiments.report import COLUMNS, table_row
from seq2seq.experiments.runner import read_segments, valid_times
from seq2seq.viz.common import PlotError
from seq2seq.viz.panels import plot_bleu_vs_time

_spec = importlib.util.spec_from_file_location(
    "run_factory", Path(__file__).parent / "training" / "run_factory.py"
)
run_factory = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(run_factory)

SETTINGS = [
    "train.max_steps=4",
    "train.validate_every=2",
    "train.log_every=1",
    "train.num_alignment_plots=0",
    "decode.max_len_ratio=1",
    "decode.max_len_offset=2",
]
PNG = b"\x89PNG\r\n\x1a\n"


def _sets(items: list[str]) -> list[str]:
    return [word for item in items for word in ("--set", item)]


@pytest.fixture(scope="module")
def workspace(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny corpus (6 test sentences) and two configs: tiny_tf.yaml and tiny_lstm.yaml."""
    root = tmp_path_factory.mktemp("compare")
    data = run_factory.write_tiny_corpus(root / "data", n_valid=6)
    for name, arch in (("tiny_tf", "transformer"), ("tiny_lstm", "rnn")):
        (root / f"{name}.yaml").write_text(yaml.safe_dump(run_factory.tiny_config_dict(data, arch)))
    return root


@pytest.fixture(scope="module")
def compared(workspace: Path) -> Path:
    out = workspace / "out"
    argv = [
        "compare",
        str(workspace / "tiny_tf.yaml"),
        str(workspace / "tiny_lstm.yaml"),
        "--max-time",
        "5m",
        "--out",
        str(out),
        *_sets(SETTINGS),
        "--beam",
        "1",
    ]
    assert main(argv) == 0
    return out


def _table(report: str) -> list[dict[str, str]]:
    lines = [line for line in report.splitlines() if line.startswith("|")]
    header = [c.strip() for c in lines[0].strip("|").split("|")]
    assert set(lines[1].replace("|", "")) == {"-"}
    return [
        dict(zip(header, (c.strip() for c in line.strip("|").split("|")), strict=True))
        for line in lines[2:]
    ]


def _records(run_dir: Path) -> list[dict]:
    return [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]


def test_report_numbers_match_the_runs(
    compared: Path, workspace: Path, capsys: pytest.CaptureFixture
) -> None:
    report = (compared / "report.md").read_text(encoding="utf-8")
    rows = _table(report)
    assert [r["variant"] for r in rows] == ["tiny_tf", "tiny_lstm"]
    assert rows[0]["model"].startswith("transformer: enc-self scaled_dot/2h")
    assert rows[1]["model"] == "rnn (bahdanau): cross additive"
    for row in rows:
        run_dir = compared / "runs" / row["variant"]
        records = _records(run_dir)
        assert int(row["steps"]) == load_checkpoint(run_dir / "last.pt")["step"] == 4
        valid = [r["bleu"] for r in records if r["split"] == "valid"]
        assert row["valid BLEU (best)"] == f"{max(valid):.2f}"
        speeds = [r["tgt_tok_per_s"] for r in records if r["split"] == "train"]
        assert len(speeds) == 4 and row["tgt tok/s"] == f"{statistics.median(speeds):,.0f}"
        logged = re.search(r"model: \w+, ([\d,]+) parameters", (run_dir / "train.log").read_text())
        assert row["parameters"] == logged.group(1)
        capsys.readouterr()
        assert (
            main(
                [
                    "evaluate",
                    str(run_dir),
                    "--src",
                    str(workspace / "data" / "test.en"),
                    "--ref",
                    str(workspace / "data" / "test.de"),
                    "--beam",
                    "1",
                    "--json",
                ]
            )
            == 0
        )
        scores = json.loads(capsys.readouterr().out)
        assert row["test BLEU"] == f"{scores['bleu']:.2f}"
        assert row["test BLEU (lc)"] == f"{scores['bleu_lowercase']:.2f}"
        assert row["test chrF"] == f"{scores['chrf']:.2f}"
        for key in ("bleu_signature", "bleu_lowercase_signature", "chrf_signature"):
            assert f"`{scores[key]}`" in report
        peak = float(row["peak RSS"].removesuffix(" MiB").replace(",", ""))
        assert 20 < peak < 16_000
        assert row["peak GPU"] == "-"  # trained on the CPU
        assert re.fullmatch(r"(\d+m)?\d+s", row["train time"])
    assert "seq2seq compare " in report and "--max-time 5m" in report
    assert "--set train.max_steps=4" in report and "VmHWM" in report


def test_results_json_and_figures(compared: Path) -> None:
    results = json.loads((compared / "results.json").read_text())
    assert [v["variant"] for v in results["variants"]] == ["tiny_tf", "tiny_lstm"]
    assert (
        results["alignment_sentence"]
        == (compared.parent / "data" / "test.en").read_text().splitlines()[0]
    )
    for variant in results["variants"]:
        run_dir = Path(variant["run_dir"])
        assert variant["memory_source"] == "VmHWM" and variant["peak_rss_kib"] > 0
        assert variant["stop_reason"] == "max_steps=4 reached"
        valid = [r for r in _records(run_dir) if r["split"] == "valid"]
        curve = variant["valid_curve"]
        assert [p["step"] for p in curve] == [2, 4]
        assert [p["seconds"] for p in curve] == [r["elapsed"] for r in valid]
        assert 0 < curve[0]["seconds"] < curve[1]["seconds"] < variant["train_wall_seconds"]
        assert (run_dir / "compare_result.json").is_file()
        (segment,) = variant["segments"]
        assert segment["peak_gpu_mib"] is None and variant["peak_gpu_mib"] is None
        assert variant["device"] == "cpu"  # evaluated where it trained (train.device: cpu)
        assert segment["max_time"] == "5m" and not segment["resumed"]
        assert segment["exit_code"] == 0 and segment["start_step"] == 0
    import matplotlib.image

    for name in ("bleu_vs_time.png", "alignments.png"):
        assert (compared / name).read_bytes()[:8] == PNG
    height, width, _ = matplotlib.image.imread(compared / "alignments.png").shape
    assert width > height  # two panels side by side


def test_rerun_skips_finished_variants(compared: Path, workspace: Path) -> None:
    runs = compared / "runs"
    before = {p: p.stat().st_mtime_ns for p in runs.glob("*/*.pt")}
    segments = {d.name: read_segments(d) for d in runs.iterdir()}
    argv = [
        "compare",
        str(workspace / "tiny_tf.yaml"),
        str(workspace / "tiny_lstm.yaml"),
        "--max-time",
        "5m",
        "--out",
        str(compared),
        *_sets(SETTINGS),
        "--beam",
        "1",
        "--sentence",
        "She has two apples.",
    ]
    assert main(argv) == 0
    assert {p: p.stat().st_mtime_ns for p in runs.glob("*/*.pt")} == before
    assert {d.name: read_segments(d) for d in runs.iterdir()} == segments
    assert "She has two apples." in (compared / "report.md").read_text()
    # the same directory with another budget would mix numbers: refused, nothing retrained
    argv[argv.index("5m")] = "6m"
    assert main(argv) == 2
    assert {p: p.stat().st_mtime_ns for p in runs.glob("*/*.pt")} == before


@pytest.mark.parametrize("legacy", [False, True], ids=["train_seconds", "older-checkpoint"])
def test_interrupted_variant_is_resumed_with_the_budget_left(workspace: Path, legacy: bool) -> None:
    from seq2seq.training.trainer import train

    out = workspace / f"resumed-{legacy}"
    config = workspace / "tiny_tf.yaml"
    common = [*SETTINGS, "train.max_time=5m", "train.quiet=true"]
    # the state an interruption after the checkpoint at step 2 leaves behind
    train(load_config(config, [*common, "train.max_steps=2"]), out / "runs" / "tiny_tf")
    if legacy:  # a checkpoint written before train_seconds existed
        last = out / "runs" / "tiny_tf" / "last.pt"
        checkpoint = load_checkpoint(last)
        del checkpoint["train_seconds"]
        save_checkpoint(checkpoint, last)
    assert (
        main(
            [
                "compare",
                str(config),
                "--max-time",
                "5m",
                "--out",
                str(out),
                *_sets(SETTINGS),
                "--beam",
                "1",
            ]
        )
        == 0
    )
    run_dir = out / "runs" / "tiny_tf"
    (segment,) = read_segments(run_dir)
    assert segment["resumed"] and segment["start_step"] == 2 and segment["exit_code"] == 0
    assert load_checkpoint(run_dir / "last.pt")["step"] == 4
    records = _records(run_dir)
    valid = [r for r in records if r["split"] == "valid"]
    assert [r["step"] for r in valid] == [2, 4]
    if legacy:  # the resumed trainer's clock starts at 0: it gets the budget left
        assert segment["max_time"].endswith("s")
        left = float(segment["max_time"][:-1])
        assert left == pytest.approx(300 - valid[0]["elapsed"], abs=1e-3)
    else:  # the whole budget: the trainer counts it on from the checkpoint's training time
        seconds = load_checkpoint(run_dir / "last.pt")["train_seconds"]
        assert segment["max_time"] == "300.000s"
        assert 0 < seconds < valid[0]["elapsed"] + valid[1]["elapsed"]
    curve = json.loads((out / "results.json").read_text())["variants"][0]["valid_curve"]
    # the resumed process's clock starts again at 0: the time before the resume is added
    assert curve[1]["seconds"] == pytest.approx(valid[0]["elapsed"] + valid[1]["elapsed"])


def test_valid_times_add_the_time_before_each_resume() -> None:
    records = [
        {"split": "valid", "step": 2, "elapsed": 10.0, "bleu": 1.0},
        {"split": "train", "step": 3},
        {"split": "valid", "step": 4, "elapsed": 20.0, "bleu": 2.0},
        {"split": "valid", "step": 6, "elapsed": 5.0, "bleu": 3.0},  # resumed at 4
        {"split": "valid", "step": 8, "elapsed": 30.0, "bleu": 4.0},
        {"split": "valid", "step": 10, "elapsed": 2.0, "bleu": 5.0},
    ]  # resumed at 8
    segments = [
        {"resumed": False, "start_step": 0},
        {"resumed": True, "start_step": 4},
        {"resumed": True, "start_step": 8},
    ]
    assert valid_times(records, segments) == [
        (2, 10.0, 1.0),
        (4, 20.0, 2.0),
        (6, 25.0, 3.0),
        (8, 50.0, 4.0),
        (10, 52.0, 5.0),
    ]
    assert valid_times(records[:3], []) == [(2, 10.0, 1.0), (4, 20.0, 2.0)]


def test_bad_arguments_are_refused_before_training(
    workspace: Path, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    config = str(workspace / "tiny_tf.yaml")
    copy = tmp_path / "tiny_tf.yaml"
    copy.write_text((workspace / "tiny_tf.yaml").read_text())
    no_test = tmp_path / "no_test.yaml"
    cfg = yaml.safe_load(copy.read_text())
    del cfg["data"]["test"]
    no_test.write_text(yaml.safe_dump(cfg))
    no_data = tmp_path / "no_data.yaml"
    cfg = yaml.safe_load(copy.read_text())
    cfg["data"]["valid"]["tgt"] = str(tmp_path / "missing.de")
    no_data.write_text(yaml.safe_dump(cfg))
    out = ["--out", str(tmp_path / "out")]
    cases = [
        ([str(tmp_path / "nope.yaml"), "--max-time", "1m"], "nope.yaml"),
        ([config, str(copy), "--max-time", "1m"], "same name 'tiny_tf'"),
        ([config, "--max-time", "soon"], "--max-time: invalid duration 'soon'"),
        ([config, "--max-time", "0s"], "--max-time"),
        ([config, "--max-time", "1m", "--set", "train.max_time=2m"], "--max-time"),
        ([config, "--max-time", "1m", "--set", "model.atention.cross.type=dot"], "atention"),
        ([str(no_test), "--max-time", "1m"], "data.test is not set"),
        ([config, str(no_data), "--max-time", "1m"], "data.valid.tgt file"),
    ]
    for args, words in cases:
        assert main(["compare", *args, *out]) == 2, args
        err = capsys.readouterr().err
        assert err.startswith("seq2seq compare: error:") and words in err, err
    assert not (tmp_path / "out").exists()


def test_bleu_plot_rejects_ragged_curves(tmp_path: Path) -> None:
    with pytest.raises(PlotError, match="2 times but 1 BLEU"):
        plot_bleu_vs_time({"a": ([1.0, 2.0], [3.0])}, tmp_path / "x.png")
    with pytest.raises(PlotError, match="suffix"):
        plot_bleu_vs_time({"a": ([1.0], [3.0])}, tmp_path / "x.txt")


def test_describe_model_names_arch_style_and_slots(workspace: Path) -> None:
    from seq2seq.experiments import describe_model

    cfg = load_config(
        workspace / "tiny_lstm.yaml",
        ["model.rnn.style=luong", "model.attention.cross.type=general"],
    )
    assert describe_model(cfg.model) == "rnn (luong, input feeding): cross general"
    cfg = load_config(workspace / "tiny_tf.yaml", ["model.attention.cross={type: additive}"])
    assert describe_model(cfg.model) == (
        "transformer: enc-self scaled_dot/2h, dec-self scaled_dot/2h, cross additive"
    )


def test_report_row_shows_peak_gpu_memory() -> None:
    result = {
        "variant": "v",
        "model": "m",
        "parameters": 1234,
        "steps": 5,
        "tgt_tok_per_s_median": 100.0,
        "valid_bleu_best": 1.0,
        "scores": {k: {"score": 1.0} for k in ("bleu", "bleu_lowercase", "chrf")},
        "peak_rss_kib": 2048 * 1024,
        "peak_gpu_mib": 1536.4,
        "train_wall_seconds": 65,
    }
    row = dict(zip(COLUMNS, table_row(result), strict=True))
    assert (row["peak RSS"], row["peak GPU"]) == ("2,048 MiB", "1,536 MiB")
    del result["peak_gpu_mib"]  # a result stored by an older comparison
    assert dict(zip(COLUMNS, table_row(result), strict=True))["peak GPU"] == "-"
