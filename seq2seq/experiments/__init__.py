"""Experiments over several configs: ``seq2seq compare`` (train, evaluate, report)."""

from seq2seq.experiments.pipeline import run_comparison
from seq2seq.experiments.variants import (
    CompareError,
    Comparison,
    Variant,
    describe_model,
    plan_variants,
)

__all__ = [
    "CompareError",
    "Comparison",
    "Variant",
    "describe_model",
    "plan_variants",
    "run_comparison",
]
