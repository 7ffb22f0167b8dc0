// idfed's web UI, end to end in Debian's Chromium (headless, driven by playwright-core; no browser download).
// Run by tests/tests/web_ui.rs against a real idfed with moto as STS; it can also be run by hand:
//
//   IDFED_URL=http://127.0.0.1:8443 IDFED_PASSWORD=… IDFED_STS_ENDPOINT=http://127.0.0.1:5000 \
//   IDFED_PLUGIN_WASM=…/rate_limit.wasm node tests/browser/ui.test.mjs
//
// Environment:
//   IDFED_URL            the server's base URL (required)
//   IDFED_PASSWORD       every user's password (required)
//   IDFED_STS_ENDPOINT   moto's URL, the new account's STS endpoint (required)
//   IDFED_PLUGIN_WASM    the rate-limit plugin component (required)
//   IDFED_ADMIN          an administrator (default admin)
//   IDFED_USER           a member of IDFED_GROUP (default alice)
//   IDFED_OUTSIDER       a user outside IDFED_GROUP (default bob)
//   IDFED_GROUP          the group the new connector is for (default devs)
//   IDFED_SCREENSHOTS    where the screenshots go (default ./screenshots)
//   IDFED_ENV_OUT        if set, the shell exports copied from the credentials dialog are written there
//   CHROMIUM             the browser (default /usr/bin/chromium)
//
// Exits 0 when every check passed, non-zero otherwise (and after 3 minutes at most).
//
// Accessibility: each main screen and dialog gets a label audit (auditLabels: every visible control has an
// accessible name, by its label, aria-label or aria-labelledby, and Chromium's accessibility tree agrees; every
// dialog is named by its heading), reported together at the end; then keyboardOnly() uses the UI, in a
// context of its own, with page.keyboard alone: no mouse, no locator clicks.

import { chromium } from 'playwright-core';
import fs from 'node:fs';
import path from 'node:path';

const env = (name, fallback) => {
  const value = process.env[name] ?? fallback;
  if (value === undefined || value === '') {
    console.error(`ui.test: set ${name}`);
    process.exit(2);
  }
  return value;
};

const BASE = env('IDFED_URL').replace(/\/$/, '');
const PASSWORD = env('IDFED_PASSWORD');
const STS_ENDPOINT = env('IDFED_STS_ENDPOINT');
const PLUGIN_WASM = env('IDFED_PLUGIN_WASM');
const ADMIN = env('IDFED_ADMIN', 'admin');
const USER = env('IDFED_USER', 'alice');
const OUTSIDER = env('IDFED_OUTSIDER', 'bob');
const GROUP = env('IDFED_GROUP', 'devs');
const SHOTS = path.resolve(env('IDFED_SCREENSHOTS', 'screenshots'));
const ENV_OUT = process.env.IDFED_ENV_OUT || '';
const CHROMIUM = env('CHROMIUM', '/usr/bin/chromium');

const OVERALL_TIMEOUT_MS = 180_000;
const STEP_TIMEOUT_MS = 30_000;
const MASK = '••••••••••••••••••••••••';
const CONNECTOR = 'dev-s3'; // federated user, from a policy example, with the rate-limit plugin
const ROLE_CONNECTOR = 'dev-role'; // assumed role: moto's GetCallerIdentity names the session after the user
const ROLE_ARN = 'arn:aws:iam::123456789012:role/dev';
const ACCOUNT = 'sandbox';

const started = Date.now();
const log = (...args) => console.log(`[${((Date.now() - started) / 1000).toFixed(1).padStart(5)}s]`, ...args);

let browser;
let page;
const problems = []; // console errors, page errors, CSP violations
const networkErrors = []; // expected API errors the browser logs (4xx/5xx), for the record

const overall = setTimeout(async () => {
  console.error(`ui.test: FAILED: still running after ${OVERALL_TIMEOUT_MS / 1000} s`);
  await snapshotFailure().catch(() => {});
  await browser?.close().catch(() => {});
  process.exit(3);
}, OVERALL_TIMEOUT_MS);

class Failure extends Error {}

function check(condition, message) {
  if (!condition) throw new Failure(message);
}

/** Waits until `fn()` is truthy (polling), failing with `message`. */
async function eventually(fn, message, timeout = STEP_TIMEOUT_MS) {
  const end = Date.now() + timeout;
  let last;
  for (;;) {
    try {
      last = await fn();
      if (last) return last;
    } catch (e) {
      last = e;
    }
    if (Date.now() > end) throw new Failure(`${message} (last: ${last instanceof Error ? last.message : JSON.stringify(last)})`);
    await new Promise((r) => setTimeout(r, 150));
  }
}

async function visible(locator, what) {
  try {
    await locator.first().waitFor({ state: 'visible', timeout: STEP_TIMEOUT_MS });
  } catch {
    throw new Failure(`not visible: ${what}`);
  }
  return locator.first();
}

async function hasText(locator, pattern, what) {
  return eventually(async () => {
    const text = await locator.first().textContent({ timeout: 2000 });
    return pattern.test(text || '') ? text : null;
  }, `${what}: no text matching ${pattern}`);
}

async function shot(name) {
  // Let the UI settle before the picture: fonts loaded, two frames painted.
  await page.evaluate(() => document.fonts.ready.then(() => new Promise((r) => requestAnimationFrame(() => requestAnimationFrame(r)))));
  const file = path.join(SHOTS, `${name}.png`);
  await page.screenshot({ path: file, fullPage: false });
  log(`screenshot ${file}`);
}

async function snapshotFailure() {
  if (!page) return;
  await page.screenshot({ path: path.join(SHOTS, 'failure.png') }).catch(() => {});
  const text = await page.evaluate(() => {
    const dialogs = [...document.querySelectorAll('dialog[open]')].map((d) => d.innerText);
    return `${document.location.href}\n--- main ---\n${document.querySelector('main')?.innerText}\n--- dialogs ---\n${dialogs.join('\n---\n')}`;
  }).catch(() => '');
  console.error(`ui.test: the page at the failure:\n${text.slice(0, 4000)}`);
}

const dialog = (name) => page.getByRole('dialog', { name });

async function login(user) {
  log(`log in as ${user}`);
  await visible(page.getByRole('heading', { name: 'Log in to idfed' }), 'the login screen');
  await page.getByLabel('User name').fill(user);
  await page.getByLabel('Password').fill(PASSWORD);
  await page.getByRole('button', { name: 'Log in' }).click();
  await visible(page.getByRole('button', { name: 'Log out' }), `logged in as ${user}`);
  await hasText(page.locator('#whoami'), new RegExp(`^${user}$`), 'the user name in the top bar');
}

async function logout() {
  log('log out');
  await page.getByRole('button', { name: 'Log out' }).click();
  await visible(page.getByRole('heading', { name: 'Log in to idfed' }), 'the login screen after logging out');
  await visible(page.getByText('You are logged out.'), 'the logged-out notice');
  const session = await page.evaluate(async () => (await fetch('/api/v1/web/session', { credentials: 'same-origin' })).status);
  check(session === 401, `after logging out, GET /api/v1/web/session answers ${session}, not 401`);
}

async function nav(name, heading) {
  await page.getByRole('navigation', { name: 'Main' }).getByRole('link', { name, exact: true }).click();
  await visible(page.getByRole('heading', { level: 1, name: heading }), `the ${heading} page`);
}

async function clipboard() {
  return page.evaluate(() => navigator.clipboard.readText());
}

// ---------------------------------------------------------------------------------------------------------
// Contexts and pages: every page is watched for console errors, page errors and CSP violations.

/** A new browser context: a fresh cookie jar, the clipboard allowed, the page helpers below installed. */
async function openContext() {
  const context = await browser.newContext({
    baseURL: BASE,
    viewport: { width: 1366, height: 900 },
    deviceScaleFactor: 1,
    locale: 'en-US',
    timezoneId: 'UTC',
  });
  await context.grantPermissions(['clipboard-read', 'clipboard-write'], { origin: BASE });
  // Every CSP violation, as the page sees it, reported at once (so none is lost when a page reloads).
  await context.exposeFunction('__idfedCspViolation', (text) => problems.push(`CSP violation: ${text}`));
  await context.addInitScript(pageHelpers);
  return context;
}

async function watchedPage(context) {
  const p = await context.newPage();
  p.setDefaultTimeout(STEP_TIMEOUT_MS);
  p.on('console', (message) => {
    const text = message.text();
    if (message.type() === 'error' && /^Failed to load resource: the server responded with a status of [45]\d\d/.test(text)) {
      networkErrors.push(`${text} ${message.location().url || ''}`);
      return;
    }
    if (message.type() === 'error' || message.type() === 'warning') problems.push(`console ${message.type()}: ${text}`);
  });
  p.on('pageerror', (error) => problems.push(`page error: ${error.message}`));
  p.on('crash', () => problems.push('the page crashed'));
  return p;
}

/**
 * Runs in every page before its own script (installed by addInitScript, so not subject to the page's CSP):
 * reports CSP violations, and gives the test `window.__idfedTest` — accessible names, the label audit and
 * what has the focus.
 */
function pageHelpers() {
  document.addEventListener('securitypolicyviolation', (e) => {
    window.__idfedCspViolation(`${e.violatedDirective}: ${e.blockedURI} (${e.sourceFile}:${e.lineNumber})`);
  });
  const squash = (s) => String(s ?? '').replace(/\s+/g, ' ').trim();
  /** An element's text as assistive technology reads it: aria-hidden parts left out, images by their alt. */
  const textOf = (node) => {
    let out = '';
    for (const child of node.childNodes) {
      if (child.nodeType === Node.TEXT_NODE) out += child.textContent;
      else if (child.nodeType === Node.ELEMENT_NODE && child.getAttribute('aria-hidden') !== 'true') {
        out += child.localName === 'img' ? ` ${child.getAttribute('alt') || ''} ` : ` ${textOf(child)} `;
      }
    }
    return squash(out);
  };
  /**
   * The accessible name, strictly: aria-labelledby, aria-label, a <label>, or (buttons, links) the content.
   * A placeholder or a title does not count: a field needs a real label.
   */
  const name = (el) => {
    const ref = el.getAttribute('aria-labelledby');
    if (ref) return squash(ref.split(/\s+/).map((id) => { const t = document.getElementById(id); return t ? textOf(t) : ''; }).join(' '));
    const label = squash(el.getAttribute('aria-label'));
    if (label) return label;
    if (el.labels && el.labels.length) {
      const text = squash([...el.labels].map(textOf).join(' '));
      if (text) return text;
    }
    if (el.matches('button, a[href], summary, [role=button], [role=link], [role=tab], [role=menuitem]')) return textOf(el);
    if (el.matches('input[type=submit], input[type=button], input[type=reset]')) return squash(el.value);
    return '';
  };
  const dialogName = (d) => name(d);
  const describe = (el) => {
    let s = el.localName;
    if (el.id) s += `#${el.id}`;
    if (el.localName === 'input') s += `[type=${el.type}]`;
    for (const a of ['name', 'placeholder', 'aria-label', 'title']) {
      if (el.getAttribute(a)) s += `[${a}="${el.getAttribute(a).slice(0, 40)}"]`;
    }
    const text = el.localName === 'select' ? '' : textOf(el).slice(0, 40);
    if (text) s += ` "${text}"`;
    const where = el.closest('dialog') || el.closest('section[aria-labelledby], article[aria-labelledby], form[aria-label], header');
    if (where) s += ` in ${where.localName}${where.localName === 'header' ? '' : ` "${name(where)}"`}`;
    return s;
  };
  const shown = (el) => el.checkVisibility({ checkVisibilityCSS: true }) && !el.closest('[aria-hidden="true"], [inert]');
  const CONTROLS = 'input:not([type=hidden]), select, textarea, button, a[href], summary, [tabindex]:not([tabindex="-1"]), '
    + '[contenteditable=""], [contenteditable="true"], [role=button], [role=link], [role=checkbox], [role=radio], '
    + '[role=textbox], [role=combobox], [role=switch], [role=tab], [role=menuitem]';
  const letters = (s) => squash(s).toLowerCase().replace(/[^\p{L}\p{N}]+/gu, ' ').trim();

  /**
   * The label audit of what the user can reach now: the top dialog if one is open, else the page. Answers
   * {count, problems}: controls without an accessible name (or one of symbols only), aria-label hiding the visible text (WCAG 2.5.3),
   * references to missing ids, labels for nothing, duplicate ids, dialogs not named by their heading.
   */
  const audit = () => {
    const problems = [];
    const open = [...document.querySelectorAll('dialog[open]')];
    const scope = open.length ? open[open.length - 1] : document.body;
    let count = 0;
    for (const el of scope.querySelectorAll(CONTROLS)) {
      if (!shown(el)) continue;
      count += 1;
      const accessible = name(el);
      if (!accessible) {
        problems.push(`no accessible name: ${describe(el)}`);
        continue;
      }
      if (!/[\p{L}\p{N}]/u.test(accessible)) {
        problems.push(`its name "${accessible}" has no words (a symbol is read out as one): ${describe(el)}`);
        continue;
      }
      const visibleText = el.matches('button, a[href], summary, [role=button], [role=link]') ? letters(textOf(el)) : '';
      if (el.hasAttribute('aria-label') && visibleText && !letters(accessible).includes(visibleText)) {
        problems.push(`its name "${accessible}" does not contain its visible text "${textOf(el)}": ${describe(el)}`);
      }
    }
    for (const el of scope.querySelectorAll('[aria-labelledby], [aria-describedby], [aria-controls]')) {
      if (!shown(el)) continue;
      for (const attr of ['aria-labelledby', 'aria-describedby', 'aria-controls']) {
        for (const id of (el.getAttribute(attr) || '').split(/\s+/).filter(Boolean)) {
          if (!document.getElementById(id)) problems.push(`${attr}="${id}" names no element: ${describe(el)}`);
        }
      }
    }
    for (const label of scope.querySelectorAll('label')) {
      if (!shown(label)) continue;
      if (!label.control) problems.push(`the label "${textOf(label)}" labels nothing${label.htmlFor ? ` (for="${label.htmlFor}")` : ''}`);
    }
    const seen = new Map();
    for (const el of document.querySelectorAll('[id]')) {
      if (seen.has(el.id)) problems.push(`the id "${el.id}" is used twice: ${describe(seen.get(el.id))} and ${describe(el)}`);
      else seen.set(el.id, el);
    }
    for (const d of open) {
      const ref = d.getAttribute('aria-labelledby');
      const heading = ref && document.getElementById(ref);
      if (!heading || !d.contains(heading) || !/^h[1-6]$/.test(heading.localName) || !textOf(heading)) {
        problems.push(`a dialog not named by its heading (aria-labelledby="${ref || ''}"): ${squash(d.innerText).slice(0, 60)}`);
      }
      if (!d.matches(':modal')) problems.push(`a dialog is not modal: "${dialogName(d)}"`);
    }
    return { count, problems };
  };

  /** What has the focus, and whether it shows (an outline or a box-shadow). */
  const focused = () => {
    const el = document.activeElement;
    const open = [...document.querySelectorAll('dialog[open]')];
    const top = open.length ? dialogName(open[open.length - 1]) : null;
    if (!el || el === document.body || el === document.documentElement) return { tag: 'body', describe: 'nothing (the page itself)', topDialog: top };
    const style = getComputedStyle(el);
    const dialog = el.closest('dialog');
    const article = el.closest('article');
    return {
      tag: el.localName,
      id: el.id,
      type: el.localName === 'input' ? el.type : '',
      name: name(el),
      describe: describe(el),
      dialog: dialog ? dialogName(dialog) : null,
      topDialog: top,
      article: article ? name(article) : null,
      checked: el.checked === true,
      value: 'value' in el ? String(el.value) : null,
      ring: (style.outlineStyle !== 'none' && parseFloat(style.outlineWidth) > 0) || style.boxShadow !== 'none',
      ringStyle: `outline: ${style.outlineStyle} ${style.outlineWidth}; box-shadow: ${style.boxShadow}`,
    };
  };
  window.__idfedTest = { name, audit, focused };
}

// ---------------------------------------------------------------------------------------------------------
// Accessibility checks

const labelProblems = []; // from every audit, reported together at the end
let audits = 0;
const cdpSessions = new WeakMap();

/** Chromium's own accessibility tree: interactive nodes (and dialogs) it names with nothing. */
async function unnamedInAxTree() {
  let cdp = cdpSessions.get(page);
  if (!cdp) {
    cdp = await page.context().newCDPSession(page);
    await cdp.send('Accessibility.enable');
    cdpSessions.set(page, cdp);
  }
  const roles = new Set(['button', 'textbox', 'searchbox', 'combobox', 'listbox', 'checkbox', 'radio', 'switch',
    'spinbutton', 'slider', 'link', 'tab', 'menuitem', 'dialog', 'alertdialog']);
  const { nodes } = await cdp.send('Accessibility.getFullAXTree');
  const unnamed = [];
  for (const node of nodes) {
    if (node.ignored || !roles.has(node.role?.value) || String(node.name?.value ?? '').trim()) continue;
    let what = `${node.role.value}`;
    if (node.backendDOMNodeId) {
      const { node: dom } = await cdp.send('DOM.describeNode', { backendNodeId: node.backendDOMNodeId }).catch(() => ({ node: null }));
      if (dom) {
        const attrs = [];
        for (let i = 0; i + 1 < (dom.attributes || []).length; i += 2) attrs.push(`${dom.attributes[i]}="${dom.attributes[i + 1].slice(0, 40)}"`);
        what += ` <${dom.localName} ${attrs.join(' ')}>`;
      }
    }
    unnamed.push(`Chromium's accessibility tree has no name for ${what}`);
  }
  return unnamed;
}

/** The label audit of the current screen or top dialog; its problems are reported at the end. */
async function auditLabels(screen) {
  const { count, problems: found } = await page.evaluate(() => window.__idfedTest.audit());
  const unnamed = await unnamedInAxTree();
  audits += 1;
  check(count > 0, `the label audit of ${screen} found no control at all`);
  for (const problem of [...found, ...unnamed]) labelProblems.push(`${screen}: ${problem}`);
  if (found.length || unnamed.length) log(`label audit of ${screen}:\n  ${[...found, ...unnamed].join('\n  ')}`);
}

// ---------------------------------------------------------------------------------------------------------
// Keyboard only: page.keyboard, never the mouse

async function focused() {
  return page.evaluate(() => window.__idfedTest.focused());
}

/** Waits until the focused element matches (focus moved by the page itself, e.g. when a dialog opens). */
async function expectFocus(matches, what) {
  return eventually(async () => {
    const f = await focused();
    return matches(f) ? f : null;
  }, `${what} (focus is on ${(await focused()).describe})`, 10_000);
}

/**
 * Presses Tab (or Shift+Tab) until the focused element matches; every element it stops at must show its
 * focus, and with `dialog` it must stay in that dialog.
 */
async function tabTo(matches, what, { shift = false, dialog: within = null, max = 60 } = {}) {
  const trail = [];
  for (let i = 0; i < max; i += 1) {
    await page.keyboard.press(shift ? 'Shift+Tab' : 'Tab');
    const f = await focused();
    trail.push(f.describe);
    if (f.tag !== 'body') {
      check(f.ring, `no visible focus indicator on ${f.describe} (${f.ringStyle})`);
      if (within) check(f.dialog === within, `Tab left the dialog "${within}" for ${f.describe}`);
    }
    if (matches(f)) return f;
  }
  throw new Failure(`${what}: not reached with ${max} presses of ${shift ? 'Shift+' : ''}Tab; focus went through:\n  ${trail.join('\n  ')}`);
}

async function keyboardLogin(user) {
  log(`keyboard: log in as ${user}`);
  await visible(page.getByRole('heading', { name: 'Log in to idfed' }), 'the login screen');
  await expectFocus((f) => f.tag === 'input' && f.name === 'User name', 'the login screen puts the focus in User name');
  await page.keyboard.type(user);
  await page.keyboard.press('Tab');
  await expectFocus((f) => f.name === 'Password', 'Tab goes from User name to Password');
  await page.keyboard.type(PASSWORD);
  await page.keyboard.press('Enter');
  await hasText(page.locator('#whoami'), new RegExp(`^${user}$`), 'the user name in the top bar');
  await expectFocus((f) => f.id === 'main', 'after logging in, the focus is on the main content');
}

/** The keyboard-only pass, in a context of its own: no mouse, no locator clicks, only page.keyboard. */
async function keyboardOnly() {
  log('keyboard only, in a new browser context: from here on no mouse and no clicks');
  const context = await openContext();
  page = await watchedPage(context);
  await page.goto('/');
  await keyboardLogin(USER);
  const card = page.getByRole('article', { name: ROLE_CONNECTOR });
  await visible(card, `the connector ${ROLE_CONNECTOR}`);

  log('keyboard: the first Tab stop of a fresh page is the skip link; Enter moves the focus to the main content');
  await page.reload();
  await visible(card, 'My connectors after a reload');
  const first = await tabTo(() => true, 'the first Tab stop', { max: 1 });
  check(first.tag === 'a' && first.name === 'Skip to content', `the first Tab stop is ${first.describe}, not "Skip to content"`);
  const skip = await page.locator('#skip-link').boundingBox();
  check(skip && skip.y >= 0 && skip.height > 0, `the focused skip link is not on screen: ${JSON.stringify(skip)}`);
  await page.keyboard.press('Enter');
  await expectFocus((f) => f.id === 'main', 'Enter on the skip link moves the focus to the main content');

  log('keyboard: Get credentials, Show with Space, Hide with Enter, Copy, Escape');
  await tabTo((f) => f.name === 'Get credentials' && f.article === ROLE_CONNECTOR, `Get credentials of ${ROLE_CONNECTOR}`);
  await page.keyboard.press('Enter');
  const credTitle = `Credentials for ${ROLE_CONNECTOR}`;
  const credDialog = dialog(credTitle);
  await visible(credDialog, 'the credentials dialog, opened with Enter');
  await expectFocus((f) => f.dialog === credTitle, 'the focus is in the credentials dialog when it opens');
  const secretField = credDialog.getByLabel('Secret access key', { exact: true });
  await visible(secretField, 'the credentials');
  await tabTo((f) => f.name === 'Show secret access key', 'Show secret access key', { dialog: credTitle });
  await page.keyboard.press('Space');
  await eventually(async () => (await secretField.inputValue()) !== MASK, 'Space on Show shows the secret');
  const secret = await secretField.inputValue();
  await expectFocus((f) => f.name === 'Hide secret access key', 'the focus stays on the button, now Hide');
  await page.keyboard.press('Enter');
  await eventually(async () => (await secretField.inputValue()) === MASK, 'Enter on Hide masks the secret again');
  await tabTo((f) => f.name === 'Copy secret access key', 'Copy secret access key', { dialog: credTitle });
  await page.keyboard.press('Enter');
  await eventually(async () => (await clipboard()) === secret, 'Enter on Copy copies the secret');
  await hasText(credDialog.locator('.dialog-status'), /^Secret access key copied to the clipboard\.$/, 'the announcement of the copy');
  await shot('11-keyboard-credentials');
  await page.keyboard.press('Escape');
  await credDialog.waitFor({ state: 'detached' });
  await expectFocus((f) => f.name === 'Get credentials' && f.article === ROLE_CONNECTOR,
    'Escape closes the dialog and the focus returns to the Get credentials button that opened it');

  log('keyboard: Test access keeps the focus on its button while it works');
  await tabTo((f) => f.name === 'Test access' && f.article === ROLE_CONNECTOR, `Test access of ${ROLE_CONNECTOR}`, { max: 1 });
  await page.keyboard.press('Enter');
  await visible(card.getByText('Access works. AWS says you are:'), 'the caller identity, asked for by the keyboard');
  await expectFocus((f) => f.name === 'Test access' && f.article === ROLE_CONNECTOR, 'the focus is still on Test access');

  await tabTo((f) => f.name === 'Log out', 'Log out', { shift: true });
  await page.keyboard.press('Enter');
  await keyboardLogin(ADMIN);

  log('keyboard: as admin, the Connectors link, then Create connector');
  await tabTo((f) => f.tag === 'a' && f.name === 'Connectors', 'the Connectors link', { shift: true });
  await page.keyboard.press('Enter');
  await visible(page.getByRole('heading', { level: 1, name: 'Connectors' }), 'the Connectors page, by the keyboard');
  await expectFocus((f) => f.id === 'main', 'following a link moves the focus to the main content');
  await tabTo((f) => f.tag === 'button' && f.name === 'Create connector', 'Create connector');
  await page.keyboard.press('Enter');
  const title = 'Create connector';
  const cdlg = dialog(title);
  await visible(cdlg, 'the Create connector dialog, opened with Enter');
  await expectFocus((f) => f.dialog === title && f.name === 'Name', 'the focus is in the Name field when the dialog opens');
  await page.keyboard.type('kbd-only');

  log('keyboard: the nested account dialog closes with Escape, and only it');
  await tabTo((f) => f.name === 'Add account…', 'Add account…', { dialog: title });
  await page.keyboard.press('Enter');
  const adlg = dialog('Add AWS account');
  await visible(adlg, 'the Add AWS account dialog, opened with Enter');
  await expectFocus((f) => f.dialog === 'Add AWS account' && f.name === 'Account name', 'the focus is in Account name');
  await page.keyboard.press('Escape');
  await adlg.waitFor({ state: 'detached' });
  await expectFocus((f) => f.dialog === title && f.name === 'Add account…', 'Escape closes the nested dialog and the focus returns to Add account…');
  check(await cdlg.isVisible(), 'Escape in the account dialog closed the connector dialog too');

  log('keyboard: Space ticks a checkbox, arrow keys pick the principal type');
  const enabled = await tabTo((f) => f.type === 'checkbox' && f.name === 'Enabled', 'the Enabled checkbox', { dialog: title });
  check(enabled.checked, 'Enabled is not ticked in a new connector');
  await page.keyboard.press('Space');
  await expectFocus((f) => f.name === 'Enabled' && !f.checked, 'Space unticks Enabled');
  await page.keyboard.press('Space');
  await expectFocus((f) => f.name === 'Enabled' && f.checked, 'Space ticks Enabled again');
  const radio = await tabTo((f) => f.type === 'radio', 'the principal type', { dialog: title });
  check(radio.name === 'Federated user' && radio.checked, `Tab reaches ${radio.describe}, not the chosen Federated user`);
  await page.keyboard.press('ArrowRight');
  await expectFocus((f) => f.type === 'radio' && f.name === 'IAM user' && f.checked, 'ArrowRight picks IAM user');
  await visible(cdlg.getByText('IAM user connectors take no session policy'), 'the IAM user note, picked by the keyboard');
  check(!(await cdlg.getByLabel('Federated user').isChecked()), 'Federated user is still checked beside IAM user');
  await page.keyboard.press('ArrowDown');
  await expectFocus((f) => f.type === 'radio' && f.name === 'Assumed role' && f.checked, 'ArrowDown picks Assumed role');
  await tabTo((f) => f.name === 'Role ARN', 'Role ARN, the next Tab stop', { dialog: title, max: 1 });
  await page.keyboard.type(ROLE_ARN);
  await tabTo((f) => f.type === 'radio', 'the principal type again', { shift: true, dialog: title, max: 1 });
  await page.keyboard.press('ArrowLeft');
  await expectFocus((f) => f.type === 'radio' && f.name === 'IAM user' && f.checked, 'ArrowLeft picks IAM user again');
  check(!(await cdlg.getByLabel('Role ARN').isVisible()), 'the Role ARN field stays for an IAM user');
  await shot('11-keyboard-connector-dialog');
  await tabTo((f) => f.tag === 'button' && f.name === 'Create connector', "through every field to the dialog's Create connector", { dialog: title });
  await page.keyboard.press('Escape');
  await cdlg.waitFor({ state: 'detached' });
  await expectFocus((f) => f.tag === 'button' && f.name === 'Create connector' && !f.dialog,
    'Escape closes the dialog and the focus returns to the Create connector button that opened it');
  check(await page.getByRole('row').filter({ hasText: 'kbd-only' }).count() === 0, 'Escape saved the connector');

  log('keyboard: an edit saved with Enter; the table is rendered again and the focus is back on its Edit button');
  await tabTo((f) => f.name === `Edit ${ROLE_CONNECTOR}`, `Edit ${ROLE_CONNECTOR}`);
  await page.keyboard.press('Enter');
  const editTitle = `Edit connector ${ROLE_CONNECTOR}`;
  await visible(dialog(editTitle).getByRole('list', { name: 'Plugin chain, in order' }).or(dialog(editTitle).getByText('No plugin: requests')), 'the edit dialog, loaded');
  await expectFocus((f) => f.dialog === editTitle && f.name === 'Name', 'the focus is in the Name field of the edit dialog');
  await tabTo((f) => f.tag === 'button' && f.name === 'Save', 'Save', { dialog: editTitle });
  await page.keyboard.press('Enter');
  await dialog(editTitle).waitFor({ state: 'detached' });
  await expectFocus((f) => f.name === `Edit ${ROLE_CONNECTOR}` && !f.dialog, 'after saving, the focus is back on the Edit button');
  await context.close();
}

async function main() {
  fs.mkdirSync(SHOTS, { recursive: true });
  check(fs.existsSync(CHROMIUM), `${CHROMIUM} is missing: run scripts/setup-browser (apt-get install chromium)`);
  check(fs.existsSync(PLUGIN_WASM), `${PLUGIN_WASM} is missing`);
  // launch() gives the browser a fresh temporary profile of its own; the context is new too.
  log(`Chromium ${CHROMIUM}, server ${BASE}`);
  browser = await chromium.launch({
    executablePath: CHROMIUM,
    headless: true,
    timeout: 60_000,
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
      '--disable-background-networking', '--disable-component-update', '--disable-sync'],
  });
  const context = await openContext();
  page = await watchedPage(context);

  // --- the login screen -------------------------------------------------------------------------------
  const response = await page.goto('/');
  check(response.ok(), `GET / answered ${response.status()}`);
  const csp = response.headers()['content-security-policy'] || '';
  check(/script-src 'self'/.test(csp) && /default-src 'none'/.test(csp), `GET / has no strict CSP: ${csp}`);
  await visible(page.getByRole('heading', { name: 'Log in to idfed' }), 'the login screen');
  await visible(page.getByText('Log in with your idfed account.'), "the login screen's wording for a static directory");
  check(!(await page.getByRole('navigation', { name: 'Main' }).isVisible()), 'the navigation shows before logging in');
  await shot('01-login');
  await auditLabels('the login screen');

  log('a CSP violation would be caught: an inline script is refused and reported');
  const before = problems.length;
  await page.evaluate(() => {
    const script = document.createElement('script');
    script.textContent = 'window.__cspCanary = true;';
    document.head.append(script);
  });
  const canary = (p) => /^CSP violation: script-src/.test(p) || /^console error: .*Content Security Policy/.test(p);
  await eventually(() => problems.slice(before).filter(canary).length === 2, 'the inline script is reported as a CSP violation and a console error', 5000);
  check(await page.evaluate(() => window.__cspCanary) === undefined, 'an inline script ran despite the CSP');
  problems.splice(before, problems.length - before, ...problems.slice(before).filter((p) => !canary(p)));

  log('a wrong password is refused with the server\'s message');
  await page.getByLabel('User name').fill('nobody-at-all');
  await page.getByLabel('Password').fill('wrong password');
  await page.getByRole('button', { name: 'Log in' }).click();
  await visible(page.getByRole('alert').filter({ hasText: 'Could not log in' }), 'the login error');
  check(await page.getByLabel('Password').inputValue() === '', 'the password field is not cleared after a failure');

  // --- administrator ------------------------------------------------------------------------------------
  await login(ADMIN);
  await visible(page.getByRole('heading', { level: 1, name: 'My connectors' }), 'My connectors');
  for (const link of ['Connectors', 'Plugins', 'API keys', 'Audit log']) {
    await visible(page.getByRole('navigation', { name: 'Main' }).getByRole('link', { name: link, exact: true }), `the admin link ${link}`);
  }
  await auditLabels("an administrator's My connectors (empty)");

  log('the session cookie is HttpOnly: the page cannot read it');
  const cookies = await context.cookies();
  const sessionCookie = cookies.find((c) => /idfed_session/.test(c.name));
  check(sessionCookie, `no session cookie was set (cookies: ${cookies.map((c) => c.name).join(', ')})`);
  check(sessionCookie.httpOnly, 'the session cookie is not HttpOnly');
  check(sessionCookie.sameSite === 'Strict', `the session cookie is SameSite=${sessionCookie.sameSite}`);
  const documentCookie = await page.evaluate(() => document.cookie);
  check(!documentCookie.includes('idfed_session') && !documentCookie.includes(sessionCookie.value),
    `document.cookie shows the session: ${documentCookie}`);

  log('CSRF: a change without X-CSRF-Token is refused');
  const csrf = await page.evaluate(async () => {
    const r = await fetch('/api/v1/admin/connectors', {
      method: 'POST', credentials: 'same-origin', headers: { 'Content-Type': 'application/json' }, body: '{}',
    });
    return { status: r.status, body: await r.json().catch(() => null) };
  });
  check(csrf.status === 403 && csrf.body?.error?.code === 'csrf_failed',
    `a POST without X-CSRF-Token answered ${csrf.status} ${JSON.stringify(csrf.body)}`);

  // --- admin: a connector, with an account added inline -------------------------------------------------
  await nav('Connectors', 'Connectors');
  await page.getByRole('button', { name: 'Create connector' }).click();
  const cdlg = dialog('Create connector');
  await visible(cdlg, 'the Create connector dialog');
  await eventually(() => page.evaluate(() => document.activeElement?.closest('dialog') !== null), 'focus moves into the dialog');
  await cdlg.getByLabel('Name').first().fill(CONNECTOR);
  await cdlg.getByLabel('Description').fill('Read-only access to the data bucket');
  await auditLabels('the Create connector dialog (no account yet)');

  log('an account, added from the connector dialog (a nested dialog)');
  await cdlg.getByRole('button', { name: 'Add account…' }).click();
  const adlg = dialog('Add AWS account');
  await visible(adlg, 'the nested Add AWS account dialog');
  await adlg.getByLabel('Account name').fill(ACCOUNT);
  await adlg.getByLabel('Description').fill('moto, the test STS');
  await adlg.getByLabel('Access key ID').fill('AKIAIOSFODNN7EXAMPLE');
  await adlg.getByLabel('Secret access key').fill('wJalrXUtnFEMI/K7MDENG/bPxRfiCYUIEXAMPLEKEY');
  check(await adlg.getByLabel('Secret access key').getAttribute('type') === 'password', 'the account secret field is not a password field');
  await adlg.getByText('Advanced: region, STS endpoint').click();
  await adlg.getByLabel('Region').fill('us-east-1');
  await adlg.getByLabel('STS endpoint').fill(STS_ENDPOINT);
  await shot('06-account-dialog');
  await auditLabels('the Add AWS account dialog');
  await adlg.getByRole('button', { name: 'Add account' }).click();
  await adlg.waitFor({ state: 'detached' });
  await eventually(async () => (await cdlg.getByLabel('AWS account').inputValue()) === ACCOUNT, 'the new account is chosen in the connector dialog');
  await eventually(() => page.evaluate(() => document.activeElement?.closest('dialog')?.querySelector('h2')?.textContent === 'Create connector'),
    'focus returns to the connector dialog when the account dialog closes');

  log('a federated-user connector from an IAM Policy Example, for a group');
  await cdlg.getByLabel('Federated user').check();
  const policy = cdlg.getByLabel('Session policy (JSON)');
  await policy.fill('{"Version": "2012-10-17", "Statement": [');
  await hasText(cdlg.locator('.validity'), /^Not valid JSON/, 'the policy check of broken JSON');
  check(await cdlg.getByRole('button', { name: 'Create connector' }).isDisabled(), 'Save is enabled while the policy is not valid JSON');
  await cdlg.getByRole('button', { name: 'Use the s3-one-bucket-read-only example' }).click();
  const example = await policy.inputValue();
  check(example.includes('arn:aws:s3:::BUCKET'), `the example was not copied into the policy field: ${example}`);
  await policy.fill(example.replaceAll('BUCKET', 'data'));
  await hasText(cdlg.locator('.validity'), /^Valid JSON, [\d,]+ of 2,048 characters\.$/, 'the policy check of a valid policy');
  check(await cdlg.getByRole('button', { name: 'Create connector' }).isEnabled(), 'Save is disabled with a valid policy');
  check(await cdlg.getByRole('link', { name: /AWS Policy Generator/ }).getAttribute('rel') === 'noopener noreferrer', 'the Policy Generator link has no rel=noopener noreferrer');
  check(await cdlg.getByRole('link', { name: /IAM Policy Simulator/ }).getAttribute('target') === '_blank', 'the Policy Simulator link does not open a new tab');
  await cdlg.getByLabel('Maximum duration (seconds)').fill('200000');
  await visible(cdlg.getByText(/Must be a whole number of seconds from 900–129,600/), 'the duration range error');
  await cdlg.getByLabel('Maximum duration (seconds)').fill('7200');
  await visible(cdlg.getByText(/^= 2 h\. Allowed: 900–129,600 seconds/), 'the friendly duration');
  await cdlg.getByRole('checkbox', { name: GROUP, exact: true }).check();
  await cdlg.getByRole('checkbox', { name: 'System scope' }).check();
  await visible(cdlg.getByText('Administrators may always use this connector. With no group, only administrators may use it.'), 'the groups note');
  await cdlg.getByLabel('Session policy (JSON)').scrollIntoViewIfNeeded();
  await shot('05-create-connector-dialog');
  await auditLabels('the Create connector dialog, federated user');
  await cdlg.getByRole('button', { name: 'Create connector' }).click();
  await cdlg.waitFor({ state: 'detached' });
  const row = page.getByRole('row').filter({ hasText: CONNECTOR });
  await visible(row, 'the new connector in the table');
  await visible(row.getByText(GROUP, { exact: true }), 'the group in the table');
  await visible(page.getByRole('row').filter({ hasText: ACCOUNT }).filter({ hasText: STS_ENDPOINT }), 'the account with its STS endpoint');

  log('an assumed-role connector: each principal type shows the fields it needs');
  await page.getByRole('button', { name: 'Create connector' }).click();
  const rdlg = dialog('Create connector');
  await visible(rdlg, 'the Create connector dialog');
  await rdlg.getByLabel('Name').first().fill(ROLE_CONNECTOR);
  await rdlg.getByLabel('AWS account').selectOption(ACCOUNT);
  await rdlg.getByLabel('IAM user').check();
  await visible(rdlg.getByText('IAM user connectors take no session policy'), 'the IAM user note');
  check(!(await rdlg.getByLabel('Session policy (JSON)').isVisible()), 'an IAM user connector shows the policy field');
  check(!(await rdlg.getByLabel('Role ARN').isVisible()), 'an IAM user connector shows the role field');
  await auditLabels('the Create connector dialog, IAM user');
  await rdlg.getByLabel('Assumed role').check();
  await rdlg.getByLabel('Role ARN').fill(ROLE_ARN);
  check(await rdlg.getByLabel('Session policy (JSON)').isVisible(), 'an assumed-role connector hides the (optional) policy field');
  await visible(rdlg.getByText(/^Empty: AWS's maximum, 12 h\. Allowed: 900–43,200 seconds/), "the assumed-role duration range");
  await auditLabels('the Create connector dialog, assumed role');
  await rdlg.getByRole('checkbox', { name: GROUP, exact: true }).check();
  await rdlg.getByRole('button', { name: 'Create connector' }).click();
  await rdlg.waitFor({ state: 'detached' });
  await visible(page.getByRole('row').filter({ hasText: ROLE_CONNECTOR }), 'the role connector in the table');
  await shot('04-admin-connectors');
  await auditLabels('the Connectors page');

  // --- admin: a plugin, uploaded and bound ------------------------------------------------------------
  await nav('Plugins', 'Plugins');
  await visible(page.getByRole('heading', { name: 'No plugins yet' }), 'the empty plugin list');
  await auditLabels('the Plugins page (none yet)');
  await page.getByLabel('Plugin name').fill('rate-limit');
  await page.getByLabel('Component (.wasm)').setInputFiles(PLUGIN_WASM);
  await page.getByRole('button', { name: 'Upload' }).click();
  await visible(page.getByRole('heading', { level: 2, name: 'rate-limit' }), 'the uploaded plugin');
  await page.getByRole('button', { name: /^Bind to connector… \(rate-limit [0-9a-f]{12}\)$/ }).click();
  const bdlg = dialog('Bind rate-limit to a connector');
  await visible(bdlg, 'the bind dialog');
  await auditLabels('the bind dialog');
  await bdlg.getByLabel('Connector').selectOption({ label: CONNECTOR });
  const config = bdlg.getByLabel('Configuration (JSON)');
  await config.fill('{"max_requests": ');
  await hasText(bdlg.locator('.validity'), /^Not valid JSON/, 'the configuration check of broken JSON');
  check(await bdlg.getByRole('button', { name: 'Bind plugin' }).isDisabled(), 'Bind is enabled with broken JSON');
  log("the plugin's validate-config refuses a bad configuration, and its message is shown");
  await config.fill('{"max_requests": 0}');
  await bdlg.getByRole('button', { name: 'Bind plugin' }).click();
  await visible(bdlg.getByRole('alert').filter({ hasText: 'The plugin was not bound' }), "the plugin's refusal");
  // Three vends are allowed per hour: Get credentials, Test access, then the third is denied.
  await config.fill('{"max_requests": 2, "window_seconds": 3600}');
  await bdlg.getByRole('button', { name: 'Bind plugin' }).click();
  await bdlg.waitFor({ state: 'detached' });
  await visible(page.locator('section').filter({ has: page.getByRole('heading', { name: 'rate-limit' }) }).getByRole('row').filter({ hasText: CONNECTOR }), 'the binding in the plugin list');
  await shot('07-plugins');
  await auditLabels('the Plugins page');

  log('the plugin chain in the edit dialog');
  await nav('Connectors', 'Connectors');
  await page.getByRole('button', { name: `Edit ${CONNECTOR}` }).click();
  const edlg = dialog(`Edit connector ${CONNECTOR}`);
  await visible(edlg, 'the edit dialog');
  await visible(edlg.getByRole('list', { name: 'Plugin chain, in order' }).getByText('rate-limit'), 'the plugin in the chain');
  check(await edlg.getByLabel('Name').first().inputValue() === CONNECTOR, 'the edit dialog shows the name');
  check((await edlg.getByLabel('Session policy (JSON)').inputValue()).includes('arn:aws:s3:::data'), 'the edit dialog shows the policy');
  await shot('05-edit-connector-dialog');
  await edlg.getByRole('list', { name: 'Plugin chain, in order' }).scrollIntoViewIfNeeded();
  await shot('05-edit-connector-plugins');
  await auditLabels('the Edit connector dialog, with its plugin chain');
  await edlg.getByRole('button', { name: 'Cancel' }).click();
  await edlg.waitFor({ state: 'detached' });

  log('an edit is saved (PUT), the plugin chain kept');
  await page.getByRole('button', { name: `Edit ${CONNECTOR}` }).click();
  await visible(edlg.getByRole('list', { name: 'Plugin chain, in order' }), 'the edit dialog');
  await edlg.getByLabel('Description').fill('Read-only access to the data bucket (S3)');
  await edlg.getByRole('button', { name: 'Save' }).click();
  await edlg.waitFor({ state: 'detached' });
  await visible(page.getByRole('row').filter({ hasText: 'Read-only access to the data bucket (S3)' }).filter({ hasText: '1 plugin' }), 'the saved description, with its plugin');

  log("an account is edited without its secret: the secret field is write-only and blank keeps it");
  await page.getByRole('button', { name: `Edit account ${ACCOUNT}` }).click();
  const eadlg = dialog(`Edit account ${ACCOUNT}`);
  await visible(eadlg, 'the account edit dialog');
  const secretInput = eadlg.getByLabel('Secret access key');
  check(await secretInput.inputValue() === '', 'the account secret field is prefilled');
  check(await secretInput.getAttribute('type') === 'password', 'the account secret field is not a password field');
  check(await eadlg.getByLabel('STS endpoint').inputValue() === STS_ENDPOINT, 'the account edit dialog lost the STS endpoint');
  await auditLabels('the Edit account dialog');
  await eadlg.getByRole('button', { name: 'Save account' }).click();
  await eadlg.waitFor({ state: 'detached' });

  // --- admin: a system-scope API key ---------------------------------------------------------------------
  await nav('API keys', 'System-scope API keys');
  await visible(page.getByRole('checkbox', { name: CONNECTOR }), 'the connectors a key may use');
  await auditLabels('the API keys page');
  await page.getByLabel('Key name').fill('ci-deploy');
  await page.getByRole('checkbox', { name: CONNECTOR }).check();
  await page.getByRole('button', { name: 'Create API key' }).click();
  const kdlg = dialog('API key ci-deploy created');
  await visible(kdlg, 'the new key dialog');
  await visible(kdlg.getByText('It will not be shown again'), 'the shown-once warning');
  await auditLabels('the new API key dialog');
  const keyField = kdlg.getByLabel('API key', { exact: true });
  check(await keyField.inputValue() === MASK, 'the new API key is not masked');
  await kdlg.getByRole('button', { name: 'Copy API key' }).click();
  const copiedKey = await clipboard();
  check(/^idfed_/.test(copiedKey), `Copy API key copied ${JSON.stringify(copiedKey)}`);
  check(await keyField.inputValue() === MASK, 'copying revealed the API key');
  await shot('08-api-key-created');
  await kdlg.getByRole('button', { name: 'Show API key' }).click();
  check(await keyField.inputValue() === copiedKey, 'Show does not show the copied key');
  await kdlg.getByRole('button', { name: 'Done' }).click();
  await kdlg.waitFor({ state: 'detached' });
  await visible(page.getByRole('row').filter({ hasText: 'ci-deploy' }), 'the key in the list');
  check(!(await page.locator('main').innerText()).includes(copiedKey), 'the key list shows the key');
  await shot('08-api-keys');

  // --- admin: the audit log --------------------------------------------------------------------------------
  await nav('Audit log', 'Audit log');
  await visible(page.getByRole('cell', { name: 'admin.connector.create' }), 'the connector creation in the audit log');
  await page.getByLabel('Outcome').selectOption('changed');
  await page.getByRole('button', { name: 'Apply filters' }).click();
  await visible(page.getByRole('cell', { name: 'admin.binding.create' }), 'the binding in the filtered audit log');
  await shot('09-audit');
  await auditLabels('the Audit log page and its filters');
  await logout();

  // --- a user of the group ----------------------------------------------------------------------------------
  await login(USER);
  await visible(page.getByRole('heading', { level: 1, name: 'My connectors' }), 'My connectors');
  check(!(await page.getByRole('link', { name: 'Audit log' }).isVisible()), 'a user sees the admin links');
  const card = page.getByRole('article', { name: CONNECTOR });
  await visible(card, `the connector ${CONNECTOR} in My connectors`);
  await visible(card.getByText('Read-only access to the data bucket'), 'the description');
  await page.evaluate(() => { location.hash = '#/admin/audit'; });
  await eventually(() => page.evaluate(() => location.hash === '#/connectors'), 'an admin route sends a user back to My connectors');
  await visible(card, 'My connectors again');
  await shot('02-my-connectors');
  await auditLabels("a user's My connectors");

  log('Get credentials: secrets masked until Show, Copy gives the real values');
  const getButton = card.getByRole('button', { name: 'Get credentials' });
  await getButton.click();
  const credDialog = dialog(`Credentials for ${CONNECTOR}`);
  await visible(credDialog, 'the credentials dialog');
  await visible(credDialog.getByLabel('Access key ID', { exact: true }), 'the access key id');
  const accessKeyId = await credDialog.getByLabel('Access key ID', { exact: true }).inputValue();
  check(/^[A-Z0-9]{16,}$/.test(accessKeyId), `the access key id is ${accessKeyId}`);
  const secretField = credDialog.getByLabel('Secret access key', { exact: true });
  const tokenField = credDialog.getByLabel('Session token', { exact: true });
  check(await secretField.inputValue() === MASK, 'the secret access key is not masked');
  check(await tokenField.inputValue() === MASK, 'the session token is not masked');
  await hasText(credDialog.locator('.countdown'), /^(\d\d:)?\d\d:\d\d$/, 'the countdown');
  await auditLabels('the credentials dialog');
  await credDialog.getByRole('button', { name: 'Copy secret access key' }).click();
  const secret = await clipboard();
  check(secret && secret !== MASK && secret.length >= 20, `Copy secret access key copied ${JSON.stringify(secret)}`);
  await credDialog.getByRole('button', { name: 'Copy session token' }).click();
  const token = await clipboard();
  check(token && token !== MASK && token !== secret, 'Copy session token did not copy the token');
  const dialogText = await credDialog.innerText();
  check(!dialogText.includes(secret) && !dialogText.includes(token), 'the dialog shows a secret before Show is pressed');
  const inputValues = await credDialog.locator('input').evaluateAll((inputs) => inputs.map((i) => i.value).join('\n'));
  check(!inputValues.includes(secret) && !inputValues.includes(token), 'a field holds a secret before Show is pressed');
  await credDialog.getByRole('button', { name: 'Copy shell exports' }).click();
  const exports = await clipboard();
  const expected = [
    `export AWS_ACCESS_KEY_ID='${accessKeyId}'`,
    `export AWS_SECRET_ACCESS_KEY='${secret}'`,
    `export AWS_SESSION_TOKEN='${token}'`,
  ];
  for (const line of expected) check(exports.includes(line), `the shell exports lack ${line.slice(0, 40)}…: ${exports.slice(0, 80)}`);
  check(/export AWS_CREDENTIAL_EXPIRATION='\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ'/.test(exports), 'the shell exports lack the expiration');
  await credDialog.getByRole('button', { name: 'Copy credentials file section' }).click();
  const ini = await clipboard();
  check(ini.startsWith(`[${CONNECTOR}]\naws_access_key_id = ${accessKeyId}\naws_secret_access_key = ${secret}\naws_session_token = ${token}`), `the credentials file section is ${ini.slice(0, 60)}…`);
  await credDialog.getByRole('button', { name: 'Copy AWS config profile' }).click();
  const profileText = await clipboard();
  check(profileText.includes(`[profile ${CONNECTOR}]\ncredential_process = idfed creds ${CONNECTOR}`), `the config profile is ${profileText}`);
  await shot('03-credentials-dialog');
  await credDialog.getByRole('button', { name: 'Show secret access key' }).click();
  check(await secretField.inputValue() === secret, 'Show does not show the secret access key');
  check(await tokenField.inputValue() === MASK, 'Show of the secret also showed the token');
  await credDialog.getByRole('button', { name: 'Hide secret access key' }).click();
  check(await secretField.inputValue() === MASK, 'Hide does not mask the secret again');
  await credDialog.getByRole('button', { name: 'Done' }).click();
  await credDialog.waitFor({ state: 'detached' });
  await eventually(() => getButton.evaluate((b) => document.activeElement === b), 'focus returns to Get credentials when the dialog closes');

  log('Test access: the credentials work');
  await card.getByRole('button', { name: 'Test access' }).click();
  await visible(card.getByText('Access works. AWS says you are:'), 'the caller identity');
  const s3Arn = await card.locator('code.arn').textContent();
  check(/^arn:aws:sts::\d{12}:/.test(s3Arn), `the caller identity ARN is ${s3Arn}`);

  log('the third request is denied by the rate-limit plugin, with its reason');
  await getButton.click();
  await visible(credDialog, 'the credentials dialog again');
  const denied = credDialog.getByRole('alert').filter({ hasText: 'Denied by a policy plugin' });
  await visible(denied, 'the plugin denial');
  await hasText(denied.locator('.denied-reason'), /rate limit reached: at most 2 credential requests per 3600 seconds/, "the plugin's reason");
  check(await credDialog.locator('input').count() === 0, 'a denied request shows credential fields');
  await shot('10-plugin-denied');
  await auditLabels('the credentials dialog, denied by a plugin');
  await credDialog.getByRole('button', { name: 'Done' }).click();
  await credDialog.waitFor({ state: 'detached' });
  await card.getByRole('button', { name: 'Open AWS console' }).click();
  await visible(card.getByRole('alert').filter({ hasText: 'Denied by a policy plugin' }), 'the denial of the console sign-in');

  log('Test access on the role connector: AWS names the session after the user');
  const roleCard = page.getByRole('article', { name: ROLE_CONNECTOR });
  await roleCard.getByRole('button', { name: 'Test access' }).click();
  await visible(roleCard.getByText('Access works. AWS says you are:'), 'the caller identity of the role');
  const arn = await roleCard.locator('code.arn').textContent();
  check(arn.includes(`:assumed-role/dev/${USER}`), `the caller identity ARN is ${arn}, not the user's session`);
  log(`caller identity: ${arn}`);

  log('the shell exports of the role connector, for the AWS CLI');
  await roleCard.getByRole('button', { name: 'Get credentials' }).click();
  const roleDialog = dialog(`Credentials for ${ROLE_CONNECTOR}`);
  await visible(roleDialog.getByLabel('Access key ID', { exact: true }), 'the role credentials');
  await roleDialog.getByRole('button', { name: 'Copy shell exports' }).click();
  const roleExports = await clipboard();
  check(/^export AWS_ACCESS_KEY_ID='ASIA/.test(roleExports), `the role's shell exports are ${roleExports.slice(0, 40)}…`);
  if (ENV_OUT) fs.writeFileSync(ENV_OUT, roleExports, { mode: 0o600 });
  await roleDialog.getByRole('button', { name: 'Show secrets in snippets' }).click();
  check((await roleDialog.locator('pre').first().textContent()) === roleExports, 'Show secrets in snippets does not show the exports as copied');
  await roleDialog.getByRole('button', { name: 'Done' }).click();
  await roleDialog.waitFor({ state: 'detached' });

  log('Open AWS console: the answer is a sign-in link or an error message');
  await roleCard.getByRole('button', { name: 'Open AWS console' }).click();
  await visible(roleCard.locator('.result .alert'), 'the console answer');
  const consoleText = await roleCard.locator('.result').innerText();
  log(`console: ${consoleText.replace(/\s+/g, ' ').slice(0, 160)}`);
  await logout();

  // --- a user outside the group ---------------------------------------------------------------------------
  await login(OUTSIDER);
  await visible(page.getByRole('heading', { name: 'No connectors for you yet' }), 'the empty My connectors');
  await auditLabels("a user's empty My connectors");
  check(await page.getByRole('article', { name: CONNECTOR }).count() === 0, `${OUTSIDER} sees ${CONNECTOR}`);
  const listed = await page.evaluate(async () => {
    const session = await (await fetch('/api/v1/web/session', { credentials: 'same-origin' })).json();
    const answer = await fetch('/api/v1/connectors', { credentials: 'same-origin', headers: { 'X-CSRF-Token': session.csrf_token } });
    return (await answer.json()).connectors.map((c) => c.name);
  });
  check(!listed.includes('dev-s3'), `the API lists ${listed} to ${OUTSIDER}`);
  await logout();

  // --- admin again: the plugin's recent denials; deleting an API key --------------------------------------
  await login(ADMIN);
  await nav('Plugins', 'Plugins');
  await page.getByRole('button', { name: /^Recent denials and faults of rate-limit/ }).click();
  await visible(page.getByRole('cell', { name: /rate limit reached/ }), "the plugin's recent denials");
  await visible(page.getByRole('cell', { name: USER, exact: true }), 'the denied user in the recent denials');
  await shot('07-plugins-denials');
  await auditLabels("the Plugins page, a version's recent denials shown");
  await nav('API keys', 'System-scope API keys');
  await page.getByRole('button', { name: 'Delete API key ci-deploy' }).click();
  const confirm = dialog('Delete API key ci-deploy?');
  await visible(confirm, 'the confirmation');
  await auditLabels('the confirmation dialog');
  await confirm.getByRole('button', { name: 'Delete' }).click();
  await visible(page.getByText('No API key yet.'), 'the key list after the deletion');
  await logout();

  // --- keyboard only -------------------------------------------------------------------------------------------
  await keyboardOnly();

  // --- every label audit; no console errors, no CSP violations ------------------------------------------------
  log(`label audits: ${audits}, problems: ${labelProblems.length}`);
  check(labelProblems.length === 0, `controls without a proper accessible name:\n  ${labelProblems.join('\n  ')}`);
  check(problems.length === 0, `the browser reported:\n  ${problems.join('\n  ')}`);
  log(`expected API errors the browser logged: ${networkErrors.length}`);
}

try {
  await main();
  log('ui.test: all checks passed');
  clearTimeout(overall);
  await browser.close();
  process.exit(0);
} catch (error) {
  console.error(`ui.test: FAILED: ${error instanceof Failure ? error.message : (error.stack || error)}`);
  if (problems.length) console.error(`the browser also reported:\n  ${problems.join('\n  ')}`);
  if (labelProblems.length) console.error(`the label audits so far found:\n  ${labelProblems.join('\n  ')}`);
  await snapshotFailure();
  clearTimeout(overall);
  await browser?.close().catch(() => {});
  process.exit(1);
}
