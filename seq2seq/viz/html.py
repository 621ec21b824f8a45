"""A self-contained HTML page to browse attention matrices.

The page holds its data in a `<script type="application/json">` block and builds every
element with `textContent`, so text from the input (which may contain markup) is shown
literally and never parsed. Nothing is loaded from elsewhere: CSS and JS are inline, and a
Content-Security-Policy forbids any network access and any script but the page's own.
The page of `seq2seq serve` is built by the same functions with the same viewer script
(`render_html`, `VIEWER_BODY`, `sentence_payload`), and fetches its data from its server.
"""

from __future__ import annotations

import base64
import hashlib
import html
import json
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from seq2seq.fileio import write_atomic
from seq2seq.viz.common import PlotError, output_format
from seq2seq.viz.example import SLOT_TITLES, SLOTS, AttentionExample, as_example
from seq2seq.viz.viewer_assets import CSS, JS
from seq2seq.viz.words import SPECIAL_PIECES, WORD_START

_DIGITS = 5  # decimals kept for each weight in the page
_AXIS_NAMES = {
    "cross": ("target", "source"),
    "encoder_self": ("source", "source"),
    "decoder_self": ("target", "target input"),
}


def write_attention_html(
    items: Sequence[AttentionExample | Mapping[str, Any]],
    out_path: str | os.PathLike[str],
    title: str = "Attention",
    *,
    slot: str | None = None,
    layer: int | str = -1,
    head: int | str = "mean",
) -> Path:
    """Write one HTML page showing the attention of every sentence in `items`.

    items: AttentionExample objects, or mappings {"src": [...], "tgt": [...],
        "weights": {slot: [L, H, Tq, Tk]}, "title": optional str}; cross is tgt x src,
        encoder_self src x src, decoder_self tgt x decoder inputs.
    The page has controls for the sentence, the slot, the layer (or the mean over layers) and
    the head (or the mean over heads); hovering a cell shows its weight. `slot`, `layer` and
    `head` choose what is shown first (layer/head: an index, negative from the end, or "mean").
    """
    output_format(out_path, (".html",))
    examples = [as_example(item) for item in items]
    if not examples:
        raise PlotError("write_attention_html: no sentences to show")
    initial = {
        "slot": slot,
        "layer": _initial_choice(layer, "layer"),
        "head": _initial_choice(head, "head"),
    }
    sentences = [sentence_payload(e, i) for i, e in enumerate(examples)]
    payload = {"sentences": sentences, "initial": initial}
    if slot is not None and not any(slot in s["slots"] for s in payload["sentences"]):
        raise PlotError(f"slot {slot!r} is in none of the sentences")
    return write_atomic(render_page(payload, title), out_path, parents=True)


def render_page(payload: Mapping[str, Any], title: str) -> str:
    """The HTML text of the page for a JSON-serialisable `payload`."""
    data = f'<script type="application/json" id="attention-data">{script_json(payload)}</script>'
    return render_html(title, f"{VIEWER_BODY}\n{data}", script=JS, style=CSS)


def render_html(
    title: str, body: str, *, script: str, style: str, connect_self: bool = False
) -> str:
    """A self-contained HTML document: `body` (trusted markup) under an <h1> of `title`, one
    inline `style` and one inline `script`. Its Content-Security-Policy allows exactly these
    two (by hash) and no network access, except requests to its own origin when
    `connect_self` (the page of `seq2seq serve`)."""
    policy = content_security_policy(script, style, connect_self=connect_self)
    return "\n".join(
        [
            "<!DOCTYPE html>",
            '<html lang="en">',
            "<head>",
            '<meta charset="utf-8">',
            f'<meta http-equiv="Content-Security-Policy" content="{html.escape(policy)}">',
            '<meta name="viewport" content="width=device-width, initial-scale=1">',
            f"<title>{html.escape(title)}</title>",
            f"<style>{style}</style>",
            "</head>",
            "<body>",
            f"<h1>{html.escape(title)}</h1>",
            body,
            f"<script>{script}</script>",
            "</body>",
            "</html>",
            "",
        ]
    )


def content_security_policy(script: str, style: str, *, connect_self: bool = False) -> str:
    """The policy of a page whose only script and style are `script` and `style`."""
    connect = "connect-src 'self'; " if connect_self else ""
    return (
        f"default-src 'none'; script-src {_csp_hash(script)}; style-src {_csp_hash(style)}; "
        f"{connect}img-src data:; base-uri 'none'; form-action 'none'"
    )


def script_json(obj: Any) -> str:
    """JSON that is safe inside a <script> element: "<", ">" and "&" become \\u escapes.

    This covers "</script>" and "<!--" (so nothing can end or confuse the block); the
    escapes are ordinary JSON, so JSON.parse returns the original strings.
    """
    text = json.dumps(obj, ensure_ascii=False, allow_nan=False, separators=(",", ":"))
    for char, escape in (
        ("<", "\\u003c"),
        (">", "\\u003e"),
        ("&", "\\u0026"),
        ("\u2028", "\\u2028"),
        ("\u2029", "\\u2029"),
    ):
        text = text.replace(char, escape)
    return text


def sentence_payload(
    example: AttentionExample, index: int = 0, *, words: bool = False
) -> dict[str, Any]:
    """One sentence of the viewer's payload: title, src_text, tgt_text and, for each slot,
    its title, row and column labels and axis names, and weights [L][H][Tq][Tk] (rounded).

    words: add "word_slots", the same with pieces merged into words (`AttentionExample.to_words`),
    which the viewer offers beside the pieces.
    """
    out = {
        "title": example.title or f"sentence {index}",
        "src_text": _detokenize(example.src_pieces),
        "tgt_text": _detokenize(example.tgt_pieces),
        "slots": _slots(example),
    }
    if words:
        out["word_slots"] = _slots(example.to_words())
    return out


def _slots(example: AttentionExample) -> dict[str, Any]:
    slots = {}
    for name in [s for s in SLOTS if s in example.weights] + [
        s for s in example.weights if s not in SLOTS
    ]:
        array = example.matrices(name)  # [L, H, Tq, Tk], checked against the labels
        rows, cols = example.labels(name)
        rows_name, cols_name = _AXIS_NAMES[name]
        slots[name] = {
            "title": SLOT_TITLES[name],
            "rows": rows,
            "cols": cols,
            "rows_name": rows_name,
            "cols_name": cols_name,
            "weights": np.round(array, _DIGITS).tolist(),
        }
    return slots


def _detokenize(pieces: Sequence[str]) -> str:
    pieces = [p for p in pieces if p not in SPECIAL_PIECES]
    if any(WORD_START in p for p in pieces):
        return "".join(pieces).replace(WORD_START, " ").strip()
    return " ".join(pieces)


def _initial_choice(value: int | str, name: str) -> str:
    if value == "mean":
        return "mean"
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    raise PlotError(f"{name}: expected an integer index or 'mean', got {value!r}")


def _csp_hash(text: str) -> str:
    digest = base64.b64encode(hashlib.sha256(text.encode("utf-8")).digest()).decode("ascii")
    return f"'sha256-{digest}'"


#: The viewer's controls, text and matrix (the ids `VIEWER_JS` draws into).
VIEWER_BODY = """\
<div id="viewer">
<div class="controls" id="controls">
  <label id="sentence-control">Sentence <select id="sentence"></select></label>
  <label id="units-control">Units <select id="units"></select></label>
  <label>Slot <select id="slot"></select></label>
  <label>Layer <select id="layer"></select></label>
  <label>Head <select id="head"></select></label>
  <label><input type="checkbox" id="values"> show values</label>
</div>
<dl class="pair">
  <dt>sentence</dt><dd id="sentence-title"></dd>
  <dt>source</dt><dd id="src-text"></dd>
  <dt>target</dt><dd id="tgt-text"></dd>
</dl>
<p id="hover">Hover over a cell to see its weight.</p>
<div id="matrix"></div>
<div class="legend"><span>0</span><span id="legend-bar"></span><span id="legend-max"></span></div>
<noscript>This page needs JavaScript to draw the matrices.</noscript>
</div>"""
