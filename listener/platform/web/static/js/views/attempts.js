// A job's attempts as a timeline, read from its events: each attempt starts with the ack that claimed it
// (job:updated, status executing, a new `attempt` number; its actorId is the worker that acked it) and
// ends with what ended it: job:completed, job:failed (its error: kind and message), job:cancelled, or a
// job:ready whose error says the worker was lost (the lease ran out). An earlier attempt's failure stays
// in its own entry, so a retry that runs is never shown under the error of the one before.

import { h } from "../dom.js";
import { deltaT, micros, timeEl } from "../format.js";

const ENDS = {
  "job:completed": "complete",
  "job:failed": "failed",
  "job:cancelled": "cancelled",
};
const RESULT_LABELS = {
  running: "Running", complete: "Complete", failed: "Failed", retrying: "Failed, will retry",
  cancelled: "Cancelled", lost: "Worker lost", timeout: "Timed out",
};
const RESULT_KINDS = { running: "running", complete: "complete", cancelled: "cancelled" };

/** The attempts in `events` (any order; other jobs' events and duplicates are ignored), oldest first. */
export function attemptsOf(events, jobId) {
  const attempts = [];
  let current = null;
  const seen = new Set();
  for (const event of [...events].sort((a, b) => a.seq - b.seq)) {
    if (seen.has(event.seq) || event.context.jobId !== jobId) continue;
    seen.add(event.seq);
    const p = event.payload || {};
    if (event.topic === "job:updated" && p.status === "executing" && p.attempt
      && (!current || p.attempt > current.number)) {
      current = { number: p.attempt, startedAt: event.createdAt, endedAt: null, worker: event.context.actorId || null,
        result: "running", error: null };
      attempts.push(current);
      continue;
    }
    if (!current || current.endedAt) continue;
    const lost = event.topic === "job:ready" && p.error && p.error.kind === "lease_expired"
      && p.error.attempt === current.number;
    if (!ENDS[event.topic] && !lost) continue;
    current.endedAt = event.createdAt;
    if (lost) current.result = "lost";
    else current.result = ENDS[event.topic];
    if (event.topic === "job:failed" || lost) {
      current.error = p.error || null;
      if (p.willRetry) current.result = "retrying";
      else if (p.error && p.error.kind === "timeout") current.result = "timeout";
    }
  }
  return attempts;
}

/** The timeline: one entry per attempt, its start, end, worker and failure; the next retry when one is due. */
export function attemptsTimeline(attempts, job) {
  const items = attempts.map((a) => attemptItem(a, job));
  if (job.status === "scheduled" && job.nextAttemptAt && job.attempt > 0) {
    items.push(h("li", { class: "attempt", dataset: { attempt: String(job.attempt + 1), result: "scheduled" } },
      h("h3", {}, `Attempt ${job.attempt + 1} of ${job.maxAttempts}`),
      h("p", { class: "muted" }, "Scheduled: the retry starts at ", timeEl(job.nextAttemptAt), ".")));
  }
  if (!items.length) return h("p", { class: "muted" }, "Not started yet: no worker has acked this job.");
  return h("ol", { class: "attempts", "aria-label": "Attempts" }, items);
}

function attemptItem(attempt, job) {
  const kind = RESULT_KINDS[attempt.result] || "failed";
  const fields = h("dl", { class: "fields" });
  const add = (label, key, content) => fields.append(h("dt", {}, label), h("dd", { dataset: { attemptField: key } }, content));
  add("Started", "startedAt", timeEl(attempt.startedAt));
  if (attempt.endedAt) {
    add("Ended", "endedAt", timeEl(attempt.endedAt));
    add("Duration", "duration", h("span", { class: "mono" }, deltaT(micros(attempt.endedAt) - micros(attempt.startedAt))));
  }
  if (attempt.worker) add("Worker", "worker", h("span", { class: "mono" }, attempt.worker));
  const error = attempt.error;
  return h("li", { class: "attempt", dataset: { attempt: String(attempt.number), result: attempt.result } },
    h("h3", {}, `Attempt ${attempt.number}`, job.maxAttempts ? ` of ${job.maxAttempts}` : "", " ",
      h("span", { class: ["status", `st-${kind}`] }, h("span", { class: "st-icon", "aria-hidden": "true" }),
        h("span", { class: "st-label" }, RESULT_LABELS[attempt.result] || attempt.result))),
    fields,
    error ? h("div", { class: "attempt-failure", role: "note", "aria-label": `Failure of attempt ${attempt.number}` },
      h("strong", {}, `Failure (${error.kind})`), error.retryable ? h("span", { class: "tag warn" }, " retryable") : null,
      h("p", { class: "dlg-message failure-message" }, error.message)) : null);
}
