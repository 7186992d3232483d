// One job, everything about it: its fields (the empty ones left out), ΔT, its attempts as a timeline and
// the next retry, the failure it ended with, JSON in and out, its files and data CSV, its error log, its
// subtasks and its event trail (in seq order, ending with its last event) — kept live by events.

import { ApiError, download, get, post } from "../api.js";
import { append, fill, h } from "../dom.js";
import { TERMINAL, jobDuration, pretty, progressView, statusBadge, timeEl } from "../format.js";
import { track } from "../jobwatch.js";
import { askUnheard, unheardNote } from "../listening.js";
import { idLink } from "../router.js";
import { stream, throttle } from "../stream.js";
import { showError, toast } from "../ui.js";
import { attemptsOf, attemptsTimeline } from "./attempts.js";

const FIELDS = [
  ["id", "Job ID"], ["job", "Job"], ["type", "Type"], ["operation", "Operation"], ["status", "Status"],
  ["fiddlerStatus", "Fiddler status"], ["info", "Info"], ["source", "Source"], ["destination", "Destination"], ["trigger", "Trigger"], ["mode", "Mode"],
  ["managed", "Managed"], ["progress", "Progress"], ["processed", "Items processed"], ["total", "Items total"],
  ["estimatedCompletionAt", "Estimated completion"], ["createdBy", "Run by"], ["createdAt", "Created"],
  ["startedAt", "Started"], ["updatedAt", "Updated"], ["finishedAt", "Ended"], ["duration", "Duration (ΔT)"],
  ["priority", "Priority"], ["concurrencyKey", "Concurrency key"], ["dedupeKey", "Dedupe key"],
  ["attempt", "Attempt"], ["maxAttempts", "Max attempts"], ["nextAttemptAt", "Next retry"], ["retry", "Retry policy"],
  ["leaseSeconds", "Lease (s)"], ["leaseExpiresAt", "Lease expires"], ["timeoutSeconds", "Timeout (s)"],
  ["runAt", "Run at"], ["predecessorIds", "Waits for"], ["waitingFor", "Waiting for"], ["isPart", "Is a part"],
  ["part", "Part"], ["parentId", "Parent job"], ["retryOf", "Retries the failed items of"], ["partData", "Part data"], ["parts", "Parts"], ["dataRows", "Job data rows"],
  ["outcomeAcknowledgedAt", "Outcome acknowledged"], ["metadata", "Metadata"], ["checkpoint", "Checkpoint"],
];
// Shown in their own sections below, not in the list of fields.
const ELSEWHERE = new Set(["input", "outcome", "error", "files"]);
const ID_FIELDS = new Set(["id", "source", "destination", "parentId", "retryOf"]);
const ROLES = { input: "Input file", output: "Output file", error_report: "Error report" };

export async function jobView(main, { id }, query, ctx) {
  let job = await get(`/jobs/${encodeURIComponent(id)}`);
  if (!ctx.active) return;

  const top = h("div");
  const attemptsBox = h("section", { class: "card section", "aria-labelledby": "attempts-title" });
  const errorsBox = h("section", { class: "card section", "aria-labelledby": "errors-title", hidden: true });
  const partsBox = h("section", { class: "card section", "aria-labelledby": "parts-title", hidden: true });
  // Scrolls on its own (max-height), so it takes focus: a keyboard user scrolls it with the arrow keys.
  const trailList = h("ol", { class: "trail", "aria-label": "Events", tabindex: "0" });
  const trailBox = h("section", { class: "card section", "aria-labelledby": "trail-title" },
    h("h2", { id: "trail-title" }, "Event trail"), trailList);
  const listening = listeningBox(() => job, ctx);
  append(main, top, listening.box, attemptsBox, errorsBox, partsBox, trailBox);

  const events = new Map(); // seq → event: the job's events, from the log and the stream, each once
  const drawAttempts = () => fill(attemptsBox, h("h2", { id: "attempts-title" }, "Attempts"),
    attemptsTimeline(attemptsOf(events.values(), id), job));
  const draw = () => {
    document.title = `${job.job} ${job.id} · Listener`;
    fill(top, ...header(job, ctx), ...body(job));
    drawAttempts();
    listening.ask();
  };
  draw();

  // -- error log ------------------------------------------------------------------
  const loadErrors = async () => {
    const page = await get(`/jobs/${encodeURIComponent(id)}/errors`, { limit: 200 });
    if (!ctx.active) return;
    errorsBox.hidden = !page.total; // an empty log is not shown; it appears when the first error is logged
    const csv = h("button", { type: "button", class: "btn small", disabled: !page.total,
      onclick: () => download(`/api/v1/jobs/${encodeURIComponent(id)}/errors.csv`).catch((e) => showError(e, "Error log")) },
    "Download error log (CSV)");
    // Retry only what failed: a new job for the items the log names, once this one has ended.
    const retryItems = TERMINAL.has(job.status) && page.items.some((e) => e.item != null)
      ? h("button", { type: "button", class: "btn small primary", onclick: async () => {
        try {
          const again = await post(`/jobs/${encodeURIComponent(id)}/retry-failed-items`);
          await track(again, { label: `${job.job} (failed items)` });
        } catch (error) {
          showError(error, "Retry failed items");
        }
      } }, "Retry failed items")
      : null;
    fill(errorsBox,
      h("div", { class: "page-head" }, h("h2", { id: "errors-title" }, `Error log (${page.total})`), retryItems, csv),
      page.total
        ? h("div", { class: "table-wrap" }, h("table", { class: "errors" },
          h("thead", {}, h("tr", {}, h("th", { scope: "col" }, "Item"), h("th", { scope: "col" }, "Message"), h("th", { scope: "col" }, "Time"))),
          h("tbody", {}, page.items.map((e) => h("tr", {},
            h("td", { class: "mono" }, e.item ?? "—"), h("td", { class: "info" }, e.message), h("td", { class: "nowrap" }, timeEl(e.createdAt, { short: true })))))))
        : h("p", { class: "muted" }, "No errors were logged."),
      page.total > page.items.length ? h("p", { class: "muted" }, `Showing the first ${page.items.length}; download the CSV for all of them.`) : null);
  };

  // -- subtasks ---------------------------------------------------------------------
  const loadParts = async () => {
    const page = await get("/jobs", { parentId: id, limit: 200 });
    if (!ctx.active) return;
    partsBox.hidden = !page.total && !job.parts;
    fill(partsBox, h("h2", { id: "parts-title" }, `Subtasks (${page.total})`),
      h("div", { class: "table-wrap" }, h("table", { class: "parts" },
        h("thead", {}, h("tr", {}, ["Status", "Part", "Job ID", "Info", "Ended", "Progress"].map((c) => h("th", { scope: "col" }, c)))),
        h("tbody", {}, page.items.map((part) => h("tr", { dataset: { jobId: part.id, status: part.status } },
          h("td", {}, statusBadge(part)), h("td", {}, String(part.part ?? "")),
          h("td", {}, h("a", { href: `#/jobs/${part.id}`, class: "mono" }, part.id)),
          h("td", { class: "info" }, part.info || (part.error && part.error.message) || "—"),
          h("td", { class: "nowrap" }, timeEl(part.finishedAt, { short: true })), h("td", {}, progressView(part))))))));
  };

  // -- event trail ------------------------------------------------------------------
  // In seq order whichever way an event came (the log's pages, or the stream while they load), so the trail
  // always ends with the job's last event.
  const addEvent = (event, { live = false } = {}) => {
    if (events.has(event.seq)) return;
    events.set(event.seq, event);
    const p = event.payload || {};
    // A job keeps its last error until it completes, so every later event's payload carries it too: the trail
    // names it only on the event that brought it (the failure, or the worker lost), not on the retry's moves.
    const fresh = event.topic === "job:failed" || (event.topic === "job:ready" && p.error && p.error.kind === "lease_expired");
    const bits = [p.status, p.progress !== undefined ? `${p.progress}%` : null, p.info, p.willRetry ? "will retry" : null,
      fresh && p.error && p.error.message ? `error: ${p.error.message}` : null].filter((b) => b !== null && b !== undefined && b !== "");
    const item = h("li", { dataset: { topic: event.topic, seq: String(event.seq) } },
      h("span", { class: "seq" }, `#${event.seq}`),
      h("span", {}, h("code", {}, event.topic), h("br"), h("span", { class: "when muted" }, timeEl(event.createdAt, { short: true }))),
      h("span", { class: "info" }, bits.join(" · "), event.context.actorId ? h("span", { class: "muted" }, ` — by ${event.context.actorId}`) : null));
    trailList.querySelector(".none")?.remove();
    const last = trailList.lastElementChild;
    if (!last || Number(last.dataset.seq) < event.seq) { // the usual case: it is the newest
      const atEnd = live && trailList.scrollHeight - trailList.scrollTop - trailList.clientHeight < 24;
      trailList.append(item);
      if (atEnd) trailList.scrollTop = trailList.scrollHeight; // following the end, as a log viewer does
      return;
    }
    trailList.insertBefore(item, [...trailList.children].find((li) => Number(li.dataset.seq) > event.seq));
  };
  const loadTrail = async () => {
    let after = 0;
    for (;;) {
      const page = await get("/events", { jobId: id, after, limit: 1000 });
      if (!ctx.active) return;
      page.items.forEach(addEvent);
      if (page.items.length < 1000) break;
      after = page.items[page.items.length - 1].seq;
    }
    if (!trailList.children.length) trailList.append(h("li", { class: "muted none" }, "No events."));
    drawAttempts();
  };

  const refresh = throttle(async () => {
    try {
      job = await get(`/jobs/${encodeURIComponent(id)}`);
      if (ctx.active) draw();
    } catch (error) {
      if (error instanceof ApiError && error.status === 404 && ctx.active) {
        fill(top, h("div", { class: "banner error", role: "alert" }, "This job was deleted."));
      }
    }
  }, 300);
  const redrawAttempts = throttle(drawAttempts, 300);
  const refreshErrors = throttle(() => loadErrors().catch(() => {}), 1000);
  const refreshParts = throttle(() => loadParts().catch(() => {}), 500);
  ctx.onLeave(stream.subscribe((event) => {
    if (event.context.jobId === id) {
      addEvent(event, { live: true });
      redrawAttempts();
      refresh();
      refreshErrors();
    } else if (event.topic.startsWith("job:") && event.payload && event.payload.parentId === id) refreshParts();
  }));
  ctx.onLeave(() => [refresh, redrawAttempts, refreshErrors, refreshParts].forEach((t) => t.cancel()));
  refresh(); // what changed between the first load and listening
  const ticker = setInterval(() => {
    if (job.status === "executing" && job.estimatedCompletionAt) {
      const cell = top.querySelector(".progress-cell");
      if (cell) cell.replaceWith(progressView(job));
    }
  }, 1000);
  ctx.onLeave(() => clearInterval(ticker));

  await Promise.all([loadErrors(), loadParts(), loadTrail()]);
}

/**
 * "No worker is listening for workbook:export" while the job is ready and no worker on the server would be
 * sent it: its own box under the header, asked again as the job moves (`ask`) and when workers come or go.
 */
function listeningBox(currentJob, ctx) {
  const box = h("div", { class: "listening", hidden: true });
  const ask = () => askUnheard([currentJob()]).then(() => {
    if (!ctx.active) return;
    const note = unheardNote(currentJob(), { link: true });
    box.hidden = !note;
    fill(box, note);
  }).catch(() => {});
  ctx.onLeave(stream.onWorkers(ask));
  return { box, ask };
}

function header(job, ctx) {
  const buttons = h("div", { class: "actions-row" });
  const act = async (label, path, body, after) => {
    try {
      const result = await post(`/jobs/${encodeURIComponent(job.id)}/${path}`, body);
      if (after) await after(result);
    } catch (error) {
      showError(error, label);
    }
  };
  if (!TERMINAL.has(job.status)) {
    buttons.append(h("button", { type: "button", class: "btn danger", onclick: () => act("Cancel", "cancel", {}) }, "Cancel job"));
  }
  if (job.status === "failed") {
    buttons.append(h("button", { type: "button", class: "btn primary",
      onclick: () => act("Retry", "retry", undefined, (again) => track(again, { label: job.job })) }, "Retry"));
  }
  if (job.outcome && job.outcome.acknowledge && TERMINAL.has(job.status) && !job.outcomeAcknowledgedAt) {
    buttons.append(h("button", { type: "button", class: "btn",
      onclick: () => act("Acknowledge", "outcome/acknowledge", undefined, () => toast("Outcome acknowledged.")) }, "Acknowledge outcome"));
  }
  return [
    h("nav", { class: "crumbs", "aria-label": "Breadcrumb" }, h("a", { href: "#/jobs" }, "Jobs"), "›", h("span", { class: "mono" }, job.id)),
    h("div", { class: "page-head" },
      h("div", {}, h("h1", {}, h("code", {}, job.job), " ", statusBadge(job), " ", fiddlerTag(job)),
        h("p", { class: "sub" }, job.info || "")),
      buttons),
  ];
}

/** The status in Fiddler's words (SUCCESS, RETRY...), beside ours, where a Fiddler user looks for it. */
function fiddlerTag(job) {
  if (!job.fiddlerStatus) return null;
  return h("span", { class: "tag fiddler-status", title: "Fiddler's word for this status", dataset: { field: "fiddlerStatusTag" } },
    job.fiddlerStatus);
}

function body(job) {
  const sections = [];
  // The failure the job stands at: it ended failed, or waits for its retry. Once a retry runs (or the job is
  // ready again), the failure is history and stays in its attempt's entry in the timeline.
  if (job.error && (job.status === "failed" || job.status === "scheduled")) {
    const e = job.error;
    sections.push(h("div", { class: "failure", role: "note", "aria-label": "Failure" },
      h("strong", {}, `Failure (${e.kind})`), e.retryable ? h("span", { class: "tag warn" }, " retryable") : null,
      h("p", { class: "dlg-message failure-message" }, e.message),
      e.attempt ? h("p", { class: "muted" }, `On attempt ${e.attempt} of ${job.maxAttempts}.`) : null));
  }
  if (job.status === "scheduled" && job.nextAttemptAt) {
    sections.push(h("div", { class: "banner" }, `Attempt ${job.attempt} of ${job.maxAttempts} failed; the next retry is at `,
      timeEl(job.nextAttemptAt), "."));
  }

  const details = h("dl", { class: "fields" });
  const shown = new Set();
  for (const [key, label] of FIELDS) {
    shown.add(key);
    if (!isEmpty(job, key)) details.append(h("dt", {}, label), h("dd", { dataset: { field: key } }, value(job, key)));
  }
  for (const key of Object.keys(job)) {
    if (shown.has(key) || ELSEWHERE.has(key) || isEmpty(job, key)) continue;
    details.append(h("dt", {}, key), h("dd", { dataset: { field: key } }, value(job, key)));
  }

  const duration = jobDuration(job);
  const retryAt = job.status === "scheduled" ? job.nextAttemptAt : null;
  const progress = h("section", { class: "card section", "aria-labelledby": "progress-title" },
    h("h2", { id: "progress-title" }, "Progress"), progressView(job),
    h("dl", { class: "fields" },
      duration ? [h("dt", {}, "Duration (ΔT)"), h("dd", { class: "mono", dataset: { field: "deltaT" } }, duration)] : null,
      h("dt", {}, "Attempts"), h("dd", {}, `${job.attempt} of ${job.maxAttempts}`),
      retryAt ? [h("dt", {}, "Next retry"), h("dd", {}, timeEl(retryAt))] : null));

  sections.push(h("div", { class: "grid-2" },
    h("section", { class: "card section", "aria-labelledby": "details-title" }, h("h2", { id: "details-title" }, "Details"), details),
    h("div", { class: "stack" }, progress, outcomeSection(job), filesSection(job))));

  sections.push(h("div", { class: "grid-2 json-io" },
    h("section", { class: "card section", "aria-labelledby": "in-title" }, h("h2", { id: "in-title" }, "JSON in"),
      h("pre", { class: "json", "data-json": "in", tabindex: "0" }, pretty(job.input || {}))),
    h("section", { class: "card section", "aria-labelledby": "out-title" }, h("h2", { id: "out-title" }, "JSON out"),
      h("pre", { class: "json", "data-json": "out", tabindex: "0" }, job.outcome ? pretty(job.outcome) : "null"))));
  return sections;
}

function outcomeSection(job) {
  const o = job.outcome;
  if (!o && !TERMINAL.has(job.status)) return null; // nothing to say until it ends
  const box = h("section", { class: "card section", "aria-labelledby": "outcome-title" }, h("h2", { id: "outcome-title" }, "Outcome"));
  if (!o) {
    append(box, h("p", { class: "muted" }, "No outcome was given."));
    return box;
  }
  const list = h("dl", { class: "fields" });
  const add = (label, content) => list.append(h("dt", {}, label), h("dd", {}, content));
  if (o.heading) add("Heading", o.heading);
  add("Message", o.message || "—");
  add("Acknowledge", o.acknowledge ? "Required" : "Not required");
  if (o.next) add("Next", `${o.next.type}${o.next.label ? ` — ${o.next.label}` : ""}`);
  if (job.outcomeAcknowledgedAt) add("Acknowledged", timeEl(job.outcomeAcknowledgedAt));
  append(box, list);
  return box;
}

function filesSection(job) {
  const box = h("section", { class: "card section", "aria-labelledby": "files-title" }, h("h2", { id: "files-title" }, "Files and data"));
  const files = job.files || [];
  if (files.length) {
    append(box, h("div", { class: "table-wrap" }, h("table", { class: "job-files" },
      h("thead", {}, h("tr", {}, h("th", { scope: "col" }, "File"), h("th", { scope: "col" }, "Role"), h("th", { scope: "col" }, h("span", { class: "sr-only" }, "Download")))),
      h("tbody", {}, files.map((f) => h("tr", { dataset: { fileId: f.fileId, role: f.role } },
        h("td", { class: "info" }, h("a", { href: `#/files/${f.fileId}` }, f.name || f.fileId)),
        h("td", {}, ROLES[f.role] || f.role),
        h("td", {}, h("button", { type: "button", class: "btn small", "aria-label": `Download ${f.name || f.fileId}`,
          onclick: () => download(`/api/v1/files/${encodeURIComponent(f.fileId)}/content`).catch((e) => showError(e, "Download")) }, "Download"))))))));
  } else append(box, h("p", { class: "muted" }, "No input files, output files or error reports."));
  const rows = job.dataRows || 0;
  const csv = h("button", { type: "button", class: "btn", disabled: rows === 0, "data-role": "job-data",
    onclick: () => download(`/api/v1/jobs/${encodeURIComponent(job.id)}/data.csv`).catch((e) => showError(e, "Job data")) },
  "Download job data (CSV)", rows === 0 ? " (No job data)" : ` (${rows.toLocaleString()} row${rows === 1 ? "" : "s"})`);
  append(box, h("div", { class: "actions-row" }, csv));
  return box;
}

/** A field with nothing to say is left out of the list: no value, an empty list or object, ΔT of a job
 * still running, the next retry of a job that waits for none, the lease of a job no one holds. */
function isEmpty(job, key) {
  if (key === "duration") return !jobDuration(job);
  if (key === "status") return false;
  if (key === "nextAttemptAt" && job.status !== "scheduled") return true;
  if ((key === "leaseExpiresAt") && job.status !== "executing") return true;
  const v = job[key];
  if (v === null || v === undefined || v === "") return true;
  if (Array.isArray(v)) return !v.length;
  return typeof v === "object" && !Object.keys(v).length;
}

function value(job, key) {
  if (key === "duration") return h("span", { class: "mono" }, jobDuration(job) || "—");
  if (key === "status") return statusBadge(job);
  if (key === "finishedAt" && job.finishedAt) return [timeEl(job.finishedAt), job.status === "failed" ? " (failed)" : ""];
  const v = job[key];
  if (v === null || v === undefined || (Array.isArray(v) && !v.length)) return h("span", { class: "muted" }, "—");
  if (ID_FIELDS.has(key)) return idLink(v);
  if (key === "predecessorIds") return v.map((p, i) => [i ? ", " : "", idLink(p)]);
  if (key.endsWith("At")) return timeEl(v);
  if (typeof v === "boolean") return v ? "Yes" : "No";
  if (key === "progress") return `${v}%`;
  if (typeof v === "object") return Object.keys(v).length ? h("pre", { class: "json" }, pretty(v)) : h("span", { class: "muted" }, "{}");
  return String(v);
}
