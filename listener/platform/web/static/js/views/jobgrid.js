// The jobs grid's controls (views/jobs.js draws the rows): status tabs with live counts, the search box,
// each row's menu (open, retry, cancel) and the selection that bulk moves act on.

import { ApiError, api, get, post } from "../api.js";
import { fill, h, uid } from "../dom.js";
import { LABELS, TERMINAL } from "../format.js";
import { navigate } from "../router.js";
import { confirmDialog, showError, toast } from "../ui.js";

/** The status tabs, in the order an operator reads them; `all` has no status filter. */
export const TABS = [
  ["", "All"], ["ready", LABELS.ready], ["executing", LABELS.executing], ["scheduled", LABELS.scheduled],
  ["failed", LABELS.failed], ["complete", LABELS.complete], ["cancelled", LABELS.cancelled],
];

export const MAX_BULK = 1000;

/**
 * The tab list: `onPick(status)` when one is chosen (click, or arrow keys then automatic activation).
 * Returns {el, select(status), setCounts(counts)}; a status that is no tab's (RETRY) selects none.
 */
export function statusTabs(onPick, controls) {
  const tabs = new Map();
  const el = h("div", { class: "tabs", role: "tablist", "aria-label": "Job counts" });
  for (const [status, label] of TABS) {
    const count = h("span", { class: "count", dataset: { count: status || "all" } }, "…");
    const tab = h("button", { type: "button", role: "tab", class: ["tab", status && `tab-${status}`], id: uid("tab"),
      "aria-selected": "false", tabindex: "-1", "aria-controls": controls, dataset: { status: status || "all" } },
    h("span", { class: "tab-label" }, label), count);
    tab.addEventListener("click", () => onPick(status));
    tabs.set(status, { tab, count });
    el.append(tab);
  }
  el.addEventListener("keydown", (event) => {
    const order = [...tabs.values()].map((t) => t.tab);
    const at = order.indexOf(document.activeElement);
    if (at < 0) return;
    let to = null;
    if (event.key === "ArrowRight") to = (at + 1) % order.length;
    else if (event.key === "ArrowLeft") to = (at - 1 + order.length) % order.length;
    else if (event.key === "Home") to = 0;
    else if (event.key === "End") to = order.length - 1;
    if (to === null) return;
    event.preventDefault();
    order[to].focus();
    order[to].click();
  });
  const select = (status) => {
    const picked = tabs.has(status) ? status : null;
    for (const [s, { tab }] of tabs) {
      tab.setAttribute("aria-selected", String(s === picked));
      tab.tabIndex = s === picked || (picked === null && s === "") ? 0 : -1;
    }
  };
  const setCounts = (counts) => {
    for (const [s, { tab, count }] of tabs) {
      const n = s ? counts[s] || 0 : counts.total || 0;
      count.textContent = n.toLocaleString();
      tab.setAttribute("aria-label", `${TABS.find(([v]) => v === s)[1]}: ${n.toLocaleString()} jobs`);
    }
  };
  return { el, select, setCounts };
}

const METADATA_TERM = /^([A-Za-z0-9_-]{1,100})=(.*)$/;

/** The search box's words as the API takes them: `key=value` words are metadata terms, the rest the search. */
export function parseSearch(text) {
  const metadata = [];
  const words = [];
  for (const word of text.trim().split(/\s+/).filter(Boolean)) {
    if (METADATA_TERM.test(word)) metadata.push(word);
    else words.push(word);
  }
  return { search: words.join(" "), metadata };
}

/**
 * A row's menu: a button that opens a list of what can be done to the job now (open it, retry a failed one,
 * cancel one not ended, after asking). Arrow keys move between the items, Escape closes and returns focus.
 */
export function rowMenu(job, { onDone }) {
  const button = h("button", { type: "button", class: "btn ghost small row-menu-button", "aria-haspopup": "menu",
    "aria-expanded": "false", "aria-label": `Actions for ${job.id}` }, "⋯");
  const menuId = uid("menu");
  button.setAttribute("aria-controls", menuId);
  const wrap = h("div", { class: "row-menu" }, button);
  let menu = null;

  const close = (focus = true) => {
    if (!menu) return;
    menu.remove();
    menu = null;
    button.setAttribute("aria-expanded", "false");
    document.removeEventListener("pointerdown", outside, true);
    if (focus) button.focus();
  };
  const outside = (event) => {
    if (!wrap.contains(event.target)) close(false);
  };
  const run = async (what) => {
    close();
    try {
      if (what === "open") {
        navigate(`/jobs/${encodeURIComponent(job.id)}`);
        return;
      }
      if (what === "cancel") {
        const ok = await confirmDialog("Cancel this job?", `${job.job} ${job.id} will stop; a worker running it is told to.`,
          { confirmLabel: "Cancel job" });
        if (!ok) return;
        await post(`/jobs/${encodeURIComponent(job.id)}/cancel`, {});
        toast(`Cancelled ${job.id}.`, { kind: "ok" });
      } else if (what === "retry") {
        await post(`/jobs/${encodeURIComponent(job.id)}/retry`);
        toast(`Retrying ${job.id}.`, { kind: "ok" });
      }
      onDone();
    } catch (error) {
      showError(error, what === "cancel" ? "Cancel" : "Retry");
    }
  };
  const open = (focusLast = false) => {
    const items = [["open", "Open job"]];
    if (job.status === "failed") items.push(["retry", "Retry"]);
    if (!TERMINAL.has(job.status)) items.push(["cancel", "Cancel…"]);
    menu = h("ul", { class: "menu", role: "menu", id: menuId, "aria-label": `Actions for ${job.id}` },
      items.map(([what, label]) => h("li", { role: "none" },
        h("button", { type: "button", role: "menuitem", tabindex: "-1", class: ["menu-item", what === "cancel" && "danger"],
          dataset: { action: what }, onclick: () => run(what) }, label))));
    menu.addEventListener("keydown", (event) => {
      const entries = [...menu.querySelectorAll("[role=menuitem]")];
      const at = entries.indexOf(document.activeElement);
      if (event.key === "ArrowDown") entries[(at + 1) % entries.length].focus();
      else if (event.key === "ArrowUp") entries[(at - 1 + entries.length) % entries.length].focus();
      else if (event.key === "Home") entries[0].focus();
      else if (event.key === "End") entries[entries.length - 1].focus();
      else if (event.key === "Escape") close();
      else if (event.key === "Tab") close(false);
      else return;
      event.preventDefault();
    });
    wrap.append(menu);
    button.setAttribute("aria-expanded", "true");
    document.addEventListener("pointerdown", outside, true);
    const entries = menu.querySelectorAll("[role=menuitem]");
    entries[focusLast ? entries.length - 1 : 0].focus();
  };
  button.addEventListener("click", () => (menu ? close() : open()));
  button.addEventListener("keydown", (event) => {
    if (event.key === "ArrowDown" || event.key === "ArrowUp") {
      event.preventDefault();
      if (!menu) open(event.key === "ArrowUp");
    }
  });
  return wrap;
}

const VERBS = { cancel: ["Cancel", "Cancelled"], retry: ["Retry", "Retried"], delete: ["Delete", "Deleted"] };

/**
 * The selection bulk moves act on: rows picked by their checkboxes, or every job matching the filters.
 * `filter()` gives the listing's filters and `total()` how many jobs match them; `onDone()` runs after a move.
 * Returns {el, box(job), header, drawn(ids), reset()}.
 */
export function selection({ filter, total, onDone }) {
  const picked = new Set();
  let all = false;
  let shown = [];
  const boxes = new Map();
  const header = h("input", { type: "checkbox", class: "select-page", "aria-label": "Select every row on this page" });
  const text = h("span", { class: "bulk-count", role: "status" });
  const everything = h("button", { type: "button", class: "btn small bulk-all" });
  const buttons = Object.entries(VERBS).map(([action, [verb]]) => h("button", {
    type: "button", class: ["btn", "small", action !== "retry" && "danger"], dataset: { bulk: action },
    onclick: () => move(action) }, `${verb}…`));
  const clear = h("button", { type: "button", class: "btn ghost small", onclick: () => reset() }, "Clear selection");
  const result = h("div", { class: "bulk-result", hidden: true, role: "status", "aria-live": "polite" });
  const bar = h("div", { class: "bulk-bar", hidden: true, role: "region", "aria-label": "Selected jobs" },
    text, everything, h("div", { class: "buttons" }, buttons, clear));
  const el = h("div", { class: "bulk" }, bar, result);

  const count = () => (all ? total() : picked.size);
  const draw = () => {
    const n = count();
    bar.hidden = n === 0;
    const matching = total();
    text.textContent = all ? `All ${matching.toLocaleString()} jobs matching these filters are selected.`
      : `${n.toLocaleString()} job${n === 1 ? "" : "s"} selected.`;
    everything.hidden = all || matching <= picked.size;
    everything.disabled = matching > MAX_BULK;
    everything.textContent = matching > MAX_BULK
      ? `All ${matching.toLocaleString()} matching (at most ${MAX_BULK.toLocaleString()} at once)`
      : `Select all ${matching.toLocaleString()} jobs matching these filters`;
    for (const [id, box] of boxes) box.checked = all || picked.has(id);
    const onPage = shown.filter((id) => all || picked.has(id)).length;
    header.checked = shown.length > 0 && onPage === shown.length;
    header.indeterminate = onPage > 0 && onPage < shown.length;
  };
  const reset = () => {
    picked.clear();
    all = false;
    draw();
  };
  header.addEventListener("change", () => {
    if (all) all = false;
    for (const id of shown) {
      if (header.checked) picked.add(id);
      else picked.delete(id);
    }
    draw();
  });
  everything.addEventListener("click", () => {
    all = true;
    draw();
  });

  const move = async (action) => {
    const [verb, done] = VERBS[action];
    const n = count();
    const ok = await confirmDialog(`${verb} ${n.toLocaleString()} job${n === 1 ? "" : "s"}?`,
      all ? `Every job matching these filters (${n.toLocaleString()}) moves, each on its own; jobs that cannot (a finished job cannot be cancelled) are listed afterwards.`
        : "Each job moves on its own; jobs that cannot (a finished job cannot be cancelled) are listed afterwards.",
      { confirmLabel: `${verb} ${n.toLocaleString()} job${n === 1 ? "" : "s"}` });
    if (!ok) return;
    const body = all ? { action, filter: filter(), expectedCount: n } : { action, ids: [...picked] };
    try {
      const answer = await api("POST", "/jobs/bulk", body);
      showResult(answer, done);
      reset();
    } catch (error) {
      if (error instanceof ApiError && error.status === 409) {
        showError(error, `${verb}: the jobs matching these filters changed; nothing was moved`);
      } else showError(error, verb);
    }
    onDone();
  };
  const showResult = (answer, done) => {
    const dismiss = h("button", { type: "button", class: "btn ghost small", onclick: () => { result.hidden = true; } }, "Dismiss");
    fill(result,
      h("p", { class: "bulk-summary" }, `${done} ${answer.changed.toLocaleString()} of ${answer.matched.toLocaleString()} jobs.`,
        answer.refused.length ? ` ${answer.refused.length.toLocaleString()} refused:` : "", " ", dismiss),
      answer.refused.length ? h("ul", { class: "refused" }, answer.refused.slice(0, 50).map((r) => h("li", { dataset: { jobId: r.id } },
        h("a", { href: `#/jobs/${encodeURIComponent(r.id)}`, class: "mono" }, r.id), " ", r.message))) : null,
      answer.refused.length > 50 ? h("p", { class: "muted" }, `and ${answer.refused.length - 50} more.`) : null);
    result.hidden = false;
  };

  /** A row's checkbox. */
  const box = (job) => {
    const input = h("input", { type: "checkbox", class: "select-row", "aria-label": `Select ${job.id}`,
      checked: all || picked.has(job.id) });
    input.addEventListener("change", () => {
      if (all) { // leaving "all matching": keep what is on this page, less this one
        all = false;
        for (const id of shown) picked.add(id);
      }
      if (input.checked) picked.add(job.id);
      else picked.delete(job.id);
      draw();
    });
    boxes.set(job.id, input);
    return input;
  };
  /** The page now shows these jobs (in order). */
  const drawn = (ids) => {
    shown = ids;
    for (const id of [...boxes.keys()]) if (!ids.includes(id)) boxes.delete(id);
    draw();
  };
  return { el, box, header, drawn, reset };
}

/** The counts of the status tabs for these filters; null when they cannot be read (the tabs keep theirs). */
export async function loadCounts(params) {
  try {
    return await get("/job-counts", params);
  } catch {
    return null;
  }
}
