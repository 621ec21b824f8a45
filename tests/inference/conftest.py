"""Fixtures of the inference tests: the toy model of `toy_models.py`."""

from __future__ import annotations

import pytest
from toy_models import ToyModel, random_table


@pytest.fixture
def toy_model():
    """Factory: toy_model(table, **options) -> ToyModel."""
    return ToyModel


@pytest.fixture
def make_table():
    return random_table
