// A sheet's snapshot: its records, read-only, each marked with how the sheet has it now (changed,
// removed, or added since), and a Restore button that asks first. An outcome's `snapshot` button opens it.

import { get, post, session } from "../api.js";
import { append, fill, h } from "../dom.js";
import { timeEl } from "../format.js";
import { stream, throttle } from "../stream.js";
import { confirmDialog, showError, toast } from "../ui.js";

const PAGE_SIZE = 50;

const MARKS = { unchanged: "", changed: "Changed since", removed: "Removed since", added: "Added since" };

const plural = (n, one, many = `${one}s`) => `${n.toLocaleString()} ${n === 1 ? one : many}`;

/** What changed since the snapshot, in words ("2 changed, 1 removed, 1 added"), or that nothing did. */
function changesText(changes) {
  const parts = [];
  if (changes.changed) parts.push(`${changes.changed.toLocaleString()} changed`);
  if (changes.removed) parts.push(`${changes.removed.toLocaleString()} removed`);
  if (changes.added) parts.push(`${changes.added.toLocaleString()} added`);
  return parts.length ? `Since this snapshot: ${parts.join(", ")}.` : "The sheet is as this snapshot has it: nothing changed since.";
}

/** What a restore will do, for the question asked before it. */
function restoreText(changes) {
  const parts = [];
  if (changes.added) parts.push(`${plural(changes.added, "record")} added since will be deleted`);
  if (changes.removed) parts.push(`${plural(changes.removed, "record")} removed since will come back`);
  if (changes.changed) {
    parts.push(`${plural(changes.changed, "record")} changed since will get ${changes.changed === 1 ? "its" : "their"} values back`);
  }
  return parts.length ? `The sheet's records go back to this snapshot: ${parts.join("; ")}.`
    : "The sheet already matches this snapshot; restoring it changes nothing.";
}

function cell(value) {
  return value === null || value === undefined ? "" : String(value);
}

export async function snapshotView(main, { id }, query, ctx) {
  const snapshot = await get(`/snapshots/${encodeURIComponent(id)}`);
  const sheet = await get(`/sheets/${encodeURIComponent(snapshot.sheetId)}`);
  const wb = await get(`/workbooks/${encodeURIComponent(snapshot.workbookId)}`).catch(() => null);
  if (!ctx.active) return;
  const title = snapshot.label || "Snapshot";
  document.title = `${title} · ${sheet.name} · Listener`;
  const columns = sheet.fields.length ? sheet.fields : [];

  const summary = h("p", { class: "banner", role: "status", "data-changes": "" });
  const counts = h("span", { class: "muted", role: "status" });
  const tbody = h("tbody");
  const headRow = h("tr");
  const prev = h("button", { type: "button", class: "btn small" }, "‹ Previous");
  const next = h("button", { type: "button", class: "btn small" }, "Next ›");
  const restore = h("button", { type: "button", class: "btn primary" }, "Restore");
  const canRestore = !session.isMember;
  let changes = { unchanged: 0, changed: 0, removed: 0, added: 0 };
  let page = 1;
  const keys = columns.map((f) => f.key);

  append(main,
    h("nav", { class: "crumbs", "aria-label": "Breadcrumb" }, h("a", { href: "#/workbooks" }, "Workbooks"), "›",
      h("a", { href: `#/workbooks/${snapshot.workbookId}` }, wb ? wb.name : snapshot.workbookId), "›",
      h("a", { href: `#/sheets/${sheet.id}` }, sheet.name), "›", h("span", {}, title)),
    h("div", { class: "page-head" },
      h("div", {}, h("h1", {}, title),
        h("p", { class: "sub" }, "Snapshot ", h("span", { class: "mono" }, snapshot.id), " of ",
          h("a", { href: `#/sheets/${sheet.id}` }, sheet.name), " · ", plural(snapshot.summary.records, "record"),
          " · taken ", timeEl(snapshot.createdAt), snapshot.createdBy ? ` by ${snapshot.createdBy}` : "")),
      h("div", { class: "actions-row" }, canRestore ? restore
        : h("span", { class: "muted" }, "Only admins and agents may restore a snapshot."))),
    summary,
    h("section", { class: "card", "aria-label": "Snapshot records" },
      h("div", { class: "toolbar" }, h("span", { class: "muted" }, "Read-only: the records as this snapshot has them."), counts),
      h("div", { class: "table-wrap" }, h("table", { class: "records snapshot-records" }, h("thead", {}, headRow), tbody)),
      h("div", { class: "pager" }, h("span"), h("div", { class: "buttons" }, prev, next))));

  const draw = (result) => {
    changes = result.changes;
    summary.textContent = changesText(changes);
    summary.classList.toggle("changed", Boolean(changes.changed || changes.removed || changes.added));
    if (!columns.length) {
      // A sheet without declared fields: the columns are the keys the records have.
      const seen = new Set(keys);
      for (const r of result.items) for (const k of Object.keys(r.values)) if (!seen.has(k)) { seen.add(k); keys.push(k); }
    }
    const label = (key) => (columns.find((f) => f.key === key) || {}).label || key;
    fill(headRow, h("th", { scope: "col" }, "Since"), keys.map((k) => h("th", { scope: "col", dataset: { key: k } }, label(k))));
    fill(tbody, ...result.items.map((r) => h("tr", { class: `change-${r.change}`, dataset: { recordId: r.id, change: r.change } },
      h("td", { class: "change" }, MARKS[r.change] ? h("span", { class: ["tag", `change-${r.change}`] }, MARKS[r.change]) : ""),
      keys.map((k) => {
        const then = cell(r.values[k]);
        const now = r.current ? cell(r.current[k]) : then;
        const differs = r.change === "changed" && now !== then;
        if (!differs) return h("td", { title: then || null }, then);
        return h("td", { class: "differs", title: `Now: ${now || "(empty)"}` },
          h("span", { class: "then" }, then), " ", h("span", { class: "now" }, `→ ${now || "(empty)"}`));
      }))));
    if (!result.items.length) {
      tbody.append(h("tr", {}, h("td", { colspan: keys.length + 1, class: "empty" }, "This snapshot holds no records.")));
    }
    const first = result.total ? (page - 1) * PAGE_SIZE + 1 : 0;
    counts.textContent = `${first}–${(page - 1) * PAGE_SIZE + result.items.length} of ${result.total} rows`;
    prev.disabled = page <= 1;
    next.disabled = page * PAGE_SIZE >= result.total;
  };
  const load = async () => {
    const result = await get(`/snapshots/${encodeURIComponent(id)}/records`, { limit: PAGE_SIZE, offset: (page - 1) * PAGE_SIZE });
    if (ctx.active) draw(result);
  };
  prev.addEventListener("click", () => {
    page -= 1;
    load().catch((e) => showError(e, "Snapshot"));
  });
  next.addEventListener("click", () => {
    page += 1;
    load().catch((e) => showError(e, "Snapshot"));
  });
  restore.addEventListener("click", async () => {
    const ok = await confirmDialog(`Restore ${title}?`, restoreText(changes), { confirmLabel: "Restore" });
    if (!ok) return;
    restore.disabled = true;
    try {
      const commit = await post(`/snapshots/${encodeURIComponent(id)}/restore`);
      toast(`Restored ${sheet.name}: ${commit.inserted} brought back, ${commit.updated} changed back, ${commit.deleted} deleted.`,
        { kind: "ok" });
      await load();
    } catch (error) {
      showError(error, "Restore");
    } finally {
      restore.disabled = false;
    }
  });
  // The marks compare with the sheet now, so they follow its commits (a restore's too).
  const reload = throttle(() => load().catch(() => {}), 500);
  ctx.onLeave(stream.subscribe((e) => {
    if (e.context.sheetId === sheet.id && e.topic.startsWith("commit:")) reload();
    if (e.topic === "snapshot:deleted" && e.context.snapshotId === id) {
      restore.disabled = true;
      summary.textContent = "This snapshot was deleted.";
    }
  }));
  ctx.onLeave(reload.cancel);
  await load();
}

/** The snapshots of a sheet, as links, for the sheet's page (nothing when it has none). */
export async function snapshotList(sheetId, ctx) {
  const { items } = await get("/snapshots", { sheetId });
  if (!ctx.active || !items.length) return null;
  return h("section", { class: "card snapshots", "aria-label": "Snapshots" },
    h("div", { class: "toolbar" }, h("h2", {}, "Snapshots")),
    h("ul", { class: "snapshot-list" }, items.slice().reverse().map((s) => h("li", { dataset: { snapshotId: s.id } },
      h("a", { href: `#/snapshots/${encodeURIComponent(s.id)}` }, s.label || s.id), " ",
      h("span", { class: "muted" }, plural(s.summary.records, "record"), " · ", timeEl(s.createdAt, { short: true }))))));
}
