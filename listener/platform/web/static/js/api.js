// The REST API under /api/v1, called with the bearer token kept in this tab's sessionStorage.
// The token only ever travels in the Authorization header (and, for the event stream, as a
// WebSocket subprotocol): never in a URL. Downloads use short-lived signed links instead.

import { h } from "./dom.js";

const KEY = "listener.token";

export const session = {
  user: null,
  get token() {
    return sessionStorage.getItem(KEY);
  },
  set token(value) {
    if (value) sessionStorage.setItem(KEY, value);
    else sessionStorage.removeItem(KEY);
  },
  get isMember() {
    return this.user !== null && this.user.role === "member";
  },
};

/** An error answer of the API: its status, code, message and details. */
export class ApiError extends Error {
  constructor(status, code, message, details) {
    super(message);
    this.status = status;
    this.code = code;
    this.details = details;
  }
}

let unauthorized = () => {};
/** What to do when the token stops being accepted (sign out). */
export function onUnauthorized(fn) {
  unauthorized = fn;
}

/** A query string from an object; arrays become comma-separated lists, empty values are left out. */
export function qs(params) {
  const search = new URLSearchParams();
  for (const [key, value] of Object.entries(params || {})) {
    if (value === undefined || value === null || value === "") continue;
    if (Array.isArray(value)) {
      if (value.length) search.set(key, value.join(","));
    } else search.set(key, String(value));
  }
  const text = search.toString();
  return text ? `?${text}` : "";
}

/** Call the API; resolves to the JSON answer (null for 204), rejects with an ApiError. */
export async function api(method, path, body, token = session.token) {
  const headers = { Accept: "application/json" };
  if (token) headers.Authorization = `Bearer ${token}`;
  let payload;
  if (body instanceof FormData) payload = body;
  else if (body !== undefined) {
    headers["Content-Type"] = "application/json";
    payload = JSON.stringify(body);
  }
  let response;
  try {
    response = await fetch(`/api/v1${path}`, { method, headers, body: payload, cache: "no-store", credentials: "omit" });
  } catch {
    throw new ApiError(0, "unreachable", "The server cannot be reached; check your connection.", null);
  }
  if (response.status === 204) return null;
  const data = await response.json().catch(() => null);
  if (!response.ok) {
    const error = (data && data.error) || {};
    if (response.status === 401 && token === session.token) unauthorized();
    throw new ApiError(response.status, error.code || "http_error", error.message || `HTTP ${response.status}`,
      error.details);
  }
  return data;
}

export const get = (path, params) => api("GET", path + qs(params));
export const post = (path, body) => api("POST", path, body);

/** Every item of a paged listing (GET … → {items, total}), up to `max`. */
export async function getAll(path, params = {}, max = 1000) {
  const items = [];
  for (let offset = 0; offset < max;) {
    const page = await get(path, { ...params, limit: 100, offset });
    items.push(...page.items);
    offset += page.items.length;
    if (!page.items.length || offset >= page.total) break;
  }
  return items;
}

/** Is `path` an API download a signed link can stand in for? (/api/v1/... file content or CSV) */
export function isApiPath(path) {
  return typeof path === "string" && path.startsWith("/api/v1/");
}

/**
 * Download from the API without putting the token in a URL: ask for a signed link good for five
 * minutes (POST /links), then follow it with an <a download>.
 */
export async function download(path, fileName = "") {
  const link = await post("/links", { path });
  save(link.url, fileName);
}

/** Follow a URL as a download. */
export function save(url, fileName = "") {
  const a = h("a", { href: url, download: fileName, rel: "noopener", hidden: true });
  document.body.append(a);
  a.click();
  a.remove();
}
