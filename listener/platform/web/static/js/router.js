// Hash routes (#/jobs, #/jobs/jb_…): the server serves one page, and every view lives in it.

import { fill, h } from "./dom.js";

const routes = [];
let cleanups = [];
let generation = 0;

/** Register a view for a path pattern such as "/jobs/:id". */
export function route(pattern, view, nav = null) {
  const keys = [];
  const source = pattern.replace(/:(\w+)/g, (_, key) => {
    keys.push(key);
    return "([^/]+)";
  });
  routes.push({ re: new RegExp(`^${source}$`), keys, view, nav });
}

/** The current route: its path and query parameters. */
export function current() {
  const hash = window.location.hash.startsWith("#/") ? window.location.hash.slice(1) : "/jobs";
  const [path, search = ""] = hash.split("?", 2);
  return { path, query: new URLSearchParams(search) };
}

/** Go to an in-app path ("/jobs/jb_…"). */
export function navigate(path) {
  const target = `#${path}`;
  if (window.location.hash === target) render();
  else window.location.hash = target;
}

/** Change the current route's query in place (filters, paging) without re-rendering. */
export function setQuery(params) {
  const search = new URLSearchParams();
  for (const [key, value] of Object.entries(params)) {
    if (value !== undefined && value !== null && value !== "") search.set(key, String(value));
  }
  const text = search.toString();
  window.history.replaceState(null, "", `#${current().path}${text ? `?${text}` : ""}`);
}

const KINDS = { jb: "jobs", wb: "workbooks", sh: "sheets", fl: "files", dc: "documents", sp: "spaces", ss: "snapshots" };

/** The in-app link to an object by its id (`next: {type: "id"}`), with an optional sub-path and query. */
export function hrefFor(id, path = null, query = null) {
  const kind = KINDS[String(id).split("_")[0]];
  if (!kind) return null;
  let href = `#/${kind}/${encodeURIComponent(id)}`;
  if (path) href += `/${String(path).split("/").filter(Boolean).map(encodeURIComponent).join("/")}`;
  if (query) href += `?${new URLSearchParams(String(query).replace(/^\?/, "")).toString()}`;
  return href;
}

/** A link to an object when its id is one the page knows how to show, else its id as text. */
export function idLink(id, text = id) {
  if (!id) return h("span", { class: "muted" }, "—");
  const href = hrefFor(id);
  return href ? h("a", { href, class: "mono" }, text) : h("span", { class: "mono" }, text);
}

/** Render the view for the current hash into <main>. */
export async function render() {
  for (const fn of cleanups) fn();
  cleanups = [];
  generation += 1;
  const mine = generation;
  const { path, query } = current();
  const main = document.getElementById("main");
  let matched = null;
  let params = {};
  for (const r of routes) {
    const m = r.re.exec(path);
    if (m) {
      matched = r;
      params = Object.fromEntries(r.keys.map((key, i) => [key, decodeURIComponent(m[i + 1])]));
      break;
    }
  }
  for (const link of document.querySelectorAll("[data-nav]")) {
    if (matched && link.dataset.nav === matched.nav) link.setAttribute("aria-current", "page");
    else link.removeAttribute("aria-current");
  }
  main.replaceChildren();
  main.setAttribute("aria-busy", "true");
  const ctx = {
    /** Whether the person is still on this view (a slow load must not draw over the next one). */
    get active() {
      return mine === generation;
    },
    onLeave(fn) {
      if (mine === generation) cleanups.push(fn);
      else fn();
    },
  };
  try {
    if (!matched) {
      document.title = "Not found · Listener";
      main.append(h("div", { class: "card empty" }, h("h1", {}, "Page not found"),
        h("p", {}, "There is nothing at this address. "), h("a", { href: "#/jobs" }, "Go to jobs")));
    } else {
      await matched.view(main, params, query, ctx);
    }
  } catch (error) {
    if (!ctx.active) return;
    fill(main, h("div", { class: "banner error", role: "alert" },
      error && error.status === 404 ? "Not found: " : "Could not load this page: ", error.message || String(error)));
  } finally {
    if (ctx.active) main.removeAttribute("aria-busy");
  }
}

/** Start following the hash. */
let listening = false;
let active = false;

export function start() {
  active = true;
  if (!listening) {
    listening = true;
    window.addEventListener("hashchange", () => {
      if (!active) return;
      render().then(() => document.getElementById("main").focus({ preventScroll: true }));
    });
  }
  if (!window.location.hash.startsWith("#/")) window.history.replaceState(null, "", "#/jobs");
  return render();
}

/** Stop (signing out): leave the current view. */
export function stop() {
  active = false;
  for (const fn of cleanups) fn();
  cleanups = [];
  generation += 1;
}
