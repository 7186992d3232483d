// Schedules: the cron schedules that create jobs, their next run times on their own wall clock, kept live.
// Everyone signed in sees them; admins also pause, resume and delete them.

import { api, get, post, session } from "../api.js";
import { append, fill, h } from "../dom.js";
import { timeEl } from "../format.js";
import { idLink } from "../router.js";
import { stream, throttle } from "../stream.js";
import { confirmDialog, showError, toast } from "../ui.js";

/** An instant as the schedule's zone reads it ("Jan 2, 03:00 CET"), the exact instant in its title. */
function wallClock(iso, timeZone) {
  if (!iso) return h("span", { class: "muted", "aria-label": "none" }, "—");
  const date = new Date(iso);
  let text;
  try {
    text = new Intl.DateTimeFormat(undefined, { timeZone, month: "short", day: "numeric", hour: "2-digit",
      minute: "2-digit", hourCycle: "h23", timeZoneName: "short" }).format(date);
  } catch {
    text = iso; // a zone this browser does not know: the instant as the API gave it
  }
  return h("time", { datetime: iso, title: date.toISOString() }, text);
}

function statusBadge(schedule) {
  const [kind, label] = schedule.paused ? ["cancelled", "Paused"] : ["complete", "Active"];
  return h("span", { class: ["status", `st-${kind}`], dataset: { paused: String(schedule.paused) } },
    h("span", { class: "st-icon", "aria-hidden": "true" }), h("span", { class: "st-label" }, label));
}

function controls(schedule, reload) {
  if (!session.user || session.user.role !== "admin") return h("span", { class: "muted" }, "—");
  const act = async (button, move, done) => {
    button.disabled = true;
    try {
      await post(`/schedules/${encodeURIComponent(schedule.id)}/${move}`);
      toast(done, { kind: "ok" });
      reload();
    } catch (error) {
      showError(error, `${move[0].toUpperCase()}${move.slice(1)}`);
    } finally {
      button.disabled = false;
    }
  };
  const toggle = h("button", { type: "button", class: "btn small", "aria-label": `${schedule.paused ? "Resume" : "Pause"} ${schedule.job} (${schedule.id})` },
    schedule.paused ? "Resume" : "Pause");
  toggle.addEventListener("click", () => (schedule.paused
    ? act(toggle, "resume", `Resumed ${schedule.job}.`) : act(toggle, "pause", `Paused ${schedule.job}.`)));
  const remove = h("button", { type: "button", class: "btn small danger", "aria-label": `Delete ${schedule.job} (${schedule.id})` }, "Delete");
  remove.addEventListener("click", async () => {
    const sure = await confirmDialog("Delete this schedule?", `${schedule.job}, ${schedule.description} (${schedule.timezone}), will make no more jobs. The jobs it made are kept.`,
      { confirmLabel: "Delete" });
    if (!sure) return;
    remove.disabled = true;
    try {
      await api("DELETE", `/schedules/${encodeURIComponent(schedule.id)}`);
      toast(`Deleted the schedule of ${schedule.job}.`, { kind: "ok" });
      reload();
    } catch (error) {
      showError(error, "Delete");
      remove.disabled = false;
    }
  });
  return h("div", { class: "actions-row" }, toggle, remove);
}

function row(schedule, reload) {
  const later = schedule.upcoming.slice(1).map((iso) => h("li", {}, wallClock(iso, schedule.timezone)));
  const last = schedule.lastRunAt
    ? [wallClock(schedule.lastRunAt, schedule.timezone), " ", schedule.lastJobId ? idLink(schedule.lastJobId) : null,
      schedule.lastError ? h("div", { class: "st-failed" }, schedule.lastError) : null]
    : h("span", { class: "muted" }, "never");
  return h("tr", { dataset: { scheduleId: schedule.id } },
    h("td", { class: "mono" }, schedule.job),
    h("td", { class: "info" }, h("div", {}, schedule.description), h("div", { class: "muted" },
      h("code", {}, schedule.cron), ` · ${schedule.timezone}`)),
    h("td", { class: "nowrap next-run" }, wallClock(schedule.nextRunAt, schedule.timezone),
      later.length ? h("details", {}, h("summary", {}, "Later"), h("ul", { class: "upcoming" }, later)) : null),
    h("td", {}, statusBadge(schedule)),
    h("td", { class: "nowrap" }, last),
    h("td", {}, schedule.createdBy || "—", h("div", { class: "muted" }, timeEl(schedule.createdAt, { short: true }))),
    h("td", {}, controls(schedule, reload)));
}

export async function schedulesView(main, params, query, ctx) {
  document.title = "Schedules · Listener";
  const tbody = h("tbody");
  append(main, h("div", { class: "page-head" }, h("div", {}, h("h1", {}, "Schedules"),
    h("p", { class: "sub" }, "Jobs made at each tick of a cron expression, in its time zone."))),
  h("section", { class: "card", "aria-label": "Schedules" }, h("div", { class: "table-wrap" }, h("table", { class: "schedules" },
    h("thead", {}, h("tr", {}, ["Job", "When", "Next run", "Status", "Last run", "Created by", "Manage"].map((c) =>
      h("th", { scope: "col" }, c)))), tbody))));
  const load = async () => {
    const { items } = await get("/schedules");
    if (!ctx.active) return;
    fill(tbody, ...items.map((s) => row(s, reload)));
    if (!items.length) {
      tbody.append(h("tr", {}, h("td", { colspan: 7, class: "empty" }, "No schedules yet. An admin makes one with ",
        h("code", {}, "listener schedules create"), " or POST /api/v1/schedules.")));
    }
  };
  const reload = throttle(() => load().catch(() => {}), 300);
  ctx.onLeave(stream.subscribe((e) => e.topic.startsWith("schedule:") && reload()));
  ctx.onLeave(reload.cancel);
  await load();
}
