// The open room's messages: grouped by sender and day, with one's own pending ones at the
// end; older pages load as the list is scrolled up, and the view stays on the newest message
// while it is at the bottom. Keyboard: in the list, the arrow keys move from message to
// message, and the buttons of the focused one (edit, delete) are next in the tab order.

import { $, h, avatar, reconcile, richText, formatTime, formatFull, formatDay, dayKey, sentence } from "./dom.js";
import { icon } from "./icons.js";
import { store, orderedMessages, userById, roomLabel } from "./store.js";
import * as dialogs from "./dialogs.js";
import { toast } from "./notifications.js";

const GROUP_GAP_MS = 5 * 60 * 1000;
const NEAR_TOP_PX = 400;
const AT_BOTTOM_PX = 48;

let actions;
const scroller = () => $("timeline");
const list = () => $("messages");
let stick = true;
let editing = null; // the seq being edited
let lastSeqShown = null;
let unseen = 0;

export function init(a) {
  actions = a;
  const el = scroller();
  if (el.dataset.ready) return;
  el.dataset.ready = "1";
  el.addEventListener("scroll", onScroll, { passive: true });
  el.addEventListener("keydown", onKeyDown);
  list().addEventListener("focusin", (event) => setActionsFocusable(event.target.closest("li.message"), true));
  list().addEventListener("focusout", (event) => {
    const from = event.target.closest("li.message");
    if (from && !from.contains(event.relatedTarget)) setActionsFocusable(from, false);
  });
  $("jump-latest").addEventListener("click", () => {
    stick = true;
    el.scrollTop = el.scrollHeight;
    $("composer-input").focus();
  });
  new ResizeObserver(() => {
    if (stick) el.scrollTop = el.scrollHeight;
  }).observe(el);
}

export function atBottom() {
  const el = scroller();
  return el.scrollHeight - el.scrollTop - el.clientHeight < AT_BOTTOM_PX;
}

/** Follow the newest messages (after one's own send). */
export function stickToBottom() {
  stick = true;
}

export function roomChanged() {
  list().keyed = new Map();
  list().replaceChildren();
  stick = true;
  editing = null;
  lastSeqShown = null;
  unseen = 0;
  $("jump-latest").hidden = true;
}

function onScroll() {
  const el = scroller();
  stick = atBottom();
  if (el.scrollTop < NEAR_TOP_PX) actions.loadOlder();
  if (stick) {
    unseen = 0;
    $("jump-latest").hidden = true;
    if (document.visibilityState === "visible") actions.markRead();
  }
}

// -- drawing ------------------------------------------------------------------------------------

export function render(room) {
  if (!room) return;
  const el = scroller();
  const wasAtBottom = stick;
  const firstBefore = list().firstElementChild;
  const anchor = firstBefore ? firstBefore.offsetTop - el.scrollTop : 0;
  reconcile(list(), items(room), (item) => item.key, renderItem);
  const status = $("history-status");
  const text = room.loadingOlder || (!room.historyLoaded && room.messages.size === 0) ? "Loading messages…"
    : room.atStart ? startText(room) : "";
  if (status.textContent !== text) status.textContent = text;
  status.classList.toggle("start", room.atStart && !room.loadingOlder);
  if (wasAtBottom) el.scrollTop = el.scrollHeight;
  else if (firstBefore && firstBefore.isConnected) el.scrollTop = firstBefore.offsetTop - anchor; // older ones above
  const last = room.hi;
  if (!wasAtBottom && lastSeqShown !== null && last !== null && last > lastSeqShown) unseen += last - lastSeqShown;
  lastSeqShown = last;
  $("jump-latest").hidden = wasAtBottom || unseen === 0;
  $("jump-latest-text").textContent = unseen === 1 ? "1 new message" : `${unseen} new messages`;
  if (wasAtBottom && document.visibilityState === "visible" && room.historyLoaded) actions.markRead();
  // Too few messages to scroll: no scrolling up will ask for older ones, so ask now.
  if (room.historyLoaded && !room.atStart && el.scrollHeight <= el.clientHeight) actions.loadOlder();
}

function startText(room) {
  if (room.kind === "direct") return `This is the beginning of your conversation with ${roomLabel(room)}.`;
  const name = room.kind === "public" ? `#${roomLabel(room)}` : roomLabel(room);
  return `This is the very beginning of ${name}.`;
}

/** What the list shows, in order: day lines, the unread line, messages, pending ones. */
function items(room) {
  const out = [];
  let previous = null;
  let dividerDone = room.dividerSeq === null;
  const add = (entry, date, senderId) => {
    if (!previous || dayKey(previous.date) !== dayKey(date)) {
      out.push({ key: `day-${dayKey(date)}`, kind: "day", date });
      previous = null;
    }
    entry.continued = Boolean(previous && previous.senderId === senderId && date - previous.date < GROUP_GAP_MS && !previous.divider);
    out.push(entry);
    previous = { senderId, date };
  };
  for (const message of orderedMessages(room)) {
    if (!dividerDone && message.seq > room.dividerSeq && message.senderId !== store.me.id) {
      out.push({ key: "unread-divider", kind: "divider" });
      dividerDone = true;
      if (previous) previous.divider = true;
    }
    add({ key: `m-${message.seq}`, kind: "message", message }, message.createdAt, message.senderId);
  }
  for (const pending of actions.pending(room.id)) {
    add({ key: `p-${pending.id}`, kind: "pending", pending }, new Date(pending.createdAt), store.me.id);
  }
  return out;
}

function renderItem(item, previous) {
  if (item.kind === "day") return previous || h("li", { class: "day-divider", role: "separator" }, h("span", {}, formatDay(item.date)));
  if (item.kind === "divider") return previous || h("li", { class: "unread-divider", role: "separator" }, h("span", {}, "New messages"));
  if (item.kind === "pending") return pendingItem(item, previous);
  return messageItem(item, previous);
}

function senderOf(message) {
  const user = userById(message.senderId);
  if (user) return user;
  return { id: message.senderId || 0, display_name: message.senderId ? "Someone" : "Deleted account", username: "" };
}

function messageItem({ message, continued }, previous) {
  const room = actions.activeRoom();
  const sender = senderOf(message);
  const mine = message.senderId === store.me.id;
  const canDelete = !message.deletedAt && (mine || room.role === "owner" || room.role === "admin");
  const isEditing = editing === message.seq && !message.deletedAt;
  const sig = [message.version, continued, sender.display_name, canDelete, isEditing].join("|");
  if (previous && previous.dataset.sig === sig) return previous;

  const time = h("time", { datetime: message.createdAt.toISOString(), title: formatFull(message.createdAt) }, formatTime(message.createdAt));
  const head = continued
    ? h("span", { class: "gutter-time" }, time, h("span", { class: "sr-only" }, ` ${sender.display_name}`))
    : null;
  const meta = continued ? null : h("div", { class: "message-meta" },
    h("span", { class: "sender", title: sender.username ? `@${sender.username}` : null }, sender.display_name),
    time);
  let body;
  if (message.deletedAt) body = h("p", { class: "message-body deleted" }, "This message was deleted.");
  else if (isEditing) body = editForm(message);
  else {
    body = h("p", { class: "message-body" }, richText(message.body, { me: store.me.username }));
    if (message.editedAt) body.append(h("span", { class: "edited", title: formatFull(message.editedAt) }, " (edited)"));
  }
  const tools = [];
  if (mine && !message.deletedAt && !isEditing) {
    tools.push(toolButton("edit", "Edit message", () => startEditing(message.seq)));
  }
  if (canDelete && !isEditing) tools.push(toolButton("trash", "Delete message", () => confirmDelete(message)));
  const el = h("li", {
      class: `message${continued ? " continued" : ""}${mine ? " mine" : ""}${message.deletedAt ? " deleted" : ""}`,
      id: `message-${message.seq}`,
      tabindex: "-1",
      dataset: { seq: String(message.seq), sig },
    },
    continued ? head : avatar(sender),
    h("div", { class: "message-main" }, meta, body),
    tools.length ? h("div", { class: "message-tools", role: "group", "aria-label": "Message actions" }, tools) : null,
  );
  if (previous && previous.contains(document.activeElement) && !isEditing) queueMicrotask(() => el.focus());
  return el;
}

function toolButton(name, label, onClick) {
  return h("button", { type: "button", class: "icon-button small", "aria-label": label, title: label, tabindex: "-1", onClick }, icon(name));
}

function pendingItem({ pending, continued }, previous) {
  const sig = [pending.state, pending.error, continued].join("|");
  if (previous && previous.dataset.sig === sig) return previous;
  const me = store.me;
  const status = pending.state === "failed" ? `Not sent: ${sentence(pending.error)}`
    : pending.state === "sending" ? "Sending…" : "Waiting for the connection…";
  const tools = pending.state === "failed"
    ? h("div", { class: "pending-tools" },
        h("button", { type: "button", class: "link-button", onClick: () => actions.retryPending(pending.id) }, "Retry"),
        h("button", { type: "button", class: "link-button", onClick: () => actions.discardPending(pending.id) }, "Discard"))
    : null;
  return h("li", {
      class: `message mine pending ${pending.state}${continued ? " continued" : ""}`,
      dataset: { clientId: pending.id, sig },
    },
    continued ? h("span", { class: "gutter-time" }) : avatar(me),
    h("div", { class: "message-main" },
      continued ? null : h("div", { class: "message-meta" }, h("span", { class: "sender" }, me.display_name)),
      h("p", { class: "message-body" }, richText(pending.body, { me: me.username })),
      h("p", { class: "pending-status", role: pending.state === "failed" ? "alert" : null }, status),
      tools),
  );
}

// -- editing and deleting -------------------------------------------------------------------------

function startEditing(seq) {
  editing = seq;
  actions.invalidate("timeline");
  actions.renderNow();
  const input = $(`message-${seq}`)?.querySelector(".edit-input");
  if (input) {
    input.focus();
    input.setSelectionRange(input.value.length, input.value.length);
  }
}

/** Edit one's last message (the Up key in an empty message box). */
export function editLast() {
  const room = actions.activeRoom();
  if (!room) return false;
  const mine = orderedMessages(room).filter((m) => m.senderId === store.me.id && !m.deletedAt);
  if (!mine.length) return false;
  startEditing(mine[mine.length - 1].seq);
  return true;
}

function editForm(message) {
  const input = h("textarea", { class: "edit-input", "aria-label": "Edit message", rows: "2", maxlength: "4000" });
  input.value = message.body;
  const error = h("p", { class: "field-error", role: "alert", hidden: true });
  const stop = () => {
    editing = null;
    actions.invalidate("timeline");
    actions.renderNow();
    $(`message-${message.seq}`)?.focus();
  };
  const save = async () => {
    const body = input.value;
    if (body === message.body) return stop();
    if (!body.trim()) {
      error.textContent = "A message cannot be empty: delete it instead.";
      error.hidden = false;
      return;
    }
    try {
      await actions.editMessage(message.seq, body);
      stop();
    } catch (failure) {
      error.textContent = sentence(failure.message);
      error.hidden = false;
    }
  };
  input.addEventListener("keydown", (event) => {
    if (event.key === "Enter" && !event.shiftKey && !event.isComposing) {
      event.preventDefault();
      save();
    } else if (event.key === "Escape") {
      event.preventDefault();
      event.stopPropagation();
      stop();
    }
  });
  return h("div", { class: "edit-form" }, input, error,
    h("div", { class: "edit-actions" },
      h("span", { class: "muted" }, "Enter to save · Esc to cancel"),
      h("button", { type: "button", class: "button small", onClick: stop }, "Cancel"),
      h("button", { type: "button", class: "button small primary", onClick: save }, "Save")));
}

async function confirmDelete(message) {
  await dialogs.confirm({
    title: "Delete this message?",
    text: "It is deleted for everyone in the room.",
    ok: "Delete",
    action: async () => {
      await actions.deleteMessage(message.seq);
    },
  });
}

// -- keyboard -------------------------------------------------------------------------------------

function onKeyDown(event) {
  if (event.target.closest(".edit-form")) return;
  const messages = [...list().querySelectorAll("li.message[tabindex]")];
  const current = event.target.closest("li.message");
  if (event.key === "ArrowDown" || event.key === "ArrowUp") {
    if (!messages.length) return;
    event.preventDefault();
    let index = current ? messages.indexOf(current) : messages.length;
    index += event.key === "ArrowDown" ? 1 : -1;
    if (index >= messages.length) {
      $("composer-input").focus();
      return;
    }
    messages[Math.max(0, index)].focus();
  } else if (event.key === "Escape") {
    $("composer-input").focus();
  } else if (event.key === "e" && current?.classList.contains("mine") && !current.classList.contains("deleted")) {
    event.preventDefault();
    startEditing(Number(current.dataset.seq));
  }
}

function setActionsFocusable(item, focusable) {
  if (!item) return;
  for (const button of item.querySelectorAll(".message-tools button")) button.tabIndex = focusable ? 0 : -1;
}

/** Bring a message into view and mark it for a moment (a search result). */
export function highlight(seq) {
  const el = $(`message-${seq}`);
  if (!el) {
    toast("That message is no longer here.");
    return;
  }
  stick = false;
  el.scrollIntoView({ block: "center" });
  el.classList.remove("flash");
  void el.offsetWidth; // restart the animation
  el.classList.add("flash");
  el.focus({ preventScroll: true });
}
