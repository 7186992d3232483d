// Documents: a title, a Markdown body (drawn safely, see markdown.js) and their actions.

import { actionBar } from "../actions.js";
import { get } from "../api.js";
import { append, fill, h } from "../dom.js";
import { timeEl } from "../format.js";
import { markdown } from "../markdown.js";
import { stream, throttle } from "../stream.js";

/** The documents (of one space, when given) as a table, kept live. */
export async function documentList(container, ctx, { spaceId = null } = {}) {
  const tbody = h("tbody");
  append(container, h("div", { class: "table-wrap" }, h("table", { class: "documents" },
    h("thead", {}, h("tr", {}, ["Title", "Updated", "Created by", "Actions"].map((c) => h("th", { scope: "col" }, c)))), tbody)));
  const load = async () => {
    const { items } = await get("/documents", { spaceId });
    if (!ctx.active) return;
    fill(tbody, ...items.map((d) => h("tr", { dataset: { documentId: d.id } },
      h("td", { class: "info" }, h("a", { href: `#/documents/${d.id}` }, d.title)),
      h("td", { class: "nowrap" }, timeEl(d.updatedAt, { short: true })),
      h("td", {}, d.createdBy || "—"),
      h("td", {}, actionBar(d.id, d.actions, ctx, { label: `Actions of ${d.title}` })))));
    if (!items.length) tbody.append(h("tr", {}, h("td", { colspan: 4, class: "empty" }, "No documents yet.")));
  };
  const reload = throttle(() => load().catch(() => {}), 500);
  ctx.onLeave(stream.subscribe((e) => e.topic.startsWith("document:") && reload()));
  ctx.onLeave(reload.cancel);
  await load();
}

export async function documentsView(main, params, query, ctx) {
  document.title = "Documents · Listener";
  const card = h("section", { class: "card", "aria-label": "Documents" });
  append(main, h("div", { class: "page-head" }, h("div", {}, h("h1", {}, "Documents"),
    h("p", { class: "sub" }, "Guides and pages of your spaces, with their actions."))), card);
  await documentList(card, ctx);
}

export async function documentView(main, { id }, query, ctx) {
  const body = h("article", { class: "card section" });
  const head = h("div");
  append(main, head, body);
  const draw = (doc) => {
    document.title = `${doc.title} · Listener`;
    fill(head,
      h("nav", { class: "crumbs", "aria-label": "Breadcrumb" }, h("a", { href: "#/documents" }, "Documents"), "›", h("span", {}, doc.title)),
      h("div", { class: "page-head" },
        h("div", {}, h("h1", {}, doc.title), h("p", { class: "sub" }, "Updated ", timeEl(doc.updatedAt), doc.createdBy ? ` · by ${doc.createdBy}` : "")),
        actionBar(doc.id, doc.actions, ctx, { label: "Document actions" })));
    fill(body, doc.body ? markdown(doc.body) : h("p", { class: "muted" }, "This document is empty."));
  };
  const load = async () => {
    const doc = await get(`/documents/${encodeURIComponent(id)}`);
    if (ctx.active) draw(doc);
  };
  const reload = throttle(() => load().catch(() => {}), 500);
  ctx.onLeave(stream.subscribe((e) => e.context.documentId === id && e.topic === "document:updated" && reload()));
  ctx.onLeave(reload.cancel);
  await load();
}
