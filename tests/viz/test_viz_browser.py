"""Open the HTML viewer in headless Chromium, switch controls and read what is displayed.

Needs the `chromium` and `chromium-driver` Debian packages and the `selenium` Python package
(dev extra); skipped with a reason when one of them is missing.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from chromium import needs_chromium, start_chromium
from viz_cases import EVIL, EVIL_IMG, viewer_examples

from seq2seq.viz import write_attention_html

pytestmark = needs_chromium


@pytest.fixture(scope="module")
def browser(tmp_path_factory):
    driver = start_chromium(tmp_path_factory.mktemp("chromium-profile"))
    yield driver
    driver.quit()


def _select(driver, control: str, value: str) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import Select

    Select(driver.find_element(By.ID, control)).select_by_value(value)


def _displayed(driver):
    """(weights [Tq, Tk] from the cells, their titles, column labels, row labels)."""
    from selenium.webdriver.common.by import By

    state = driver.execute_script(
        """
        const q = (s) => Array.from(document.querySelectorAll(s));
        return {
          rows: q("#matrix tbody tr").map((tr) =>
            Array.from(tr.querySelectorAll("td")).map((td) => Number(td.dataset.weight))),
          titles: q("#matrix td").map((td) => td.title),
          cols: q("#matrix th.col").map((th) => th.textContent),
          rowLabels: q("#matrix th.row").map((th) => th.textContent),
        };
        """
    )
    assert driver.find_element(By.ID, "matrix").is_displayed()
    return np.array(state["rows"]), state["titles"], state["cols"], state["rowLabels"]


def _check_no_script_ran(driver, title: str) -> None:
    from selenium.common.exceptions import NoAlertPresentException

    with pytest.raises(NoAlertPresentException):
        driver.switch_to.alert.text  # noqa: B018 - raises when no alert is open
    assert driver.title == title  # an <img onerror> from the data would have changed it
    assert driver.execute_script("return document.querySelectorAll('script').length") == 2
    assert driver.execute_script("return document.querySelectorAll('img').length") == 0
    errors = [e for e in driver.get_log("browser") if e["level"] == "SEVERE"]
    assert errors == []  # no script error, no blocked load (the CSP would report it)


def test_viewer_switches_heads_and_shows_text_literally(browser, tmp_path):
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.common.by import By

    examples = viewer_examples()
    page = write_attention_html(examples, tmp_path / "viewer.html", title="viewer test")
    browser.get(Path(page).resolve().as_uri())
    _check_no_script_ran(browser, "viewer test")

    # default: last layer, mean of heads
    cross = examples[0].weights["cross"]  # [2, 3, 5, 4]
    weights, _, cols, rows = _displayed(browser)
    np.testing.assert_allclose(weights, cross[-1].mean(0), atol=1e-4)
    assert cols == examples[0].src_pieces and rows == examples[0].tgt_pieces

    _select(browser, "layer", "0")
    _select(browser, "head", "1")
    weights, titles, _, _ = _displayed(browser)
    np.testing.assert_allclose(weights, cross[0, 1], atol=1e-5)
    expected = [
        f"{r} \u2192 {c}: {cross[0, 1, i, j]:.4f}"
        for i, r in enumerate(examples[0].tgt_pieces)
        for j, c in enumerate(examples[0].src_pieces)
    ]
    assert titles == expected
    _select(browser, "head", "0")
    head0, _, _, _ = _displayed(browser)
    np.testing.assert_allclose(head0, cross[0, 0], atol=1e-5)
    assert np.abs(head0 - weights).max() > 0.05

    _select(browser, "layer", "mean")
    _select(browser, "head", "mean")
    np.testing.assert_allclose(_displayed(browser)[0], cross.mean((0, 1)), atol=1e-4)

    # hovering a cell shows its weight
    _select(browser, "head", "1")
    _select(browser, "layer", "1")
    cell = browser.find_elements(By.CSS_SELECTOR, "#matrix tbody tr")[2]
    cell = cell.find_elements(By.TAG_NAME, "td")[3]
    ActionChains(browser).move_to_element(cell).perform()
    hover = browser.find_element(By.ID, "hover").text
    assert hover == f"{examples[0].tgt_pieces[2]} \u2192 {examples[0].src_pieces[3]}: " + (
        f"{cross[1, 1, 2, 3]:.4f}"
    )

    # encoder self-attention: source x source, head 1 stays selected
    _select(browser, "slot", "encoder_self")
    weights, _, cols, rows = _displayed(browser)
    np.testing.assert_allclose(weights, examples[0].weights["encoder_self"][1, 1], atol=1e-5)
    assert cols == rows == examples[0].src_pieces

    # the sentence carrying markup: shown as text, nothing runs
    _select(browser, "sentence", "1")
    weights, _, cols, _ = _displayed(browser)
    np.testing.assert_allclose(weights, examples[1].weights["cross"][1, 1], atol=1e-5)
    assert cols == examples[1].src_pieces
    assert browser.find_element(By.ID, "sentence-title").text == examples[1].title
    assert browser.find_element(By.ID, "src-text").text == f"{EVIL} &amp; {EVIL_IMG}"
    _check_no_script_ran(browser, "viewer test")
