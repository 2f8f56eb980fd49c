// The admin API from the page: relative URLs (the page lives at <mount>/admin/), the admin token
// from this tab's sessionStorage as a bearer token, Cloudflare's envelope unwrapped.

const TOKEN_KEY = "aigw.adminToken";

export class ApiError extends Error {
  constructor(status, code, message) {
    super(message);
    this.status = status;
    this.code = code;
  }
}

export const auth = {
  /** "token" when the gateway has an admin_token, "loopback" when only local clients may enter. */
  mode: document.querySelector('meta[name="aigw-admin-auth"]')?.content === "token" ? "token" : "loopback",
  get token() { return sessionStorage.getItem(TOKEN_KEY); },
  set token(value) {
    if (value) sessionStorage.setItem(TOKEN_KEY, value);
    else sessionStorage.removeItem(TOKEN_KEY);
  },
};

/** Query parameters without empty values, so an untouched filter is no filter. */
export function query(params) {
  const out = new URLSearchParams();
  for (const [key, value] of Object.entries(params || {})) {
    if (value === undefined || value === null || value === "") continue;
    out.set(key, String(value));
  }
  return out;
}

/** api("logs", {params: {...}}) -> {result, result_info}; throws ApiError with the envelope's message. */
export async function api(path, {method = "GET", params, body} = {}) {
  const url = new URL(path, document.baseURI);
  url.search = query(params).toString();
  const headers = {accept: "application/json"};
  const token = auth.token;
  if (token) headers.authorization = `Bearer ${token}`;
  const init = {method, headers, cache: "no-store", credentials: "omit"};
  if (body !== undefined) {
    headers["content-type"] = "application/json";
    init.body = JSON.stringify(body);
  }
  let resp;
  try {
    resp = await fetch(url, init);
  } catch (err) {
    throw new ApiError(0, 0, "The gateway cannot be reached");
  }
  let data = null;
  try { data = await resp.json(); } catch { /* not JSON: reported below */ }
  if (!resp.ok || !data || data.success !== true) {
    const err = data && Array.isArray(data.error) ? data.error[0] : null;
    const error = new ApiError(resp.status, err?.code ?? 0, err?.message || `HTTP ${resp.status}`);
    if (resp.status === 401) document.dispatchEvent(new CustomEvent("aigw:unauthorized", {detail: error}));
    throw error;
  }
  return data;
}
