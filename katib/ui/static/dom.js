// Small DOM helpers shared by the pages: element building, ages, the banner, the dialog.

export function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs || {})) {
    if (value === null || value === undefined || value === false) continue;
    if (key === "class") el.className = value;
    else if (key === "text") el.textContent = value;
    else if (key.startsWith("on")) el.addEventListener(key.slice(2), value);
    else if (key === "dataset") Object.assign(el.dataset, value);
    else el.setAttribute(key, value === true ? "" : value);
  }
  for (const child of children.flat(Infinity)) {
    if (child === null || child === undefined || child === false) continue;
    el.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return el;
}

export function replace(el, ...children) {
  el.replaceChildren(...children.flat(Infinity).filter((c) => c !== null && c !== undefined && c !== false));
  return el;
}

// "12s", "5m", "3h", "2d" since an RFC 3339 time.
export function age(iso, now = Date.now()) {
  if (!iso) return "";
  const then = Date.parse(iso);
  if (Number.isNaN(then)) return "";
  const s = Math.max(0, Math.floor((now - then) / 1000));
  if (s < 60) return `${s}s`;
  if (s < 3600) return `${Math.floor(s / 60)}m`;
  if (s < 86400) return `${Math.floor(s / 3600)}h`;
  return `${Math.floor(s / 86400)}d`;
}

export function badge(status) {
  return h("span", { class: `badge state-${String(status || "").toLowerCase()}`, text: status || "" });
}

export function link(href, text) {
  return h("a", { href }, text);
}

export function experimentHref(ns, name) {
  return `/experiments/${encodeURIComponent(ns)}/${encodeURIComponent(name)}`;
}

export function trialHref(ns, name, trial) {
  return `${experimentHref(ns, name)}/trials/${encodeURIComponent(trial)}`;
}

// The page-wide message: store or cluster unreachable, experiment gone, ...
export function banner(message, kind = "error") {
  const el = document.getElementById("banner");
  if (!message) {
    el.hidden = true;
    el.textContent = "";
    return;
  }
  el.className = `banner ${kind}`;
  el.textContent = message;
  el.hidden = false;
}

// A confirmation dialog: resolves true when confirmed. ``body`` is nodes or text;
// ``action(ok)`` may run on confirm and throw an ApiError whose field errors are shown in the
// dialog, which then stays open.
export function confirmDialog({ title, body, ok = "OK", danger = false, action = null }) {
  const dialog = document.getElementById("confirm");
  const okButton = document.getElementById("confirm-ok");
  const errors = document.getElementById("confirm-errors");
  document.getElementById("confirm-title").textContent = title;
  replace(document.getElementById("confirm-body"), ...(Array.isArray(body) ? body : [body]));
  okButton.textContent = ok;
  okButton.className = danger ? "danger" : "primary";
  okButton.disabled = false;
  errors.hidden = true;
  errors.replaceChildren();
  return new Promise((resolve) => {
    const onClose = () => {
      dialog.removeEventListener("close", onClose);
      resolve(dialog.returnValue === "ok");
    };
    okButton.onclick = async (event) => {
      if (!action) return; // the form closes the dialog with returnValue "ok"
      event.preventDefault();
      okButton.disabled = true;
      try {
        await action();
        dialog.close("ok");
      } catch (err) {
        showErrors(errors, err);
        okButton.disabled = false;
      }
    };
    dialog.addEventListener("close", onClose);
    dialog.returnValue = "";
    dialog.showModal();
  });
}

// An ApiError's message and field errors as a list.
export function showErrors(list, err) {
  const items = err && err.errors && err.errors.length
    ? err.errors.map((e) => e.text || (e.path ? `${e.path}: ${e.message}` : e.message))
    : [err && err.message ? err.message : String(err)];
  replace(list, items.map((text) => h("li", { text })));
  list.hidden = false;
}
