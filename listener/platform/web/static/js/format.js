// Words and numbers for jobs: status labels, times, durations, estimated time remaining.

import { h } from "./dom.js";

export const TERMINAL = new Set(["complete", "failed", "cancelled"]);
export const STATUSES = ["created", "planning", "scheduled", "ready", "executing", "complete", "failed", "cancelled"];
export const TYPES = ["space", "workbook", "sheet", "file", "document"];
// Other systems' words for our statuses, as the jobs filter offers them (the API takes any case; DESIGN.md §2).
export const STATUS_WORDS = [
  ["Fiddler", ["PENDING", "STARTED", "SUCCESS", "FAILURE", "RETRY", "REVOKED"]],
  ["Cocoa Canvas", ["pending", "processing", "completed"]], // and "failed", which is ours
  ["Zoltar", ["TIMEOUT"]],
];

export const LABELS = {
  created: "Created", planning: "Planning", scheduled: "Scheduled", ready: "Ready", executing: "Running",
  complete: "Complete", failed: "Failed", cancelled: "Cancelled",
};

/** How a job's status looks: its words and its kind of icon (spinner, check, cross, dash, waiting). */
export function statusMeta(job) {
  const status = job.status;
  let label = LABELS[status] || status;
  if (status === "failed" && job.error && job.error.kind === "timeout") label = "Timed out";
  else if (status === "failed" && job.error && job.error.kind === "lease_expired") label = "Failed (worker lost)";
  else if (status === "scheduled" && job.attempt > 0 && job.nextAttemptAt) label = "Retrying";
  else if (status === "scheduled" && job.waitingFor) label = "Waiting";
  let kind = "waiting";
  if (status === "ready") kind = "ready"; // queued for a worker: not the spinner of a job a worker is running
  else if (status === "executing") kind = "running";
  else if (status === "complete") kind = "complete";
  else if (status === "failed") kind = "failed";
  else if (status === "cancelled") kind = "cancelled";
  return { label, kind };
}

/** The status with its icon (spinner / check / cross), as in Claret's grid. */
export function statusBadge(job) {
  const { label, kind } = statusMeta(job);
  return h("span", { class: ["status", `st-${kind}`], dataset: { status: job.status } },
    h("span", { class: "st-icon", "aria-hidden": "true" }), h("span", { class: "st-label" }, label));
}

const longFormat = new Intl.DateTimeFormat(undefined, { dateStyle: "medium", timeStyle: "medium" });
const timeFormat = new Intl.DateTimeFormat(undefined, { timeStyle: "medium" });
const dayFormat = new Intl.DateTimeFormat(undefined, { month: "short", day: "numeric", hour: "numeric", minute: "2-digit" });
const yearFormat = new Intl.DateTimeFormat(undefined, { dateStyle: "medium" });

/** A <time> for an ISO timestamp, or a dash; `short` says only what differs from today (the full time is its title). */
export function timeEl(iso, { short = false } = {}) {
  if (!iso) return h("span", { class: "muted", "aria-label": "none" }, "—");
  const date = new Date(iso);
  if (Number.isNaN(date.getTime())) return h("span", {}, iso);
  let text = longFormat.format(date);
  if (short) {
    const now = new Date();
    if (date.toDateString() === now.toDateString()) text = timeFormat.format(date);
    else if (date.getFullYear() === now.getFullYear()) text = dayFormat.format(date);
    else text = yearFormat.format(date);
  }
  return h("time", { datetime: iso, title: longFormat.format(date) }, text);
}

const relativeFormat = new Intl.RelativeTimeFormat(undefined, { numeric: "auto" });
const RELATIVE_STEPS = [[60, "second", 1], [3600, "minute", 60], [86_400, "hour", 3600], [604_800, "day", 86_400],
  [2_629_800, "week", 604_800], [31_557_600, "month", 2_629_800], [Infinity, "year", 31_557_600]];

/** "3 minutes ago", "in 2 hours": how far `iso` is from `now`. */
export function relative(iso, now = Date.now()) {
  const seconds = (Date.parse(iso) - now) / 1000;
  const [, unit, size] = RELATIVE_STEPS.find(([limit]) => Math.abs(seconds) < limit);
  return relativeFormat.format(Math.round(seconds / size), unit);
}

/** A <time> for an ISO timestamp saying how long ago it was, the full time on hover (its title); or a dash. */
export function relativeTimeEl(iso) {
  if (!iso) return h("span", { class: "muted", "aria-label": "none" }, "—");
  const date = new Date(iso);
  if (Number.isNaN(date.getTime())) return h("span", {}, iso);
  return h("time", { datetime: iso, title: longFormat.format(date), class: "relative" }, relative(iso));
}

/** Microseconds since the epoch, keeping the six digits of fraction the API sends (Date keeps three). */
export function micros(iso) {
  const m = /^(.*T\d{2}:\d{2}:\d{2})(?:\.(\d+))?(.*)$/.exec(iso || "");
  if (!m) return Number.NaN;
  const base = Date.parse(m[1] + (m[3] || "Z"));
  return base * 1000 + Number((m[2] || "").padEnd(6, "0").slice(0, 6));
}

const pad2 = (n) => String(n).padStart(2, "0");

/** A duration as Python prints a timedelta, as Zoltar shows ΔT: "0:00:01.155223", "1 day, 2:03:04". */
export function deltaT(microseconds) {
  let rest = Math.max(0, Math.round(microseconds));
  const days = Math.floor(rest / 86_400_000_000);
  rest -= days * 86_400_000_000;
  const hours = Math.floor(rest / 3_600_000_000);
  rest -= hours * 3_600_000_000;
  const minutes = Math.floor(rest / 60_000_000);
  rest -= minutes * 60_000_000;
  const seconds = Math.floor(rest / 1_000_000);
  const fraction = rest - seconds * 1_000_000;
  let out = `${hours}:${pad2(minutes)}:${pad2(seconds)}`;
  if (fraction) out += `.${String(fraction).padStart(6, "0")}`;
  if (days) out = `${days} day${days === 1 ? "" : "s"}, ${out}`;
  return out;
}

/** ΔT of a job: from its start (or creation) to its end; null while it runs. */
export function jobDuration(job) {
  if (!job.finishedAt) return null;
  const start = job.startedAt || job.createdAt;
  return deltaT(micros(job.finishedAt) - micros(start));
}

/** "12 s", "3 min", "1 h 5 min". */
export function humanSpan(ms) {
  const s = Math.max(1, Math.round(ms / 1000));
  if (s < 60) return `${s} s`;
  const min = Math.round(s / 60);
  if (min < 60) return `${min} min`;
  return `${Math.floor(min / 60)} h ${min % 60} min`;
}

/** Estimated time remaining, as Cocoa Canvas shows it; "" when there is nothing to estimate. */
export function remaining(job, now = Date.now()) {
  if (job.status !== "executing") return "";
  if (job.estimatedCompletionAt) {
    const ms = Date.parse(job.estimatedCompletionAt) - now;
    return ms > 0 ? `about ${humanSpan(ms)} left` : "finishing…";
  }
  // Without an estimate from the listener, extrapolate from the rate so far (server times only).
  const done = job.processed && job.total ? job.processed / job.total : job.progress / 100;
  if (!job.startedAt || !job.updatedAt || !(done > 0) || done >= 1) return "";
  const elapsed = Date.parse(job.updatedAt) - Date.parse(job.startedAt);
  if (!(elapsed > 0)) return "";
  return `about ${humanSpan((elapsed * (1 - done)) / done)} left`;
}

/** "1.2 MB". */
export function bytes(n) {
  if (n === null || n === undefined) return "—";
  const units = ["B", "KB", "MB", "GB", "TB"];
  let value = n;
  let unit = 0;
  while (value >= 1024 && unit < units.length - 1) {
    value /= 1024;
    unit += 1;
  }
  return `${unit ? value.toFixed(1) : value} ${units[unit]}`;
}

/** The progress of a job: a bar, the percent, items processed / total and the time left. */
export function progressView(job) {
  const pct = Math.max(0, Math.min(100, Math.round(job.progress || 0)));
  const bar = h("progress", { max: 100, value: pct, class: job.status, "aria-label": `Progress of ${job.id}` });
  const meta = h("div", { class: "progress-meta" });
  if (job.total !== null && job.total !== undefined && job.total > 0) {
    meta.append(h("span", { class: "items" }, `${(job.processed || 0).toLocaleString()} / ${job.total.toLocaleString()} items`));
  }
  const left = remaining(job);
  if (left) meta.append(h("span", { class: "eta" }, left));
  if (job.parts) {
    const p = job.parts;
    meta.append(h("span", {}, `${p.completed + p.failed + p.cancelled} / ${p.total} parts`));
  }
  return h("div", { class: "progress-cell" },
    h("div", { class: "progress-line" }, bar, h("span", { class: "pct" }, `${pct}%`)), meta);
}

/** JSON, pretty. */
export function pretty(value) {
  return JSON.stringify(value, null, 2);
}
