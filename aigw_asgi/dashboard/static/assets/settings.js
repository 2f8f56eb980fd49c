// Settings (read-only): health of the log store and the cache, providers and their upstream base
// URLs, the effective config with every secret masked by the gateway.

import {api} from "./api.js";
import {clear, h} from "./dom.js";
import {dash, fmtBytes, fmtInt} from "./format.js";

function kv(pairs) {
  return h("dl", {class: "kv"}, pairs.map(([k, v]) => [h("dt", {text: k}), h("dd", {text: v ?? dash})]));
}

export function mountSettings(root) {
  const body = h("div", {class: "stack"}, h("p", {class: "muted", text: "Loading…"}));
  root.append(h("div", {class: "stack"}, h("h1", {text: "Settings"}), body));
  let alive = true;
  (async () => {
    const [health, cache, config] = await Promise.allSettled([api("health"), api("cache"), api("config")]);
    if (!alive) return;
    const sections = [];
    const logBox = [h("h3", {text: "Log store"})];
    const cacheBox = [h("h3", {text: "Cache"})];
    if (health.status === "fulfilled") {
      const r = health.value.result;
      logBox.push(kv([["Status", r.status], ["Store", r.logs.store], ["Rows", fmtInt(r.logs.rows)],
        ["Written", fmtInt(r.logs.written)], ["Queued", fmtInt(r.logs.queued)], ["Dropped", fmtInt(r.logs.dropped)],
        ["Failed", fmtInt(r.logs.failed)], ["Error", r.logs.error]]));
    } else {
      logBox.push(h("p", {class: "error", text: `Health unavailable: ${health.reason.message}`}));
    }
    if (cache.status === "fulfilled") {
      const r = cache.value.result;
      cacheBox.push(kv([["Storage", r.storage], ["Status", "reachable"],
        ["Entries", r.entries === null ? "not reported" : fmtInt(r.entries)], ["Size", r.bytes === null ? "not reported" : fmtBytes(r.bytes)]]));
    } else {
      cacheBox.push(h("p", {class: "error", text: `Cache storage unavailable: ${cache.reason.message}`}));
    }
    sections.push(h("section", {class: "card", "aria-label": "Health"}, h("h2", {text: "Health"}),
      h("div", {class: "grid-2"}, h("div", {}, logBox), h("div", {}, cacheBox))));
    if (config.status === "fulfilled") {
      const {providers, config: cfg} = config.value.result;
      sections.push(h("section", {class: "stack", "aria-label": "Providers"}, h("h2", {text: "Providers"}),
        h("div", {class: "table-wrap"}, h("table", {},
          h("thead", {}, h("tr", {}, ["Provider", "Base URL", "Format", "Auth header", "Stored keys", "Configured"].map((c) => h("th", {scope: "col", text: c})))),
          h("tbody", {}, providers.map((p) => h("tr", {},
            h("td", {text: p.name}), h("td", {class: "mono", text: p.base_url}), h("td", {text: p.format}),
            h("td", {class: "mono", text: p.auth_header}), h("td", {text: p.keys.length ? p.keys.join(", ") : dash}),
            h("td", {text: p.configured ? "yes" : "built-in default"}))))))));
      sections.push(h("section", {class: "card", "aria-label": "Effective configuration"},
        h("h2", {text: "Effective configuration"}),
        h("p", {class: "muted", text: "Secrets (tokens, provider keys, the admin token, passwords in URLs) are masked by the gateway before they leave it."}),
        h("pre", {class: "config", "data-config": "", text: JSON.stringify(cfg, null, 2)})));
    } else {
      sections.push(h("p", {class: "error", text: `Config unavailable: ${config.reason.message}`}));
    }
    clear(body).append(...sections);
  })();
  return {unmount() { alive = false; }};
}
