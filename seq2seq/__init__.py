"""seq2seq: an attention-centred neural machine translation toolkit in PyTorch.

    from seq2seq import Translator
    translator = Translator.load("runs/demo")
    translator.translate(["I have twenty-three cats."])

`Translator`, `Translation` and `PairScore` are imported on first use, so that
``import seq2seq`` (and the command line's start) stays fast.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

__all__ = ["PairScore", "Translation", "Translator", "__version__"]

if TYPE_CHECKING:
    from seq2seq.inference.translate import PairScore, Translation, Translator


def __getattr__(name: str) -> Any:
    if name in ("PairScore", "Translation", "Translator"):
        from seq2seq.inference import translate

        return getattr(translate, name)
    raise AttributeError(f"module 'seq2seq' has no attribute {name!r}")
