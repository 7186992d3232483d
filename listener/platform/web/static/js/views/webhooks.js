// Webhooks (admins): each registered URL, where it stands in the event log, and its latest delivery attempts.

import { ApiError, api, get } from "../api.js";
import { append, fill, h } from "../dom.js";
import { timeEl } from "../format.js";
import { setQuery } from "../router.js";
import { showError } from "../ui.js";

function statusTag(webhook) {
  return h("span", { class: ["tag", webhook.status === "paused" && "warn"], dataset: { status: webhook.status } },
    webhook.status);
}

function resultCell(delivery) {
  if (delivery.ok) return h("span", { class: "tag" }, String(delivery.statusCode));
  return h("span", { class: "tag fail" }, delivery.error || `HTTP ${delivery.statusCode}`);
}

/** The latest attempts of one webhook, newest first. */
async function drawDeliveries(section, webhook, ctx) {
  const { items } = await get(`/webhooks/${encodeURIComponent(webhook.id)}/deliveries`, { limit: 50 });
  if (!ctx.active) return;
  const tbody = h("tbody", {}, items.map((d) => h("tr", { dataset: { deliveryId: String(d.id) } },
    h("td", { class: "nowrap" }, timeEl(d.at, { short: true })),
    h("td", { class: "mono" }, d.eventId),
    h("td", {}, d.topic),
    h("td", {}, String(d.attempt)),
    h("td", {}, resultCell(d)),
    h("td", { class: "nowrap" }, `${Math.round(d.durationMs)} ms`))));
  if (!items.length) tbody.append(h("tr", {}, h("td", { colspan: 6, class: "empty" }, "No deliveries yet.")));
  fill(section, h("h2", {}, "Deliveries to ", h("span", { class: "mono" }, webhook.url)),
    h("div", { class: "table-wrap" }, h("table", { class: "deliveries", "aria-label": `Deliveries of ${webhook.id}` },
      h("thead", {}, h("tr", {}, ["At", "Event", "Topic", "Attempt", "Result", "Took"].map((c) => h("th", { scope: "col" }, c)))),
      tbody)));
}

export async function webhooksView(main, params, query, ctx) {
  document.title = "Webhooks · Listener";
  const list = h("section", { class: "card", "aria-label": "Webhooks" });
  const deliveries = h("section", { class: "card section", "aria-label": "Deliveries" });
  append(main, h("div", { class: "page-head" }, h("div", {}, h("h1", {}, "Webhooks"),
    h("p", { class: "sub" }, "URLs that get matching events as signed POSTs, in order, retried until they answer."))),
  list, deliveries);
  let selected = query.get("id");

  const change = async (webhook, verb) => {
    try {
      if (verb === "delete") await api("DELETE", `/webhooks/${encodeURIComponent(webhook.id)}`);
      else await api("POST", `/webhooks/${encodeURIComponent(webhook.id)}/${verb}`);
      if (verb === "delete" && selected === webhook.id) selected = null;
      await load();
    } catch (error) {
      showError(error, `Could not ${verb} the webhook`);
    }
  };

  const load = async () => {
    let items;
    try {
      ({ items } = await get("/webhooks"));
    } catch (error) {
      if (!(error instanceof ApiError && error.status === 403)) throw error;
      fill(list, h("p", { class: "empty" }, "Webhooks are managed by admins."));
      deliveries.hidden = true;
      return;
    }
    if (!ctx.active) return;
    const tbody = h("tbody", {}, items.map((w) => h("tr", { dataset: { webhookId: w.id }, "aria-selected": String(w.id === selected) },
      h("td", { class: "info" }, h("div", { class: "mono" }, w.url), w.description ? h("div", { class: "muted" }, w.description) : null),
      h("td", {}, w.topics.join(", ")),
      h("td", { class: "mono" }, Object.keys(w.filter || {}).length ? JSON.stringify(w.filter) : "—"),
      h("td", {}, statusTag(w)),
      h("td", {}, w.cursor === null || w.cursor === undefined ? "—" : String(w.cursor)),
      h("td", { class: "actions" },
        h("button", { type: "button", class: "btn small", onclick: () => select(w) }, "Deliveries"),
        h("button", { type: "button", class: "btn small", onclick: () => change(w, w.status === "paused" ? "resume" : "pause") },
          w.status === "paused" ? "Resume" : "Pause"),
        h("button", { type: "button", class: "btn small danger", onclick: () => change(w, "delete") }, "Delete")))));
    if (!items.length) tbody.append(h("tr", {}, h("td", { colspan: 6, class: "empty" },
      "No webhooks yet: an admin registers one with `listener webhooks create URL --topic job:failed`.")));
    fill(list, h("div", { class: "table-wrap" }, h("table", { class: "webhooks" },
      h("thead", {}, h("tr", {}, ["URL", "Topics", "Filter", "Status", "Cursor", "Actions"].map((c) => h("th", { scope: "col" }, c)))),
      tbody)));
    const current = items.find((w) => w.id === selected) || items[0];
    deliveries.hidden = !current;
    if (current) await drawDeliveries(deliveries, current, ctx);
  };

  const select = (webhook) => {
    selected = webhook.id;
    setQuery({ id: webhook.id });
    load().catch((error) => showError(error, "Could not load the deliveries"));
  };

  const timer = setInterval(() => load().catch(() => {}), 3000);
  ctx.onLeave(() => clearInterval(timer));
  await load();
}
