// Entry point: sign-in (admin token in sessionStorage, or none on a loopback-only gateway), the
// section navigation (#analytics, #logs, ...) and mounting one view at a time.

import {mount as analytics} from "./analytics.js";
import {api, ApiError, auth} from "./api.js";
import {mount as cache} from "./cache.js";
import {clear} from "./dom.js";
import {mount as keys} from "./keys.js";
import {mount as logs} from "./logs.js";
import {mountSettings as settings} from "./settings.js";

const VIEWS = {analytics, logs, cache, keys, settings};
const $ = (id) => document.getElementById(id);

let current = null;

function showLogin(message) {
  if (current) { current.unmount(); current = null; }
  $("view").hidden = true;
  $("nav").hidden = true;
  $("sign-out").hidden = true;
  $("login").hidden = false;
  const error = $("login-error");
  error.textContent = message || "";
  error.hidden = !message;
  $("token-input").value = "";
  $("token-input").focus();
}

function route() {
  const name = location.hash.replace(/^#/, "") || "analytics";
  const mount = VIEWS[name] || analytics;
  for (const a of document.querySelectorAll("#nav a")) {
    if (a.dataset.view === (VIEWS[name] ? name : "analytics")) a.setAttribute("aria-current", "page");
    else a.removeAttribute("aria-current");
  }
  if (current) current.unmount();
  const view = clear($("view"));
  current = mount(view);
  document.title = `${name[0].toUpperCase()}${name.slice(1)} · aigw dashboard`;
}

async function enter() {
  // One authenticated call decides: the token (if any) works, or the login form comes back.
  let health;
  try {
    health = (await api("health")).result;
  } catch (err) {
    if (err instanceof ApiError && err.status === 401) return; // the unauthorized event shows the form
    showLogin(`The gateway did not answer: ${err.message}`);
    return;
  }
  $("gateway-id").textContent = `gateway ${health.gateway}`;
  $("login").hidden = true;
  $("nav").hidden = false;
  $("view").hidden = false;
  $("sign-out").hidden = auth.mode !== "token";
  route();
}

document.addEventListener("aigw:unauthorized", () => {
  const had = auth.token;
  auth.token = null;
  showLogin(had ? "That admin token was not accepted." : auth.mode === "token" ? "" : "The admin API accepts only local clients here.");
});

$("login-form").addEventListener("submit", (event) => {
  event.preventDefault();
  const token = $("token-input").value.trim();
  if (!token) return;
  auth.token = token;
  enter();
});

$("sign-out").addEventListener("click", () => {
  auth.token = null;
  showLogin("");
});

window.addEventListener("hashchange", () => { if (!$("view").hidden) route(); });

if (auth.mode === "token" && !auth.token) showLogin("");
else enter();
