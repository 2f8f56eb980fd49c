// Inline SVG time-series charts: stacked bars for counts and money, lines for rates and latency.
// Each chart carries a <title> per bucket (hover tooltip, read by screen readers) and a data table.

import {h, svg} from "./dom.js";
import {fmtBucket} from "./format.js";

export const PALETTE = ["#f38020", "#2f7ed8", "#1a9e77", "#a05195", "#d45087", "#8a8d00", "#e15759", "#5f6b7a"];

const W = 600, H = 210, ML = 62, MR = 10, MT = 10, MB = 28;

function niceMax(max, integer) {
  if (integer) {
    // Counts: the middle grid line must be a whole number too.
    const top = niceMax(Math.max(max, 2), false);
    return Math.ceil(top / 2) * 2;
  }
  if (!(max > 0)) return 1;
  const step = 10 ** Math.floor(Math.log10(max));
  for (const m of [1, 1.2, 1.5, 2, 2.5, 3, 4, 5, 6, 8, 10]) if (m * step >= max) return m * step;
  return 10 * step;
}

/**
 * timeChart({title, summary, buckets, interval, series: [{name, color, values}], kind, format})
 * buckets: bucket starts (epoch seconds); values: one number (or null) per bucket.
 */
export function timeChart({title, summary, buckets, interval, series, kind = "bar", format = String, integer = false}) {
  const n = buckets.length;
  const pw = W - ML - MR, ph = H - MT - MB;
  const slot = n ? pw / n : pw;
  let max = 0;
  for (let i = 0; i < n; i++) {
    if (kind === "bar") max = Math.max(max, series.reduce((sum, s) => sum + (s.values[i] || 0), 0));
    else for (const s of series) if (s.values[i] !== null && s.values[i] !== undefined) max = Math.max(max, s.values[i]);
  }
  // Bars: something above zero; lines: any point at all (a 0 % hit rate is data).
  const hasData = series.some((s) => s.values.some((v) => v !== null && v !== undefined && (kind === "line" || v !== 0)));
  const top = niceMax(max, integer);
  const y = (v) => MT + ph - (v / top) * ph;
  const label = `${title}: ${summary || ""}`;
  const root = svg("svg", {viewBox: `0 0 ${W} ${H}`, role: "img", "aria-label": label});

  for (const frac of [0, 0.5, 1]) {
    const yy = y(top * frac);
    root.append(
      svg("line", {class: "grid", x1: ML, x2: W - MR, y1: yy, y2: yy}),
      svg("text", {class: "axis", x: ML - 6, y: yy + 3, "text-anchor": "end", text: format(top * frac)}),
    );
  }
  const labels = Math.min(n, 5);
  let lastDay = "";
  for (let k = 0; k < labels; k++) {
    const i = labels === 1 ? 0 : Math.round((k * (n - 1)) / (labels - 1));
    const anchor = k === 0 ? "start" : k === labels - 1 ? "end" : "middle";
    const x = anchor === "start" ? ML : anchor === "end" ? W - MR : ML + (i + 0.5) * slot;
    // The date only where it changes: "Dec 5 20:00", "23:00", "Dec 6 02:00"…
    const day = new Date(buckets[i] * 1000).toDateString();
    const text = fmtBucket(buckets[i], interval, day === lastDay);
    lastDay = day;
    root.append(svg("text", {class: "axis", x, y: H - 8, "text-anchor": anchor, text}));
  }

  if (kind === "bar") {
    const bw = Math.max(1, slot * 0.72);
    const bars = svg("g", {class: "bars"});
    for (let i = 0; i < n; i++) {
      let acc = 0;
      for (const s of series) {
        const v = s.values[i] || 0;
        if (v <= 0) continue;
        const y0 = y(acc), y1 = y(acc + v);
        acc += v;
        bars.append(svg("rect", {x: ML + i * slot + (slot - bw) / 2, y: y1, width: bw, height: Math.max(1, y0 - y1), fill: s.color}));
      }
    }
    root.append(bars);
  } else {
    for (const s of series) {
      const g = svg("g", {class: "line"});
      let run = [];
      const flush = () => {
        if (run.length > 1) g.append(svg("polyline", {points: run.join(" "), fill: "none", stroke: s.color, "stroke-width": 2, "stroke-linejoin": "round"}));
        run = [];
      };
      for (let i = 0; i < n; i++) {
        const v = s.values[i];
        if (v === null || v === undefined) { flush(); continue; }
        const x = ML + (i + 0.5) * slot, yy = y(v);
        run.push(`${x.toFixed(1)},${yy.toFixed(1)}`);
        g.append(svg("circle", {cx: x, cy: yy, r: n > 90 ? 1.5 : 2.5, fill: s.color}));
      }
      flush();
      root.append(g);
    }
  }
  if (!hasData) root.append(svg("text", {class: "empty", x: ML + pw / 2, y: MT + ph / 2, "text-anchor": "middle", text: "No data in this range"}));

  // One transparent column per bucket: the hover highlight and its tooltip.
  const hover = svg("g", {});
  for (let i = 0; i < n; i++) {
    const lines = series.map((s) => `${s.name}: ${s.values[i] === null || s.values[i] === undefined ? "—" : format(s.values[i])}`);
    hover.append(svg("rect", {class: "hover", x: ML + i * slot, y: MT, width: slot, height: ph},
      svg("title", {text: `${fmtBucket(buckets[i], interval)}\n${lines.join("\n")}`})));
  }
  root.append(hover);

  const legend = h("div", {class: "legend"}, series.map((s) => {
    const swatch = h("i");
    swatch.style.background = s.color;
    return h("span", {}, swatch, s.name);
  }));

  const rows = [];
  for (let i = 0; i < n; i++) {
    if (!series.some((s) => s.values[i])) continue;
    rows.push(h("tr", {}, h("td", {text: fmtBucket(buckets[i], interval)}),
      series.map((s) => h("td", {class: "num", text: s.values[i] === null || s.values[i] === undefined ? "—" : format(s.values[i])}))));
  }
  const table = h("details", {class: "data"}, h("summary", {text: "Data"}),
    rows.length
      ? h("table", {}, h("thead", {}, h("tr", {}, h("th", {scope: "col", text: "Time"}), series.map((s) => h("th", {scope: "col", class: "num", text: s.name})))), h("tbody", {}, rows))
      : h("p", {class: "muted", text: "No data in this range."}));

  return h("figure", {class: "card chart", "data-chart": title},
    h("figcaption", {}, h("h2", {text: title}), h("span", {class: "sum", text: summary || ""})),
    root, legend, table);
}
