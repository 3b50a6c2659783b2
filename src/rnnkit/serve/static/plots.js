// Pictures drawn without a library: a forecast as inline SVG, an attention matrix as a canvas heat map.
// Everything is built through the DOM (no markup strings), so values from a model are never parsed.
"use strict";

const RnnkitPlots = (() => {
  const SVG = "http://www.w3.org/2000/svg";

  function svg(name, attrs = {}, text) {
    const node = document.createElementNS(SVG, name);
    for (const [key, value] of Object.entries(attrs)) node.setAttribute(key, `${value}`);
    if (text !== undefined) node.textContent = text;
    return node;
  }

  // a short label for an axis value: 3 significant digits, no exponent for ordinary sizes
  function short(v) {
    const a = Math.abs(v);
    if (a !== 0 && (a < 1e-3 || a >= 1e6)) return v.toExponential(2);
    return `${Number(v.toPrecision(3))}`;
  }

  // The series of POST /v1/forecast: `history` at steps -(n-1)..0, then `forecast` and the baselines at
  // steps 1..horizon, each joined to the last value seen so the lines continue the history.
  function drawForecast(box, found) {
    const W = 900, H = 320, pad = { left: 64, right: 28, top: 12, bottom: 30 };
    const history = found.history || [];
    const baselines = found.baselines || {};
    const lines = [
      { name: "forecast", values: found.forecast || [], stroke: "#1565c0", width: 3, dash: "" },
      { name: "naive", values: baselines.naive || [], stroke: "#90a4ae", width: 2, dash: "6 4" },
      { name: "seasonal_naive", values: baselines.seasonal_naive || [], stroke: "#ef6c00", width: 2, dash: "2 3" },
    ];
    const n = history.length;
    const h = Math.max(0, ...lines.map((l) => l.values.length));
    const all = [...history, ...lines.flatMap((l) => l.values)].filter(Number.isFinite);
    let lo = all.length ? Math.min(...all) : 0, hi = all.length ? Math.max(...all) : 1;
    if (hi === lo) { lo -= 1; hi += 1; }
    const room = (hi - lo) * 0.05;
    lo -= room; hi += room;
    const span = Math.max(1, n - 1 + h);
    const x = (t) => pad.left + ((t + n - 1) / span) * (W - pad.left - pad.right);
    const y = (v) => pad.top + ((hi - v) / (hi - lo)) * (H - pad.top - pad.bottom);
    const points = (pairs) => pairs.map(([t, v]) => `${x(t).toFixed(1)},${y(v).toFixed(1)}`).join(" ");

    const plot = svg("svg", { viewBox: `0 0 ${W} ${H}`, role: "img", "aria-label": "the series and its forecast" });
    plot.appendChild(svg("rect", { x: pad.left, y: pad.top, width: W - pad.left - pad.right,
      height: H - pad.top - pad.bottom, fill: "none", stroke: "#cfd8dc" }));
    for (let i = 0; i <= 4; i++) {  // y grid and labels
      const v = lo + ((hi - lo) * i) / 4;
      plot.appendChild(svg("line", { x1: pad.left, x2: W - pad.right, y1: y(v), y2: y(v), stroke: "#eceff1" }));
      plot.appendChild(svg("text", { x: pad.left - 6, y: y(v) + 4, "text-anchor": "end", "font-size": 11,
        fill: "#607d8b" }, short(v)));
    }
    const now = x(0);  // the last value seen: the forecast starts after it
    plot.appendChild(svg("line", { x1: now, x2: now, y1: pad.top, y2: H - pad.bottom, stroke: "#b0bec5",
      "stroke-dasharray": "3 3" }));
    const close = x(h) - x(0) < 40;  // a short horizon: "now" steps left of the line, "+h" right of it
    const ticks = [[-(n - 1), `${-(n - 1)}`, "start"], [0, "now", close ? "end" : "middle"],
      [h, `+${h}`, close ? "start" : "middle"]];
    for (const [t, label, anchor] of ticks) {
      if (t === -(n - 1) && n <= 1) continue;
      if (t === h && h === 0) continue;
      const shift = anchor === "end" ? -3 : anchor === "start" && t !== -(n - 1) ? 3 : 0;
      plot.appendChild(svg("text", { x: x(t) + shift, y: H - pad.bottom + 16, "text-anchor": anchor,
        "font-size": 11, fill: "#607d8b" }, label));
    }
    if (n) {
      plot.appendChild(svg("polyline", { points: points(history.map((v, i) => [i - (n - 1), v])),
        fill: "none", stroke: "#263238", "stroke-width": 1.5, "data-series": "history" }));
    }
    const joint = n ? [[0, history[n - 1]]] : [];
    for (const line of lines) {
      if (!line.values.length) continue;
      const attrs = { points: points([...joint, ...line.values.map((v, i) => [i + 1, v])]), fill: "none",
        stroke: line.stroke, "stroke-width": line.width, "data-series": line.name };
      if (line.dash) attrs["stroke-dasharray"] = line.dash;
      plot.appendChild(svg("polyline", attrs));
    }
    if (h <= 100) {  // the forecast's own points, each with its value on hover
      (found.forecast || []).forEach((v, i) => {
        const dot = svg("circle", { cx: x(i + 1), cy: y(v), r: 3, fill: "#1565c0", "data-step": i + 1 });
        dot.appendChild(svg("title", {}, `+${i + 1}: ${v}`));
        plot.appendChild(dot);
      });
    }
    box.replaceChildren(plot);
  }

  // white (0) .. dark blue (1)
  function shade(v) {
    const a = Math.max(0, Math.min(1, v));
    const mix = (from, to) => Math.round(from + (to - from) * a);
    return `rgb(${mix(255, 13)}, ${mix(255, 71)}, ${mix(255, 161)})`;
  }

  // One row per output character (labels) and a column per listener step; rows[r][c] in [0, 1].
  // The geometry goes on the canvas's data attributes, so a test can find the pixel of any cell.
  function drawAttention(canvas, rows, labels) {
    const R = rows.length, C = R ? rows[0].length : 0;
    const cell = { w: Math.max(2, Math.min(32, Math.floor(720 / Math.max(1, C)))), h: 16 };
    const left = 40, top = 4;
    canvas.width = Math.max(260, left + C * cell.w + 4);  // room for the axis label
    canvas.height = top + R * cell.h + 20;
    const ctx = canvas.getContext("2d");
    ctx.fillStyle = "#fff";
    ctx.fillRect(0, 0, canvas.width, canvas.height);
    ctx.font = "12px ui-monospace, monospace";
    ctx.textBaseline = "middle";
    rows.forEach((row, r) => {
      row.forEach((v, c) => {
        ctx.fillStyle = shade(v);
        ctx.fillRect(left + c * cell.w, top + r * cell.h, cell.w, cell.h);
      });
      ctx.fillStyle = "#263238";
      ctx.fillText(labels[r] === undefined ? "" : labels[r], 4, top + r * cell.h + cell.h / 2);
    });
    ctx.fillStyle = "#607d8b";
    ctx.fillText(`listener steps (${C}) \u2192`, left, top + R * cell.h + 11);
    Object.assign(canvas.dataset, { rows: `${R}`, cols: `${C}`, left: `${left}`, top: `${top}`,
      cellWidth: `${cell.w}`, cellHeight: `${cell.h}` });
  }

  return { drawForecast, drawAttention, shade };
})();
