// The login screen: log in, or create an account and be logged in. The server's errors are
// shown beside the field they concern (forms.js).

import * as api from "./api.js";
import { $ } from "./dom.js";
import { busy, clearErrors, showError } from "./forms.js";

let loggedIn = () => {};
let ready = false;

/** Show the login screen (with a notice: "You are logged out."); then loggedIn(user). */
export function showAuth(onLoggedIn, notice = "") {
  loggedIn = onLoggedIn;
  if (!ready) setUp();
  $("auth-screen").hidden = false;
  const box = $("auth-notice");
  box.textContent = notice;
  box.hidden = !notice;
  selectTab("login", false);
  $("login-password").value = "";
  $("register-password").value = "";
  clearErrors("login");
  clearErrors("register");
  $("login-username").focus();
}

function setUp() {
  ready = true;
  const tabs = [$("tab-login"), $("tab-register")];
  for (const tab of tabs) {
    tab.addEventListener("click", () => selectTab(tab.id === "tab-login" ? "login" : "register"));
    tab.addEventListener("keydown", (event) => {
      if (event.key !== "ArrowLeft" && event.key !== "ArrowRight") return;
      event.preventDefault();
      const other = tabs[1 - tabs.indexOf(tab)];
      other.click();
      other.focus();
    });
  }
  $("login-form").addEventListener("submit", (event) => {
    event.preventDefault();
    busy(event.target, logIn);
  });
  $("register-form").addEventListener("submit", (event) => {
    event.preventDefault();
    busy(event.target, register);
  });
}

function selectTab(which, focus = true) {
  const login = which === "login";
  $("tab-login").setAttribute("aria-selected", String(login));
  $("tab-register").setAttribute("aria-selected", String(!login));
  $("tab-login").tabIndex = login ? 0 : -1;
  $("tab-register").tabIndex = login ? -1 : 0;
  $("login-form").hidden = !login;
  $("register-form").hidden = login;
  $("auth-title").textContent = login ? "Welcome back" : "Create your account";
  $("auth-subtitle").textContent = login ? "Log in to start chatting." : "It takes a few seconds.";
  if (focus) $(login ? "login-username" : "register-username").focus();
}

async function logIn() {
  clearErrors("login");
  const username = $("login-username").value.trim();
  const password = $("login-password").value;
  if (!username) return showError("login", { field: "username", message: "enter your username" });
  if (!password) return showError("login", { field: "password", message: "enter your password" });
  try {
    await openSession(username, password);
  } catch (error) {
    if (error.code === "invalid_credentials") {
      // A wrong password and an unknown username are one error, shown by the password.
      showError("login", { field: "password", code: error.code, message: error.message });
      $("login-password").select();
    } else showError("login", error);
  }
}

async function register() {
  clearErrors("register");
  const username = $("register-username").value.trim();
  const displayName = $("register-display_name").value.trim() || username;
  const password = $("register-password").value;
  try {
    await api.post("/accounts", { username, password, display_name: displayName });
  } catch (error) {
    showError("register", error);
    return;
  }
  try {
    await openSession(username, password);
  } catch (error) {
    showError("register", error);
  }
}

async function openSession(username, password) {
  const session = await api.post("/sessions", { username, password, device_name: api.deviceName() });
  api.saveSession(session.token, session.user);
  $("auth-screen").hidden = true;
  $("login-password").value = "";
  $("register-password").value = "";
  loggedIn(session.user);
}
