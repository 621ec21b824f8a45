"""Export of trained runs to other inference engines.

    from seq2seq.export import export_ctranslate2
    export_ctranslate2("runs/demo", "exported/demo-ct2", quantization="int8")

Only CTranslate2 for now (:mod:`seq2seq.export.ctranslate2`); its package is an optional extra
(``pip install -e '.[export]'``) imported only when an export runs.
"""

from __future__ import annotations

from .ctranslate2 import (
    QUANTIZATIONS,
    ExportError,
    check_exportable,
    check_output_dir,
    export_ctranslate2,
)

__all__ = [
    "QUANTIZATIONS",
    "ExportError",
    "check_exportable",
    "check_output_dir",
    "export_ctranslate2",
]
