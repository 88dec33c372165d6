// The bell: the in-app notifications of the node's inbox (/api/v1/notifications).
//
// The inbox is read over HTTP when the socket (re)connects (load()), and kept up to date by
// the socket's "notification" pushes (pushed()): the new item goes on top and the unread
// count is the push's. Older items come a page at a time as the list is scrolled to its end
// (the inbox's next_cursor). Reading an item (a click, Enter) marks it read and, when it
// names a room (the chat notifications' payload does), opens that room. Everything shown is
// text: titles and bodies are whatever a service sent.

import * as api from "./api.js";
import { $, h, formatAgo, formatFull, sentence } from "./dom.js";
import { icon } from "./icons.js";
import { toast, announce } from "./notifications.js";

const PAGE_SIZE = 20;

const state = {
  items: [], // newest first, as the inbox gives them
  unread: 0,
  nextCursor: null,
  loaded: false,
  loadingMore: false,
  loadToken: 0,
  pushesDuringLoad: null, // pushes that arrived while a load was on its way
};

let actions = { openRoom: () => {} };

/** Wire the bell and its panel (once per page); actions.openRoom(id) opens a room. */
export function init(handlers) {
  actions = handlers;
  reset();
  const bell = $("bell");
  if (bell.dataset.ready) return;
  bell.dataset.ready = "1";
  const panel = $("notifications-panel");
  bell.addEventListener("click", () => setOpen(panel.hidden));
  document.addEventListener("click", (event) => {
    // The path as it was when clicked: a click on an item draws the list again, taking the
    // target out of the page before this runs.
    const path = event.composedPath();
    if (!panel.hidden && !path.includes(panel) && !path.includes(bell)) setOpen(false);
  });
  panel.addEventListener("keydown", keydown);
  $("notifications-read-all").addEventListener("click", readAll);
  $("notifications-list").addEventListener("scroll", () => {
    const list = $("notifications-list");
    if (list.scrollTop + list.clientHeight >= list.scrollHeight - 40) loadMore();
  });
}

/** Forget the inbox (logged out): the next user starts from nothing. */
export function reset() {
  Object.assign(state, {
    items: [], unread: 0, nextCursor: null, loaded: false, loadingMore: false,
    loadToken: state.loadToken + 1, pushesDuringLoad: null,
  });
  setOpen(false);
  render();
}

function setOpen(open) {
  const panel = $("notifications-panel");
  const wasOpen = !panel.hidden;
  panel.hidden = !open;
  $("bell").setAttribute("aria-expanded", String(open));
  if (open && !wasOpen) {
    // Focus the first item (or "Mark all read", or the panel itself when it is empty).
    const readAll = $("notifications-read-all");
    (panel.querySelector(".notification-main") || (readAll.disabled ? panel : readAll)).focus();
    fillIfShort();
  }
}

function close() {
  setOpen(false);
  $("bell").focus();
}

function keydown(event) {
  if (event.key === "Escape") {
    event.preventDefault();
    close();
    return;
  }
  if (event.key !== "ArrowDown" && event.key !== "ArrowUp") return;
  const mains = [...$("notifications-list").querySelectorAll(".notification-main")];
  if (!mains.length) return;
  event.preventDefault();
  const at = mains.indexOf(document.activeElement?.closest(".notification")?.querySelector(".notification-main"));
  const next = at < 0 ? 0 : Math.max(0, Math.min(mains.length - 1, at + (event.key === "ArrowDown" ? 1 : -1)));
  mains[next].focus();
  if (next === mains.length - 1) loadMore();
}

// -- the inbox ------------------------------------------------------------------------------

/** Read the inbox's first page and the unread count (at login and on each reconnection). */
export async function load() {
  const token = (state.loadToken += 1);
  state.pushesDuringLoad = [];
  let page;
  try {
    page = await api.get(`/notifications${api.query({ limit: PAGE_SIZE })}`);
  } catch (error) {
    if (token === state.loadToken) state.pushesDuringLoad = null;
    if (error.code !== "unauthenticated") console.warn("the notifications could not be loaded", error);
    return;
  }
  if (token !== state.loadToken) return;
  const later = state.pushesDuringLoad;
  state.pushesDuringLoad = null;
  const before = state.unread;
  state.items = page.items;
  state.nextCursor = page.next_cursor;
  state.unread = page.unread;
  // A push that came while the page was on its way may be newer than the page.
  for (const frame of later) {
    addItem(frame.item);
    state.unread = frame.unread;
  }
  state.loaded = true;
  if (state.unread > before) announceCount();
  render();
  fillIfShort();
}

/** A "notification" push of the socket: the new item on top, the count after it. */
export function pushed(frame) {
  if (!frame || !frame.item || typeof frame.item.id !== "number") return;
  if (state.pushesDuringLoad) state.pushesDuringLoad.push(frame);
  const before = state.unread;
  addItem(frame.item);
  if (typeof frame.unread === "number") state.unread = frame.unread;
  if (state.unread > before) announceCount(frame.item);
  render();
}

function addItem(item) {
  const at = state.items.findIndex((held) => held.id === item.id);
  if (at >= 0) state.items[at] = item;
  else {
    state.items.push(item);
    state.items.sort((a, b) => b.id - a.id);
  }
}

function announceCount(item) {
  const count = `${state.unread} unread notification${state.unread === 1 ? "" : "s"}`;
  announce(item && item.title ? `${item.title}. ${count}` : count);
}

/** The next page, after the last item held (scrolling to the end of the list). */
async function loadMore() {
  if (!state.loaded || state.loadingMore || state.nextCursor === null) return;
  state.loadingMore = true;
  const token = state.loadToken;
  render();
  try {
    const page = await api.get(`/notifications${api.query({ cursor: state.nextCursor, limit: PAGE_SIZE })}`);
    if (token !== state.loadToken) return;
    for (const item of page.items) addItem(item);
    state.nextCursor = page.next_cursor;
    state.unread = page.unread;
  } catch (error) {
    if (error.code !== "unauthenticated") toast(sentence(error.message));
  } finally {
    if (token === state.loadToken) {
      state.loadingMore = false;
      render();
      fillIfShort();
    }
  }
}

/** An open panel whose list does not fill it cannot be scrolled: load the next page now. */
function fillIfShort() {
  const list = $("notifications-list");
  if (!$("notifications-panel").hidden && list.scrollHeight <= list.clientHeight + 40) loadMore();
}

async function markRead(item) {
  if (item.read_at) return;
  item.read_at = new Date().toISOString();
  state.unread = Math.max(0, state.unread - 1);
  render();
  try {
    const result = await api.post(`/notifications/${item.id}/read`);
    state.unread = result.unread;
  } catch (error) {
    if (error.status !== 404) {
      item.read_at = null;
      toast(sentence(error.message));
    }
  }
  render();
}

async function readAll() {
  const now = new Date().toISOString();
  for (const item of state.items) item.read_at = item.read_at || now;
  state.unread = 0;
  render();
  try {
    const result = await api.post("/notifications/read_all");
    state.unread = result.unread;
  } catch (error) {
    toast(sentence(error.message));
    load();
    return;
  }
  render();
}

async function archive(item) {
  const list = $("notifications-list");
  const row = list.querySelector(`[data-id="${item.id}"]`);
  const focusNext = row && row.contains(document.activeElement);
  const at = state.items.findIndex((held) => held.id === item.id);
  state.items = state.items.filter((held) => held.id !== item.id);
  if (!item.read_at) state.unread = Math.max(0, state.unread - 1);
  render();
  if (focusNext) {
    const mains = list.querySelectorAll(".notification-main");
    (mains[Math.min(at, mains.length - 1)] || $("notifications-panel")).focus();
  }
  try {
    const result = await api.post(`/notifications/${item.id}/archive`);
    state.unread = result.unread;
  } catch (error) {
    if (error.status !== 404) {
      toast(sentence(error.message));
      load();
      return;
    }
  }
  render();
  fillIfShort();
}

/** The room an item is about: the chat notifications' payload names it. */
function roomOf(item) {
  const data = item.data || {};
  const room = data.room ?? data.payload?.room;
  return Number.isInteger(room) && room > 0 ? room : null;
}

function activate(item) {
  markRead(item);
  const room = roomOf(item);
  if (room !== null) {
    setOpen(false);
    actions.openRoom(room);
  }
}

// -- drawing ----------------------------------------------------------------------------------

function render() {
  const { unread } = state;
  const badge = $("bell-count");
  badge.textContent = unread > 99 ? "99+" : String(unread);
  badge.hidden = unread === 0;
  $("bell").setAttribute("aria-label", unread ? `Notifications, ${unread} unread` : "Notifications");
  $("notifications-read-all").disabled = unread === 0;
  $("notifications-empty").hidden = !state.loaded || state.items.length > 0;

  const list = $("notifications-list");
  const focused = list.contains(document.activeElement) ? document.activeElement : null;
  const focusedId = focused?.closest(".notification")?.dataset.id;
  const focusedPart = focused?.classList.contains("notification-archive") ? ".notification-archive" : ".notification-main";
  const scroll = list.scrollTop;
  list.replaceChildren(...state.items.map(row));
  list.scrollTop = scroll;
  if (focusedId) {
    list.querySelector(`[data-id="${focusedId}"] ${focusedPart}`)?.focus();
  }
  const status = $("notifications-status");
  status.textContent = state.loadingMore ? "Loading older notifications…" : "";
  status.hidden = !state.loadingMore;
}

function row(item) {
  const unread = !item.read_at;
  const title = String(item.title || "Notification");
  const at = item.created_at ? new Date(item.created_at) : null;
  const when = at && !Number.isNaN(at.getTime()) ? at : null;
  const main = h("button", {
    type: "button",
    class: "notification-main",
    onClick: () => activate(item),
  },
    h("span", { class: "notification-dot", "aria-hidden": "true" }),
    h("span", { class: "notification-text" },
      h("span", { class: "notification-title" },
        unread ? h("span", { class: "sr-only" }, "Unread: ") : null, title),
      item.body ? h("span", { class: "notification-body" }, String(item.body)) : null,
      when
        ? h("time", { class: "notification-time", datetime: when.toISOString(), title: formatFull(when) }, formatAgo(when))
        : null,
    ),
  );
  const archiveButton = h("button", {
    type: "button",
    class: "icon-button small notification-archive",
    "aria-label": `Archive: ${title}`,
    title: "Archive",
    onClick: (event) => {
      event.stopPropagation();
      archive(item);
    },
  }, icon("archive"));
  const rowClass = unread ? "notification unread" : "notification";
  return h("li", { class: rowClass, dataset: { id: String(item.id) } }, main, archiveButton);
}
