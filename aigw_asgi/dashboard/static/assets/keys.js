// Keys & budgets: the gateway keys of GET /admin/keys (create, rotate, revoke) and the spend of
// every budget from GET /admin/budgets. A new key's secret exists in this page only inside the
// one-time panel: never in sessionStorage/localStorage, never in a variable that outlives it.

import {api} from "./api.js";
import {clear, confirmAction, field, h, svg} from "./dom.js";
import {dash, fmtCost, fmtInt, fmtTime} from "./format.js";

const PERIODS = ["day", "week", "month", "total"];

/** "a, b ,c" -> ["a", "b", "c"]; empty -> undefined (the field is left out: no restriction). */
function list(text) {
  const items = text.split(",").map((s) => s.trim()).filter(Boolean);
  return items.length ? items : undefined;
}

function fmtSeconds(s) {
  if (s % 86400 === 0) return s === 86400 ? "day" : `${s / 86400} days`;
  if (s % 3600 === 0) return s === 3600 ? "hour" : `${s / 3600} h`;
  if (s % 60 === 0) return s === 60 ? "minute" : `${s / 60} min`;
  return `${s} s`;
}

function fmtRate(r) {
  return r ? `${fmtInt(r.limit)} ${r.unit} / ${fmtSeconds(r.period)}` : dash;
}

function fmtBudget(b) {
  return b ? `${fmtCost(b.usd)} / ${b.period}` : dash;
}

function statusBadge(status) {
  return h("span", {class: `badge ${status === "active" ? "ok" : "err"}`, text: status});
}

/** Spent, reserved and what is left of a budget as one bar; the numbers are in the cells beside it. */
function bar(entry) {
  const usd = entry.usd || 0;
  const part = (x) => (usd > 0 ? Math.max(0, Math.min(1, x / usd)) : 0);
  const spent = part(entry.spent) * 100;
  const reserved = Math.min(part(entry.reserved) * 100, 100 - spent);
  return svg("svg", {class: "budget-bar", viewBox: "0 0 100 8", preserveAspectRatio: "none", role: "img",
      "aria-label": `${fmtCost(entry.spent)} spent and ${fmtCost(entry.reserved)} reserved of ${fmtCost(usd)}`},
    svg("rect", {class: "track", x: 0, y: 0, width: 100, height: 8, rx: 2}),
    svg("rect", {class: "spent", x: 0, y: 0, width: spent, height: 8}),
    svg("rect", {class: "reserved", x: spent, y: 0, width: reserved, height: 8}));
}

function scopeText(entry) {
  const values = Object.entries(entry.scope_value || {});
  if (!values.length) return entry.scope.join(", ");
  return values.map(([k, v]) => `${k}=${v}`).join(", ");
}

export function mount(root) {
  let alive = true;
  const status = h("p", {class: "status-line", role: "status", "aria-live": "polite"});
  const say = (text, ok = true) => { status.className = `status-line ${ok ? "ok" : "error"}`; status.textContent = text; };

  // The one-time panel. The secret lives in its read-only input and nowhere else.
  const secretInput = h("input", {type: "text", readOnly: true, class: "mono secret", "data-secret": "", autocomplete: "off", spellcheck: "false"});
  const secretTitle = h("h2", {id: "secret-title", tabindex: "-1"});
  const copyStatus = h("span", {class: "muted", role: "status", "aria-live": "polite"});
  const secretPanel = h("section", {class: "card stack secret-panel", "aria-labelledby": "secret-title", hidden: true},
    secretTitle,
    h("p", {}, h("strong", {text: "Copy it now: you won't see it again."}),
      " The gateway keeps only its SHA-256, and this page does not store it; once you dismiss this panel or leave the page it is gone (rotate the key for a new one)."),
    field("Key", secretInput),
    h("div", {class: "actions-row"},
      h("button", {type: "button", "data-copy": "", text: "Copy", onclick: copy}),
      h("button", {type: "button", class: "ghost", text: "Dismiss", onclick: dismiss}),
      copyStatus));

  function showSecret(title, secret) {
    secretTitle.textContent = title;
    secretInput.value = secret;
    copyStatus.textContent = "";
    secretPanel.hidden = false;
    secretTitle.focus();
  }

  function dismiss() {
    secretInput.value = "";
    secretPanel.hidden = true;
    copyStatus.textContent = "";
  }

  async function copy() {
    secretInput.focus();
    secretInput.select();
    try {
      await navigator.clipboard.writeText(secretInput.value);
      copyStatus.textContent = "Copied.";
    } catch {
      // No clipboard permission (an insecure origin, a locked-down browser): the text is selected.
      copyStatus.textContent = "Selected: press Ctrl+C (⌘C) to copy.";
    }
  }

  // Create.
  const name = h("input", {type: "text", name: "name", required: true, maxLength: 64, autocomplete: "off", spellcheck: "false",
    pattern: "[A-Za-z0-9][A-Za-z0-9._:@+\\-]{0,63}", placeholder: "team-a"});
  const expires = h("input", {type: "datetime-local", name: "expires_at"});
  const providers = h("input", {type: "text", name: "allowed_providers", autocomplete: "off", spellcheck: "false", placeholder: "all (e.g. openai, anthropic)"});
  const models = h("input", {type: "text", name: "allowed_models", autocomplete: "off", spellcheck: "false", placeholder: "all (e.g. gpt-4o*, claude-*)"});
  const rateLimit = h("input", {type: "number", name: "rate_limit", min: 1, step: 1, placeholder: "none"});
  const ratePeriod = h("select", {name: "rate_period"},
    [["60", "per minute"], ["3600", "per hour"], ["86400", "per day"]].map(([v, t]) => h("option", {value: v, text: t})));
  const rateUnit = h("select", {name: "rate_unit"}, ["requests", "tokens"].map((u) => h("option", {value: u, text: u})));
  const budgetUsd = h("input", {type: "number", name: "budget_usd", min: 0.01, step: 0.01, placeholder: "none"});
  const budgetPeriod = h("select", {name: "budget_period"}, PERIODS.map((p) => h("option", {value: p, text: p, selected: p === "month" ? "" : false})));
  const createButton = h("button", {type: "submit", text: "Create key"});
  const form = h("form", {class: "card stack", "aria-labelledby": "create-title", onsubmit: create},
    h("h2", {id: "create-title", text: "Create a key"}),
    h("div", {class: "form-grid"},
      field("Name", name),
      field("Expires (local time, empty: never)", expires),
      field("Allowed providers (comma-separated)", providers),
      field("Allowed models (globs, comma-separated)", models),
      h("fieldset", {class: "group"}, h("legend", {text: "Rate limit (optional)"}),
        field("Rate limit", rateLimit),
        h("div", {class: "inline"}, field("Rate window", ratePeriod), field("Rate unit", rateUnit))),
      h("fieldset", {class: "group"}, h("legend", {text: "Spend budget (optional)"}),
        field("Budget (USD)", budgetUsd),
        field("Budget period", budgetPeriod))),
    h("div", {}, createButton));

  async function create(event) {
    event.preventDefault();
    const body = {name: name.value.trim()};
    if (expires.value) body.expires_at = Math.floor(new Date(expires.value).getTime() / 1000);
    const p = list(providers.value);
    if (p) body.allowed_providers = p;
    const m = list(models.value);
    if (m) body.allowed_models = m;
    if (rateLimit.value) body.rate_limit = {limit: Number(rateLimit.value), period: Number(ratePeriod.value), unit: rateUnit.value};
    if (budgetUsd.value) body.budget = {usd: Number(budgetUsd.value), period: budgetPeriod.value};
    createButton.disabled = true;
    try {
      const {result} = await api("keys", {method: "POST", body});
      if (!alive) return;
      form.reset();
      say(`Created key ${result.name}.`);
      showSecret(`New key ${result.name}`, result.key);
      refresh();
    } catch (err) {
      if (alive) say(`Could not create the key: ${err.message}`, false);
    } finally {
      createButton.disabled = false;
    }
  }

  // The list.
  const filter = h("select", {name: "status"},
    [["", "All"], ["active", "Active"], ["expired", "Expired"], ["revoked", "Revoked"]].map(([v, t]) => h("option", {value: v, text: t})));
  filter.addEventListener("change", () => loadKeys());
  const keysBody = h("tbody", {});
  const keysNote = h("p", {class: "muted", text: "Loading…"});
  const keysTable = h("div", {class: "table-wrap"}, h("table", {"data-table": "keys"},
    h("caption", {class: "visually-hidden", text: "Gateway keys"}),
    h("thead", {}, h("tr", {}, ["Name", "Prefix", "Status", "Expires", "Providers", "Models", "Rate limit", "Budget", "Created", "Actions"]
      .map((c) => h("th", {scope: "col", text: c})))),
    keysBody));

  async function rotate(key) {
    if (!(await confirmAction("Rotate key", `Give ${key.name} a new secret? The current one (${key.prefix}…) stops working at once; policy, rate limit and spend stay.`, "Rotate"))) return;
    try {
      const {result} = await api(`keys/${encodeURIComponent(key.id)}/rotate`, {method: "POST"});
      if (!alive) return;
      say(`Rotated key ${result.name}.`);
      showSecret(`New secret for ${result.name}`, result.key);
      refresh();
    } catch (err) {
      if (alive) say(`Could not rotate ${key.name}: ${err.message}`, false);
    }
  }

  async function revoke(key) {
    if (!(await confirmAction("Revoke key", `Revoke ${key.name} (${key.prefix}…)? Every request with it is refused from now on (401, code 2033). This cannot be undone.`, "Revoke"))) return;
    try {
      await api(`keys/${encodeURIComponent(key.id)}`, {method: "DELETE"});
      if (!alive) return;
      say(`Revoked key ${key.name}.`);
      refresh();
    } catch (err) {
      if (alive) say(`Could not revoke ${key.name}: ${err.message}`, false);
    }
  }

  function keyRow(k) {
    const actions = k.status === "revoked" ? [h("span", {class: "muted", text: k.revoked_at ? `revoked ${fmtTime(k.revoked_at)}` : "revoked"})] : [
      h("button", {type: "button", class: "ghost small", "aria-label": `Rotate ${k.name}`, text: "Rotate", onclick: () => rotate(k)}),
      h("button", {type: "button", class: "danger small", "aria-label": `Revoke ${k.name}`, text: "Revoke", onclick: () => revoke(k)}),
    ];
    return h("tr", {"data-key": k.name, "data-status": k.status},
      h("td", {text: k.name}),
      h("td", {class: "mono", text: `${k.prefix}…`}),
      h("td", {}, statusBadge(k.status)),
      h("td", {text: k.expires_at ? fmtTime(k.expires_at) : "never"}),
      h("td", {text: k.allowed_providers ? k.allowed_providers.join(", ") : "all"}),
      h("td", {class: "mono", text: k.allowed_models ? k.allowed_models.join(", ") : "all"}),
      h("td", {text: fmtRate(k.rate_limit)}),
      h("td", {text: fmtBudget(k.budget)}),
      h("td", {text: fmtTime(k.created_at)}),
      h("td", {class: "actions-cell"}, actions));
  }

  async function loadKeys() {
    try {
      const {result} = await api("keys", {params: {status: filter.value}});
      if (!alive) return;
      clear(keysBody).append(...result.map(keyRow));
      keysNote.textContent = result.length ? `${result.length} ${result.length === 1 ? "key" : "keys"}.`
        : filter.value ? `No ${filter.value} keys.` : "No keys yet: create one above.";
    } catch (err) {
      if (alive) keysNote.textContent = `Keys unavailable: ${err.message}`;
    }
  }

  // Budgets.
  const budgetsBody = h("tbody", {});
  const budgetsNote = h("p", {class: "muted", text: "Loading…"});
  const budgetsTable = h("div", {class: "table-wrap"}, h("table", {"data-table": "budgets"},
    h("caption", {class: "visually-hidden", text: "Spend per budget"}),
    h("thead", {}, h("tr", {},
      ["Budget", "Scope", "Window", "Resets", "Spent", "Reserved", "Remaining", "Budget (USD)", "Use"].map((c, i) =>
        h("th", {scope: "col", class: i >= 4 && i <= 7 ? "num" : undefined, text: c})))),
    budgetsBody));

  function budgetRow(b) {
    return h("tr", {"data-budget": b.budget},
      h("td", {text: b.budget}),
      h("td", {text: scopeText(b)}),
      h("td", {text: `${b.window} (${b.period})`}),
      h("td", {text: b.resets_at ? fmtTime(b.resets_at) : "never"}),
      h("td", {class: "num", "data-spent": b.spent, text: fmtCost(b.spent)}),
      h("td", {class: "num", text: fmtCost(b.reserved)}),
      h("td", {class: "num", text: fmtCost(b.remaining)}),
      h("td", {class: "num", text: fmtCost(b.usd)}),
      h("td", {class: "bar-cell"}, bar(b)));
  }

  async function loadBudgets() {
    try {
      const {result} = await api("budgets");
      if (!alive) return;
      clear(budgetsBody).append(...result.map(budgetRow));
      budgetsNote.textContent = result.length ? "Spend is the logged cost; reserved is the worst case of requests still in flight."
        : "No budgets: add [[budgets]] to the config, or a budget to a key.";
    } catch (err) {
      if (alive) budgetsNote.textContent = `Budgets unavailable: ${err.message}`;
    }
  }

  // Keys are credentials only with authentication on; say so rather than let a key look protective.
  const authNote = h("p", {class: "card warning", "data-auth-off": "", hidden: true},
    h("strong", {text: "Authentication is off: "}),
    "keys are not checked, so any client may call the gateway without one. Set ",
    h("code", {text: "gateway.authentication = true"}), " for keys (and their model lists, rate limits and budgets) to apply.");
  api("config").then(({result}) => {
    if (alive) authNote.hidden = result.config.gateway.authentication === true;
  }).catch(() => { /* Settings reports an unreadable config */ });

  function refresh() { loadKeys(); loadBudgets(); }

  root.append(h("div", {class: "stack"},
    h("div", {class: "toolbar"}, h("h1", {class: "grow", text: "Keys & budgets"}),
      h("button", {type: "button", class: "ghost", text: "Refresh", onclick: refresh})),
    authNote,
    secretPanel,
    status,
    form,
    h("section", {class: "stack", "aria-labelledby": "keys-title"},
      h("div", {class: "toolbar"}, h("h2", {id: "keys-title", class: "grow", text: "Keys"}), field("Show", filter)),
      keysTable, keysNote,
      h("p", {class: "muted small-note"}, "Keys from the config (", h("code", {text: "[[gateway.tokens]]"}),
        ") are not listed here; the API does not record when a key was last used — filter Logs or Analytics by its name.")),
    h("section", {class: "stack", "aria-labelledby": "budgets-title"},
      h("div", {class: "toolbar"}, h("h2", {id: "budgets-title", class: "grow", text: "Budgets"})),
      budgetsTable, budgetsNote)));
  refresh();
  return {unmount() { alive = false; dismiss(); }};
}
