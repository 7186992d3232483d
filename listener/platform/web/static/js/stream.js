// The live event stream (GET /api/v1/events/stream) as one WebSocket for the whole page.
//
// A browser's WebSocket cannot send an Authorization header, so the token goes as the second of
// two subprotocols, after "listener.bearer"; the server answers with "listener.bearer" alone.
// After a drop it reconnects with `after` = the last event seen, so nothing is missed.

import { api, session } from "./api.js";

export const BEARER_PROTOCOL = "listener.bearer";

class EventStream {
  constructor() {
    this.handlers = new Set();
    this.statusHandlers = new Set();
    this.workerHandlers = new Set();
    this.lastSeq = null;
    this.ws = null;
    this.stopped = true;
    this.failures = 0;
    this.timer = null;
    this.state = "offline";
  }

  /** Connect (once signed in). */
  start() {
    this.stopped = false;
    this.connect();
  }

  /** Disconnect for good (signing out). */
  stop() {
    this.stopped = true;
    clearTimeout(this.timer);
    if (this.ws) this.ws.close(1000, "signed out");
    this.ws = null;
    this.lastSeq = null;
    this.setState("offline");
  }

  connect() {
    const url = new URL("/api/v1/events/stream", window.location.href);
    url.protocol = url.protocol === "https:" ? "wss:" : "ws:";
    url.hash = "";
    url.search = "";
    if (this.lastSeq !== null) url.searchParams.set("after", String(this.lastSeq));
    url.searchParams.set("workers", "true"); // told when workers come and go ("No worker is listening")
    const ws = new WebSocket(url, [BEARER_PROTOCOL, session.token]);
    this.ws = ws;
    ws.addEventListener("message", (message) => this.receive(message.data));
    ws.addEventListener("close", () => {
      if (this.ws !== ws) return;
      this.ws = null;
      if (this.stopped) return;
      this.setState("offline");
      this.failures += 1;
      const delay = Math.min(10_000, 500 * 2 ** Math.min(this.failures, 5));
      this.timer = setTimeout(() => this.connect(), delay);
    });
  }

  receive(data) {
    let message;
    try {
      message = JSON.parse(data);
    } catch {
      return;
    }
    if (message.type === "ready") {
      if (this.lastSeq === null) this.lastSeq = message.position;
      this.failures = 0;
      this.setState("live");
      this.workersChanged(); // workers may have come or gone while the page was away
    } else if (message.type === "workers") {
      this.workersChanged();
    } else if (message.type === "error" && message.error && message.error.code === "unauthorized") {
      // The token was revoked or rotated while the socket was open (the server closes it next): a REST call
      // answers 401 too, and api.js's answer to that is the page's one way of ending a session.
      api("GET", "/users/me").catch(() => {});
    } else if (message.type === "event") {
      const event = message.event;
      if (this.lastSeq !== null && event.seq <= this.lastSeq) return; // seen before a reconnect
      this.lastSeq = event.seq;
      for (const handler of [...this.handlers]) {
        try {
          handler(event);
        } catch (error) {
          console.warn("An event handler failed", error);
        }
      }
    }
  }

  setState(state) {
    if (state === this.state) return;
    this.state = state;
    for (const handler of [...this.statusHandlers]) handler(state);
  }

  /** Call `handler(event)` for every event from now on; returns a function that stops it. */
  subscribe(handler) {
    this.handlers.add(handler);
    return () => this.handlers.delete(handler);
  }

  /** Resolves once the stream is live (or after `ms`, so a page never waits for it forever). */
  live(ms = 3000) {
    if (this.state === "live") return Promise.resolve(true);
    return new Promise((resolve) => {
      const timer = setTimeout(() => {
        off();
        resolve(false);
      }, ms);
      const off = this.onState((state) => {
        if (state !== "live") return;
        clearTimeout(timer);
        off();
        resolve(true);
      });
    });
  }

  workersChanged() {
    for (const handler of [...this.workerHandlers]) handler();
  }

  /** Call `handler()` whenever a worker connects to the server or leaves it; returns a function that stops it. */
  onWorkers(handler) {
    this.workerHandlers.add(handler);
    return () => this.workerHandlers.delete(handler);
  }

  /** Call `handler("live" | "offline")` when the connection changes. */
  onState(handler) {
    this.statusHandlers.add(handler);
    return () => this.statusHandlers.delete(handler);
  }
}

export const stream = new EventStream();

/** Run `fn` at most once per `ms`, the last call winning (for reloads caused by bursts of events). */
export function debounce(fn, ms = 250) {
  let timer = null;
  const wrapped = () => {
    clearTimeout(timer);
    timer = setTimeout(() => {
      timer = null;
      fn();
    }, ms);
  };
  wrapped.cancel = () => clearTimeout(timer);
  return wrapped;
}

/** Like debounce, but fires at least every `ms` during a steady burst (progress stays live). */
export function throttle(fn, ms = 300) {
  let timer = null;
  let again = false;
  const wrapped = () => {
    if (timer) {
      again = true;
      return;
    }
    fn();
    timer = setTimeout(function tick() {
      if (again) {
        again = false;
        fn();
        timer = setTimeout(tick, ms);
      } else timer = null;
    }, ms);
  };
  wrapped.cancel = () => {
    clearTimeout(timer);
    timer = null;
    again = false;
  };
  return wrapped;
}
