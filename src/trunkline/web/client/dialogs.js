// The dialogs (native <dialog>: modal, focus kept inside, Escape closes): create a room,
// message someone, invite someone, browse public rooms, one's devices, and confirmations.

import * as api from "./api.js";
import { $, h, formatAgo, sentence } from "./dom.js";
import { busy, clearErrors, showError } from "./forms.js";
import { icon } from "./icons.js";
import { store } from "./store.js";
import { toast } from "./notifications.js";

let actions;
let userDialogSubmit = null;
let confirmAction = null;

export function init(a) {
  actions = a;
  if (document.body.dataset.dialogsReady) return;
  document.body.dataset.dialogsReady = "1";
  for (const dialog of document.querySelectorAll("dialog")) {
    for (const cancel of dialog.querySelectorAll("[data-cancel]")) cancel.addEventListener("click", () => dialog.close());
    // A click on the backdrop (the dialog itself, outside its content) closes it.
    dialog.addEventListener("click", (event) => {
      if (event.target === dialog) dialog.close();
    });
  }
  $("new-room-form").addEventListener("submit", (event) => {
    event.preventDefault();
    busy(event.target, createRoom);
  });
  $("user-form").addEventListener("submit", (event) => {
    event.preventDefault();
    busy(event.target, () => userDialogSubmit());
  });
  $("confirm-form").addEventListener("submit", (event) => {
    event.preventDefault();
    busy(event.target, () => confirmAction());
  });
}

export function closeAll() {
  for (const dialog of document.querySelectorAll("dialog[open]")) dialog.close();
}

function open(id, focusId) {
  const dialog = $(id);
  if (!dialog.open) dialog.showModal();
  if (focusId) $(focusId).focus();
  return dialog;
}

// -- create a room ----------------------------------------------------------------------------------

export function newRoom() {
  $("new-room-form").reset();
  clearErrors("new-room");
  open("dialog-new-room", "new-room-name");
}

async function createRoom() {
  clearErrors("new-room");
  try {
    await actions.createRoom({
      name: $("new-room-name").value,
      topic: $("new-room-topic").value,
      kind: $("new-room-private").checked ? "private" : "public",
    });
    $("dialog-new-room").close();
  } catch (error) {
    showError("new-room", error);
  }
}

// -- a username: message someone, invite someone ---------------------------------------------------

function userDialog({ title, text, submitLabel, run }) {
  $("user-form").reset();
  clearErrors("user");
  $("user-dialog-title").textContent = title;
  $("user-dialog-text").textContent = text;
  $("user-submit").textContent = submitLabel;
  userDialogSubmit = async () => {
    clearErrors("user");
    const username = $("user-user").value.trim();
    if (!username) return showError("user", { field: "user", message: "enter a username" });
    try {
      await run(username);
      $("dialog-user").close();
    } catch (error) {
      const shown = error.code === "not_found" ? { field: "user", message: `nobody is called @${username.toLowerCase()}` } : error;
      showError("user", shown);
    }
  };
  open("dialog-user", "user-user");
}

export function direct() {
  userDialog({
    title: "Message someone",
    text: "Start a private conversation between the two of you.",
    submitLabel: "Open conversation",
    run: (username) => actions.openDirect(username),
  });
}

export function invite() {
  const room = actions.activeRoom();
  if (!room) return;
  userDialog({
    title: `Invite someone to ${room.name}`,
    text: room.kind === "private" ? "They will see the invitation and can join." : "They will see the invitation; anyone may join a public room.",
    submitLabel: "Invite",
    run: (username) => actions.invite(username),
  });
}

// -- public rooms -----------------------------------------------------------------------------------

let browseAfter = 0;

export function browse() {
  $("browse-list").replaceChildren();
  $("browse-error").hidden = true;
  browseAfter = 0;
  open("dialog-browse");
  loadPublic();
}

async function loadPublic() {
  let page;
  try {
    page = await api.get(`/rooms/public${api.query({ after: browseAfter, limit: 50 })}`);
  } catch (error) {
    showError("browse", error);
    return;
  }
  browseAfter = page.next_after;
  $("browse-more").hidden = page.next_after === null;
  $("browse-more").onclick = () => loadPublic();
  for (const room of page.rooms) $("browse-list").append(publicRoom(room));
  $("browse-empty").hidden = $("browse-list").childElementCount > 0;
  $("browse-list").querySelector("button")?.focus();
}

function publicRoom(room) {
  const member = store.rooms.has(room.id);
  const button = h("button", { type: "button", class: `button small${member ? "" : " primary"}`, "aria-label": `${member ? "Open" : "Join"} ${room.name}` }, member ? "Open" : "Join");
  button.addEventListener("click", async () => {
    button.disabled = true;
    try {
      if (member) location.hash = `#/room/${room.id}`;
      else await actions.joinRoom(room.id);
      $("dialog-browse").close();
    } catch (error) {
      showError("browse", error);
      button.disabled = false;
    }
  });
  return h("li", { class: "browse-item" },
    h("span", { class: "room-icon", "aria-hidden": "true" }, icon("hash")),
    h("span", { class: "browse-text" }, h("span", { class: "room-name" }, room.name), room.topic ? h("span", { class: "muted" }, room.topic) : null),
    button);
}

// -- devices ----------------------------------------------------------------------------------------

export async function devices() {
  $("device-list").replaceChildren();
  $("devices-status").textContent = "Loading…";
  clearErrors("devices");
  open("dialog-devices");
  let found;
  try {
    found = (await actions.devices()).devices;
  } catch (error) {
    showError("devices", error);
    return;
  } finally {
    $("devices-status").textContent = "";
  }
  $("device-list").replaceChildren(...found.map(deviceItem));
  $("device-list").querySelector("button")?.focus();
}

function deviceItem(device) {
  const name = device.name || "Unnamed device";
  const seen = device.current ? "This device" : `Last active ${formatAgo(new Date(device.last_seen_at))}`;
  const button = h("button", { type: "button", class: "button small danger", "aria-label": device.current ? "Log out this device" : `Log out ${name}` }, "Log out");
  button.addEventListener("click", async () => {
    button.disabled = true;
    try {
      await actions.revokeDevice(device.id, device.current);
      if (!device.current) {
        button.closest("li").remove();
        toast(`${name} is logged out.`);
        $("device-list").querySelector("button")?.focus();
      }
    } catch (error) {
      showError("devices", error);
      button.disabled = false;
    }
  });
  return h("li", { class: `device${device.current ? " current" : ""}`, dataset: { deviceId: String(device.id) } },
    h("span", { class: "device-icon", "aria-hidden": "true" }, icon("devices")),
    h("span", { class: "device-text" },
      h("span", { class: "device-name" }, name, device.current ? h("span", { class: "tag" }, "this device") : null),
      h("span", { class: "muted" }, [seen, device.address].filter(Boolean).join(" · "))),
    button);
}

// -- confirmations ----------------------------------------------------------------------------------

/**
 * Ask before doing something: action(durationS) runs on OK; its error is shown in the dialog,
 * which stays open. duration: offer a duration (ban, mute): seconds, or null for no end.
 * then(): after it is done and the dialog closed (to put the focus somewhere useful).
 */
export function confirm({ title, text, ok, danger = true, duration = false, action, then = null }) {
  $("confirm-title").textContent = title;
  $("confirm-text").textContent = text;
  $("confirm-ok").textContent = ok;
  $("confirm-ok").className = `button ${danger ? "danger" : "primary"}`;
  $("confirm-duration-field").hidden = !duration;
  $("confirm-duration").value = "";
  clearErrors("confirm");
  confirmAction = async () => {
    const value = $("confirm-duration").value;
    try {
      await action(duration && value ? Number(value) : null);
      $("dialog-confirm").close();
      then?.();
    } catch (error) {
      showError("confirm", { message: sentence(error.message) });
    }
  };
  // Focus the least harmful choice: the duration when there is one, else Cancel.
  open("dialog-confirm");
  (duration ? $("confirm-duration") : $("dialog-confirm").querySelector("[data-cancel]")).focus();
}
