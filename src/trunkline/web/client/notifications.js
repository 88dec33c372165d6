// Telling the user things: toasts (short notices that go by themselves) and the announcer (a
// polite live region read by screen readers: new messages of the open room, notifications).
// The bell, the place of in-app notifications, is bell.js.

import { $, h } from "./dom.js";

/** A short notice at the bottom of the screen. */
export function toast(text, { kind = "info", timeoutMs = 5000 } = {}) {
  const el = h("div", { class: `toast ${kind}`, role: kind === "error" ? "alert" : "status" }, text);
  $("toasts").append(el);
  setTimeout(() => {
    el.classList.add("leaving");
    setTimeout(() => el.remove(), 300);
  }, timeoutMs);
}

/** Say something to screen reader users, without moving their focus. */
export function announce(text) {
  const region = $("announcer");
  const line = h("p", {}, text);
  region.append(line);
  while (region.childElementCount > 5) region.firstElementChild.remove();
}
