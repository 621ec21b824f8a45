"""The endpoints of `seq2seq serve` in process (Starlette's TestClient), against the Python API."""

from __future__ import annotations

import base64
import hashlib
import json
import re
import warnings

import numpy as np
import pytest
from serve_helpers import SENTENCES

from seq2seq.serve.app import Batching, create_app
from seq2seq.serve.schema import Limits

LIMITS = Limits(max_texts=4, max_chars=80, max_beam=4, max_body_bytes=4096)


@pytest.fixture(scope="module")
def client(translator):
    with warnings.catch_warnings():  # "Using httpx with starlette.testclient is deprecated"
        warnings.simplefilter("ignore")
        from starlette.testclient import TestClient

    app = create_app(translator, limits=LIMITS, batching=Batching(max_wait_ms=1))
    with TestClient(app) as client:
        yield client


def test_translations_equal_the_python_api(client, translator):
    texts = [*SENTENCES[:3], ""]
    response = client.post(
        "/v1/translate", json={"text": texts, "beam": 3, "n_best": 2, "alignments": True}
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert (body["beam"], body["n_best"]) == (3, 2)
    expected = translator.translate(texts, beam=3, n_best=2, alignments=True)
    assert len(body["translations"]) == len(texts)
    for got, want in zip(body["translations"], expected, strict=True):
        assert got["text"] == want.text
        assert got["pieces"] == want.pieces
        assert got["score"] == pytest.approx(want.score, abs=1e-5)
        assert got["log_prob"] == pytest.approx(want.log_prob, abs=1e-5)
        assert [(n["text"], pytest.approx(n["score"], abs=1e-5)) for n in got["nbest"]] == [
            (text, score) for text, score in want.nbest
        ]
        assert [tuple(link) for link in got["alignment"]] == want.alignment
        assert "attention" not in got
    assert body["translations"][3]["text"] == "" and body["translations"][3]["pieces"] == []


def test_one_string_and_the_default_search(client, translator):
    body = client.post("/v1/translate", json={"text": SENTENCES[0]}).json()
    (only,) = body["translations"]
    want = translator.translate([SENTENCES[0]])[0]  # the run's decode.beam (2)
    assert body["beam"] == translator.beam == 2 and body["n_best"] == 1
    assert only["text"] == want.text and "nbest" not in only and "alignment" not in only


def test_attention_in_the_viewers_shape(client, translator):
    text = SENTENCES[1]
    body = client.post("/v1/translate", json={"text": [text, ""], "attention": True}).json()
    found, empty = body["translations"]
    assert empty["attention"] is None
    payload = found["attention"]
    assert payload["title"] == text and payload["tgt_text"] == found["text"]
    cross = payload["slots"]["cross"]
    tok = translator.tokenizer
    src_pieces = [*tok.src_pieces(tok.encode_src(text)), "</s>"]
    assert cross["cols"] == src_pieces
    rows, pieces = cross["rows"], found["pieces"]
    assert rows[: len(pieces)] == pieces and rows[len(pieces) :] in ([], ["</s>"])
    reference = translator.attention(text)  # the same search, through the Python API
    np.testing.assert_allclose(cross["weights"], reference.matrices("cross"), atol=1e-4)
    assert set(payload["slots"]) == {"cross", "encoder_self", "decoder_self"}
    assert np.array(cross["weights"]).shape[:2] == (1, 2)  # 1 layer, 2 heads
    words = payload["word_slots"]["cross"]
    assert words["cols"] == [*text.split(), "</s>"]  # sentencepiece words are the spaced ones
    assert words["rows"][: len(found["text"].split())] == found["text"].split()
    np.testing.assert_allclose(np.array(words["weights"]).sum(-1), 1.0, atol=1e-3)


def test_model_health_and_unknown_routes(client, translator):
    model = client.get("/v1/model").json()
    assert (model["src_lang"], model["tgt_lang"], model["arch"]) == ("en", "de", "transformer")
    assert model["attention"]["cross"] == {"type": "scaled_dot", "heads": 2}
    assert model["parameters"] == sum(p.numel() for p in translator.model.parameters())
    assert model["limits"] == {
        "max_texts": 4,
        "max_chars": 80,
        "max_beam": 4,
        "max_body_bytes": 4096,
    }
    health = client.get("/health").json()
    assert health["status"] == "ok" and health["batches"] >= 0
    missing = client.get("/v1/nothing")
    assert missing.status_code == 404 and missing.json()["error"] == "no such page: /v1/nothing"
    wrong = client.get("/v1/translate")
    assert wrong.status_code == 405 and "GET" in wrong.json()["error"]


BAD_REQUESTS = [
    (b"{not json", 400, "body", "invalid JSON"),
    (b'{"text": "a", "beam": NaN}', 400, "body", "invalid JSON"),
    (b"\xff\xfe", 400, "body", "invalid JSON"),
    (b'["a"]', 400, "body", "expected a JSON object, got a list"),
    ({}, 422, "text", "text: required"),
    ({"text": 3}, 422, "text", "expected a string or a list of strings, got the number 3"),
    ({"text": None}, 422, "text", "got null"),
    ({"text": ["a", 5]}, 422, "text[1]", "text[1]: expected a string, got the number 5"),
    ({"text": ["a", ["b"]]}, 422, "text[1]", "got a list"),
    ({"text": []}, 422, "text", "text: the list is empty"),
    ({"text": "a", "model": "/etc/passwd"}, 422, "model", "model: unknown field"),
    ({"text": "a", "checkpoint": "x.pt"}, 422, "checkpoint", "unknown field"),
    ({"text": ["a"] * 5}, 413, "text", "5 texts, more than the limit of 4"),
    ({"text": "x" * 81}, 413, "text", "text: 81 characters, more than the limit of 80"),
    ({"text": ["a", "x" * 81]}, 413, "text[1]", "text[1]: 81 characters"),
    ({"text": "a", "beam": 0}, 422, "beam", "beam: got 0, expected an integer in 1..4"),
    ({"text": "a", "beam": 5}, 422, "beam", "beam: got 5, expected an integer in 1..4"),
    ({"text": "a", "beam": "2"}, 422, "beam", "expected an integer in 1..4, got a string"),
    ({"text": "a", "beam": 2.5}, 422, "beam", "got the number 2.5"),
    ({"text": "a", "beam": True}, 422, "beam", "got a boolean"),
    ({"text": "a", "beam": 2, "n_best": 3}, 422, "n_best", "n_best: got 3, expected at most"),
    ({"text": "a", "n_best": 0}, 422, "n_best", "n_best: got 0"),
    ({"text": "a", "attention": "yes"}, 422, "attention", "expected true or false"),
    ({"text": "a", "alignments": 1}, 422, "alignments", "expected true or false"),
    (json.dumps({"text": "a" * 5000}).encode(), 413, "body", "larger than the limit of 4096"),
]


@pytest.mark.parametrize(("body", "status", "field", "message"), BAD_REQUESTS)
def test_bad_requests_get_a_json_error_naming_the_field(client, body, status, field, message):
    if isinstance(body, bytes):
        response = client.post("/v1/translate", content=body)
    else:
        response = client.post("/v1/translate", json=body)
    assert response.status_code == status, response.text
    error = response.json()
    assert error["field"] == field and error["status"] == status
    assert message in error["error"]
    assert error["error"].startswith(field.split("[")[0])


def test_a_streamed_body_over_the_limit_is_refused(client):
    def chunks():  # no Content-Length: the server counts as it reads
        yield b'{"text": "'
        for _ in range(10):
            yield b"a" * 1000
        yield b'"}'

    response = client.post("/v1/translate", content=chunks())
    assert response.status_code == 413 and response.json()["field"] == "body"


def test_page_is_self_contained_and_allows_only_its_own_script(client):
    response = client.get("/")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/html")
    page = response.text
    policy = response.headers["content-security-policy"]
    assert f'content="{policy}"'.replace("'", "&#x27;") in page  # the header = the meta
    assert "default-src 'none'" in policy and "connect-src 'self'" in policy
    assert "unsafe-inline" not in policy
    scripts = re.findall(r"<script>(.*?)</script>", page, flags=re.S)
    assert len(scripts) == 1 and "AttentionViewer.show" in scripts[0]
    digest = base64.b64encode(hashlib.sha256(scripts[0].encode()).digest()).decode()
    assert f"script-src 'sha256-{digest}'" in policy
    assert not re.search(r"https?:|//cdn|@import|url\(", page)
    assert 'id="source"' in page and 'id="translate"' in page and 'id="matrix"' in page
