// Action buttons mounted on workbooks, sheets, files and documents. Pressing one asks first when the
// action says `confirm` (or shows its input form), calls POST /actions/trigger and follows the job
// as its mode says (see jobwatch.js).

import { post } from "./api.js";
import { h, uid } from "./dom.js";
import { blockedBy, onBlockingChange, track } from "./jobwatch.js";
import { confirmDialog, formDialog, showError } from "./ui.js";

/** The buttons of `actions` mounted on `sourceId`; `ctx` (the view's) stops listening when the view ends. */
export function actionBar(sourceId, actions, ctx, { label = "Actions" } = {}) {
  const bar = h("div", { class: "actions", role: "group", "aria-label": label });
  if (!actions || !actions.length) return bar;
  const buttons = [];
  const refresh = () => {
    const blocker = blockedBy(sourceId);
    for (const button of buttons) {
      button.disabled = Boolean(blocker) || button.dataset.busy === "1";
      if (blocker) button.setAttribute("aria-busy", "true");
      else button.removeAttribute("aria-busy");
    }
  };
  for (const action of actions) {
    const hints = [action.tooltip, ...(action.messages || []).map((m) => m.content)].filter(Boolean);
    const tipId = hints.length ? uid("tip") : null;
    const button = h("button", {
      type: "button", class: ["btn", action.primary && "primary"], "aria-describedby": tipId,
      dataset: { operation: action.operation, mode: action.mode },
    }, action.label);
    button.addEventListener("click", () => press(sourceId, action, button, refresh));
    buttons.push(button);
    bar.append(h("span", { class: "action" }, button,
      hints.length ? h("span", { class: "tooltip", role: "tooltip", id: tipId }, hints.join(" · ")) : null));
  }
  refresh();
  const off = onBlockingChange(refresh);
  if (ctx) ctx.onLeave(off);
  return bar;
}

async function press(sourceId, action, button, refresh) {
  let input = {};
  const details = (action.messages || []).map((m) => h("p", { class: m.type === "error" ? "form-error" : "muted" }, m.content));
  if (action.inputForm) {
    const intro = action.description ? h("p", { class: "dlg-message" }, action.description) : null;
    const values = await formDialog(action.label, action.inputForm, { submitLabel: action.label, intro });
    if (values === null) return;
    input = values;
  } else if (action.confirm) {
    const ok = await confirmDialog(`${action.label}?`, action.description || "This starts a job.",
      { confirmLabel: action.label, details });
    if (!ok) return;
  }
  button.dataset.busy = "1";
  refresh();
  try {
    const job = await post("/actions/trigger", { sourceId, operation: action.operation, input });
    await track(job, { label: action.label, sourceId });
  } catch (error) {
    showError(error, action.label);
  } finally {
    delete button.dataset.busy;
    refresh();
  }
}
