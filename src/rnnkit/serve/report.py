"""``rnnkit inspect``: the playground's activation view as one self-contained HTML file."""

from __future__ import annotations

import html
import json
from pathlib import Path

from rnnkit import xray
from rnnkit.data.files import read_text_file
from rnnkit.errors import DataError
from rnnkit.serve.app import STATIC, inspection
from rnnkit.train.rundir import no_symlink

PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{title}</title>
<style>{style}</style></head>
<body>
<header><h1>{title}</h1><span class="muted">{subtitle}</span></header>
<main>
<section>
  <h2>Units that follow simple features of the text <span class="muted">(Pearson r; click one)</span></h2>
  <div id="features"></div>
  <label>Unit <input id="unit" type="number" min="0" max="{last}" step="1" value="{first}"></label>
</section>
<section>
  <h2>Activation of the unit as colour <span class="muted">(blue +1, red -1; hover for the value)</span></h2>
  <div id="activations" class="tokens"></div>
</section>
</main>
<script>{script}</script>
<script id="inspection" type="application/json">{data}</script>
<script>
"use strict";
const inspection = JSON.parse(document.getElementById("inspection").textContent);
const grid = RnnkitXray.decodeGrid(inspection.activations_int8);
const unitInput = document.getElementById("unit");
function show() {{
  const unit = Math.max(0, Math.min(inspection.units - 1, Number(unitInput.value) || 0));
  RnnkitXray.renderActivations(document.getElementById("activations"), inspection, grid, unit);
}}
const pick = (u) => {{ unitInput.value = u; show(); }};
RnnkitXray.renderFeatures(document.getElementById("features"), inspection, pick);
unitInput.addEventListener("input", show);
show();
</script>
</body></html>
"""


def write_report(model, vocab, text: str, out: Path, *, name: str, layer: int = -1, state: str = "auto",
                 top: int = 5) -> dict:  # fmt: skip
    """Inspect ``text`` and write the HTML page to ``out``; returns the inspection's JSON."""
    found = xray.activations(model, vocab, text, layer, state)
    data = inspection(name, found, top, [])
    ranked = [f["units"][0]["unit"] for f in data["features"] if f["units"]]
    page = PAGE.format(
        title=html.escape(f"rnnkit inspect: {name}"),
        subtitle=html.escape(
            f"layer {found.layer} of {found.num_layers}, state {found.state}, {data['units']} units, "
            f"{len(found.tokens):,} tokens"
        ),
        style=(STATIC / "style.css").read_text(encoding="utf-8"),
        script=(STATIC / "xray.js").read_text(encoding="utf-8"),
        data=json.dumps(data, ensure_ascii=False).replace("</", "<\\/"),
        first=ranked[0] if ranked else 0,
        last=data["units"] - 1,
    )
    out.parent.mkdir(parents=True, exist_ok=True)
    no_symlink(out).write_text(page, encoding="utf-8")
    return data


def inspect_file(
    loaded, file: Path, out: Path, *, name: str, layer: int = -1, state: str = "auto", max_chars: int = 2000,
    top: int = 5, encoding: str = "utf-8",
) -> dict:  # fmt: skip
    """:func:`write_report` on the first ``max_chars`` characters of ``file`` read through ``loaded`` (a
    loaded char-RNN, :class:`rnnkit.tasks.lm.LoadedLM`): what ``rnnkit inspect`` writes. A
    :class:`DataError` when the file gives fewer than two characters."""
    text = read_text_file(file, encoding)[:max_chars]
    if len(text) < 2:
        raise DataError(f"{file}: needs at least two characters")
    return write_report(loaded.model, loaded.vocab, text, out, name=name, layer=layer, state=state, top=top)
