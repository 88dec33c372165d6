// The chat server's HTTP API (/api/v1, see /docs) and the session: the token of a login,
// kept in localStorage so that a reload stays logged in.

const SESSION_KEY = "trunkline.session";
const PREFIX = "/api/v1";

/** An error of the API, in its shape: code, message, and field/reason when they apply. */
export class ApiError extends Error {
  constructor(status, body) {
    const error = (body && body.error) || {};
    super(error.message || `request failed (${status})`);
    this.status = status;
    this.code = error.code || (status === 0 ? "network" : "error");
    this.field = error.field || null;
    this.reason = error.reason || null;
    this.retry = Boolean(error.retry);
    this.retryAfter = error.retry_after_s ?? null;
  }
}

let session = readSession();
let onUnauthenticated = () => {};

function readSession() {
  try {
    const saved = JSON.parse(localStorage.getItem(SESSION_KEY) || "null");
    return saved && typeof saved.token === "string" ? saved : null;
  } catch {
    return null;
  }
}

export const currentSession = () => session;

export function saveSession(token, user) {
  session = { token, user };
  localStorage.setItem(SESSION_KEY, JSON.stringify(session));
}

export function clearSession() {
  session = null;
  localStorage.removeItem(SESSION_KEY);
}

/** Called when the server no longer takes the token (revoked, expired): back to login. */
export function whenUnauthenticated(handler) {
  onUnauthenticated = handler;
}

/** Another tab logged in or out: follow it. */
window.addEventListener("storage", (event) => {
  if (event.key === SESSION_KEY) session = readSession();
});

/**
 * One request; the JSON answer (null for 204). Throws ApiError: the server's, or code
 * "network" when it could not be reached.
 */
export async function request(method, path, body) {
  const headers = { Accept: "application/json" };
  if (body !== undefined) headers["Content-Type"] = "application/json";
  const token = session?.token;
  if (token) headers.Authorization = `Bearer ${token}`;
  let response;
  try {
    response = await fetch(PREFIX + path, {
      method,
      headers,
      body: body === undefined ? undefined : JSON.stringify(body),
      cache: "no-store",
    });
  } catch {
    throw new ApiError(0, { error: { message: "The server cannot be reached.", retry: true } });
  }
  if (response.status === 204) return null;
  let payload = null;
  try {
    payload = await response.json();
  } catch {
    payload = null;
  }
  if (response.ok) return payload;
  const error = new ApiError(response.status, payload);
  if (response.status === 401 && error.code === "unauthenticated" && token && token === session?.token) {
    onUnauthenticated(error);
  }
  throw error;
}

export const get = (path) => request("GET", path);
export const post = (path, body) => request("POST", path, body ?? {});
export const put = (path, body) => request("PUT", path, body);
export const del = (path) => request("DELETE", path);

export const query = (params) => {
  const search = new URLSearchParams();
  for (const [key, value] of Object.entries(params)) {
    if (value !== undefined && value !== null) search.set(key, String(value));
  }
  const text = search.toString();
  return text ? `?${text}` : "";
};

/** A name for this device, from the browser: "Chrome on Linux". */
export function deviceName() {
  const agent = navigator.userAgent;
  const browser = /Edg\//.test(agent) ? "Edge" : /Firefox\//.test(agent) ? "Firefox"
    : /Chrom(e|ium)\//.test(agent) ? "Chrome" : /Safari\//.test(agent) ? "Safari" : "Browser";
  const system = /Android/.test(agent) ? "Android" : /iPhone|iPad/.test(agent) ? "iOS"
    : /Mac OS X/.test(agent) ? "macOS" : /Windows/.test(agent) ? "Windows"
    : /Linux/.test(agent) ? "Linux" : "";
  return system ? `${browser} on ${system}` : browser;
}
