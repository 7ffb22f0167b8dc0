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
  // Let the UI settle (fonts, focus rings, countdown) before the picture.
  await page.waitForTimeout(250);
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
  const context = await browser.newContext({
    baseURL: BASE,
    viewport: { width: 1366, height: 900 },
    deviceScaleFactor: 1,
    locale: 'en-US',
    timezoneId: 'UTC',
  });
  await context.grantPermissions(['clipboard-read', 'clipboard-write'], { origin: BASE });
  // Every CSP violation, as the page sees it.
  await context.addInitScript(() => {
    window.__csp = [];
    document.addEventListener('securitypolicyviolation', (e) => {
      window.__csp.push(`${e.violatedDirective}: ${e.blockedURI} (${e.sourceFile}:${e.lineNumber})`);
    });
  });
  page = await context.newPage();
  page.setDefaultTimeout(STEP_TIMEOUT_MS);
  page.on('console', (message) => {
    const text = message.text();
    if (message.type() === 'error' && /^Failed to load resource: the server responded with a status of [45]\d\d/.test(text)) {
      networkErrors.push(`${text} ${message.location().url || ''}`);
      return;
    }
    if (message.type() === 'error' || message.type() === 'warning') problems.push(`console ${message.type()}: ${text}`);
  });
  page.on('pageerror', (error) => problems.push(`page error: ${error.message}`));
  page.on('crash', () => problems.push('the page crashed'));

  // --- the login screen -------------------------------------------------------------------------------
  const response = await page.goto('/');
  check(response.ok(), `GET / answered ${response.status()}`);
  const csp = response.headers()['content-security-policy'] || '';
  check(/script-src 'self'/.test(csp) && /default-src 'none'/.test(csp), `GET / has no strict CSP: ${csp}`);
  await visible(page.getByRole('heading', { name: 'Log in to idfed' }), 'the login screen');
  await visible(page.getByText('Log in with your idfed account.'), "the login screen's wording for a static directory");
  check(!(await page.getByRole('navigation', { name: 'Main' }).isVisible()), 'the navigation shows before logging in');
  await shot('01-login');

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
  await rdlg.getByLabel('Assumed role').check();
  await rdlg.getByLabel('Role ARN').fill(ROLE_ARN);
  check(await rdlg.getByLabel('Session policy (JSON)').isVisible(), 'an assumed-role connector hides the (optional) policy field');
  await visible(rdlg.getByText(/^Empty: AWS's maximum, 12 h\. Allowed: 900–43,200 seconds/), "the assumed-role duration range");
  await rdlg.getByRole('checkbox', { name: GROUP, exact: true }).check();
  await rdlg.getByRole('button', { name: 'Create connector' }).click();
  await rdlg.waitFor({ state: 'detached' });
  await visible(page.getByRole('row').filter({ hasText: ROLE_CONNECTOR }), 'the role connector in the table');
  await shot('04-admin-connectors');

  // --- admin: a plugin, uploaded and bound ------------------------------------------------------------
  await nav('Plugins', 'Plugins');
  await page.getByLabel('Plugin name').fill('rate-limit');
  await page.getByLabel('Component (.wasm)').setInputFiles(PLUGIN_WASM);
  await page.getByRole('button', { name: 'Upload' }).click();
  await visible(page.getByRole('heading', { level: 2, name: 'rate-limit' }), 'the uploaded plugin');
  await page.getByRole('button', { name: /^Bind to connector… \(rate-limit [0-9a-f]{12}\)$/ }).click();
  const bdlg = dialog('Bind rate-limit to a connector');
  await visible(bdlg, 'the bind dialog');
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
  await eadlg.getByRole('button', { name: 'Save account' }).click();
  await eadlg.waitFor({ state: 'detached' });

  // --- admin: a system-scope API key ---------------------------------------------------------------------
  await nav('API keys', 'System-scope API keys');
  await page.getByLabel('Key name').fill('ci-deploy');
  await page.getByRole('checkbox', { name: CONNECTOR }).check();
  await page.getByRole('button', { name: 'Create API key' }).click();
  const kdlg = dialog('API key ci-deploy created');
  await visible(kdlg, 'the new key dialog');
  await visible(kdlg.getByText('It will not be shown again'), 'the shown-once warning');
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
  await nav('API keys', 'System-scope API keys');
  await page.getByRole('button', { name: 'Delete API key ci-deploy' }).click();
  const confirm = dialog('Delete API key ci-deploy?');
  await visible(confirm, 'the confirmation');
  await confirm.getByRole('button', { name: 'Delete' }).click();
  await visible(page.getByText('No API key yet.'), 'the key list after the deletion');
  await logout();

  // --- no console errors, no CSP violations ------------------------------------------------------------------
  const violations = await page.evaluate(() => window.__csp);
  for (const v of violations) problems.push(`CSP violation: ${v}`);
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
  await snapshotFailure();
  clearTimeout(overall);
  await browser?.close().catch(() => {});
  process.exit(1);
}
