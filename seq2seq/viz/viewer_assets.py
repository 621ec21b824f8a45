"""CSS and JavaScript of the HTML attention viewer (inlined into every page).

One viewer, two pages: `VIEWER_JS` defines ``AttentionViewer.show(payload)``, which draws the
payload of `seq2seq.viz.html.sentence_payload` sentences. A static page (`seq2seq plot --out
x.html`) calls it on its JSON block `#attention-data` (`STATIC_JS`); the page of `seq2seq
serve` calls it on the attention of each translation it fetches. The page is built with
`textContent` only: labels and sentences from the data are never parsed as HTML.
"""

from __future__ import annotations

CSS = """
[hidden] { display: none !important; }
body { font-family: system-ui, sans-serif; margin: 1.5em; color: #222; }
h1 { font-size: 1.3em; margin: 0 0 0.6em; }
.controls { display: flex; flex-wrap: wrap; gap: 1em; margin-bottom: 0.8em; }
.controls select { margin-left: 0.3em; max-width: 28em; }
dl.pair { display: grid; grid-template-columns: max-content auto; gap: 0.2em 0.8em; }
dl.pair dt { color: #666; }
dl.pair dd { margin: 0; white-space: pre-wrap; }
#hover { min-height: 1.4em; font-family: ui-monospace, monospace; }
#matrix { overflow: auto; }
table.attention { border-collapse: collapse; font-size: 12px; }
table.attention td { width: 22px; height: 22px; min-width: 22px; padding: 0;
  text-align: center; font-size: 9px; border: 1px solid #fff; cursor: crosshair; }
table.attention td:hover { outline: 2px solid #e4572e; }
table.attention th { font-weight: normal; white-space: pre; }
table.attention th.row { text-align: right; padding-right: 0.4em; }
table.attention th.col { vertical-align: bottom; padding-bottom: 0.3em; }
table.attention th.col span { writing-mode: vertical-rl; transform: rotate(180deg); }
table.attention th.corner { color: #666; font-style: italic; text-align: right; }
.legend { display: flex; align-items: center; gap: 0.5em; margin-top: 0.8em; }
#legend-bar { display: inline-block; width: 16em; height: 0.9em; }
"""

VIEWER_JS = r"""
"use strict";
// AttentionViewer.show(payload) draws payload = {sentences: [...], initial: {slot, layer,
// head}} into the viewer controls of the page (#sentence, #units, #slot, #layer, #head,
// #values, #matrix, ...). It can be called again with new data (the server page does so after
// every translation). A sentence holds "slots" (subword pieces) and may hold "word_slots"
// (the same attention merged into words); the units control switches between them.
const AttentionViewer = (function () {
  const byId = (id) => document.getElementById(id);
  const [sentenceSelect, unitsSelect, slotSelect, layerSelect, headSelect] =
    ["sentence", "units", "slot", "layer", "head"].map(byId);
  const VIRIDIS = [[68, 1, 84], [72, 40, 120], [62, 74, 137], [49, 104, 142], [38, 130, 142],
    [31, 158, 137], [53, 183, 121], [109, 205, 89], [180, 222, 44], [253, 231, 37]];
  let data = { sentences: [] };
  let wired = false;

  function colour(t) {
    const x = Math.min(1, Math.max(0, t)) * (VIRIDIS.length - 1);
    const i = Math.min(Math.floor(x), VIRIDIS.length - 2);
    const f = x - i;
    const c = VIRIDIS[i].map((v, k) => Math.round(v + f * (VIRIDIS[i + 1][k] - v)));
    return "rgb(" + c.join(", ") + ")";
  }

  function setOptions(select, entries, wanted) {
    select.replaceChildren();
    for (const [value, text] of entries) {
      const option = document.createElement("option");
      option.value = value;
      option.textContent = text;
      select.appendChild(option);
    }
    if (entries.some(([value]) => value === wanted)) select.value = wanted;
  }

  function resolveIndex(choice, count) {
    if (choice === "mean") return "mean";
    let i = Number(choice);
    if (i < 0) i += count;
    return i >= 0 && i < count ? String(i) : "mean";
  }

  function mean(matrices) {
    const n = matrices.length;
    return matrices[0].map((row, i) => row.map((_, j) => {
      let total = 0;
      for (const m of matrices) total += m[i][j];
      return total / n;
    }));
  }

  // weights: [L][H][Tq][Tk]; layer/head: an index as a string, or "mean".
  function selectMatrix(weights, layer, head) {
    const layers = layer === "mean" ? weights : [weights[Number(layer)]];
    const perLayer = layers.map((heads) => (head === "mean" ? mean(heads) : heads[Number(head)]));
    return perLayer.length === 1 ? perLayer[0] : mean(perLayer);
  }

  function currentSentence() { return data.sentences[Number(sentenceSelect.value)]; }

  function currentSlots() {
    const sentence = currentSentence();
    return unitsSelect.value === "words" && sentence.word_slots ? sentence.word_slots
      : sentence.slots;
  }

  function fillSlotControls(wanted) {
    const sentence = currentSentence();
    const units = [["pieces", "subword pieces"]];
    if (sentence.word_slots) units.push(["words", "words"]);
    setOptions(unitsSelect, units, wanted.units || "pieces");
    byId("units-control").hidden = units.length < 2;
    const slots = currentSlots();
    const names = Object.keys(slots);
    setOptions(slotSelect, names.map((n) => [n, slots[n].title]),
      names.includes(wanted.slot) ? wanted.slot : names[0]);
    const weights = slots[slotSelect.value].weights;
    const numbered = (items, name) => items.map((_, i) => [String(i), name + " " + i]);
    const layers = [["mean", "mean of layers"]].concat(numbered(weights, "layer"));
    const heads = [["mean", "mean of heads"]].concat(numbered(weights[0], "head"));
    setOptions(layerSelect, layers, resolveIndex(wanted.layer, weights.length));
    setOptions(headSelect, heads, resolveIndex(wanted.head, weights[0].length));
  }

  function header(slot) {
    const row = document.createElement("tr");
    const corner = document.createElement("th");
    corner.className = "corner";
    corner.textContent = slot.rows_name + " \u2193  " + slot.cols_name + " \u2192";
    row.appendChild(corner);
    for (const label of slot.cols) {
      const th = document.createElement("th");
      th.className = "col";
      const span = document.createElement("span");
      span.textContent = label;
      th.appendChild(span);
      row.appendChild(th);
    }
    return row;
  }

  function render() {
    const sentence = currentSentence();
    const slot = currentSlots()[slotSelect.value];
    const matrix = selectMatrix(slot.weights, layerSelect.value, headSelect.value);
    const vmax = Math.max(1e-9, ...matrix.map((row) => Math.max(...row)));
    const showValues = byId("values").checked;
    const table = document.createElement("table");
    table.className = "attention";
    table.createTHead().appendChild(header(slot));
    const body = table.createTBody();
    matrix.forEach((values, i) => {
      const tr = body.insertRow();
      const th = document.createElement("th");
      th.className = "row";
      th.textContent = slot.rows[i];
      tr.appendChild(th);
      values.forEach((w, j) => {
        const td = tr.insertCell();
        td.style.background = colour(w / vmax);
        td.style.color = w / vmax > 0.6 ? "#000" : "#fff";
        td.dataset.weight = String(w);
        td.dataset.row = String(i);
        td.dataset.col = String(j);
        td.title = slot.rows[i] + " \u2192 " + slot.cols[j] + ": " + w.toFixed(4);
        if (showValues) td.textContent = w.toFixed(2);
      });
    });
    byId("matrix").replaceChildren(table);
    byId("sentence-title").textContent = sentence.title;
    byId("src-text").textContent = sentence.src_text;
    byId("tgt-text").textContent = sentence.tgt_text;
    byId("legend-max").textContent = vmax.toFixed(3);
    byId("hover").textContent = "Hover over a cell to see its weight.";
  }

  function wantedNow() {
    return { units: unitsSelect.value, slot: slotSelect.value, layer: layerSelect.value,
      head: headSelect.value };
  }

  function wire() {
    const refill = () => { fillSlotControls(wantedNow()); render(); };
    byId("legend-bar").style.background = "linear-gradient(to right, " +
      VIRIDIS.map((c) => "rgb(" + c.join(", ") + ")").join(", ") + ")";
    sentenceSelect.addEventListener("change", refill);
    unitsSelect.addEventListener("change", refill);
    slotSelect.addEventListener("change", refill);
    layerSelect.addEventListener("change", render);
    headSelect.addEventListener("change", render);
    byId("values").addEventListener("change", render);
    byId("matrix").addEventListener("mouseover", (event) => {
      const cell = event.target.closest("td");
      if (cell) byId("hover").textContent = cell.title;
    });
    wired = true;
  }

  function show(payload) {
    const keep = wired && data.sentences.length ? wantedNow() : {};
    data = payload;
    if (!wired) wire();
    setOptions(sentenceSelect,
      data.sentences.map((s, i) => [String(i), i + ": " + s.title]), "0");
    byId("sentence-control").hidden = data.sentences.length < 2;
    fillSlotControls(Object.assign({}, data.initial || {}, keep));
    byId("viewer").hidden = false;
    render();
  }

  return { show };
})();
"""

#: The script of a static page (`seq2seq plot --out x.html`): show the embedded JSON block.
STATIC_JS = r"""
AttentionViewer.show(JSON.parse(document.getElementById("attention-data").textContent));
"""

#: The whole script of a static page: the viewer, then the call on the page's own data.
JS = VIEWER_JS + STATIC_JS
