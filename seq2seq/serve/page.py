"""The page `seq2seq serve` shows at ``/``: type a sentence, see its translation and attention.

It is the viewer of `seq2seq plot --out x.html` (same markup, CSS and `AttentionViewer`
script), plus a form whose script posts the text to ``v1/translate`` with ``"attention":
true`` and hands the attention of the translation to ``AttentionViewer.show``. As in the static
page, everything is inline and built with `textContent`; the Content-Security-Policy allows
the page's own script and style and requests to its own server, nothing else.
"""

from __future__ import annotations

import html
from collections.abc import Mapping
from typing import Any

from seq2seq.viz.html import VIEWER_BODY, content_security_policy, render_html
from seq2seq.viz.viewer_assets import CSS, VIEWER_JS

SERVE_CSS = """
form.translate { display: grid; gap: 0.5em; max-width: 48em; margin-bottom: 1em; }
form.translate textarea { font: inherit; padding: 0.4em; min-height: 3.5em; }
form.translate .row { display: flex; gap: 1em; align-items: center; }
form.translate button { font: inherit; padding: 0.3em 1.2em; }
p.model { color: #666; margin-top: -0.4em; }
#output { font-size: 1.15em; margin: 0.2em 0 0.8em; max-width: 48em; }
#error { color: #b00020; }
#status { color: #666; }
"""

SERVE_JS = r"""
(function () {
  const byId = (id) => document.getElementById(id);
  const form = byId("translate-form");
  const button = byId("translate");

  async function translate(text) {
    const response = await fetch("v1/translate", {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify({ text: text, attention: true }),
    });
    let body = null;
    try { body = await response.json(); } catch (e) { body = null; }
    if (!response.ok) {
      throw new Error(body && body.error ? body.error : "HTTP " + response.status);
    }
    return body.translations[0];
  }

  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const text = byId("source").value;
    byId("error").textContent = "";
    if (!text.trim()) { byId("error").textContent = "Type a sentence first."; return; }
    button.disabled = true;
    byId("status").textContent = "Translating\u2026";
    try {
      const found = await translate(text);
      byId("output").textContent = found.text;
      byId("score").textContent = "score " + found.score.toFixed(3);
      if (found.attention) {
        AttentionViewer.show({ sentences: [found.attention],
          initial: { slot: "cross", layer: "-1", head: "mean" } });
      }
      byId("status").textContent = "";
      document.body.dataset.translated = String(Number(document.body.dataset.translated || 0) + 1);
    } catch (error) {
      byId("status").textContent = "";
      byId("error").textContent = String(error.message || error);
    } finally {
      button.disabled = false;
    }
  });
  byId("source").addEventListener("keydown", (event) => {
    if (event.key === "Enter" && (event.ctrlKey || event.metaKey)) form.requestSubmit();
  });
})();
"""

_FORM = """\
<form class="translate" id="translate-form">
  <textarea id="source" name="text" rows="3" maxlength="{max_chars}"
    placeholder="Type a sentence in {src}, then Translate (or Ctrl+Enter)"></textarea>
  <div class="row"><button type="submit" id="translate">Translate</button>
    <span id="status"></span><span id="error" role="alert"></span></div>
</form>
<p id="output" aria-live="polite"></p>
<p id="score" class="model"></p>"""


def render_serve_page(description: Mapping[str, Any]) -> str:
    """The page for the model of `description` (`Translator.describe()` with the limits)."""
    src = description.get("src_lang") or "the source language"
    tgt = description.get("tgt_lang") or "the target language"
    title = f"Translate {src} \u2192 {tgt}"
    summary = (
        f"{description.get('arch')} model, {description.get('parameters', 0):,} parameters, "
        f"beam {description.get('beam')}; hover over the matrix to see the weights"
    )
    form = _FORM.format(
        max_chars=int(description["limits"]["max_chars"]), src=html.escape(str(src))
    )
    body = "\n".join(
        [
            f'<p class="model">{html.escape(summary)}</p>',
            form,
            VIEWER_BODY.replace('<div id="viewer">', '<div id="viewer" hidden>', 1),
        ]
    )
    return render_html(
        title, body, script=VIEWER_JS + SERVE_JS, style=CSS + SERVE_CSS, connect_self=True
    )


def page_policy() -> str:
    """The Content-Security-Policy of the page (also sent as a header)."""
    return content_security_policy(VIEWER_JS + SERVE_JS, CSS + SERVE_CSS, connect_self=True)
