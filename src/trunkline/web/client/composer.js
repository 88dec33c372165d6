// The message box: Enter sends, Shift+Enter starts a new line, Up in an empty box edits
// one's last message. It grows with its text, tells the room one is typing (at most every
// 2.5 s), and keeps a draft per room, so switching rooms or losing the connection never
// loses what was typed. A message sent while the connection is down waits in the outbox.

import { $ } from "./dom.js";
import { typingNames, roomLabel } from "./store.js";
import * as timeline from "./timeline.js";

const MAX_CHARS = 4000;
const narrow = window.matchMedia("(max-width: 700px)");
const drafts = new Map();
let actions;
let roomId = null;

const input = () => $("composer-input");

export function init(a) {
  actions = a;
  const form = $("composer");
  if (form.dataset.ready) return;
  form.dataset.ready = "1";
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    submit();
  });
  input().addEventListener("keydown", (event) => {
    if (event.key === "Enter" && !event.shiftKey && !event.altKey && !event.ctrlKey && !event.metaKey && !event.isComposing) {
      event.preventDefault();
      submit();
    } else if (event.key === "ArrowUp" && input().value === "" && timeline.editLast()) {
      event.preventDefault();
    }
  });
  input().addEventListener("input", () => {
    grow();
    showError("");
    if (roomId !== null) drafts.set(roomId, input().value);
    if (input().value.trim()) actions.typing();
  });
}

function submit() {
  const body = input().value;
  if (!body.trim()) return;
  if (body.length > MAX_CHARS) {
    showError(`A message has at most ${MAX_CHARS} characters (this one has ${body.length}).`);
    return;
  }
  actions.send(body);
  input().value = "";
  drafts.delete(roomId);
  grow();
  input().focus();
}

function showError(text) {
  const el = $("composer-error");
  if (el.textContent === text) return;
  el.textContent = text;
  el.hidden = !text;
}

function grow() {
  const el = input();
  el.style.height = "auto";
  el.style.height = `${Math.min(el.scrollHeight, 200)}px`;
}

export function saveDraft(room) {
  if (room) drafts.set(room.id, input().value);
}

export function roomChanged(room) {
  roomId = room ? room.id : null;
  if (!room) return;
  input().value = drafts.get(room.id) || "";
  renderLabel(room);
  showError("");
  grow();
  if (!narrow.matches) input().focus();
}

/** "Message #lobby", "Message Ada": the box's placeholder and label. */
export function renderLabel(room) {
  if (!room) return;
  const label = `Message ${room.kind === "direct" ? roomLabel(room) : `#${roomLabel(room)}`}`;
  if (input().placeholder !== label) {
    input().placeholder = label;
    $("composer-label").textContent = label;
  }
}

export function renderTyping(room) {
  const el = $("typing");
  const names = room ? typingNames(room) : [];
  let text = "";
  if (names.length === 1) text = `${names[0]} is typing…`;
  else if (names.length === 2) text = `${names[0]} and ${names[1]} are typing…`;
  else if (names.length > 2) text = "Several people are typing…";
  if (el.textContent !== text) el.textContent = text;
  el.classList.toggle("active", Boolean(text));
}
