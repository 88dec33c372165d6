// The page's entry point: log in (or find the session kept from last time), then chat.

import * as api from "./api.js";
import { showAuth } from "./auth.js";
import { startChat, sessionEnded } from "./chat.js";
import { decorateIcons } from "./icons.js";

decorateIcons();

// The skip link moves focus to the message box (the address keeps naming the room).
document.querySelector(".skip-link").addEventListener("click", (event) => {
  event.preventDefault();
  const box = document.getElementById("composer-input");
  if (box.offsetParent !== null) box.focus();
  else document.querySelector("#sidebar a, #room-empty button")?.focus();
});
api.whenUnauthenticated(() => sessionEnded("Your session has ended. Please log in again."));

function chat(user) {
  startChat(user, (notice) => showAuth(chat, notice));
}

async function boot() {
  const session = api.currentSession();
  if (!session) return showAuth(chat);
  try {
    const me = await api.get("/me");
    api.saveSession(session.token, me.user);
    chat(me.user);
  } catch (error) {
    if (error.code === "network" && session.user) chat(session.user); // the socket will come back
    else {
      api.clearSession();
      showAuth(chat, error.status === 401 ? "Your session has ended. Please log in again." : "");
    }
  }
}

boot().finally(() => document.body.removeAttribute("aria-busy"));
