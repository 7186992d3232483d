// Workbooks, their sheets and a sheet's records, with the actions mounted on each as buttons.

import { actionBar } from "../actions.js";
import { get } from "../api.js";
import { append, field, fill, h } from "../dom.js";
import { timeEl } from "../format.js";
import { navigate } from "../router.js";
import { stream, throttle } from "../stream.js";
import { snapshotList } from "./snapshots.js";

/** The workbooks (of one space, when given) as a table, kept live. */
export async function workbookList(container, ctx, { spaceId = null } = {}) {
  const tbody = h("tbody");
  const table = h("table", { class: "workbooks" },
    h("thead", {}, h("tr", {}, ["Workbook", "Sheets", "Labels", "Created", "Actions"].map((c) => h("th", { scope: "col" }, c)))), tbody);
  append(container, h("div", { class: "table-wrap" }, table));
  const load = async () => {
    const { items } = await get("/workbooks", { spaceId });
    if (!ctx.active) return;
    fill(tbody, ...items.map((wb) => h("tr", { dataset: { workbookId: wb.id } },
      h("td", {}, h("a", { href: `#/workbooks/${wb.id}` }, wb.name)),
      h("td", {}, wb.sheets.length ? wb.sheets.map((s, i) => [i ? ", " : "", h("a", { href: `#/sheets/${s.id}` }, s.name)])
        : h("span", { class: "muted" }, "—")),
      h("td", {}, wb.labels.map((l) => h("span", { class: "tag" }, l))),
      h("td", { class: "nowrap" }, timeEl(wb.createdAt, { short: true })),
      h("td", {}, actionBar(wb.id, wb.actions, ctx, { label: `Actions of ${wb.name}` })))));
    if (!items.length) tbody.append(h("tr", {}, h("td", { colspan: 5, class: "empty" }, "No workbooks yet.")));
  };
  const reload = throttle(() => load().catch(() => {}), 500);
  ctx.onLeave(stream.subscribe((e) => (e.topic.startsWith("workbook:") || e.topic.startsWith("sheet:")) && reload()));
  ctx.onLeave(reload.cancel);
  await load();
}

export async function workbooksView(main, params, query, ctx) {
  document.title = "Workbooks · Listener";
  const card = h("section", { class: "card", "aria-label": "Workbooks" });
  append(main, h("div", { class: "page-head" }, h("div", {}, h("h1", {}, "Workbooks"),
    h("p", { class: "sub" }, "Workbooks and their sheets; press an action to start its job."))), card);
  await workbookList(card, ctx);
}

export async function workbookView(main, { id }, query, ctx) {
  const wb = await get(`/workbooks/${encodeURIComponent(id)}`);
  if (!ctx.active) return;
  document.title = `${wb.name} · Listener`;
  const counts = await Promise.all(wb.sheets.map((s) => get(`/sheets/${encodeURIComponent(s.id)}/records`, { limit: 1 })
    .then((page) => page.total).catch(() => null)));
  if (!ctx.active) return;
  append(main, 
    h("nav", { class: "crumbs", "aria-label": "Breadcrumb" }, h("a", { href: "#/workbooks" }, "Workbooks"), "›", h("span", {}, wb.name)),
    h("div", { class: "page-head" },
      h("div", {}, h("h1", {}, wb.name), h("p", { class: "sub" }, h("span", { class: "mono" }, wb.id), " ",
        wb.labels.map((l) => h("span", { class: "tag" }, l)))),
      actionBar(wb.id, wb.actions, ctx, { label: "Workbook actions" })),
    h("section", { class: "card", "aria-label": "Sheets" }, h("div", { class: "table-wrap" }, h("table", { class: "sheets" },
      h("thead", {}, h("tr", {}, ["Sheet", "Slug", "Fields", "Records", "Actions"].map((c) => h("th", { scope: "col" }, c)))),
      h("tbody", {}, wb.sheets.map((s, i) => h("tr", { dataset: { sheetId: s.id } },
        h("td", {}, h("a", { href: `#/sheets/${s.id}` }, s.name)), h("td", { class: "mono" }, s.slug),
        h("td", {}, s.fields.map((f) => f.label || f.key).join(", ") || "—"),
        h("td", { class: "num" }, counts[i] === null ? "—" : counts[i].toLocaleString()),
        h("td", {}, actionBar(s.id, s.actions, ctx, { label: `Actions of ${s.name}` })))))))));
  if (!wb.sheets.length) append(main, h("p", { class: "muted" }, "This workbook has no sheets."));
}

const PAGE_SIZE = 50;

/**
 * A sheet's records and its snapshots. `?hidden=a,b` hides columns (an outcome's `view`), `?q=` filters
 * the rows shown (an outcome's `clear_filters` drops it).
 */
export async function sheetView(main, { id }, query, ctx) {
  const sheet = await get(`/sheets/${encodeURIComponent(id)}`);
  const wb = await get(`/workbooks/${encodeURIComponent(sheet.workbookId)}`).catch(() => null);
  const snapshots = await snapshotList(sheet.id, ctx).catch(() => null);
  if (!ctx.active) return;
  document.title = `${sheet.name} · Listener`;
  const hidden = new Set((query.get("hidden") || "").split(",").map((s) => s.trim()).filter(Boolean));
  let filter = query.get("q") || "";
  let page = 1;
  const columns = sheet.fields.filter((f) => !hidden.has(f.key));

  const filterInput = h("input", { type: "search", value: filter, placeholder: "Filter rows on this page", spellcheck: "false" });
  const tbody = h("tbody");
  const summary = h("span", { class: "muted", role: "status" });
  const prev = h("button", { type: "button", class: "btn small" }, "‹ Previous");
  const next = h("button", { type: "button", class: "btn small" }, "Next ›");
  const banners = [];
  if (hidden.size) {
    banners.push(h("div", { class: "banner", role: "status", "data-banner": "hidden" },
      h("span", {}, `Hidden columns: ${[...hidden].join(", ")}`),
      h("button", { type: "button", class: "btn small", onclick: () => navigate(`/sheets/${sheet.id}`) }, "Show all columns")));
  }
  const wbName = wb ? wb.name : sheet.workbookId;
  append(main, 
    h("nav", { class: "crumbs", "aria-label": "Breadcrumb" }, h("a", { href: "#/workbooks" }, "Workbooks"), "›",
      h("a", { href: `#/workbooks/${sheet.workbookId}` }, wbName), "›", h("span", {}, sheet.name)),
    h("div", { class: "page-head" },
      h("div", {}, h("h1", {}, sheet.name), h("p", { class: "sub" }, h("span", { class: "mono" }, sheet.id))),
      h("div", { class: "actions-row" },
        wb ? actionBar(wb.id, wb.actions, ctx, { label: "Workbook actions" }) : null,
        actionBar(sheet.id, sheet.actions, ctx, { label: "Sheet actions" }))),
    banners,
    h("section", { class: "card", "aria-label": "Records" },
      wb && wb.sheets.length > 1 ? h("nav", { class: "sheet-tabs", "aria-label": "Sheets" }, wb.sheets.map((s) =>
        h("a", { href: `#/sheets/${s.id}`, "aria-current": s.id === sheet.id ? "page" : null }, s.name))) : null,
      h("div", { class: "toolbar" }, field("Filter", filterInput, "field inline-field"), summary),
      h("div", { class: "table-wrap" }, h("table", { class: "records" },
        h("thead", {}, h("tr", {}, columns.map((f) => h("th", { scope: "col", dataset: { key: f.key } }, f.label || f.key)))), tbody)),
      h("div", { class: "pager" }, h("span"), h("div", { class: "buttons" }, prev, next))),
    snapshots);

  let records = [];
  let total = 0;
  const drawRows = () => {
    const needle = filter.trim().toLowerCase();
    const rows = needle ? records.filter((r) => columns.some((f) => String(r.values[f.key] ?? "").toLowerCase().includes(needle))) : records;
    fill(tbody, ...rows.map((r) => h("tr", { dataset: { recordId: r.id } },
      columns.map((f) => {
        const v = r.values[f.key];
        return h("td", { title: v === null || v === undefined ? null : String(v) }, v === null || v === undefined ? "" : String(v));
      }))));
    if (!rows.length) {
      tbody.append(h("tr", {}, h("td", { colspan: Math.max(columns.length, 1), class: "empty" },
        records.length ? "No rows on this page match the filter." : "This sheet has no records.")));
    }
    const first = total ? (page - 1) * PAGE_SIZE + 1 : 0;
    summary.textContent = `${first}–${(page - 1) * PAGE_SIZE + records.length} of ${total} records${needle ? ` · ${rows.length} shown` : ""}`;
  };
  const load = async () => {
    const result = await get(`/sheets/${encodeURIComponent(id)}/records`, { limit: PAGE_SIZE, offset: (page - 1) * PAGE_SIZE });
    if (!ctx.active) return;
    records = result.items;
    total = result.total;
    prev.disabled = page <= 1;
    next.disabled = page * PAGE_SIZE >= total;
    drawRows();
  };
  filterInput.addEventListener("input", () => {
    filter = filterInput.value;
    drawRows();
  });
  prev.addEventListener("click", () => {
    page -= 1;
    load();
  });
  next.addEventListener("click", () => {
    page += 1;
    load();
  });
  const reload = throttle(() => load().catch(() => {}), 500);
  ctx.onLeave(stream.subscribe((e) => e.context.sheetId === id && (e.topic.startsWith("commit:") || e.topic.startsWith("sheet:")) && reload()));
  ctx.onLeave(reload.cancel);
  await load();
}
