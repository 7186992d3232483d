// Toasts and dialogs: the page's own, never window.alert / confirm (which block and cannot be styled).

import { field, h, select, uid } from "./dom.js";

/** A short message in the corner; `kind` "error" is announced at once (role=alert). */
export function toast(message, { kind = "info", link = null, timeout = 7000 } = {}) {
  const box = document.getElementById("toasts");
  const close = h("button", { type: "button", class: "btn ghost icon", "aria-label": "Dismiss" }, "×");
  const item = h("div", { class: ["toast", kind], role: kind === "error" ? "alert" : "status" },
    h("div", { class: "body" }, message, link ? [" ", link] : null), close);
  const remove = () => item.remove();
  close.addEventListener("click", remove);
  box.append(item);
  if (timeout) setTimeout(remove, timeout);
  return item;
}

/** Show an API error as a toast. */
export function showError(error, what = "") {
  const text = error && error.message ? error.message : String(error);
  toast(what ? `${what}: ${text}` : text, { kind: "error" });
}

/**
 * A modal <dialog> with a heading, `body` nodes and buttons; resolves to the value of the button
 * pressed (or `cancelValue` on Escape / ×). Focus moves into it and returns where it was.
 */
export function modal({ title, body = [], buttons = [], cls = "", cancelValue = null, labelId = uid("dlg"), onOpen = null,
  contentClass = "" }) {
  return new Promise((resolve) => {
    const opener = document.activeElement;
    const dialog = h("dialog", { "aria-labelledby": labelId, class: cls });
    const finish = (value) => {
      dialog.close();
      dialog.remove();
      if (opener && opener.isConnected) opener.focus();
      resolve(value);
    };
    const close = h("button", { type: "button", class: "btn ghost icon", "aria-label": "Dismiss", onclick: () => finish(cancelValue) }, "×");
    const row = h("div", { class: "dlg-buttons" },
      buttons.map((b) => h("button", { type: b.submit ? "submit" : "button", class: ["btn", b.primary && "primary", b.danger && "danger"],
        onclick: b.submit ? null : () => finish(b.value), dataset: b.data || {} }, b.label)));
    const content = h("form", { class: ["dlg", contentClass], method: "dialog" },
      h("div", { class: "dlg-head" }, h("h2", { id: labelId }, title), close), body, row);
    content.addEventListener("submit", (event) => {
      event.preventDefault();
      const submit = buttons.find((b) => b.submit);
      finish(submit && submit.collect ? submit.collect() : submit && submit.value);
    });
    dialog.addEventListener("cancel", (event) => {
      event.preventDefault();
      finish(cancelValue);
    });
    dialog.append(content);
    document.body.append(dialog);
    dialog.showModal();
    const first = dialog.querySelector("input, select, textarea") || row.querySelector(".primary") || close;
    first.focus();
    if (onOpen) onOpen(dialog, finish);
  });
}

/** Ask before doing something; resolves true to go ahead. */
export function confirmDialog(title, message, { confirmLabel = "Continue", details = [] } = {}) {
  return modal({
    title,
    body: [message ? h("p", { class: "dlg-message" }, message) : null, details],
    buttons: [{ label: "Cancel", value: false }, { label: confirmLabel, value: true, primary: true, submit: true }],
    cancelValue: false,
  });
}

/** An action's input form; resolves to the values, or null when cancelled. */
export function formDialog(title, form, { submitLabel = "Run", intro = null } = {}) {
  const controls = [];
  const fields = form.fields.map((f) => {
    let control;
    const required = (f.constraints || []).some((c) => c.type === "required");
    const options = (f.config && f.config.options) || [];
    if (f.type === "boolean") {
      control = h("input", { type: "checkbox", checked: Boolean(f.defaultValue) });
    } else if (f.type === "enum") {
      control = select(options.map((o) => [String(o.value), o.label || String(o.value)]),
        f.defaultValue === null || f.defaultValue === undefined ? "" : String(f.defaultValue), { required });
    } else if (f.type === "textarea") {
      control = h("textarea", { required }, f.defaultValue === null || f.defaultValue === undefined ? "" : String(f.defaultValue));
    } else {
      control = h("input", { type: f.type === "number" ? "number" : "text", required, step: f.type === "number" ? "any" : null,
        value: f.defaultValue === null || f.defaultValue === undefined ? "" : String(f.defaultValue) });
    }
    if (f.description) {
      const hint = h("span", { class: "muted", id: uid("hint") }, f.description);
      control.setAttribute("aria-describedby", hint.id);
      controls.push([f, control, options]);
      return h("div", { class: "field" }, field(f.label, control, "field"), hint);
    }
    controls.push([f, control, options]);
    return field(f.label, control);
  });
  const collect = () => {
    const values = {};
    for (const [f, control, options] of controls) {
      if (f.type === "boolean") values[f.key] = control.checked;
      else if (f.type === "number") {
        if (control.value !== "") values[f.key] = Number(control.value);
      } else if (f.type === "enum") {
        const option = options.find((o) => String(o.value) === control.value);
        if (option) values[f.key] = option.value;
      } else if (control.value !== "") values[f.key] = control.value;
    }
    return values;
  };
  return modal({
    title,
    body: [intro, h("div", { class: "dlg-form" }, fields)],
    buttons: [{ label: "Cancel", value: null }, { label: submitLabel, primary: true, submit: true, collect }],
    cancelValue: null,
  });
}
