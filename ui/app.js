// Reelforge web UI: one script, no framework, no build step. The page is a shell; each
// route (#/tasks, #/new, …) renders into <main> from the HTTP API, called with the browser
// session's cookie and its CSRF token (never a token in storage).
"use strict";

const S = {
  user: null,
  csrf: null,
  profiles: null, // [{name, options: JSON Schema}]
  uploads: [], // Upload objects of this page's life
  closers: [], // what to stop when the route changes (event streams)
};

// --- DOM ---------------------------------------------------------------------------------

/** An element: h("a", {href: "#/x"}, "text", child…); `on*` attributes become listeners. */
function h(tag, attrs, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === null || v === undefined || v === false) continue;
    if (k.startsWith("on")) el.addEventListener(k.slice(2), v);
    else if (k === "text") el.textContent = v;
    else el.setAttribute(k, v === true ? "" : v);
  }
  for (const c of children.flat(Infinity)) {
    if (c !== null && c !== undefined && c !== false) el.append(c instanceof Node ? c : String(c));
  }
  return el;
}

function main() {
  return document.getElementById("main");
}

function show(...nodes) {
  main().replaceChildren(...nodes.filter((n) => n !== null && n !== undefined));
}

function alertBox(message) {
  return h("p", { class: "alert", role: "alert" }, message);
}

function field(label, input, hint) {
  const id = input.id || "f-" + label.replace(/\W+/g, "-") + "-" + Math.random().toString(36).slice(2, 7);
  input.id = id;
  return h("div", { class: "field" }, h("label", { for: id }, label), input,
    hint ? h("span", { class: "hint" }, hint) : null);
}

/** A checkbox with its label after it. */
function checkbox(label, input) {
  input.id = input.id || "c-" + Math.random().toString(36).slice(2, 9);
  return h("div", { class: "check" }, input, h("label", { for: input.id }, label));
}

/** A server message as a sentence: a capital first letter and a full stop. */
function sentence(text) {
  const s = String(text || "").trim();
  if (!s) return s;
  return s[0].toUpperCase() + s.slice(1) + (/[.!?:]$/.test(s) ? "" : ".");
}

/** A secret shown once: read-only, with a Copy button and the warning. */
function secretField(label, secret, hint) {
  const input = h("input", { type: "text", readonly: true, value: secret, class: "secret",
    spellcheck: "false", autocomplete: "off" });
  input.id = "s-" + Math.random().toString(36).slice(2, 9);
  const copy = h("button", { type: "button", class: "secondary", onclick: async () => {
    input.select();
    try { await navigator.clipboard.writeText(secret); copy.textContent = "Copied"; }
    catch { copy.textContent = "Selected: copy it"; }
  } }, "Copy");
  return h("div", { class: "field secret-box" }, h("label", { for: input.id }, label),
    h("div", { class: "inline" }, input, copy), h("span", { class: "hint" }, hint));
}

function bytes(n) {
  if (n === null || n === undefined) return "";
  const units = ["B", "KB", "MB", "GB", "TB"];
  let i = 0;
  while (n >= 1000 && i < units.length - 1) { n /= 1000; i++; }
  return (i ? n.toFixed(1) : n) + " " + units[i];
}

function duration(seconds) {
  if (!isFinite(seconds)) return "";
  seconds = Math.max(0, Math.round(seconds));
  const m = Math.floor(seconds / 60), s = seconds % 60;
  return m ? `${m} min ${s} s` : `${s} s`;
}

// --- API ---------------------------------------------------------------------------------

class ApiError extends Error {
  constructor(status, code, message) {
    super(message);
    this.status = status;
    this.code = code;
  }
}

/** fetch with the session: unsafe methods carry the CSRF token. */
function request(method, path, { body, headers = {} } = {}) {
  const init = { method, headers: { ...headers }, credentials: "same-origin" };
  if (!["GET", "HEAD"].includes(method) && S.csrf) init.headers["X-CSRF-Token"] = S.csrf;
  if (body !== undefined) {
    init.headers["Content-Type"] = "application/json";
    init.body = JSON.stringify(body);
  }
  return fetch(path, init);
}

async function call(method, path, body) {
  const r = await request(method, path, { body });
  return answer(r);
}

async function answer(r) {
  let data = null;
  try { data = r.status === 204 ? null : await r.json(); } catch { data = null; }
  if (!r.ok) {
    if (r.status === 401 && S.user) sessionEnded();
    throw new ApiError(r.status, data && data.error, (data && data.message) || r.statusText);
  }
  return data;
}

function sessionEnded() {
  S.user = null;
  S.csrf = null;
  // Back here after logging in again.
  if (!location.hash.startsWith("#/login")) S.returnTo = location.hash;
  go("#/login");
}

function adopt(session) {
  S.user = session ? session.user : null;
  S.csrf = session ? session.csrfToken : null;
  document.getElementById("nav").hidden = !S.user;
  document.getElementById("nav-admin").hidden = !(S.user && S.user.admin);
}

// --- routing -----------------------------------------------------------------------------

function go(hash) {
  if (location.hash === hash) route();
  else location.hash = hash;
}

/** Pages that work without a session (every other one asks to log in first, in place). */
const PUBLIC = ["/signup", "/forgot"];

function route() {
  for (const close of S.closers.splice(0)) close();
  const path = location.hash.replace(/^#/, "") || "/tasks";
  document.getElementById("nav").hidden = !S.user;
  const reset = path.match(/^\/reset\/([^/]+)$/);
  if (reset) return resetPage(decodeURIComponent(reset[1]));
  if (!S.user && !PUBLIC.includes(path)) return loginPage();
  const task = path.match(/^\/tasks\/([0-9a-fA-F-]{36})$/);
  if (task) return taskPage(task[1]);
  const owner = path.match(/^\/admin\/users\/([0-9a-fA-F-]{36})(?:\/tasks\/([0-9a-fA-F-]{36}))?$/);
  if (owner) return owner[2] ? adminTaskPage(owner[1], owner[2]) : adminUserPage(owner[1]);
  switch (path) {
    case "/signup": return signupPage();
    case "/forgot": return forgotPage();
    case "/login": return S.user ? afterLogin() : loginPage();
    case "/new": return newTaskPage();
    case "/account": return accountPage();
    case "/admin": return adminPage();
    default: return tasksPage();
  }
}

/** Where a log-in leads: `next` of the query (an e-mail's `/go/…` download link sent the
 * browser here), else the page that asked for the log-in (the log-in form is shown in its
 * place, or the session ended there), else the task list. */
function afterLogin() {
  const next = new URLSearchParams(location.search).get("next");
  if (next && next.startsWith("/go/")) return location.assign(next);
  const path = location.hash.replace(/^#/, "");
  const back = S.returnTo;
  S.returnTo = null;
  if (path && path !== "/login" && !PUBLIC.includes(path)) return route();
  go(back && back !== location.hash ? back : "#/tasks");
}

function focusHeading() {
  const heading = main().querySelector("h1");
  if (heading) { heading.tabIndex = -1; heading.focus({ preventScroll: true }); }
}

// --- accounts ----------------------------------------------------------------------------

function loginPage() {
  const login = h("input", { type: "text", name: "login", autocomplete: "username", required: true });
  const password = h("input", { type: "password", name: "password", autocomplete: "current-password", required: true });
  const status = h("div");
  const form = h("form", { class: "card narrow", onsubmit: async (e) => {
    e.preventDefault();
    status.replaceChildren();
    try {
      adopt(await call("POST", "/api/session", credentials(login.value, password.value)));
      afterLogin();
    } catch (err) {
      status.replaceChildren(alertBox(err.message));
    }
  } },
  h("h1", {}, "Log in"),
  /^\/go\//.test(new URLSearchParams(location.search).get("next") || "")
    ? h("p", { class: "hint" }, "Log in to open the file of your e-mail.") : null,
  field("Username or e-mail", login),
  field("Password", password),
  status,
  h("button", { type: "submit" }, "Log in"),
  h("p", {}, h("a", { href: "#/forgot" }, "Forgot password?")),
  h("p", {}, "No account? ", h("a", { href: "#/signup" }, "Sign up")));
  show(form);
  login.focus();
}

const PASSWORD_RULE = "At least 8 characters, with an upper-case and a lower-case letter and a digit.";

/** A log-in body: by e-mail when the name has an `@`, else by username. */
function credentials(name, password) {
  const login = name.trim();
  return login.includes("@") ? { email: login, password } : { username: login, password };
}

/** The signup form, as the server's `REELFORGE_SIGNUP` allows: open, with an invite code
 * (taken from an invite link's `?invite=`), or closed. */
async function signupPage() {
  let mode = "open";
  try { mode = (await call("GET", "/api/auth/signup")).mode; } catch { /* the form says why on submit */ }
  if (mode === "closed") {
    show(h("div", { class: "card narrow" }, h("h1", {}, "Sign up"),
      h("p", {}, "Signing up is closed on this server. Ask its admin for an account."),
      h("p", {}, "Have an account? ", h("a", { href: "#/login" }, "Log in"))));
    return focusHeading();
  }
  const username = h("input", { type: "text", autocomplete: "username", required: true });
  const email = h("input", { type: "email", autocomplete: "email", required: true });
  const password = h("input", { type: "password", autocomplete: "new-password", required: true });
  const again = h("input", { type: "password", autocomplete: "new-password", required: true });
  const invite = h("input", { type: "text", autocomplete: "off", spellcheck: "false", required: true,
    value: new URLSearchParams(location.search).get("invite") || "" });
  const status = h("div");
  const form = h("form", { class: "card narrow", onsubmit: async (e) => {
    e.preventDefault();
    status.replaceChildren();
    const body = {
      username: username.value.trim(), email: email.value.trim(),
      password: password.value, password_2: again.value,
    };
    if (mode === "invite") body.invite = invite.value.trim();
    try {
      await call("POST", "/api/auth/signup", body);
      adopt(await call("POST", "/api/session", credentials(username.value, password.value)));
      go("#/tasks");
    } catch (err) {
      status.replaceChildren(alertBox(err.message));
    }
  } },
  h("h1", {}, "Sign up"),
  mode === "invite" ? field("Invite code", invite, "Signing up here needs a code from an admin.") : null,
  field("Username", username),
  field("E-mail", email),
  field("Password", password, PASSWORD_RULE),
  field("Repeat password", again),
  status,
  h("button", { type: "submit" }, "Sign up"),
  h("p", {}, "Have an account? ", h("a", { href: "#/login" }, "Log in")));
  show(form);
  (mode === "invite" && !invite.value ? invite : username).focus();
}

function forgotPage() {
  const email = h("input", { type: "email", autocomplete: "email", required: true });
  const status = h("div");
  const send = h("button", { type: "submit" }, "Send the link");
  const form = h("form", { class: "card narrow", onsubmit: async (e) => {
    e.preventDefault();
    status.replaceChildren();
    send.disabled = true;
    try {
      const r = await call("POST", "/api/password-reset", { email: email.value.trim() });
      status.replaceChildren(h("p", { class: "ok", role: "status" }, sentence(r.message)));
    } catch (err) {
      status.replaceChildren(alertBox(err.code === "email_unavailable"
        ? "This server cannot send e-mail, so it cannot reset your password. Ask its operator to set a new one."
        : sentence(err.message)));
    } finally { send.disabled = false; }
  } },
  h("h1", {}, "Forgot password"),
  h("p", {}, "We e-mail a link to choose a new password to the address of your account."),
  field("E-mail", email),
  status,
  send,
  h("p", {}, h("a", { href: "#/login" }, "Back to log in")));
  show(form);
  focusHeading();
}

const RESET_ERRORS = {
  invalid_reset_token: "This link is unknown, already used or expired (a link works for 30 minutes, once).",
  password_mismatch: "The two passwords are not the same.",
};

function resetPage(token) {
  const password = h("input", { type: "password", autocomplete: "new-password", required: true });
  const again = h("input", { type: "password", autocomplete: "new-password", required: true });
  const status = h("div");
  const form = h("form", { class: "card narrow", onsubmit: async (e) => {
    e.preventDefault();
    status.replaceChildren();
    try {
      const r = await call("POST", "/api/password-reset/confirm", {
        token, password: password.value, passwordConfirmation: again.value,
      });
      adopt(null); // every session of the account has ended
      show(h("div", { class: "card narrow" }, h("h1", {}, "Password changed"),
        h("p", { role: "status" }, sentence(r.message)),
        h("a", { class: "button", href: "#/login" }, "Log in")));
      focusHeading();
    } catch (err) {
      const words = RESET_ERRORS[err.code] || sentence(err.message);
      status.replaceChildren(alertBox(words));
      if (err.code === "invalid_reset_token") {
        status.append(h("p", {}, h("a", { href: "#/forgot" }, "Ask for a new link")));
      }
    }
  } },
  h("h1", {}, "Choose a new password"),
  field("New password", password, PASSWORD_RULE),
  field("Repeat new password", again),
  status,
  h("button", { type: "submit" }, "Set password"),
  h("p", {}, h("a", { href: "#/login" }, "Back to log in")));
  show(form);
  focusHeading();
}

/** "7 days", "90 minutes": a lifetime in words. */
function keptFor(seconds) {
  const units = [["day", 86400], ["hour", 3600], ["minute", 60]];
  for (const [name, size] of units) {
    if (seconds >= size && seconds % size === 0) {
      const n = seconds / size;
      return `${n} ${name}${n === 1 ? "" : "s"}`;
    }
  }
  return `${seconds} seconds`;
}

/** What the user stores, against the quota, and how long files are kept. */
function storageSection() {
  const body = h("div", { "data-testid": "storage" }, h("p", { class: "hint" }, "Loading…"));
  call("GET", "/api/me").then(({ usage: u }) => {
    const parts = [];
    if (u.quota_bytes) {
      parts.push(h("p", {}, `${bytes(u.stored_bytes)} of ${bytes(u.quota_bytes)} used.`),
        h("progress", { max: u.quota_bytes, value: Math.min(u.stored_bytes, u.quota_bytes), "aria-label": "Storage used" }));
      if (u.stored_bytes >= u.quota_bytes) {
        parts.push(h("p", { class: "warn" }, "You are at your quota: new tasks are refused until you delete some."));
      }
    } else {
      parts.push(h("p", {}, `${bytes(u.stored_bytes)} stored (no quota on this server).`));
    }
    parts.push(h("p", { class: "hint" }, u.retention_seconds
      ? `Finished tasks' files are removed ${keptFor(u.retention_seconds)} after they finish; the tasks stay listed.`
      : "Finished tasks' files are kept until you delete the task."));
    body.replaceChildren(...parts);
  }).catch((err) => body.replaceChildren(alertBox(err.message)));
  return section("Storage", body);
}

function accountPage() {
  show(h("div", { class: "account" },
    h("h1", {}, "Account"),
    h("p", {}, "Logged in as ", h("strong", {}, S.user.username), " (", S.user.email, ")."),
    storageSection(),
    passwordSection(),
    emailSection(),
    webhooksSection(),
    defaultSecretSection(),
    keysSection()));
  focusHeading();
}

/** A card with a heading that names it (a landmark region). */
function section(title, ...children) {
  const id = "h-" + title.replace(/\W+/g, "-").toLowerCase();
  return h("section", { class: "card", "aria-labelledby": id }, h("h2", { id }, title), ...children);
}

function passwordSection() {
  const current = h("input", { type: "password", autocomplete: "current-password", required: true });
  const next = h("input", { type: "password", autocomplete: "new-password", required: true });
  const status = h("div");
  const form = h("form", { onsubmit: async (e) => {
    e.preventDefault();
    status.replaceChildren();
    try {
      const r = await call("POST", "/api/account/password", {
        currentPassword: current.value, newPassword: next.value,
      });
      if (r && r.session) adopt(r.session);
      form.reset();
      status.replaceChildren(h("p", { class: "ok", role: "status" }, "Password changed"));
    } catch (err) {
      status.replaceChildren(alertBox(err.message));
    }
  } },
  field("Current password", current),
  field("New password", next, "Every other session of this account is logged out."),
  status,
  h("button", { type: "submit" }, "Change password"));
  return section("Change password", form);
}

function emailSection() {
  const success = h("input", { type: "checkbox", disabled: true });
  const failure = h("input", { type: "checkbox", disabled: true });
  const note = h("div");
  const status = h("div");
  const load = async () => {
    try {
      const r = await call("GET", "/api/account/notifications");
      success.checked = r.email.on_success;
      failure.checked = r.email.on_failure;
      success.disabled = failure.disabled = !r.email_available;
      note.replaceChildren(r.email_available ? "" : h("p", { class: "warn" },
        "This server sends no e-mail (no SMTP server is set up), so you get none whatever is chosen here."));
    } catch (err) { status.replaceChildren(alertBox(err.message)); }
  };
  const save = async () => {
    status.replaceChildren();
    try {
      await call("PUT", "/api/account/notifications", {
        email: { on_success: success.checked, on_failure: failure.checked },
      });
      status.replaceChildren(h("p", { class: "ok", role: "status" }, "Saved."));
    } catch (err) {
      status.replaceChildren(alertBox(err.message));
      load();
    }
  };
  success.addEventListener("change", save);
  failure.addEventListener("change", save);
  load();
  return section("E-mail notifications",
    h("p", { class: "hint" }, `E-mails go to ${S.user.email}.`),
    note,
    h("fieldset", {}, h("legend", {}, "E-mail me"),
      checkbox("when a task succeeds", success),
      checkbox("when a task fails or is cancelled", failure)),
    status);
}

// --- webhooks ----------------------------------------------------------------------------

const EVENTS = ["task.started", "task.succeeded", "task.failed", "task.cancelled"]; // the server's order
const SHOWN_ONCE = "Copy it now: it will not be shown again.";

/** Four event checkboxes, the `selected` ones checked. */
function eventChoice(selected) {
  const boxes = EVENTS.map((e) => h("input", { type: "checkbox", value: e, checked: selected.includes(e) }));
  return {
    box: h("fieldset", { class: "events" }, h("legend", {}, "Events"), boxes.map((b) => checkbox(b.value, b))),
    values: () => boxes.filter((b) => b.checked).map((b) => b.value),
  };
}

/** An API error in words, for the webhook forms. */
function webhookError(err) {
  const detail = sentence(String(err.message || "").replace(/^(url|webhook_url): /, "").replace(/^URL not allowed: /, ""));
  if (err.code === "url_not_allowed") {
    return `This URL is not allowed: webhooks go only to public addresses. ${detail}`;
  }
  if (err.code === "endpoint_disabled") return "This endpoint is disabled: enable it to send it events.";
  return detail || `The server answered ${err.status}.`;
}

function when(at) {
  return at ? new Date(at).toLocaleString() : "";
}

/** Calls `step` every `ms` until it returns true, `times` times at most, or the page changes. */
function every(ms, times, step) {
  let timer = null;
  let stopped = false;
  const tick = async () => {
    if (stopped || times-- <= 0) return;
    let done = false;
    try { done = await step(); } catch { done = true; }
    if (!done && !stopped) timer = setTimeout(tick, ms);
  };
  const stop = () => { stopped = true; clearTimeout(timer); };
  S.closers.push(stop);
  timer = setTimeout(tick, ms);
  return stop;
}

function webhooksSection() {
  const list = h("ul", { class: "endpoints", "aria-label": "Webhook endpoints" });
  const empty = h("p", { class: "hint" });
  const url = h("input", { type: "url", required: true, placeholder: "https://example.com/hooks/reelforge" });
  const events = eventChoice(EVENTS);
  const status = h("div");
  const counted = () => {
    empty.textContent = list.children.length ? "" : "No endpoints yet.";
  };
  const add = (ep) => list.append(endpointItem(ep, counted).li);
  const form = h("form", { class: "add-endpoint", onsubmit: async (e) => {
    e.preventDefault();
    status.replaceChildren();
    const chosen = events.values();
    if (!chosen.length) return status.replaceChildren(alertBox("Choose at least one event."));
    try {
      const r = await call("POST", "/api/webhooks", { url: url.value.trim(), events: chosen });
      const item = endpointItem(r, counted);
      list.append(item.li);
      item.showSecret(r.secret, "The endpoint's signing secret");
      counted();
      form.reset();
      status.replaceChildren(h("p", { class: "ok", role: "status" }, "Endpoint added."));
    } catch (err) {
      status.replaceChildren(alertBox(webhookError(err)));
      url.focus();
    }
  } },
  h("h3", {}, "Add an endpoint"),
  field("Endpoint URL", url, "Called with a signed POST (Standard Webhooks) for each event chosen."),
  events.box,
  status,
  h("button", { type: "submit" }, "Add endpoint"));
  (async () => {
    try {
      const endpoints = await call("GET", "/api/webhooks");
      endpoints.forEach(add);
      counted();
    } catch (err) { empty.replaceChildren(alertBox(err.message)); }
  })();
  return section("Webhooks", list, empty, form);
}

/** One endpoint of the list: its state, its secret when just made, its tools, its log. */
function endpointItem(ep, removed) {
  const ui = { secret: null, secretLabel: "", editing: null, log: null, logStop: null, note: null };
  const li = h("li", { class: "endpoint", "data-endpoint-id": ep.id });
  const note = (node) => { ui.note = node; render(); };
  const run = (fn) => async (e) => {
    const button = e.currentTarget;
    button.disabled = true;
    ui.note = null;
    try { await fn(); } catch (err) { note(alertBox(webhookError(err))); }
    finally { button.disabled = false; }
  };
  const patch = async (body) => {
    ep = await call("PATCH", `/api/webhooks/${ep.id}`, body);
  };

  const toggle = run(async () => {
    await patch({ enabled: !ep.enabled });
    note(h("p", { class: "ok", role: "status" }, ep.enabled ? "Enabled." : "Disabled: nothing is sent to it."));
  });
  const edit = () => {
    ui.editing = ui.editing ? null : eventChoice(ep.events);
    render();
  };
  const saveEvents = run(async () => {
    const chosen = ui.editing.values();
    if (!chosen.length) return note(alertBox("Choose at least one event."));
    await patch({ events: chosen });
    ui.editing = null;
    note(h("p", { class: "ok", role: "status" }, "Events saved."));
  });
  const rotate = run(async () => {
    const r = await call("POST", `/api/webhooks/${ep.id}/rotate-secret`);
    ep = r;
    item.showSecret(r.secret, "The endpoint's new signing secret");
  });
  const test = run(async () => {
    const r = await call("POST", `/api/webhooks/${ep.id}/test`);
    note(h("p", { class: "ok", role: "status" }, "Test event queued."));
    follow(r.message_id);
  });
  const remove = run(async () => {
    if (!(await confirmDialog("Delete this endpoint?",
      `Nothing more is sent to ${ep.url}; its queued deliveries are cancelled.`, "Delete endpoint"))) return;
    await call("DELETE", `/api/webhooks/${ep.id}`);
    if (ui.logStop) ui.logStop();
    li.remove();
    removed();
  });

  /** The log, loaded again until an attempt of `message` newer than what is shown appears. */
  const follow = (message) => {
    const seen = (ui.log || []).filter((a) => a.message_id === message).length;
    if (ui.logStop) ui.logStop();
    ui.log = ui.log || [];
    ui.logStop = every(1000, 30, async () => {
      await loadLog();
      return ui.log.filter((a) => a.message_id === message).length > seen;
    });
  };
  const loadLog = async () => {
    ui.log = await call("GET", `/api/webhooks/${ep.id}/deliveries?limit=50`);
    render();
  };
  const toggleLog = run(async () => {
    if (ui.log) {
      if (ui.logStop) ui.logStop();
      ui.log = null;
      return render();
    }
    await loadLog();
  });
  const redeliver = (message) => run(async () => {
    try {
      await call("POST", `/api/webhooks/${ep.id}/deliveries/${message}/redeliver`);
    } catch (err) {
      if (err.status !== 404) throw err;
      return note(alertBox("Only a finished delivery can be sent again: this one is still being retried."));
    }
    note(h("p", { class: "ok", role: "status" }, "Queued again."));
    follow(message);
  });

  function state() {
    if (!ep.enabled) {
      return h("span", { class: "status status-failed" }, "Disabled",
        ep.disabled_reason ? `: ${ep.disabled_reason}` : "");
    }
    if (ep.failing_since) {
      return h("span", { class: "status status-queued" }, `Enabled, failing since ${when(ep.failing_since)}`);
    }
    return h("span", { class: "status status-succeeded" }, "Enabled");
  }

  function logTable() {
    if (!ui.log.length) return h("p", { class: "hint" }, "No delivery attempts yet.");
    const first = new Set();
    const td = (label, attrs, ...content) => h("td", { "data-label": label, ...attrs }, ...content);
    return h("div", { class: "table-wrap" }, h("table", { class: "log stack" },
      h("caption", { class: "visually-hidden" }, `Delivery attempts to ${ep.url}, newest first`),
      h("thead", {}, h("tr", {}, ["Time", "Event", "Attempt", "Result", "Latency", "Actions"]
        .map((c) => h("th", { scope: "col" }, c)))),
      h("tbody", {}, ui.log.map((a) => {
        const newest = !first.has(a.message_id);
        first.add(a.message_id);
        const ok = a.status_code >= 200 && a.status_code < 300;
        const result = [a.status_code ? `HTTP ${a.status_code}` : "", a.error || ""].filter(Boolean).join(": ");
        return h("tr", { "data-message-id": a.message_id },
          td("Time", {}, when(a.at)), td("Event", {}, a.event), td("Attempt", {}, String(a.attempt)),
          td("Result", { class: ok ? "ok" : "alert-text" }, result || "no answer"),
          td("Latency", {}, `${a.latency_ms} ms`),
          td("", { class: "actions" }, newest
            ? h("button", { type: "button", class: "secondary", onclick: redeliver(a.message_id) }, "Redeliver") : ""));
      }))));
  }

  function render() {
    const tools = h("div", { class: "toolbar" },
      h("button", { type: "button", class: "secondary", onclick: toggle }, ep.enabled ? "Disable" : "Enable"),
      h("button", { type: "button", class: "secondary", onclick: edit, "aria-expanded": String(!!ui.editing) }, "Edit events"),
      h("button", { type: "button", class: "secondary", onclick: rotate }, "Rotate secret"),
      h("button", { type: "button", class: "secondary", onclick: test, disabled: !ep.enabled }, "Send test event"),
      h("button", { type: "button", class: "secondary", onclick: toggleLog, "aria-expanded": String(!!ui.log) }, "Delivery log"),
      h("button", { type: "button", class: "danger", onclick: remove }, "Delete"));
    li.replaceChildren(...[
      h("div", { class: "endpoint-url" }, h("strong", {}, ep.url)),
      h("div", {}, state()),
      h("div", { class: "hint" }, "Events: ", ep.events.join(", ")),
      ep.previous_secret_expires_at
        ? h("div", { class: "hint" }, `The previous secret also signs until ${when(ep.previous_secret_expires_at)}.`) : null,
      ui.secret ? secretField(ui.secretLabel, ui.secret, SHOWN_ONCE) : null,
      tools,
      ui.editing ? h("div", { class: "edit-events" }, ui.editing.box,
        h("div", { class: "toolbar" }, h("button", { type: "button", onclick: saveEvents }, "Save events"),
          h("button", { type: "button", class: "secondary", onclick: edit }, "Cancel"))) : null,
      ui.note,
      ui.log ? h("div", { class: "delivery-log" }, h("h3", {}, "Delivery log"), logTable()) : null,
    ].filter(Boolean));
  }

  const item = {
    li,
    showSecret(secret, label) {
      ui.secret = secret;
      ui.secretLabel = label;
      render();
      li.querySelector("input.secret").select();
    },
  };
  render();
  return item;
}

function defaultSecretSection() {
  const box = h("div");
  const status = h("div");
  const showIt = (r, label) => {
    box.replaceChildren(secretField(label, r.secret, r.previous_secret_expires_at
      ? `The previous secret also signs until ${when(r.previous_secret_expires_at)}.` : "Keep it secret."));
  };
  const act = (fn) => async (e) => {
    const button = e.currentTarget;
    button.disabled = true;
    status.replaceChildren();
    try { await fn(); } catch (err) { status.replaceChildren(alertBox(err.message)); }
    finally { button.disabled = false; }
  };
  return section("Default webhook secret",
    h("p", { class: "hint" }, "It signs the calls to a task's own webhook URL (the Webhook URL of a new task)."),
    box,
    status,
    h("div", { class: "toolbar" },
      h("button", { type: "button", class: "secondary", onclick: act(async () => {
        showIt(await call("GET", "/api/account/webhook-secret"), "Default secret");
      }) }, "Show"),
      h("button", { type: "button", class: "secondary", onclick: act(async () => {
        showIt(await call("POST", "/api/account/webhook-secret/rotate"), "New default secret");
        status.replaceChildren(h("p", { class: "ok", role: "status" }, "Rotated: the old secret keeps signing for 24 hours."));
      }) }, "Rotate")));
}

// --- API keys ----------------------------------------------------------------------------

function keysSection() {
  const list = h("ul", { class: "keys", "aria-label": "API keys" });
  const empty = h("p", { class: "hint" });
  const shown = h("div");
  const status = h("div");
  const name = h("input", { type: "text", required: true, maxlength: 100, placeholder: "nightly backup job" });
  const scope = h("select", {},
    h("option", { value: "read-write" }, "read-write: everything you can do"),
    h("option", { value: "read" }, "read: look only (GET requests)"));
  const days = h("input", { type: "number", min: 1, max: 3650, placeholder: "never" });
  const counted = () => { empty.textContent = list.children.length ? "" : "No API keys yet."; };
  const item = (k) => {
    const expiry = k.expires_at ? `expires ${when(k.expires_at)}` : "no expiry";
    const used = k.last_used_at ? `last used ${when(k.last_used_at)}` : "never used";
    const li = h("li", {},
      h("strong", {}, k.name), h("code", {}, `${k.prefix}…`),
      h("span", { class: "hint" }, `${k.scope}, made ${when(k.created_at)}, ${expiry}, ${used}`),
      h("button", { type: "button", class: "danger", onclick: async () => {
        const sure = await confirmDialog("Revoke this key?",
          `“${k.name}” stops working at once, for every script that uses it.`, "Revoke key");
        if (!sure) return;
        status.replaceChildren();
        try {
          await call("DELETE", `/api/keys/${k.id}`);
          li.remove();
          counted();
          status.replaceChildren(h("p", { class: "ok", role: "status" }, `Revoked "${k.name}".`));
        } catch (err) { status.replaceChildren(alertBox(err.message)); }
      } }, "Revoke"));
    return li;
  };
  const form = h("form", { onsubmit: async (e) => {
    e.preventDefault();
    status.replaceChildren();
    const body = { name: name.value.trim(), scope: scope.value };
    if (days.value) body.expires_in_days = Number(days.value);
    try {
      const k = await call("POST", "/api/keys", body);
      list.append(item(k));
      counted();
      shown.replaceChildren(secretField("The new API key", k.token,
        `Use it as "Authorization: Bearer ${k.prefix}…". ${SHOWN_ONCE}`));
      form.reset();
    } catch (err) { status.replaceChildren(alertBox(err.message)); }
  } },
  h("h3", {}, "Make a key"),
  field("Name", name),
  field("Scope", scope),
  field("Expires after (days)", days, "Leave empty for a key that works until revoked."),
  h("button", { type: "submit" }, "Make a key"));
  call("GET", "/api/keys").then((keys) => {
    keys.forEach((k) => list.append(item(k)));
    counted();
  }).catch((err) => status.replaceChildren(alertBox(err.message)));
  return section("API keys",
    h("p", { class: "hint" }, "For scripts and other services: a key works on the API like your log-in, without a password."),
    list, empty, shown, status, form);
}

async function logout() {
  try { await call("DELETE", "/api/session"); } catch { /* the cookie is cleared either way */ }
  adopt(null);
  go("#/login");
}

// --- task list ---------------------------------------------------------------------------

const STATUSES = ["queued", "running", "succeeded", "failed", "cancelled"];
const PAGE = 20;

function taskName(t) {
  return (t.source && (t.source.filename || t.source.url)) || t.id;
}

function statusCell(t) {
  const cell = h("td", { class: "status-cell" },
    h("span", { class: `status status-${t.status}` }, t.status));
  if (t.status === "running" || (t.status === "queued" && t.progress.percent > 0)) {
    cell.append(h("progress", { max: 100, value: Math.round(t.progress.percent),
      "aria-label": `Progress of ${taskName(t)}` }));
  }
  if (t.error && t.status !== "succeeded") {
    cell.append(h("div", { class: "hint" }, t.error.message));
  }
  return cell;
}

function actions(t, after) {
  const buttons = [];
  const act = (label, cls, run) => buttons.push(h("button", { type: "button", class: cls, onclick: async (e) => {
    const button = e.currentTarget; // gone from the event once it has been dispatched
    button.disabled = true;
    try { await run(); after && after(); } catch (err) { notify(err.message); }
    finally { button.disabled = false; }
  } }, label));
  if (t.status === "queued" || t.status === "running") {
    act("Cancel", "secondary", () => call("POST", `/api/tasks/${t.id}/cancel`));
  }
  if (t.status === "failed" || t.status === "cancelled") {
    act("Retry", "secondary", () => call("POST", `/api/tasks/${t.id}/retry`));
  }
  act("Delete", "danger", async () => {
    if (await confirmDelete(taskName(t))) {
      await call("DELETE", `/api/tasks/${t.id}`);
      if (location.hash.startsWith("#/tasks/")) go("#/tasks");
    }
  });
  return buttons;
}

function confirmDelete(name) {
  return confirmDialog("Delete this task?", `“${name}”, its input and its outputs are removed for good.`, "Delete task");
}

/** A modal question: true when the user chose `yes`. */
function confirmDialog(title, text, yes) {
  return new Promise((resolve) => {
    const dialog = h("dialog", { "aria-labelledby": "confirm-title" },
      h("h2", { id: "confirm-title" }, title),
      h("p", {}, text),
      h("form", { method: "dialog", class: "toolbar" },
        h("button", { value: "yes", class: "danger" }, yes),
        h("button", { value: "keep", class: "secondary", autofocus: true }, "Keep")));
    dialog.addEventListener("close", () => { dialog.remove(); resolve(dialog.returnValue === "yes"); });
    document.body.append(dialog);
    dialog.showModal();
  });
}

function notify(message) {
  const box = document.getElementById("notice") || h("div", { id: "notice" });
  box.replaceChildren(alertBox(message));
  main().prepend(box);
}

function taskRow(t) {
  return h("tr", { "data-task-id": t.id },
    h("td", { class: "name" }, h("a", { href: `#/tasks/${t.id}` }, taskName(t))),
    h("td", { class: "hide-narrow" }, t.profile),
    statusCell(t),
    h("td", { class: "hide-narrow" }, new Date(t.created_at).toLocaleString()),
    h("td", { class: "actions" }, actions(t)));
}

async function tasksPage() {
  const view = { status: sessionStorage.getItem("reelforge.filter") || "", cursors: [null], next: null };
  const filter = h("select", { onchange: () => {
    view.status = filter.value;
    sessionStorage.setItem("reelforge.filter", view.status);
    view.cursors = [null];
    load();
  } }, h("option", { value: "" }, "All"), STATUSES.map((s) => h("option", { value: s }, s)));
  filter.value = view.status;
  const body = h("tbody");
  const newer = h("button", { type: "button", class: "secondary", onclick: () => { view.cursors.pop(); load(); } }, "Newer");
  const older = h("button", { type: "button", class: "secondary", onclick: () => { view.cursors.push(view.next); load(); } }, "Older");
  const empty = h("p", { class: "hint" });
  show(
    h("h1", {}, "Tasks"),
    h("div", { class: "toolbar" }, field("Status", filter), h("a", { class: "button", href: "#/new" }, "New task")),
    h("div", { class: "table-wrap" }, h("table", {},
      h("caption", { class: "visually-hidden" }, "Your tasks, newest first"),
      h("thead", {}, h("tr", {}, h("th", { scope: "col" }, "Input"), h("th", { scope: "col", class: "hide-narrow" }, "Profile"),
        h("th", { scope: "col" }, "Status"), h("th", { scope: "col", class: "hide-narrow" }, "Created"),
        h("th", { scope: "col" }, "Actions"))),
      body)),
    empty,
    h("div", { class: "toolbar" }, newer, older));

  // One list request at a time; a change pushed while one is in flight asks for another, so
  // an answer older than the change cannot overwrite the row the change updated.
  let loading = null;
  let stale = false;
  function load() {
    if (loading) { stale = true; return loading; }
    loading = (async () => {
      do { stale = false; await loadOnce(); } while (stale);
    })().finally(() => { loading = null; });
    return loading;
  }

  async function loadOnce() {
    const cursor = view.cursors[view.cursors.length - 1];
    const q = new URLSearchParams({ max: PAGE, commands: "false" });
    if (view.status) q.set("status", view.status);
    if (cursor) q.set("cursor", cursor);
    let tasks;
    try {
      const r = await request("GET", `/api/tasks?${q}`);
      tasks = await answer(r.clone());
      const link = r.headers.get("Link") || "";
      const m = link.match(/cursor=([0-9a-f-]+)/);
      view.next = m ? m[1] : null;
    } catch (err) {
      return empty.replaceChildren(alertBox(err.message));
    }
    body.replaceChildren(...tasks.map(taskRow));
    empty.textContent = tasks.length ? "" : view.status ? `No ${view.status} tasks.` : "No tasks yet: start one with New task.";
    newer.disabled = view.cursors.length <= 1;
    older.disabled = !view.next;
  }

  await load();
  focusHeading();
  // Live: every change of the user's tasks, pushed by the server. The stream sends nothing
  // for the tasks as they were when it opened, so the list is loaded again once it is open
  // (and after each reconnection): a change between the first load and the stream's start
  // would otherwise never show.
  const events = new EventSource("/api/events");
  events.addEventListener("open", () => load());
  events.addEventListener("task", (e) => {
    if (loading) stale = true;
    const t = JSON.parse(e.data);
    const row = body.querySelector(`tr[data-task-id="${t.id}"]`);
    const fits = !view.status || view.status === t.status;
    if (row && fits) row.replaceWith(taskRow(t));
    else if (row) row.remove();
    else if (fits && view.cursors.length === 1) load();
  });
  events.addEventListener("deleted", (e) => {
    if (loading) stale = true;
    const { id } = JSON.parse(e.data);
    const row = body.querySelector(`tr[data-task-id="${id}"]`);
    if (row) row.remove();
  });
  S.closers.push(() => events.close());
}

// --- one task ----------------------------------------------------------------------------

const VIDEO = ["mp4", "m4v", "webm", "mov", "mkv"];
const AUDIO = ["mp3", "m4a", "ogg", "opus", "wav", "flac"];
const IMAGE = ["jpg", "jpeg", "png", "webp", "gif"];

function extension(name) {
  return name.toLowerCase().split(".").pop();
}

async function taskPage(id) {
  let task;
  try {
    task = await call("GET", `/api/tasks/${id}`);
  } catch (err) {
    show(h("h1", {}, err.status === 404 ? "Task not found" : "Could not load the task"),
      h("p", {}, err.status === 404 ? "There is no such task among yours." : err.message),
      h("a", { href: "#/tasks" }, "Back to the tasks"));
    return focusHeading();
  }
  const details = h("div");
  const outputs = h("section", { "aria-labelledby": "outputs-title" });
  const tools = h("div");
  const notes = h("section", { "aria-labelledby": "notifications-title" });
  show(h("p", {}, h("a", { href: "#/tasks" }, "← Tasks")), h("h1", {}, taskName(task)), details, outputs, tools, notes);
  focusHeading();
  let shownOutputs = null;
  const render = (t) => {
    task = t;
    details.replaceChildren(taskDetails(t));
    const names = t.outputs.map((o) => o.name).join("/");
    if (t.status === "succeeded" && shownOutputs !== names) {
      shownOutputs = names;
      renderOutputs(t, outputs);
    } else if (t.status !== "succeeded" && shownOutputs !== null) {
      shownOutputs = null;
      outputs.replaceChildren();
    }
    tools.replaceChildren(taskTools(t));
    notes.replaceChildren(...taskNotifications(t));
  };
  render(task);
  const events = new EventSource(`/api/tasks/${id}/events`);
  events.addEventListener("task", (e) => render(JSON.parse(e.data)));
  events.addEventListener("progress", (e) => {
    const p = JSON.parse(e.data);
    render({ ...task, status: p.status, progress: p.progress });
  });
  // The stream ends with the final state; the notifications it owes are sent after it, so
  // the page asks again (less and less often) while some are still on their way.
  let poll = null;
  const pending = (t) => (t.notifications || []).some((n) => n.status === "queued" || n.status === "sending");
  const follow = (delay) => {
    poll = setTimeout(async () => {
      try { render(await call("GET", `/api/tasks/${id}`)); } catch { return; }
      if (pending(task)) follow(Math.min(delay * 1.5, 30000));
    }, delay);
  };
  events.onerror = () => {
    if (!FINAL.includes(task.status)) return;
    events.close();
    if (pending(task) && poll === null) follow(1000);
  };
  S.closers.push(() => { events.close(); clearTimeout(poll); });
}

const FINAL = ["succeeded", "failed", "cancelled"];
const DELIVERY_CLASS = { sent: "succeeded", failed: "failed", cancelled: "cancelled", queued: "queued", sending: "running" };

/** The e-mails and webhook calls the task's events owed, and how each went. */
function taskNotifications(t) {
  const list = t.notifications || [];
  const title = h("h2", { id: "notifications-title" }, "Notifications");
  if (!list.length) {
    return [title, h("p", { class: "hint" }, FINAL.includes(t.status)
      ? "None: no e-mail or webhook was owed for this task."
      : "None yet: e-mails and webhook calls are listed here when the task's events owe them.")];
  }
  const td = (label, attrs, ...content) => h("td", { "data-label": label, ...attrs }, ...content);
  return [title, h("div", { class: "table-wrap" }, h("table", { class: "notifications stack" },
    h("caption", { class: "visually-hidden" }, "Notifications of this task"),
    h("thead", {}, h("tr", {}, ["Channel", "To", "Event", "Status", "Attempts", "Last error", "Sent"]
      .map((c) => h("th", { scope: "col" }, c)))),
    h("tbody", {}, list.map((n) => h("tr", { "data-notification-id": n.id },
      td("Channel", {}, n.channel === "email" ? "E-mail" : "Webhook"),
      td("To", { class: "name" }, n.target),
      td("Event", {}, n.event),
      td("Status", {}, h("span", { class: `status status-${DELIVERY_CLASS[n.status] || "queued"}` }, n.status)),
      td("Attempts", {}, String(n.attempts)),
      td("Last error", { class: "name" }, n.last_error || ""),
      td("Sent", {}, when(n.sent_at)))))))];
}

function taskDetails(t) {
  const rows = [
    ["Status", h("span", { class: `status status-${t.status}`, "data-testid": "task-status" }, t.status)],
    ["Profile", t.profile + (Object.keys(t.options || {}).length ? " " + JSON.stringify(t.options) : "")],
  ];
  if (t.status === "running") {
    const stage = t.progress.stage ? `${t.progress.stage}, ` : "";
    const eta = t.progress.eta_seconds ? `, about ${duration(t.progress.eta_seconds)} left` : "";
    rows.push(["Progress", h("span", {}, h("progress", { max: 100, value: Math.round(t.progress.percent), "aria-label": "Progress" }),
      ` ${stage}${Math.round(t.progress.percent)} %${eta}`)]);
  }
  if (t.error) rows.push([t.status === "queued" ? "Last attempt" : "Error", h("span", { role: "status" }, t.error.message)]);
  if (t.source.kind === "url") rows.push(["Source", t.source.url]);
  else rows.push(["Upload", `${t.source.filename} (${bytes(t.source.size)})`]);
  if (t.input) {
    const i = t.input;
    const video = i.width ? `${i.width}×${i.height} ${i.video_codec || ""}` : "";
    rows.push(["Input", [i.duration ? duration(i.duration) : "", video, i.audio_codec || ""].filter(Boolean).join(", ")]);
  }
  rows.push(["Created", new Date(t.created_at).toLocaleString()]);
  if (t.finished_at) rows.push(["Finished", new Date(t.finished_at).toLocaleString()]);
  rows.push(["Attempts", String(t.attempts)]);
  if (t.webhook_url) rows.push(["Webhook URL", t.webhook_url]);
  if (t.files_expired_at) rows.push(["Files", `removed on ${when(t.files_expired_at)}`]);
  else if (t.expires_in) rows.push(["Files", `kept ${keptFor(t.expires_in)} after it finishes`]);
  return h("dl", { class: "meta card" }, rows.map(([k, v]) => [h("dt", {}, k), h("dd", {}, v)]));
}

async function renderOutputs(t, section) {
  section.replaceChildren(h("h2", { id: "outputs-title" }, "Outputs"));
  if (t.files_expired_at) {
    return section.append(h("p", { class: "hint", "data-testid": "files-expired" },
      `The files of this task were removed on ${when(t.files_expired_at)}, at the end of their retention period. Its record stays.`));
  }
  let links = {};
  try {
    const playback = await call("GET", `/api/tasks/${t.id}/playback`);
    for (const o of playback.outputs) links[o.name] = o.url;
  } catch { links = {}; }
  const list = h("div", { class: "outputs" });
  const playlists = t.outputs.filter((o) => extension(o.name) === "m3u8");
  const master = playlists.find((o) => /master/i.test(o.name)) || playlists[0];
  for (const o of t.outputs) {
    const ext = extension(o.name);
    if (ext === "ts" || (ext === "m3u8" && o !== master)) continue; // parts of the ladder
    list.append(h("figure", { class: "card" }, preview(o, ext, links[o.name]),
      h("figcaption", {}, h("div", {}, o.name, " · ", bytes(o.size)),
        h("a", { href: `/api/tasks/${t.id}/outputs/${encodeURIComponent(o.name)}`, download: o.name }, `Download ${o.name}`))));
  }
  const parts = t.outputs.filter((o) => extension(o.name) === "ts" || (extension(o.name) === "m3u8" && o !== master));
  if (parts.length) {
    list.append(h("details", { class: "card" }, h("summary", {}, `${parts.length} more files of the HLS ladder`),
      h("ul", {}, parts.map((o) => h("li", {}, h("a", { href: `/api/tasks/${t.id}/outputs/${encodeURIComponent(o.name)}`, download: o.name }, `Download ${o.name}`))))));
  }
  section.append(list);
}

function preview(o, ext, url) {
  if (!url) return h("p", { class: "hint" }, "No preview");
  if (IMAGE.includes(ext)) return h("img", { src: url, alt: `Output ${o.name}` });
  if (AUDIO.includes(ext)) return h("audio", { src: url, controls: true, preload: "metadata", "aria-label": `Play ${o.name}` });
  if (VIDEO.includes(ext)) return h("video", { src: url, controls: true, preload: "metadata", playsinline: true, "aria-label": `Play ${o.name}` });
  if (ext === "m3u8") return hlsPlayer(o, url);
  return h("p", { class: "hint" }, "No preview for this kind of file");
}

/** Safari plays HLS natively; elsewhere hls.js (loaded only here) feeds MediaSource. */
function hlsPlayer(o, url) {
  const video = h("video", { controls: true, playsinline: true, "aria-label": `Play ${o.name}` });
  if (video.canPlayType("application/vnd.apple.mpegurl")) {
    video.src = url;
    return video;
  }
  const attach = () => {
    if (!window.Hls || !window.Hls.isSupported()) return;
    const hls = new window.Hls();
    hls.loadSource(url);
    hls.attachMedia(video);
    S.closers.push(() => hls.destroy());
  };
  if (window.Hls) attach();
  else document.head.append(h("script", { src: "/ui/hls.light.min.js", onload: attach }));
  return video;
}

/** The task's live share links, each with a button that revokes it. */
async function shareList(t, box) {
  let shares = [];
  try { shares = await call("GET", `/api/tasks/${t.id}/shares`); } catch { shares = []; }
  box.replaceChildren(shares.length ? h("ul", { "aria-label": "Share links" }, shares.map((s) => h("li", {},
    `Share link made ${new Date(s.createdAt).toLocaleString()}, valid until ${new Date(s.expiresAt).toLocaleString()} `,
    h("button", { type: "button", class: "danger", onclick: async () => {
      try { await call("DELETE", `/api/tasks/${t.id}/shares/${s.id}`); } catch (err) { return notify(err.message); }
      shareList(t, box);
    } }, "Revoke")))) : "");
}

function taskTools(t) {
  const share = h("div");
  const shares = h("div");
  const curl = h("pre", { class: "curl", "aria-label": "The request as curl" });
  const copy = h("button", { type: "button", class: "secondary", onclick: async () => {
    curl.textContent = curlOf(t);
    try { await navigator.clipboard.writeText(curl.textContent); copy.textContent = "Copied"; }
    catch { copy.textContent = "Copy as curl"; }
  } }, "Copy as curl");
  const shareButton = h("button", { type: "button", class: "secondary", onclick: async () => {
    try {
      const s = await call("POST", `/api/tasks/${t.id}/shares`, {});
      // The link of the output to open (the HLS master playlist, else the first output).
      const outputs = s.outputs || [];
      const main = outputs.find((o) => /master.*\.m3u8$/i.test(o.name)) || outputs[0];
      const href = main ? main.url : s.url;
      const link = h("input", { type: "text", readonly: true, value: new URL(href, location.origin).href });
      share.replaceChildren(field("Share link", link, `Works without logging in until ${new Date(s.expiresAt).toLocaleString()}.`));
      link.select();
      shareList(t, shares);
    } catch (err) { share.replaceChildren(alertBox(err.message)); }
  } }, "Share");
  if (t.status === "succeeded") shareList(t, shares);
  return h("div", {}, h("div", { class: "toolbar" }, actions(t), t.status === "succeeded" ? shareButton : null, copy), share, shares, curl);
}

/** The request that made the task, as a curl command (with a placeholder token). */
function curlOf(t) {
  const base = location.origin;
  const auth = `-H "Authorization: Bearer $REELFORGE_TOKEN"`;
  const options = Object.keys(t.options || {}).length ? JSON.stringify(t.options) : null;
  const quote = (s) => "'" + String(s).replace(/'/g, "'\\''") + "'";
  if (t.source.kind === "url") {
    const body = { url: t.source.url, profile: t.profile };
    if (options) body.options = t.options;
    return `curl -X POST ${base}/api/tasks ${auth} \\\n  -H 'Content-Type: application/json' \\\n  -d ${quote(JSON.stringify(body))}`;
  }
  let cmd = `curl -X POST ${base}/api/tasks ${auth} \\\n  -F file=@${quote(t.source.filename)} \\\n  -F profile=${t.profile}`;
  if (options) cmd += ` \\\n  -F options=${quote(options)}`;
  return cmd;
}

// --- new task: the options form ----------------------------------------------------------

/** Every property of a schema, its `oneOf` branches merged (their enums joined). */
function properties(schema) {
  const out = {};
  const branches = schema.oneOf || [schema];
  for (const b of branches) {
    for (const [name, p] of Object.entries(b.properties || {})) {
      if (!out[name]) out[name] = { ...p };
      else if (out[name].enum && p.enum) out[name].enum = [...new Set([...out[name].enum, ...p.enum])];
    }
  }
  return out;
}

function optionInput(name, p) {
  const items = p.items || {};
  if (p.enum) {
    return h("select", { name }, h("option", { value: "" }, p.default !== undefined ? `default (${p.default})` : "—"),
      p.enum.map((v) => h("option", { value: v }, v)));
  }
  if (p.type === "boolean") return h("input", { type: "checkbox", name });
  if (p.type === "integer" || p.type === "number") {
    return h("input", { type: "number", name, min: p.minimum, max: p.maximum, step: p.type === "integer" ? 1 : "any",
      placeholder: p.default !== undefined ? String(p.default) : "" });
  }
  const example = (p.examples && p.examples[0]) || (items.examples && items.examples[0]) ||
    (items.enum && items.enum.join(", ")) || "";
  return h("input", { type: "text", name, placeholder: p.type === "array" ? `comma-separated${example ? ", e.g. " + example : ""}` : String(example) });
}

/** The value of a field as the schema wants it (or undefined when left empty). */
function optionValue(input, p) {
  if (input.type === "checkbox") return input.checked ? true : undefined;
  const text = input.value.trim();
  if (text === "") return undefined;
  const number = (s) => (/^-?\d+(\.\d+)?$/.test(s) ? Number(s) : s);
  if (p.type === "array") return text.split(",").map((s) => number(s.trim())).filter((s) => s !== "");
  if (p.type === "integer" || p.type === "number") return Number(text);
  if (p.enum && p.enum.some((v) => typeof v === "number")) return Number(text);
  return number(text) === text || !p.anyOf ? text : number(text);
}

function optionsForm(profile) {
  const props = properties(profile.options);
  const fields = {};
  const box = h("div", { class: "grid2" });
  for (const [name, p] of Object.entries(props)) {
    const input = optionInput(name, p);
    fields[name] = { input, schema: p, error: h("div") };
    const f = field(name, input, p.description);
    f.append(fields[name].error);
    box.append(f);
  }
  return {
    box,
    description: profile.options.description || "",
    values() {
      const out = {};
      for (const [name, f] of Object.entries(fields)) {
        const v = optionValue(f.input, f.schema);
        if (v !== undefined) out[name] = v;
      }
      return out;
    },
    /** Put a server error beside the field it names (in backquotes), else return false. */
    showError(message) {
      for (const e of Object.values(fields)) e.error.replaceChildren();
      // The field a message is about comes first ("options.end: …"), else in backquotes.
      for (const m of message.matchAll(/^(?:options\.)?([a-z_]+):|`(?:options\.)?([a-z_]+)/g)) {
        const name = m[1] || m[2];
        if (fields[name]) {
          fields[name].error.replaceChildren(alertBox(message));
          fields[name].input.focus();
          return true;
        }
      }
      return false;
    },
  };
}

// --- new task: resumable uploads (tus 1.0) -----------------------------------------------

/** Bytes per PATCH (8 MiB; `localStorage["reelforge.chunkBytes"]` overrides it, for tests). */
function chunkBytes() {
  return Number(localStorage.getItem("reelforge.chunkBytes")) || 8 * 1024 * 1024;
}

function b64(text) {
  const utf8 = new TextEncoder().encode(text);
  let s = "";
  for (const b of utf8) s += String.fromCharCode(b);
  return btoa(s);
}

/** One file's upload: created once, then PATCHed in chunks from the server's offset. Its
 * URL is kept per file (name, size, date) so a reload resumes instead of starting over. */
class Upload {
  constructor(file, metadata, onchange) {
    this.file = file;
    this.metadata = metadata;
    this.onchange = onchange;
    this.key = `reelforge.upload:${file.name}:${file.size}:${file.lastModified}`;
    this.offset = 0;
    this.state = "starting"; // starting | uploading | paused | retrying | done | failed
    this.error = null;
    this.task = null;
    this.xhr = null;
    this.rate = null; // bytes per second, smoothed
  }

  tusHeaders(extra) {
    return { "Tus-Resumable": "1.0.0", "X-CSRF-Token": S.csrf || "", ...extra };
  }

  async start() {
    try {
      if (!(await this.resumeRemembered())) await this.create();
      await this.run();
    } catch (err) {
      this.fail(err);
    }
  }

  /** The remembered upload of this file, if the server still has it. */
  async resumeRemembered() {
    const url = localStorage.getItem(this.key);
    if (!url) return false;
    const r = await fetch(url, { method: "HEAD", headers: this.tusHeaders() });
    if (!r.ok) { localStorage.removeItem(this.key); return false; }
    this.url = url;
    this.offset = Number(r.headers.get("Upload-Offset"));
    this.task = r.headers.get("Reelforge-Task");
    this.resumedAt = this.offset;
    return true;
  }

  async create() {
    const meta = Object.entries({ filename: this.file.name, filetype: this.file.type || "", ...this.metadata })
      .map(([k, v]) => `${k} ${b64(v)}`).join(",");
    const r = await fetch("/api/uploads", { method: "POST", headers: this.tusHeaders({
      "Upload-Length": String(this.file.size), "Upload-Metadata": meta }) });
    await answer(r);
    this.url = r.headers.get("Location");
    localStorage.setItem(this.key, this.url);
  }

  async run() {
    this.state = "uploading";
    this.changed();
    let failures = 0;
    while (this.offset < this.file.size && this.state === "uploading") {
      try {
        await this.sendChunk();
        failures = 0;
      } catch (err) {
        if (this.state !== "uploading") return; // paused
        if (err instanceof ApiError && ![409, 423, 460].includes(err.status) && err.status < 500) throw err;
        // A dropped connection, a restart, another writer: wait, ask where the upload
        // stands, and go on from there.
        failures += 1;
        this.state = "retrying";
        this.changed();
        await new Promise((r) => setTimeout(r, Math.min(30000, 500 * 2 ** failures)));
        if (this.state !== "retrying") return;
        this.state = "uploading";
        await this.syncOffset().catch(() => {});
      }
    }
    if (this.offset >= this.file.size) this.finish();
  }

  async syncOffset() {
    const r = await fetch(this.url, { method: "HEAD", headers: this.tusHeaders() });
    if (r.status === 404 || r.status === 410) throw new ApiError(r.status, "gone", "The upload is gone from the server; start it again.");
    if (r.ok) this.offset = Number(r.headers.get("Upload-Offset"));
  }

  sendChunk() {
    return new Promise((resolve, reject) => {
      const end = Math.min(this.file.size, this.offset + chunkBytes());
      const xhr = new XMLHttpRequest();
      this.xhr = xhr;
      xhr.open("PATCH", this.url);
      const headers = this.tusHeaders({ "Upload-Offset": String(this.offset), "Content-Type": "application/offset+octet-stream" });
      for (const [k, v] of Object.entries(headers)) xhr.setRequestHeader(k, v);
      let last = { t: performance.now(), n: 0 };
      xhr.upload.onprogress = (e) => {
        const now = performance.now();
        const dt = (now - last.t) / 1000;
        if (dt > 0.2) {
          const rate = (e.loaded - last.n) / dt;
          this.rate = this.rate === null ? rate : 0.7 * this.rate + 0.3 * rate;
          last = { t: now, n: e.loaded };
        }
        this.sending = e.loaded;
        this.changed();
      };
      xhr.onload = () => {
        this.sending = 0;
        if (xhr.status === 204) {
          this.offset = Number(xhr.getResponseHeader("Upload-Offset"));
          this.task = xhr.getResponseHeader("Reelforge-Task") || this.task;
          this.changed();
          return resolve();
        }
        let body = null;
        try { body = JSON.parse(xhr.responseText); } catch { body = null; }
        reject(new ApiError(xhr.status, body && body.error, (body && body.message) || `HTTP ${xhr.status}`));
      };
      xhr.onerror = () => { this.sending = 0; reject(new Error("the connection dropped")); };
      xhr.onabort = () => { this.sending = 0; reject(new Error("paused")); };
      xhr.send(this.file.slice(this.offset, end));
    });
  }

  pause() {
    if (this.state !== "uploading" && this.state !== "retrying") return;
    this.state = "paused";
    if (this.xhr) this.xhr.abort();
    this.changed();
  }

  async resume() {
    if (this.state !== "paused") return;
    this.state = "uploading";
    try {
      await this.syncOffset();
      await this.run();
    } catch (err) { this.fail(err); }
  }

  finish() {
    localStorage.removeItem(this.key);
    this.state = "done";
    this.changed();
  }

  fail(err) {
    this.state = "failed";
    this.error = err;
    this.changed();
  }

  changed() { this.onchange(this); }

  percent() {
    return this.file.size ? Math.floor(((this.offset + (this.sending || 0)) / this.file.size) * 100) : 100;
  }
}

function uploadItem(upload) {
  const bar = h("progress", { max: 100, value: 0, "aria-label": `Upload of ${upload.file.name}` });
  const text = h("span", { class: "hint" });
  const pause = h("button", { type: "button", class: "secondary", onclick: () => upload.pause() }, "Pause");
  const resume = h("button", { type: "button", class: "secondary", onclick: () => upload.resume() }, "Resume");
  const status = h("div");
  const li = h("li", {}, h("div", { class: "row-head" }, h("strong", {}, upload.file.name), h("span", {}, pause, " ", resume)), bar, text, status);
  const update = () => {
    const pct = upload.percent();
    bar.value = pct;
    bar.setAttribute("aria-valuenow", String(pct));
    pause.hidden = !["uploading", "retrying"].includes(upload.state);
    resume.hidden = upload.state !== "paused";
    const left = upload.file.size - upload.offset - (upload.sending || 0);
    const speed = upload.rate ? `${bytes(upload.rate)}/s, ${duration(left / upload.rate)} left` : "";
    const from = upload.resumedAt ? ` (resumed at ${bytes(upload.resumedAt)})` : "";
    text.textContent = {
      starting: "Starting…",
      uploading: `${pct} % of ${bytes(upload.file.size)}${from}${speed ? " · " + speed : ""}`,
      retrying: "Connection lost: retrying…",
      paused: `Paused at ${pct} %`,
      done: "Uploaded",
      failed: "",
    }[upload.state];
    if (upload.state === "done") {
      status.replaceChildren(upload.task
        ? h("a", { href: "#" + upload.task.replace(/^\/api/, "") }, "Open task")
        : h("span", {}, "Uploaded; no task was asked for."));
    } else if (upload.state === "failed") {
      status.replaceChildren(alertBox(upload.error.message));
    }
  };
  upload.render = update;
  update();
  return li;
}

async function loadProfiles() {
  if (!S.profiles) S.profiles = (await call("GET", "/api/profiles")).profiles;
  return S.profiles;
}

async function newTaskPage() {
  let profiles;
  try { profiles = await loadProfiles(); } catch (err) { return show(h("h1", {}, "New task"), alertBox(err.message)); }
  const chosen = [];
  const profile = h("select", { name: "profile" }, profiles.map((p) => h("option", { value: p.name }, p.name)));
  const optionsBox = h("fieldset", {}, h("legend", {}, "Options"));
  let form = null;
  const showOptions = () => {
    const p = profiles.find((x) => x.name === profile.value);
    form = optionsForm(p);
    optionsBox.replaceChildren(h("legend", {}, `Options of ${p.name}`), h("p", { class: "hint" }, form.description), form.box);
  };
  profile.addEventListener("change", showOptions);
  showOptions();
  const url = h("input", { type: "url", name: "url", placeholder: "https://example.com/clip.mp4" });
  const webhook = h("input", { type: "url", name: "webhook_url", placeholder: "https://example.com/hooks/task" });
  const keep = h("select", { name: "expires_in" },
    h("option", { value: "" }, "until I delete the task"),
    [["1d", "1 day"], ["7d", "7 days"], ["30d", "30 days"], ["90d", "90 days"]]
      .map(([value, label]) => h("option", { value }, label)));
  const hookError = h("div");
  const picker = h("input", { type: "file", multiple: true, name: "files", onchange: () => { add(picker.files); picker.value = ""; } });
  const chosenList = h("ul", { class: "hint" });
  const drop = h("div", { class: "drop", role: "button", tabindex: 0, "aria-label": "Drop files here or choose files",
    onclick: () => picker.click(),
    onkeydown: (e) => { if (e.key === "Enter" || e.key === " ") { e.preventDefault(); picker.click(); } },
    ondragover: (e) => { e.preventDefault(); drop.classList.add("over"); },
    ondragleave: () => drop.classList.remove("over"),
    ondrop: (e) => { e.preventDefault(); drop.classList.remove("over"); add(e.dataTransfer.files); } },
  "Drop files here, or click to pick them");
  const status = h("div");
  const list = h("ul", { class: "uploads", "aria-label": "Uploads" });
  function add(files) {
    for (const f of files) chosen.push(f);
    chosenList.replaceChildren(...chosen.map((f) => h("li", {}, `${f.name} (${bytes(f.size)})`)));
  }
  const start = async (e) => {
    e.preventDefault();
    status.replaceChildren();
    const options = form.values();
    hookError.replaceChildren();
    // An upload's own error is shown in its list item; here only beside a field it names.
    const fail = (err, { inStatus = true } = {}) => {
      if (/^webhook_url\b/.test(err.message)) {
        hookError.replaceChildren(alertBox(webhookError(err)));
        webhook.focus();
      } else if (!form.showError(err.message) && inStatus) status.replaceChildren(alertBox(err.message));
    };
    const hook = webhook.value.trim();
    if (!url.value.trim() && !chosen.length) return status.replaceChildren(alertBox("Choose or drop a file, or give a URL."));
    if (url.value.trim()) {
      try {
        const body = { url: url.value.trim(), profile: profile.value, options };
        if (hook) body.webhook_url = hook;
        if (keep.value) body.expires_in = keep.value;
        const t = await call("POST", "/api/tasks", body);
        status.replaceChildren(h("p", { role: "status" }, "Task created: ", h("a", { href: `#/tasks/${t.id}` }, "Open task")));
        url.value = "";
      } catch (err) { return fail(err); }
    }
    const metadata = { profile: profile.value, options: JSON.stringify(options) };
    if (hook) metadata.webhook_url = hook;
    if (keep.value) metadata.expires_in = keep.value;
    for (const file of chosen.splice(0)) {
      const upload = new Upload(file, metadata, (u) => u.render && u.render());
      S.uploads.push(upload);
      list.append(uploadItem(upload));
      upload.start().then(() => {
        if (upload.state === "failed" && upload.error instanceof ApiError) fail(upload.error, { inStatus: false });
      });
    }
    chosenList.replaceChildren();
  };
  const pending = Object.keys(localStorage).filter((k) => k.startsWith("reelforge.upload:"))
    .map((k) => k.split(":").slice(1, -2).join(":"));
  show(
    h("h1", {}, "New task"),
    h("form", { class: "card", onsubmit: start },
      field("Profile", profile),
      optionsBox,
      h("h2", {}, "Input"),
      drop,
      field("Choose files", picker, "Each file becomes its own task."),
      chosenList,
      field("URL", url, "Or a link to fetch (http or https)."),
      field("Keep the files", keep, "After the task finishes, its input and outputs are removed after this long; the task stays listed."),
      h("h2", {}, "Notifications"),
      field("Webhook URL", webhook, "Optional: called when the task starts and ends, signed with your default webhook secret (Account page)."),
      hookError,
      status,
      h("button", { type: "submit" }, "Start")),
    pending.length ? h("p", { class: "hint" }, "Unfinished uploads: ", pending.join(", "),
      ". Choose the same file again to resume where it stopped.") : null,
    h("h2", {}, "Uploads"),
    list);
  for (const u of S.uploads) list.append(uploadItem(u));
  focusHeading();
}

// --- admin -------------------------------------------------------------------------------

/** The admin view: what the service is doing (refreshed every 5 s), users, invite codes. */
function adminPage() {
  if (!S.user.admin) return show(h("h1", {}, "Admin"), alertBox("Only an admin sees this page."));
  const live = h("div", { "aria-live": "polite" });
  show(h("div", { class: "admin" }, h("h1", {}, "Admin"), live, adminUsersSection(), invitesSection()));
  focusHeading();
  const refresh = async () => {
    try { live.replaceChildren(...overviewView(await call("GET", "/api/admin/overview"))); }
    catch (err) { live.replaceChildren(alertBox(err.message)); }
    return false;
  };
  refresh();
  every(5000, Infinity, refresh);
}

function overviewView(o) {
  const slots = o.workers.reduce((n, w) => n + w.slots, 0);
  const busy = o.workers.reduce((n, w) => n + w.jobs.length, 0);
  const q = o.queue;
  const queue = h("dl", { class: "meta" },
    h("dt", {}, "Waiting for a worker"), h("dd", { "data-testid": "queue-due" }, String(q.due)),
    h("dt", {}, "Longest wait"), h("dd", {}, q.oldest_due_seconds === null ? "none" : duration(q.oldest_due_seconds)),
    h("dt", {}, "Waiting to retry"), h("dd", {}, String(q.waiting)),
    h("dt", {}, "Running"), h("dd", {}, String(q.running)));
  const workers = o.workers.length
    ? h("div", { class: "table-wrap" }, h("table", { class: "stack workers" },
      h("caption", { class: "visually-hidden" }, "Worker processes that are alive"),
      h("thead", {}, h("tr", {}, ["Process", "Busy", "Jobs", "Started", "Last seen"].map((c) => h("th", { scope: "col" }, c)))),
      h("tbody", {}, o.workers.map((w) => h("tr", { "data-worker-id": w.id },
        h("td", { "data-label": "Process" }, `${w.host}, pid ${w.pid}`),
        h("td", { "data-label": "Busy" }, `${w.jobs.length} of ${w.slots}`),
        h("td", { "data-label": "Jobs", class: "name" }, w.jobs.length ? h("ul", { class: "plain" }, w.jobs.map(jobLine)) : "idle"),
        h("td", { "data-label": "Started" }, when(w.started_at)),
        h("td", { "data-label": "Last seen" }, when(w.seen_at)))))))
    : h("p", { class: "warn" }, "No worker is alive: queued tasks wait until one starts (reelforge serve or reelforge worker).");
  const orphaned = o.orphaned_jobs.length
    ? h("p", { class: "hint" }, `${o.orphaned_jobs.length} running job(s) belong to a worker that stopped answering; another worker takes them over when their lease runs out.`)
    : null;
  const failures = o.failures_24h.length
    ? h("div", { class: "table-wrap" }, h("table", { class: "failures" },
      h("caption", { class: "visually-hidden" }, "Failed tasks of the last 24 hours by error code"),
      h("thead", {}, h("tr", {}, ["Error code", "Tasks", "Last"].map((c) => h("th", { scope: "col" }, c)))),
      h("tbody", {}, o.failures_24h.map((f) => h("tr", {},
        h("td", {}, h("code", {}, f.code)), h("td", {}, String(f.count)), h("td", {}, when(f.last_at)))))))
    : h("p", { class: "hint" }, "No task failed in the last 24 hours.");
  return [
    section("Queue", queue),
    section(`Workers: ${o.workers.length} alive, ${busy} of ${slots} slots busy`, workers, orphaned),
    section("Failures in the last 24 hours", failures),
  ];
}

function jobLine(j) {
  const pct = j.percent === null ? "" : ` ${Math.round(j.percent)} %`;
  const speed = j.speed ? `, ${j.speed.toFixed(1)}× real time` : "";
  return h("li", { "data-task-id": j.task_id }, `${j.username}: ${j.profile || "task"}, ${j.stage || "starting"}${pct}${speed}`);
}

function adminUsersSection() {
  const body = h("tbody");
  const status = h("div");
  const row = (u) => {
    const self = u.id === S.user.id;
    const toggle = h("button", { type: "button", class: u.disabled ? "secondary" : "danger", disabled: self || null,
      title: self ? "You cannot disable your own account" : null, onclick: async () => {
        status.replaceChildren();
        if (!u.disabled && !await confirmDialog(`Disable ${u.username}?`,
          "Their sessions, tokens and API keys stop working at once, and they cannot log in until enabled again.", "Disable")) return;
        try {
          const changed = await call("PATCH", `/api/admin/users/${u.id}`, { disabled: !u.disabled });
          tr.replaceWith(row(changed));
        } catch (err) { status.replaceChildren(alertBox(err.message)); }
      } }, u.disabled ? "Enable" : "Disable");
    const tr = h("tr", { "data-user-id": u.id },
      h("td", { "data-label": "User", class: "name" }, h("a", { href: `#/admin/users/${u.id}` }, u.username)),
      h("td", { "data-label": "E-mail", class: "name" }, u.email),
      h("td", { "data-label": "Role" }, u.admin ? "admin" : "user"),
      h("td", { "data-label": "Status" }, h("span", { class: u.disabled ? "status status-failed" : "status status-succeeded" },
        u.disabled ? "disabled" : "active")),
      h("td", { "data-label": "Stores" }, bytes(u.stored_bytes)),
      h("td", { "data-label": "Since" }, when(u.created_at)),
      h("td", { "data-label": "Actions", class: "actions" }, toggle));
    return tr;
  };
  call("GET", "/api/admin/users").then((users) => body.replaceChildren(...users.map(row)))
    .catch((err) => status.replaceChildren(alertBox(err.message)));
  return section("Users", status, h("div", { class: "table-wrap" }, h("table", { class: "stack users" },
    h("caption", { class: "visually-hidden" }, "Every account"),
    h("thead", {}, h("tr", {}, ["User", "E-mail", "Role", "Status", "Stores", "Since", "Actions"].map((c) => h("th", { scope: "col" }, c)))),
    body)));
}

function inviteState(i) {
  if (i.used_by) return `used by ${i.used_by} ${when(i.used_at)}`;
  if (i.expires_at && new Date(i.expires_at) < new Date()) return "expired";
  return `unused, valid until ${when(i.expires_at)}`;
}

function invitesSection() {
  const body = h("tbody");
  const status = h("div");
  const shown = h("div");
  const mode = h("p", { class: "hint" });
  const note = h("input", { type: "text", maxlength: 200, placeholder: "for Dana, video team" });
  const days = h("input", { type: "number", min: 1, max: 365, value: 7, required: true });
  const row = (i) => h("tr", { "data-invite-id": i.id },
    h("td", { "data-label": "Note", class: "name" }, i.note || "—"),
    h("td", { "data-label": "Made" }, `${when(i.created_at)}${i.created_by ? ` by ${i.created_by}` : ""}`),
    h("td", { "data-label": "State" }, inviteState(i)),
    h("td", { "data-label": "Actions", class: "actions" }, i.used_by ? "" : h("button", { type: "button", class: "danger",
      onclick: async (e) => {
        const tr = e.currentTarget.closest("tr");
        status.replaceChildren();
        try { await call("DELETE", `/api/admin/invites/${i.id}`); tr.remove(); }
        catch (err) { status.replaceChildren(alertBox(err.message)); }
      } }, "Withdraw")));
  const form = h("form", { onsubmit: async (e) => {
    e.preventDefault();
    status.replaceChildren();
    try {
      const made = await call("POST", "/api/admin/invites", { note: note.value.trim(), expires_in_days: Number(days.value) });
      body.append(row(made.invite));
      const link = `${location.origin}/?invite=${encodeURIComponent(made.code)}#/signup`;
      shown.replaceChildren(secretField("Invite link", link, `Send it to the person it is for; it admits one signup. ${SHOWN_ONCE}`));
      form.reset();
    } catch (err) { status.replaceChildren(alertBox(err.message)); }
  } },
  h("h3", {}, "Make an invite"),
  h("div", { class: "grid2" }, field("Note", note, "Who it is for, as a reminder."), field("Valid for (days)", days)),
  h("button", { type: "submit" }, "Make an invite"));
  call("GET", "/api/admin/invites").then((list) => body.replaceChildren(...list.map(row)))
    .catch((err) => status.replaceChildren(alertBox(err.message)));
  call("GET", "/api/auth/signup").then(({ mode: m }) => {
    mode.textContent = m === "invite" ? "Signing up here needs an invite code."
      : `Signing up is ${m} here (REELFORGE_SIGNUP): invite codes only matter when it is "invite".`;
  }).catch(() => {});
  return section("Invites", mode, h("div", { class: "table-wrap" }, h("table", { class: "stack invites" },
    h("caption", { class: "visually-hidden" }, "Invite codes"),
    h("thead", {}, h("tr", {}, ["Note", "Made", "State", "Actions"].map((c) => h("th", { scope: "col" }, c)))),
    body)), shown, status, form);
}

/** One user's tasks, read-only. */
async function adminUserPage(id) {
  const status = h("div");
  const body = h("tbody");
  show(h("p", {}, h("a", { href: "#/admin" }, "← Admin")), h("h1", {}, "Tasks of a user"), status,
    h("div", { class: "table-wrap" }, h("table", {},
      h("caption", { class: "visually-hidden" }, "The user's tasks, newest first"),
      h("thead", {}, h("tr", {}, ["Input", "Profile", "Status", "Created"].map((c) => h("th", { scope: "col" }, c)))),
      body)));
  try {
    const users = await call("GET", "/api/admin/users");
    const user = users.find((u) => u.id === id);
    if (user) main().querySelector("h1").textContent = `Tasks of ${user.username}`;
    const tasks = await call("GET", `/api/admin/users/${id}/tasks?max=100&commands=false`);
    body.replaceChildren(...tasks.map((t) => h("tr", { "data-task-id": t.id },
      h("td", { class: "name" }, h("a", { href: `#/admin/users/${id}/tasks/${t.id}` }, taskName(t))),
      h("td", {}, t.profile), statusCell(t), h("td", {}, when(t.created_at)))));
    if (!tasks.length) status.replaceChildren(h("p", { class: "hint" }, "No tasks."));
  } catch (err) { status.replaceChildren(alertBox(err.message)); }
  focusHeading();
}

/** One task of a user, read-only. */
async function adminTaskPage(user, id) {
  try {
    const t = await call("GET", `/api/admin/users/${user}/tasks/${id}`);
    show(h("p", {}, h("a", { href: `#/admin/users/${user}` }, "← Tasks of the user")),
      h("h1", {}, taskName(t)), taskDetails(t));
  } catch (err) { show(h("h1", {}, "Task"), alertBox(err.message)); }
  focusHeading();
}

// --- start -------------------------------------------------------------------------------

function boot() {
  const data = document.getElementById("session");
  let session = null;
  try { session = data ? JSON.parse(data.textContent) : null; } catch { session = null; }
  adopt(session);
  document.getElementById("logout").addEventListener("click", logout);
  window.addEventListener("hashchange", route);
  route();
}

boot();
