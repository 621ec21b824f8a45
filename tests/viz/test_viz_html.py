"""The HTML viewer page, read as text (the browser test drives it in Chromium)."""

from __future__ import annotations

import base64
import hashlib
import json
import re
from html.parser import HTMLParser

import numpy as np
import pytest
from viz_cases import EVIL, EVIL_IMG, viewer_examples

from seq2seq.viz import write_attention_html
from seq2seq.viz.html import script_json


class _Collector(HTMLParser):
    """Start tags and the content of each <script>, as a browser's tokenizer sees them."""

    def __init__(self):
        super().__init__()
        self.tags: list[tuple[str, dict]] = []
        self.scripts: list[str] = []
        self._in_script = False

    def handle_starttag(self, tag, attrs):
        self.tags.append((tag, dict(attrs)))
        if tag == "script":
            self._in_script = True
            self.scripts.append("")

    def handle_endtag(self, tag):
        if tag == "script":
            self._in_script = False

    def handle_data(self, data):
        if self._in_script:
            self.scripts[-1] += data


def _parse(page: str) -> _Collector:
    collector = _Collector()
    collector.feed(page)
    return collector


def test_page_is_self_contained_and_markup_stays_data(tmp_path):
    examples = viewer_examples()
    out = write_attention_html(examples, tmp_path / "a.html", title=f"runs {EVIL}")
    page = out.read_text(encoding="utf-8")
    parsed = _parse(page)
    tags = [tag for tag, _ in parsed.tags]
    assert tags.count("script") == 2 and "img" not in tags and "link" not in tags
    assert not any("src" in attrs or "href" in attrs for _, attrs in parsed.tags)
    assert not re.search(r"https?:|//cdn|@import|url\(", page)  # nothing loaded from elsewhere
    assert EVIL not in page and "<img" not in page  # escaped in the title, \u003c in the JSON
    assert page.count("&lt;script&gt;alert(1)&lt;/script&gt;") == 2  # <title> and <h1>
    data_attrs = next(attrs for tag, attrs in parsed.tags if tag == "script")
    assert data_attrs == {"type": "application/json", "id": "attention-data"}
    payload = json.loads(parsed.scripts[0])
    assert [s["title"] for s in payload["sentences"]] == [e.title for e in examples]
    second = payload["sentences"][1]["slots"]["cross"]
    assert second["cols"] == examples[1].src_pieces
    assert payload["sentences"][1]["src_text"] == f"{EVIL} &amp; {EVIL_IMG}"
    cross = np.array(payload["sentences"][0]["slots"]["cross"]["weights"])
    np.testing.assert_allclose(cross, examples[0].weights["cross"], atol=5e-6)
    assert list(payload["sentences"][0]["slots"]) == ["cross", "encoder_self"]


def test_csp_allows_only_the_page_script_and_style(tmp_path):
    examples = viewer_examples()
    page = write_attention_html(examples, tmp_path / "a.html").read_text()
    parsed = _parse(page)
    meta = next(a for t, a in parsed.tags if t == "meta" and a.get("http-equiv"))
    policy = meta["content"]
    assert "default-src 'none'" in policy
    js = parsed.scripts[1]
    digest = base64.b64encode(hashlib.sha256(js.encode()).digest()).decode()
    assert f"script-src 'sha256-{digest}'" in policy
    assert "unsafe-inline" not in policy


def test_script_json_round_trips_and_cannot_close_the_block():
    tricky = {"a": "</script><!-- <script>", "b": "&lt; \u2028 \u2029 ▁x", "c": [0.5]}
    text = script_json(tricky)
    assert "<" not in text and ">" not in text and "&" not in text
    assert json.loads(text) == tricky


def test_initial_choices_and_errors(tmp_path):
    examples = viewer_examples()
    page = write_attention_html(
        examples, tmp_path / "a.html", slot="encoder_self", layer=0, head=2
    ).read_text()
    payload = json.loads(_parse(page).scripts[0])
    assert payload["initial"] == {"slot": "encoder_self", "layer": "0", "head": "2"}
    with pytest.raises(ValueError, match=r"suffix '\.png', expected one of \.html"):
        write_attention_html(examples, tmp_path / "a.png")
    with pytest.raises(ValueError, match="slot 'decoder_self' is in none of the sentences"):
        write_attention_html(examples, tmp_path / "a.html", slot="decoder_self")
    with pytest.raises(ValueError, match="layer: expected an integer index or 'mean'"):
        write_attention_html(examples, tmp_path / "a.html", layer="all")
    with pytest.raises(ValueError, match="no sentences"):
        write_attention_html([], tmp_path / "a.html")
    bad = {"src": ["a"], "tgt": ["x", "y"], "weights": {"cross": np.ones((1, 1, 3, 1))}}
    with pytest.raises(ValueError, match="cross row labels: got 2 labels"):
        write_attention_html([bad], tmp_path / "a.html")
