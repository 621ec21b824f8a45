"""Learning-rate schedules at hand-computed steps."""

from __future__ import annotations

import math
from types import SimpleNamespace

import pytest
import torch

from seq2seq.training.schedules import build_schedule, constant_factor, noam_factor


def _cfg(**kw):
    base = dict(
        schedule="noam",
        lr=1e-3,
        warmup_steps=4,
        plateau_factor=0.5,
        plateau_patience=1,
        early_stopping_metric="bleu",
    )
    base.update(kw)
    return SimpleNamespace(**base)


def _optimizer():
    return torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=123.0)


def test_noam_values() -> None:
    # linear warmup to the peak at step 4, then peak * sqrt(4 / step)
    schedule = build_schedule(_optimizer(), _cfg())
    expected = {1: 0.25e-3, 2: 0.5e-3, 4: 1e-3, 16: 0.5e-3, 64: 0.25e-3, 100: 0.2e-3}
    for step, lr in expected.items():
        assert schedule.set_step(step) == pytest.approx(lr)
    assert schedule.optimizer.param_groups[0]["lr"] == pytest.approx(0.2e-3)
    assert noam_factor(9, 1) == pytest.approx(1 / 3)
    # peak is the largest value
    assert max(noam_factor(s, 10) for s in range(1, 100)) == pytest.approx(1.0)


def test_constant_values() -> None:
    schedule = build_schedule(_optimizer(), _cfg(schedule="constant"))
    assert [schedule.set_step(s) for s in (1, 2, 4, 5, 1000)] == pytest.approx(
        [0.25e-3, 0.5e-3, 1e-3, 1e-3, 1e-3]
    )
    assert constant_factor(1, 0) == 1.0


def test_plateau_halves_after_patience_and_round_trips() -> None:
    schedule = build_schedule(_optimizer(), _cfg(schedule="plateau", warmup_steps=0))
    assert schedule.set_step(10) == pytest.approx(1e-3)
    schedule.validated(10.0)  # best
    schedule.validated(9.0)  # 1 bad <= patience 1: unchanged
    assert schedule.set_step(11) == pytest.approx(1e-3)
    schedule.validated(9.5)  # 2 bad > patience: halve
    assert schedule.set_step(12) == pytest.approx(0.5e-3)
    schedule.validated(11.0)  # improvement resets the count
    schedule.validated(10.0)
    assert schedule.set_step(13) == pytest.approx(0.5e-3)
    state = schedule.state_dict()
    other = build_schedule(_optimizer(), _cfg(schedule="plateau", warmup_steps=0))
    other.load_state_dict(state)
    assert other.set_step(13) == pytest.approx(0.5e-3)
    other.validated(10.5)  # continues the saved count of bad validations
    assert other.set_step(14) == pytest.approx(0.25e-3)


def test_plateau_on_loss_prefers_lower_values() -> None:
    schedule = build_schedule(
        _optimizer(),
        _cfg(schedule="plateau", warmup_steps=0, early_stopping_metric="loss", plateau_patience=0),
    )
    schedule.validated(3.0)
    schedule.validated(2.0)
    assert schedule.set_step(1) == pytest.approx(1e-3)
    schedule.validated(2.5)
    assert schedule.set_step(2) == pytest.approx(0.5e-3)


def test_unknown_schedule() -> None:
    with pytest.raises(ValueError, match=r"train\.schedule: unknown schedule 'cosine'"):
        build_schedule(_optimizer(), _cfg(schedule="cosine"))
    assert math.isclose(noam_factor(0, 4), 0.25)  # step 0 is treated as step 1


def test_linear_values() -> None:
    # warmup 4: step / 4 up to step 4, times (1 - progress); zero at the end of the budget
    schedule = build_schedule(_optimizer(), _cfg(schedule="linear"))
    assert schedule.set_step(1, 0.0) == pytest.approx(0.25e-3)
    assert schedule.set_step(2, 0.5) == pytest.approx(1e-3 * 0.5 * 0.5)
    assert schedule.set_step(4, 0.1) == pytest.approx(0.9e-3)
    assert schedule.set_step(100, 0.75) == pytest.approx(0.25e-3)
    assert schedule.set_step(200, 1.0) == 0.0
    assert schedule.set_step(300, 1.5) == 0.0  # never negative
    assert schedule.optimizer.param_groups[0]["lr"] == 0.0
    # no warmup: the straight line from the peak
    flat = build_schedule(_optimizer(), _cfg(schedule="linear", warmup_steps=0))
    assert flat.set_step(1, 0.0) == pytest.approx(1e-3)
    assert flat.set_step(7, 0.3) == pytest.approx(0.7e-3)


def test_progress_is_ignored_by_the_other_schedules() -> None:
    for name in ("noam", "constant", "plateau"):
        schedule = build_schedule(_optimizer(), _cfg(schedule=name))
        assert schedule.lr_at(10, 0.9) == schedule.lr_at(10, 0.0) == schedule.lr_at(10)
