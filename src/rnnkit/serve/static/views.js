// The views of the tasks besides the language model (whose view is playground.js): classify, tag,
// forecast, speech and caption, each the <div id="view-TASK"> of index.html. TaskViews.init() wires them
// once; playground.js shows the one of the chosen model. They call the helpers of playground.js ($, api,
// postFile, setStatus) when they run. A model's output only ever reaches the page as textContent.
"use strict";

const TaskViews = (() => {
  const MAX_TEXTS = 64;
  const MAX_RECORDING_S = 20;  // unless the server's limits (GET /v1/models) say less

  function node(tag, className = "", text) {
    const el = document.createElement(tag);
    if (className) el.className = className;
    if (text !== undefined) el.textContent = text;
    return el;
  }

  function textsOf(id) {
    return $(id).value.split("\n").map((line) => line.trim()).filter(Boolean);
  }

  // Which model's answers the views show: clear() moves it on, and an answer that comes back after
  // that (to a request made for the previous model) is dropped.
  let epoch = 0;
  class Stale extends Error {}

  // Run `work(fresh)` with `button` off and `out.dataset.state` busy, then done or error; `work` calls
  // fresh() once its answer is in (it throws if another model was chosen meanwhile) and returns the
  // status line.
  async function running(button, out, work) {
    const mine = epoch;
    const fresh = () => { if (epoch !== mine) throw new Stale("another model was chosen"); };
    button.disabled = true;
    out.dataset.state = "busy";
    setStatus("working…");
    const started = performance.now();
    try {
      const said = await work(fresh);
      out.dataset.state = "done";
      setStatus(`${said} in ${((performance.now() - started) / 1000).toFixed(2)} s`);
    } catch (err) {
      if (err instanceof Stale) return;
      out.dataset.state = "error";
      setStatus(err.message, true);
    } finally {
      button.disabled = false;
    }
  }

  function someTexts(id) {
    const texts = textsOf(id);
    if (!texts.length) throw new Error("type a text first (one per line)");
    if (texts.length > MAX_TEXTS) throw new Error(`at most ${MAX_TEXTS} lines at once (there are ${texts.length})`);
    return texts;
  }

  // ----------------------------------------------------------------------------------------------
  // classify: each text's label and every class's probability as a bar

  function renderClassified(texts, results) {
    const items = results.map((result, i) => {
      const item = node("div", "result");
      item.dataset.label = result.label;
      const head = node("div", "result-text");
      head.append(node("span", "label-chip", result.label), document.createTextNode(texts[i]));
      const table = node("table", "probs");
      const ranked = Object.entries(result.probabilities).sort((a, b) => b[1] - a[1]);
      for (const [label, p] of ranked) {
        const row = node("tr", label === result.label ? "chosen" : "");
        row.dataset.label = label;
        row.dataset.p = `${p}`;
        const bar = node("span", "bar");
        bar.style.width = `${Math.max(1, Math.round(240 * p))}px`;
        const barCell = node("td");
        barCell.append(bar);
        row.append(node("td", "name", label), node("td", "pct", `${(100 * p).toFixed(1)}%`), barCell);
        table.append(row);
      }
      item.append(head, table);
      return item;
    });
    $("classify-results").replaceChildren(...items);
  }

  async function classify() {
    await running($("classify-run"), $("classify-results"), async (fresh) => {
      const texts = someTexts("classify-text");
      const found = await api("/v1/classify", { model: $("model").value, texts });
      fresh();
      renderClassified(texts, found.results);
      return `classified ${texts.length} text${texts.length > 1 ? "s" : ""}`;
    });
  }

  // ----------------------------------------------------------------------------------------------
  // tag: words as boxes (segmentation), or the text with its entities marked

  // where each token is in `text` (tokens are the text's characters or words, white space left out)
  function tokenOffsets(text, tokens) {
    const offsets = [];
    let at = 0;
    for (const token of tokens) {
      const i = text.indexOf(token, at);
      if (i < 0) return null;
      offsets.push([i, i + token.length]);
      at = i + token.length;
    }
    return offsets;
  }

  function markEntities(box, text, tokens, entities) {
    let offsets = tokenOffsets(text, tokens);
    if (!offsets) {  // the server tokenised differently: show its tokens, spaced
      text = tokens.join(" ");
      offsets = tokenOffsets(text, tokens);
    }
    let cursor = 0;
    for (const entity of [...entities].sort((a, b) => a.start - b.start)) {
      if (entity.start < 0 || entity.end > tokens.length || entity.start >= entity.end) continue;
      const from = offsets[entity.start][0], to = offsets[entity.end - 1][1];
      if (from < cursor) continue;
      box.append(document.createTextNode(text.slice(cursor, from)));
      const mark = node("mark", "entity");
      mark.dataset.type = entity.type;
      mark.title = `${entity.type}: tokens ${entity.start}-${entity.end - 1}`;
      mark.append(node("span", "entity-text", text.slice(from, to)), node("span", "entity-type", entity.type));
      box.append(mark);
      cursor = to;
    }
    box.append(document.createTextNode(text.slice(cursor)));
  }

  function renderTagged(texts, results) {
    const items = results.map((result, i) => {
      const item = node("div", "result");
      const tagged = node("div", "tagged");
      if (result.words) {
        item.dataset.kind = "words";
        tagged.append(...result.words.map((word) => node("span", "word", word)));
      } else if (result.entities) {
        item.dataset.kind = "entities";
        markEntities(tagged, texts[i], result.tokens, result.entities);
      } else {
        item.dataset.kind = "tags";
        tagged.textContent = result.tokens.join(" ");
      }
      const details = node("details", "tags");
      details.append(node("summary", "", `${result.tokens.length} tokens and their tags`));
      const pairs = node("div", "tokens-tags");
      result.tokens.forEach((token, t) => {
        const pair = node("span", "pair", `${token}/${result.tags[t]} `);
        pair.dataset.tag = result.tags[t];
        pairs.append(pair);
      });
      details.append(pairs);
      item.append(tagged, details);
      return item;
    });
    $("tag-results").replaceChildren(...items);
  }

  async function tag() {
    await running($("tag-run"), $("tag-results"), async (fresh) => {
      const texts = someTexts("tag-text");
      const found = await api("/v1/tag", { model: $("model").value, texts });
      fresh();
      renderTagged(texts, found.results);
      return `tagged ${texts.length} text${texts.length > 1 ? "s" : ""}`;
    });
  }

  // ----------------------------------------------------------------------------------------------
  // forecast: the plot, and the values as a table

  function parseSeries(text) {
    const parts = text.split(/[\s,;]+/).filter(Boolean);
    if (!parts.length) return null;  // the end of the run's own series
    return parts.map((part) => {
      const v = Number(part);
      if (!Number.isFinite(v)) throw new Error(`series: ${JSON.stringify(part.slice(0, 20))} is not a number`);
      return v;
    });
  }

  function renderForecast(found) {
    RnnkitPlots.drawForecast($("forecast-plot"), found);
    const baselines = found.baselines || {};
    const rows = found.forecast.map((v, i) => {
      const row = node("tr");
      row.append(node("td", "", `+${i + 1}`));
      for (const [kind, value] of [["forecast", v], ["naive", (baselines.naive || [])[i]],
        ["seasonal_naive", (baselines.seasonal_naive || [])[i]]]) {
        const cell = node("td", kind, value === undefined ? "" : `${Number(value.toPrecision(6))}`);
        if (value !== undefined) cell.dataset.value = `${value}`;
        row.append(cell);
      }
      return row;
    });
    $("forecast-table").tBodies[0].replaceChildren(...rows);
    $("forecast-table").hidden = false;
    $("forecast-legend").hidden = false;
  }

  async function forecast() {
    await running($("forecast-run"), $("forecast-plot"), async (fresh) => {
      const series = parseSeries($("forecast-series").value);
      const found = await api("/v1/forecast", { model: $("model").value, series });
      fresh();
      renderForecast(found);
      const from = series ? `${series.length} values` : "the run's own series";
      return `${found.horizon} step${found.horizon === 1 ? "" : "s"} ahead of ${from}`;
    });
  }

  // ----------------------------------------------------------------------------------------------
  // speech: a WAV file or a recording -> transcript and attention

  const speech = { audio: null, recorder: null };

  function charLabel(ch) {
    return ch === " " ? "\u2423" : ch;
  }

  async function transcribe() {
    if (!speech.audio) {
      setStatus("pick a WAV file (or record) first", true);
      return;
    }
    await running($("speech-run"), $("speech-text"), async (fresh) => {
      const beam = $("speech-beam").value || "1";
      const attention = $("speech-attention").checked && beam === "1";  // the server's rule: greedy only
      const found = await postFile("/v1/transcribe", speech.audio.blob, {
        model: $("model").value, beam, attention: `${attention}`,
      });
      fresh();
      $("speech-text").textContent = found.text;
      const box = $("speech-attention-box");
      box.hidden = !(attention && found.attention && found.attention.length);
      if (!box.hidden) {
        const labels = [...Array.from(found.text, charLabel), "</s>"];
        RnnkitPlots.drawAttention($("speech-attention-map"), found.attention, labels);
      }
      const note = $("speech-attention").checked && !attention ? " (attention pictures come with beam 1 only)" : "";
      return `transcribed ${speech.audio.name}${note}`;
    });
  }

  function useAudio(blob, name) {
    speech.audio = { blob, name };
    $("speech-source").textContent = `${name}, ${blob.size.toLocaleString("en")} bytes`;
    $("speech-run").disabled = false;
    return transcribe();
  }

  async function record() {
    const button = $("speech-record");
    if (speech.recorder && speech.recorder.recording) {
      speech.recorder.stop();
      return;
    }
    const recorder = new RnnkitAudio.Recorder();
    const model = currentModel();
    const seconds = Math.min(MAX_RECORDING_S, state.limits.audio_seconds || MAX_RECORDING_S);
    try {
      await recorder.start(seconds, (model && model.sample_rate) || RnnkitAudio.RATE);
    } catch (err) {
      button.disabled = true;
      button.title = `microphone not available: ${err.message}`;
      setStatus(`microphone not available (${err.name || "error"}): pick a WAV file instead`, true);
      return;
    }
    speech.recorder = recorder;
    button.textContent = "Stop";
    button.classList.add("recording");
    setStatus(`recording (at most ${seconds} s)… press Stop when done`);
    try {
      const { wav, seconds } = await recorder.done;
      await useAudio(wav, `a recording of ${seconds.toFixed(1)} s`);
    } catch (err) {
      setStatus(`recording: ${err.message}`, true);
    } finally {
      button.textContent = "Record";
      button.classList.remove("recording");
    }
  }

  // ----------------------------------------------------------------------------------------------
  // caption: a picture -> its caption

  const picture = { file: null };

  async function caption() {
    if (!picture.file) {
      setStatus("pick a PNG or JPEG picture first", true);
      return;
    }
    await running($("caption-run"), $("caption-text"), async (fresh) => {
      const found = await postFile("/v1/caption", picture.file, {
        model: $("model").value, beam: $("caption-beam").value || "1",
      });
      fresh();
      $("caption-text").textContent = found.caption;
      return `captioned ${picture.file.name}`;
    });
  }

  function usePicture(file) {
    picture.file = file;
    $("caption-run").disabled = false;
    $("caption-text").textContent = "";
    const reader = new FileReader();  // a data: URL, which the page's policy lets an <img> show
    reader.addEventListener("load", () => {
      $("caption-image").src = reader.result;
      $("caption-image").hidden = false;
    });
    reader.readAsDataURL(file);
    return caption();
  }

  // ----------------------------------------------------------------------------------------------

  // Another model was chosen: what the views show came from the last one. What was typed or picked
  // stays, to try on the new model.
  function clear() {
    epoch += 1;
    for (const id of ["classify-results", "tag-results", "forecast-plot", "speech-text", "caption-text"]) {
      $(id).replaceChildren();
      $(id).dataset.state = "idle";
    }
    $("forecast-table").tBodies[0].replaceChildren();
    for (const id of ["forecast-table", "forecast-legend", "speech-attention-box"]) $(id).hidden = true;
  }

  function init() {
    $("classify-run").addEventListener("click", classify);
    $("tag-run").addEventListener("click", tag);
    $("forecast-run").addEventListener("click", forecast);
    $("speech-run").addEventListener("click", transcribe);
    $("speech-file").addEventListener("change", (e) => {
      const file = e.target.files[0];
      if (file) useAudio(file, file.name);
    });
    if (RnnkitAudio.micAvailable()) {
      $("speech-record").addEventListener("click", record);
    } else {
      $("speech-record").disabled = true;
      $("speech-record").title = "the microphone needs a secure page (https, or http on localhost)";
    }
    $("caption-run").addEventListener("click", caption);
    $("caption-file").addEventListener("change", (e) => {
      const file = e.target.files[0];
      if (file) usePicture(file);
    });
    for (const [area, run] of [["classify-text", classify], ["tag-text", tag], ["forecast-series", forecast]]) {
      $(area).addEventListener("keydown", (e) => {
        if (e.key === "Enter" && (e.ctrlKey || e.metaKey)) run();
      });
    }
  }

  return { init, clear, parseSeries, tokenOffsets };
})();
