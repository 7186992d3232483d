// Building the page: every element is made here, and every piece of text goes in as a Text node
// (or textContent). Nothing in the page parses a string as HTML, so what a listener or a user wrote
// (info, messages, error logs, record values, file names) is always shown as text.

const PROPERTIES = new Set(["value", "checked", "disabled", "hidden", "selected", "open", "max", "min", "required",
  "multiple", "indeterminate"]);

/** An element: `h("a", {href: "#/jobs", class: "x"}, "text", child)`. Strings become text, never markup. */
export function h(tag, props, ...children) {
  const el = document.createElement(tag);
  for (const [key, value] of Object.entries(props || {})) {
    if (value === null || value === undefined || value === false) continue;
    if (key === "class") el.className = Array.isArray(value) ? value.filter(Boolean).join(" ") : value;
    else if (key === "text") el.textContent = String(value);
    else if (key === "dataset") Object.assign(el.dataset, value);
    else if (key.startsWith("on") && typeof value === "function") el.addEventListener(key.slice(2), value);
    else if (PROPERTIES.has(key)) el[key] = value;
    else el.setAttribute(key, value === true ? "" : String(value));
  }
  append(el, children);
  return el;
}

const SVG_NS = "http://www.w3.org/2000/svg";

/** An SVG element (a chart's parts): `svg("rect", {x: 0, width: 4, class: "bar"})`. Strings become text. */
export function svg(tag, attrs, ...children) {
  const el = document.createElementNS(SVG_NS, tag);
  for (const [key, value] of Object.entries(attrs || {})) {
    if (value === null || value === undefined || value === false) continue;
    if (key === "dataset") Object.assign(el.dataset, value);
    else el.setAttribute(key, String(value));
  }
  append(el, children);
  return el;
}

/** Add children (nodes or text) to `el`. */
export function append(el, ...children) {
  for (const child of children.flat(Infinity)) {
    if (child === null || child === undefined || child === false) continue;
    el.append(child instanceof Node ? child : String(child));
  }
  return el;
}

/** Replace everything inside `el`. */
export function fill(el, ...children) {
  el.replaceChildren();
  return append(el, children);
}

/** Text only a screen reader says. */
export function srOnly(text) {
  return h("span", { class: "sr-only" }, text);
}

let ids = 0;
/** A unique element id, for labels and aria references. */
export function uid(prefix = "el") {
  ids += 1;
  return `${prefix}-${ids}`;
}

/** A labelled control: `field("Status", select)` → a wrapper with a <label for> pointing at it. */
export function field(label, control, cls = "field") {
  if (!control.id) control.id = uid("f");
  return h("div", { class: cls }, h("label", { for: control.id }, label), control);
}

/** A <select> of [value, label] options. */
export function select(options, value, props = {}) {
  return h("select", props, options.map(([v, label]) => h("option", { value: v, selected: v === value }, label)));
}

/** A URL the page may open: http(s) only, relative ones resolved against this page; null otherwise. */
export function safeUrl(raw) {
  if (typeof raw !== "string" || !raw || /[\u0000-\u0020\u007f]/.test(raw)) return null;
  let url;
  try {
    url = new URL(raw, window.location.href);
  } catch {
    return null;
  }
  return url.protocol === "http:" || url.protocol === "https:" ? url : null;
}
