"""`seq2seq average`: checkpoint averaging against hand-computed means, loading, errors."""

from __future__ import annotations

import importlib.util
import shutil
from pathlib import Path

import pytest
import torch

from seq2seq.checkpoint import (
    SUBWORD_KEY,
    CheckpointError,
    load_checkpoint,
    load_run,
    save_checkpoint,
    subword_files,
)
from seq2seq.cli import main
from seq2seq.data import Tokenizer, read_lines
from seq2seq.training.averaging import (
    AveragingError,
    average_state_dicts,
    last_step_checkpoints,
    write_averaged_checkpoint,
)

_spec = importlib.util.spec_from_file_location(
    "run_factory", Path(__file__).parent / "training" / "run_factory.py"
)
run_factory = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(run_factory)


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny run that kept step_2.pt, step_4.pt and step_6.pt."""
    return run_factory.make_tiny_run(
        tmp_path_factory.mktemp("average"),
        overrides=[
            "train.keep_checkpoints=3",
            "train.validate_every=2",
            "train.num_alignment_plots=0",
        ],
    )


def _model(path: Path) -> dict[str, torch.Tensor]:
    return load_checkpoint(path)["model"]


def test_mean_of_two_checkpoints_is_the_hand_computed_mean(run_dir: Path, tmp_path: Path):
    a, b = _model(run_dir / "step_4.pt"), _model(run_dir / "step_6.pt")
    out = tmp_path / "avg.pt"
    assert (
        main(["average", str(run_dir / "step_4.pt"), str(run_dir / "step_6.pt"), "--out", str(out)])
        == 0
    )
    averaged = load_checkpoint(out)
    assert set(averaged["model"]) == set(a)
    differs = 0
    for name, tensor in averaged["model"].items():
        expected = ((a[name].double() + b[name].double()) / 2).float()
        assert tensor.dtype == a[name].dtype and tensor.shape == a[name].shape
        torch.testing.assert_close(tensor, expected, rtol=0, atol=1e-7)
        differs += not torch.equal(a[name], b[name])
    assert differs > 0  # the two checkpoints really are different points
    assert "optimizer" not in averaged and averaged["step"] == 6
    assert averaged["averaged"]["steps"] == [4, 6]
    assert averaged["config"] == load_checkpoint(run_dir / "step_6.pt")["config"]


def test_average_of_a_checkpoint_with_itself_is_itself(run_dir: Path, tmp_path: Path):
    step = run_dir / "step_6.pt"
    write_averaged_checkpoint([step, step], tmp_path / "same.pt")
    original, averaged = _model(step), _model(tmp_path / "same.pt")
    assert all(torch.equal(averaged[k], original[k]) for k in original)


def test_last_n_of_a_run_dir_and_translating_with_the_result(
    run_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture
):
    assert [p.name for p in last_step_checkpoints(run_dir, 2)] == ["step_4.pt", "step_6.pt"]
    out = tmp_path / "elsewhere" / "avg3.pt"
    assert main(["average", str(run_dir), "--last", "3", "--out", str(out)]) == 0
    models = [_model(run_dir / f"step_{s}.pt") for s in (2, 4, 6)]
    averaged = _model(out)
    for name, tensor in averaged.items():
        expected = (sum(m[name].double() for m in models) / 3).float()
        torch.testing.assert_close(tensor, expected, rtol=0, atol=1e-7)
    # the subword model is written beside a checkpoint averaged into another directory
    assert (out.parent / "spm.model").read_bytes() == (run_dir / "spm.model").read_bytes()
    run = load_run(out)
    assert run.checkpoint_path == out
    data_dir = run_dir.parent / "data"
    src, ref = tmp_path / "two.en", tmp_path / "two.de"  # untrained models decode slowly
    src.write_text("".join(line + "\n" for line in read_lines(data_dir / "test.en")[:2]))
    ref.write_text("".join(line + "\n" for line in read_lines(data_dir / "test.de")[:2]))
    decode = ["--beam", "1", "--max-len-ratio", "1", "--max-len-offset", "2"]
    hyp = tmp_path / "test.hyp"
    capsys.readouterr()
    assert main(["translate", str(out), "--input", str(src), "--output", str(hyp), *decode]) == 0
    assert len(read_lines(hyp)) == 2
    assert (
        main(["evaluate", str(out), "--src", str(src), "--ref", str(ref), "--json", *decode]) == 0
    )
    assert '"bleu"' in capsys.readouterr().out


def _variant(run_dir: Path, tmp_path: Path, name: str, change) -> Path:
    checkpoint = load_checkpoint(run_dir / "step_6.pt")
    change(checkpoint)
    path = tmp_path / name
    save_checkpoint(checkpoint, path)
    shutil.copy(run_dir / "spm.model", tmp_path / "spm.model")
    return path


def test_mismatched_checkpoints_are_refused_by_name(run_dir: Path, tmp_path: Path):
    good = run_dir / "step_4.pt"

    def other_width(c):
        c["config"]["model"]["embed_dim"] = 64

    def other_shape(c):
        c["model"][next(iter(c["model"]))] = torch.zeros(3, 3)

    def missing_name(c):
        del c["model"][next(iter(c["model"]))]

    cases = [
        (other_width, "config", "model.embed_dim"),
        (other_shape, "shape", "(3, 3)"),
        (missing_name, "parameter names", "lacks"),
    ]
    for n, (change, *words) in enumerate(cases):
        bad = _variant(run_dir, tmp_path, f"bad{n}.pt", change)
        with pytest.raises(AveragingError) as info:
            write_averaged_checkpoint([good, bad], tmp_path / "out.pt")
        message = str(info.value)
        assert str(bad) in message and all(w in message for w in words), message
    assert not (tmp_path / "out.pt").exists()


def _other_subword_model(run_dir: Path, other: Path) -> Path:
    """Trains another subword model (vocabulary 90) on the run's data into ``other``."""
    data = run_dir.parent / "data"
    cfg = run_factory.tiny_config(data, overrides=["data.tokenizer.vocab_size=90"])
    Tokenizer.train(
        cfg.data.tokenizer, read_lines(data / "train.en"), read_lines(data / "train.de"), other
    )
    return other


def test_checkpoint_with_another_subword_model_is_refused(run_dir: Path, tmp_path: Path):
    other = _other_subword_model(run_dir, tmp_path / "other")
    shutil.copy(run_dir / "step_6.pt", other / "step_6.pt")
    with pytest.raises(AveragingError, match="subword model"):
        write_averaged_checkpoint([run_dir / "step_4.pt", other / "step_6.pt"], tmp_path / "out.pt")


def test_bad_arguments(run_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture):
    assert main(["average", str(run_dir), "--last", "4", "--out", str(tmp_path / "a.pt")]) == 2
    err = capsys.readouterr().err
    assert "holds 3 step checkpoint(s)" in err and "train.keep_checkpoints=4" in err
    assert main(["average", str(run_dir), "--out", str(tmp_path / "a.pt")]) == 2
    assert "--last N" in capsys.readouterr().err
    for name in ("last.pt", "step_9.pt"):
        assert main(["average", str(run_dir / "step_4.pt"), "--out", str(tmp_path / name)]) == 2
        assert "choose another name" in capsys.readouterr().err
    copy = tmp_path / "copy.pt"
    shutil.copy(run_dir / "step_6.pt", copy)
    assert main(["average", str(run_dir / "step_4.pt"), str(copy), "--out", str(copy)]) == 2
    assert "one of the checkpoints" in capsys.readouterr().err
    assert main(["average", str(tmp_path / "missing.pt"), "--out", str(tmp_path / "a.pt")]) == 2
    assert "missing.pt" in capsys.readouterr().err
    with pytest.raises(AveragingError, match="no checkpoints"):
        average_state_dicts([], [])


def test_averaged_checkpoint_records_and_checks_the_subword_model(run_dir: Path, tmp_path: Path):
    out = tmp_path / "avg" / "averaged.pt"
    write_averaged_checkpoint([run_dir / "step_4.pt", run_dir / "step_6.pt"], out)
    assert load_checkpoint(out)[SUBWORD_KEY] == subword_files(run_dir)
    assert subword_files(run_dir) == load_checkpoint(run_dir / "step_6.pt")[SUBWORD_KEY]
    other = _other_subword_model(run_dir, tmp_path / "other")
    shutil.copy(out, other / "averaged.pt")
    with pytest.raises(CheckpointError, match="does not belong to the subword model"):
        load_run(other / "averaged.pt")
    shutil.copy(run_dir / "step_6.pt", other / "step_6.pt")
    with pytest.raises(CheckpointError, match="does not belong to the subword model"):
        write_averaged_checkpoint([other / "step_6.pt"], tmp_path / "out.pt")
