// Cache: what the storage holds (entries, and bytes where it can tell) and the three purges.

import {api} from "./api.js";
import {confirmAction, field, h} from "./dom.js";
import {dash, fmtBytes, fmtInt} from "./format.js";

export function mount(root) {
  const status = h("p", {class: "status-line", role: "status", "aria-live": "polite"});
  const storage = h("dd", {"data-stat": "storage", text: dash});
  const entries = h("dd", {"data-stat": "entries", text: dash});
  const bytes = h("dd", {"data-stat": "bytes", text: dash});
  let alive = true;

  async function stats() {
    try {
      const {result} = await api("cache");
      if (!alive) return;
      storage.textContent = result.storage;
      entries.textContent = result.entries === null ? "not reported" : fmtInt(result.entries);
      bytes.textContent = result.bytes === null ? "not reported" : fmtBytes(result.bytes);
    } catch (err) {
      if (alive) entries.textContent = bytes.textContent = `unavailable (${err.message})`;
    }
  }

  async function purge(params, what) {
    if (!(await confirmAction("Purge the cache", `Purge ${what}? The next identical requests go to the provider.`, "Purge"))) return;
    try {
      const {result} = await api("cache", {method: "DELETE", params});
      status.className = "status-line ok";
      status.textContent = `Purged ${fmtInt(result.purged)} ${result.purged === 1 ? "entry" : "entries"} (${what}).`;
    } catch (err) {
      status.className = "status-line error";
      status.textContent = `Purge failed: ${err.message}`;
    }
    stats();
  }

  const provider = h("input", {type: "text", name: "provider", required: true, autocomplete: "off", spellcheck: "false", placeholder: "openai"});
  const key = h("input", {type: "text", name: "key", required: true, autocomplete: "off", spellcheck: "false", placeholder: "openai:3fa…"});
  root.append(h("div", {class: "stack"},
    h("div", {class: "toolbar"}, h("h1", {class: "grow", text: "Cache"}),
      h("button", {type: "button", class: "ghost", text: "Refresh", onclick: stats})),
    h("section", {class: "card", "aria-label": "Cache storage"},
      h("dl", {class: "kv"}, h("dt", {text: "Storage"}), storage, h("dt", {text: "Entries"}), entries, h("dt", {text: "Size"}), bytes)),
    status,
    h("div", {class: "grid-2"},
      h("section", {class: "card stack", "aria-labelledby": "purge-all"},
        h("h2", {id: "purge-all", text: "Purge everything"}),
        h("p", {class: "muted", text: "Every cached answer of this gateway."}),
        h("div", {}, h("button", {type: "button", class: "danger", "data-purge": "all", text: "Purge all", onclick: () => purge({}, "every entry")}))),
      h("form", {class: "card stack", "aria-labelledby": "purge-provider", onsubmit: (e) => {
          e.preventDefault();
          purge({provider: provider.value.trim()}, `the entries of ${provider.value.trim()}`);
        }},
        h("h2", {id: "purge-provider", text: "Purge one provider"}),
        field("Provider", provider),
        h("div", {}, h("button", {type: "submit", class: "danger", text: "Purge provider"}))),
      h("form", {class: "card stack", "aria-labelledby": "purge-key", onsubmit: (e) => {
          e.preventDefault();
          purge({key: key.value.trim()}, `entry ${key.value.trim()}`);
        }},
        h("h2", {id: "purge-key", text: "Purge one entry"}),
        field("Cache key (shown in a log's detail)", key),
        h("div", {}, h("button", {type: "submit", class: "danger", text: "Purge entry"}))))));
  stats();
  return {unmount() { alive = false; }};
}
