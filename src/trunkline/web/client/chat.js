// The chat screen's controller: it loads rooms and messages over the HTTP API, keeps the
// socket joined to every room, turns pushes into the store, and schedules the views.
//
// Joining: a room whose latest history is loaded is joined with since = the last seq held,
// so the server replays exactly what came after it, then pushes live messages; a room not
// opened yet is joined without since (live only: enough for unread counts) until it is. On
// every reconnection each room is joined again that way, so nothing is missed and, with
// messages kept by seq, nothing shows twice. A push that would leave a hole after the last
// seq held (the server lost a broadcast) is answered the same way: join with since.

import * as api from "./api.js";
import { $, sentence } from "./dom.js";
import { ChatSocket, socketUrl } from "./socket.js";
import { Outbox } from "./outbox.js";
import {
  store, resetStore, newRoom, updateRoom, rememberUser, normalizeMessage, putMessage,
  gapBefore, roomLabel, totalUnread, userById,
} from "./store.js";
import * as sidebar from "./sidebar.js";
import * as timeline from "./timeline.js";
import * as composer from "./composer.js";
import * as panels from "./panels.js";
import * as dialogs from "./dialogs.js";
import * as bell from "./bell.js";
import { toast, announce } from "./notifications.js";

const PAGE_SIZE = 50;
const POLL_VISIBLE_MS = 15_000; // a fallback: "rooms" pushes say when the list changed
const POLL_HIDDEN_MS = 60_000;
const TYPING_SHOWN_MS = 5_000;
const TYPING_EVERY_MS = 2_500;
const TYPING_RETRY_MS = 1_000;
const READ_EVERY_MS = 1_000;

let socket = null;
let outbox = null;
let pollTimer = null;
let ticker = null;
let onEnded = () => {};
let lastTypingSent = 0;
let typingRetry = null;
let readTimer = null;

// -- rendering ----------------------------------------------------------------------------------

const dirty = new Set();
let scheduled = false;

/** Mark parts of the page to draw again, on the next frame: "sidebar", "room", "timeline",
 * "members", "typing", "connection", "invites". */
export function invalidate(...parts) {
  for (const part of parts) dirty.add(part);
  if (scheduled) return;
  scheduled = true;
  requestAnimationFrame(flush);
  setTimeout(flush, 100); // a page in the background gets no frames
}

function flush() {
  if (!scheduled) return;
  scheduled = false;
  const parts = new Set(dirty);
  dirty.clear();
  const room = activeRoom();
  if (parts.has("sidebar") || parts.has("invites")) sidebar.render();
  if (parts.has("connection")) renderConnection();
  if (parts.has("room")) panels.renderHeader(room);
  if (parts.has("timeline")) timeline.render(room);
  if (parts.has("members")) panels.renderMembers(room);
  if (parts.has("typing")) composer.renderTyping(room);
  const unread = totalUnread();
  document.title = unread ? `(${unread}) trunkline` : "trunkline";
}

export const activeRoom = () => store.rooms.get(store.activeId) || null;

// -- starting and stopping ------------------------------------------------------------------------

/** Show the chat screen for the logged-in user; ended() is called after logging out. */
export async function startChat(me, ended) {
  onEnded = ended;
  resetStore();
  store.me = me;
  rememberUser(me);
  $("chat-screen").hidden = false;
  sidebar.init(actions);
  timeline.init(actions);
  composer.init(actions);
  panels.init(actions);
  dialogs.init(actions);
  bell.init({ openRoom: openRoomOfNotification });
  sidebar.renderAccount();
  outbox = new Outbox(`trunkline.outbox.${me.id}`, {
    send: (item) => socket.request("send", { room: item.roomId, body: item.body, client_msg_id: item.id }),
    canSend: () => Boolean(socket && socket.online),
    onStored: (item, reply) => stored(item, reply),
    onChange: () => invalidate("timeline", "sidebar"),
  });
  socket = new ChatSocket(socketUrl(), api.currentSession().token, {
    onReady: (info) => socketReady(info),
    onPush: (frame) => push(frame),
    onState: (state) => {
      store.connection = state;
      invalidate("connection", "members", "sidebar");
    },
    onUnauthenticated: () => sessionEnded("Your session has ended. Please log in again."),
  });
  window.addEventListener("hashchange", route);
  document.addEventListener("visibilitychange", visibilityChanged);
  await refresh();
  if (!socket) return; // the token was refused meanwhile: back at the login screen
  socket.start();
  route();
  schedulePoll();
  ticker = setInterval(tick, 1000);
}

function stopChat() {
  socket?.stop();
  socket = null;
  clearTimeout(pollTimer);
  clearTimeout(readTimer);
  clearTimeout(typingRetry);
  readTimer = null;
  clearInterval(ticker);
  window.removeEventListener("hashchange", route);
  document.removeEventListener("visibilitychange", visibilityChanged);
  dialogs.closeAll();
  bell.reset();
  for (const id of ["room-list", "dm-list", "invite-list", "messages", "member-list", "search-results"]) {
    $(id).keyed = null;
    $(id).replaceChildren();
  }
  $("chat-screen").hidden = true;
}

/** The server no longer takes our token: back to the login screen, saying why. */
export function sessionEnded(notice) {
  if (!socket) return;
  outbox?.clear();
  stopChat();
  api.clearSession();
  onEnded(notice);
}

// -- rooms ------------------------------------------------------------------------------------------

/** Fetch one's rooms and invitations; join the new ones. */
async function refresh() {
  let rooms;
  let invites;
  try {
    [rooms, invites] = await Promise.all([api.get("/rooms"), api.get("/invites")]);
  } catch (error) {
    if (error.code !== "unauthenticated") console.warn("refresh failed", error);
    return;
  }
  if (!socket) return; // logged out meanwhile
  const seen = new Set();
  for (const data of rooms.rooms) {
    seen.add(data.id);
    let room = store.rooms.get(data.id);
    if (!room) {
      room = newRoom(data);
      store.rooms.set(room.id, room);
      if (room.kind === "direct") loadMembers(room);
      syncRoom(room);
    } else {
      const keep = room.unread;
      updateRoom(room, data);
      // The open room's count is ours: what is on screen has been read.
      if (room.id === store.activeId && timeline.atBottom()) room.unread = keep;
    }
  }
  for (const id of [...store.rooms.keys()]) if (!seen.has(id)) forgetRoom(id, null);
  outbox.keepRooms(seen);
  store.invites = invites.invites;
  invalidate("sidebar", "invites", "room");
}

function forgetRoom(roomId, reason) {
  const room = store.rooms.get(roomId);
  if (!room) return;
  store.rooms.delete(roomId);
  outbox.dropRoom(roomId);
  if (reason) {
    const why = { kicked: "You were removed from", banned: "You were banned from", left: "You left" }[reason] || "You left";
    toast(`${why} ${roomLabel(room)}.`);
  }
  if (store.activeId === roomId) location.hash = "";
  invalidate("sidebar", "room", "timeline", "members");
}

/** Join a room on the socket: with since = the last seq held once its history is loaded. */
async function syncRoom(room) {
  if (!socket || !socket.online) return;
  const since = room.historyLoaded ? room.hi ?? 0 : room.hi;
  const fields = { room: room.id };
  if (since !== null && since !== undefined) fields.since = since;
  const token = (room.joinToken = (room.joinToken || 0) + 1);
  let reply;
  try {
    reply = await socket.request("join", fields);
  } catch (error) {
    if (error.code === "not_member") forgetRoom(room.id, null);
    return; // disconnected: the next connection joins again
  }
  if (room.joinToken !== token || store.rooms.get(room.id) !== room) return;
  room.joined = true;
  room.joinMode = "since" in fields ? "since" : "live";
  room.presence = new Map(Object.entries(reply.presence || {}).map(([id, p]) => [Number(id), p.devices]));
  invalidate("sidebar", "members", "room");
  // Live only, but the history came meanwhile: ask for what is after it. Or the replay
  // stopped at the server's limit: ask for the rest.
  if ((room.joinMode === "live" && room.historyLoaded) || reply.complete === false) syncRoom(room);
}

/** The socket is (again) authenticated: join every room, then send what waits; read the
 * notifications again (pushes missed while away are in the inbox). */
async function socketReady({ reconnected }) {
  bell.load();
  for (const room of store.rooms.values()) {
    room.joined = false;
    syncRoom(room);
  }
  outbox.pump();
  if (reconnected) refresh();
}

async function loadRoom(room) {
  if (room.loading || room.historyLoaded) return;
  room.loading = true;
  try {
    const [detail, page] = await Promise.all([
      api.get(`/rooms/${room.id}`),
      api.get(`/rooms/${room.id}/messages${api.query({ limit: PAGE_SIZE })}`),
    ]);
    updateRoom(room, detail);
    if (room.unread > 0 && room.dividerSeq === null) room.dividerSeq = detail.last_read_seq;
    const messages = page.messages.map(normalizeMessage);
    const top = messages.length ? messages[messages.length - 1].seq : 0;
    let hole = false;
    if (room.lo !== null && room.lo > top + 1) {
      // Pushes held from after a hole: drop them, the join below replays them in order.
      room.messages.clear();
      room.lo = room.hi = null;
      hole = true;
    }
    for (const message of messages) putMessage(room, message);
    if (messages.length < PAGE_SIZE) room.atStart = true;
    room.historyLoaded = true;
    if (room.joined && (hole || room.joinMode === "live")) syncRoom(room);
  } catch (error) {
    if (error.status === 404 || error.status === 403) forgetRoom(room.id, null);
    else toast(sentence(error.message));
  } finally {
    room.loading = false;
    invalidate("timeline", "room", "sidebar");
  }
}

/** Load the room's members (once at a time: callers meanwhile share the load). */
function loadMembers(room) {
  if (!room.membersLoading) {
    room.membersLoading = fetchMembers(room).finally(() => {
      room.membersLoading = null;
    });
  }
  return room.membersLoading;
}

async function fetchMembers(room) {
  try {
    const { members } = await api.get(`/rooms/${room.id}/members`);
    for (const member of members) rememberUser(member.user);
    room.members = members;
    if (room.kind === "direct") {
      room.other = members.find((m) => m.user.id !== store.me.id)?.user || room.other;
    }
    invalidate("members", "room", "sidebar", "timeline");
  } catch {
    // Not a member any more: the next refresh says so.
  }
}

/** Older messages, before the first one held (scrolling up). */
async function loadOlder() {
  const room = activeRoom();
  if (!room || room.atStart || room.loadingOlder || !room.historyLoaded || room.lo === null) return;
  room.loadingOlder = true;
  invalidate("timeline");
  try {
    const page = await api.get(`/rooms/${room.id}/messages${api.query({ before: room.lo, limit: PAGE_SIZE })}`);
    for (const data of page.messages) putMessage(room, normalizeMessage(data));
    if (page.messages.length < PAGE_SIZE) room.atStart = true;
  } catch (error) {
    toast(sentence(error.message));
  } finally {
    room.loadingOlder = false;
    invalidate("timeline");
  }
}

// -- pushes -----------------------------------------------------------------------------------------

function push(frame) {
  if (frame.type === "rooms") {
    // Invited, or someone opened a direct conversation: the room list changed.
    refresh();
    return;
  }
  if (frame.type === "notification") {
    bell.pushed(frame);
    return;
  }
  const room = store.rooms.get(frame.room);
  if (!room) return;
  switch (frame.type) {
    case "message":
    case "edit":
    case "delete":
      return messagePush(room, frame);
    case "typing":
      if (frame.user !== store.me.id) {
        room.typing.set(frame.user, Date.now() + TYPING_SHOWN_MS);
        invalidate("typing");
      }
      return;
    case "presence":
      for (const [id, p] of Object.entries(frame.joins || {})) room.presence.set(Number(id), p.devices);
      for (const id of Object.keys(frame.leaves || {})) room.presence.delete(Number(id));
      // Someone present who is not on the member list: they joined since it was loaded.
      if (room.members && Object.keys(frame.joins || {}).some((id) => !room.members.some((m) => m.user.id === Number(id)))) {
        loadMembers(room);
      }
      invalidate("members", "sidebar", "room");
      return;
    case "removed":
      return forgetRoom(room.id, frame.reason);
    default:
  }
}

function messagePush(room, frame) {
  const message = normalizeMessage(frame.message);
  if (frame.type === "message" && gapBefore(room, message.seq)) {
    syncRoom(room); // the replay brings this one too, after what is missing
    return;
  }
  // An edit or deletion of a message not loaded: its page brings the new version when read.
  if (frame.type !== "message" && !room.messages.has(message.seq)) return;
  const result = putMessage(room, message);
  if (result === "duplicate") return;
  if (message.senderId === store.me.id) outbox.settle(message.clientMsgId);
  if (result === "new") {
    room.typing.delete(message.senderId);
    if (message.senderId !== store.me.id && !message.deletedAt) arrived(room, message);
  }
  if (message.senderId && !userById(message.senderId)) loadMembers(room);
  invalidate("timeline", "typing");
}

/** A new message of someone else's: count it unread, or read it, and say it. */
function arrived(room, message) {
  const reading = room.id === store.activeId && document.visibilityState === "visible" && timeline.atBottom();
  if (reading) {
    markRead();
  } else {
    room.unread += 1;
    invalidate("sidebar");
  }
  if (room.id === store.activeId) {
    const say = () => {
      const sender = userById(message.senderId);
      announce(`${sender ? sender.display_name : "Someone"}: ${message.body.slice(0, 200)}`);
    };
    if (userById(message.senderId)) say();
    else loadMembers(room).then(say);
  }
}

function stored(item, reply) {
  const room = store.rooms.get(item.roomId);
  if (!room || !reply.message) return;
  const message = normalizeMessage(reply.message);
  // Joined, its push follows in order; a message of someone else's may be due before it.
  if (!(room.joined && gapBefore(room, message.seq))) putMessage(room, message);
  invalidate("timeline");
}

// -- what the user does ---------------------------------------------------------------------------

function route() {
  if (location.hash && !location.hash.startsWith("#/")) return; // an anchor of the page
  const match = /^#\/room\/(\d+)$/.exec(location.hash);
  const id = match ? Number(match[1]) : null;
  openRoom(id && store.rooms.has(id) ? id : null);
}

/** A notification's room: one may have been added to it since the rooms were fetched. */
async function openRoomOfNotification(id) {
  if (!store.rooms.has(id)) await refresh();
  if (!store.rooms.has(id)) {
    toast("You are no longer in that room.");
    return;
  }
  location.hash = `#/room/${id}`;
}

function openRoom(id) {
  if (store.activeId === id) return;
  const previous = activeRoom();
  if (previous) {
    previous.dividerSeq = null;
    composer.saveDraft(previous);
  }
  store.activeId = id;
  sidebar.closeOnNarrow();
  panels.roomChanged();
  const room = activeRoom();
  if (room) {
    loadRoom(room);
    loadMembers(room); // roles and presence as they are now
  }
  composer.roomChanged(room);
  timeline.roomChanged(room);
  invalidate("sidebar", "room", "timeline", "members", "typing");
}

/** The user has seen the open room to its end: move the read marker there (at most one
 * request a second, the last one always sent). */
function markRead() {
  const room = activeRoom();
  if (!room || room.hi === null) return;
  if (room.unread !== 0) {
    room.unread = 0;
    invalidate("sidebar");
  }
  if (room.hi <= room.readSent || !socket?.online || readTimer) return;
  const seq = room.hi;
  room.readSent = seq;
  socket.request("read", { room: room.id, seq }).catch(() => {
    room.readSent = Math.min(room.readSent, seq - 1); // try again next time
  });
  readTimer = setTimeout(() => {
    readTimer = null;
    if (activeRoom() === room && room.hi > room.readSent && timeline.atBottom()) markRead();
  }, READ_EVERY_MS);
}

function visibilityChanged() {
  if (document.visibilityState === "visible") {
    refresh();
    if (timeline.atBottom()) markRead();
  }
  schedulePoll();
}

function schedulePoll() {
  clearTimeout(pollTimer);
  const delay = document.visibilityState === "visible" ? POLL_VISIBLE_MS : POLL_HIDDEN_MS;
  pollTimer = setTimeout(async () => {
    await refresh();
    if (socket) schedulePoll();
  }, delay);
}

function tick() {
  const room = activeRoom();
  if (room && room.typing.size) invalidate("typing");
  if (store.connection.state === "waiting") invalidate("connection");
}

function renderConnection() {
  const { state, retryAt } = store.connection;
  const box = $("connection");
  const everOnline = Boolean(socket && socket.everOnline);
  let text = "Connected";
  if (state === "connecting") text = everOnline ? "Reconnecting…" : "Connecting…";
  else if (state === "waiting") {
    const seconds = Math.max(0, Math.ceil((retryAt - Date.now()) / 1000));
    text = seconds > 0 ? `Reconnecting in ${seconds} s…` : "Reconnecting…";
  } else if (state === "offline") text = "Offline: waiting for the network…";
  let shown = state === "online" || state === "offline" ? state : "connecting";
  if (shown === "connecting" && (everOnline || state === "waiting")) shown = "reconnecting";
  if (box.dataset.state !== shown || $("connection-text").textContent !== text) {
    box.dataset.state = shown;
    $("connection-text").textContent = text;
  }
  $("reconnect-now").hidden = !(state === "waiting" || state === "offline");
}

/** Draw what is due now rather than on the next frame (after a key press: the next key
 * must find the page as it will be). */
function renderNow() {
  scheduled = true;
  flush();
}

export const actions = {
  activeRoom,
  invalidate,
  renderNow,
  loadOlder,
  markRead,
  pending: (roomId) => (outbox ? outbox.forRoom(roomId) : []),
  retryPending: (id) => outbox.retry(id),
  discardPending: (id) => outbox.discard(id),
  reconnectNow: () => socket?.reconnectNow(),

  send(body) {
    const room = activeRoom();
    if (!room) return;
    outbox.add(room.id, body);
    lastTypingSent = 0;
    timeline.stickToBottom();
  },

  typing() {
    const room = activeRoom();
    const now = Date.now();
    if (!room || !room.joined || !socket?.online || now - lastTypingSent < TYPING_EVERY_MS) return;
    lastTypingSent = now;
    clearTimeout(typingRetry);
    socket.request("typing", { room: room.id }).then((reply) => {
      // Too soon after the last one for the server (it says so): try again in a moment,
      // if there is still something being written in this room.
      if (reply.sent !== false) return;
      lastTypingSent = 0;
      typingRetry = setTimeout(() => {
        if (store.activeId === room.id && $("composer-input").value.trim()) actions.typing();
      }, TYPING_RETRY_MS);
    }, () => {});
  },

  async editMessage(seq, body) {
    const room = activeRoom();
    const reply = await socket.request("edit", { room: room.id, seq, body });
    putMessage(room, normalizeMessage(reply.message));
    invalidate("timeline");
  },

  async deleteMessage(seq) {
    const room = activeRoom();
    const reply = await socket.request("delete", { room: room.id, seq });
    putMessage(room, normalizeMessage(reply.message));
    invalidate("timeline");
  },

  async createRoom({ name, topic, kind }) {
    const room = await api.post("/rooms", { name, topic, kind });
    await refresh();
    location.hash = `#/room/${room.id}`;
  },

  async joinRoom(id) {
    await api.post(`/rooms/${id}/join`);
    await refresh();
    location.hash = `#/room/${id}`;
  },

  async leaveRoom(id) {
    await api.post(`/rooms/${id}/leave`);
    forgetRoom(id, null);
    toast("You left the room.");
  },

  async invite(username) {
    const room = activeRoom();
    await api.post(`/rooms/${room.id}/invites`, { user: username });
    toast(`Invited @${username.trim().toLowerCase()}.`);
  },

  async openDirect(username) {
    const room = await api.post("/direct", { user: username });
    await refresh();
    location.hash = `#/room/${room.id}`;
  },

  async moderate(action, username, durationS) {
    const room = activeRoom();
    const body = { user: username };
    if (durationS) body.until = new Date(Date.now() + durationS * 1000).toISOString();
    await api.post(`/rooms/${room.id}/${action}`, body);
    await loadMembers(room);
  },

  async setRole(username, role) {
    const room = activeRoom();
    await api.put(`/rooms/${room.id}/members/${encodeURIComponent(username)}/role`, { role });
    await loadMembers(room);
  },

  search: (roomId, q) => api.get(`/search${api.query({ q, room: roomId, limit: 50 })}`),

  /** Show message seq of the open room: load older pages until it is held. */
  async reveal(seq) {
    const room = activeRoom();
    for (let i = 0; i < 20 && room && room.lo !== null && seq < room.lo && !room.atStart; i += 1) {
      await loadOlder();
    }
    timeline.render(room);
    timeline.highlight(seq);
  },

  devices: () => api.get("/devices"),

  async revokeDevice(id, current) {
    await api.del(`/devices/${id}`);
    if (current) sessionEnded("This device was logged out.");
  },

  async logout() {
    try {
      await api.del("/sessions/current");
    } catch {
      // Logged out already, or the server is away: forget the token all the same.
    }
    sessionEnded("You are logged out.");
  },
};
