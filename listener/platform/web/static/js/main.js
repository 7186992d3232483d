// The page's entry point: sign-in, the frame, the routes and the live event stream.

import { ApiError, api, onUnauthorized, session } from "./api.js";
import { fill, h } from "./dom.js";
import { initJobWatch, showPendingOutcomes } from "./jobwatch.js";
import * as router from "./router.js";
import { stream } from "./stream.js";
import { documentView, documentsView } from "./views/documents.js";
import { fileView, filesView } from "./views/files.js";
import { jobView } from "./views/job.js";
import { jobsView } from "./views/jobs.js";
import { schedulesView } from "./views/schedules.js";
import { queueView, queuesView } from "./views/queues.js";
import { snapshotView } from "./views/snapshots.js";
import { spaceView } from "./views/spaces.js";
import { webhooksView } from "./views/webhooks.js";
import { sheetView, workbookView, workbooksView } from "./views/workbooks.js";

router.route("/jobs", jobsView, "jobs");
router.route("/jobs/:id", jobView, "jobs");
router.route("/queues", queuesView, "queues");
router.route("/queues/:job", queueView, "queues");
router.route("/workbooks", workbooksView, "workbooks");
router.route("/workbooks/:id", workbookView, "workbooks");
router.route("/sheets/:id", sheetView, "workbooks");
router.route("/snapshots/:id", snapshotView, "workbooks");
router.route("/files", filesView, "files");
router.route("/files/:id", fileView, "files");
router.route("/documents", documentsView, "documents");
router.route("/documents/:id", documentView, "documents");
router.route("/schedules", schedulesView, "schedules");
router.route("/webhooks", webhooksView, "webhooks");
router.route("/spaces/:id", spaceView);
router.route("/spaces/:id/:section", spaceView);

const $ = (id) => document.getElementById(id);

function showSignIn(message = "") {
  $("app").hidden = true;
  $("signin").hidden = false;
  $("signin-error").textContent = message;
  document.title = "Sign in · Listener";
  $("signin-token").focus();
}

async function signIn(token) {
  const user = await api("GET", "/users/me", undefined, token);
  session.token = token;
  session.user = user;
  $("signin").hidden = true;
  $("app").hidden = false;
  fill($("whoami"), h("span", { class: "user-name" }, user.name), h("span", { class: "role" }, user.role));
  for (const link of document.querySelectorAll("[data-operators]")) link.hidden = session.isMember; // queues: 403 to members
  stream.start();
  await stream.live();
  await router.start();
  showPendingOutcomes().catch(() => {});
}

function signOut(message = "") {
  router.stop();
  stream.stop();
  session.token = null;
  session.user = null;
  for (const dialog of document.querySelectorAll("dialog")) dialog.remove();
  $("activity").replaceChildren();
  $("main").replaceChildren();
  showSignIn(message);
}

function boot() {
  initJobWatch();
  stream.onState((state) => {
    const live = $("live");
    live.textContent = state === "live" ? "Live" : "Reconnecting…";
    live.classList.toggle("on", state === "live");
    live.classList.toggle("off", state !== "live");
  });
  onUnauthorized(() => signOut("Your session has ended: the token is no longer accepted."));
  $("signout").addEventListener("click", () => signOut());
  $("signin-form").addEventListener("submit", async (event) => {
    event.preventDefault();
    const input = $("signin-token");
    const token = input.value.trim();
    if (!token) {
      $("signin-error").textContent = "Enter your access token.";
      return;
    }
    const button = event.target.querySelector("button[type=submit]");
    button.disabled = true;
    try {
      await signIn(token);
      input.value = "";
    } catch (error) {
      const message = error instanceof ApiError && error.status === 401 ? "That token is not valid." : error.message;
      $("signin-error").textContent = message;
    } finally {
      button.disabled = false;
    }
  });
  const saved = session.token;
  if (saved) {
    signIn(saved).catch((error) => {
      session.token = null;
      showSignIn(error instanceof ApiError && error.status === 401 ? "Your session has ended; sign in again." : error.message);
    });
  } else showSignIn();
}

boot();
