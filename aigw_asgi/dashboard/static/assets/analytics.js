// Analytics: totals, six time-series charts and per-provider / per-model tables for a time range.
// Every number is computed by the log store (GET /admin/analytics); the page only lays it out.

import {api} from "./api.js";
import {PALETTE, timeChart} from "./charts.js";
import {clear, field, h} from "./dom.js";
import {dash, fmtCompact, fmtCost, fmtInt, fmtMs, fmtPct, latency} from "./format.js";

const RANGES = {hour: {label: "Last hour", span: 3600, interval: 60},
                day: {label: "Last day", span: 86400, interval: 3600},
                week: {label: "Last week", span: 7 * 86400, interval: 6 * 3600}};
const NICE_INTERVALS = [60, 300, 900, 1800, 3600, 3 * 3600, 6 * 3600, 12 * 3600, 86400, 7 * 86400];
const REFRESH_MS = 15000;
const MAX_SERIES = 7;

// Kept across view switches, like the filters of a real dashboard tab.
const state = {range: "hour", split: "provider", custom: {start: "", end: ""},
               filters: {provider: "", model: "", token_name: "", metaKey: "", metaValue: ""}};

function window_() {
  if (state.range === "custom") {
    const start = Date.parse(state.custom.start) / 1000;
    const end = state.custom.end ? Date.parse(state.custom.end) / 1000 : Date.now() / 1000;
    if (!Number.isFinite(start) || !Number.isFinite(end) || end <= start) return null;
    const ideal = (end - start) / 60;
    const interval = NICE_INTERVALS.find((i) => i >= ideal) || NICE_INTERVALS.at(-1);
    return {start, end, interval};
  }
  const r = RANGES[state.range];
  const end = Date.now() / 1000;
  return {start: end - r.span, end, interval: r.interval};
}

function filterParams() {
  const f = state.filters;
  const out = {provider: f.provider, model: f.model, token_name: f.token_name};
  if (f.metaKey) out[`metadata.${f.metaKey}`] = f.metaValue;
  return out;
}

function bucketsOf(win) {
  const first = Math.floor(win.start / win.interval) * win.interval;
  const out = [];
  for (let t = first; t <= win.end; t += win.interval) out.push(t);
  return out;
}

function byBucket(groups, buckets) {
  const index = new Map(buckets.map((t, i) => [t, i]));
  return (g) => index.get(Math.round(Date.parse(g.time) / 1000));
}

function splitSeries(groups, buckets, dim, metric) {
  const slot = byBucket(groups, buckets);
  const weight = new Map();
  for (const g of groups) weight.set(g[dim] ?? "(none)", (weight.get(g[dim] ?? "(none)") || 0) + g.requests);
  const names = [...weight.keys()].sort((a, b) => weight.get(b) - weight.get(a));
  const kept = names.slice(0, MAX_SERIES);
  const other = names.length > MAX_SERIES;
  const series = kept.map((name, k) => ({name, color: PALETTE[k % PALETTE.length], values: buckets.map(() => 0)}));
  if (other) series.push({name: "other", color: PALETTE.at(-1), values: buckets.map(() => 0)});
  for (const g of groups) {
    const i = slot(g);
    if (i === undefined) continue;
    const k = kept.indexOf(g[dim] ?? "(none)");
    series[k === -1 ? series.length - 1 : k].values[i] += metric(g);
  }
  return series;
}

function totalSeries(groups, buckets, name, color, metric) {
  const slot = byBucket(groups, buckets);
  const values = buckets.map(() => null);
  for (const g of groups) {
    const i = slot(g);
    if (i !== undefined) values[i] = metric(g);
  }
  return {name, color, values};
}

function totalsCards(t) {
  const card = (label, value, key) => h("div", {class: "card total", "data-total": key},
    h("div", {class: "label", text: label}), h("div", {class: "value", text: value}));
  return h("div", {class: "totals"},
    card("Requests", fmtInt(t.requests), "requests"),
    card("Tokens in", fmtInt(t.tokens_in), "tokens_in"),
    card("Tokens out", fmtInt(t.tokens_out), "tokens_out"),
    card("Cost", fmtCost(t.cost), "cost"),
    card("Cache hit rate", fmtPct(t.cache_hit_rate), "cache_hit_rate"),
    card("Errors", fmtInt(t.errors), "errors"),
    card("Latency p50", fmtMs(latency(t, "p50")), "p50"),
    card("Latency p95", fmtMs(latency(t, "p95")), "p95"));
}

function breakdown(title, dim, groups) {
  const num = (text) => h("td", {class: "num", text});
  return h("section", {class: "stack", "aria-label": title},
    h("h2", {text: title}),
    h("div", {class: "table-wrap"}, h("table", {"data-breakdown": dim},
      h("thead", {}, h("tr", {}, ["Name", "Requests", "Errors", "Hit rate", "Tokens in", "Tokens out", "Cost", "p50", "p95"]
        .map((c, i) => h("th", {scope: "col", class: i ? "num" : undefined, text: c})))),
      h("tbody", {}, groups.length ? groups.map((g) => h("tr", {},
        h("td", {text: g[dim] ?? "(none)"}), num(fmtInt(g.requests)), num(fmtInt(g.errors)), num(fmtPct(g.cache_hit_rate)),
        num(fmtInt(g.tokens_in)), num(fmtInt(g.tokens_out)), num(fmtCost(g.cost)),
        num(fmtMs(latency(g, "p50"))), num(fmtMs(latency(g, "p95")))))
        : h("tr", {}, h("td", {colspan: 9, class: "muted", text: "No requests in this range."}))))));
}

export function mount(root) {
  let timer = null;
  let seq = 0;
  const status = h("p", {class: "status-line muted", role: "status", "aria-live": "polite"});
  const body = h("div", {class: "stack"});

  const rangeButtons = [...Object.entries(RANGES), ["custom", {label: "Custom"}]].map(([key, r]) =>
    h("button", {type: "button", "aria-pressed": String(state.range === key), "data-range": key, text: r.label,
      onclick: () => { state.range = key; sync(); load(); }}));
  const splitButtons = ["provider", "model"].map((key) =>
    h("button", {type: "button", "aria-pressed": String(state.split === key), "data-split": key, text: `By ${key}`,
      onclick: () => { state.split = key; sync(); load(); }}));
  const startInput = h("input", {type: "datetime-local", value: state.custom.start, onchange: (e) => { state.custom.start = e.target.value; load(); }});
  const endInput = h("input", {type: "datetime-local", value: state.custom.end, onchange: (e) => { state.custom.end = e.target.value; load(); }});
  const custom = h("div", {class: "toolbar"}, field("From", startInput), field("To (empty: now)", endInput));

  const inputs = {};
  const filterField = (label, key, list) => {
    inputs[key] = h("input", {type: "text", name: key, value: state.filters[key], list, autocomplete: "off", spellcheck: "false"});
    return field(label, inputs[key]);
  };
  const providerList = h("datalist", {id: "providers-list"});
  const modelList = h("datalist", {id: "models-list"});
  const filters = h("form", {class: "toolbar", "aria-label": "Filters", onsubmit: (e) => {
      e.preventDefault();
      for (const key of Object.keys(inputs)) state.filters[key] = inputs[key].value.trim();
      load();
    }},
    filterField("Provider", "provider", "providers-list"), filterField("Model", "model", "models-list"),
    filterField("Key name", "token_name"), filterField("Metadata key", "metaKey"), filterField("Metadata value", "metaValue"),
    h("button", {type: "submit", text: "Apply"}),
    h("button", {type: "button", class: "ghost", text: "Clear", onclick: () => {
      for (const key of Object.keys(inputs)) { inputs[key].value = ""; state.filters[key] = ""; }
      load();
    }}),
    providerList, modelList);

  function sync() {
    for (const b of rangeButtons) b.setAttribute("aria-pressed", String(b.dataset.range === state.range));
    for (const b of splitButtons) b.setAttribute("aria-pressed", String(b.dataset.split === state.split));
    custom.hidden = state.range !== "custom";
  }

  async function load() {
    const mine = ++seq;
    const win = window_();
    if (!win) { status.textContent = "Choose a start and an end for the custom range."; return; }
    const base = {...filterParams(), start: win.start.toFixed(3), end: win.end.toFixed(3)};
    const timed = {...base, interval: win.interval};
    status.textContent = "Loading…";
    try {
      const [split, overall, providers, models] = await Promise.all([
        api("analytics", {params: {...timed, group_by: `time,${state.split}`}}),
        api("analytics", {params: {...timed, group_by: "time"}}),
        api("analytics", {params: {...base, group_by: "provider"}}),
        api("analytics", {params: {...base, group_by: "model"}}),
      ]);
      if (mine !== seq) return;
      render(win, split.result, overall.result, providers.result, models.result);
      status.textContent = `Updated ${new Date().toLocaleTimeString()}`;
    } catch (err) {
      if (mine === seq) status.textContent = `Could not load analytics: ${err.message}`;
    }
  }

  function render(win, split, overall, providers, models) {
    const buckets = bucketsOf(win);
    const t = providers.totals;
    const dim = state.split;
    const s = (metric) => splitSeries(split.groups, buckets, dim, metric);
    const tokens = [totalSeries(overall.groups, buckets, "Tokens in", PALETTE[1], (g) => g.tokens_in),
                    totalSeries(overall.groups, buckets, "Tokens out", PALETTE[0], (g) => g.tokens_out)];
    const hit = totalSeries(overall.groups, buckets, "Cache hit rate", PALETTE[2], (g) => (g.requests ? g.cache_hit_rate : null));
    const p50 = totalSeries(overall.groups, buckets, "p50", PALETTE[1], (g) => latency(g, "p50"));
    const p95 = totalSeries(overall.groups, buckets, "p95", PALETTE[0], (g) => latency(g, "p95"));
    const reported = overall.groups.length === 0 || overall.groups.some((g) => latency(g, "p50") !== null);
    const common = {buckets, interval: win.interval};
    const charts = h("div", {class: "charts"},
      timeChart({...common, title: "Requests", summary: fmtInt(t.requests), series: s((g) => g.requests), format: fmtCompact, integer: true}),
      timeChart({...common, title: "Tokens", summary: `in ${fmtCompact(t.tokens_in)} · out ${fmtCompact(t.tokens_out)}`, series: tokens, format: fmtCompact, integer: true}),
      timeChart({...common, title: "Cost", summary: fmtCost(t.cost), series: s((g) => g.cost || 0), format: fmtCost}),
      timeChart({...common, title: "Cache hit rate", summary: fmtPct(t.cache_hit_rate), series: [hit], kind: "line", format: fmtPct}),
      timeChart({...common, title: "Errors", summary: fmtInt(t.errors), series: s((g) => g.errors), format: fmtCompact, integer: true}),
      timeChart({...common, title: "Latency", kind: "line", series: [p50, p95], format: fmtMs,
        summary: reported ? `p50 ${fmtMs(latency(t, "p50"))} · p95 ${fmtMs(latency(t, "p95"))}` : `${dash} (not reported by this log store)`}));
    clear(providerList).append(...providers.groups.filter((g) => g.provider).map((g) => h("option", {value: g.provider})));
    clear(modelList).append(...models.groups.filter((g) => g.model).map((g) => h("option", {value: g.model})));
    clear(body).append(totalsCards(t), charts,
      breakdown("By provider", "provider", providers.groups), breakdown("By model", "model", models.groups));
  }

  root.append(h("div", {class: "stack"},
    h("div", {class: "toolbar"}, h("h1", {class: "grow", text: "Analytics"}),
      h("div", {class: "segmented", role: "group", "aria-label": "Time range"}, rangeButtons),
      h("div", {class: "segmented", role: "group", "aria-label": "Split charts"}, splitButtons),
      h("button", {type: "button", class: "ghost", text: "Refresh", onclick: () => load()})),
    custom, filters, status, body));
  sync();
  load();
  timer = setInterval(() => {
    if (state.range !== "custom" && document.visibilityState === "visible") load();
  }, REFRESH_MS);
  return {unmount() { clearInterval(timer); seq++; }};
}
