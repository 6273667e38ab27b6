// The try-it page: POST /ner, then the text with its entities marked up with
// displaCy's entity template and colours (sent by the server in #page-config),
// a label filter, and each entity's label and confidence (on hover and in the
// table). User text only ever reaches the page escaped, or as textContent.
"use strict";

(function () {
  const config = JSON.parse(document.getElementById("page-config").textContent);
  const form = document.getElementById("form");
  const input = document.getElementById("text");
  const button = document.getElementById("run");
  const status = document.getElementById("status");
  const error = document.getElementById("error");
  const filter = document.getElementById("filter");
  const result = document.getElementById("result");
  const table = document.getElementById("entities");
  const hidden = new Set();
  let shown = null; // {text, entities} of the last answer

  const ESCAPES = { "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" };
  const escape = (value) => String(value).replace(/[&<>"']/g, (c) => ESCAPES[c]);
  // One pass over the template: a value that contains "{x}" is not filled again.
  const fill = (template, values) =>
    template.replace(/\{(\w+)\}/g, (whole, key) => (key in values ? values[key] : whole));
  const color = (label) => config.colors[label] || config.default_color;
  const confidence = (entity) =>
    entity.confidence === null || entity.confidence === undefined ? "n/a" : entity.confidence.toFixed(3);
  // displaCy turns line breaks into <br> the same way.
  const plain = (text) => escape(text).replace(/\n/g, "<br>");

  document.getElementById("model").textContent =
    `${config.model} ${config.version} · pipeline: ${config.pipeline.join(" → ")}`;
  input.maxLength = config.max_chars;

  function addLabel(label) {
    if (filter.querySelector(`input[value="${CSS.escape(label)}"]`)) return;
    const item = document.createElement("label");
    const box = document.createElement("input");
    box.type = "checkbox";
    box.value = label;
    box.checked = !hidden.has(label);
    box.addEventListener("change", () => {
      if (box.checked) hidden.delete(label);
      else hidden.add(label);
      render();
    });
    const swatch = document.createElement("span");
    swatch.className = "swatch";
    swatch.style.background = color(label);
    const name = document.createElement("span");
    name.textContent = label;
    item.append(box, swatch, name);
    filter.append(item);
    filter.hidden = false;
  }

  function highlight(entity) {
    const markup = fill(config.templates.ent, {
      bg: escape(color(entity.label)),
      text: plain(entity.text),
      label: escape(entity.label),
      kb_link: "",
    });
    const title = `${entity.label}, confidence ${confidence(entity)}`;
    const attributes = `data-label="${escape(entity.label)}" title="${escape(title)}"`;
    return markup.replace("<mark ", `<mark ${attributes} `);
  }

  function render() {
    if (!shown) return;
    const { text, entities } = shown;
    // The API's offsets count code points (Python's str), JavaScript's strings UTF-16 units.
    const chars = Array.from(text);
    const visible = entities.filter((entity) => !hidden.has(entity.label));
    let content = "";
    let offset = 0;
    for (const entity of visible) {
      content += plain(chars.slice(offset, entity.start_char).join("")) + highlight(entity);
      offset = entity.end_char;
    }
    content += plain(chars.slice(offset).join(""));
    result.innerHTML = fill(config.templates.ents, { dir: "ltr", content });
    const body = table.tBodies[0];
    body.replaceChildren();
    for (const entity of visible) {
      const row = body.insertRow();
      row.dataset.label = entity.label;
      const cells = [entity.text, entity.label, confidence(entity), `${entity.start_char}–${entity.end_char}`];
      cells.forEach((value, i) => {
        const cell = row.insertCell();
        cell.textContent = value;
        if (i >= 2) cell.className = "number";
      });
    }
    table.hidden = visible.length === 0;
    const hiddenCount = entities.length - visible.length;
    status.textContent =
      `${entities.length} ${entities.length === 1 ? "entity" : "entities"}` +
      (hiddenCount ? ` (${hiddenCount} hidden by the label filter)` : "");
  }

  function showError(message) {
    error.textContent = message;
    error.hidden = false;
  }

  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const text = input.value;
    error.hidden = true;
    button.disabled = true;
    status.textContent = "Working…";
    try {
      const response = await fetch("ner", {
        method: "POST",
        headers: { "Content-Type": "application/json" },
        body: JSON.stringify({ text }),
      });
      const body = await response.json();
      if (!response.ok) {
        showError(`${response.status} ${body.error}: ${body.message}`);
        status.textContent = "";
        return;
      }
      const entities = body.results[0].entities.slice().sort((a, b) => a.start_char - b.start_char);
      entities.forEach((entity) => addLabel(entity.label));
      shown = { text, entities };
      render();
    } catch (failure) {
      showError(`The request failed: ${failure}`);
      status.textContent = "";
    } finally {
      button.disabled = false;
    }
  });

  input.addEventListener("keydown", (event) => {
    if (event.key === "Enter" && (event.ctrlKey || event.metaKey)) form.requestSubmit();
  });

  config.labels.forEach(addLabel);
})();
