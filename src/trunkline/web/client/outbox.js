// Messages on their way to the server. Each gets its client message id once, when it is
// written; every try sends it with that id, so the server stores it once however many times
// it is sent (a connection that dropped before the acknowledgement came, a reload). They go
// one at a time, in the order written, and wait in localStorage while the socket is down.

const RETRY_DELAY_MS = 1_000;

/** A client message id: random, so that two tabs of one user never pick the same. */
export function clientMsgId() {
  const bytes = crypto.getRandomValues(new Uint8Array(12));
  return "c-" + Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
}

export class Outbox {
  /**
   * send(item) sends one (a Promise of the reply); onStored(item, reply) and onChange() tell
   * the page. Items are {id, roomId, body, state: "waiting" | "sending" | "failed", error}.
   */
  constructor(storageKey, { send, canSend, onStored, onChange }) {
    this.storageKey = storageKey;
    this.sendOne = send;
    this.canSend = canSend;
    this.onStored = onStored;
    this.onChange = onChange;
    this.items = this.load();
    this.busy = false;
    this.retryTimer = null;
  }

  /** Queue a message and send it as soon as it can be. */
  add(roomId, body) {
    const item = { id: clientMsgId(), roomId, body, state: "waiting", error: null, createdAt: Date.now() };
    this.items.push(item);
    this.changed();
    this.pump();
    return item;
  }

  forRoom(roomId) {
    return this.items.filter((item) => item.roomId === roomId);
  }

  /** A pushed message of one's own: an item it answers is done. */
  settle(clientId) {
    const before = this.items.length;
    this.items = this.items.filter((item) => item.id !== clientId || item.state === "sending");
    if (this.items.length !== before) this.changed();
  }

  retry(id) {
    const item = this.items.find((i) => i.id === id);
    if (item && item.state === "failed") {
      item.state = "waiting";
      item.error = null;
      this.changed();
      this.pump();
    }
  }

  discard(id) {
    this.items = this.items.filter((i) => i.id !== id || i.state === "sending");
    this.changed();
  }

  /** Forget what waits for rooms not among these (left, or removed, meanwhile). */
  keepRooms(roomIds) {
    const before = this.items.length;
    this.items = this.items.filter((i) => roomIds.has(i.roomId) || i.state === "sending");
    if (this.items.length !== before) this.changed();
  }

  dropRoom(roomId) {
    this.items = this.items.filter((i) => i.roomId !== roomId || i.state === "sending");
    this.changed();
  }

  clear() {
    clearTimeout(this.retryTimer);
    this.items = [];
    localStorage.removeItem(this.storageKey);
  }

  /** Send what waits, one at a time, while the socket is up. */
  async pump() {
    if (this.busy) return;
    this.busy = true;
    try {
      for (;;) {
        const item = this.items.find((i) => i.state === "waiting");
        if (!item || !this.canSend()) return;
        item.state = "sending";
        this.changed();
        try {
          const reply = await this.sendOne(item);
          this.items = this.items.filter((i) => i !== item);
          this.changed();
          this.onStored(item, reply);
        } catch (error) {
          if (error.retry) {
            item.state = "waiting";
            this.changed();
            // Down: the socket's return pumps again. Busy or failing: try again shortly.
            if (error.code !== "disconnected") {
              clearTimeout(this.retryTimer);
              this.retryTimer = setTimeout(() => this.pump(), RETRY_DELAY_MS);
            }
            return;
          }
          if (error.code === "not_member") {
            this.items = this.items.filter((i) => i !== item); // the room is gone
          } else {
            item.state = "failed";
            item.error = error.message;
          }
          this.changed();
        }
      }
    } finally {
      this.busy = false;
    }
  }

  changed() {
    const saved = this.items.map(({ id, roomId, body, createdAt }) => ({ id, roomId, body, createdAt }));
    try {
      if (saved.length) localStorage.setItem(this.storageKey, JSON.stringify(saved));
      else localStorage.removeItem(this.storageKey);
    } catch {
      // Storage full or refused: the queue still works for this page.
    }
    this.onChange();
  }

  load() {
    try {
      const saved = JSON.parse(localStorage.getItem(this.storageKey) || "[]");
      return saved
        .filter((i) => i && typeof i.id === "string" && typeof i.body === "string")
        .map((i) => ({ ...i, state: "waiting", error: null }));
    } catch {
      return [];
    }
  }
}
