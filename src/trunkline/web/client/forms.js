// Forms: the server's errors shown where they belong. An error naming a field (invalid_input,
// username_taken...) goes under that field's input, which is marked invalid and focused; any
// other goes at the top of the form. Elements follow one naming: the input "<form>-<field>",
// its error "<form>-<field>-error", the form's error "<form>-error".

import { $, sentence } from "./dom.js";

export function clearErrors(prefix) {
  const formError = $(`${prefix}-error`);
  if (formError) {
    formError.hidden = true;
    formError.textContent = "";
  }
  for (const el of document.querySelectorAll(`[id^="${prefix}-"][id$="-error"]`)) {
    if (el === formError) continue;
    el.hidden = true;
    el.textContent = "";
    const input = $(el.id.slice(0, -"-error".length));
    if (input) input.removeAttribute("aria-invalid");
  }
}

/**
 * Show an ApiError (or SocketError) on a form. fieldFor maps the server's field names to the
 * form's own where they differ ({user: "username"}). Returns the element showing it.
 */
export function showError(prefix, error, fieldFor = {}) {
  const field = error.field ? fieldFor[error.field] || error.field : null;
  const message = error.code === "too_many_attempts" && error.retryAfter
    ? `Too many attempts: try again in ${Math.ceil(error.retryAfter / 60)} minute(s).`
    : sentence(error.message);
  const fieldError = field ? $(`${prefix}-${field}-error`) : null;
  if (fieldError) {
    fieldError.textContent = message;
    fieldError.hidden = false;
    const input = $(`${prefix}-${field}`);
    if (input) {
      input.setAttribute("aria-invalid", "true");
      input.focus();
    }
    return fieldError;
  }
  const formError = $(`${prefix}-error`);
  formError.textContent = message;
  formError.hidden = false;
  return formError;
}

/** Run a submit handler with the form's buttons disabled, once at a time. */
export async function busy(form, work) {
  if (form.dataset.busy) return;
  form.dataset.busy = "1";
  form.setAttribute("aria-busy", "true");
  const buttons = form.querySelectorAll("button[type=submit]");
  for (const button of buttons) button.disabled = true;
  try {
    await work();
  } finally {
    delete form.dataset.busy;
    form.removeAttribute("aria-busy");
    for (const button of buttons) button.disabled = false;
  }
}
