// The activation view shared by the playground and `rnnkit inspect` reports (no dependencies).
// An inspection is the JSON of POST /v1/inspect: tokens, units, activations_int8 (base64 of a
// row-major tokens x units int8 grid, value * 127) and features (units ranked by correlation).
"use strict";

const RnnkitXray = (() => {
  function decodeGrid(b64) {
    const raw = atob(b64);
    const grid = new Int8Array(raw.length);
    for (let i = 0; i < raw.length; i++) grid[i] = (raw.charCodeAt(i) << 24) >> 24;
    return grid;
  }

  // -1 .. 1 -> red .. white .. blue, as in Karpathy et al.'s figures
  function colour(v) {
    const a = Math.min(1, Math.abs(v));
    return v >= 0 ? `rgba(33, 102, 172, ${a.toFixed(3)})` : `rgba(214, 96, 77, ${a.toFixed(3)})`;
  }

  function tokenText(tok) {
    return tok === "\n" ? "\u21b5\n" : tok;
  }

  // Colour each token of `inspection` by unit `unit`'s activation; hovering shows the value.
  function renderActivations(el, inspection, grid, unit) {
    const units = inspection.units;
    const frag = document.createDocumentFragment();
    inspection.tokens.forEach((tok, t) => {
      const span = document.createElement("span");
      const v = grid[t * units + unit] / 127;
      span.className = "act";
      span.textContent = tokenText(tok);
      span.style.background = colour(v);
      if (Math.abs(v) > 0.6) span.style.color = "#fff";
      span.title = `unit ${unit}: ${v.toFixed(3)}`;
      span.dataset.value = v.toFixed(4);
      frag.appendChild(span);
    });
    el.replaceChildren(frag);
  }

  // The features table: each feature with its most correlated units as buttons that call onPick(unit).
  function renderFeatures(el, inspection, onPick) {
    const frag = document.createDocumentFragment();
    for (const feature of inspection.features) {
      const row = document.createElement("div");
      row.className = "feature";
      const name = document.createElement("span");
      name.className = "feature-name";
      name.textContent = feature.description;
      row.appendChild(name);
      if (!feature.varies) {
        const none = document.createElement("span");
        none.className = "muted";
        none.textContent = " (does not vary in this text)";
        row.appendChild(none);
      }
      for (const { unit, r } of feature.units) {
        const chip = document.createElement("button");
        chip.type = "button";
        chip.className = "unit-chip";
        chip.dataset.unit = unit;
        chip.textContent = `#${unit} r=${r.toFixed(2)}`;
        chip.addEventListener("click", () => onPick(unit));
        row.appendChild(chip);
      }
      frag.appendChild(row);
    }
    el.replaceChildren(frag);
  }

  return { decodeGrid, colour, renderActivations, renderFeatures, tokenText };
})();
