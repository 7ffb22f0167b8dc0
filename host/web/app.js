// idfed web UI: hand-written vanilla JS, no build step, no external resources.
//
// Served under a strict Content-Security-Policy: no inline scripts or handlers, no style attributes, no
// eval. The DOM is built with createElement/textContent only (never innerHTML), so data from the server
// (names, descriptions, deny reasons…) can never become markup. The session is an HttpOnly cookie this
// script never sees; every request made with it (reads too) carries the CSRF token from GET /api/v1/web/session.

'use strict';

// ---------------------------------------------------------------------------------------------------
// DOM helpers

/** Creates an element: `props` are attributes (`class`, `for`, `text`, `on<event>`, booleans…). */
function h(tag, props, ...children) {
  const el = document.createElement(tag);
  for (const [key, value] of Object.entries(props || {})) {
    if (value === undefined || value === null || value === false) continue;
    if (key === 'class') el.className = value;
    else if (key === 'text') el.textContent = value;
    else if (key === 'for') el.htmlFor = value;
    else if (key === 'value') el.value = value;
    else if (key === 'dataset') Object.assign(el.dataset, value);
    else if (key.startsWith('on') && typeof value === 'function') el.addEventListener(key.slice(2), value);
    else if (['checked', 'disabled', 'hidden', 'required', 'readOnly', 'selected', 'multiple', 'open'].includes(key)) {
      el[key] = Boolean(value);
    } else el.setAttribute(key, value === true ? '' : String(value));
  }
  add(el, children);
  return el;
}

function add(el, children) {
  for (const child of children.flat(Infinity)) {
    if (child === null || child === undefined || child === false) continue;
    el.append(child instanceof Node ? child : String(child));
  }
  return el;
}

function clear(el, ...children) {
  el.replaceChildren();
  return add(el, children);
}

let idCounter = 0;
/** A unique element id. */
function uid(prefix = 'f') {
  idCounter += 1;
  return `${prefix}-${idCounter}`;
}

const enc = encodeURIComponent;

// ---------------------------------------------------------------------------------------------------
// Formatting

function plural(n, one, many) {
  return `${n.toLocaleString('en-US')} ${n === 1 ? one : many}`;
}

/** 5400 → "1 h 30 min". */
function fmtDuration(seconds) {
  if (seconds === null || seconds === undefined || Number.isNaN(seconds)) return '';
  const s = Math.round(seconds);
  const hrs = Math.floor(s / 3600);
  const min = Math.floor((s % 3600) / 60);
  const sec = s % 60;
  const parts = [];
  if (hrs) parts.push(`${hrs} h`);
  if (min) parts.push(`${min} min`);
  if (sec || parts.length === 0) parts.push(`${sec} s`);
  return parts.join(' ');
}

/** Milliseconds left → "mm:ss" or "h:mm:ss". */
function fmtCountdown(ms) {
  const total = Math.max(0, Math.floor(ms / 1000));
  const hrs = Math.floor(total / 3600);
  const min = Math.floor((total % 3600) / 60);
  const sec = total % 60;
  const two = (n) => String(n).padStart(2, '0');
  return hrs > 0 ? `${two(hrs)}:${two(min)}:${two(sec)}` : `${two(min)}:${two(sec)}`;
}

function fmtTime(rfc3339) {
  if (!rfc3339) return '';
  const d = new Date(rfc3339);
  if (Number.isNaN(d.getTime())) return rfc3339;
  return d.toLocaleString(undefined, {
    year: 'numeric', month: 'short', day: 'numeric', hour: '2-digit', minute: '2-digit', second: '2-digit',
  });
}

function timeEl(rfc3339) {
  if (!rfc3339) return h('span', { class: 'muted', text: '—' });
  return h('time', { datetime: rfc3339, title: rfc3339, text: fmtTime(rfc3339) });
}

function fmtBytes(n) {
  if (n < 1024) return `${n} B`;
  if (n < 1024 * 1024) return `${(n / 1024).toFixed(1)} KiB`;
  return `${(n / 1024 / 1024).toFixed(1)} MiB`;
}

function shortDigest(digest) {
  return digest ? digest.slice(0, 12) : '';
}

/** Quotes for a POSIX shell, as the server's `shell_quote`: 'it'\''s'. */
function shellQuote(value) {
  return `'${String(value).replaceAll("'", "'\\''")}'`;
}

const MASK = '••••••••••••••••••••••••';

// ---------------------------------------------------------------------------------------------------
// Domain constants (from host/src/sts/validate.rs and host/src/model.rs)

const PRINCIPALS = {
  'federated-user': {
    label: 'Federated user',
    api: 'GetFederationToken',
    explain: 'GetFederationToken: a federated user named after the caller. Needs an inline policy and/or '
      + 'managed policy ARNs: the session gets only what they allow.',
    min: 900, max: 129600, awsDefault: 43200, policy: true,
  },
  'iam-user': {
    label: 'IAM user',
    api: 'GetSessionToken',
    explain: "GetSessionToken: the account's own IAM user permissions. Takes no policy; cannot sign in to "
      + 'the AWS console.',
    min: 900, max: 129600, awsDefault: 43200, policy: false,
  },
  'assumed-role': {
    label: 'Assumed role',
    api: 'AssumeRole',
    explain: 'AssumeRole of a role ARN, with an optional session policy to narrow what the role allows.',
    min: 900, max: 43200, awsDefault: 3600, policy: true,
  },
};

/** STS's limit on an inline session policy: 2,048 characters of tab, LF, CR and U+0020–U+00FF. */
const POLICY_MAX_CHARS = 2048;

const OUTCOMES = ['issued', 'refused', 'plugin_denied', 'plugin_fault', 'failed', 'changed'];

function principalBadge(type) {
  const p = PRINCIPALS[type];
  return h('span', { class: 'badge badge-blue', title: p ? p.api : type, text: p ? p.label : type });
}

function outcomeBadge(outcome) {
  const cls = {
    issued: 'badge-green', changed: 'badge-blue', refused: 'badge-yellow',
    plugin_denied: 'badge-red', plugin_fault: 'badge-red', failed: 'badge-red',
  }[outcome] || '';
  return h('span', { class: `badge ${cls}`, text: (outcome || '').replace('_', ' ') });
}

// ---------------------------------------------------------------------------------------------------
// API

class ApiError extends Error {
  constructor(status, code, message, pointer) {
    super(message);
    this.status = status;
    this.code = code;
    this.pointer = pointer;
  }
}

const state = {
  user: null, // {kind, name, groups, is_admin}
  csrf: null,
  expires: null,
  directory: null,
  ssoOffered: false,
  /** Counts session changes (login, logout, ended, another user): an answer to an older one is stale. */
  generation: 0,
};

/** What the page says when the server no longer knows the session (`missing_credentials`, `invalid_session`). */
const SESSION_ENDED = 'Your session has ended. Log in again.';

/**
 * An error from a call whose session is gone (ended, or replaced by another user's): the page has been
 * rendered again already, so whoever called must draw nothing.
 */
function sessionGone(error) {
  error.gone = true;
  return error;
}

/** Whether `e` is the error of a call whose session is gone: nothing to show, the page moved on. */
function isGone(e) {
  return Boolean(e && e.gone);
}

/** Announces a failed action's message, unless its session is gone (the login page says so). */
function announceError(e) {
  if (!isGone(e)) announce(e.message, 'error');
}

/**
 * Calls the API: JSON in (`json`) or raw bytes (`body` + `contentType`), JSON out; throws ApiError with the
 * server's message. Every request carries the CSRF token once there is a session: the server wants it on reads
 * too. A 403 `csrf_failed` (a login in another tab replaced the browser's session, and with it the token) gets
 * the session again and, still the same user, the call is made once more. A call that answers after the
 * session ended or changed hands (401, or a login, logout or another user meanwhile) throws an error marked
 * gone (`isGone`): the page has been drawn again for what is now, and the caller draws nothing.
 * `session: true` is for the session's own calls (log in, log out, start): their 401 is theirs to handle;
 * `anyUser: true` retries after a `csrf_failed` even when the browser's session is now another user's.
 */
async function api(method, path, { json, body, contentType, ifMatch, session = false, anyUser = false, retry = true } = {}) {
  const generation = state.generation;
  const headers = { Accept: 'application/json' };
  if (state.csrf) headers['X-CSRF-Token'] = state.csrf;
  // Edits say which state they were based on: someone else's change meanwhile is not silently undone.
  if (ifMatch) headers['If-Match'] = `"${ifMatch}"`;
  let payload;
  if (json !== undefined) {
    headers['Content-Type'] = 'application/json';
    payload = JSON.stringify(json);
  } else if (body !== undefined) {
    headers['Content-Type'] = contentType;
    payload = body;
  }
  let response;
  try {
    response = await fetch(path, {
      method, headers, body: payload, credentials: 'same-origin', cache: 'no-store', redirect: 'error',
    });
  } catch {
    throw new ApiError(0, 'network', 'Cannot reach the idfed server. Check your connection and try again.');
  }
  const stale = () => !session && generation !== state.generation;
  if (response.status === 204) {
    if (stale()) throw sessionGone(new ApiError(0, 'session_changed', SESSION_ENDED));
    return null;
  }
  const text = await response.text();
  let data = null;
  if (text) {
    try { data = JSON.parse(text); } catch { data = null; }
  }
  if (stale()) throw sessionGone(new ApiError(0, 'session_changed', SESSION_ENDED));
  if (!response.ok) {
    const err = (data && data.error) || {};
    const code = err.code || `http_${response.status}`;
    // The API's own wording ("authenticate with Authorization: Bearer …") is for programs, not people.
    const message = code === 'missing_credentials' || code === 'invalid_session'
      ? SESSION_ENDED
      : err.message || `The server answered ${response.status} ${response.statusText}.`;
    const error = new ApiError(response.status, code, message, err.pointer);
    if (response.status === 403 && code === 'csrf_failed' && retry && state.user) {
      const now = await refreshSession();
      if (now === 'same' || (now === 'changed' && anyUser)) {
        return api(method, path, { json, body, contentType, ifMatch, session, anyUser, retry: false });
      }
      if (now === 'changed' || now === 'ended') throw sessionGone(error);
      throw error;
    }
    if (response.status === 401 && !session) {
      if (state.user) sessionEnded();
      throw sessionGone(error);
    }
    throw error;
  }
  return data;
}

let refreshing = null;

/**
 * Gets the browser's session again after a `csrf_failed`: a login in another tab replaced it. Answers
 * 'same' (the same user: the new CSRF token is stored), 'changed' (another user: the page is drawn again for
 * them), 'ended' (no session: the login page is shown) or 'failed' (the server could not say). Calls
 * refused at the same time share one refresh.
 */
function refreshSession() {
  if (!refreshing) {
    refreshing = (async () => {
      let session;
      try {
        session = await api('GET', '/api/v1/web/session', { session: true, retry: false });
      } catch (e) {
        if (e.status !== 401) return 'failed';
        if (state.user) sessionEnded();
        return 'ended';
      }
      const before = state.user;
      const same = before && session.user && before.kind === session.user.kind && before.name === session.user.name
        && Boolean(before.is_admin) === Boolean(session.user.is_admin);
      if (same) {
        state.user = session.user;
        state.csrf = session.csrf_token;
        state.expires = session.expires;
        setChrome();
        return 'same';
      }
      adopt(session);
      route();
      announce(`You are now logged in as ${session.user.name}: this browser logged in again elsewhere.`);
      return 'changed';
    })().finally(() => { refreshing = null; });
  }
  return refreshing;
}

// ---------------------------------------------------------------------------------------------------
// Status announcements (aria-live) and copying

let toastTimer = null;

/** Announces a short message: in the open dialog's live region if any, else the page's. */
function announce(message, kind = 'info') {
  const dialog = topDialog();
  const region = (dialog && dialog.querySelector('.dialog-status')) || document.getElementById('status');
  if (region.id === 'status') {
    clear(region, h('div', { class: `toast ${kind}`, text: message }));
    clearTimeout(toastTimer);
    toastTimer = setTimeout(() => clear(region), kind === 'error' ? 8000 : 3500);
  } else {
    region.textContent = '';
    // A fresh node, so screen readers announce a repeated message too.
    setTimeout(() => { region.textContent = message; }, 30);
  }
}

async function copyText(text) {
  if (navigator.clipboard && window.isSecureContext) {
    try {
      await navigator.clipboard.writeText(text);
      return true;
    } catch { /* fall back below */ }
  }
  const area = h('textarea', { class: 'offscreen', readonly: true, 'aria-hidden': 'true', tabindex: '-1' });
  area.value = text;
  const host = topDialog() || document.body;
  const focused = document.activeElement;
  host.append(area);
  area.select();
  let ok = false;
  try { ok = document.execCommand('copy'); } catch { ok = false; }
  area.remove();
  if (focused && focused.focus) focused.focus();
  return ok;
}

/** A button copying `getText()` (the real value, never shown), saying "Copied" for a moment. */
function copyButton(label, getText, { visible = 'Copy', cls = 'btn btn-sm' } = {}) {
  const button = h('button', { type: 'button', class: cls, 'aria-label': label, text: visible });
  button.addEventListener('click', async () => {
    const ok = await copyText(getText());
    if (ok) {
      button.textContent = 'Copied';
      announce(`${label.replace(/^Copy /, '')} copied to the clipboard.`.replace(/^./, (c) => c.toUpperCase()));
      setTimeout(() => { button.textContent = visible; }, 1600);
    } else {
      announce('Could not copy: your browser refused access to the clipboard.', 'error');
    }
  });
  return button;
}

// ---------------------------------------------------------------------------------------------------
// Keeping the keyboard focus when what holds it is rendered again

/** What identifies a control across a re-render: its tag and its accessible name. */
function focusKey(el) {
  if (!el || el === document.body || el === document.documentElement || el === main()) return null;
  return { tag: el.localName, name: el.getAttribute('aria-label') || el.textContent };
}

/** Focuses the control of `scope` matching `key` (re-rendered since), else the main content. */
function refocus(key, scope = main()) {
  const same = key && [...scope.querySelectorAll(key.tag)]
    .find((el) => (el.getAttribute('aria-label') || el.textContent) === key.name && !el.disabled);
  if (same) same.focus();
  else main().focus({ preventScroll: true });
}

/**
 * Marks a button busy while its action runs. Not `disabled`: a disabled button drops the keyboard focus (to
 * the page, so the next Tab starts over from the top); `aria-disabled` keeps it where the person left it.
 * The action's handler returns early while its button is busy.
 */
function setBusy(button, busy) {
  if (busy) button.setAttribute('aria-disabled', 'true');
  else button.removeAttribute('aria-disabled');
}

function isBusy(button) {
  return button.getAttribute('aria-disabled') === 'true';
}

/** Runs `render` (async), which renders part of `container` again, keeping the keyboard focus there. */
async function keepingFocus(container, render) {
  const restore = focusKeeper(container);
  try {
    await render();
  } finally {
    restore();
  }
}

/**
 * Before `container` is rendered again: answers a function that, once it is, puts a focus lost with the
 * old content back on the same control (or on the main content), so keyboard users keep their place.
 */
function focusKeeper(container) {
  const el = document.activeElement;
  if (!el || !container.contains(el) || el === container) return () => {};
  const key = focusKey(el);
  return () => {
    const now = document.activeElement;
    if (now && now !== document.body && now.isConnected) return; // the focus moved on meanwhile
    refocus(key, container);
  };
}

// ---------------------------------------------------------------------------------------------------
// Dialogs

const dialogStack = [];

function topDialog() {
  return dialogStack.length ? dialogStack[dialogStack.length - 1].dialog : null;
}

/**
 * Opens a modal dialog; focus moves into it and back to the opener when it closes. Returns
 * {dialog, body, foot, close, onClose(fn)}.
 */
function openDialog({ title, size = '', describedBy } = {}) {
  const opener = document.activeElement;
  const openerKey = focusKey(opener);
  const titleId = uid('dlg-title');
  const closers = [];
  const closeBtn = h('button', { type: 'button', class: 'btn icon-btn', 'aria-label': 'Close', text: '×' });
  const body = h('div', { class: 'dialog-body' });
  const foot = h('div', { class: 'dialog-foot' });
  const dialog = h('dialog', { class: size, 'aria-labelledby': titleId, 'aria-describedby': describedBy },
    h('div', { class: 'dialog-head' }, h('h2', { id: titleId, text: title }), closeBtn),
    body,
    foot,
    h('div', { class: 'visually-hidden dialog-status', role: 'status', 'aria-live': 'polite' }));
  const entry = { dialog };
  let closed = false;
  const close = (result) => {
    if (closed) return;
    closed = true;
    if (dialog.open) dialog.close();
    const index = dialogStack.indexOf(entry);
    if (index >= 0) dialogStack.splice(index, 1);
    dialog.remove();
    for (const fn of closers) fn(result);
    if (opener && opener.isConnected && typeof opener.focus === 'function') opener.focus();
    else if (!dialogStack.length) refocus(openerKey); // the opener was rendered again meanwhile
  };
  closeBtn.addEventListener('click', () => close());
  dialog.addEventListener('cancel', (event) => { event.preventDefault(); close(); });
  document.body.append(dialog);
  dialogStack.push(entry);
  dialog.showModal();
  return { dialog, body, foot, close, onClose: (fn) => closers.push(fn), titleId };
}

/** Asks to confirm; resolves true when confirmed. */
function confirmDialog({ title, message, confirm = 'Delete', danger = true }) {
  return new Promise((resolve) => {
    const d = openDialog({ title });
    let answer = false;
    d.body.append(h('p', { text: message }));
    const cancel = h('button', { type: 'button', class: 'btn', text: 'Cancel', onclick: () => d.close() });
    const ok = h('button', {
      type: 'button',
      class: danger ? 'btn btn-danger' : 'btn btn-primary',
      text: confirm,
      onclick: () => { answer = true; d.close(); },
    });
    d.foot.append(cancel, ok);
    d.onClose(() => resolve(answer));
    cancel.focus();
  });
}

function errorAlert(error, title) {
  const code = error && error.code ? h('span', { class: 'code-tag', text: ` (${error.code})` }) : null;
  return h('div', { class: 'alert alert-error', role: 'alert' },
    title ? h('strong', { text: title }) : null,
    h('span', { text: error ? error.message : 'Something went wrong.' }), code);
}

function loading(text = 'Loading…') {
  return h('p', { class: 'loading', role: 'status', text });
}

// ---------------------------------------------------------------------------------------------------
// Form helpers

/** A labelled field: {wrap, input}. `input` is made by `control` with the id set. */
function field(label, control, { hint, required = false, cls = '' } = {}) {
  const id = control.id || uid('f');
  control.id = id;
  const hintEl = hint ? h('p', { class: 'hint', id: `${id}-hint`, text: hint }) : null;
  const errorEl = h('p', { class: 'hint field-error', id: `${id}-error`, hidden: true });
  const describedBy = [hintEl ? hintEl.id : null, errorEl.id].filter(Boolean).join(' ');
  control.setAttribute('aria-describedby', describedBy);
  if (required) control.required = true;
  const wrap = h('div', { class: `field ${cls}` },
    h('label', { for: id }, label, required ? h('span', { class: 'req', 'aria-hidden': 'true', text: '*' }) : null),
    control, hintEl, errorEl);
  return { wrap, input: control, hint: hintEl, error: errorEl };
}

function setFieldError(f, message) {
  if (!f) return;
  if (message) {
    f.error.textContent = message;
    f.error.hidden = false;
    f.input.setAttribute('aria-invalid', 'true');
  } else {
    f.error.textContent = '';
    f.error.hidden = true;
    f.input.removeAttribute('aria-invalid');
  }
}

function checkbox(label, { checked = false, hint } = {}) {
  const input = h('input', { type: 'checkbox', id: uid('cb'), checked });
  const hintEl = hint ? h('p', { class: 'hint', id: `${input.id}-hint`, text: hint }) : null;
  if (hintEl) input.setAttribute('aria-describedby', hintEl.id);
  const wrap = h('div', { class: 'check' }, input, h('div', {}, h('label', { for: input.id, text: label }), hintEl));
  return { wrap, input };
}

function textInput(props = {}) {
  return h('input', { type: 'text', autocomplete: 'off', spellcheck: 'false', ...props });
}

function lines(text) {
  return text.split(/[\n,]/).map((s) => s.trim()).filter(Boolean);
}

/** Parses JSON, answering {value} or {error}. */
function parseJson(text) {
  try {
    return { value: JSON.parse(text) };
  } catch (e) {
    return { error: e.message };
  }
}

/**
 * Checks a session policy as the server will: JSON, at most 2,048 characters, only tab, LF, CR and
 * U+0020–U+00FF, a Statement. Answers {ok, message}.
 */
function checkPolicyText(text) {
  if (!text.trim()) return { ok: true, empty: true, message: 'No inline policy.' };
  const length = [...text].length;
  const bad = [...text].findIndex((c) => {
    const code = c.codePointAt(0);
    return !(code === 9 || code === 10 || code === 13 || (code >= 0x20 && code <= 0xff));
  });
  if (bad >= 0) {
    const c = [...text][bad];
    return { ok: false, message: `Character ${bad + 1} (U+${c.codePointAt(0).toString(16).toUpperCase().padStart(4, '0')}) is not allowed in a session policy (STS accepts tab, line breaks and U+0020–U+00FF).` };
  }
  const parsed = parseJson(text);
  if (parsed.error) return { ok: false, message: `Not valid JSON: ${parsed.error}` };
  const doc = parsed.value;
  if (!doc || typeof doc !== 'object' || Array.isArray(doc)) {
    return { ok: false, message: 'A policy is a JSON object with a "Statement".' };
  }
  if (!('Statement' in doc)) return { ok: false, message: 'The policy has no "Statement".' };
  if (length > POLICY_MAX_CHARS) {
    return { ok: false, message: `Valid JSON, but ${length.toLocaleString('en-US')} of ${POLICY_MAX_CHARS.toLocaleString('en-US')} characters: too long for STS.` };
  }
  return { ok: true, message: `Valid JSON, ${length.toLocaleString('en-US')} of ${POLICY_MAX_CHARS.toLocaleString('en-US')} characters.` };
}

// ---------------------------------------------------------------------------------------------------
// Session

const main = () => document.getElementById('main');

function setChrome() {
  const user = state.user;
  const nav = document.getElementById('nav');
  const account = document.getElementById('account');
  nav.hidden = !user;
  account.hidden = !user;
  if (!user) return;
  const admin = Boolean(user.is_admin);
  for (const el of nav.querySelectorAll('.admin-only')) el.hidden = !admin;
  document.getElementById('whoami').textContent = user.name;
  document.getElementById('whoami').title = user.groups && user.groups.length
    ? `Groups: ${user.groups.join(', ')}` : 'No groups';
  document.getElementById('avatar').textContent = (user.name || '?').slice(0, 1).toUpperCase();
  document.getElementById('admin-badge').hidden = !admin;
}

function markNav(route) {
  for (const link of document.querySelectorAll('#nav a[data-route]')) {
    if (link.dataset.route === route) link.setAttribute('aria-current', 'page');
    else link.removeAttribute('aria-current');
  }
}

function clearStatus() {
  clearTimeout(toastTimer);
  clear(document.getElementById('status'));
}

function adopt(session) {
  clearStatus();
  state.generation += 1;
  state.user = session.user;
  state.csrf = session.csrf_token;
  state.expires = session.expires;
  setChrome();
}

function closeAllDialogs() {
  while (dialogStack.length) {
    const { dialog } = dialogStack.pop();
    if (dialog.open) dialog.close();
    dialog.remove();
  }
}

/** Forgets the session and shows the login page, with `notice`. */
function showLoggedOut(notice) {
  state.generation += 1;
  state.user = null;
  state.csrf = null;
  state.expires = null;
  closeAllDialogs();
  clearStatus();
  setChrome();
  renderLogin(notice);
}

let endedNotice = null;

function sessionEnded() {
  endedNotice = 'Your session has ended. Log in again to continue.';
  showLoggedOut();
}

/**
 * Logs out. Only a 204 (or a 401: there was no session left) means logged out: after any other answer the
 * session may well live on, so the page stays as it is and says logging out failed.
 */
async function logout() {
  const button = document.getElementById('logout');
  if (isBusy(button)) return;
  setBusy(button, true);
  try {
    await api('DELETE', '/api/v1/web/session', { session: true, anyUser: true });
  } catch (e) {
    if (e.status !== 401 && !(isGone(e) && !state.user)) {
      if (!isGone(e)) announce(`Logging out failed: ${e.message}`, 'error');
      return;
    }
  } finally {
    setBusy(button, false);
  }
  endedNotice = null;
  showLoggedOut('You are logged out.');
}

/** After a login: the session adopted, the page the address names (My connectors by default) shown. */
function loggedIn(session) {
  adopt(session);
  if (!location.hash || location.hash === '#' || location.hash === '#/') location.hash = '#/connectors';
  else route();
  // The login page is gone: the focus goes to the page's content, as after following a link.
  main().focus({ preventScroll: true });
}

async function renderLogin(notice) {
  document.title = 'Log in · idfed';
  markNav(null);
  const root = main();
  const username = textInput({ name: 'username', autocomplete: 'username', autocapitalize: 'none' });
  const password = h('input', { type: 'password', name: 'password', autocomplete: 'current-password' });
  const fUser = field('User name', username, { required: true });
  const fPass = field('Password', password, { required: true });
  const errorBox = h('div', { class: 'login-error' });
  const lead = h('p', { class: 'lead', text: 'Log in to get temporary AWS credentials.' });
  const submit = h('button', { type: 'submit', class: 'btn btn-primary', text: 'Log in' });
  const form = h('form', { novalidate: true }, errorBox, fUser.wrap, fPass.wrap, submit);
  const ssoBox = h('div', { class: 'login-sso', hidden: true });
  const info = notice || endedNotice;
  endedNotice = null;
  clear(root, h('div', { class: 'login-wrap' }, h('section', { class: 'login-card', 'aria-labelledby': 'login-title' },
    h('div', { class: 'logo' }, h('img', { src: '/assets/favicon.svg', alt: '', width: 48, height: 48 })),
    h('h1', { id: 'login-title', text: 'Log in to idfed' }),
    lead,
    info ? h('div', { class: 'alert', role: 'status', text: info }) : null,
    form,
    ssoBox,
    h('p', { class: 'login-foot', text: 'Credentials are issued through AWS STS and expire on their own.' }))));
  form.addEventListener('submit', async (event) => {
    event.preventDefault();
    if (isBusy(submit)) return;
    clear(errorBox);
    setFieldError(fUser, username.value.trim() ? null : 'Enter your user name.');
    setFieldError(fPass, password.value ? null : 'Enter your password.');
    if (!username.value.trim()) { username.focus(); return; }
    if (!password.value) { password.focus(); return; }
    setBusy(submit, true);
    submit.textContent = 'Logging in…';
    try {
      const session = await api('POST', '/api/v1/web/session', {
        json: { username: username.value.trim(), password: password.value }, session: true,
      });
      password.value = '';
      loggedIn(session);
    } catch (e) {
      password.value = '';
      errorBox.append(errorAlert(e, e.code === 'too_many_attempts' ? 'Too many attempts' : 'Could not log in'));
      setBusy(submit, false);
      submit.textContent = 'Log in';
      password.focus();
    }
  });
  username.focus();
  // The wording depends on the directory behind idfed; with Crowd, single sign-on is offered too.
  let directory = state.directory;
  if (!directory) {
    try {
      const ready = await api('GET', '/readyz', { session: true });
      directory = ready.directory;
      state.directory = directory;
      state.ssoOffered = ready.sso === true;
    } catch { /* keep the generic wording */ }
  }
  if (!form.isConnected || !directory) return;
  lead.textContent = directory === 'crowd' ? 'Log in with your Atlassian Crowd account.' : 'Log in with your idfed account.';
  if (directory !== 'crowd' || !state.ssoOffered) return;
  const sso = h('button', { type: 'button', class: 'btn', text: 'Log in with Crowd SSO' });
  clear(ssoBox, h('p', { class: 'login-or', text: 'or' }), sso,
    h('p', { class: 'hint', text: 'Uses the Crowd session this browser already has, from another Atlassian application.' }));
  ssoBox.hidden = false;
  sso.addEventListener('click', async () => {
    if (isBusy(sso)) return;
    clear(errorBox);
    setBusy(sso, true);
    sso.textContent = 'Logging in…';
    try {
      // Also after a logout, which paused single sign-on for this browser: asking resumes it.
      loggedIn(await api('POST', '/api/v1/web/session', { json: { sso: true }, session: true }));
    } catch (e) {
      errorBox.append(e.status === 401
        ? h('div', { class: 'alert alert-error', role: 'alert', text: 'No Crowd single sign-on session in this browser: log in with your password.' })
        : errorAlert(e, 'Could not log in'));
      setBusy(sso, false);
      sso.textContent = 'Log in with Crowd SSO';
    }
  });
}

// ---------------------------------------------------------------------------------------------------
// My connectors

function pageHead(title, description, ...actions) {
  return h('div', { class: 'page-head' },
    h('div', {}, h('h1', { text: title }), description != null ? h('p', { text: description }) : null),
    actions.length ? h('div', { class: 'actions' }, actions) : null);
}

async function screenMyConnectors(root) {
  document.title = 'My connectors · idfed';
  // Replaced by what loads, if it is still on the page then (not after a logout or another screen).
  const pending = loading();
  clear(root, pageHead('My connectors', 'The AWS access you may use. Each request issues fresh temporary credentials through AWS STS and is recorded in the audit log.'), pending);
  const show = (el) => { if (pending.isConnected) pending.replaceWith(el); };
  let list;
  try {
    list = await api('GET', '/api/v1/connectors');
  } catch (e) {
    if (!isGone(e)) show(errorAlert(e, 'Could not list your connectors'));
    return;
  }
  const connectors = list.connectors || [];
  connectors.sort((a, b) => a.name.localeCompare(b.name));
  if (!connectors.length) {
    show(h('div', { class: 'panel empty' },
      h('h2', { text: 'No connectors for you yet' }),
      h('p', { text: 'A connector gives access to an AWS account. Ask an administrator to add one of your groups to a connector.' }),
      state.user && state.user.groups && state.user.groups.length
        ? h('p', { class: 'small' }, 'Your groups: ', state.user.groups.map((g) => h('span', { class: 'tag', text: g })))
        : null));
    return;
  }
  const cards = h('div', { class: 'cards' });
  for (const c of connectors) cards.append(connectorCard(c));
  show(h('section', { 'aria-label': 'Connectors' }, cards));
}

function connectorCard(c) {
  const titleId = uid('card');
  const result = h('div', { class: 'result', 'aria-live': 'polite' });
  const getBtn = h('button', { type: 'button', class: 'btn btn-primary', text: 'Get credentials', disabled: !c.enabled });
  const testBtn = h('button', { type: 'button', class: 'btn', text: 'Test access', disabled: !c.enabled });
  const consoleBtn = c.principal_type === 'iam-user' ? null
    : h('button', { type: 'button', class: 'btn', text: 'Open AWS console', disabled: !c.enabled });
  for (const b of [getBtn, testBtn, consoleBtn]) if (b) b.setAttribute('aria-describedby', titleId);
  getBtn.addEventListener('click', () => openCredentials(c));
  // A vend a policy plugin wants approved first shows the approval request, whose Check again repeats it.
  const needsApproval = (answer, repeat) => {
    if (!answer || !answer.approval) return false;
    const hadFocus = result.contains(document.activeElement);
    clear(result, approvalPanel(answer.approval, repeat));
    focusInto(result, hadFocus);
    return true;
  };
  const testAccess = async () => {
    if (isBusy(testBtn)) return;
    setBusy(testBtn, true);
    clear(result, loading('Getting credentials and asking AWS who they are…'));
    try {
      const who = await api('GET', `/api/v1/connectors/${enc(c.name)}/caller-identity`);
      if (needsApproval(who, testAccess)) return;
      clear(result, h('div', { class: 'alert alert-ok' },
        h('strong', { text: 'Access works. AWS says you are:' }),
        h('code', { class: 'arn', text: who.arn }),
        h('div', { class: 'small muted', text: `Account ${who.account} · user id ${who.user_id}` })));
    } catch (e) {
      if (isGone(e)) return;
      clear(result, denialOrError(e, 'The test failed'));
    } finally {
      setBusy(testBtn, false);
    }
  };
  testBtn.addEventListener('click', testAccess);
  if (consoleBtn) {
    const openConsole = async () => {
      if (isBusy(consoleBtn)) return;
      setBusy(consoleBtn, true);
      clear(result, loading('Asking AWS for a console sign-in link…'));
      try {
        const answer = await api('POST', `/api/v1/connectors/${enc(c.name)}/console-url`, { json: {} });
        if (needsApproval(answer, openConsole)) return;
        if (!/^https?:\/\//i.test(answer.url || '')) throw new ApiError(502, 'bad_url', 'The server answered a sign-in link that is not an http(s) URL.');
        clear(result, h('div', { class: 'alert alert-ok' },
          h('strong', { text: 'Your console sign-in link is ready.' }),
          h('a', { href: answer.url, target: '_blank', rel: 'noopener noreferrer', class: 'btn btn-primary btn-sm', text: 'Open the AWS console ↗' }),
          h('div', { class: 'small muted' }, 'Valid until ', timeEl(answer.expires), '. It signs you in: do not share it.')));
      } catch (e) {
        if (isGone(e)) return;
        clear(result, denialOrError(e, 'Could not open the AWS console'));
      } finally {
        setBusy(consoleBtn, false);
      }
    };
    consoleBtn.addEventListener('click', openConsole);
  }
  return h('article', { class: `card${c.enabled ? '' : ' disabled'}`, 'aria-labelledby': titleId },
    h('div', { class: 'card-head' },
      h('h2', { id: titleId, text: c.name }),
      h('div', {}, principalBadge(c.principal_type), c.enabled ? null : h('span', { class: 'badge', text: 'Disabled' }))),
    c.description ? h('p', { class: 'desc', text: c.description }) : null,
    h('dl', { class: 'meta' },
      h('div', {}, h('dt', { text: 'Account' }), h('dd', { text: c.account })),
      h('div', {}, h('dt', { text: 'Via' }), h('dd', { text: PRINCIPALS[c.principal_type] ? PRINCIPALS[c.principal_type].api : c.principal_type }))),
    result,
    h('div', { class: 'btn-row' }, getBtn, testBtn, consoleBtn));
}

/** A plugin denial, shown prominently, or another error. */
function denialOrError(e, title) {
  if (e.code === 'plugin_denied') {
    return h('div', { class: 'alert alert-denied', role: 'alert' },
      h('strong', { class: 'denied-title', text: 'Denied by a policy plugin' }),
      h('p', { class: 'denied-reason', text: e.message }),
      h('p', { class: 'small muted', text: 'A plugin on this connector refused the request. The reason above comes from the plugin; it is also in the audit log.' }));
  }
  if (e.code && e.code.startsWith('plugin_')) {
    return h('div', { class: 'alert alert-denied', role: 'alert' },
      h('strong', { class: 'denied-title', text: 'A policy plugin failed, so the request was denied' }),
      h('p', { class: 'denied-reason', text: e.message }),
      h('span', { class: 'code-tag', text: e.code }));
  }
  return errorAlert(e, title);
}

// ---------------------------------------------------------------------------------------------------
// Approvals: a vend a policy plugin wants approved first is answered 202 {approval}

const APPROVAL_STATUS = {
  pending: ['badge-yellow', 'Pending'],
  approved: ['badge-green', 'Approved'],
  denied: ['badge-red', 'Denied'],
  expired: ['', 'Expired'],
  used: ['badge-blue', 'Used'],
};

function approvalBadge(status) {
  const [cls, text] = APPROVAL_STATUS[status] || ['', status || ''];
  return h('span', { class: `badge ${cls}`, text });
}

/** `credentials`, `console-sign-in`, `service-token:ecr` → words. */
function fmtPurpose(purpose) {
  if (purpose === 'credentials') return 'Credentials';
  if (purpose === 'console-sign-in') return 'Console sign-in';
  if (purpose && purpose.startsWith('service-token:')) return `Service token (${purpose.slice('service-token:'.length)})`;
  return purpose || '';
}

/** Whether the logged-in user asked for `approval` (the server names requesters as the audit log does). */
function isOwnApproval(approval) {
  return Boolean(state.user && approval.requester === state.user.name);
}

/**
 * What a vend that needs an approval shows (`approval` from its 202, or as read since): who may approve,
 * why, the request's id and expiry, and "Check again", which reads the request's status and, once it is
 * approved, calls `repeat()` to make the same request again (which then gets the credentials). A denied or
 * expired request says so, and offers to ask again (a new approval request).
 */
function approvalPanel(approval, repeat) {
  const status = approval.status;
  const check = h('button', { type: 'button', class: 'btn btn-primary btn-sm', text: 'Check again' });
  const askAgain = h('button', { type: 'button', class: 'btn btn-sm', text: 'Ask again' });
  const problem = h('div', {});
  const titles = {
    pending: 'Approval needed',
    approved: 'Approved',
    denied: 'Approval denied',
    expired: 'The approval request expired',
    used: 'The approval was used already',
  };
  const explain = {
    pending: ['A member of ', h('span', { class: 'tag', text: approval.group }), ' must approve this request before you get access (not you: nobody approves their own request). They see it on their Approvals page; then press Check again.'],
    approved: ['Approved by ', approval.decided_by || 'an approver', '. Press Check again to get access.'],
    denied: [`Denied by ${approval.decided_by || 'an approver'}`, approval.decided_at ? [' at ', timeEl(approval.decided_at)] : null, '. You may ask again.'],
    expired: ['Nobody decided in time, or the approval was not used in time. You may ask again.'],
    used: ['The approval of this request was used by another request. You may ask again.'],
  };
  const panel = h('div', { class: `alert alert-approval approval-${status}`, role: status === 'pending' ? 'status' : 'alert' },
    h('strong', { class: 'approval-title', text: titles[status] || `Approval ${status}` }),
    h('p', {}, explain[status] || null),
    h('p', { class: 'approval-reason' }, h('span', { class: 'muted', text: 'Why: ' }), approval.reason),
    approval.comment ? h('p', { class: 'approval-comment' }, h('span', { class: 'muted', text: `${approval.decided_by || 'The approver'} says: ` }), approval.comment) : null,
    h('dl', { class: 'approval-meta' },
      h('div', {}, h('dt', { text: 'Approvers' }), h('dd', { text: approval.group })),
      h('div', {}, h('dt', { text: 'Request id' }), h('dd', {}, h('code', { class: 'approval-id', text: approval.id }))),
      h('div', {}, h('dt', { text: status === 'approved' ? 'Usable until' : 'Expires' }), h('dd', {}, timeEl(approval.expires))),
      h('div', {}, h('dt', { text: 'Status' }), h('dd', {}, approvalBadge(status)))),
    problem,
    h('div', { class: 'btn-row' }, status === 'pending' || status === 'approved' ? check : askAgain));
  check.addEventListener('click', async () => {
    if (isBusy(check)) return;
    setBusy(check, true);
    let now;
    try {
      now = await api('GET', `/api/v1/approvals/${enc(approval.id)}`);
    } catch (e) {
      setBusy(check, false);
      if (!isGone(e)) clear(problem, errorAlert(e, 'Could not check the approval'));
      return;
    }
    setBusy(check, false);
    if (now.status === 'approved') {
      const host = panel.parentElement;
      const hadFocus = panel.contains(document.activeElement);
      await repeat();
      if (host) focusInto(host, hadFocus);
      return;
    }
    const next = approvalPanel(now, repeat);
    panel.replaceWith(next);
    const again = next.querySelector('button');
    if (again) again.focus();
    announce(now.status === 'pending' ? 'Still waiting for an approval.' : (titles[now.status] || `Approval ${now.status}`));
  });
  askAgain.addEventListener('click', async () => {
    const host = panel.parentElement;
    const hadFocus = panel.contains(document.activeElement);
    await repeat();
    if (host) focusInto(host, hadFocus);
  });
  return panel;
}

/** After `container` was drawn again: a focus lost with what it held goes to its first button, else to it. */
function focusInto(container, hadFocus) {
  if (!hadFocus) return;
  const now = document.activeElement;
  if (now && now !== document.body && now.isConnected) return;
  const target = container.querySelector('.alert-approval button') || container;
  if (target === container && !container.hasAttribute('tabindex')) container.setAttribute('tabindex', '-1');
  target.focus({ preventScroll: true });
}

// ---------------------------------------------------------------------------------------------------
// The credentials dialog

function openCredentials(connector) {
  const d = openDialog({ title: `Credentials for ${connector.name}`, size: 'medium' });
  const content = h('div', { 'aria-live': 'polite' });
  d.body.append(content);
  let timer = null;
  d.onClose(() => clearInterval(timer));

  const durationSel = h('select', { id: uid('dur') },
    h('option', { value: '', text: "Connector's default" }),
    [[900, '15 minutes'], [3600, '1 hour'], [14400, '4 hours'], [28800, '8 hours'], [43200, '12 hours']]
      .map(([v, t]) => h('option', { value: String(v), text: t })));
  const again = h('button', { type: 'button', class: 'btn', text: 'Get new credentials' });
  const done = h('button', { type: 'button', class: 'btn btn-primary', text: 'Done', onclick: () => d.close() });
  // Why, for the connector's policy plugins and the audit log (a plugin may require one).
  const reasonInput = h('input', { type: 'text', id: uid('reason'), maxlength: '1024', placeholder: 'Why you need it (optional)', autocomplete: 'off' });
  const ticketInput = h('input', { type: 'text', id: uid('ticket'), maxlength: '128', placeholder: 'e.g. OPS-1234', autocomplete: 'off', size: '12' });
  d.foot.append(h('label', { for: durationSel.id, class: 'small', text: 'Duration' }), durationSel,
    h('label', { for: reasonInput.id, class: 'small', text: 'Reason' }), reasonInput,
    h('label', { for: ticketInput.id, class: 'small', text: 'Ticket' }), ticketInput, again,
    h('span', { class: 'spacer' }), done);

  /** The request the fields describe now. */
  function currentRequest() {
    const request = { format: 'json' };
    if (durationSel.value) request.duration_seconds = Number(durationSel.value);
    if (reasonInput.value.trim()) request.justification = reasonInput.value.trim();
    if (ticketInput.value.trim()) request.ticket = ticketInput.value.trim();
    return request;
  }

  /**
   * Asks for credentials (`request`: what the fields say now). A request a policy plugin wants approved first
   * shows the approval request; its Check again makes this very request again (the same duration, reason and
   * ticket, whatever the fields say by then), which an approval is for.
   */
  async function issue(request = currentRequest()) {
    if (isBusy(again)) return;
    clearInterval(timer);
    setBusy(again, true);
    const hadFocus = content.contains(document.activeElement);
    clear(content, loading('Getting credentials from AWS STS…'));
    try {
      const creds = await api('POST', `/api/v1/connectors/${enc(connector.name)}/credentials`, { json: request });
      if (creds && creds.approval) clear(content, approvalPanel(creds.approval, () => issue(request)));
      else showCredentials(creds);
    } catch (e) {
      if (isGone(e)) return;
      clear(content, denialOrError(e, 'Could not get credentials'));
    } finally {
      setBusy(again, false);
    }
    focusInto(content, hadFocus);
  }

  function showCredentials(c) {
    const name = c.connector || connector.name;
    // Counted down from when they arrived, by their duration: this computer's clock may be wrong, so it
    // is not compared with the server's expiration (which is shown as it is).
    const seconds = Number(c.duration_seconds);
    const expires = Number.isFinite(seconds) && seconds > 0
      ? Date.now() + seconds * 1000
      : new Date(c.expiration).getTime();
    const countdown = h('span', { class: 'countdown', 'aria-live': 'off' });
    const summary = h('div', { class: 'cred-summary' },
      h('span', {}, 'Expires in'), countdown,
      h('span', { class: 'muted' }, '(', timeEl(c.expiration), ')'),
      c.capped ? h('span', { class: 'badge badge-yellow', title: "Capped at the connector's maximum or by a plugin", text: `Capped to ${fmtDuration(c.duration_seconds)}` })
        : h('span', { class: 'badge', text: fmtDuration(c.duration_seconds) }));
    const tick = () => {
      const left = expires - Date.now();
      if (left <= 0) {
        countdown.textContent = 'expired';
        summary.classList.add('expired');
        clearInterval(timer);
      } else {
        countdown.textContent = fmtCountdown(left);
      }
    };
    tick();
    timer = setInterval(tick, 1000);

    const grid = h('div', { class: 'secret-grid' });
    const row = (label, value, secret) => {
      const input = h('input', { type: 'text', id: uid('cred'), readOnly: true, value: secret ? MASK : value, spellcheck: 'false', autocomplete: 'off' });
      const lower = label.charAt(0).toLowerCase() + label.slice(1);
      const buttons = h('div', { class: 'btn-row' });
      if (secret) {
        input.dataset.masked = 'true';
        const toggle = h('button', { type: 'button', class: 'btn btn-sm', text: 'Show', 'aria-label': `Show ${lower}` });
        toggle.addEventListener('click', () => {
          const masked = input.dataset.masked === 'true';
          input.value = masked ? value : MASK;
          input.dataset.masked = masked ? 'false' : 'true';
          toggle.textContent = masked ? 'Hide' : 'Show';
          toggle.setAttribute('aria-label', `${masked ? 'Hide' : 'Show'} ${lower}`);
        });
        buttons.append(toggle);
      }
      buttons.append(copyButton(`Copy ${lower}`, () => value));
      grid.append(h('label', { for: input.id, text: label }), input, buttons);
    };
    row('Access key ID', c.access_key_id, false);
    row('Secret access key', c.secret_access_key, true);
    row('Session token', c.session_token, true);

    const env = `export AWS_ACCESS_KEY_ID=${shellQuote(c.access_key_id)}\n`
      + `export AWS_SECRET_ACCESS_KEY=${shellQuote(c.secret_access_key)}\n`
      + `export AWS_SESSION_TOKEN=${shellQuote(c.session_token)}\n`
      + `export AWS_CREDENTIAL_EXPIRATION=${shellQuote(c.expiration)}\n`;
    const ini = `[${name}]\naws_access_key_id = ${c.access_key_id}\n`
      + `aws_secret_access_key = ${c.secret_access_key}\naws_session_token = ${c.session_token}\n`;
    const config = `# Once per machine: idfed login --server ${location.origin} --user ${state.user ? shellQuote(state.user.name) : 'YOU'}\n`
      + `[profile ${name}]\ncredential_process = idfed creds ${name}\n`;
    const maskText = (text) => text.replaceAll(c.secret_access_key, MASK).replaceAll(c.session_token, MASK);

    const pres = [];
    const snippet = (title, hint, text, copyLabel, hasSecrets) => {
      const pre = h('pre', { tabindex: '0', 'aria-label': title, text: hasSecrets ? maskText(text) : text });
      if (hasSecrets) pres.push([pre, text]);
      return h('figure', { class: 'snippet' },
        h('div', { class: 'snippet-head' },
          h('div', {}, h('h4', { text: title }), h('p', { class: 'hint', text: hint })),
          copyButton(copyLabel, () => text)),
        pre);
    };
    let shown = false;
    const showAll = h('button', { type: 'button', class: 'btn btn-sm', 'aria-pressed': 'false', text: 'Show secrets in snippets' });
    showAll.addEventListener('click', () => {
      shown = !shown;
      showAll.setAttribute('aria-pressed', String(shown));
      for (const [pre, text] of pres) pre.textContent = shown ? text : maskText(text);
    });

    clear(content,
      summary,
      h('h3', { class: 'section-title', text: 'Credentials' }),
      grid,
      h('p', { class: 'hint', text: 'Secrets stay masked until you press Show; Copy copies the real value.' }),
      h('div', { class: 'snippets-head section-title' }, h('span', { text: 'Use them' }), showAll),
      snippet('Shell environment', 'bash or zsh: paste into a terminal', env, 'Copy shell exports', true),
      snippet('Credentials file section', 'Add to ~/.aws/credentials, then use --profile ' + name, ini, 'Copy credentials file section', true),
      snippet('AWS config profile', 'Add to ~/.aws/config: the AWS CLI and SDKs then ask idfed for fresh credentials by themselves', config, 'Copy AWS config profile', false),
      h('p', { class: 'small muted' }, 'Request id ', h('code', { text: c.request_id || '' }), ' (in the audit log).'));
  }

  again.addEventListener('click', () => issue());
  issue();
}

// ---------------------------------------------------------------------------------------------------
// Approvals: the requests the user may decide, and their own

async function screenApprovals(root) {
  document.title = 'Approvals · idfed';
  const refreshBtn = h('button', { type: 'button', class: 'btn', text: 'Refresh' });
  const listPanel = h('section', { class: 'panel', 'aria-labelledby': 'approvals-h' });
  clear(root, pageHead('Approvals', 'Access that a policy asks someone to approve first: the requests a group of yours may decide, and your own. Nobody decides their own request. Once approved, the requester asks again, once, before the approval expires.', refreshBtn),
    listPanel);
  const refresh = () => keepingFocus(root, load);
  refreshBtn.addEventListener('click', () => { if (!isBusy(refreshBtn)) refresh(); });

  const heading = (count) => h('div', { class: 'panel-head' }, h('h2', { id: 'approvals-h', text: 'Requests' }),
    count === undefined ? null : h('span', { class: 'muted', text: plural(count, 'request', 'requests') }));

  async function load() {
    setBusy(refreshBtn, true);
    clear(listPanel, heading(), loading());
    let list;
    try {
      list = await api('GET', '/api/v1/approvals');
    } catch (e) {
      if (isGone(e)) return;
      clear(listPanel, heading(), errorAlert(e, 'Could not list the approval requests'));
      return;
    } finally {
      setBusy(refreshBtn, false);
    }
    const approvals = list.approvals || [];
    if (!approvals.length) {
      clear(listPanel, heading(0), h('p', { class: 'muted', text: 'No approval requests: none of yours, and none a group of yours may decide.' }));
      return;
    }
    // Pending first (as the server sends them), then newest first.
    approvals.sort((a, b) => (a.status !== 'pending') - (b.status !== 'pending') || String(b.created).localeCompare(String(a.created)));
    const groups = new Set(((state.user && state.user.groups) || []).map((g) => g.toLowerCase()));
    const tbody = h('tbody');
    for (const a of approvals) {
      const own = isOwnApproval(a);
      const member = groups.has(String(a.group).toLowerCase());
      let actions;
      if (a.status !== 'pending') actions = null;
      else if (own) actions = h('span', { class: 'muted small', text: 'Your request: someone else decides' });
      else if (!member) actions = h('span', { class: 'muted small', text: `For members of ${a.group}` });
      else {
        const who = `${a.requester}'s request for ${a.connector}`;
        const approve = h('button', { type: 'button', class: 'btn btn-sm btn-primary', text: 'Approve', 'aria-label': `Approve ${who}` });
        const deny = h('button', { type: 'button', class: 'btn btn-sm', text: 'Deny', 'aria-label': `Deny ${who}` });
        approve.addEventListener('click', () => openDecisionDialog(a, true, refresh));
        deny.addEventListener('click', () => openDecisionDialog(a, false, refresh));
        actions = h('div', { class: 'btn-row' }, approve, deny);
      }
      tbody.append(h('tr', { class: own ? 'own' : null, dataset: { approval: a.id } },
        h('td', {}, h('strong', { text: a.requester }), own ? h('span', { class: 'sub', text: '(you)' }) : null,
          h('span', { class: 'sub' }, 'Asked ', timeEl(a.created))),
        h('td', {}, h('strong', { class: 'mono', text: a.connector })),
        h('td', { text: fmtPurpose(a.purpose) }),
        h('td', { class: 'nowrap' }, a.duration_seconds ? fmtDuration(a.duration_seconds) : h('span', { class: 'muted', text: 'Default' }),
          a.max_duration_seconds ? h('span', { class: 'sub', text: `At most ${fmtDuration(a.max_duration_seconds)}` }) : null),
        h('td', { class: 'reason' }, a.justification || h('span', { class: 'muted', text: '—' })),
        h('td', {}, a.ticket ? h('code', { text: a.ticket }) : h('span', { class: 'muted', text: '—' })),
        h('td', {}, h('span', { class: 'tag', text: a.group })),
        h('td', { class: 'reason', text: a.reason }),
        h('td', {}, approvalBadge(a.status),
          a.decided_by ? h('span', { class: 'sub', text: `by ${a.decided_by}` }) : null,
          a.comment ? h('span', { class: 'sub approval-comment', text: `“${a.comment}”` }) : null),
        h('td', { class: 'nowrap' }, timeEl(a.expires)),
        h('td', { class: 'actions' }, actions)));
    }
    clear(listPanel, heading(approvals.length), h('div', { class: 'table-wrap' }, h('table', { class: 'approvals' },
      h('thead', {}, h('tr', {}, ['Requester', 'Connector', 'Purpose', 'Duration', 'Justification', 'Ticket', 'Approvers', 'Reason', 'Status', 'Expires'].map((t) => h('th', { scope: 'col', text: t })),
        h('th', { scope: 'col' }, h('span', { class: 'visually-hidden', text: 'Actions' })))),
      tbody)));
  }

  await refresh();
}

/** Approves (`approve`) or denies an approval request, with an optional comment; `onDone` after a change. */
function openDecisionDialog(a, approve, onDone) {
  const verb = approve ? 'Approve' : 'Deny';
  const d = openDialog({ title: `${verb} ${a.requester}'s request`, size: 'medium' });
  const formError = h('div', {});
  const comment = h('textarea', { rows: 3, maxlength: '1024', spellcheck: 'true' });
  const fComment = field('Comment (optional)', comment, { hint: `${a.requester} sees it, and it is kept in the audit log.` });
  const form = h('form', { novalidate: true, id: uid('decide-form') }, formError,
    h('dl', { class: 'decision-summary' },
      h('div', {}, h('dt', { text: 'Connector' }), h('dd', {}, h('strong', { class: 'mono', text: a.connector }), ` · ${fmtPurpose(a.purpose)}`,
        a.duration_seconds ? ` · ${fmtDuration(a.duration_seconds)}` : '')),
      h('div', {}, h('dt', { text: 'Justification' }), h('dd', { text: a.justification || '—' })),
      h('div', {}, h('dt', { text: 'Ticket' }), h('dd', { text: a.ticket || '—' })),
      h('div', {}, h('dt', { text: 'Why it needs an approval' }), h('dd', { text: a.reason })),
      h('div', {}, h('dt', { text: 'Expires' }), h('dd', {}, timeEl(a.expires)))),
    fComment.wrap);
  d.body.append(form);
  const submit = h('button', { type: 'submit', class: approve ? 'btn btn-primary' : 'btn btn-danger', form: form.id, text: verb });
  d.foot.append(h('span', { class: 'spacer' }), h('button', { type: 'button', class: 'btn', text: 'Cancel', onclick: () => d.close() }), submit);
  form.addEventListener('submit', async (event) => {
    event.preventDefault();
    if (isBusy(submit)) return;
    clear(formError);
    setFieldError(fComment, null);
    const text = comment.value.trim();
    if (new TextEncoder().encode(text).length > 1024) {
      setFieldError(fComment, 'At most 1,024 bytes.');
      comment.focus();
      return;
    }
    setBusy(submit, true);
    try {
      await api('POST', `/api/v1/approvals/${enc(a.id)}/${approve ? 'approve' : 'deny'}`, { json: text ? { comment: text } : {} });
      d.close();
      announce(`${a.requester}'s request for ${a.connector} ${approve ? 'approved' : 'denied'}.`);
      if (onDone) onDone();
    } catch (e) {
      if (isGone(e)) return;
      setBusy(submit, false);
      const title = e.status === 409 ? 'Already decided, or expired'
        : e.status === 403 ? 'You may not decide this request' : `The request was not ${approve ? 'approved' : 'denied'}`;
      formError.replaceChildren(errorAlert(e, title));
      if (e.code === 'invalid_request') setFieldError(fComment, e.message);
      submit.focus();
      // What changed meanwhile shows behind the dialog.
      if ((e.status === 409 || e.status === 404) && onDone) onDone();
    }
  });
  comment.focus();
}

// ---------------------------------------------------------------------------------------------------
// Admin: connectors

async function screenAdminConnectors(root) {
  document.title = 'Connectors · Admin · idfed';
  const create = h('button', { type: 'button', class: 'btn btn-primary', text: 'Create connector' });
  const tablePanel = h('section', { class: 'panel', 'aria-labelledby': 'conn-h' });
  const accountsPanel = h('section', { class: 'panel', 'aria-labelledby': 'acct-h' });
  clear(root, pageHead('Connectors', 'A connector is what people ask for: an AWS account, the STS call that issues its credentials, the session policy, who may use it, and its chain of policy plugins.', create),
    tablePanel, accountsPanel);
  create.addEventListener('click', () => openConnectorDialog(null, refresh));

  const refresh = () => keepingFocus(root, load);
  async function load() {
    clear(tablePanel, h('h2', { id: 'conn-h', class: 'visually-hidden', text: 'All connectors' }), loading());
    clear(accountsPanel, h('div', { class: 'panel-head' }, h('h2', { id: 'acct-h', text: 'AWS accounts' })), loading());
    let connectors; let accounts;
    try {
      [connectors, accounts] = await Promise.all([
        api('GET', '/api/v1/admin/connectors'), api('GET', '/api/v1/admin/accounts'),
      ]);
    } catch (e) {
      if (isGone(e)) return;
      clear(tablePanel, errorAlert(e, 'Could not load connectors'));
      clear(accountsPanel);
      return;
    }
    renderConnectorTable(connectors.connectors || []);
    renderAccounts(accounts.accounts || []);
  }

  function renderConnectorTable(list) {
    list.sort((a, b) => a.name.localeCompare(b.name));
    if (!list.length) {
      clear(tablePanel, h('div', { class: 'empty' },
        h('h2', { id: 'conn-h', text: 'No connectors yet' }),
        h('p', { text: 'Create one to let people get credentials for an AWS account.' })));
      return;
    }
    const tbody = h('tbody');
    for (const c of list) {
      const edit = h('button', { type: 'button', class: 'btn btn-sm', text: 'Edit', 'aria-label': `Edit ${c.name}` });
      edit.addEventListener('click', () => openConnectorDialog(c.name, refresh));
      const del = h('button', { type: 'button', class: 'btn btn-sm btn-quiet', text: 'Delete', 'aria-label': `Delete ${c.name}` });
      del.addEventListener('click', async () => {
        if (!await confirmDialog({ title: `Delete connector ${c.name}?`, message: `Nobody will be able to get credentials from ${c.name} any more. Its plugin bindings are removed too; the audit log keeps its history.` })) return;
        try {
          await api('DELETE', `/api/v1/admin/connectors/${enc(c.id)}`);
          announce(`Connector ${c.name} deleted.`);
          refresh();
        } catch (e) { announceError(e); }
      });
      let flush = null;
      if (c.credential_cache) {
        flush = h('button', { type: 'button', class: 'btn btn-sm btn-quiet', text: 'Flush cache', 'aria-label': `Flush cache of ${c.name}` });
        flush.addEventListener('click', async () => {
          try {
            const done = await api('POST', `/api/v1/admin/connectors/${enc(c.id)}/cache/flush`);
            announce(`Credential cache of ${c.name} flushed: ${plural(done.flushed, 'credential set', 'credential sets')} ended.`);
          } catch (e) { announceError(e); }
        });
      }
      tbody.append(h('tr', {},
        h('td', {}, h('strong', { class: 'mono', text: c.name }), c.description ? h('span', { class: 'sub', text: c.description }) : null),
        h('td', {}, principalBadge(c.principal_type)),
        h('td', { text: c.account }),
        h('td', {}, c.groups.length ? c.groups.map((g) => h('span', { class: 'tag', text: g })) : h('span', { class: 'muted', text: 'Administrators only' })),
        h('td', { class: 'nowrap' }, c.bindings.length ? plural(c.bindings.length, 'plugin', 'plugins') : h('span', { class: 'muted', text: 'None' })),
        h('td', {}, c.enabled ? h('span', { class: 'badge badge-green', text: 'Enabled' }) : h('span', { class: 'badge', text: 'Disabled' }),
          ' ', c.system_scope ? h('span', { class: 'badge badge-purple', title: 'System-scope API keys may use it', text: 'System scope' }) : null,
          ' ', c.credential_cache ? h('span', { class: 'badge', title: 'Issued credentials are handed out again for identical requests', text: 'Cached' }) : null),
        h('td', { class: 'actions' }, edit, flush, del)));
    }
    clear(tablePanel, h('h2', { id: 'conn-h', class: 'visually-hidden', text: 'All connectors' }),
      h('div', { class: 'table-wrap' }, h('table', {},
        h('thead', {}, h('tr', {}, ['Name', 'Principal', 'Account', 'Groups', 'Plugins', 'Status'].map((t) => h('th', { scope: 'col', text: t })), h('th', { scope: 'col' }, h('span', { class: 'visually-hidden', text: 'Actions' })))),
        tbody)));
  }

  function renderAccounts(list) {
    const addBtn = h('button', { type: 'button', class: 'btn btn-sm', text: 'Add account' });
    addBtn.addEventListener('click', () => openAccountDialog(null, refresh));
    const head = h('div', { class: 'panel-head' }, h('h2', { id: 'acct-h', text: 'AWS accounts' }), addBtn);
    if (!list.length) {
      clear(accountsPanel, head, h('p', { class: 'muted', text: 'No account yet: add one here or while creating a connector.' }));
      return;
    }
    const tbody = h('tbody');
    for (const a of list) {
      const edit = h('button', { type: 'button', class: 'btn btn-sm', text: 'Edit', 'aria-label': `Edit account ${a.name}` });
      edit.addEventListener('click', () => openAccountDialog(a.name, refresh));
      tbody.append(h('tr', {},
        h('td', {}, h('strong', { class: 'mono', text: a.name }), a.description ? h('span', { class: 'sub', text: a.description }) : null),
        h('td', {}, a.source.type === 'iam-user'
          ? ['IAM user key ', h('code', { text: a.source.access_key_id })]
          : "This server's own credentials"),
        h('td', { text: a.region || 'us-east-1' }),
        h('td', {}, a.sts_endpoint ? h('code', { text: a.sts_endpoint }) : h('span', { class: 'muted', text: "AWS's" })),
        h('td', { class: 'actions' }, edit)));
    }
    clear(accountsPanel, head, h('div', { class: 'table-wrap' }, h('table', {},
      h('thead', {}, h('tr', {}, ['Name', 'Credentials', 'Region', 'STS endpoint'].map((t) => h('th', { scope: 'col', text: t })), h('th', { scope: 'col' }, h('span', { class: 'visually-hidden', text: 'Actions' })))),
      tbody)));
  }

  await refresh();
}

let examplesCache = null;

/** Opens the create (name null) or edit dialog of a connector; `onSaved` runs after a change. */
async function openConnectorDialog(name, onSaved) {
  const editing = name !== null;
  const d = openDialog({ title: editing ? `Edit connector ${name}` : 'Create connector', size: 'wide' });
  d.body.append(loading());
  let existing = null;
  let accounts = [];
  let groupsInfo = null;
  let groupsError = null;
  try {
    const calls = [
      api('GET', '/api/v1/admin/accounts'),
      examplesCache ? Promise.resolve(examplesCache) : api('GET', '/api/v1/admin/policy-examples'),
      editing ? api('GET', `/api/v1/admin/connectors/${enc(name)}`) : Promise.resolve(null),
      api('GET', '/api/v1/admin/groups').catch((e) => { groupsError = e; return null; }),
    ];
    const [acc, ex, conn, groups] = await Promise.all(calls);
    accounts = acc.accounts || [];
    examplesCache = ex;
    existing = conn;
    groupsInfo = groups;
  } catch (e) {
    if (isGone(e)) return;
    clear(d.body, errorAlert(e, 'Could not load the connector'));
    d.foot.append(h('button', { type: 'button', class: 'btn', text: 'Close', onclick: () => d.close() }));
    return;
  }
  const c = existing || {
    name: '', description: '', account: accounts.length ? accounts[0].name : '', principal: { type: 'federated-user' },
    policy: null, policy_arns: [], default_duration_seconds: null, max_duration_seconds: null, groups: [],
    system_scope: false, enabled: true, credential_cache: false, bindings: [],
  };

  const formError = h('div', { class: 'form-error' });
  const fields = {};

  // General
  fields.name = field('Name', textInput({ value: c.name, maxlength: 64, pattern: '[A-Za-z0-9._\\-]{1,64}' }), { required: true, hint: '1–64 letters, digits, dots, dashes or underscores. People ask for the connector by this name.' });
  fields.description = field('Description', textInput({ value: c.description }), { hint: 'What it gives access to, for the people who use it.' });
  const accountSel = h('select', {});
  const fillAccounts = (selected) => {
    clear(accountSel, accounts.length ? null : h('option', { value: '', text: 'No account yet: add one' }),
      accounts.map((a) => h('option', { value: a.name, text: a.description ? `${a.name} — ${a.description}` : a.name })));
    if (selected) accountSel.value = selected;
    editAccountBtn.disabled = !accountSel.value;
  };
  const addAccountBtn = h('button', { type: 'button', class: 'btn', text: 'Add account…' });
  const editAccountBtn = h('button', { type: 'button', class: 'btn', text: 'Edit account…' });
  fields.account = field('AWS account', accountSel, { required: true, hint: 'Whose long-term credentials call STS.' });
  const accountRow = h('div', { class: 'input-row' });
  accountSel.replaceWith(accountRow);
  accountRow.append(accountSel, addAccountBtn, editAccountBtn);
  fillAccounts(c.account);
  accountSel.addEventListener('change', () => { editAccountBtn.disabled = !accountSel.value; });
  const accountSaved = async (account) => {
    try {
      accounts = (await api('GET', '/api/v1/admin/accounts')).accounts || [];
    } catch { accounts.push(account); }
    fillAccounts(account ? account.name : accountSel.value);
  };
  addAccountBtn.addEventListener('click', () => openAccountDialog(null, accountSaved));
  editAccountBtn.addEventListener('click', () => { if (accountSel.value) openAccountDialog(accountSel.value, accountSaved); });
  const enabled = checkbox('Enabled', { checked: c.enabled, hint: 'A disabled connector issues nothing.' });

  // Principal type
  let principalType = c.principal.type || c.principal_type || 'federated-user';
  const cards = [];
  const radios = {};
  const choiceWrap = h('div', { class: 'choice-cards' });
  const radioGroup = uid('ptype'); // one name for the three: a radio group, so arrow keys move between them
  for (const [type, p] of Object.entries(PRINCIPALS)) {
    const radio = h('input', { type: 'radio', name: radioGroup, id: uid('pt'), value: type, checked: type === principalType });
    const hintId = `${radio.id}-hint`;
    radio.setAttribute('aria-describedby', hintId);
    radios[type] = radio;
    const card = h('div', { class: 'choice-card' }, radio,
      h('div', {}, h('label', { for: radio.id, text: p.label }), h('p', { class: 'hint', id: hintId, text: p.explain })));
    card.addEventListener('click', (event) => { if (event.target !== radio && !radio.checked) { radio.checked = true; radio.dispatchEvent(new Event('change', { bubbles: true })); } });
    cards.push([type, card]);
    choiceWrap.append(card);
  }
  choiceWrap.addEventListener('change', (event) => {
    if (event.target.type === 'radio') { principalType = event.target.value; update(); }
  });
  const principalSet = h('fieldset', {}, h('legend', { text: 'Principal type' }), choiceWrap);

  // Assumed role
  const pr = c.principal || {};
  fields.role_arn = field('Role ARN', textInput({ value: pr.role_arn || '', class: 'code', placeholder: 'arn:aws:iam::123456789012:role/NAME' }), { required: true });
  fields.external_id = field('External ID', textInput({ value: pr.external_id || '' }), { hint: "Only if the role's trust policy requires one (2–1,224 characters)." });
  const sourceIdentity = checkbox("Send the caller's name as SourceIdentity", { checked: Boolean(pr.source_identity), hint: 'Shown in CloudTrail and kept through role chaining.' });
  fields.session_tags = field('Session tags', h('textarea', { class: 'code', rows: 3, placeholder: 'team=payments\ncost-center=1234' }), { hint: 'One key=value per line, sent with every AssumeRole.' });
  fields.session_tags.input.value = (pr.session_tags || []).map((t) => `${t.key}=${t.value}`).join('\n');
  const roleSection = h('div', {}, h('div', { class: 'grid-2' }, fields.role_arn.wrap, fields.external_id.wrap), sourceIdentity.wrap, fields.session_tags.wrap);

  // Permissions
  const policyArea = h('textarea', { class: 'code policy', spellcheck: 'false', placeholder: '{\n  "Version": "2012-10-17",\n  "Statement": [ … ]\n}' });
  policyArea.value = c.policy || '';
  fields.policy = field('Session policy (JSON)', policyArea, {});
  const validity = h('p', { class: 'hint validity', 'aria-live': 'polite' });
  fields.policy.wrap.insertBefore(validity, fields.policy.error);
  validity.id = uid('validity');
  policyArea.setAttribute('aria-describedby', `${validity.id} ${fields.policy.error.id}`);
  const examplesList = h('ul', {});
  for (const ex of (examplesCache && examplesCache.examples) || []) {
    const use = h('button', { type: 'button', class: 'btn-link btn', text: ex.name, 'aria-label': `Use the ${ex.name} example` });
    use.addEventListener('click', () => {
      policyArea.value = ex.policy;
      update();
      policyArea.focus();
      announce(`The ${ex.name} example is in the policy field. Replace its placeholders.`);
    });
    examplesList.append(h('li', {}, use, h('p', { class: 'hint', text: ex.description })));
  }
  const examples = h('aside', { class: 'examples', 'aria-labelledby': 'examples-h' },
    h('h4', { id: 'examples-h', text: 'IAM Policy Examples' }),
    h('p', { class: 'hint', text: 'Pick one to copy it into the policy field.' }),
    examplesList,
    h('div', { class: 'links' },
      h('a', { href: 'https://awspolicygen.s3.amazonaws.com/policygen.html', target: '_blank', rel: 'noopener noreferrer', text: 'AWS Policy Generator ↗' }),
      h('a', { href: 'https://policysim.aws.amazon.com/', target: '_blank', rel: 'noopener noreferrer', text: 'IAM Policy Simulator ↗' })));
  fields.policy_arns = field('Managed policy ARNs', h('textarea', { class: 'code', rows: 3, spellcheck: 'false', placeholder: 'arn:aws:iam::aws:policy/ReadOnlyAccess' }), { hint: 'One per line, at most 10. Sent as session policies too.' });
  fields.policy_arns.input.value = (c.policy_arns || []).join('\n');
  const policyNote = h('p', { class: 'hint' });
  const permissionsSection = h('div', {}, policyNote,
    h('div', { class: 'policy-layout' }, fields.policy.wrap, examples), fields.policy_arns.wrap);
  const iamUserNote = h('div', { class: 'alert', text: "IAM user connectors take no session policy: the credentials have the account's IAM user's own permissions, and AWS does not let them sign in to the console." });

  // Durations
  const durList = h('datalist', { id: uid('durations') },
    [[900, '15 min'], [3600, '1 h'], [14400, '4 h'], [28800, '8 h'], [43200, '12 h'], [129600, '36 h']].map(([v, t]) => h('option', { value: String(v), label: t })));
  const durInput = (value) => h('input', { type: 'number', min: 900, step: 60, list: durList.id, value: value ?? '', inputmode: 'numeric' });
  fields.default_duration_seconds = field('Default duration (seconds)', durInput(c.default_duration_seconds), { hint: 'Seconds.' });
  fields.max_duration_seconds = field('Maximum duration (seconds)', durInput(c.max_duration_seconds), { hint: 'Seconds.' });
  const durationSection = h('div', {}, durList, h('div', { class: 'grid-2' }, fields.default_duration_seconds.wrap, fields.max_duration_seconds.wrap));

  // Groups
  const selectedGroups = new Set(c.groups || []);
  let groupBoxes = [];
  const otherGroups = textInput({ placeholder: 'group-a, group-b' });
  let groupsControl;
  if (groupsInfo && Array.isArray(groupsInfo.groups)) {
    const known = new Set(groupsInfo.groups);
    const all = [...new Set([...groupsInfo.groups, ...selectedGroups])].sort((a, b) => a.localeCompare(b));
    const list = h('div', { class: 'checklist', role: 'group', 'aria-label': 'Groups' });
    groupBoxes = all.map((g) => {
      const cb = checkbox(g, { checked: selectedGroups.has(g) });
      if (!known.has(g)) cb.wrap.querySelector('label').append(h('span', { class: 'muted small', text: ' (not in the directory)' }));
      list.append(cb.wrap);
      return [g, cb.input];
    });
    const admins = (groupsInfo.admin_groups || []);
    groupsControl = h('fieldset', {}, h('legend', { text: 'Groups that may use it' }),
      all.length ? list : h('p', { class: 'muted', text: 'The directory lists no groups.' }),
      field('Other groups', otherGroups, { hint: 'Comma-separated, for groups not listed above.' }).wrap,
      admins.length ? h('p', { class: 'hint' }, 'Administrator groups: ', admins.map((g) => h('span', { class: 'tag', text: g }))) : null);
  } else {
    otherGroups.value = [...selectedGroups].join(', ');
    groupsControl = h('div', {},
      field('Groups that may use it', otherGroups, { hint: 'Comma-separated group names.' }).wrap,
      groupsError && groupsError.code !== 'unsupported' && groupsError.status !== 404
        ? h('p', { class: 'hint', text: `The directory's groups could not be listed: ${groupsError.message}` }) : null);
  }
  const groupsNote = h('div', { class: 'alert', text: 'Administrators may always use this connector. With no group, only administrators may use it.' });
  const credentialCache = checkbox('Reuse issued credentials (credential cache)', { checked: c.credential_cache, hint: 'The same caller asking for the same thing gets the credentials already issued while they have enough life left, instead of a new STS call each time; identical requests at the same moment share one call. Authorization and plugins still decide every request. Off: every request is its own STS call.' });
  const systemScope = checkbox('System scope', { checked: c.system_scope, hint: 'System-scope API keys (task runners, CI) that name this connector may get credentials from it without a user session. Their requests are audited as system:<key name>.' });

  // Plugins
  const pluginsSection = h('div', {});

  const sections = [
    h('h3', { class: 'section-title', text: 'General' }),
    h('div', { class: 'grid-2' }, fields.name.wrap, fields.description.wrap),
    fields.account.wrap, enabled.wrap,
    h('h3', { class: 'section-title', text: 'How credentials are issued' }),
    principalSet, roleSection,
    h('h3', { class: 'section-title', text: 'Permissions' }),
    iamUserNote, permissionsSection,
    h('h3', { class: 'section-title', text: 'Session duration' }), durationSection, credentialCache.wrap,
    h('h3', { class: 'section-title', text: 'Who may use it' }), groupsNote, groupsControl, systemScope.wrap,
    h('h3', { class: 'section-title', text: 'Policy plugins' }), pluginsSection,
  ];
  const form = h('form', { novalidate: true, id: uid('connector-form') }, formError, sections);
  clear(d.body, form);
  const save = h('button', { type: 'submit', class: 'btn btn-primary', text: editing ? 'Save' : 'Create connector', form: form.id });
  d.foot.append(h('button', { type: 'button', class: 'btn', text: 'Cancel', onclick: () => d.close() }), save);

  function durationCheck(f) {
    const p = PRINCIPALS[principalType];
    const raw = f.input.value.trim();
    const range = `${p.min.toLocaleString('en-US')}–${p.max.toLocaleString('en-US')} seconds (${fmtDuration(p.min)} to ${fmtDuration(p.max)}) for ${p.label.toLowerCase()} connectors`;
    f.input.max = String(p.max);
    if (!raw) {
      f.hint.textContent = f === fields.default_duration_seconds
        ? `Empty: AWS's default, ${fmtDuration(p.awsDefault)} (capped at the maximum). Allowed: ${range}.`
        : `Empty: AWS's maximum, ${fmtDuration(p.max)}. Allowed: ${range}.`;
      return null;
    }
    const n = Number(raw);
    if (!Number.isInteger(n) || n < p.min || n > p.max) return `Must be a whole number of seconds from ${range}.`;
    f.hint.textContent = `= ${fmtDuration(n)}. Allowed: ${range}.${principalType === 'assumed-role' ? " The role's own maximum session duration may be lower." : ''}`;
    return null;
  }

  function update() {
    for (const [type, card] of cards) card.classList.toggle('selected', type === principalType);
    const p = PRINCIPALS[principalType];
    roleSection.hidden = principalType !== 'assumed-role';
    permissionsSection.hidden = !p.policy;
    iamUserNote.hidden = p.policy;
    policyNote.textContent = principalType === 'federated-user'
      ? 'A federated user gets only what these session policies allow (within the account user\'s own permissions): give an inline policy, managed policy ARNs, or both.'
      : 'Optional: a session policy narrows what the role allows; without one the role\'s full permissions apply.';
    let valid = true;
    if (p.policy) {
      const check = checkPolicyText(policyArea.value);
      validity.textContent = check.empty && principalType === 'federated-user' && !lines(fields.policy_arns.input.value).length
        ? 'No inline policy: add one, or managed policy ARNs.' : check.message;
      validity.className = `hint validity ${check.ok ? (check.empty ? '' : 'ok') : 'error'}`;
      if (!check.ok) { valid = false; policyArea.setAttribute('aria-invalid', 'true'); } else policyArea.removeAttribute('aria-invalid');
    }
    for (const f of [fields.default_duration_seconds, fields.max_duration_seconds]) {
      const problem = durationCheck(f);
      setFieldError(f, problem);
      if (problem) valid = false;
    }
    save.disabled = !valid;
  }
  form.addEventListener('input', update);
  form.addEventListener('change', update);
  update();

  async function loadBindings() {
    if (!editing) {
      clear(pluginsSection, h('p', { class: 'muted', text: 'Plugins can be bound once the connector is created: each one sees every request and may narrow its policy, shorten its duration or deny it.' }));
      return;
    }
    clear(pluginsSection, loading());
    let bindings; let plugins;
    try {
      [bindings, plugins] = await Promise.all([
        api('GET', `/api/v1/admin/connectors/${enc(existing.id)}/bindings`), api('GET', '/api/v1/admin/plugins'),
      ]);
    } catch (e) {
      if (isGone(e)) return;
      clear(pluginsSection, errorAlert(e, 'Could not load the plugin chain'));
      return;
    }
    const byDigest = new Map((plugins.plugins || []).map((p) => [p.digest, p]));
    const addBtn = h('button', { type: 'button', class: 'btn', text: 'Add plugin…' });
    addBtn.addEventListener('click', () => openBindDialog({ connector: existing, onBound: loadBindings }));
    const chain = h('ol', { class: 'chain', 'aria-label': 'Plugin chain, in order' });
    for (const b of bindings.bindings || []) {
      const p = byDigest.get(b.plugin);
      const label = p && p.name ? p.name : 'plugin';
      const remove = h('button', { type: 'button', class: 'btn btn-sm btn-quiet', text: 'Remove', 'aria-label': `Remove ${label} from the chain` });
      remove.addEventListener('click', async () => {
        if (!await confirmDialog({ title: `Remove ${label}?`, message: `The ${label} plugin will no longer see requests to ${existing.name}. Its private state is deleted.`, confirm: 'Remove' })) return;
        try {
          await api('DELETE', `/api/v1/admin/connectors/${enc(existing.id)}/bindings/${enc(b.id)}`);
          announce(`${label} removed from ${existing.name}.`);
          loadBindings();
          if (onSaved) onSaved();
        } catch (e) { announceError(e); }
      });
      chain.append(h('li', {},
        h('div', {}, h('strong', { text: label }), ' ', h('span', { class: 'digest muted', title: b.plugin, text: shortDigest(b.plugin) }),
          h('pre', { class: 'config', text: JSON.stringify(b.config, null, 1) }),
          h('p', { class: 'hint tag-keys', text: (b.tag_keys || []).length ? `May add session tags: ${b.tag_keys.join(', ')}` : 'May add no session tag.' })),
        remove));
    }
    clear(pluginsSection,
      (bindings.bindings || []).length ? [h('p', { class: 'hint', text: 'Run in this order for every request; each sees the previous one\'s result.' }), chain]
        : h('p', { class: 'muted', text: 'No plugin: requests are decided by the connector alone.' }),
      addBtn);
  }
  loadBindings();

  form.addEventListener('submit', async (event) => {
    event.preventDefault();
    if (isBusy(save)) return;
    update();
    if (save.disabled) return;
    clear(formError);
    for (const f of Object.values(fields)) setFieldError(f, null);
    const p = PRINCIPALS[principalType];
    const body = {
      name: fields.name.input.value.trim(),
      description: fields.description.input.value.trim(),
      account: accountSel.value,
      principal: { type: principalType },
      policy: null,
      policy_arns: [],
      default_duration_seconds: fields.default_duration_seconds.input.value.trim() ? Number(fields.default_duration_seconds.input.value) : null,
      max_duration_seconds: fields.max_duration_seconds.input.value.trim() ? Number(fields.max_duration_seconds.input.value) : null,
      groups: [...new Set([...groupBoxes.filter(([, input]) => input.checked).map(([g]) => g), ...lines(otherGroups.value)])],
      system_scope: systemScope.input.checked,
      enabled: enabled.input.checked,
      credential_cache: credentialCache.input.checked,
    };
    if (principalType === 'assumed-role') {
      body.principal.role_arn = fields.role_arn.input.value.trim();
      const ext = fields.external_id.input.value.trim();
      body.principal.external_id = ext || null;
      body.principal.source_identity = sourceIdentity.input.checked;
      const tags = [];
      for (const line of fields.session_tags.input.value.split('\n').map((s) => s.trim()).filter(Boolean)) {
        const at = line.indexOf('=');
        if (at <= 0) { setFieldError(fields.session_tags, `"${line}" is not key=value.`); fields.session_tags.input.focus(); return; }
        tags.push({ key: line.slice(0, at).trim(), value: line.slice(at + 1).trim() });
      }
      body.principal.session_tags = tags;
    }
    if (p.policy) {
      body.policy = policyArea.value.trim() ? policyArea.value : null;
      body.policy_arns = lines(fields.policy_arns.input.value);
    }
    // Checks the server would make anyway, answered here at once.
    const missing = [];
    if (!body.name) missing.push([fields.name, 'Enter a name.']);
    if (!body.account) missing.push([fields.account, 'Choose an account, or add one.']);
    if (principalType === 'assumed-role' && !body.principal.role_arn) missing.push([fields.role_arn, 'Enter the role to assume.']);
    if (principalType === 'federated-user' && !body.policy && !body.policy_arns.length) missing.push([fields.policy, 'A federated user needs an inline policy or managed policy ARNs.']);
    if (missing.length) {
      for (const [f, m] of missing) setFieldError(f, m);
      formError.replaceChildren(h('div', { class: 'alert alert-error', role: 'alert', text: 'Some fields need attention.' }));
      missing[0][0].input.focus();
      return;
    }
    setBusy(save, true);
    try {
      const saved = editing
        ? await api('PUT', `/api/v1/admin/connectors/${enc(existing.id)}`, { json: body, ifMatch: existing.revision })
        : await api('POST', '/api/v1/admin/connectors', { json: body });
      d.close();
      announce(editing ? `Connector ${saved.name} saved.` : `Connector ${saved.name} created.`);
      if (onSaved) onSaved(saved);
    } catch (e) {
      if (isGone(e)) return;
      setBusy(save, false);
      if (e.code === 'precondition_failed' || e.code === 'conflict' && /changed by someone else/.test(e.message)) {
        formError.replaceChildren(errorAlert({
          code: e.code,
          message: 'Someone else changed this connector since you opened it. Close this dialog and open it again to see their changes.',
        }, 'The connector was not saved'));
        formError.scrollIntoView({ block: 'nearest' });
        return;
      }
      formError.replaceChildren(errorAlert(e, 'The connector was not saved'));
      const match = /^([a-z_.[\]0-9]+): /.exec(e.message || '');
      if (match) {
        const key = match[1].replace(/^principal\./, '').replace(/\[\d+\]$/, '').split('.')[0];
        const f = fields[key];
        if (f) { setFieldError(f, e.message.slice(match[0].length)); }
      }
      formError.scrollIntoView({ block: 'nearest' });
    }
  });
  fields.name.input.focus();
}

// ---------------------------------------------------------------------------------------------------
// Admin: accounts (a dialog, opened from the connector dialog or the connectors page)

async function openAccountDialog(name, onSaved) {
  const editing = name !== null;
  const d = openDialog({ title: editing ? `Edit account ${name}` : 'Add AWS account', size: 'medium' });
  let a = { name: '', description: '', source: { type: 'iam-user', access_key_id: '' }, region: null, sts_endpoint: null };
  if (editing) {
    d.body.append(loading());
    try {
      a = await api('GET', `/api/v1/admin/accounts/${enc(name)}`);
    } catch (e) {
      if (isGone(e)) return;
      clear(d.body, errorAlert(e, 'Could not load the account'));
      d.foot.append(h('button', { type: 'button', class: 'btn', text: 'Close', onclick: () => d.close() }));
      return;
    }
  }
  const formError = h('div', {});
  const f = {};
  f.name = field('Account name', textInput({ value: a.name, readOnly: editing, maxlength: 64 }), { required: true, hint: editing ? 'The name cannot change.' : '1–64 letters, digits, dots, dashes or underscores, e.g. prod or sandbox.' });
  f.description = field('Description', textInput({ value: a.description || '' }), {});
  let sourceType = a.source.type;
  const srcName = uid('src');
  const srcIam = h('input', { type: 'radio', name: srcName, id: uid('src'), value: 'iam-user', checked: sourceType === 'iam-user' });
  const srcHost = h('input', { type: 'radio', name: srcName, id: uid('src'), value: 'host-credentials', checked: sourceType === 'host-credentials' });
  const sourceSet = h('fieldset', {}, h('legend', { text: 'Credentials idfed calls STS with' }),
    h('div', { class: 'check' }, srcIam, h('div', {}, h('label', { for: srcIam.id, text: 'An IAM user access key' }), h('p', { class: 'hint', text: 'Stored encrypted; never shown again.' }))),
    h('div', { class: 'check' }, srcHost, h('div', {}, h('label', { for: srcHost.id, text: "This server's own AWS credentials" }), h('p', { class: 'hint', text: 'Environment, instance profile, IRSA… from the default credential chain.' }))));
  f.access_key_id = field('Access key ID', textInput({ value: a.source.access_key_id || '', class: 'code', placeholder: 'AKIA…' }), { required: true });
  const hasSecret = editing && a.source.type === 'iam-user';
  f.secret = field('Secret access key', h('input', { type: 'password', autocomplete: 'new-password', spellcheck: 'false', class: 'code', placeholder: hasSecret ? 'Leave blank to keep the stored secret' : '' }),
    { required: !hasSecret, hint: hasSecret ? 'Write-only: the stored secret is never shown. Leave blank to keep it.' : 'Write-only: it is stored encrypted and never shown again.' });
  const keyFields = h('div', { class: 'grid-2' }, f.access_key_id.wrap, f.secret.wrap);
  f.region = field('Region', textInput({ value: a.region || '', placeholder: 'us-east-1' }), { hint: 'The STS region; us-east-1 when empty.' });
  f.sts_endpoint = field('STS endpoint', textInput({ value: a.sts_endpoint || '', type: 'url', class: 'code', placeholder: 'https://sts.eu-west-1.amazonaws.com' }), { hint: "Empty: AWS's. Set it for a VPC endpoint or a test STS." });
  const advanced = h('details', { class: 'advanced', open: Boolean(a.sts_endpoint || a.region) },
    h('summary', { text: 'Advanced: region, STS endpoint' }), h('div', { class: 'grid-2' }, f.region.wrap, f.sts_endpoint.wrap));
  const form = h('form', { novalidate: true, id: uid('account-form') }, formError, f.name.wrap, f.description.wrap, sourceSet, keyFields, advanced);
  clear(d.body, form);
  const update = () => {
    sourceType = srcIam.checked ? 'iam-user' : 'host-credentials';
    keyFields.hidden = sourceType !== 'iam-user';
  };
  sourceSet.addEventListener('change', update);
  update();

  const save = h('button', { type: 'submit', class: 'btn btn-primary', form: form.id, text: editing ? 'Save account' : 'Add account' });
  let del = null;
  if (editing) {
    del = h('button', { type: 'button', class: 'btn btn-quiet', text: 'Delete account' });
    del.addEventListener('click', async () => {
      if (!await confirmDialog({ title: `Delete account ${name}?`, message: 'Its stored secret is destroyed. Connectors that use it must be moved to another account first.' })) return;
      try {
        await api('DELETE', `/api/v1/admin/accounts/${enc(name)}`);
        d.close();
        announce(`Account ${name} deleted.`);
        if (onSaved) onSaved(null);
      } catch (e) {
        if (isGone(e)) return;
        formError.replaceChildren(errorAlert(e, 'The account was not deleted'));
      }
    });
  }
  add(d.foot, [del, h('span', { class: 'spacer' }), h('button', { type: 'button', class: 'btn', text: 'Cancel', onclick: () => d.close() }), save]);

  form.addEventListener('submit', async (event) => {
    event.preventDefault();
    if (isBusy(save)) return;
    clear(formError);
    for (const x of Object.values(f)) setFieldError(x, null);
    const accountName = f.name.input.value.trim();
    const body = {
      name: accountName,
      description: f.description.input.value.trim(),
      region: f.region.input.value.trim() || null,
      sts_endpoint: f.sts_endpoint.input.value.trim() || null,
    };
    const problems = [];
    if (!/^[A-Za-z0-9._-]{1,64}$/.test(accountName)) problems.push([f.name, 'Use 1–64 letters, digits, dots, dashes or underscores.']);
    if (sourceType === 'iam-user') {
      body.source = { type: 'iam-user', access_key_id: f.access_key_id.input.value.trim() };
      if (f.secret.input.value) body.source.secret_access_key = f.secret.input.value;
      if (!body.source.access_key_id) problems.push([f.access_key_id, 'Enter the access key ID.']);
      if (!f.secret.input.value && !hasSecret) problems.push([f.secret, 'Enter the secret access key.']);
    } else {
      body.source = { type: 'host-credentials' };
    }
    if (problems.length) {
      for (const [x, m] of problems) setFieldError(x, m);
      problems[0][0].input.focus();
      return;
    }
    setBusy(save, true);
    try {
      const saved = await api('PUT', `/api/v1/admin/accounts/${enc(accountName)}`, { json: body });
      f.secret.input.value = '';
      d.close();
      announce(editing ? `Account ${saved.name} saved.` : `Account ${saved.name} added.`);
      if (onSaved) onSaved(saved);
    } catch (e) {
      if (isGone(e)) return;
      setBusy(save, false);
      formError.replaceChildren(errorAlert(e, 'The account was not saved'));
      const match = /^([a-z_]+): /.exec(e.message || '');
      if (match && f[match[1]]) setFieldError(f[match[1]], e.message.slice(match[0].length));
    }
  });
  (editing ? f.description.input : f.name.input).focus();
}

// ---------------------------------------------------------------------------------------------------
// Admin: binding a plugin to a connector

async function openBindDialog({ connector = null, plugin = null, onBound }) {
  const title = connector ? `Add a plugin to ${connector.name}` : `Bind ${plugin && plugin.name ? plugin.name : 'plugin'} to a connector`;
  const d = openDialog({ title, size: 'medium' });
  d.body.append(loading());
  let connectors = []; let plugins = [];
  try {
    const [cs, ps] = await Promise.all([api('GET', '/api/v1/admin/connectors'), api('GET', '/api/v1/admin/plugins')]);
    connectors = cs.connectors || [];
    plugins = ps.plugins || [];
  } catch (e) {
    if (isGone(e)) return;
    clear(d.body, errorAlert(e, 'Could not load connectors and plugins'));
    return;
  }
  const formError = h('div', {});
  const connSel = h('select', {}, connectors.map((c) => h('option', { value: c.id, text: c.name })));
  if (connector) connSel.value = connector.id;
  const fConn = field('Connector', connSel, { required: true });
  const groupsByName = groupPlugins(plugins);
  const plugSel = h('select', {});
  for (const [pname, versions] of groupsByName) {
    const og = h('optgroup', { label: pname });
    versions.forEach((p, i) => og.append(h('option', { value: p.digest, text: `${pname} · ${shortDigest(p.digest)}${i === 0 ? ' (newest)' : ''} · ${fmtTime(p.stored)}` })));
    plugSel.append(og);
  }
  if (plugin) plugSel.value = plugin.digest;
  const fPlug = field('Plugin version', plugSel, { required: true });
  const posSel = h('select', {});
  const fPos = field('Position in the chain', posSel, { hint: 'Plugins run in order; each sees the previous one\'s result.' });
  const fillPositions = () => {
    const c = connectors.find((x) => x.id === connSel.value);
    const n = c ? c.bindings.length : 0;
    clear(posSel, h('option', { value: String(n), text: n ? `Last (after ${plural(n, 'plugin', 'plugins')})` : 'First (the chain is empty)' }));
    for (let i = 0; i < n; i += 1) posSel.append(h('option', { value: String(i), text: i === 0 ? 'First' : `Position ${i + 1}` }));
  };
  fillPositions();
  connSel.addEventListener('change', fillPositions);
  const config = h('textarea', { class: 'code', rows: 8, spellcheck: 'false', value: '{}' });
  const fConfig = field('Configuration (JSON)', config, { hint: "The plugin's settings; its README documents them. The plugin checks them when you bind it." });
  const validity = h('p', { class: 'hint validity', 'aria-live': 'polite' });
  fConfig.wrap.insertBefore(validity, fConfig.error);
  const tagKeys = textInput({ name: 'tag-keys', placeholder: 'e.g. idfed-user, team', spellcheck: 'false' });
  const fTags = field('Session tag keys it may add', tagKeys, { hint: 'Comma-separated. Tags are what ABAC policies (aws:PrincipalTag) grant on, so a plugin may add only the keys listed here; any other tag it adds refuses the request. Leave empty for a plugin that adds none.' });
  const form = h('form', { novalidate: true, id: uid('bind-form') }, formError,
    connector ? null : fConn.wrap, plugin ? null : fPlug.wrap, fPos.wrap, fConfig.wrap, fTags.wrap);
  if (connector) form.insertBefore(h('p', {}, 'Connector: ', h('strong', { text: connector.name })), fPos.wrap);
  if (plugin) form.insertBefore(h('p', {}, 'Plugin: ', h('strong', { text: plugin.name || 'plugin' }), ' ', h('span', { class: 'digest muted', text: shortDigest(plugin.digest) })), fPos.wrap);
  clear(d.body, plugins.length ? form : h('div', { class: 'alert alert-warn', text: 'No plugin is uploaded yet: upload one on the Plugins page first.' }));
  const bind = h('button', { type: 'submit', class: 'btn btn-primary', form: form.id, text: 'Bind plugin', disabled: !plugins.length });
  d.foot.append(h('button', { type: 'button', class: 'btn', text: 'Cancel', onclick: () => d.close() }), bind);
  const check = () => {
    const parsed = parseJson(config.value);
    const ok = !parsed.error && parsed.value && typeof parsed.value === 'object' && !Array.isArray(parsed.value);
    validity.textContent = parsed.error ? `Not valid JSON: ${parsed.error}` : (ok ? 'Valid JSON.' : 'The configuration must be a JSON object.');
    validity.className = `hint validity ${ok ? 'ok' : 'error'}`;
    if (ok) config.removeAttribute('aria-invalid'); else config.setAttribute('aria-invalid', 'true');
    bind.disabled = !ok || !plugins.length;
    return ok;
  };
  config.addEventListener('input', check);
  check();
  form.addEventListener('submit', async (event) => {
    event.preventDefault();
    if (!check() || isBusy(bind)) return;
    clear(formError);
    setFieldError(fConfig, null);
    setFieldError(fTags, null);
    setBusy(bind, true);
    try {
      const connectorId = connSel.value;
      const tags = tagKeys.value.split(',').map((k) => k.trim()).filter(Boolean);
      const answer = await api('POST', `/api/v1/admin/connectors/${enc(connectorId)}/bindings`, {
        json: { plugin: plugSel.value, config: JSON.parse(config.value), position: Number(posSel.value), tag_keys: tags },
      });
      d.close();
      announce(`Plugin bound to ${answer.connector || 'the connector'} at position ${(answer.position ?? 0) + 1}.`);
      if (onBound) onBound(answer);
    } catch (e) {
      if (isGone(e)) return;
      setBusy(bind, false);
      formError.replaceChildren(errorAlert(e, 'The plugin was not bound'));
      if (e.code === 'plugin_tag_keys_invalid') {
        setFieldError(fTags, e.message);
        tagKeys.focus();
      } else {
        setFieldError(fConfig, e.pointer ? `At ${e.pointer}: ${e.message}` : e.message);
        config.focus();
      }
    }
  });
  (plugin && connector ? config : (connector ? plugSel : connSel)).focus();
}

/** Plugins grouped by name (unnamed ones under "unnamed"), each group's versions newest first. */
function groupPlugins(plugins) {
  const groups = new Map();
  for (const p of plugins) {
    const name = p.name || 'unnamed';
    if (!groups.has(name)) groups.set(name, []);
    groups.get(name).push(p);
  }
  for (const versions of groups.values()) versions.sort((a, b) => String(b.stored).localeCompare(String(a.stored)));
  return new Map([...groups.entries()].sort(([a], [b]) => a.localeCompare(b)));
}

// ---------------------------------------------------------------------------------------------------
// Admin: plugins

async function screenPlugins(root) {
  document.title = 'Plugins · Admin · idfed';
  const nameInput = textInput({ name: 'plugin-name', placeholder: 'e.g. rate-limit', maxlength: 64 });
  const fileInput = h('input', { type: 'file', accept: '.wasm,application/wasm' });
  const fName = field('Plugin name', nameInput, { required: true, hint: 'Uploads with the same name are shown as versions of one plugin.' });
  const fFile = field('Component (.wasm)', fileInput, { required: true, hint: 'A WebAssembly component of the idfed:policy@0.1.0 world. It is checked before it is stored.' });
  const uploadBtn = h('button', { type: 'submit', class: 'btn btn-primary', text: 'Upload' });
  const uploadError = h('div', {});
  const uploadForm = h('form', { novalidate: true }, uploadError, h('div', { class: 'grid-2' }, fName.wrap, fFile.wrap), uploadBtn);
  const listEl = h('div', {});
  clear(root, pageHead('Plugins', 'Policy plugins are sandboxed WebAssembly components that see every credential request of the connectors they are bound to, and may narrow the policy, shorten the duration or deny the request.'),
    h('section', { class: 'panel', 'aria-labelledby': 'upload-h' }, h('h2', { id: 'upload-h', text: 'Upload a plugin' }), uploadForm),
    listEl);
  fileInput.addEventListener('change', () => {
    const file = fileInput.files[0];
    if (file && !nameInput.value.trim()) nameInput.value = file.name.replace(/\.wasm$/i, '').replaceAll('_', '-');
  });
  uploadForm.addEventListener('submit', async (event) => {
    event.preventDefault();
    if (isBusy(uploadBtn)) return;
    clear(uploadError);
    setFieldError(fName, null);
    setFieldError(fFile, null);
    const file = fileInput.files[0];
    const name = nameInput.value.trim();
    if (!name) { setFieldError(fName, 'Name the plugin.'); nameInput.focus(); return; }
    if (!file) { setFieldError(fFile, 'Choose a .wasm file.'); fileInput.focus(); return; }
    setBusy(uploadBtn, true);
    uploadBtn.textContent = 'Uploading…';
    try {
      const bytes = await file.arrayBuffer();
      const answer = await api('POST', `/api/v1/admin/plugins?name=${enc(name)}`, { body: bytes, contentType: 'application/wasm' });
      announce(`Plugin ${name} uploaded (${shortDigest(answer.digest)}).`);
      fileInput.value = '';
      nameInput.value = '';
      await refresh();
    } catch (e) {
      if (isGone(e)) return;
      uploadError.replaceChildren(errorAlert(e, 'The plugin was not uploaded'));
    } finally {
      setBusy(uploadBtn, false);
      uploadBtn.textContent = 'Upload';
    }
  });

  const refresh = () => keepingFocus(root, load);
  async function load() {
    clear(listEl, loading());
    let plugins;
    try {
      plugins = (await api('GET', '/api/v1/admin/plugins')).plugins || [];
    } catch (e) {
      if (isGone(e)) return;
      clear(listEl, errorAlert(e, 'Could not list plugins'));
      return;
    }
    if (!plugins.length) {
      clear(listEl, h('div', { class: 'panel empty' }, h('h2', { text: 'No plugins yet' }), h('p', { text: 'Upload a component above, then bind it to a connector.' })));
      return;
    }
    clear(listEl);
    for (const [name, versions] of groupPlugins(plugins)) {
      const headId = uid('plugin');
      const tbody = h('tbody');
      versions.forEach((p, i) => {
        const denialsRow = h('tr', { class: 'detail-row', hidden: true }, h('td', { colspan: 5 }));
        // The visible text starts the accessible name (WCAG 2.5.3): what people see is what they can say.
        const bindBtn = h('button', { type: 'button', class: 'btn btn-sm' }, 'Bind to connector…',
          h('span', { class: 'visually-hidden', text: ` (${name} ${shortDigest(p.digest)})` }));
        bindBtn.addEventListener('click', () => openBindDialog({ plugin: p, onBound: refresh }));
        const denialsBtn = h('button', { type: 'button', class: 'btn btn-sm', 'aria-expanded': 'false', text: 'Recent denials', 'aria-label': `Recent denials and faults of ${name} ${shortDigest(p.digest)}` });
        denialsBtn.addEventListener('click', async () => {
          const open = denialsRow.hidden;
          denialsRow.hidden = !open;
          denialsBtn.setAttribute('aria-expanded', String(open));
          if (open) await loadDenials(p, denialsRow.firstChild);
        });
        const delBtn = h('button', { type: 'button', class: 'btn btn-sm btn-quiet', text: 'Delete', 'aria-label': `Delete ${name} ${shortDigest(p.digest)}`, disabled: p.bindings.length > 0, title: p.bindings.length ? 'Bound: remove its bindings first' : null });
        delBtn.addEventListener('click', async () => {
          if (!await confirmDialog({ title: `Delete this version of ${name}?`, message: `Version ${shortDigest(p.digest)} is removed from the server. It is not bound to any connector.` })) return;
          try {
            await api('DELETE', `/api/v1/admin/plugins/${enc(p.digest)}`);
            announce(`Version ${shortDigest(p.digest)} of ${name} deleted.`);
            refresh();
          } catch (e) { announceError(e); }
        });
        tbody.append(h('tr', {},
          h('td', {}, h('span', { class: 'digest', title: p.digest, text: shortDigest(p.digest) }), i === 0 ? [' ', h('span', { class: 'badge badge-blue', text: 'Newest' })] : null),
          h('td', {}, timeEl(p.stored), h('span', { class: 'sub', text: fmtBytes(p.size) })),
          h('td', {}, p.bindings.length
            ? p.bindings.map((b) => h('span', { class: 'tag', title: `binding ${b.binding}`, text: b.connector }))
            : h('span', { class: 'muted', text: 'Not bound' })),
          h('td', { class: 'actions' }, h('div', { class: 'version-actions' }, bindBtn, denialsBtn, delBtn))));
        tbody.append(denialsRow);
      });
      listEl.append(h('section', { class: 'panel plugin-group', 'aria-labelledby': headId },
        h('div', { class: 'panel-head' }, h('h2', { id: headId, text: name }), h('span', { class: 'muted', text: plural(versions.length, 'version', 'versions') })),
        h('div', { class: 'table-wrap' }, h('table', {},
          h('caption', { class: 'visually-hidden', text: `Versions of ${name}, newest first` }),
          h('thead', {}, h('tr', {}, ['Version', 'Uploaded', 'Bound to'].map((t) => h('th', { scope: 'col', text: t })), h('th', { scope: 'col' }, h('span', { class: 'visually-hidden', text: 'Actions' })))),
          tbody))));
    }
  }

  async function loadDenials(p, cell) {
    clear(cell, loading());
    try {
      const answer = await api('GET', `/api/v1/admin/audit?plugin=${enc(p.digest)}&limit=20`);
      const records = answer.records || [];
      if (!records.length) {
        clear(cell, h('p', { class: 'muted', text: 'No denials or faults recorded for this version.' }));
        return;
      }
      clear(cell, h('div', { class: 'denials' }, auditTable(records, { compact: true })));
    } catch (e) {
      if (isGone(e)) return;
      clear(cell, errorAlert(e, 'Could not load the audit log'));
    }
  }

  await refresh();
}

// ---------------------------------------------------------------------------------------------------
// Admin: API keys

async function screenApiKeys(root) {
  document.title = 'API keys · Admin · idfed';
  const formPanel = h('section', { class: 'panel', 'aria-labelledby': 'newkey-h' });
  const listPanel = h('section', { class: 'panel', 'aria-labelledby': 'keys-h' });
  clear(root, pageHead('System-scope API keys', 'Keys for task runners and CI: they get credentials from the system-scope connectors they name, without a user session. A key is shown once, when it is created.'),
    formPanel, listPanel);

  let connectors = [];
  const refresh = () => keepingFocus(root, load);
  async function load() {
    clear(listPanel, h('h2', { id: 'keys-h', text: 'Keys' }), loading());
    let keys;
    try {
      const [k, c] = await Promise.all([api('GET', '/api/v1/admin/api-keys'), api('GET', '/api/v1/admin/connectors')]);
      keys = k.api_keys || [];
      connectors = c.connectors || [];
    } catch (e) {
      if (isGone(e)) return;
      clear(listPanel, h('h2', { id: 'keys-h', text: 'Keys' }), errorAlert(e, 'Could not list API keys'));
      return;
    }
    renderForm();
    if (!keys.length) {
      clear(listPanel, h('h2', { id: 'keys-h', text: 'Keys' }), h('p', { class: 'muted', text: 'No API key yet.' }));
      return;
    }
    const tbody = h('tbody');
    for (const k of keys) {
      const del = h('button', { type: 'button', class: 'btn btn-sm btn-quiet', text: 'Delete', 'aria-label': `Delete API key ${k.name}` });
      del.addEventListener('click', async () => {
        if (!await confirmDialog({ title: `Delete API key ${k.name}?`, message: 'Programs using it can no longer get credentials. This cannot be undone.' })) return;
        try {
          await api('DELETE', `/api/v1/admin/api-keys/${enc(k.id)}`);
          announce(`API key ${k.name} deleted.`);
          refresh();
        } catch (e) { announceError(e); }
      });
      tbody.append(h('tr', {},
        h('td', {}, h('strong', { text: k.name }), h('span', { class: 'sub digest', text: k.id })),
        h('td', {}, k.connectors.map((c) => h('span', { class: 'tag', text: c.name || c.id }))),
        h('td', {}, timeEl(k.created)),
        h('td', {}, k.expires ? timeEl(k.expires) : h('span', { class: 'muted', text: 'Never' }), k.expired ? [' ', h('span', { class: 'badge badge-red', text: 'Expired' })] : null),
        h('td', {}, k.last_used ? timeEl(k.last_used) : h('span', { class: 'muted', text: 'Never' })),
        h('td', { class: 'actions' }, del)));
    }
    clear(listPanel, h('h2', { id: 'keys-h', text: 'Keys' }), h('div', { class: 'table-wrap' }, h('table', {},
      h('thead', {}, h('tr', {}, ['Name', 'Connectors', 'Created', 'Expires', 'Last used'].map((t) => h('th', { scope: 'col', text: t })), h('th', { scope: 'col' }, h('span', { class: 'visually-hidden', text: 'Actions' })))),
      tbody)));
  }

  function renderForm() {
    const scoped = connectors.filter((c) => c.system_scope).sort((a, b) => a.name.localeCompare(b.name));
    const fName = field('Key name', textInput({ placeholder: 'e.g. ci-deploy', maxlength: 64 }), { required: true, hint: 'Shown in the audit log as system:<name>.' });
    const boxes = scoped.map((c) => [c, checkbox(c.name, { hint: c.description || null })]);
    const fExpires = field('Expires', h('input', { type: 'datetime-local' }), { hint: 'Your local time. Empty: never.' });
    const formError = h('div', {});
    const create = h('button', { type: 'submit', class: 'btn btn-primary', text: 'Create API key', disabled: !scoped.length });
    const form = h('form', { novalidate: true }, formError,
      h('div', { class: 'grid-2' }, fName.wrap, fExpires.wrap),
      h('fieldset', {}, h('legend', { text: 'Connectors it may use' }),
        scoped.length ? h('div', { class: 'checklist' }, boxes.map(([, b]) => b.wrap))
          : h('p', { class: 'muted', text: 'No connector allows system scope yet: tick "System scope" on a connector first.' })),
      create);
    clear(formPanel, h('h2', { id: 'newkey-h', text: 'Create an API key' }), form);
    form.addEventListener('submit', async (event) => {
      event.preventDefault();
      if (isBusy(create)) return;
      clear(formError);
      setFieldError(fName, null);
      const name = fName.input.value.trim();
      const chosen = boxes.filter(([, b]) => b.input.checked).map(([c]) => c.id);
      if (!name) { setFieldError(fName, 'Name the key.'); fName.input.focus(); return; }
      if (!chosen.length) { formError.replaceChildren(h('div', { class: 'alert alert-error', role: 'alert', text: 'Choose at least one connector.' })); return; }
      const body = { name, connectors: chosen };
      if (fExpires.input.value) body.expires = new Date(fExpires.input.value).toISOString();
      setBusy(create, true);
      try {
        const key = await api('POST', '/api/v1/admin/api-keys', { json: body });
        showNewKey(key);
        refresh();
      } catch (e) {
        if (isGone(e)) return;
        setBusy(create, false);
        formError.replaceChildren(errorAlert(e, 'The key was not created'));
      }
    });
  }

  function showNewKey(key) {
    const d = openDialog({ title: `API key ${key.name} created` });
    const input = h('input', { type: 'text', id: uid('key'), readOnly: true, value: MASK, spellcheck: 'false', autocomplete: 'off' });
    let masked = true;
    const toggle = h('button', { type: 'button', class: 'btn btn-sm', text: 'Show', 'aria-label': 'Show API key' });
    toggle.addEventListener('click', () => {
      masked = !masked;
      input.value = masked ? MASK : key.key;
      toggle.textContent = masked ? 'Show' : 'Hide';
      toggle.setAttribute('aria-label', masked ? 'Show API key' : 'Hide API key');
    });
    d.body.append(
      h('div', { class: 'alert alert-warn', role: 'alert' }, h('strong', { text: 'Copy the key now.' }), 'It will not be shown again: idfed keeps only a hash of it.'),
      h('div', { class: 'field' }, h('label', { for: input.id, text: 'API key' }), h('div', { class: 'key-reveal' }, input, toggle, copyButton('Copy API key', () => key.key))),
      h('p', { class: 'hint' }, 'Programs send it as ', h('code', { text: 'Authorization: Bearer <key>' }), '.'));
    d.foot.append(h('button', { type: 'button', class: 'btn btn-primary', text: 'Done', onclick: () => d.close() }));
    toggle.focus();
  }

  await refresh();
}

// ---------------------------------------------------------------------------------------------------
// Admin: audit log

function auditTable(records, { compact = false } = {}) {
  const tbody = h('tbody');
  for (const r of records) {
    const e = r.event || {};
    tbody.append(h('tr', {},
      h('td', { class: 'nowrap' }, timeEl(r.time), compact ? null : h('span', { class: 'sub', text: `#${r.seq}` })),
      compact ? null : h('td', { class: 'mono small', text: e.action || '' }),
      h('td', { text: e.caller || '—' }),
      compact ? null : h('td', { text: e.connector || '' }),
      h('td', {}, outcomeBadge(e.outcome), e.code && e.code !== e.outcome ? h('span', { class: 'sub mono', text: e.code }) : null),
      h('td', { class: 'reason' }, e.reason || '', e.access_key_id ? h('span', { class: 'sub' }, 'Key ', h('code', { text: e.access_key_id })) : null,
        e.duration_seconds ? h('span', { class: 'sub', text: `${fmtDuration(e.duration_seconds)}${e.capped ? ' (capped)' : ''}` }) : null),
      compact ? null : h('td', { class: 'small', text: e.source_ip || '' })));
  }
  const heads = compact ? ['Time', 'Caller', 'Outcome', 'Detail'] : ['Time', 'Action', 'Caller', 'Connector', 'Outcome', 'Detail', 'Source'];
  return h('div', { class: 'table-wrap' }, h('table', {},
    h('thead', {}, h('tr', {}, heads.map((t) => h('th', { scope: 'col', text: t })))), tbody));
}

async function screenAudit(root) {
  document.title = 'Audit log · Admin · idfed';
  const f = {
    user: field('User', textInput({ placeholder: 'alice or system:ci' })),
    connector: field('Connector', textInput({})),
    outcome: field('Outcome', h('select', {}, h('option', { value: '', text: 'Any' }), OUTCOMES.map((o) => h('option', { value: o, text: o.replace('_', ' ') })))),
    since: field('Since', h('input', { type: 'datetime-local', step: 1 })),
    until: field('Until', h('input', { type: 'datetime-local', step: 1 })),
    limit: field('Limit', h('input', { type: 'number', min: 1, max: 1000, value: '100' })),
  };
  const apply = h('button', { type: 'submit', class: 'btn btn-primary', text: 'Apply filters' });
  const form = h('form', { class: 'filters', role: 'search', 'aria-label': 'Filter the audit log' }, Object.values(f).map((x) => x.wrap), h('div', {}, apply));
  const results = h('section', { class: 'panel', 'aria-labelledby': 'audit-h', 'aria-live': 'polite' });
  const head = pageHead('Audit log', '');
  head.querySelector('p').append('Every credential request — issued, refused, denied by a plugin, failed — and every admin change, newest first. Records are hash-chained: ',
    h('code', { text: 'idfed audit verify' }), ' detects tampering.');
  clear(root, head, h('section', { class: 'panel' }, form), results);

  async function load() {
    const params = new URLSearchParams();
    for (const key of ['user', 'connector', 'outcome']) if (f[key].input.value.trim()) params.set(key, f[key].input.value.trim());
    for (const key of ['since', 'until']) {
      if (f[key].input.value) {
        const d = new Date(f[key].input.value);
        if (!Number.isNaN(d.getTime())) params.set(key, d.toISOString());
      }
    }
    if (f.limit.input.value) params.set('limit', f.limit.input.value);
    clear(results, h('h2', { id: 'audit-h', class: 'visually-hidden', text: 'Records' }), loading());
    try {
      const answer = await api('GET', `/api/v1/admin/audit?${params}`);
      const records = answer.records || [];
      clear(results, h('div', { class: 'panel-head' }, h('h2', { id: 'audit-h', text: 'Records' }), h('span', { class: 'muted', text: plural(records.length, 'record', 'records') })),
        records.length ? auditTable(records) : h('p', { class: 'muted', text: 'No record matches these filters.' }));
    } catch (e) {
      if (isGone(e)) return;
      clear(results, h('h2', { id: 'audit-h', class: 'visually-hidden', text: 'Records' }), errorAlert(e, 'Could not read the audit log'));
    }
  }
  form.addEventListener('submit', (event) => { event.preventDefault(); load(); });
  await load();
}

// ---------------------------------------------------------------------------------------------------
// Routing and start

const ROUTES = {
  '/connectors': { screen: screenMyConnectors },
  '/approvals': { screen: screenApprovals },
  '/admin/connectors': { screen: screenAdminConnectors, admin: true },
  '/admin/plugins': { screen: screenPlugins, admin: true },
  '/admin/api-keys': { screen: screenApiKeys, admin: true },
  '/admin/audit': { screen: screenAudit, admin: true },
};

let routeSerial = 0;

function route() {
  if (!state.user) { renderLogin(); return; }
  const path = (location.hash || '').replace(/^#/, '') || '/connectors';
  const r = ROUTES[path];
  if (!r || (r.admin && !state.user.is_admin)) {
    if (path !== '/connectors') {
      location.replace('#/connectors');
      return;
    }
  }
  closeAllDialogs();
  markNav(path);
  routeSerial += 1;
  const root = main();
  clear(root);
  const serial = routeSerial;
  (r || ROUTES['/connectors']).screen(root).catch((e) => {
    if (serial === routeSerial && state.user && !isGone(e)) clear(root, errorAlert(e, 'This page could not be shown'));
  });
}

async function start() {
  document.getElementById('logout').addEventListener('click', logout);
  document.getElementById('skip-link').addEventListener('click', (event) => {
    event.preventDefault();
    main().focus();
  });
  window.addEventListener('hashchange', () => {
    route();
    main().focus({ preventScroll: true });
  });
  try {
    const session = await api('GET', '/api/v1/web/session', { session: true });
    adopt(session);
    route();
  } catch (e) {
    if (e.status === 401) renderLogin();
    else {
      renderLogin();
      announce(`idfed could not be reached: ${e.message}`, 'error');
    }
  }
}

start();
