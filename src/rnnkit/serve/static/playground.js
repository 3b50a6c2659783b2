// The rnnkit playground: generate with streaming, see each step's candidates, colour the text by a
// hidden unit. Plain JavaScript against the JSON API of this server (no build step).
"use strict";

const $ = (id) => document.getElementById(id);
const state = { models: [], steps: [], controller: null, inspection: null, grid: null };
// what the browser received, for tests and for the curious: network chunks and SSE events
window.rnnkitStats = { chunks: 0, events: 0 };

function setStatus(text, isError = false) {
  $("status").textContent = text;
  $("status").classList.toggle("error", isError);
}

async function api(path, body) {
  const response = await fetch(path, {
    method: body ? "POST" : "GET",
    headers: body ? { "Content-Type": "application/json" } : {},
    body: body ? JSON.stringify(body) : undefined,
  });
  if (!response.ok) {
    let message = `${response.status} ${response.statusText}`;
    try { message = (await response.json()).error || message; } catch (_) { /* not JSON */ }
    throw new Error(message);
  }
  return response.json();
}

function currentModel() {
  return state.models.find((m) => m.name === $("model").value) || state.models[0];
}

function showModel() {
  const m = currentModel();
  if (!m) return;
  $("model-info").textContent =
    `${m.cell.toUpperCase()} ${m.layers}x${m.hidden_size}, ${(m.parameters / 1e6).toFixed(2)} M parameters, ` +
    `${m.vocabulary} ${m.tokens} tokens, checkpoint ${m.checkpoint}`;
  $("poem").hidden = !m.poem_form;
  $("layer").replaceChildren(...Array.from({ length: m.layers }, (_, i) => new Option(`${i}`, `${i}`)));
  $("layer").value = `${m.layers - 1}`;
  $("unit").max = `${m.hidden_size - 1}`;
}

async function loadModels() {
  const { models, default: first } = await api("/v1/models");
  state.models = models;
  $("model").replaceChildren(...models.map((m) => new Option(m.name, m.name)));
  $("model").value = first;
  showModel();
}

// ------------------------------------------------------------------------------------------------
// generation

function addToken(text, cls, index) {
  const span = document.createElement("span");
  span.className = `tok ${cls}`;
  span.textContent = text;
  if (index !== undefined) span.dataset.i = `${index}`;
  $("output").appendChild(span);
}

function request() {
  const seed = $("seed").value.trim();
  const body = {
    model: $("model").value,
    prime: $("prime").value,
    length: Number($("length").value),
    temperature: Number($("temperature").value),
    top_k: Number($("top-k").value),
    candidates: 5,
    stream: true,
  };
  if (seed !== "") body.seed = Number(seed);
  if (!$("poem").hidden) {
    const acrostic = $("acrostic").value.trim();
    const lineChars = Number($("line-chars").value);
    if (acrostic) body.acrostic = acrostic;
    if (acrostic || lineChars) body.line_chars = lineChars || 5;
  }
  return body;
}

function handleEvent(kind, data) {
  window.rnnkitStats.events += 1;
  if (kind === "token") {
    state.steps.push(data);
    addToken(data.text, "gen", state.steps.length - 1);
  } else if (kind === "done") {
    setStatus(`${data.tokens} tokens in ${data.seconds.toFixed(2)} s`);
    $("output").dataset.state = "done";
  } else if (kind === "error") {
    throw new Error(data.error);
  }
}

async function generate() {
  const body = request();
  state.steps = [];
  $("output").replaceChildren();
  $("output").dataset.state = "streaming";
  $("candidates").hidden = true;
  window.rnnkitStats = { chunks: 0, events: 0 };
  if (body.prime && !body.acrostic && !body.line_chars) addToken(body.prime, "prime");
  state.controller = new AbortController();
  $("generate").disabled = true;
  $("stop").disabled = false;
  setStatus("generating…");
  try {
    const response = await fetch("/v1/generate", {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify(body),
      signal: state.controller.signal,
    });
    if (!response.ok) {
      let message = `${response.status}`;
      try { message = (await response.json()).error; } catch (_) { /* not JSON */ }
      throw new Error(message);
    }
    const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
    let buffer = "";
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      window.rnnkitStats.chunks += 1;
      buffer += value;
      let cut;
      while ((cut = buffer.indexOf("\n\n")) >= 0) {
        const block = buffer.slice(0, cut);
        buffer = buffer.slice(cut + 2);
        let kind = "message", data = "";
        for (const line of block.split("\n")) {
          if (line.startsWith("event: ")) kind = line.slice(7);
          else if (line.startsWith("data: ")) data += line.slice(6);
        }
        if (data) handleEvent(kind, JSON.parse(data));
      }
    }
  } catch (err) {
    if (err.name === "AbortError") setStatus(`stopped after ${state.steps.length} tokens`);
    else setStatus(err.message, true);
    $("output").dataset.state = "done";
  } finally {
    $("generate").disabled = false;
    $("stop").disabled = true;
    state.controller = null;
  }
}

// ------------------------------------------------------------------------------------------------
// candidates on hover

function showCandidates(span) {
  const step = state.steps[Number(span.dataset.i)];
  if (!step || !step.candidates) return;
  const rows = step.candidates.map(([tok, p]) => {
    const tr = document.createElement("tr");
    if (tok === step.token) tr.className = "chosen";
    const label = tok === "\n" ? "\\n" : tok === " " ? "␣" : tok;
    tr.innerHTML = `<td></td><td>${(100 * p).toFixed(1)}%</td><td><span class="bar"></span></td>`;
    tr.children[0].textContent = label;
    tr.querySelector(".bar").style.width = `${Math.max(1, Math.round(80 * p))}px`;
    return tr;
  });
  const table = document.createElement("table");
  table.append(...rows);
  const head = document.createElement("div");
  head.className = "muted";
  const chosen = step.token === "\n" ? "\\n" : step.token;
  head.textContent = `chose "${chosen}" (p = ${(100 * step.p).toFixed(1)}%); top 5:`;
  const popup = $("candidates");
  popup.replaceChildren(head, table);
  const box = span.getBoundingClientRect();
  popup.style.left = `${window.scrollX + box.left}px`;
  popup.style.top = `${window.scrollY + box.bottom + 4}px`;
  popup.hidden = false;
  for (const el of document.querySelectorAll(".tok.active")) el.classList.remove("active");
  span.classList.add("active");
}

// ------------------------------------------------------------------------------------------------
// x-ray

function colourUnit() {
  if (!state.inspection) return;
  const unit = Math.max(0, Math.min(state.inspection.units - 1, Number($("unit").value) || 0));
  RnnkitXray.renderActivations($("activations"), state.inspection, state.grid, unit);
  $("activations").dataset.unit = `${unit}`;
}

async function inspect() {
  const text = $("output").textContent.slice(-5000);
  if (text.length < 2) {
    setStatus("generate (or type a prime and generate) first", true);
    return;
  }
  setStatus("reading activations…");
  try {
    const found = await api("/v1/inspect", {
      model: $("model").value, text, layer: Number($("layer").value), state: $("state").value, top: 5,
    });
    state.inspection = found;
    state.grid = RnnkitXray.decodeGrid(found.activations_int8);
    RnnkitXray.renderFeatures($("features"), found, (unit) => { $("unit").value = `${unit}`; colourUnit(); });
    const best = found.features.find((f) => f.units.length);
    if (best) $("unit").value = `${best.units[0].unit}`;
    colourUnit();
    setStatus(`layer ${found.layer}, state ${found.state}, ${found.units} units over ${found.tokens.length} tokens`);
  } catch (err) {
    setStatus(err.message, true);
  }
}

// ------------------------------------------------------------------------------------------------

window.addEventListener("DOMContentLoaded", async () => {
  $("model").addEventListener("change", showModel);
  $("generate").addEventListener("click", generate);
  $("stop").addEventListener("click", () => state.controller && state.controller.abort());
  $("inspect").addEventListener("click", inspect);
  $("unit").addEventListener("input", colourUnit);
  $("output").addEventListener("mouseover", (e) => {
    if (e.target.classList && e.target.classList.contains("gen")) showCandidates(e.target);
  });
  document.addEventListener("keydown", (e) => { if (e.key === "Escape") $("candidates").hidden = true; });
  try {
    await loadModels();
    setStatus("ready");
  } catch (err) {
    setStatus(`could not list models: ${err.message}`, true);
  }
});
