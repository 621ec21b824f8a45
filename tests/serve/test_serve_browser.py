"""The page of `seq2seq serve` in headless Chromium: type, translate, read the attention.

Needs headless Chromium (see tests/viz/chromium.py); skipped with a reason without it.
Set SEQ2SEQ_SERVE_SCREENSHOT to a .png path to keep a screenshot of the page.
"""

from __future__ import annotations

import os

import numpy as np
import pytest
from serve_helpers import SENTENCES, helper_module

_chromium = helper_module("viz/chromium.py")
needs_chromium, start_chromium = _chromium.needs_chromium, _chromium.start_chromium

pytestmark = needs_chromium


@pytest.fixture(scope="module")
def browser(tmp_path_factory):
    driver = start_chromium(tmp_path_factory.mktemp("chromium-profile"), window="1200,1000")
    yield driver
    driver.quit()


def _translate_on_page(driver, text: str, count: int) -> None:
    """Type `text`, press the button and wait for the page's `count`-th translation."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    box = driver.find_element(By.ID, "source")
    box.clear()
    box.send_keys(text)
    driver.find_element(By.ID, "translate").click()
    WebDriverWait(driver, 30).until(
        lambda d: (
            d.execute_script("return document.body.dataset.translated") == str(count)
            or d.find_element(By.ID, "error").text
        )
    )
    assert driver.find_element(By.ID, "error").text == ""


def _matrix(driver):
    """(weights [Tq, Tk] of the cells, column labels, row labels) as displayed."""
    state = driver.execute_script(
        """
        const q = (s) => Array.from(document.querySelectorAll(s));
        return {
          rows: q("#matrix tbody tr").map((tr) =>
            Array.from(tr.querySelectorAll("td")).map((td) => Number(td.dataset.weight))),
          cols: q("#matrix th.col").map((th) => th.textContent),
          rowLabels: q("#matrix th.row").map((th) => th.textContent),
        };
        """
    )
    return np.array(state["rows"]), state["cols"], state["rowLabels"]


def _select(driver, control: str, value: str) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import Select

    Select(driver.find_element(By.ID, control)).select_by_value(value)


def test_page_translates_and_shows_the_attention(browser, server_process, translator):
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.common.by import By

    server = server_process()
    browser.get(server.url)
    assert not browser.find_element(By.ID, "viewer").is_displayed()  # nothing to show yet
    # the sentence whose (weak model's) translation is longest: something to read
    text = max(SENTENCES, key=lambda s: len(translator.translate([s])[0].text))
    expected = translator.translate([text])[0]
    reference = translator.attention(text)  # same search through the Python API
    _translate_on_page(browser, text, 1)
    assert browser.find_element(By.ID, "output").text == expected.text.strip()
    assert browser.find_element(By.ID, "viewer").is_displayed()

    # default: cross-attention, last layer, mean of heads; rows = output, columns = input
    tok = translator.tokenizer
    weights, cols, rows = _matrix(browser)
    assert cols == [*tok.src_pieces(tok.encode_src(text)), "</s>"]
    assert rows[: len(expected.pieces)] == expected.pieces
    assert rows[len(expected.pieces) :] in ([], ["</s>"])
    cross = reference.matrices("cross")  # [1 layer, 2 heads, Tq, Tk]
    np.testing.assert_allclose(weights, cross[-1].mean(0), atol=1e-4)
    _select(browser, "head", "1")
    np.testing.assert_allclose(_matrix(browser)[0], cross[-1, 1], atol=1e-4)

    # hovering a cell shows its weight
    cell = browser.find_elements(By.CSS_SELECTOR, "#matrix tbody tr")[0]
    cell = cell.find_elements(By.TAG_NAME, "td")[1]
    ActionChains(browser).move_to_element(cell).perform()
    assert browser.find_element(By.ID, "hover").text == (
        f"{rows[0]} \u2192 {cols[1]}: {cross[-1, 1, 0, 1]:.4f}"
    )

    # words instead of pieces: the source words are the whitespace-separated ones
    _select(browser, "units", "words")
    weights, cols, _ = _matrix(browser)
    assert cols == [*text.split(), "</s>"]
    np.testing.assert_allclose(weights.sum(1), 1.0, atol=1e-3)  # a row still sums to 1

    # encoder self-attention: source x source, in pieces again
    _select(browser, "units", "pieces")
    _select(browser, "slot", "encoder_self")
    weights, cols, rows = _matrix(browser)
    assert cols == rows == [*tok.src_pieces(tok.encode_src(text)), "</s>"]
    np.testing.assert_allclose(weights, reference.matrices("encoder_self")[-1, 1], atol=1e-4)

    # a second sentence replaces the first; the choices stay
    other = SENTENCES[2] if text != SENTENCES[2] else SENTENCES[0]
    _translate_on_page(browser, other, 2)
    assert browser.find_element(By.ID, "output").text == translator.translate([other])[0].text
    _, cols, _ = _matrix(browser)
    assert cols == [*tok.src_pieces(tok.encode_src(other)), "</s>"]
    assert browser.find_element(By.ID, "slot").get_attribute("value") == "encoder_self"

    # an over-long text: the server's error is shown, the page keeps working
    _select(browser, "slot", "cross")
    browser.execute_script("document.getElementById('source').removeAttribute('maxlength')")
    browser.find_element(By.ID, "source").clear()
    browser.find_element(By.ID, "source").send_keys("a" * 1001)
    browser.find_element(By.ID, "translate").click()
    error = browser.find_element(By.ID, "error")
    WebDriverWait = pytest.importorskip("selenium.webdriver.support.ui").WebDriverWait
    WebDriverWait(browser, 10).until(lambda d: error.text)
    assert error.text == "text: 1001 characters, more than the limit of 1000"
    errors = [e for e in browser.get_log("browser") if e["level"] == "SEVERE"]
    assert all("413" in e["message"] for e in errors), errors  # no script error, no CSP block
    if os.environ.get("SEQ2SEQ_SERVE_SCREENSHOT"):
        _translate_on_page(browser, text, 3)
        browser.save_screenshot(os.environ["SEQ2SEQ_SERVE_SCREENSHOT"])
