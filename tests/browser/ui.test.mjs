// idfed's web UI, end to end in Debian's Chromium (headless, driven by playwright-core; no browser download).
// Run by tests/tests/e2e/web_ui.rs against a real idfed with moto as STS; it can also be run by hand:
//
//   IDFED_URL=http://127.0.0.1:8443 IDFED_PASSWORD=… IDFED_STS_ENDPOINT=http://127.0.0.1:5000 \
//   IDFED_PLUGIN_WASM=…/rate_limit.wasm IDFED_APPROVAL_WASM=…/contract_probe.wasm node tests/browser/ui.test.mjs
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
//   IDFED_APPROVAL_WASM  the contract-probe plugin component, bound in its approval mode (required)
//   IDFED_APPROVER       a member of IDFED_APPROVER_GROUP, outside IDFED_GROUP (default carol)
//   IDFED_APPROVER_GROUP the group that approves the use of the connector `release` (default release-managers)
//   CHROMIUM             the browser (default /usr/bin/chromium)
//
// Exits 0 when every check passed, non-zero otherwise (and after 3 minutes at most).
//
// Sessions across tabs of one browser: another tab's login replaces the session and its CSRF token, and this
// tab's next change still goes through (the page fetches the token again); another user's login redraws the
// page for them; a logout elsewhere, met while a screen loads, leaves the login form whole; a logout the
// server fails (page.route answers 503) leaves the page logged in, saying so. With the browser's clock 3 hours
// fast, credentials still count down from their duration.
//
// The helpers shared with sso.test.mjs (waiting, checking, watched pages, the label audit) are in lib.mjs.
//
// Just-in-time approvals (at the end, set up through the admin API): a connector whose plugin wants
// IDFED_APPROVER_GROUP to approve each use; the user sees "Approval needed" (in a card and in the credentials
// dialog), is not offered to approve their own request (and the API answers 403), the approver sees it in the
// Approvals screen, meets a 409 for a request decided meanwhile, approves another with a comment, and the
// user's Check again repeats the approved request (the same duration, reason and ticket) and gets credentials.
//
// Accessibility: each main screen and dialog gets a label audit (auditLabels: every visible control has an
// accessible name, by its label, aria-label or aria-labelledby, and Chromium's accessibility tree agrees; every
// dialog is named by its heading), reported together at the end; then keyboardOnly() uses the UI, in a
// context of its own, with page.keyboard alone: no mouse, no locator clicks.

import fs from 'node:fs';
import path from 'node:path';
import {
  env, log, problems, networkErrors, labelProblems, audits, Failure, check, eventually, visible, hasText,
  shot as takeShot, launch, openContext as newContext, watchedPage, auditLabels as audit, run,
} from './lib.mjs';

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
const MASK = '••••••••••••••••••••••••';
const CONNECTOR = 'dev-s3'; // federated user, from a policy example, with the rate-limit plugin
const ROLE_CONNECTOR = 'dev-role'; // assumed role: moto's GetCallerIdentity names the session after the user
const ROLE_ARN = 'arn:aws:iam::123456789012:role/dev';
const ACCOUNT = 'sandbox';
const APPROVAL_WASM = env('IDFED_APPROVAL_WASM'); // the contract-probe fixture, in its approval mode
const APPROVER = env('IDFED_APPROVER', 'carol');
const APPROVER_GROUP = env('IDFED_APPROVER_GROUP', 'release-managers');
const APPROVAL_CONNECTOR = 'release'; // assumed role, for IDFED_GROUP; each use approved by APPROVER_GROUP
const APPROVAL_REASON = 'Releases need a release manager\'s approval';

let browser;
let page;

const shot = (name) => takeShot(page, SHOTS, name);
const auditLabels = (screen) => audit(page, screen);
const openContext = () => newContext(browser, BASE);

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

/** Logs `user` in from another tab of the same browser (`tab`): the browser's session is replaced. */
async function loginElsewhere(tab, user) {
  log(`another tab logs in as ${user}`);
  const status = await tab.evaluate(async ({ username, password }) => (await fetch('/api/v1/web/session', {
    method: 'POST', credentials: 'same-origin', headers: { 'Content-Type': 'application/json' }, body: JSON.stringify({ username, password }),
  })).status, { username: user, password: PASSWORD });
  check(status === 200, `logging in as ${user} from another tab answered ${status}`);
}

/** Logs the browser out from another tab (`tab`). */
async function logoutElsewhere(tab) {
  log('another tab logs out');
  const status = await tab.evaluate(async () => {
    const session = await (await fetch('/api/v1/web/session', { credentials: 'same-origin' })).json();
    const answer = await fetch('/api/v1/web/session', { method: 'DELETE', credentials: 'same-origin', headers: { 'X-CSRF-Token': session.csrf_token } });
    return answer.status;
  });
  check(status === 204, `logging out from another tab answered ${status}`);
}

/** Counts the requests `p` makes to `method pathname` from now on. */
function countRequests(p, method, pathname) {
  let count = 0;
  p.on('request', (request) => {
    if (request.method() === method && new URL(request.url()).pathname === pathname) count += 1;
  });
  return () => count;
}

/** The page shows the login form, saying the session ended, and nothing drawn over it. */
async function sessionEndedShown(what) {
  await visible(page.getByRole('heading', { name: 'Log in to idfed' }), `the login page, ${what}`);
  await visible(page.getByText('Your session has ended. Log in again to continue.'), `the session-ended notice, ${what}`);
  // What was loading when the session ended answers too: it must draw nothing over the form.
  await page.waitForTimeout(500);
  check(await page.getByLabel('User name').isVisible() && await page.getByLabel('Password').isVisible(),
    `the login form is gone, ${what}: ${await page.locator('main').innerText()}`);
  check(await page.locator('main .alert-error').count() === 0, `an error is drawn over the login page, ${what}: ${await page.locator('main').innerText()}`);
  const text = await page.locator('body').innerText();
  check(!/Bearer|Authorization|missing_credentials|invalid_session/.test(text), `the page shows the API's wording, ${what}: ${text}`);
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

/**
 * With the computer's clock 3 hours fast, fresh credentials still count down from their duration, and the
 * expiration shown is the server's.
 */
async function wrongClock() {
  log("a browser whose clock is 3 hours fast: the countdown runs from the credentials' duration");
  const context = await openContext();
  const skew = 3 * 3600 * 1000;
  await context.clock.install({ time: Date.now() + skew });
  page = await watchedPage(context);
  await page.goto('/');
  const pageSkew = await page.evaluate(() => Date.now()) - Date.now();
  check(Math.abs(pageSkew - skew) < 60_000, `the page's clock is ${pageSkew} ms off, not 3 hours`);
  await login(USER);
  const card = page.getByRole('article', { name: ROLE_CONNECTOR });
  const answer = page.waitForResponse((r) => r.request().method() === 'POST' && r.url().endsWith(`/api/v1/connectors/${ROLE_CONNECTOR}/credentials`));
  await card.getByRole('button', { name: 'Get credentials' }).click();
  const creds = await (await answer).json();
  const credDialog = dialog(`Credentials for ${ROLE_CONNECTOR}`);
  const countdown = await hasText(credDialog.locator('.countdown'), /^(\d\d:)?\d\d:\d\d$/, 'the countdown with a wrong clock');
  const left = countdown.split(':').map(Number).reduce((total, part) => total * 60 + part, 0);
  check(left > creds.duration_seconds - 120 && left <= creds.duration_seconds,
    `with a wrong clock the countdown shows ${countdown}, not about ${creds.duration_seconds} s`);
  const shown = await credDialog.locator('.cred-summary time').getAttribute('datetime');
  check(shown === creds.expiration, `the expiration shown is ${shown}, not the server's ${creds.expiration}`);
  // A reason and a ticket go with the next request (for policy plugins and the audit log).
  await credDialog.getByLabel('Reason', { exact: true }).fill('  Rotate the deploy key  ');
  await credDialog.getByLabel('Ticket', { exact: true }).fill('OPS-42');
  const again = page.waitForResponse((r) => r.request().method() === 'POST' && r.url().endsWith(`/api/v1/connectors/${ROLE_CONNECTOR}/credentials`));
  await credDialog.getByRole('button', { name: 'Get new credentials' }).click();
  const reissued = await again;
  const sent = reissued.request().postDataJSON();
  check(sent.justification === 'Rotate the deploy key' && sent.ticket === 'OPS-42',
    `the credentials request carried ${JSON.stringify(sent)}, not the reason and ticket`);
  check(reissued.status() === 200, `the request with a reason answered ${reissued.status()}`);
  await credDialog.getByRole('button', { name: 'Done' }).click();
  await context.close();
}

/** Calls the admin API as ADMIN (HTTP Basic), from the test itself; fails unless it answers 2xx. */
async function adminApi(method, apiPath, body, contentType = 'application/json') {
  const basic = `Basic ${Buffer.from(`${ADMIN}:${PASSWORD}`).toString('base64')}`;
  const answer = await fetch(`${BASE}${apiPath}`, { method, headers: { Authorization: basic, 'Content-Type': contentType }, body });
  const data = await answer.json().catch(() => null);
  check(answer.ok, `${method} ${apiPath} answered ${answer.status} ${JSON.stringify(data)}`);
  return data;
}

/** Calls the API from `p` with its session and CSRF token, as another tab of the same browser would. */
async function pageApi(p, method, apiPath, json) {
  return p.evaluate(async ({ method: m, apiPath: url, json: body }) => {
    const session = await (await fetch('/api/v1/web/session', { credentials: 'same-origin' })).json();
    const answer = await fetch(url, {
      method: m,
      credentials: 'same-origin',
      headers: { 'X-CSRF-Token': session.csrf_token, 'Content-Type': 'application/json' },
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    return { status: answer.status, body: await answer.json().catch(() => null) };
  }, { method, apiPath, json });
}

/**
 * Just-in-time approvals: a connector whose policy plugin (the contract probe) wants APPROVER_GROUP to
 * approve each use. The user sees "Approval needed" (Test access and the credentials dialog), may not approve
 * their own request (no button; the API's 403), the approver sees it in Approvals, a decision made meanwhile
 * elsewhere answers 409 in the dialog, the approver approves with a comment, and the user's Check again
 * repeats the same request and gets the credentials.
 */
async function approvals() {
  log(`approvals: ${APPROVAL_CONNECTOR}, whose policy plugin wants ${APPROVER_GROUP} to approve each use`);
  const plugin = await adminApi('POST', '/api/v1/admin/plugins?name=approval-probe', fs.readFileSync(APPROVAL_WASM), 'application/wasm');
  const created = await adminApi('POST', '/api/v1/admin/connectors', JSON.stringify({
    name: APPROVAL_CONNECTOR,
    description: 'Release deployments: each use approved by a release manager',
    account: ACCOUNT,
    principal: { type: 'assumed-role', role_arn: ROLE_ARN, external_id: null, source_identity: false, session_tags: [] },
    policy: null,
    policy_arns: [],
    default_duration_seconds: null,
    max_duration_seconds: null,
    groups: [GROUP],
    system_scope: false,
    enabled: true,
    credential_cache: false,
  }));
  await adminApi('POST', `/api/v1/admin/connectors/${created.id}/bindings`, JSON.stringify({
    plugin: plugin.digest, config: { mode: 'approval', group: APPROVER_GROUP, reason: APPROVAL_REASON }, position: 0, tag_keys: [],
  }));

  const userContext = await openContext();
  page = await watchedPage(userContext);
  const userPage = page;
  await page.goto('/');
  await login(USER);
  const card = page.getByRole('article', { name: APPROVAL_CONNECTOR });
  await visible(card, `the connector ${APPROVAL_CONNECTOR}`);

  log('approvals: Test access answers "Approval needed" in the card');
  await card.getByRole('button', { name: 'Test access' }).click();
  const cardPanel = card.locator('.alert-approval');
  await visible(cardPanel.getByText('Approval needed', { exact: true }), 'Approval needed in the card');
  await visible(cardPanel.getByText(APPROVAL_REASON), "the policy's reason in the card");
  await visible(cardPanel.getByRole('button', { name: 'Check again' }), 'Check again in the card');
  const cardId = (await cardPanel.locator('.approval-id').textContent()).trim();
  await auditLabels('a connector card answering Approval needed');

  log('approvals: the credentials dialog answers "Approval needed": who may approve, why, the request id, its expiry');
  await card.getByRole('button', { name: 'Get credentials' }).click();
  const credDialog = dialog(`Credentials for ${APPROVAL_CONNECTOR}`);
  const panel = credDialog.locator('.alert-approval');
  await visible(panel.getByText('Approval needed', { exact: true }), 'Approval needed in the credentials dialog');
  await visible(panel.locator('.tag').filter({ hasText: APPROVER_GROUP }), 'the approvers\' group');
  await visible(panel.getByText(APPROVAL_REASON), "the policy's reason");
  await visible(panel.locator('time'), 'the expiry');
  const firstId = (await panel.locator('.approval-id').textContent()).trim();
  check(/^[0-9a-f-]{36}$/.test(firstId), `the request id shown is ${firstId}`);
  check(await credDialog.getByLabel(/^(Access key ID|Secret access key|Session token)$/).count() === 0, 'a request waiting for an approval shows credential fields');

  log('approvals: a request with a duration, a reason and a ticket is another approval request');
  await credDialog.getByLabel('Duration', { exact: true }).selectOption('3600');
  await credDialog.getByLabel('Reason', { exact: true }).fill('Deploy release 1.2');
  await credDialog.getByLabel('Ticket', { exact: true }).fill('REL-7');
  const asked = page.waitForResponse((r) => r.request().method() === 'POST' && r.url().endsWith(`/api/v1/connectors/${APPROVAL_CONNECTOR}/credentials`));
  await credDialog.getByRole('button', { name: 'Get new credentials' }).click();
  const askedResponse = await asked;
  check(askedResponse.status() === 202, `the request needing an approval answered ${askedResponse.status()}, not 202`);
  const request = askedResponse.request().postDataJSON();
  const approvalId = (await askedResponse.json()).approval.id;
  check(approvalId !== firstId, 'another request (duration, reason, ticket) got the same approval request');
  await hasText(panel.locator('.approval-id'), new RegExp(`^${approvalId}$`), 'the new request id');
  await shot('13-approval-needed');
  await auditLabels('the credentials dialog, approval needed');

  log('approvals: Check again before anyone decided: still pending, the same request id, the focus kept');
  await panel.getByRole('button', { name: 'Check again' }).click();
  await hasText(credDialog.locator('.dialog-status'), /^Still waiting for an approval\.$/, 'the announcement of a request still pending');
  await hasText(panel.locator('.approval-id'), new RegExp(`^${approvalId}$`), 'the same request id after Check again');
  await expectFocus((f) => f.dialog === `Credentials for ${APPROVAL_CONNECTOR}` && f.name === 'Check again', 'the focus stays on Check again');

  log('approvals: the requester may not approve their own request (the API answers 403 forbidden)');
  const self = await pageApi(page, 'POST', `/api/v1/approvals/${approvalId}/approve`, { comment: 'me' });
  check(self.status === 403 && self.body?.error?.code === 'forbidden', `self-approval answered ${self.status} ${JSON.stringify(self.body)}`);
  log('approvals: in the Approvals screen (another tab), the requester sees their requests pending, and no Approve or Deny');
  const ownTab = await watchedPage(userContext);
  await ownTab.goto('/#/approvals');
  await visible(ownTab.getByRole('heading', { level: 1, name: 'Approvals' }), 'the Approvals screen of the requester');
  const ownRow = ownTab.locator(`tr[data-approval="${approvalId}"]`);
  await visible(ownRow, 'the own request in Approvals');
  await visible(ownRow.getByText('Your request: someone else decides'), 'the own request, not to be decided by its requester');
  await visible(ownRow.getByText('Pending', { exact: true }), 'the own request, pending');
  check(await ownTab.getByRole('button', { name: /^(Approve|Deny)\b/ }).count() === 0, 'the requester is offered to decide their own request');
  await ownTab.close();
  await page.bringToFront();

  log(`approvals: ${APPROVER} (${APPROVER_GROUP}) sees the pending requests`);
  const approverContext = await openContext();
  page = await watchedPage(approverContext);
  await page.goto('/');
  await login(APPROVER);
  await nav('Approvals', 'Approvals');
  const row = page.locator(`tr[data-approval="${approvalId}"]`);
  await visible(row, 'the pending request in Approvals');
  for (const [text, what] of [[USER, 'the requester'], [APPROVAL_CONNECTOR, 'the connector'], ['Credentials', 'the purpose'], ['1 h', 'the duration'],
    ['Deploy release 1.2', 'the justification'], ['REL-7', 'the ticket'], [APPROVER_GROUP, 'the group'], [APPROVAL_REASON, 'the reason'], ['Pending', 'the status']]) {
    await visible(row.getByText(text, { exact: true }), `${what} in the request's row`);
  }
  await visible(row.locator('time').last(), 'the expiry in the row');
  const firstRow = page.locator(`tr[data-approval="${cardId}"]`);
  await visible(firstRow.getByRole('button', { name: `Approve ${USER}'s request for ${APPROVAL_CONNECTOR}` }), 'Approve on the other pending request');
  await shot('14-approvals');
  await auditLabels('the Approvals screen of an approver');

  log('approvals: a request decided meanwhile elsewhere: the dialog shows the 409 with the server\'s message');
  await firstRow.getByRole('button', { name: `Approve ${USER}'s request for ${APPROVAL_CONNECTOR}` }).click();
  const firstDialog = dialog(`Approve ${USER}'s request`);
  await visible(firstDialog, 'the Approve dialog');
  await auditLabels('the Approve dialog');
  const denied = await pageApi(page, 'POST', `/api/v1/approvals/${cardId}/deny`, { comment: 'Not without a ticket' });
  check(denied.status === 200 && denied.body?.status === 'denied', `the denial elsewhere answered ${denied.status} ${JSON.stringify(denied.body)}`);
  await firstDialog.getByRole('button', { name: 'Approve', exact: true }).click();
  const conflict = firstDialog.getByRole('alert').filter({ hasText: 'Already decided, or expired' });
  await visible(conflict, 'the conflict in the Approve dialog');
  await hasText(conflict, /not pending.*\(conflict\)/i, "the server's message and code");
  await firstDialog.getByRole('button', { name: 'Cancel' }).click();
  await firstDialog.waitFor({ state: 'detached' });
  await visible(firstRow.getByText('Denied', { exact: true }), 'the request denied elsewhere, shown denied');
  await visible(firstRow.getByText('“Not without a ticket”'), "the denier's comment");

  log(`approvals: ${APPROVER} approves the request with a comment, by the keyboard`);
  await row.getByRole('button', { name: `Approve ${USER}'s request for ${APPROVAL_CONNECTOR}` }).focus();
  await page.keyboard.press('Enter');
  const approveTitle = `Approve ${USER}'s request`;
  const approveDialog = dialog(approveTitle);
  await visible(approveDialog, 'the Approve dialog, opened with Enter');
  await expectFocus((f) => f.dialog === approveTitle && f.name === 'Comment (optional)', 'the focus is in the comment when the dialog opens');
  await page.keyboard.type('Go ahead with 1.2');
  await tabTo((f) => f.tag === 'button' && f.name === 'Approve', "the dialog's Approve", { dialog: approveTitle });
  await page.keyboard.press('Enter');
  await approveDialog.waitFor({ state: 'detached' });
  await visible(page.locator('#status').getByText(`${USER}'s request for ${APPROVAL_CONNECTOR} approved.`), 'the announcement of the approval');
  await visible(row.getByText('Approved', { exact: true }), 'the request, approved');
  await visible(row.getByText('“Go ahead with 1.2”'), "the approver's comment");
  check(await row.getByRole('button').count() === 0, 'an approved request still offers a decision');
  await approverContext.close();

  log('approvals: the requester presses Check again: the same request is made again, and gets the credentials');
  page = userPage;
  await page.bringToFront();
  // What the fields say now does not matter: Check again repeats the request that was approved.
  await credDialog.getByLabel('Ticket', { exact: true }).fill('REL-8');
  const repeated = page.waitForResponse((r) => r.request().method() === 'POST' && r.url().endsWith(`/api/v1/connectors/${APPROVAL_CONNECTOR}/credentials`));
  await panel.getByRole('button', { name: 'Check again' }).click();
  const repeatedResponse = await repeated;
  const sent = repeatedResponse.request().postDataJSON();
  check(JSON.stringify(sent) === JSON.stringify(request), `Check again sent ${JSON.stringify(sent)}, not the approved ${JSON.stringify(request)}`);
  check(repeatedResponse.status() === 200, `the approved request answered ${repeatedResponse.status()}`);
  await visible(credDialog.getByLabel('Access key ID', { exact: true }), 'the credentials, once approved');
  check(await credDialog.getByLabel('Secret access key', { exact: true }).inputValue() === MASK, 'the approved credentials are not masked');
  await shot('15-approved-credentials');
  await credDialog.getByRole('button', { name: 'Done' }).click();
  await credDialog.waitFor({ state: 'detached' });

  log('approvals: Check again in the card, of a denied request, says so');
  await card.getByRole('button', { name: 'Check again' }).click();
  await visible(cardPanel.getByText('Approval denied', { exact: true }), 'the denial, in the card');
  await visible(cardPanel.getByText('Not without a ticket'), "the denier's comment, in the card");
  await visible(cardPanel.getByRole('button', { name: 'Ask again' }), 'Ask again');

  await nav('Approvals', 'Approvals');
  await visible(page.locator(`tr[data-approval="${approvalId}"]`).getByText('Used', { exact: true }), 'the approval, used');
  await visible(page.locator(`tr[data-approval="${cardId}"]`).getByText('Denied', { exact: true }), 'the request of Test access, denied');
  await auditLabels('the Approvals screen of a requester');
  await userContext.close();
}

async function main() {
  fs.mkdirSync(SHOTS, { recursive: true });
  check(fs.existsSync(CHROMIUM), `${CHROMIUM} is missing: run scripts/setup-browser (apt-get install chromium)`);
  check(fs.existsSync(PLUGIN_WASM), `${PLUGIN_WASM} is missing`);
  // launch() gives the browser a fresh temporary profile of its own; the context is new too.
  log(`Chromium ${CHROMIUM}, server ${BASE}`);
  browser = await launch(CHROMIUM);
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
  await rdlg.getByRole('checkbox', { name: 'Reuse issued credentials (credential cache)' }).check();
  await rdlg.getByRole('button', { name: 'Create connector' }).click();
  await rdlg.waitFor({ state: 'detached' });
  const roleRow = page.getByRole('row').filter({ hasText: ROLE_CONNECTOR });
  await visible(roleRow, 'the role connector in the table');
  await visible(roleRow.getByText('Cached', { exact: true }), 'the credential cache badge');
  log("an administrator flushes a connector's credential cache");
  await roleRow.getByRole('button', { name: `Flush cache of ${ROLE_CONNECTOR}` }).click();
  await visible(page.getByText(`Credential cache of ${ROLE_CONNECTOR} flushed: 0 credential sets ended.`), 'the flush announcement');
  check(await page.getByRole('row').filter({ hasText: CONNECTOR }).getByRole('button', { name: /^Flush cache/ }).count() === 0,
    'a connector without the cache offers a flush');
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
  log('tag keys STS would refuse are shown at their field');
  const tagKeys = bdlg.getByLabel('Session tag keys it may add');
  await tagKeys.fill('aws:admin');
  await bdlg.getByRole('button', { name: 'Bind plugin' }).click();
  await visible(bdlg.locator('.field-error').filter({ hasText: 'tag_keys[0]' }), 'the tag keys refusal at its field');
  check(await tagKeys.getAttribute('aria-invalid') === 'true', 'the tag keys field is marked invalid');
  await tagKeys.fill('');
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
  await visible(edlg.getByRole('list', { name: 'Plugin chain, in order' }).getByText('May add no session tag.'), "the binding's tag keys in the chain");
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

  log("an edit based on what someone else has changed since is refused, and says so");
  await page.getByRole('button', { name: `Edit ${CONNECTOR}` }).click();
  await visible(edlg.getByRole('list', { name: 'Plugin chain, in order' }), 'the edit dialog');
  {
    // Another administrator changes the connector meanwhile (the API, with HTTP Basic).
    const basic = `Basic ${Buffer.from(`${ADMIN}:${PASSWORD}`).toString('base64')}`;
    const url = `${BASE}/api/v1/admin/connectors/${CONNECTOR}`;
    const current = await (await fetch(url, { headers: { Authorization: basic } })).json();
    const { id, revision, principal_type, bindings, ...rest } = current;
    const changed = await fetch(url, {
      method: 'PUT',
      headers: { Authorization: basic, 'Content-Type': 'application/json' },
      body: JSON.stringify({ ...rest, description: 'Read-only access to the data bucket (S3), as another administrator put it' }),
    });
    check(changed.status === 200, `the other administrator's change: HTTP ${changed.status}`);
  }
  await edlg.getByLabel('Description').fill('An edit from an old read');
  await edlg.getByRole('button', { name: 'Save' }).click();
  await visible(edlg.getByRole('alert').filter({ hasText: 'Someone else changed this connector' }), 'the stale edit refused');
  await edlg.getByRole('button', { name: 'Cancel' }).click();
  await edlg.waitFor({ state: 'detached' });
  await page.reload();
  await visible(page.getByRole('row').filter({ hasText: 'as another administrator put it' }), "the other administrator's change, kept");

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
  check(profileText.includes(`idfed login --server ${BASE} --user '${USER}'\n`), `the config profile's login is not shell-quoted: ${profileText}`);
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
  check(await credDialog.getByLabel(/^(Access key ID|Secret access key|Session token)$/).count() === 0, 'a denied request shows credential fields');
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

  log('another tab logs the same user in again, which replaces the session and its CSRF token under this tab');
  const tab = await watchedPage(page.context());
  await tab.goto('/');
  await hasText(tab.locator('#whoami'), new RegExp(`^${ADMIN}$`), 'the second tab, logged in by the shared cookie');
  await loginElsewhere(tab, ADMIN);
  await page.bringToFront(); // a tab in the background draws no frames: Playwright's clicks would wait for them
  const sessionReads = countRequests(page, 'GET', '/api/v1/web/session');
  await confirm.getByRole('button', { name: 'Delete' }).click();
  await visible(page.getByText('No API key yet.'), 'the key list after the deletion, made with the CSRF token fetched again');
  check(sessionReads() === 1, `the page read its session ${sessionReads()} times to get the new CSRF token, not once`);
  check(await page.locator('#status .toast.error').count() === 0, `an error was shown: ${await page.locator('#status').innerText()}`);
  await hasText(page.locator('#whoami'), new RegExp(`^${ADMIN}$`), 'the same user in the top bar');

  log('a logout the server fails leaves the page logged in, saying so');
  await page.route('**/api/v1/web/session', (route) => (route.request().method() === 'DELETE'
    ? route.fulfill({ status: 503, contentType: 'application/json', body: JSON.stringify({ error: { code: 'unavailable', message: 'The session store cannot be used now.' } }) })
    : route.fallback()));
  await page.getByRole('button', { name: 'Log out' }).click();
  await visible(page.locator('#status').getByText('Logging out failed: The session store cannot be used now.'), 'the failed logout');
  check(!(await page.getByText('You are logged out.').isVisible()), 'a failed logout says "You are logged out."');
  check(await page.getByRole('heading', { level: 1, name: 'System-scope API keys' }).isVisible(), 'a failed logout left the page');
  await hasText(page.locator('#whoami'), new RegExp(`^${ADMIN}$`), 'the user, still logged in after a failed logout');
  await page.unroute('**/api/v1/web/session');

  log("the other tab logs out with its stale CSRF token (fetched again); this tab's next screen finds the session ended");
  await tab.bringToFront();
  await tab.getByRole('button', { name: 'Log out' }).click();
  await visible(tab.getByText('You are logged out.'), 'the other tab, logged out');
  await page.bringToFront();
  await page.getByRole('navigation', { name: 'Main' }).getByRole('link', { name: 'Connectors', exact: true }).click();
  await sessionEndedShown('when the Connectors page loads after a logout elsewhere');
  await login(ADMIN);
  await visible(page.getByRole('heading', { level: 1, name: 'Connectors' }), 'the Connectors page, after logging in again');
  await logoutElsewhere(tab);
  await page.getByRole('navigation', { name: 'Main' }).getByRole('link', { name: 'My connectors', exact: true }).click();
  await sessionEndedShown('when My connectors loads after a logout elsewhere');

  log('another tab logs in as another user: this tab shows that user, and does nothing as them');
  await login(ADMIN);
  await nav('API keys', 'System-scope API keys');
  await loginElsewhere(tab, OUTSIDER);
  const auditReads = countRequests(page, 'GET', '/api/v1/admin/audit');
  await page.getByRole('navigation', { name: 'Main' }).getByRole('link', { name: 'Audit log', exact: true }).click();
  await hasText(page.locator('#whoami'), new RegExp(`^${OUTSIDER}$`), 'the other user in the top bar');
  await visible(page.getByRole('heading', { name: 'No connectors for you yet' }), "the other user's My connectors");
  await visible(page.locator('#status').getByText(`You are now logged in as ${OUTSIDER}`), 'the notice of the other user');
  check(!(await page.getByRole('link', { name: 'Audit log' }).isVisible()), 'the admin links stay for a user');
  check(await page.locator('main .alert-error').count() === 0, `an error is shown: ${await page.locator('main').innerText()}`);
  check(auditReads() === 1, `the audit log was asked for ${auditReads()} times: the call made for ${ADMIN} was made again as ${OUTSIDER}`);
  await tab.close();
  await logout();

  // --- keyboard only -------------------------------------------------------------------------------------------
  await keyboardOnly();

  // --- a wrong clock -----------------------------------------------------------------------------------------
  await wrongClock();

  // --- just-in-time approvals ----------------------------------------------------------------------------------
  await approvals();

  // --- every label audit; no console errors, no CSP violations ------------------------------------------------
  log(`label audits: ${audits}, problems: ${labelProblems.length}`);
  check(labelProblems.length === 0, `controls without a proper accessible name:\n  ${labelProblems.join('\n  ')}`);
  check(problems.length === 0, `the browser reported:\n  ${problems.join('\n  ')}`);
  log(`expected API errors the browser logged: ${networkErrors.length}`);
}

await run(main, {
  getBrowser: () => browser,
  getPage: () => page,
  failureShot: path.join(SHOTS, 'failure.png'),
  timeoutMs: OVERALL_TIMEOUT_MS,
});
