// Files: upload, list, download (through signed links) and the actions mounted on each.

import { actionBar } from "../actions.js";
import { api, download, get } from "../api.js";
import { append, fill, h, uid } from "../dom.js";
import { bytes, timeEl } from "../format.js";
import { stream, throttle } from "../stream.js";
import { showError, toast } from "../ui.js";

const fetchFile = (id) => download(`/api/v1/files/${encodeURIComponent(id)}/content`).catch((e) => showError(e, "Download"));

/** The files (of one space, when given) as a table with an upload form, kept live. */
export async function fileList(container, ctx, { spaceId = null } = {}) {
  const input = h("input", { type: "file", id: uid("upload"), required: true });
  const uploadButton = h("button", { type: "submit", class: "btn primary" }, "Upload");
  const form = h("form", { class: "toolbar upload-form", "aria-label": "Upload" },
    h("div", { class: "upload" }, h("label", { for: input.id }, "Upload a file"), input, uploadButton));
  const tbody = h("tbody");
  append(container, form, h("div", { class: "table-wrap" }, h("table", { class: "files" },
    h("thead", {}, h("tr", {}, ["Name", "Size", "Type", "Uploaded by", "Uploaded", "", "Actions"].map((c) =>
      h("th", { scope: "col" }, c || h("span", { class: "sr-only" }, "Download"))))), tbody)));
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const file = input.files[0];
    if (!file) return;
    const body = new FormData();
    if (spaceId) body.append("spaceId", spaceId);
    body.append("file", file, file.name);
    uploadButton.disabled = true;
    try {
      const uploaded = await api("POST", "/files", body);
      toast(`Uploaded ${uploaded.name}.`, { kind: "ok" });
      form.reset();
      reload();
    } catch (error) {
      showError(error, "Upload");
    } finally {
      uploadButton.disabled = false;
    }
  });
  const load = async () => {
    const { items } = await get("/files", { spaceId });
    if (!ctx.active) return;
    fill(tbody, ...items.slice().reverse().map((f) => h("tr", { dataset: { fileId: f.id } },
      h("td", { class: "info" }, h("a", { href: `#/files/${f.id}` }, f.name)),
      h("td", { class: "num nowrap" }, bytes(f.size)),
      h("td", { class: "mono" }, f.mimeType),
      h("td", {}, f.createdBy || "—"),
      h("td", { class: "nowrap" }, timeEl(f.createdAt, { short: true })),
      h("td", {}, h("button", { type: "button", class: "btn small", "aria-label": `Download ${f.name}`, onclick: () => fetchFile(f.id) }, "Download")),
      h("td", {}, actionBar(f.id, f.actions, ctx, { label: `Actions of ${f.name}` })))));
    if (!items.length) tbody.append(h("tr", {}, h("td", { colspan: 7, class: "empty" }, "No files yet.")));
  };
  const reload = throttle(() => load().catch(() => {}), 500);
  ctx.onLeave(stream.subscribe((e) => e.topic.startsWith("file:") && reload()));
  ctx.onLeave(reload.cancel);
  await load();
}

export async function filesView(main, params, query, ctx) {
  document.title = "Files · Listener";
  const card = h("section", { class: "card", "aria-label": "Files" });
  append(main, h("div", { class: "page-head" }, h("div", {}, h("h1", {}, "Files"),
    h("p", { class: "sub" }, "Uploaded files, newest first."))), card);
  await fileList(card, ctx);
}

export async function fileView(main, { id }, query, ctx) {
  const file = await get(`/files/${encodeURIComponent(id)}`);
  if (!ctx.active) return;
  document.title = `${file.name} · Listener`;
  const fields = [["Name", file.name], ["File ID", h("span", { class: "mono" }, file.id)], ["Size", bytes(file.size)],
    ["Type", file.mimeType], ["SHA-256", h("span", { class: "mono" }, file.sha256)], ["Space", file.spaceId || "—"],
    ["Uploaded by", file.createdBy || "—"], ["Uploaded", timeEl(file.createdAt)]];
  append(main, 
    h("nav", { class: "crumbs", "aria-label": "Breadcrumb" }, h("a", { href: "#/files" }, "Files"), "›", h("span", {}, file.name)),
    h("div", { class: "page-head" }, h("div", {}, h("h1", {}, file.name)),
      h("div", { class: "actions-row" },
        h("button", { type: "button", class: "btn", onclick: () => fetchFile(file.id) }, "Download"),
        actionBar(file.id, file.actions, ctx, { label: "File actions" }))),
    h("section", { class: "card section", "aria-label": "Details" },
      h("dl", { class: "fields" }, fields.map(([label, value]) => [h("dt", {}, label), h("dd", {}, value)]))));
}
