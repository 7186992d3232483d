// The jobs grid (Claret's columns, Cocoa Canvas's progress, Oban Web's tabs): filtered, searched, sorted,
// paged, and live — rows appear and change, and the tabs' counts move, as events arrive, without reloading
// the page. The tabs, the search box, the rows' menus and the selection for bulk moves are in jobgrid.js.

import { get, session } from "../api.js";
import { append, field, fill, h, select, srOnly } from "../dom.js";
import { LABELS, STATUSES, STATUS_WORDS, TYPES, jobDuration, progressView, relative, relativeTimeEl, statusBadge } from "../format.js";
import { askUnheard, unheardNote } from "../listening.js";
import { setQuery } from "../router.js";
import { stream, throttle } from "../stream.js";
import { loadCounts, parseSearch, rowMenu, selection, statusTabs } from "./jobgrid.js";

const PAGE_SIZE = 25;
const COLUMNS = ["Status", "Job ID", "Job", "Info", "Started", "Ended", "Failed at", "Run by", "Progress", "Duration", "Actions"];
const SORTS = [["", "Newest first"], ["created", "Oldest first"], ["-started", "Started, latest first"],
  ["started", "Started, earliest first"], ["-ended", "Ended, latest first"], ["ended", "Ended, earliest first"],
  ["-duration", "Longest first"], ["duration", "Shortest first"]];

export async function jobsView(main, params, query, ctx) {
  document.title = "Jobs · Listener";
  const operator = !session.isMember;
  const admin = Boolean(session.user && session.user.role === "admin"); // bulk moves are an admin's
  const state = {
    status: query.get("status") || "",
    type: query.get("type") || "",
    operation: query.get("operation") || "",
    q: query.get("q") || "",
    sort: SORTS.some(([v]) => v && v === query.get("sort")) ? query.get("sort") : "",
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
  const searchInput = h("input", { type: "search", name: "q", value: state.q, spellcheck: "false",
    placeholder: "Job id, text, or key=value", "aria-describedby": "jobs-search-hint" });
  const sortSelect = select(SORTS, state.sort, { name: "sort" });
  const tabs = statusTabs((status) => {
    statusSelect.value = status;
    changeFilters();
  }, "jobs-table");
  tabs.select(state.status);
  let lastTotal = 0;
  const picked = admin ? selection({ filter: () => filters(), total: () => lastTotal, onDone: () => refresh() }) : null;
  const tbody = h("tbody", { role: "rowgroup" });
  const summary = h("span", { class: "muted", role: "status" });
  const prev = h("button", { type: "button", class: "btn small" }, "‹ Previous");
  const next = h("button", { type: "button", class: "btn small" }, "Next ›");

  const header = (c, i) => h("th", { scope: "col", role: "columnheader" },
    i === 0 && picked ? [picked.header, " "] : null, i === COLUMNS.length - 1 ? srOnly(c) : c);
  const grid = { box: picked ? picked.box : null, menu: (job) => rowMenu(job, { onDone: () => refresh() }) };

  append(main,
    h("div", { class: "page-head" }, h("div", {}, h("h1", {}, "Jobs"), sub)),
    h("section", { class: "card", "aria-label": "Jobs" },
      tabs.el,
      h("form", { class: "filters", role: "search", "aria-label": "Filter jobs" },
        h("div", { class: "field search-field" }, h("label", { for: "jobs-search" }, "Search"),
          Object.assign(searchInput, { id: "jobs-search" }),
          h("span", { class: "hint muted", id: "jobs-search-hint" }, "An id finds its job; key=value its metadata; other words the info or error.")),
        field("Status", statusSelect), field("Type", typeSelect), field("Operation", operationInput),
        field("Sort", sortSelect),
        h("div", { class: "checks" },
          operator ? h("label", { class: "check" }, allBox, "All jobs") : null,
          h("label", { class: "check" }, partsBox, "Show subtasks"))),
      picked ? picked.el : null,
      h("div", { class: "table-wrap" },
        // Explicit roles: on a phone the rows are laid out as cards, which would otherwise lose them.
        h("table", { class: "jobs", id: "jobs-table", role: "table", "aria-label": "Jobs", "aria-describedby": "jobs-summary" },
          h("thead", { role: "rowgroup" }, h("tr", { role: "row" }, COLUMNS.map(header))),
          tbody)),
      h("div", { class: "pager" }, h("span", { id: "jobs-summary" }, summary), h("div", { class: "buttons" }, prev, next))));

  const rows = new Map(); // job id → {tr, job}
  let loaded = false;

  /** The listing's filters, as GET /jobs and a bulk move by filter take them. */
  const filters = () => {
    const f = { status: state.status ? state.status.split(",") : [], type: state.type ? [state.type] : [],
      operation: state.operation.trim() ? [state.operation.trim()] : [] };
    const { search, metadata } = parseSearch(state.q);
    if (search) f.search = search;
    if (metadata.length) f.metadata = metadata;
    if (!state.parts) f.isPart = false;
    if (operator && !state.all) f.createdBy = session.user.name;
    return f;
  };
  /** What the tabs count: the filters the status indexes serve (neither the status nor the search). */
  const countFilters = () => {
    const f = filters();
    return { type: f.type, operation: f.operation, isPart: f.isPart, createdBy: f.createdBy };
  };
  const load = async () => {
    const q = { ...filters(), sort: state.sort, limit: PAGE_SIZE, offset: (state.page - 1) * PAGE_SIZE };
    const page = await get("/jobs", q);
    if (!ctx.active) return;
    draw(page);
    hear().catch(() => {});
  };
  const counts = async () => {
    const found = await loadCounts(countFilters());
    if (found && ctx.active) tabs.setCounts(found);
  };
  const refresh = () => {
    reload();
    recount();
  };

  // "No worker is listening": asked for the rows on screen after each load, and when workers come or go.
  const hear = async () => {
    const changed = await askUnheard([...rows.values()].map((row) => row.job));
    if (changed && ctx.active) for (const row of rows.values()) fillRow(row.tr, row.job, grid);
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
      if (changed) fillRow(row.tr, job, grid);
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
        state.status || state.type || state.operation || state.q.trim() ? "No jobs match these filters." : "No jobs yet. Jobs appear here as they are created.")));
    } else if (page.items.length && empty) empty.remove();
    lastTotal = page.total;
    if (picked) picked.drawn(page.items.map((j) => j.id));
    const first = page.total ? page.offset + 1 : 0;
    const last = page.offset + page.items.length;
    summary.textContent = page.total ? `${first}–${last} of ${page.total} jobs` : "0 jobs";
    prev.disabled = state.page <= 1;
    next.disabled = last >= page.total;
    const order = (SORTS.find(([v]) => v === state.sort) || SORTS[0])[1].toLowerCase();
    sub.textContent = `${operator && state.all ? "Every job on the platform" : "Jobs you started"}, ${order}.`;
    loaded = true;
  };

  const reload = throttle(() => load().catch(() => {}), 400);
  const recount = throttle(() => counts().catch(() => {}), 500);
  const changeFilters = () => {
    const countsChange = typeSelect.value !== state.type || operationInput.value !== state.operation
      || (operator && allBox.checked) !== state.all || partsBox.checked !== state.parts;
    state.status = statusSelect.value;
    state.type = typeSelect.value;
    state.operation = operationInput.value;
    state.q = searchInput.value;
    state.sort = sortSelect.value;
    state.all = operator && allBox.checked;
    state.parts = partsBox.checked;
    state.page = 1;
    tabs.select(state.status);
    if (picked) picked.reset();
    saveQuery();
    load().catch(() => {});
    if (countsChange) counts().catch(() => {});
  };
  const saveQuery = () => setQuery({
    status: state.status, type: state.type, operation: state.operation.trim(), q: state.q.trim(), sort: state.sort,
    all: operator && !state.all ? "0" : "", parts: state.parts ? "1" : "", page: state.page > 1 ? state.page : "",
  });
  for (const control of [statusSelect, typeSelect, sortSelect, allBox, partsBox]) control.addEventListener("change", changeFilters);
  let typing = null;
  for (const input of [operationInput, searchInput]) {
    input.addEventListener("input", () => {
      clearTimeout(typing);
      typing = setTimeout(changeFilters, 300);
    });
  }
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
      fillRow(row.tr, row.job, grid);
      flash(row.tr);
    }
    reload(); // new rows, rows leaving the filter, and the fields events do not carry
    recount(); // the tabs' counts: one indexed query, at most twice a second however many events come
  }));
  ctx.onLeave(stream.onState((s) => s === "live" && refresh()));
  ctx.onLeave(reload.cancel);
  ctx.onLeave(recount.cancel);
  // The estimated time remaining counts down between events, and "2 minutes ago" moves on.
  let ticks = 0;
  const ticker = setInterval(() => {
    ticks += 1;
    for (const { tr, job } of rows.values()) {
      if (job.status === "executing" && job.estimatedCompletionAt) {
        const cell = tr.querySelector(".progress-cell");
        if (cell) cell.replaceWith(progressView(job));
      }
      if (ticks % 15 === 0) for (const time of tr.querySelectorAll("time.relative")) time.textContent = relative(time.dateTime);
    }
  }, 1000);
  ctx.onLeave(() => clearInterval(ticker));
  ctx.onLeave(() => clearTimeout(typing));

  await Promise.all([load(), counts()]);
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

/** A row's cells; `grid` gives the row's checkbox (admins) and menu. */
function fillRow(tr, job, grid) {
  tr.dataset.status = job.status;
  const failed = job.status === "failed";
  const ended = job.status === "complete" || job.status === "cancelled";
  const cell = (i, cls, ...content) => h("td", { class: cls, role: "cell", "data-label": COLUMNS[i] }, content);
  fill(tr,
    cell(0, "status-cell", grid.box ? grid.box(job) : null, statusBadge(job), unheardNote(job)),
    cell(1, "nowrap id-cell", h("a", { href: `#/jobs/${job.id}`, class: "mono job-link" }, job.id)),
    cell(2, "nowrap", h("code", {}, job.job || `${job.type}:${job.operation}`),
      job.isPart ? h("span", { class: "tag" }, ` part ${job.part}`) : null),
    cell(3, "info", infoCell(job)),
    cell(4, "nowrap", relativeTimeEl(job.startedAt)),
    cell(5, "nowrap", relativeTimeEl(ended ? job.finishedAt : null)),
    cell(6, "nowrap", relativeTimeEl(failed ? job.finishedAt : null)),
    cell(7, "", job.createdBy || h("span", { class: "muted" }, "—")),
    cell(8, "progress-td", progressView(job)),
    cell(9, "nowrap duration", jobDuration(job) || h("span", { class: "muted" }, "—")),
    cell(10, "actions-cell", grid.menu(job)));
}

/** What a row says of its job: a failed job's error (not the info it last reported), else its info. */
function infoCell(job) {
  if (job.status === "failed" && job.error && job.error.message) return h("span", { class: "error-text" }, job.error.message);
  return job.info || (job.error && job.error.message) || h("span", { class: "muted" }, "—");
}

function flash(tr) {
  tr.classList.remove("flash");
  void tr.offsetWidth; // restart the animation
  tr.classList.add("flash");
}
