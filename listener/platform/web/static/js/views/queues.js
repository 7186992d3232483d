// Queues and workers, for operators: every job type's queue (#/queues), and one queue (#/queues/workbook:export)
// with its jobs by status, the age of its oldest ready job, what completed and failed per minute this hour
// (a chart drawn here, in SVG), its limits (an admin edits them) and the workers that listen for it.
// Kept live: a job of the queue moving, or a worker coming or going, asks the server again.

import { api, get, session } from "../api.js";
import { append, field, fill, h, svg } from "../dom.js";
import { LABELS, STATUSES, humanSpan, timeEl } from "../format.js";
import { idLink } from "../router.js";
import { stream, throttle } from "../stream.js";
import { showError, toast } from "../ui.js";

const queueHref = (job) => `#/queues/${encodeURIComponent(job)}`;
const NOBODY = (job) => `No worker is listening for ${job}`;

export async function queuesView(main, params, query, ctx) {
  document.title = "Queues · Listener";
  const tbody = h("tbody");
  const scope = h("p", { class: "sub" });
  append(main,
    h("div", { class: "page-head" }, h("div", {}, h("h1", {}, "Queues"), scope)),
    h("section", { class: "card", "aria-label": "Queues" }, h("div", { class: "table-wrap" },
      h("table", { class: "queues" },
        h("thead", {}, h("tr", {}, ["Job", "Ready", "Running", "Scheduled", "Failed", "Complete", "Oldest ready",
          "Workers", "Limits"].map((c) => h("th", { scope: "col" }, c)))),
        tbody))));

  const load = async () => {
    const answer = await get("/queues");
    if (!ctx.active) return;
    scope.textContent = "Every job type, its jobs by status and the workers connected to this server that listen for it.";
    fill(tbody, answer.items.length ? answer.items.map(queueRow)
      : h("tr", {}, h("td", { colspan: 9, class: "empty" }, "No jobs yet. Each job type gets its queue here.")));
  };
  const reload = throttle(() => load().catch(() => {}), 1000);
  ctx.onLeave(stream.subscribe((event) => event.topic.startsWith("job:") && reload()));
  ctx.onLeave(stream.onWorkers(reload));
  ctx.onLeave(reload.cancel);
  await load();
}

function queueRow(q) {
  const c = q.counts;
  return h("tr", { dataset: { job: q.job, unheard: q.unheard ? "true" : "false" } },
    h("td", { class: "nowrap" }, h("a", { href: queueHref(q.job) }, h("code", {}, q.job))),
    h("td", { class: "num", dataset: { count: "ready" } }, String(q.ready)),
    h("td", { class: "num" }, String(q.executing)),
    h("td", { class: "num" }, String(c.scheduled + c.planning + c.created)),
    h("td", { class: "num" }, String(c.failed)),
    h("td", { class: "num" }, String(c.complete)),
    h("td", { class: "nowrap" }, age(q)),
    h("td", {}, q.unheard ? h("span", { class: "unheard", role: "note" }, NOBODY(q.job)) : String(q.listening)),
    h("td", { class: "muted" }, limitsText(q.settings)));
}

function age(q) {
  if (q.oldestReadySeconds === null || q.oldestReadySeconds === undefined) return h("span", { class: "muted" }, "—");
  return h("span", { title: q.oldestReadyAt, dataset: { seconds: String(q.oldestReadySeconds) } },
    humanSpan(q.oldestReadySeconds * 1000));
}

function limitsText(s) {
  if (!s) return "None";
  const parts = [];
  if (s.maxRunning) parts.push(s.maxRunning === 1 ? "one at a time" : `${s.maxRunning} at once`);
  if (s.startsPerSecond) parts.push(`${s.startsPerSecond}/s`);
  if (s.timeoutSeconds) parts.push(`timeout ${s.timeoutSeconds} s`);
  return parts.join(", ") || "None";
}

export async function queueView(main, { job }, query, ctx) {
  document.title = `${job} · Queues · Listener`;
  let queue = await get(`/queues/${encodeURIComponent(job)}`);
  if (!ctx.active) return;
  const head = h("div");
  const counts = h("section", { class: "card section", "aria-labelledby": "counts-title" });
  const chart = h("section", { class: "card section", "aria-labelledby": "chart-title" });
  const limits = h("section", { class: "card section", "aria-labelledby": "limits-title" });
  const workers = h("section", { class: "card section", "aria-labelledby": "workers-title" });
  append(main, head, h("div", { class: "grid-2" }, counts, limits), chart, workers);
  limitsSection(limits, queue, async () => {
    queue = await get(`/queues/${encodeURIComponent(job)}`);
    if (ctx.active) draw();
  });

  const draw = () => {
    fill(head,
      h("nav", { class: "crumbs", "aria-label": "Breadcrumb" }, h("a", { href: "#/queues" }, "Queues"), "›",
        h("span", { class: "mono" }, job)),
      h("div", { class: "page-head" }, h("div", {}, h("h1", {}, h("code", {}, job)),
        h("p", { class: "sub" }, `Jobs of ${job}, and the workers connected to this server that listen for them.`))),
      queue.unheard ? h("div", { class: "listening" },
        h("span", { class: "unheard", role: "note" }, NOBODY(job))) : null);
    fill(counts, h("h2", { id: "counts-title" }, "Jobs"),
      h("dl", { class: "fields counts" },
        STATUSES.map((s) => [h("dt", {}, LABELS[s] || s), h("dd", { dataset: { status: s } }, String(queue.counts[s] || 0))]),
        h("dt", {}, "Oldest ready"), h("dd", { dataset: { field: "oldestReady" } }, age(queue), queue.oldestReadyAt
          ? [" (since ", timeEl(queue.oldestReadyAt, { short: true }), ")"] : null)));
    fill(chart, h("h2", { id: "chart-title" }, "Completed and failed per minute, last hour"), throughputChart(queue.throughput));
    fill(workers, h("h2", { id: "workers-title" }, `Workers (${queue.workers.length})`), workersTable(queue.workers, job));
  };
  draw();

  const reload = throttle(async () => {
    try {
      queue = await get(`/queues/${encodeURIComponent(job)}`);
      if (ctx.active) draw();
    } catch {
      /* the next event or worker change tries again */
    }
  }, 1000);
  ctx.onLeave(stream.subscribe((event) => event.topic.startsWith("job:") && event.context.job === job && reload()));
  ctx.onLeave(stream.onWorkers(reload));
  ctx.onLeave(reload.cancel);
}

const W = 600;
const H = 120;
const PAD = 18;

/** The bars: per minute, completed (below) and failed (stacked on it), scaled to the busiest minute. */
export function throughputChart(t) {
  const minutes = t.completed.length;
  const peak = Math.max(1, ...t.completed.map((n, i) => n + t.failed[i]));
  const slot = W / minutes;
  const scale = (H - PAD) / peak;
  const since = Date.parse(t.since);
  const bars = [];
  t.completed.forEach((done, i) => {
    const failed = t.failed[i];
    const at = new Date(since + i * t.minuteSeconds * 1000).toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" });
    const x = (i * slot + 1).toFixed(1);
    const width = Math.max(1, slot - 2).toFixed(1);
    let top = H - PAD;
    for (const [count, cls, word] of [[done, "completed", "completed"], [failed, "failed", "failed"]]) {
      if (!count) continue;
      const height = count * scale;
      top -= height;
      bars.push(svg("rect", { class: `bar ${cls}`, x, y: top.toFixed(1), width, height: height.toFixed(1),
        dataset: { minute: String(i), count: String(count) } }, svg("title", {}, `${at}: ${count} ${word}`)));
    }
  });
  const total = (xs) => xs.reduce((a, b) => a + b, 0);
  const label = `${total(t.completed)} completed and ${total(t.failed)} failed in the last hour`;
  return h("figure", { class: "chart" },
    svg("svg", { class: "throughput", viewBox: `0 0 ${W} ${H}`, role: "img", "aria-label": label,
      preserveAspectRatio: "none", dataset: { peak: String(peak) } },
    svg("line", { class: "axis", x1: 0, y1: H - PAD, x2: W, y2: H - PAD }),
    svg("text", { class: "tick", x: 0, y: H - 4 }, "1 h ago"),
    svg("text", { class: "tick", x: W, y: H - 4, "text-anchor": "end" }, "now"),
    svg("text", { class: "tick", x: 0, y: 10 }, `${peak}/min`),
    bars),
    h("figcaption", { class: "legend" }, h("span", { class: "key completed" }, "Completed"), " ",
      h("span", { class: "key failed" }, "Failed"), " — ", label));
}

function workersTable(list, job) {
  if (!list.length) {
    return h("p", { class: "muted" }, `No worker connected to this server listens for ${job}. Start one with `,
      h("code", {}, "listener run"), ".");
  }
  const jobs = (items) => (items.length ? items.map((j, i) => [i ? ", " : "", idLink(j.id)]) : h("span", { class: "muted" }, "—"));
  return h("div", { class: "table-wrap" }, h("table", { class: "workers" },
    h("thead", {}, h("tr", {}, ["Agent", "User", "Kind", "Connected", "Lag (events)", "Handed to it", "Executing"]
      .map((c) => h("th", { scope: "col" }, c)))),
    h("tbody", {}, list.map((w) => h("tr", { dataset: { workerId: w.id } },
      h("td", {}, h("strong", {}, w.agent), w.shared ? h("span", { class: "tag" }, " shares") : null),
      h("td", {}, w.user || h("span", { class: "muted" }, "—")),
      h("td", {}, w.kind === "stream" ? `socket${w.address ? ` from ${w.address}` : ""}` : "in-process"),
      h("td", { class: "nowrap" }, timeEl(w.connectedAt, { short: true })),
      h("td", { class: "num", dataset: { field: "lag" } }, w.lag === null ? "—" : String(w.lag)),
      h("td", {}, jobs(w.handed)),
      h("td", {}, jobs(w.executing)))))));
}

/** The limits: read-only, or a form for an admin (PUT /job-settings/{job}, which replaces what was set). */
function limitsSection(box, queue, saved) {
  const s = queue.settings || {};
  const admin = session.user && session.user.role === "admin";
  const number = (name, value, props) => h("input", { type: "number", name, value: value ?? "", inputmode: "decimal",
    placeholder: "No limit", ...props });
  const maxRunning = number("maxRunning", s.maxRunning, { min: 1, max: 100000, step: 1 });
  const rate = number("startsPerSecond", s.startsPerSecond, { min: 0.000001, max: 100000, step: "any" });
  const timeout = number("timeoutSeconds", s.timeoutSeconds, { min: 1, max: 31536000, step: 1, placeholder: "Default (24 h)" });
  const error = h("p", { class: "form-error", role: "alert" });
  for (const input of [maxRunning, rate, timeout]) input.disabled = !admin;
  // novalidate: the server's answer names the field and the bound, in the same words as the API's.
  const form = h("form", { class: "limits", "aria-label": `Limits of ${queue.job}`, novalidate: true },
    field("Max running at once", maxRunning), field("Starts per second", rate), field("Timeout (seconds)", timeout),
    error,
    admin ? h("div", { class: "actions-row" }, h("button", { type: "submit", class: "btn primary" }, "Save limits"))
      : h("p", { class: "muted" }, "Only an admin may change them."));
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const read = (input) => (input.value.trim() === "" ? null : Number(input.value));
    const body = { maxRunning: read(maxRunning), startsPerSecond: read(rate), timeoutSeconds: read(timeout),
      maxLeaseExpirations: s.maxLeaseExpirations ?? null };
    error.textContent = "";
    try {
      await api("PUT", `/job-settings/${encodeURIComponent(queue.job)}`, body);
      toast(`Limits of ${queue.job} saved.`);
      await saved();
    } catch (e) {
      error.textContent = e.message;
      if (!e.status) showError(e, "Limits");
    }
  });
  fill(box, h("h2", { id: "limits-title" }, "Limits"), form);
}
