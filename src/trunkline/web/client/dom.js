// Building the page: every piece of user data goes in as text (text nodes, textContent),
// never as HTML, so nothing a user types can become markup. Links are made here only, from
// http and https URLs, and open without handing this page to the site they lead to.

export const $ = (id) => document.getElementById(id);

/** An element: h("li", {class: "x", "aria-label": "y", onClick: f}, child, "text"...). */
export function h(tag, props = {}, ...children) {
  const el = document.createElement(tag);
  for (const [key, value] of Object.entries(props)) {
    if (value === undefined || value === null || value === false) continue;
    if (key === "class") el.className = value;
    else if (key === "text") el.textContent = value;
    else if (key === "dataset") Object.assign(el.dataset, value);
    else if (key.startsWith("on") && typeof value === "function") {
      el.addEventListener(key.slice(2).toLowerCase(), value);
    } else el.setAttribute(key, value === true ? "" : String(value));
  }
  appendAll(el, children);
  return el;
}

function appendAll(el, children) {
  for (const child of children.flat()) {
    if (child === null || child === undefined || child === false) continue;
    el.append(typeof child === "string" ? document.createTextNode(child) : child);
  }
}

/** Show or hide an element (the hidden attribute). */
export function show(el, visible = true) {
  el.hidden = !visible;
}

// A URL runs to the first space or angle bracket; trailing punctuation is the sentence's.
const URL_PATTERN = /\bhttps?:\/\/[^\s<>"'`]+/gi;
const MENTION_PATTERN = /(?<![\w@])@([a-z0-9][a-z0-9_.-]*)/gi;
const TRAILING = ".,;:!?'\")]}>";

/** A URL without the sentence's punctuation after it; a ")" closing a "(" of the URL stays. */
function trimUrl(text) {
  let end = text.length;
  while (end > 0 && TRAILING.includes(text[end - 1])) {
    const head = text.slice(0, end);
    if (text[end - 1] === ")" && count(head, "(") >= count(head, ")")) break;
    end -= 1;
  }
  return text.slice(0, end);
}

const count = (text, char) => text.split(char).length - 1;

/** A message body as nodes: text, safe links and @mentions; line breaks stay (CSS). */
export function richText(body, { me } = {}) {
  const fragment = document.createDocumentFragment();
  let at = 0;
  for (const token of tokens(body)) {
    if (token.start > at) fragment.append(document.createTextNode(body.slice(at, token.start)));
    if (token.kind === "link") fragment.append(safeLink(token.text));
    else {
      const name = token.text.slice(1).toLowerCase();
      fragment.append(h("span", { class: name === me ? "mention me" : "mention" }, token.text));
    }
    at = token.end;
  }
  if (at < body.length) fragment.append(document.createTextNode(body.slice(at)));
  return fragment;
}

function tokens(body) {
  const found = [];
  for (const match of body.matchAll(URL_PATTERN)) {
    const text = trimUrl(match[0]);
    if (isSafeUrl(text)) {
      found.push({ kind: "link", text, start: match.index, end: match.index + text.length });
    }
  }
  for (const match of body.matchAll(MENTION_PATTERN)) {
    const start = match.index;
    const end = start + match[0].replace(/[.-]+$/, "").length;
    if (end - start < 4) continue; // a username has at least 3 characters
    if (found.some((t) => t.kind === "link" && start < t.end && end > t.start)) continue;
    found.push({ kind: "mention", text: body.slice(start, end), start, end });
  }
  return found.sort((a, b) => a.start - b.start);
}

/** Whether a URL may become a link: http or https, and parsable. */
export function isSafeUrl(text) {
  try {
    const url = new URL(text);
    return url.protocol === "http:" || url.protocol === "https:";
  } catch {
    return false;
  }
}

function safeLink(text) {
  const url = new URL(text);
  return h("a", { href: url.href, target: "_blank", rel: "noopener noreferrer" }, text);
}

/**
 * Update a list's children to one element per item, in order, reusing each item's element
 * (by key) so that focus, selection and scroll stay where they were.
 * render(item, previous) returns the element: the previous one, updated or not, or a new one.
 */
export function reconcile(parent, items, keyOf, render) {
  const previous = parent.keyed || new Map();
  const next = new Map();
  let cursor = parent.firstChild;
  for (const item of items) {
    const key = keyOf(item);
    const el = render(item, previous.get(key) || null);
    next.set(key, el);
    if (el === cursor) cursor = cursor.nextSibling;
    else parent.insertBefore(el, cursor);
  }
  for (const [key, el] of previous) if (next.get(key) !== el) el.remove();
  parent.keyed = next;
}

// -- formatting -------------------------------------------------------------------------------

const timeFormat = new Intl.DateTimeFormat(undefined, { hour: "numeric", minute: "2-digit" });
const dayFormat = new Intl.DateTimeFormat(undefined, { weekday: "long", month: "long", day: "numeric" });
const fullFormat = new Intl.DateTimeFormat(undefined, { dateStyle: "medium", timeStyle: "short" });

export const formatTime = (date) => timeFormat.format(date);
export const formatFull = (date) => fullFormat.format(date);

export function formatDay(date, now = new Date()) {
  const day = (d) => new Date(d.getFullYear(), d.getMonth(), d.getDate()).getTime();
  const diff = Math.round((day(now) - day(date)) / 86_400_000);
  if (diff === 0) return "Today";
  if (diff === 1) return "Yesterday";
  return dayFormat.format(date);
}

export function dayKey(date) {
  return `${date.getFullYear()}-${date.getMonth()}-${date.getDate()}`;
}

/** "5 minutes ago", "yesterday"... */
export function formatAgo(date, now = new Date()) {
  const seconds = Math.round((date.getTime() - now.getTime()) / 1000);
  const relative = new Intl.RelativeTimeFormat(undefined, { numeric: "auto" });
  for (const [unit, size] of [["day", 86400], ["hour", 3600], ["minute", 60]]) {
    if (Math.abs(seconds) >= size) return relative.format(Math.round(seconds / size), unit);
  }
  return "just now";
}

/** Up to two initials of a name, for an avatar. */
export function initials(name) {
  const words = (name || "?").trim().split(/\s+/).filter(Boolean);
  const letters = words.length > 1 ? words[0][0] + words[words.length - 1][0] : (words[0] || "?").slice(0, 2);
  return letters.toUpperCase();
}

/** An avatar: initials on a colour chosen by the user's id. */
export function avatar(user, size = "") {
  const hue = `hue-${(Number(user?.id) || 0) % 8}`;
  return h("span", { class: `avatar ${size} ${hue}`.trim(), "aria-hidden": "true" }, initials(user?.display_name || user?.username));
}

/** "Invalid input" -> capitalised, ending with a period: a server message for people. */
export function sentence(message) {
  const text = String(message || "Something went wrong").trim();
  const first = text.charAt(0).toUpperCase() + text.slice(1);
  return /[.!?]$/.test(first) ? first : `${first}.`;
}
