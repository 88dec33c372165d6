// The chat socket (protocol v1 at /socket): requests with their replies, pushes, and a
// connection that comes back by itself.
//
// States: "connecting" (opening and authenticating), "online", "waiting" (dropped: the
// next try is at retryAt), "offline" (the browser says there is no network: tried again as
// soon as it says there is), "stopped". Tries back off: about 0.25 s, then 0.5, 1, 2, 4, 8
// and at most 10 s apart, each with some randomness so that a restarted server is not met by
// every client at once. A server going down for a restart (close code 1012) is tried again
// at once. A ping every 25 s keeps the connection (the server closes idle ones after 90 s)
// and finds one that died without a close: no pong within 10 s closes it.

const PING_INTERVAL_MS = 25_000;
const PONG_TIMEOUT_MS = 10_000;
const OPEN_TIMEOUT_MS = 10_000;
const REQUEST_TIMEOUT_MS = 15_000;
const MAX_DELAY_MS = 10_000;

/** A request that failed: the server's error (code, retry) or "disconnected"/"timeout". */
export class SocketError extends Error {
  constructor(code, message, retry = false) {
    super(message);
    this.code = code;
    this.retry = retry;
  }
}

export class ChatSocket {
  /**
   * handlers: onReady({reconnected}) once authenticated, onPush(frame),
   * onState({state, retryAt, attempt}), onUnauthenticated(error).
   */
  constructor(url, token, handlers) {
    this.url = url;
    this.token = token;
    this.handlers = handlers;
    this.state = "stopped";
    this.ws = null;
    this.nextId = 1;
    this.pending = new Map();
    this.attempt = 0;
    this.retryAt = null;
    this.timers = { retry: null, ping: null, pong: null, open: null };
    this.everOnline = false;
    this.onOnline = () => this.reconnectNow();
    this.onOffline = () => {
      if (this.state === "stopped") return;
      this.setState("offline");
      if (this.ws) this.ws.close(4000, "offline");
    };
  }

  start() {
    if (this.state !== "stopped") return;
    window.addEventListener("online", this.onOnline);
    window.addEventListener("offline", this.onOffline);
    this.connect();
  }

  stop() {
    this.setState("stopped");
    window.removeEventListener("online", this.onOnline);
    window.removeEventListener("offline", this.onOffline);
    this.clearTimers();
    if (this.ws) {
      const ws = this.ws;
      this.ws = null;
      ws.close(1000, "bye");
    }
    this.failPending("stopped");
  }

  /** Try now rather than at the next scheduled try. */
  reconnectNow() {
    if (this.state === "waiting" || this.state === "offline") {
      clearTimeout(this.timers.retry);
      this.attempt = 0;
      this.connect();
    }
  }

  get online() {
    return this.state === "online";
  }

  /** Send a request; its reply (ok) or a SocketError. Not connected: fails at once. */
  request(op, fields = {}, timeoutMs = REQUEST_TIMEOUT_MS) {
    if (this.state !== "online" && op !== "auth") {
      return Promise.reject(new SocketError("disconnected", "not connected", true));
    }
    return this.send(op, fields, timeoutMs);
  }

  send(op, fields, timeoutMs) {
    const ws = this.ws;
    if (!ws || ws.readyState !== WebSocket.OPEN) {
      return Promise.reject(new SocketError("disconnected", "not connected", true));
    }
    const id = this.nextId++;
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.pending.delete(id);
        reject(new SocketError("timeout", "the server did not answer", true));
        // A connection that answers nothing is as good as gone.
        if (this.ws === ws) ws.close(4001, "request timed out");
      }, timeoutMs);
      this.pending.set(id, { resolve, reject, timer });
      ws.send(JSON.stringify({ id, op, ...fields }));
    });
  }

  // -- the connection ------------------------------------------------------------------------

  connect() {
    this.clearTimers();
    this.setState("connecting");
    let ws;
    try {
      ws = new WebSocket(this.url);
    } catch {
      this.scheduleRetry();
      return;
    }
    this.ws = ws;
    this.timers.open = setTimeout(() => ws.close(4002, "open timed out"), OPEN_TIMEOUT_MS);
    ws.addEventListener("open", () => this.authenticate(ws));
    ws.addEventListener("message", (event) => this.receive(ws, event.data));
    ws.addEventListener("close", (event) => this.closed(ws, event));
  }

  async authenticate(ws) {
    clearTimeout(this.timers.open);
    try {
      await this.send("auth", { token: this.token }, REQUEST_TIMEOUT_MS);
    } catch (error) {
      if (this.ws !== ws) return;
      if (error.code === "unauthenticated") {
        this.stop();
        this.handlers.onUnauthenticated(error);
      } else ws.close(4003, "auth failed");
      return;
    }
    if (this.ws !== ws) return;
    const reconnected = this.everOnline;
    this.everOnline = true;
    this.attempt = 0;
    this.setState("online");
    this.schedulePing(ws);
    this.handlers.onReady({ reconnected });
  }

  receive(ws, data) {
    if (this.ws !== ws) return;
    let frame;
    try {
      frame = JSON.parse(data);
    } catch {
      return;
    }
    if (frame && frame.id !== undefined && frame.id !== null && this.pending.has(frame.id)) {
      const waiting = this.pending.get(frame.id);
      this.pending.delete(frame.id);
      clearTimeout(waiting.timer);
      if (frame.error) {
        waiting.reject(new SocketError(frame.error.code, frame.error.message, frame.error.retry));
      } else waiting.resolve(frame);
      return;
    }
    if (frame && typeof frame.type === "string") this.handlers.onPush(frame);
  }

  closed(ws, event) {
    if (this.ws !== ws) return;
    this.ws = null;
    this.clearTimers();
    this.failPending("disconnected");
    if (this.state === "stopped") return;
    if (event.code === 4401) {
      // The server closed it because this device was logged out or revoked.
      this.stop();
      this.handlers.onUnauthenticated(new SocketError("unauthenticated", "this device was logged out", false));
      return;
    }
    if (navigator.onLine === false) {
      this.setState("offline");
      // The browser may be wrong about being offline: try now and then all the same.
      this.timers.retry = setTimeout(() => this.connect(), MAX_DELAY_MS);
      return;
    }
    // 1012: the server restarts; try at once, it may already be back on its feet.
    this.scheduleRetry(event.code === 1012);
  }

  scheduleRetry(soon = false) {
    const base = soon || this.attempt === 0 ? 250 : Math.min(MAX_DELAY_MS, 500 * 2 ** (this.attempt - 1));
    const delay = Math.round(base * (0.75 + Math.random() * 0.5));
    this.attempt += 1;
    this.retryAt = Date.now() + delay;
    this.setState("waiting");
    this.timers.retry = setTimeout(() => this.connect(), delay);
  }

  schedulePing(ws) {
    this.timers.ping = setTimeout(async () => {
      try {
        await this.send("ping", {}, PONG_TIMEOUT_MS);
        if (this.ws === ws) this.schedulePing(ws);
      } catch {
        // send() closed a socket that did not answer; closed() takes it from there.
      }
    }, PING_INTERVAL_MS);
  }

  failPending(code) {
    for (const { reject, timer } of this.pending.values()) {
      clearTimeout(timer);
      reject(new SocketError(code, "the connection closed", true));
    }
    this.pending.clear();
  }

  clearTimers() {
    for (const timer of Object.values(this.timers)) clearTimeout(timer);
  }

  setState(state) {
    this.state = state;
    if (state !== "waiting") this.retryAt = null;
    this.handlers.onState({ state, retryAt: this.retryAt, attempt: this.attempt });
  }
}

/** The socket's URL on this page's host. */
export function socketUrl() {
  const scheme = location.protocol === "https:" ? "wss:" : "ws:";
  return `${scheme}//${location.host}/socket`;
}
