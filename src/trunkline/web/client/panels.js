// The open room's header, and its side panels: the members (with presence, roles, and for
// owners and admins the moderation of each member) and search within the room.

import { $, h, avatar, reconcile, formatAgo, formatTime, formatDay, sentence } from "./dom.js";
import { icon } from "./icons.js";
import { store, roomLabel, isPresent, canModerate, normalizeMessage, userById } from "./store.js";
import * as composer from "./composer.js";
import * as dialogs from "./dialogs.js";
import { toast } from "./notifications.js";

let actions;
let openPanel = null; // "members" | "search" | null
let managing = null; // the user id whose moderation buttons are shown
let searchSeq = 0;

export function init(a) {
  actions = a;
  if ($("room").dataset.ready) return;
  $("room").dataset.ready = "1";
  $("toggle-members").addEventListener("click", () => toggle("members"));
  $("toggle-search").addEventListener("click", () => toggle("search"));
  for (const button of document.querySelectorAll("[data-close-panel]")) {
    button.addEventListener("click", () => toggle(null));
  }
  for (const panel of [$("members-panel"), $("search-panel")]) {
    panel.addEventListener("keydown", (event) => {
      if (event.key === "Escape") toggle(null);
    });
  }
  $("invite-button").addEventListener("click", () => dialogs.invite());
  $("leave-button").addEventListener("click", () => {
    const room = actions.activeRoom();
    if (!room) return;
    dialogs.confirm({
      title: `Leave ${roomLabel(room)}?`,
      text: room.kind === "private" ? "You will need a new invitation to come back." : "You can join it again from the public rooms.",
      ok: "Leave",
      action: () => actions.leaveRoom(room.id),
    });
  });
  $("search-form").addEventListener("submit", (event) => {
    event.preventDefault();
    search();
  });
}

function toggle(name) {
  const was = openPanel;
  openPanel = name === openPanel ? null : name;
  $("members-panel").hidden = openPanel !== "members";
  $("search-panel").hidden = openPanel !== "search";
  $("toggle-members").setAttribute("aria-expanded", String(openPanel === "members"));
  $("toggle-search").setAttribute("aria-expanded", String(openPanel === "search"));
  document.body.classList.toggle("panel-open", openPanel !== null);
  if (openPanel === "search") $("search-input").focus();
  else if (openPanel === "members") $("members-panel").querySelector("button")?.focus();
  else if (was) $(was === "search" ? "toggle-search" : "toggle-members").focus();
  if (openPanel === "members") renderMembers(actions.activeRoom());
}

export function roomChanged() {
  managing = null;
  $("search-input").value = "";
  $("search-results").replaceChildren();
  $("search-status").textContent = "";
  if (openPanel === "search") toggle(null);
}

// -- the header -----------------------------------------------------------------------------------

export function renderHeader(room) {
  $("room-empty").hidden = Boolean(room);
  $("room-view").hidden = !room;
  if (!room) {
    $("welcome-title").textContent = `Welcome, ${store.me.display_name || store.me.username}`;
    return;
  }
  const title = $("room-title");
  const label = roomLabel(room);
  const sig = [room.id, label, room.kind, room.kind === "direct" && room.other ? isPresent(room, room.other.id) : ""].join("|");
  if (title.dataset.sig !== sig) {
    title.dataset.sig = sig;
    if (room.kind === "direct") {
      const present = room.other ? isPresent(room, room.other.id) : false;
      title.replaceChildren(
        h("span", { class: `presence-dot ${present ? "online" : "offline"}`, "aria-hidden": "true" }),
        label,
        h("span", { class: "sr-only" }, present ? ", online" : ", offline"));
    } else {
      title.replaceChildren(h("span", { class: "title-icon", "aria-hidden": "true" }, icon(room.kind === "private" ? "lock" : "hash")), label);
    }
  }
  $("timeline-label").textContent = `Messages in ${room.kind === "public" ? "#" : ""}${label}`;
  const topic = room.kind === "direct" ? (room.other ? `@${room.other.username}` : "") : room.topic;
  $("room-topic").textContent = topic;
  $("room-topic").hidden = !topic;
  const count = room.members ? room.members.length : "";
  $("member-count").textContent = String(count);
  $("toggle-members").setAttribute("aria-label", count ? `Members (${count})` : "Members");
  const mayInvite = room.kind === "public" || (room.kind === "private" && (room.role === "owner" || room.role === "admin"));
  $("invite-button").hidden = !mayInvite;
  $("leave-button").hidden = room.kind === "direct";
  composer.renderLabel(room);
}

// -- members --------------------------------------------------------------------------------------

export function renderMembers(room) {
  if (!room || openPanel !== "members") return;
  const members = [...(room.members || [])].sort((a, b) => {
    const rank = { owner: 0, admin: 1, member: 2 };
    const online = Number(present(room, b)) - Number(present(room, a));
    return online || rank[a.role] - rank[b.role] || a.user.display_name.localeCompare(b.user.display_name);
  });
  reconcile($("member-list"), members, (m) => m.user.id, (member, previous) => memberItem(room, member, previous));
}

function present(room, member) {
  if (room.joined) return isPresent(room, member.user.id);
  return member.online || isPresent(room, member.user.id);
}

function memberItem(room, member, previous) {
  const online = present(room, member);
  const mayModerate = canModerate(room, member);
  const open = managing === member.user.id && mayModerate;
  const sig = [member.user.display_name, member.role, member.muted, online, mayModerate, open, member.last_seen_at].join("|");
  if (previous && previous.dataset.sig === sig) return previous;
  const user = member.user;
  const status = online ? "online" : member.last_seen_at ? `last seen ${formatAgo(new Date(member.last_seen_at))}` : "offline";
  const tags = [];
  if (member.role !== "member") tags.push(h("span", { class: `tag ${member.role}` }, member.role));
  if (member.muted) tags.push(h("span", { class: "tag muted-tag" }, "muted"));
  const you = user.id === store.me.id ? " (you)" : "";
  const item = h("li", { class: "member", dataset: { sig, userId: String(user.id) } },
    h("span", { class: "member-avatar" }, avatar(user, "small"),
      h("span", { class: `presence-dot ${online ? "online" : "offline"}`, "aria-hidden": "true" })),
    h("span", { class: "member-text" },
      h("span", { class: "member-line" }, h("span", { class: "member-name" }, user.display_name + you), tags),
      h("span", { class: "member-status muted" }, `@${user.username} · ${status}`)));
  if (mayModerate) {
    const manage = h("button", {
      type: "button", class: "icon-button small", "aria-label": `Manage ${user.display_name}`, title: "Manage",
      "aria-expanded": String(open), "aria-controls": `manage-${user.id}`,
    }, icon("more"));
    manage.addEventListener("click", () => {
      managing = open ? null : user.id;
      renderMembers(room);
      $(`member-manage-first-${user.id}`)?.focus();
    });
    item.append(manage);
    if (open) item.append(moderationRow(room, member));
  }
  return item;
}

function moderationRow(room, member) {
  const user = member.user;
  const buttons = [];
  const add = (label, run, danger = false) => buttons.push(h("button", {
    type: "button", class: `button small${danger ? " danger" : ""}`, id: buttons.length ? null : `member-manage-first-${user.id}`, onClick: run,
  }, label));
  const act = (action, verb, { timed = false, danger = true } = {}) => () =>
    dialogs.confirm({
      title: `${verb} ${user.display_name}?`,
      text: {
        kick: "They leave the room, and may join again.",
        ban: "They leave the room and cannot come back until the ban ends.",
        mute: "They stay in the room but cannot send messages until the mute ends.",
      }[action],
      ok: verb,
      danger,
      duration: timed,
      action: async (durationS) => {
        managing = null;
        await actions.moderate(action, user.username, durationS);
        toast(`${user.display_name}: ${action === "kick" ? "kicked" : action === "ban" ? "banned" : "muted"}.`);
      },
      then: () => {
        actions.renderNow();
        ($("member-list").querySelector(`[data-user-id="${user.id}"] button`) || $("toggle-members")).focus();
      },
    });
  if (room.role === "owner" && member.role !== "owner") {
    const next = member.role === "admin" ? "member" : "admin";
    add(next === "admin" ? "Make admin" : "Remove admin", async () => {
      try {
        managing = null;
        await actions.setRole(user.username, next);
      } catch (error) {
        toast(sentence(error.message), { kind: "error" });
      }
    });
  }
  if (member.muted) {
    add("Unmute", async () => {
      try {
        managing = null;
        await actions.moderate("unmute", user.username);
      } catch (error) {
        toast(sentence(error.message), { kind: "error" });
      }
    });
  } else add("Mute", act("mute", "Mute", { timed: true, danger: false }));
  add("Kick", act("kick", "Kick"), true);
  add("Ban", act("ban", "Ban", { timed: true }), true);
  return h("div", { class: "manage-row", id: `manage-${user.id}`, role: "group", "aria-label": `Manage ${user.display_name}` }, buttons);
}

// -- search ---------------------------------------------------------------------------------------

async function search() {
  const room = actions.activeRoom();
  const q = $("search-input").value.trim();
  const status = $("search-status");
  const results = $("search-results");
  if (!room || !q) {
    results.replaceChildren();
    status.textContent = "";
    return;
  }
  const mine = ++searchSeq;
  status.textContent = "Searching…";
  let found;
  try {
    found = await actions.search(room.id, q);
  } catch (error) {
    if (mine === searchSeq) status.textContent = sentence(error.message);
    return;
  }
  if (mine !== searchSeq) return;
  const messages = found.messages.map(normalizeMessage);
  status.textContent = messages.length === 1 ? "1 message" : `${messages.length} messages`;
  const words = q.toLowerCase().split(/\s+/).map((w) => w.replace(/^[-"]+|["]+$/g, "")).filter((w) => w && w !== "or");
  results.replaceChildren(...messages.map((message) => {
    const sender = userById(message.senderId);
    const button = h("button", { type: "button", class: "search-result" },
      h("span", { class: "search-meta" },
        h("span", { class: "sender" }, sender ? sender.display_name : "Someone"),
        h("time", { datetime: message.createdAt.toISOString() }, `${formatDay(message.createdAt)} ${formatTime(message.createdAt)}`)),
      h("span", { class: "search-body" }, highlighted(message.body, words)));
    button.addEventListener("click", () => {
      actions.reveal(message.seq);
      if (window.matchMedia("(max-width: 1000px)").matches) toggle(null);
    });
    return h("li", {}, button);
  }));
}

/** The text with each searched word marked (<mark>), as text nodes. */
function highlighted(body, words) {
  const fragment = document.createDocumentFragment();
  if (!words.length) {
    fragment.append(body);
    return fragment;
  }
  const escaped = words.map((w) => w.replace(/[.*+?^${}()|[\]\\]/g, "\\$&"));
  const pattern = new RegExp(`(${escaped.join("|")})`, "gi");
  let at = 0;
  for (const match of body.matchAll(pattern)) {
    if (match.index > at) fragment.append(body.slice(at, match.index));
    fragment.append(h("mark", {}, match[0]));
    at = match.index + match[0].length;
  }
  if (at < body.length) fragment.append(body.slice(at));
  return fragment;
}
