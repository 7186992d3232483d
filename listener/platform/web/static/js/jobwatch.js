// Following the person's jobs: the foreground overlay with live progress, the toolbar indicator for
// toolbarBlocking jobs, and, when a foreground job they started ends with `acknowledge: true`, the
// outcome dialog whose buttons do what `outcome.next` says. Closing the dialog acknowledges it.

import { ApiError, download, get, isApiPath, post, save, session } from "./api.js";
import { fill, h, safeUrl, uid } from "./dom.js";
import { TERMINAL, progressView, statusBadge, statusMeta } from "./format.js";
import { hrefFor, navigate } from "./router.js";
import { stream, throttle } from "./stream.js";
import { modal, showError, toast } from "./ui.js";

const started = new Map(); // job id → {label, sourceId}: jobs started from this page
const handled = new Set(); // "id@finishedAt": endings already shown
const blocking = new Map(); // source id → job id, while a toolbarBlocking job runs on it
const blockingListeners = new Set();
const outcomes = [];
let showingOutcome = false;

/** Start watching the stream for the person's jobs ending (once signed in). */
export function initJobWatch() {
  stream.subscribe((event) => {
    if (!event.topic.startsWith("job:") || !event.context.jobId) return;
    const status = event.payload && event.payload.status;
    if (!TERMINAL.has(status)) return;
    const mine = session.user && event.payload.createdBy === session.user.name;
    if (mine || started.has(event.context.jobId)) ended(event.context.jobId);
  });
}

/** Show outcomes the person has not acknowledged yet (their recent foreground jobs). */
export async function showPendingOutcomes() {
  const page = await get("/jobs", { status: ["complete", "failed"], createdBy: session.user.name, limit: 20 });
  for (const job of page.items.reverse()) {
    if (wantsDialog(job)) queueOutcome(job);
  }
}

/**
 * Follow one job: `onUpdate(job)` runs with the job as events change it (their payload at once,
 * the whole job fetched again at most every 300 ms). Returns a function that stops following.
 */
export function follow(initial, onUpdate) {
  let job = { ...initial };
  let stopped = false;
  const refetch = throttle(async () => {
    try {
      const fresh = await get(`/jobs/${encodeURIComponent(job.id)}`);
      if (!stopped) {
        job = fresh;
        onUpdate(job);
      }
    } catch {
      /* deleted or no longer visible: the events said what there was to say */
    }
  }, 300);
  const off = stream.subscribe((event) => {
    if (event.context.jobId !== job.id || !event.topic.startsWith("job:")) return;
    job = { ...job, ...event.payload };
    onUpdate(job);
    refetch();
  });
  refetch(); // what changed before we listened (the job runs while the page sets up)
  return () => {
    stopped = true;
    off();
    refetch.cancel();
  };
}

/** Whether an action's source is blocked by a running toolbarBlocking job. */
export function blockedBy(sourceId) {
  return blocking.get(sourceId) || null;
}

/** Call `fn()` whenever a source becomes blocked or free; returns a function that stops it. */
export function onBlockingChange(fn) {
  blockingListeners.add(fn);
  return () => blockingListeners.delete(fn);
}

function setBlocking(sourceId, jobId) {
  if (!sourceId) return;
  if (jobId) blocking.set(sourceId, jobId);
  else blocking.delete(sourceId);
  for (const fn of [...blockingListeners]) fn();
}

/**
 * A job the person just started (an action's button, a retry): show it as its mode says.
 * foreground: the overlay with live progress; toolbarBlocking: an indicator in the toolbar, its
 * source's buttons disabled; background: a note, nothing blocking.
 */
export async function track(job, { label, sourceId = job.source } = {}) {
  started.set(job.id, { label, sourceId });
  if (job.mode === "background") {
    toast(`${label} started in the background.`, { link: h("a", { href: `#/jobs/${job.id}` }, "View job") });
  }
  let fresh = job;
  try {
    fresh = await get(`/jobs/${encodeURIComponent(job.id)}`);
  } catch {
    /* keep what the trigger answered */
  }
  if (TERMINAL.has(fresh.status)) {
    ended(job.id, fresh);
    return;
  }
  if (job.mode === "foreground") showOverlay(fresh, label);
  else if (job.mode === "toolbarBlocking") showChip(fresh, label, sourceId);
}

function showOverlay(job, label) {
  const titleId = uid("ov");
  const infoId = uid("ov-info");
  const body = h("div", { class: "overlay-progress" });
  const info = h("p", { class: "overlay-info", id: infoId, "aria-live": "polite" });
  const dialog = h("dialog", { class: "job-overlay", "aria-labelledby": titleId, "aria-describedby": infoId,
    dataset: { jobId: job.id } });
  let stop = () => {};
  const close = () => {
    stop();
    if (dialog.open) dialog.close();
    dialog.remove();
  };
  const hide = () => {
    close();
    showChip(job, label, null);
  };
  const cancel = async () => {
    try {
      await post(`/jobs/${encodeURIComponent(job.id)}/cancel`, {});
    } catch (error) {
      showError(error, "Cancel");
    }
  };
  dialog.append(h("div", { class: "dlg" },
    h("div", { class: "dlg-head" }, h("h2", { id: titleId }, label)),
    h("p", { class: "muted" }, h("span", { class: "mono" }, job.job), " · ", h("a", { href: `#/jobs/${job.id}`, onclick: hide }, job.id)),
    body, info,
    h("div", { class: "dlg-buttons" },
      h("button", { type: "button", class: "btn danger", onclick: cancel }, "Cancel job"),
      h("button", { type: "button", class: "btn", onclick: hide }, "Run in background"))));
  dialog.addEventListener("cancel", (event) => {
    event.preventDefault(); // Escape sends the job to the toolbar rather than hiding it
    hide();
  });
  const update = (current) => {
    job = current;
    fill(body, statusBadge(current), progressView(current));
    info.textContent = current.info || "";
    if (TERMINAL.has(current.status)) close();
  };
  update(job);
  document.body.append(dialog);
  dialog.showModal();
  stop = follow(job, update);
}

function showChip(job, label, sourceId) {
  const bar = document.getElementById("activity");
  const text = h("span", { class: "label" });
  const chip = h("a", { class: "chip", href: `#/jobs/${job.id}`, dataset: { jobId: job.id } });
  if (sourceId) setBlocking(sourceId, job.id);
  let stop = () => {};
  const update = (current) => {
    const pct = Math.round(current.progress || 0);
    chip.className = `chip st-${statusMeta(current).kind}`;
    fill(chip, h("span", { class: "st-icon", "aria-hidden": "true" }), text);
    text.textContent = `${label} · ${pct}%${current.info ? ` · ${current.info}` : ""}`;
    chip.setAttribute("aria-label", `${label}: ${pct}% ${current.info || ""}`.trim());
    if (TERMINAL.has(current.status)) {
      stop();
      chip.remove();
      if (sourceId && blocking.get(sourceId) === job.id) setBlocking(sourceId, null);
    }
  };
  update(job);
  bar.append(chip);
  stop = follow(job, update);
}

function wantsDialog(job) {
  return Boolean(job.outcome && job.outcome.acknowledge && !job.outcomeAcknowledgedAt && job.mode === "foreground"
    && !job.isPart && session.user && job.createdBy === session.user.name && TERMINAL.has(job.status));
}

async function ended(jobId, known = null) {
  let job = known;
  if (!job) {
    try {
      job = await get(`/jobs/${encodeURIComponent(jobId)}`);
    } catch {
      return;
    }
  }
  if (!TERMINAL.has(job.status)) return; // already running again (retried)
  const key = `${job.id}@${job.attempt}@${job.status}@${job.finishedAt}`; // a retried job ends again
  if (handled.has(key)) return;
  handled.add(key);
  const origin = started.get(job.id);
  started.delete(job.id);
  const outcome = job.outcome || {};
  const trigger = (outcome.trigger && outcome.trigger.type) || "manual";
  if (wantsDialog(job)) {
    if (trigger === "automatic_silent" && outcome.next) {
      await performNext(job, outcome.next);
      await acknowledge(job);
    } else queueOutcome(job);
    return;
  }
  if (!origin) return;
  const label = origin.label || job.job;
  const link = h("a", { href: `#/jobs/${job.id}` }, "View job");
  if (job.status === "complete") toast(`${label}: ${outcome.message || "done."}`, { kind: "ok", link });
  else if (job.status === "failed") {
    toast(`${label} failed: ${outcome.message || (job.error && job.error.message) || "no reason given."}`, { kind: "error", link });
  } else toast(`${label} was cancelled.`, { link });
  if (outcome.next && trigger !== "manual") await performNext(job, outcome.next);
}

function queueOutcome(job) {
  if (outcomes.some((j) => j.id === job.id) || document.querySelector(`dialog[data-outcome="${CSS.escape(job.id)}"]`)) return;
  outcomes.push(job);
  if (!showingOutcome) nextOutcome();
}

async function nextOutcome() {
  const job = outcomes.shift();
  if (!job) {
    showingOutcome = false;
    return;
  }
  showingOutcome = true;
  try {
    await showOutcome(job);
  } finally {
    nextOutcome();
  }
}

const NEXT_LABELS = {
  id: "Open", url: "Open link", download: "Download", files: "Download files", snapshot: "Go to snapshot",
  view: "Go to sheet", retry: "Try again", clear_filters: "Clear filters",
};

/** The outcome dialog: heading, message and the `next` button; closing it acknowledges the outcome. */
async function showOutcome(job) {
  const outcome = job.outcome;
  const next = outcome.next || null;
  const failed = job.status === "failed";
  const heading = outcome.heading || (failed ? "Job failed" : "Job complete");
  const message = outcome.message || (failed && job.error ? job.error.message : "") || "";
  const buttons = [];
  if (!outcome.hideDefaultButton) buttons.push({ label: outcome.buttonText || "Close", value: "close", data: { role: "close" } });
  if (next && next.type !== "wait") {
    buttons.push({ label: next.label || NEXT_LABELS[next.type] || "Continue", value: "next", primary: true, data: { next: next.type } });
  }
  const trigger = (outcome.trigger && outcome.trigger.type) || "manual";
  const choice = await modal({
    title: heading,
    cls: next && next.type === "wait" && next.fade ? "outcome fade" : "outcome",
    contentClass: failed ? "outcome-failed" : "outcome-complete",
    body: [
      h("p", { class: "muted" }, h("span", { class: "mono" }, job.job), " · ", h("span", { class: "mono" }, job.id)),
      message ? h("p", { class: "dlg-message" }, message) : null,
    ],
    buttons,
    cancelValue: "close",
    onOpen: (dialog, finish) => {
      dialog.dataset.outcome = job.id;
      if (next && next.type === "wait" && next.fade) setTimeout(() => finish("close"), 4000);
      if (next && next.type !== "wait" && trigger === "automatic") performNext(job, next);
    },
  });
  if (choice === "next" && next) {
    const retried = await performNext(job, next);
    if (retried) return; // a retry starts a new attempt; its own outcome will come
  }
  await acknowledge(job);
}

async function acknowledge(job) {
  try {
    await post(`/jobs/${encodeURIComponent(job.id)}/outcome/acknowledge`);
  } catch (error) {
    if (!(error instanceof ApiError && error.status === 409)) showError(error, "Acknowledge");
  }
}

function refused(raw) {
  toast(`This link was not opened: only web (http or https) links and links inside the app are. (${raw})`, { kind: "error" });
}

/** Do what an outcome's `next` says; resolves true when it retried the job. */
export async function performNext(job, next) {
  try {
    switch (next.type) {
      case "id": {
        const href = hrefFor(next.id, next.path, next.query);
        if (href) window.location.hash = href;
        else toast(`There is no page here for ${next.id}.`, { kind: "error" });
        break;
      }
      case "url": {
        const url = safeUrl(next.url);
        if (!url) refused(next.url);
        else window.open(url.href, "_blank", "noopener,noreferrer");
        break;
      }
      case "download": {
        const url = safeUrl(next.url);
        if (!url) refused(next.url);
        else if (url.origin === window.location.origin && isApiPath(url.pathname)) await download(url.pathname, next.fileName || "");
        else if (url.origin === window.location.origin) save(url.href, next.fileName || "");
        else window.open(url.href, "_blank", "noopener,noreferrer");
        break;
      }
      case "files":
        for (const file of next.files) await download(`/api/v1/files/${encodeURIComponent(file.fileId)}/content`);
        break;
      case "snapshot":
        navigate(`/snapshots/${encodeURIComponent(next.snapshotId)}`);
        break;
      case "view": {
        const hidden = (next.hiddenColumns || []).map(encodeURIComponent).join(",");
        navigate(`/sheets/${encodeURIComponent(next.sheetId)}${hidden ? `?hidden=${hidden}` : ""}`);
        break;
      }
      case "clear_filters": {
        const sheetId = next.sheetId || (job.type === "sheet" ? job.source : null);
        if (sheetId) navigate(`/sheets/${encodeURIComponent(sheetId)}`);
        break;
      }
      case "retry": {
        const again = await post(`/jobs/${encodeURIComponent(job.id)}/${next.failedItems ? "retry-failed-items" : "retry"}`);
        await track(again, { label: `${job.job} (again)` });
        return true;
      }
      default:
        break;
    }
  } catch (error) {
    showError(error, next.label || NEXT_LABELS[next.type] || "Next");
  }
  return false;
}
