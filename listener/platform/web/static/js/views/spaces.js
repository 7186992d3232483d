// A space: its workbooks, files and documents (`next: {type: "id", id: "sp_…", path: "files"}` lands here).

import { get } from "../api.js";
import { append, h } from "../dom.js";
import { documentList } from "./documents.js";
import { fileList } from "./files.js";
import { workbookList } from "./workbooks.js";

const SECTIONS = { workbooks: ["Workbooks", workbookList], files: ["Files", fileList], documents: ["Documents", documentList] };

export async function spaceView(main, { id, section = null }, query, ctx) {
  const space = await get(`/spaces/${encodeURIComponent(id)}`);
  if (!ctx.active) return;
  document.title = `${space.name} · Listener`;
  const names = section ? [section] : Object.keys(SECTIONS);
  if (section && !SECTIONS[section]) throw new Error(`A space has no section "${section}".`);
  append(main, 
    h("nav", { class: "crumbs", "aria-label": "Breadcrumb" }, "Spaces", "›", section ? h("a", { href: `#/spaces/${space.id}` }, space.name) : h("span", {}, space.name),
      section ? ["›", h("span", {}, SECTIONS[section][0])] : null),
    h("div", { class: "page-head" }, h("div", {}, h("h1", {}, section ? `${space.name}: ${SECTIONS[section][0]}` : space.name),
      h("p", { class: "sub" }, h("span", { class: "mono" }, space.id), space.namespace ? ` · namespace ${space.namespace}` : ""))));
  for (const name of names) {
    const [title, list] = SECTIONS[name];
    const card = h("section", { class: "card section", "aria-label": title }, h("h2", {}, h("a", { href: `#/spaces/${space.id}/${name}` }, title)));
    append(main, card);
    await list(card, ctx, { spaceId: space.id });
  }
}
