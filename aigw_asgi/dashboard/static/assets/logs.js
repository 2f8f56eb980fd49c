// Logs: a table that refreshes itself, the admin API's filters, a detail pane with the redacted
// bodies, feedback and score (PATCH), and delete-by-filter behind a confirmation.
//
// Live refresh re-reads page 1 of the current filter every POLL_MS while the tab is visible. A
// created_at cursor would miss rows: a row is written when its request *ends* but is ordered by
// when it *started*, so a long stream lands behind rows that were already shown.

import {api} from "./api.js";
import {clear, confirmAction, field, h, svg} from "./dom.js";
import {dash, fmtCost, fmtInt, fmtMs, fmtTime} from "./format.js";

const POLL_MS = 2000;
const PER_PAGE = 50;

const state = {page: 1, live: true, selected: null,
               filters: {provider: "", model: "", success: "", cached: "", token_name: "", event_id: "", metaKey: "", metaValue: ""}};

function filterParams() {
  const f = state.filters;
  const out = {provider: f.provider, model: f.model, success: f.success, cached: f.cached,
               token_name: f.token_name, event_id: f.event_id};
  if (f.metaKey) out[`metadata.${f.metaKey}`] = f.metaValue;
  return out;
}

function describeFilters() {
  const parts = Object.entries(filterParams()).filter(([, v]) => v !== "" && v !== undefined).map(([k, v]) => `${k}=${v}`);
  return parts.join(", ");
}

function metaText(meta) {
  if (!meta) return "";
  return Object.entries(meta).map(([k, v]) => `${k}=${v}`).join(", ");
}

function statusBadge(row) {
  return h("span", {class: `badge ${row.success ? "ok" : "err"}`, text: row.status_code ?? "—",
    title: row.error || (row.success ? "success" : "failed")});
}

function cacheBadge(row) {
  if (row.cached) return h("span", {class: "badge hit", text: "HIT"});
  return row.cache_status ? h("span", {class: "muted", text: row.cache_status}) : dash;
}

function pretty(text) {
  if (text === null || text === undefined) return null;
  if (/^\s*[[{]/.test(text)) {
    try { return JSON.stringify(JSON.parse(text), null, 2); } catch { /* a stream or a cut body: as is */ }
  }
  return text;
}

/** A thumb icon drawn inline (an emoji would need a colour-emoji font the machine may not have). */
function thumb(down) {
  return svg("svg", {viewBox: "0 0 24 24", width: 18, height: 18, "aria-hidden": "true", class: "icon"},
    svg("path", {transform: down ? "rotate(180 12 12)" : undefined, fill: "currentColor",
      d: "M2 10h4v11H2zM8 21h9.3a2 2 0 0 0 2-1.6l1.5-7.2A2 2 0 0 0 18.8 10H14l.8-4.1A1.7 1.7 0 0 0 11.8 4.6L8 10z"}));
}

const COLUMNS = ["Time", "Status", "Provider", "Model", "Tokens in/out", "Cost", "Cached", "Duration", "TTFT", "Step", "Event ID", "Key", "Metadata"];
const NUMERIC = new Set(["Tokens in/out", "Cost", "Duration", "TTFT", "Step"]);

export function mount(root) {
  let timer = null;
  let loading = false;
  let known = null; // ids shown by the previous load: rows not in it are new
  let total = 0;
  let alive = true;

  const status = h("p", {class: "status-line muted", role: "status", "aria-live": "polite"});
  const tbody = h("tbody");
  const table = h("table", {"aria-label": "Request logs"},
    h("thead", {}, h("tr", {}, COLUMNS.map((c) => h("th", {scope: "col", class: NUMERIC.has(c) ? "num" : undefined, text: c})))),
    tbody);
  const pageInfo = h("span", {class: "muted"});
  const prev = h("button", {type: "button", class: "ghost", text: "‹ Newer", onclick: () => { state.page--; known = null; load(); }});
  const next = h("button", {type: "button", class: "ghost", text: "Older ›", onclick: () => { state.page++; known = null; load(); }});
  const detail = h("aside", {class: "card detail", "aria-label": "Log detail", hidden: true});
  const layout = h("div", {class: "logs-layout"}, h("div", {}, h("div", {class: "table-wrap"}, table), h("div", {class: "pager"}, pageInfo, prev, next)), detail);

  const inputs = {};
  const text = (label, key) => {
    inputs[key] = h("input", {type: "text", name: key, value: state.filters[key], autocomplete: "off", spellcheck: "false"});
    return field(label, inputs[key]);
  };
  const select = (label, key, options) => {
    inputs[key] = h("select", {name: key}, options.map(([value, name]) => h("option", {value, text: name, selected: state.filters[key] === value})));
    return field(label, inputs[key]);
  };
  const liveBox = h("input", {type: "checkbox", name: "live", checked: state.live, onchange: (e) => { state.live = e.target.checked; }});
  const filters = h("form", {class: "toolbar", "aria-label": "Filters", onsubmit: (e) => {
      e.preventDefault();
      for (const key of Object.keys(inputs)) state.filters[key] = inputs[key].value.trim();
      state.page = 1;
      known = null;
      load();
    }},
    text("Provider", "provider"), text("Model", "model"),
    select("Status", "success", [["", "Any"], ["true", "Success"], ["false", "Error"]]),
    select("Cached", "cached", [["", "Any"], ["true", "Cache hit"], ["false", "Not cached"]]),
    text("Key name", "token_name"), text("Event ID", "event_id"), text("Metadata key", "metaKey"), text("Metadata value", "metaValue"),
    h("button", {type: "submit", text: "Apply"}),
    h("button", {type: "button", class: "ghost", text: "Clear", onclick: () => {
      for (const key of Object.keys(inputs)) { inputs[key].value = ""; state.filters[key] = ""; }
      state.page = 1;
      known = null;
      load();
    }}));

  async function deleteMatching() {
    const described = describeFilters();
    const ok = await confirmAction(
      described ? "Delete matching logs" : "Delete every log",
      described ? `Delete the ${fmtInt(total)} logs matching ${described}? This cannot be undone.`
                : `No filter is set: this deletes all ${fmtInt(total)} logs of this gateway. This cannot be undone.`,
      "Delete");
    if (!ok) return;
    try {
      const params = described ? filterParams() : {all: "true"};
      const {result} = await api("logs", {method: "DELETE", params});
      status.textContent = `Deleted ${fmtInt(result.deleted)} logs.`;
      closeDetail();
      known = null;
      load(true);
    } catch (err) {
      status.textContent = `Delete failed: ${err.message}`;
    }
  }

  function row(r, fresh) {
    const tr = h("tr", {class: `clickable${fresh ? " new" : ""}`, tabindex: 0, "data-id": r.id,
      "aria-selected": String(state.selected === r.id),
      onclick: () => openDetail(r.id),
      onkeydown: (e) => { if (e.key === "Enter" || e.key === " ") { e.preventDefault(); openDetail(r.id); } }},
      h("td", {text: fmtTime(r.created_at), title: r.created_at}),
      h("td", {}, statusBadge(r)),
      h("td", {text: r.provider ?? dash}),
      h("td", {text: r.model ?? dash}),
      h("td", {class: "num", text: r.tokens_in === null && r.tokens_out === null ? dash : `${fmtInt(r.tokens_in ?? 0)} / ${fmtInt(r.tokens_out ?? 0)}`}),
      h("td", {class: "num", text: fmtCost(r.cost)}),
      h("td", {}, cacheBadge(r)),
      h("td", {class: "num", text: fmtMs(r.duration_ms)}),
      h("td", {class: "num", text: fmtMs(r.ttft_ms)}),
      h("td", {class: "num", text: String(r.step ?? 0)}),
      h("td", {class: "mono", text: r.event_id || dash}),
      h("td", {text: r.token_name ?? dash}),
      h("td", {class: "meta", text: metaText(r.metadata) || dash, title: metaText(r.metadata)}));
    return tr;
  }

  async function load(quiet = false) {
    if (loading) return;
    loading = true;
    try {
      const {result, result_info: info} = await api("logs", {params: {...filterParams(), page: state.page, per_page: PER_PAGE}});
      if (!alive) return;
      total = info.total_count;
      const ids = new Set(result.map((r) => r.id));
      clear(tbody).append(...(result.length
        ? result.map((r) => row(r, known !== null && !known.has(r.id)))
        : [h("tr", {}, h("td", {colspan: COLUMNS.length, class: "muted", text: "No logs match."}))]));
      known = ids;
      const first = (state.page - 1) * PER_PAGE;
      pageInfo.textContent = total ? `${fmtInt(first + 1)}–${fmtInt(first + result.length)} of ${fmtInt(total)}` : "0 logs";
      prev.disabled = state.page <= 1;
      next.disabled = first + result.length >= total;
      if (!quiet) status.textContent = "";
    } catch (err) {
      if (alive) status.textContent = `Could not load logs: ${err.message}`;
    } finally {
      loading = false;
    }
  }

  function closeDetail() {
    state.selected = null;
    detail.hidden = true;
    layout.classList.remove("with-detail");
    for (const tr of tbody.querySelectorAll("tr[aria-selected='true']")) tr.setAttribute("aria-selected", "false");
  }

  async function openDetail(id) {
    state.selected = id;
    for (const tr of tbody.querySelectorAll("tr[data-id]")) tr.setAttribute("aria-selected", String(tr.dataset.id === id));
    layout.classList.add("with-detail");
    detail.hidden = false;
    if (window.matchMedia("(max-width: 1000px)").matches) detail.scrollIntoView({block: "start"});
    clear(detail).append(h("p", {class: "muted", text: "Loading…"}));
    let r;
    try {
      r = (await api(`logs/${encodeURIComponent(id)}`, {params: {bodies: "true"}})).result;
    } catch (err) {
      clear(detail).append(h("p", {class: "error", text: `Could not load the log: ${err.message}`}));
      return;
    }
    if (state.selected !== id) return;
    renderDetail(r);
  }

  function renderDetail(r) {
    const saved = h("p", {class: "status-line", role: "status", "aria-live": "polite"});
    const patch = async (changes) => {
      try {
        const {result} = await api(`logs/${encodeURIComponent(r.id)}`, {method: "PATCH", body: changes});
        Object.assign(r, result);
        saved.className = "status-line ok";
        saved.textContent = "Saved.";
        sync();
      } catch (err) {
        saved.className = "status-line error";
        saved.textContent = `Not saved: ${err.message}`;
      }
    };
    const up = h("button", {type: "button", class: "ghost thumb", "data-feedback": "1", title: "👍 Good answer (feedback 1)",
      onclick: () => patch({feedback: r.feedback === 1 ? null : 1})}, thumb(false), "Good");
    const down = h("button", {type: "button", class: "ghost thumb", "data-feedback": "-1", title: "👎 Bad answer (feedback -1)",
      onclick: () => patch({feedback: r.feedback === -1 ? null : -1})}, thumb(true), "Bad");
    const score = h("input", {type: "number", min: 0, max: 100, step: "any", name: "score", value: r.score ?? ""});
    const sync = () => {
      up.setAttribute("aria-pressed", String(r.feedback === 1));
      down.setAttribute("aria-pressed", String(r.feedback === -1));
      score.value = r.score ?? "";
    };
    sync();
    const fields = [
      ["ID", r.id], ["Time", r.created_at], ["Status", `${r.status_code ?? dash}${r.success ? "" : " (failed)"}`],
      ["Provider", r.provider], ["Model", r.model], ["Path", `${r.method} ${r.path}`],
      ["Tokens", `${fmtInt(r.tokens_in)} in / ${fmtInt(r.tokens_out)} out${r.cached_tokens_in ? ` (${fmtInt(r.cached_tokens_in)} cached)` : ""}`],
      ["Cost", `${fmtCost(r.cost)}${r.custom_cost ? " (custom)" : ""}`], ["Duration", fmtMs(r.duration_ms)], ["TTFT", fmtMs(r.ttft_ms)],
      ["Cache", r.cache_status], ["Cache key", r.cache_key], ["Stream", r.stream ? "yes" : "no"],
      ["Step / attempt", `${r.step} / ${r.attempt}`], ["Event ID", r.event_id], ["Request ID", r.request_id],
      ["Key name", r.token_name], ["Client", r.client_ip], ["User agent", r.user_agent],
      ["Metadata", metaText(r.metadata)], ["Error", r.error], ["Rate limited by", r.rate_limited_by],
    ].filter(([, v]) => v !== null && v !== undefined && v !== "");
    const body = (title, text) => h("section", {"aria-label": `${title} body`}, h("h3", {text: title}),
      text === null || text === undefined ? h("p", {class: "muted", text: "Not stored."}) : h("pre", {"data-body": title.toLowerCase(), text: pretty(text)}));
    clear(detail).append(
      h("header", {}, h("h2", {text: "Log detail"}),
        h("button", {type: "button", class: "ghost", "aria-label": "Close detail", text: "✕", onclick: closeDetail})),
      h("div", {class: "feedback", role: "group", "aria-label": "Feedback"}, up, down,
        field("Score (0–100)", score),
        h("button", {type: "button", text: "Save score", onclick: () => patch({score: score.value === "" ? null : Number(score.value)})})),
      saved,
      h("dl", {}, fields.map(([k, v]) => [h("dt", {text: k}), h("dd", {text: String(v)})])),
      body("Request", r.request_body), body("Response", r.response_body),
      h("button", {type: "button", class: "danger", text: "Delete this log", onclick: async () => {
        if (!(await confirmAction("Delete log", `Delete log ${r.id}? This cannot be undone.`, "Delete"))) return;
        try {
          await api(`logs/${encodeURIComponent(r.id)}`, {method: "DELETE"});
          closeDetail();
          load();
        } catch (err) {
          saved.className = "status-line error";
          saved.textContent = `Not deleted: ${err.message}`;
        }
      }}));
  }

  root.append(h("div", {class: "stack"},
    h("div", {class: "toolbar"}, h("h1", {class: "grow", text: "Logs"}),
      h("label", {class: "check"}, liveBox, "Live (every 2 s)"),
      h("button", {type: "button", class: "ghost", text: "Refresh", onclick: () => load()}),
      h("button", {type: "button", class: "danger", text: "Delete matching…", onclick: deleteMatching})),
    filters, status, layout));
  load();
  if (state.selected) openDetail(state.selected);
  timer = setInterval(() => {
    if (state.live && state.page === 1 && document.visibilityState === "visible") load(true);
  }, POLL_MS);
  return {unmount() { alive = false; clearInterval(timer); }};
}
