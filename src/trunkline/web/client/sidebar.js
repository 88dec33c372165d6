// The sidebar: invitations, rooms and direct messages with their unread counts and presence,
// and the account in the top bar. Under 700px wide it slides in over the page from the
// menu button, and goes when a room is chosen, on Escape, or by a tap beside it.

import { $, h, avatar, reconcile } from "./dom.js";
import { icon } from "./icons.js";
import { store, roomLabel, isPresent } from "./store.js";
import * as dialogs from "./dialogs.js";
import { toast } from "./notifications.js";
import { sentence } from "./dom.js";

const narrow = window.matchMedia("(max-width: 700px)");
let actions;

export function init(a) {
  actions = a;
  if ($("sidebar").dataset.ready) return;
  $("sidebar").dataset.ready = "1";
  $("sidebar-toggle").addEventListener("click", () => setOpen(!document.body.classList.contains("sidebar-open")));
  $("scrim").addEventListener("click", () => setOpen(false));
  $("sidebar").addEventListener("keydown", (event) => {
    if (event.key === "Escape" && narrow.matches) {
      setOpen(false);
      $("sidebar-toggle").focus();
    }
  });
  narrow.addEventListener("change", () => setOpen(false));
  $("new-room").addEventListener("click", () => dialogs.newRoom());
  $("empty-new-room").addEventListener("click", () => dialogs.newRoom());
  $("browse-rooms").addEventListener("click", () => dialogs.browse());
  $("empty-browse").addEventListener("click", () => dialogs.browse());
  $("new-dm").addEventListener("click", () => dialogs.direct());
  setUpAccountMenu();
}

function setOpen(open) {
  document.body.classList.toggle("sidebar-open", open && narrow.matches);
  $("scrim").hidden = !(open && narrow.matches);
  $("sidebar-toggle").setAttribute("aria-expanded", String(open && narrow.matches));
  if (open && narrow.matches) ($("sidebar").querySelector("a[aria-current]") || $("sidebar").querySelector("a, button"))?.focus();
}

export function closeOnNarrow() {
  if (document.body.classList.contains("sidebar-open")) setOpen(false);
}

export function render() {
  const rooms = [...store.rooms.values()];
  const byName = (a, b) => roomLabel(a).localeCompare(roomLabel(b));
  const groups = rooms.filter((r) => r.kind !== "direct").sort(byName);
  const directs = rooms.filter((r) => r.kind === "direct").sort(byName);
  reconcile($("room-list"), groups, (r) => r.id, roomItem);
  reconcile($("dm-list"), directs, (r) => r.id, roomItem);
  $("rooms-empty").hidden = groups.length > 0;
  $("dms-empty").hidden = directs.length > 0;
  renderInvites();
  const unread = rooms.reduce((sum, r) => sum + r.unread, 0);
  $("sidebar-toggle").setAttribute("aria-label", unread ? `Rooms, ${unread} unread` : "Rooms");
  $("sidebar-toggle").classList.toggle("has-unread", unread > 0);
}

function roomItem(room, previous) {
  const active = room.id === store.activeId;
  const label = roomLabel(room);
  const present = room.kind === "direct" && room.other ? isPresent(room, room.other.id) : null;
  const sig = [label, room.unread, active, present, room.kind].join("|");
  if (previous && previous.dataset.sig === sig) return previous;
  const lead = room.kind === "direct"
    ? h("span", { class: "dm-avatar" }, avatar(room.other || { id: room.id, display_name: "?" }, "small"),
        h("span", { class: `presence-dot ${present ? "online" : "offline"}`, "aria-hidden": "true" }))
    : h("span", { class: "room-icon", "aria-hidden": "true" }, icon(room.kind === "private" ? "lock" : "hash"));
  const described = [];
  if (present !== null) described.push(present ? "online" : "offline");
  if (room.unread) described.push(`${room.unread} unread`);
  const link = h("a", {
      href: `#/room/${room.id}`,
      class: `room-link${active ? " active" : ""}${room.unread ? " unread" : ""}`,
      "aria-current": active ? "page" : null,
      dataset: { roomId: String(room.id) },
    },
    lead,
    h("span", { class: "room-name" }, label),
    described.length ? h("span", { class: "sr-only" }, `, ${described.join(", ")}`) : null,
    room.unread ? h("span", { class: "unread-badge", "aria-hidden": "true" }, room.unread > 99 ? "99+" : String(room.unread)) : null,
  );
  const item = previous || h("li");
  item.replaceChildren(link);
  item.dataset.sig = sig;
  return item;
}

function renderInvites() {
  const invites = store.invites.filter((i) => !store.rooms.has(i.room.id));
  $("invites-section").hidden = invites.length === 0;
  reconcile($("invite-list"), invites, (i) => i.room.id, (invite, previous) => {
    if (previous) return previous;
    const by = invite.invited_by ? `from ${invite.invited_by.display_name}` : "";
    const join = h("button", { type: "button", class: "button small primary", "aria-label": `Join ${invite.room.name}` }, "Join");
    join.addEventListener("click", async () => {
      join.disabled = true;
      try {
        await actions.joinRoom(invite.room.id);
      } catch (error) {
        toast(sentence(error.message), { kind: "error" });
        join.disabled = false;
      }
    });
    return h("li", { class: "invite" },
      h("span", { class: "room-icon", "aria-hidden": "true" }, icon(invite.room.kind === "private" ? "lock" : "hash")),
      h("span", { class: "invite-text" }, h("span", { class: "room-name" }, invite.room.name || "room"), h("span", { class: "muted invite-by" }, by)),
      join);
  });
}

// -- the account, in the top bar ------------------------------------------------------------------

export function renderAccount() {
  const me = store.me;
  $("account-avatar").replaceWith(Object.assign(avatar(me, "small"), { id: "account-avatar" }));
  $("account-name").textContent = me.display_name || me.username;
  $("account-username").textContent = `@${me.username}`;
  $("account-button").setAttribute("aria-label", `Account: ${me.display_name || me.username}`);
}

function setUpAccountMenu() {
  const button = $("account-button");
  const menu = $("account-menu");
  const items = () => [...menu.querySelectorAll("[role=menuitem]")];
  const setOpen = (open, focusFirst = false) => {
    menu.hidden = !open;
    button.setAttribute("aria-expanded", String(open));
    if (open && focusFirst) items()[0].focus();
  };
  button.addEventListener("click", () => setOpen(menu.hidden, true));
  button.addEventListener("keydown", (event) => {
    if (event.key === "ArrowDown") {
      event.preventDefault();
      setOpen(true, true);
    }
  });
  menu.addEventListener("keydown", (event) => {
    const list = items();
    const at = list.indexOf(document.activeElement);
    if (event.key === "ArrowDown" || event.key === "ArrowUp") {
      event.preventDefault();
      list[(at + (event.key === "ArrowDown" ? 1 : list.length - 1)) % list.length].focus();
    } else if (event.key === "Escape" || event.key === "Tab") {
      setOpen(false);
      if (event.key === "Escape") button.focus();
    }
  });
  document.addEventListener("click", (event) => {
    if (!menu.hidden && !menu.contains(event.target) && !button.contains(event.target)) setOpen(false);
  });
  $("open-devices").addEventListener("click", () => {
    setOpen(false);
    dialogs.devices();
  });
  $("log-out").addEventListener("click", () => {
    setOpen(false);
    actions.logout();
  });
}
