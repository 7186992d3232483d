// The jobs grid (Claret's columns, Cocoa Canvas's progress): filtered, paged, and live — rows appear
// and change as events arrive, without reloading the page.

import { get, session } from "../api.js";
import { append, field, fill, h, select } from "../dom.js";
import { LABELS, STATUSES, STATUS_WORDS, TYPES, progressView, statusBadge, timeEl } from "../format.js";
import { askUnheard, unheardNote } from "../listening.js";
import { setQuery } from "../router.js";
import { stream, throttle } from "../stream.js";

const PAGE_SIZE = 25;
const COLUMNS = ["Status", "Job ID", "Job", "Info", "Started", "Ended", "Failed at", "Run by", "Progress"];

export async function jobsView(main, params, query, ctx) {
  document.title = "Jobs · Listener";
  const operator = !session.isMember;
  const state = {
    status: query.get("status") || "",
    type: query.get("type") || "",
    operation: query.get("operation") || "",
    all: operator && query.get("all") !== "0",
    parts: query.get("parts") === "1",
    page: Math.max(1, Number.parseInt(query.get("page"), 10) || 1),
  };

  const sub = h("p", { class: "sub" });
  const statusSelect = statusFilter(state.status);
  state.status = statusSelect.value;
  // A type of its own (Cocoa Canvas's import_voters) comes in the address: offered beside the five domains.
  const types = TYPES.includes(state.type) || !state.type ? TYPES : [...TYPES, state.type];
  const typeSelect = select([["", "Any type"], ...types.map((t) => [t, t])], state.type, { name: "type" });
  const operationInput = h("input", { type: "search", name: "operation", value: state.operation, placeholder: "e.g. export",
    spellcheck: "false" });
  const allBox = h("input", { type: "checkbox", name: "all", checked: state.all });
  const partsBox = h("input", { type: "checkbox", name: "parts", checked: state.parts });
  const tbody = h("tbody", { role: "rowgroup" });
  const summary = h("span", { class: "muted", role: "status" });
  const prev = h("button", { type: "button", class: "btn small" }, "‹ Previous");
  const next = h("button", { type: "button", class: "btn small" }, "Next ›");

  append(main, 
    h("div", { class: "page-head" }, h("div", {}, h("h1", {}, "Jobs"), sub)),
    h("section", { class: "card", "aria-label": "Jobs" },
      h("form", { class: "filters", role: "search", "aria-label": "Filter jobs" },
        field("Status", statusSelect), field("Type", typeSelect), field("Operation", operationInput),
        h("div", { class: "checks" },
          operator ? h("label", { class: "check" }, allBox, "All jobs") : null,
          h("label", { class: "check" }, partsBox, "Show subtasks"))),
      h("div", { class: "table-wrap" },
        // Explicit roles: on a phone the rows are laid out as cards, which would otherwise lose them.
        h("table", { class: "jobs", role: "table", "aria-label": "Jobs", "aria-describedby": "jobs-summary" },
          h("thead", { role: "rowgroup" }, h("tr", { role: "row" }, COLUMNS.map((c) => h("th", { scope: "col", role: "columnheader" }, c)))),
          tbody)),
      h("div", { class: "pager" }, h("span", { id: "jobs-summary" }, summary), h("div", { class: "buttons" }, prev, next))));

  const rows = new Map(); // job id → {tr, job}
  let loaded = false;

  const load = async () => {
    const q = { status: state.status, type: state.type, operation: state.operation.trim(), limit: PAGE_SIZE,
      offset: (state.page - 1) * PAGE_SIZE };
    if (!state.parts) q.isPart = false;
    if (operator && !state.all) q.createdBy = session.user.name;
    const page = await get("/jobs", q);
    if (!ctx.active) return;
    draw(page);
    hear().catch(() => {});
  };

  // "No worker is listening": asked for the rows on screen after each load, and when workers come or go.
  const hear = async () => {
    const changed = await askUnheard([...rows.values()].map((row) => row.job));
    if (changed && ctx.active) for (const row of rows.values()) fillRow(row.tr, row.job);
  };
  ctx.onLeave(stream.onWorkers(() => hear().catch(() => {})));

  const draw = (page) => {
    const seen = new Set();
    page.items.forEach((job, i) => {
      let row = rows.get(job.id);
      if (!row) {
        row = { tr: h("tr", { role: "row", dataset: { jobId: job.id } }), job: null, text: null };
        rows.set(job.id, row);
      }
      const text = JSON.stringify(job);
      const changed = row.text !== text;
      row.job = job;
      row.text = text;
      if (changed) fillRow(row.tr, job);
      if (loaded && changed) flash(row.tr);
      if (tbody.children[i] !== row.tr) tbody.insertBefore(row.tr, tbody.children[i] || null);
      seen.add(job.id);
    });
    for (const [id, row] of rows) {
      if (!seen.has(id)) {
        row.tr.remove();
        rows.delete(id);
      }
    }
    const empty = tbody.querySelector("tr.empty-row");
    if (!page.items.length && !empty) {
      tbody.append(h("tr", { class: "empty-row", role: "row" }, h("td", { colspan: COLUMNS.length, class: "empty", role: "cell" },
        state.status || state.type || state.operation ? "No jobs match these filters." : "No jobs yet. Jobs appear here as they are created.")));
    } else if (page.items.length && empty) empty.remove();
    const first = page.total ? page.offset + 1 : 0;
    const last = page.offset + page.items.length;
    summary.textContent = page.total ? `${first}–${last} of ${page.total} jobs` : "0 jobs";
    prev.disabled = state.page <= 1;
    next.disabled = last >= page.total;
    sub.textContent = operator && state.all ? "Every job on the platform, newest first." : "Jobs you started, newest first.";
    loaded = true;
  };

  const reload = throttle(() => load().catch(() => {}), 400);
  const changeFilters = () => {
    state.status = statusSelect.value;
    state.type = typeSelect.value;
    state.operation = operationInput.value;
    state.all = operator && allBox.checked;
    state.parts = partsBox.checked;
    state.page = 1;
    saveQuery();
    load().catch(() => {});
  };
  const saveQuery = () => setQuery({
    status: state.status, type: state.type, operation: state.operation.trim(), all: operator && !state.all ? "0" : "",
    parts: state.parts ? "1" : "", page: state.page > 1 ? state.page : "",
  });
  for (const control of [statusSelect, typeSelect, allBox, partsBox]) control.addEventListener("change", changeFilters);
  let typing = null;
  operationInput.addEventListener("input", () => {
    clearTimeout(typing);
    typing = setTimeout(changeFilters, 300);
  });
  operationInput.form.addEventListener("submit", (event) => {
    event.preventDefault();
    changeFilters();
  });
  prev.addEventListener("click", () => {
    state.page -= 1;
    saveQuery();
    load().catch(() => {});
  });
  next.addEventListener("click", () => {
    state.page += 1;
    saveQuery();
    load().catch(() => {});
  });

  ctx.onLeave(stream.subscribe((event) => {
    if (!event.topic.startsWith("job:")) return;
    const row = rows.get(event.context.jobId);
    if (row && event.topic !== "job:deleted") {
      row.job = { ...row.job, ...event.payload };
      row.text = null; // drawn from the event: the next load draws the whole job again
      fillRow(row.tr, row.job);
      flash(row.tr);
    }
    reload(); // new rows, rows leaving the filter, and the fields events do not carry
  }));
  ctx.onLeave(stream.onState((s) => s === "live" && reload()));
  ctx.onLeave(reload.cancel);
  // The estimated time remaining counts down between events.
  const ticker = setInterval(() => {
    for (const { tr, job } of rows.values()) {
      if (job.status === "executing" && job.estimatedCompletionAt) {
        const cell = tr.querySelector(".progress-cell");
        if (cell) cell.replaceWith(progressView(job));
      }
    }
  }, 1000);
  ctx.onLeave(() => clearInterval(ticker));
  ctx.onLeave(() => clearTimeout(typing));

  await load();
}

/** The status filter: ours, then Fiddler's, Cocoa Canvas's and Zoltar's words; `?status=` in any case picks one. */
function statusFilter(value) {
  const option = (v, label) => h("option", { value: v }, label);
  const el = h("select", { name: "status" }, option("", "Any status"),
    h("optgroup", { label: "Listener" }, STATUSES.map((s) => option(s, LABELS[s]))),
    STATUS_WORDS.map(([system, words]) => h("optgroup", { label: system }, words.map((w) => option(w, w)))));
  const options = [...el.options];
  const match = options.find((o) => o.value === value)
    || options.find((o) => o.value.toLowerCase() === value.toLowerCase());
  if (match) match.selected = true;
  else if (value) { // several words (failed,RETRY), or one the API will refuse and say why
    const own = option(value, value);
    el.append(own);
    own.selected = true;
  }
  return el;
}

function fillRow(tr, job) {
  tr.dataset.status = job.status;
  const failed = job.status === "failed";
  const ended = job.status === "complete" || job.status === "cancelled";
  const info = job.info || (job.error && job.error.message) || "";
  const cell = (i, cls, ...content) => h("td", { class: cls, role: "cell", "data-label": COLUMNS[i] }, content);
  fill(tr,
    cell(0, "status-cell", statusBadge(job), unheardNote(job)),
    cell(1, "nowrap id-cell", h("a", { href: `#/jobs/${job.id}`, class: "mono job-link" }, job.id)),
    cell(2, "nowrap", h("code", {}, job.job || `${job.type}:${job.operation}`),
      job.isPart ? h("span", { class: "tag" }, ` part ${job.part}`) : null),
    cell(3, "info", info || h("span", { class: "muted" }, "—")),
    cell(4, "nowrap", timeEl(job.startedAt, { short: true })),
    cell(5, "nowrap", timeEl(ended ? job.finishedAt : null, { short: true })),
    cell(6, "nowrap", timeEl(failed ? job.finishedAt : null, { short: true })),
    cell(7, "", job.createdBy || h("span", { class: "muted" }, "—")),
    cell(8, "progress-td", progressView(job)));
}

function flash(tr) {
  tr.classList.remove("flash");
  void tr.offsetWidth; // restart the animation
  tr.classList.add("flash");
}
