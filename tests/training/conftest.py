"""Fixtures of the training tests: a tiny generated corpus and a tiny trained run."""

from __future__ import annotations

from pathlib import Path

import pytest
from run_factory import make_tiny_run, write_tiny_corpus


@pytest.fixture(scope="session")
def tiny_corpus(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Read-only: the demo corpus in miniature (train 240, valid 12, test 12, with .align)."""
    return write_tiny_corpus(tmp_path_factory.mktemp("tiny_corpus"))


@pytest.fixture(scope="session")
def tiny_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Read-only: a run directory trained for 6 steps on the tiny corpus."""
    return make_tiny_run(tmp_path_factory.mktemp("tiny_run"))
