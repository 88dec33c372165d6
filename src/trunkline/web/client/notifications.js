// Telling the user things: toasts (short notices that go by themselves), the announcer (a
// polite live region read by screen readers: new messages of the open room), and the bell,
// the place of in-app notifications. The bell shows what setNotifications() is given: a
// list of {title, body, at: Date, unread}; nothing fills it yet.

import { $, h, formatAgo } from "./dom.js";

let items = [];

export function init() {
  const bell = $("bell");
  const panel = $("notifications-panel");
  if (bell.dataset.ready) return;
  bell.dataset.ready = "1";
  bell.addEventListener("click", () => setOpen(panel.hidden));
  document.addEventListener("click", (event) => {
    if (!panel.hidden && !panel.contains(event.target) && !bell.contains(event.target)) setOpen(false);
  });
  panel.addEventListener("keydown", (event) => {
    if (event.key === "Escape") {
      setOpen(false);
      bell.focus();
    }
  });
  render();
}

function setOpen(open) {
  $("notifications-panel").hidden = !open;
  $("bell").setAttribute("aria-expanded", String(open));
}

/** Show these notifications under the bell, the unread ones counted on its badge. */
export function setNotifications(list) {
  items = Array.isArray(list) ? list : [];
  render();
}

function render() {
  const unread = items.filter((item) => item.unread).length;
  const badge = $("bell-count");
  badge.textContent = unread > 99 ? "99+" : String(unread);
  badge.hidden = unread === 0;
  $("bell").setAttribute("aria-label", unread ? `Notifications, ${unread} unread` : "Notifications");
  $("notifications-empty").hidden = items.length > 0;
  $("notifications-list").replaceChildren(
    ...items.map((item) =>
      h("li", { class: item.unread ? "notification unread" : "notification" },
        h("p", { class: "notification-title" }, String(item.title || "")),
        item.body ? h("p", { class: "notification-body" }, String(item.body)) : null,
        item.at ? h("time", { class: "muted", datetime: new Date(item.at).toISOString() }, formatAgo(new Date(item.at))) : null,
      ),
    ),
  );
}

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
