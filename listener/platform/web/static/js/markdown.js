// A document's Markdown body, drawn as elements: headings, paragraphs, lists, quotes, code, emphasis
// and http(s) links. Every piece of text is a Text node, so the body can hold no markup that runs.

import { h, safeUrl } from "./dom.js";

const BLOCK = /^(```|#{1,6}\s|\s*[-*+]\s+|\s*\d+[.)]\s+|>)/;

/** The body as a <div class="markdown">. */
export function markdown(text) {
  const root = h("div", { class: "markdown" });
  const lines = String(text || "").replace(/\r\n?/g, "\n").split("\n");
  let i = 0;
  while (i < lines.length) {
    const line = lines[i];
    if (line.startsWith("```")) {
      const code = [];
      i += 1;
      while (i < lines.length && !lines[i].startsWith("```")) code.push(lines[(i += 1) - 1]);
      i += 1;
      root.append(h("pre", {}, h("code", {}, code.join("\n"))));
      continue;
    }
    const heading = /^(#{1,6})\s+(.*)$/.exec(line);
    if (heading) {
      // The page's own <h1> is the document's title, so its headings start one level down.
      root.append(h(`h${Math.min(heading[1].length + 1, 6)}`, {}, inline(heading[2])));
      i += 1;
      continue;
    }
    const list = /^\s*([-*+]|\d+[.)])\s+/.exec(line);
    if (list) {
      const ordered = /\d/.test(list[1]);
      const pattern = ordered ? /^\s*\d+[.)]\s+(.*)$/ : /^\s*[-*+]\s+(.*)$/;
      const el = h(ordered ? "ol" : "ul");
      let m;
      while (i < lines.length && (m = pattern.exec(lines[i]))) {
        el.append(h("li", {}, inline(m[1])));
        i += 1;
      }
      root.append(el);
      continue;
    }
    if (line.startsWith(">")) {
      const quote = [];
      while (i < lines.length && lines[i].startsWith(">")) quote.push(lines[(i += 1) - 1].replace(/^>\s?/, ""));
      root.append(h("blockquote", {}, h("p", {}, inline(quote.join(" ")))));
      continue;
    }
    if (!line.trim()) {
      i += 1;
      continue;
    }
    const paragraph = [];
    while (i < lines.length && lines[i].trim() && (!paragraph.length || !BLOCK.test(lines[i]))) {
      paragraph.push(lines[i].trim());
      i += 1;
    }
    root.append(h("p", {}, inline(paragraph.join(" "))));
  }
  return root;
}

const INLINE = /`([^`]+)`|\*\*([^*]+)\*\*|\*([^*\s][^*]*)\*|_([^_\s][^_]*)_|\[([^\]]+)\]\(([^)\s]+)\)/g;

/** Inline Markdown as nodes: `code`, **strong**, *em*, [links](https://…) — links only when http(s). */
export function inline(text) {
  const out = [];
  let last = 0;
  for (const m of text.matchAll(INLINE)) {
    if (m.index > last) out.push(text.slice(last, m.index));
    if (m[1] !== undefined) out.push(h("code", {}, m[1]));
    else if (m[2] !== undefined) out.push(h("strong", {}, m[2]));
    else if (m[3] !== undefined) out.push(h("em", {}, m[3]));
    else if (m[4] !== undefined) out.push(h("em", {}, m[4]));
    else {
      const url = safeUrl(m[6]);
      out.push(url ? h("a", { href: url.href, target: "_blank", rel: "noopener noreferrer" }, m[5]) : m[0]);
    }
    last = m.index + m[0].length;
  }
  if (last < text.length) out.push(text.slice(last));
  return out;
}
