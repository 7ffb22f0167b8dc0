// What the browser tests share (ui.test.mjs, sso.test.mjs): the environment, waiting and checking, Chromium with
// every page watched for console errors, page errors and CSP violations, screenshots, the label audit, and
// running a test script to an exit code.

import { chromium } from 'playwright-core';
import path from 'node:path';

export const STEP_TIMEOUT_MS = 30_000;

const script = path.basename(process.argv[1] || 'test', '.mjs');

/** An environment variable, or `fallback`; exits 2 when it is neither set nor defaulted. */
export function env(name, fallback) {
  const value = process.env[name] ?? fallback;
  if (value === undefined || value === '') {
    console.error(`${script}: set ${name}`);
    process.exit(2);
  }
  return value;
}

const started = Date.now();
export const log = (...args) => console.log(`[${((Date.now() - started) / 1000).toFixed(1).padStart(5)}s]`, ...args);

export const problems = []; // console errors, page errors, CSP violations
export const networkErrors = []; // expected API errors the browser logs (4xx/5xx), for the record

export class Failure extends Error {}

export function check(condition, message) {
  if (!condition) throw new Failure(message);
}

/** Waits until `fn()` is truthy (polling), failing with `message`. */
export async function eventually(fn, message, timeout = STEP_TIMEOUT_MS) {
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

export async function visible(locator, what) {
  try {
    await locator.first().waitFor({ state: 'visible', timeout: STEP_TIMEOUT_MS });
  } catch {
    throw new Failure(`not visible: ${what}`);
  }
  return locator.first();
}

export async function hasText(locator, pattern, what) {
  return eventually(async () => {
    const text = await locator.first().textContent({ timeout: 2000 });
    return pattern.test(text || '') ? text : null;
  }, `${what}: no text matching ${pattern}`);
}

/** Saves a screenshot of `page` as `dir/name.png`, once the UI has settled. */
export async function shot(page, dir, name) {
  // Let the UI settle before the picture: fonts loaded, two frames painted.
  await page.evaluate(() => document.fonts.ready.then(() => new Promise((r) => requestAnimationFrame(() => requestAnimationFrame(r)))));
  const file = path.join(dir, `${name}.png`);
  await page.screenshot({ path: file, fullPage: false });
  log(`screenshot ${file}`);
}

/** After a failure: a screenshot (`file`) and what the page and its dialogs said. */
export async function snapshotFailure(page, file) {
  if (!page) return;
  await page.screenshot({ path: file }).catch(() => {});
  const text = await page.evaluate(() => {
    const dialogs = [...document.querySelectorAll('dialog[open]')].map((d) => d.innerText);
    return `${document.location.href}\n--- main ---\n${document.querySelector('main')?.innerText}\n--- dialogs ---\n${dialogs.join('\n---\n')}`;
  }).catch(() => '');
  console.error(`${script}: the page at the failure:\n${text.slice(0, 4000)}`);
}

// ---------------------------------------------------------------------------------------------------------
// The browser, contexts and pages: every page is watched for console errors, page errors and CSP violations.

/** Debian's Chromium, headless, with a fresh temporary profile of its own. */
export async function launch(executablePath) {
  return chromium.launch({
    executablePath,
    headless: true,
    timeout: 60_000,
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
      '--disable-background-networking', '--disable-component-update', '--disable-sync'],
  });
}

/** A new browser context: a fresh cookie jar, the clipboard allowed, the page helpers below installed. */
export async function openContext(browser, baseURL) {
  const context = await browser.newContext({
    baseURL,
    viewport: { width: 1366, height: 900 },
    deviceScaleFactor: 1,
    locale: 'en-US',
    timezoneId: 'UTC',
  });
  await context.grantPermissions(['clipboard-read', 'clipboard-write'], { origin: baseURL });
  // Every CSP violation, as the page sees it, reported at once (so none is lost when a page reloads).
  await context.exposeFunction('__idfedCspViolation', (text) => problems.push(`CSP violation: ${text}`));
  await context.addInitScript(pageHelpers);
  return context;
}

export async function watchedPage(context) {
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
export function pageHelpers() {
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

export const labelProblems = []; // from every audit, reported together at the end
export let audits = 0;
const cdpSessions = new WeakMap();

/** Chromium's own accessibility tree: interactive nodes (and dialogs) it names with nothing. */
async function unnamedInAxTree(page) {
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
export async function auditLabels(page, screen) {
  const { count, problems: found } = await page.evaluate(() => window.__idfedTest.audit());
  const unnamed = await unnamedInAxTree(page);
  audits += 1;
  check(count > 0, `the label audit of ${screen} found no control at all`);
  for (const problem of [...found, ...unnamed]) labelProblems.push(`${screen}: ${problem}`);
  if (found.length || unnamed.length) log(`label audit of ${screen}:\n  ${[...found, ...unnamed].join('\n  ')}`);
}

// ---------------------------------------------------------------------------------------------------------
// Running a script

/**
 * Runs `main` to an exit code: 0 when every check passed and the browser reported no problem, 1 on a
 * failure (with a screenshot `failureShot` of `getPage()` and what it showed), 3 after `timeoutMs`.
 */
export async function run(main, { getBrowser, getPage, failureShot, timeoutMs }) {
  const overall = setTimeout(async () => {
    console.error(`${script}: FAILED: still running after ${timeoutMs / 1000} s`);
    await snapshotFailure(getPage(), failureShot).catch(() => {});
    await getBrowser()?.close().catch(() => {});
    process.exit(3);
  }, timeoutMs);
  try {
    await main();
    check(problems.length === 0, `the browser reported:\n  ${problems.join('\n  ')}`);
    log(`${script}: all checks passed`);
    clearTimeout(overall);
    await getBrowser().close();
    process.exit(0);
  } catch (error) {
    console.error(`${script}: FAILED: ${error instanceof Failure ? error.message : (error.stack || error)}`);
    if (problems.length) console.error(`the browser also reported:\n  ${problems.join('\n  ')}`);
    if (labelProblems.length) console.error(`the label audits so far found:\n  ${labelProblems.join('\n  ')}`);
    await snapshotFailure(getPage(), failureShot);
    clearTimeout(overall);
    await getBrowser()?.close().catch(() => {});
    process.exit(1);
  }
}
