// The rnnkit playground: a view per task, chosen by picking a served model. This file holds what the
// views share (the model list, the status line, the API calls) and the language model's view: generate
// with streaming, see each step's candidates, colour the text by a hidden unit. The other tasks' views
// are views.js. Plain JavaScript against the JSON API of this server (no build step).
"use strict";

const $ = (id) => document.getElementById(id);
const state = { models: [], limits: {}, steps: [], controller: null, inspection: null, grid: null };
// what the browser received, for tests and for the curious: network chunks and SSE events
window.rnnkitStats = { chunks: 0, events: 0 };

function setStatus(text, isError = false) {
  $("status").textContent = text;
  $("status").classList.toggle("error", isError);
}

async function answer(response) {
  if (!response.ok) {
    let message = `${response.status} ${response.statusText}`;
    try { message = (await response.json()).error || message; } catch (_) { /* not JSON */ }
    throw new Error(message);
  }
  return response.json();
}

async function api(path, body) {
  return answer(await fetch(path, {
    method: body ? "POST" : "GET",
    headers: body ? { "Content-Type": "application/json" } : {},
    body: body ? JSON.stringify(body) : undefined,
  }));
}

// What a file holds, from its first bytes (a browser often knows no type for a .wav file).
async function fileType(blob) {
  const head = new Uint8Array(await blob.slice(0, 12).arrayBuffer());
  const ascii = (from, to) => String.fromCharCode(...head.subarray(from, to));
  if (ascii(0, 4) === "RIFF" && ascii(8, 12) === "WAVE") return "audio/wav";
  if (head[0] === 0x89 && ascii(1, 4) === "PNG") return "image/png";
  if (head[0] === 0xff && head[1] === 0xd8 && head[2] === 0xff) return "image/jpeg";
  return blob.type || "application/octet-stream";  // the server names what it cannot read
}

// POST a file as the raw body (its type from its content), with `params` in the query string.
async function postFile(path, blob, params) {
  const query = new URLSearchParams(params).toString();
  return answer(await fetch(`${path}?${query}`, {
    method: "POST",
    headers: { "Content-Type": await fileType(blob) },
    body: await blob.arrayBuffer(),  // the bytes themselves (a Blob body is invisible to DevTools)
  }));
}

function currentModel() {
  return state.models.find((m) => m.name === $("model").value) || state.models[0];
}

function taskOf(m) {
  return m.task || "lm";
}

function describe(m) {
  if (taskOf(m) === "lm" && m.cell) {
    return `${m.cell.toUpperCase()} ${m.layers}x${m.hidden_size}, ${(m.parameters / 1e6).toFixed(2)} M parameters, ` +
      `${m.vocabulary} ${m.tokens} tokens, checkpoint ${m.checkpoint}`;
  }
  const parts = [];
  const task = taskOf(m);
  if (task === "classify" && m.labels) parts.push(`labels ${m.labels.join(", ")}`);
  if (task === "tag" && m.kind) parts.push(`${m.kind} over ${m.tokens}s, ${m.tags.length} tags`);
  if (task === "forecast" && m.horizon) parts.push(`reads ${m.window} values of ${m.column}, forecasts ${m.horizon}`);
  if (task === "speech" && m.sample_rate) parts.push(`${m.sample_rate} Hz audio`);
  if (task === "caption" && m.image_size) parts.push(`${m.image_size}x${m.image_size} pictures`);
  if (m.parameters !== undefined) {
    parts.push(m.parameters < 1e5 ? `${m.parameters.toLocaleString("en")} parameters`
      : `${(m.parameters / 1e6).toFixed(2)} M parameters`);
  }
  if (m.checkpoint !== undefined) parts.push(`checkpoint ${m.checkpoint}`);
  return parts.join(", ");
}

// Show the view of the chosen model's task (view-other when this page has none for it).
function showModel() {
  const m = currentModel();
  if (!m) return;
  const task = taskOf(m);
  $("model-info").textContent = describe(m);
  $("task").textContent = task;
  $("task").hidden = false;
  const view = document.querySelector(`.view[data-task="${CSS.escape(task)}"]`) || $("view-other");
  for (const el of document.querySelectorAll(".view")) el.hidden = el !== view;
  if (view.id === "view-other") {
    $("other-text").textContent = `This page has no view for ${task} models; use the API (see API docs).`;
  }
  if (task === "lm") {
    $("poem").hidden = !m.poem_form;
    $("layer").replaceChildren(...Array.from({ length: m.layers }, (_, i) => new Option(`${i}`, `${i}`)));
    $("layer").value = `${m.layers - 1}`;
    $("unit").max = `${m.hidden_size - 1}`;
  }
  document.body.dataset.task = task;
  if (location.hash !== `#model=${encodeURIComponent(m.name)}`) {
    history.replaceState(null, "", `#model=${encodeURIComponent(m.name)}`);
  }
}

// #model=NAME in the address opens that model's view (a link to a view can be shared)
function modelInAddress() {
  const match = /^#model=(.+)$/.exec(location.hash);
  if (!match) return null;
  try { return decodeURIComponent(match[1]); } catch (_) { return null; }
}

async function loadModels() {
  const { models, default: first, limits } = await api("/v1/models");
  state.models = models;
  state.limits = limits || {};
  $("model").replaceChildren(...models.map((m) => new Option(`${m.name} (${taskOf(m)})`, m.name)));
  const wanted = modelInAddress();
  $("model").value = models.some((m) => m.name === wanted) ? wanted : first;
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
    const bar = document.createElement("span");
    bar.className = "bar";
    bar.style.width = `${Math.max(1, Math.round(80 * p))}px`;
    const cells = [label, `${(100 * p).toFixed(1)}%`, bar].map((content) => {
      const td = document.createElement("td");
      td.append(content);  // a string goes in as text
      return td;
    });
    tr.append(...cells);
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
  const switchModel = () => { TaskViews.clear(); showModel(); setStatus("ready"); };
  $("model").addEventListener("change", switchModel);
  window.addEventListener("hashchange", () => {
    const wanted = modelInAddress();
    if (wanted !== null && wanted !== $("model").value && state.models.some((m) => m.name === wanted)) {
      $("model").value = wanted;
      switchModel();
    }
  });
  TaskViews.init();
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
