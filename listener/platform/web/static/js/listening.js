// "No worker is listening for workbook:export": which ready jobs no worker on the server would be sent
// (GET /queues/unheard, asked for the jobs on screen only), and the note that says so on a row or a page.
// The page asks again when the jobs move and when the stream says workers came or went.

import { get, session } from "./api.js";
import { h } from "./dom.js";

const MAX_IDS = 100;
const unheard = new Map(); // job id → the note, as the server last said

/** Ask about the ready ones of `jobs`; resolves to whether any note changed. */
export async function askUnheard(jobs) {
  const ready = jobs.filter((job) => job && job.status === "ready").map((job) => job.id).slice(0, MAX_IDS);
  const asked = new Set(jobs.filter(Boolean).map((job) => job.id));
  const answer = ready.length ? await get("/queues/unheard", { jobId: ready }) : { items: [] };
  const now = new Map(answer.items.map((item) => [item.jobId, item.message]));
  let changed = false;
  for (const id of asked) {
    const message = now.get(id);
    if (unheard.get(id) === message) continue;
    changed = true;
    if (message) unheard.set(id, message);
    else unheard.delete(id);
  }
  return changed;
}

/** The note for `job` if it is ready and no worker listens for it, else null. */
export function unheardNote(job, { link = false } = {}) {
  const message = job.status === "ready" ? unheard.get(job.id) : null;
  if (!message) return null;
  const text = h("span", {}, message);
  const href = `#/queues/${encodeURIComponent(job.job || `${job.type}:${job.operation}`)}`;
  return h("span", { class: "unheard", role: "note", dataset: { unheard: job.id } },
    text, link && !session.isMember ? [" ", h("a", { href }, "See the queue")] : null);
}
