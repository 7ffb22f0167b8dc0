// idfed's web UI with Atlassian Crowd behind it, in Debian's Chromium: single sign-on from Crowd's cookie, the
// logout that pauses it, "Log in with Crowd SSO" that resumes it, and a password login against Crowd.
// Run by tests/tests/e2e/web_ui_sso.rs against a real idfed whose directory is the Crowd test server.
//
// Environment:
//   IDFED_URL            the server's base URL (required)
//   IDFED_CROWD_USER     a Crowd user (required)
//   IDFED_CROWD_PASSWORD their password (required)
//   IDFED_CROWD_GROUP    a group they are in (required)
//   IDFED_SSO_TOKEN      a live Crowd SSO token of theirs (required)
//   IDFED_SSO_COOKIE     the name of Crowd's cookie (default crowd.token_key)
//   IDFED_SCREENSHOTS    where the screenshots go (default ./screenshots)
//   CHROMIUM             the browser (default /usr/bin/chromium)
//
// Exits 0 when every check passed, non-zero otherwise (and after 2 minutes at most).

import fs from 'node:fs';
import path from 'node:path';
import {
  env, log, problems, labelProblems, check, visible, hasText, shot, launch, openContext, watchedPage, auditLabels, run,
} from './lib.mjs';

const BASE = env('IDFED_URL').replace(/\/$/, '');
const USER = env('IDFED_CROWD_USER');
const PASSWORD = env('IDFED_CROWD_PASSWORD');
const GROUP = env('IDFED_CROWD_GROUP');
const TOKEN = env('IDFED_SSO_TOKEN');
const SSO_COOKIE = env('IDFED_SSO_COOKIE', 'crowd.token_key');
const SHOTS = path.resolve(env('IDFED_SCREENSHOTS', 'screenshots'));
const CHROMIUM = env('CHROMIUM', '/usr/bin/chromium');

const OVERALL_TIMEOUT_MS = 120_000;
const PAUSED_COOKIE = '__Host-idfed_sso_paused';
const NO_SSO = 'No Crowd single sign-on session in this browser: log in with your password.';

let browser;
let page;

async function loggedIn(what) {
  await hasText(page.locator('#whoami'), new RegExp(`^${USER}$`), `${what}: the user name in the top bar`);
  await visible(page.getByRole('heading', { level: 1, name: 'My connectors' }), `${what}: My connectors`);
  await visible(page.getByRole('heading', { name: 'No connectors for you yet' }), `${what}: no connector yet`);
  await visible(page.locator('main').getByText(GROUP, { exact: true }), `${what}: the user's Crowd group`);
}

async function loginPage(what) {
  await visible(page.getByRole('heading', { name: 'Log in to idfed' }), `${what}: the login page`);
  await visible(page.getByText('Log in with your Atlassian Crowd account.'), `${what}: the wording for Crowd`);
  await visible(page.getByRole('button', { name: 'Log in with Crowd SSO', exact: true }), `${what}: the SSO button`);
  check(!(await page.locator('#account').isVisible()), `${what}: the top bar shows a user`);
}

async function cookieNames(context) {
  return (await context.cookies()).map((c) => c.name);
}

async function logout(context) {
  log('log out');
  await page.getByRole('button', { name: 'Log out' }).click();
  await loginPage('after logging out');
  await visible(page.getByText('You are logged out.'), 'the logged-out notice');
  check((await cookieNames(context)).includes(PAUSED_COOKIE), `logging out did not pause SSO: cookies ${await cookieNames(context)}`);
}

async function main() {
  fs.mkdirSync(SHOTS, { recursive: true });
  check(fs.existsSync(CHROMIUM), `${CHROMIUM} is missing: run scripts/setup-browser (apt-get install chromium)`);
  log(`Chromium ${CHROMIUM}, server ${BASE}`);
  browser = await launch(CHROMIUM);
  const context = await openContext(browser, BASE);
  page = await watchedPage(context);

  log("a browser with Crowd's SSO cookie is logged in directly, with no password");
  await context.addCookies([{ name: SSO_COOKIE, value: TOKEN, url: BASE }]);
  const response = await page.goto('/');
  check(response.ok(), `GET / answered ${response.status()}`);
  await loggedIn('from the SSO cookie');
  check((await cookieNames(context)).includes('__Host-idfed_session'), "no idfed session cookie after SSO");

  log('a logout lasts while Crowd\'s cookie does: reloading logs nobody in');
  await logout(context);
  await page.reload();
  await loginPage('after a reload while SSO is paused');
  check(!(await page.getByText('You are logged out.').isVisible()), 'the reload still says "You are logged out."');
  await shot(page, SHOTS, '12-crowd-login');
  await auditLabels(page, 'the login page with Crowd');

  log('"Log in with Crowd SSO" resumes single sign-on');
  await page.getByRole('button', { name: 'Log in with Crowd SSO', exact: true }).click();
  await loggedIn('after Log in with Crowd SSO');
  check(!(await cookieNames(context)).includes(PAUSED_COOKIE), 'SSO is still paused after logging in with it');
  await page.reload();
  await loggedIn('after a reload');

  log("without Crowd's cookie, the SSO button says there is no Crowd session");
  await logout(context);
  await context.clearCookies({ name: SSO_COOKIE });
  check(!(await cookieNames(context)).includes(SSO_COOKIE), "Crowd's cookie was not cleared");
  await page.getByRole('button', { name: 'Log in with Crowd SSO', exact: true }).click();
  await visible(page.getByRole('alert').filter({ hasText: NO_SSO }), 'the message that there is no Crowd session');
  await loginPage('after SSO found no Crowd session');
  check(await page.getByLabel('User name').isVisible(), 'the password form is gone');

  log('a password login against Crowd');
  await page.getByLabel('User name').fill(USER);
  await page.getByLabel('Password').fill('not the password');
  await page.getByRole('button', { name: 'Log in', exact: true }).click();
  await visible(page.getByRole('alert').filter({ hasText: 'Could not log in' }), 'a wrong password refused');
  await page.getByLabel('Password').fill(PASSWORD);
  await page.getByRole('button', { name: 'Log in', exact: true }).click();
  await loggedIn('with the Crowd password');
  await logout(context);

  log(`label audit problems: ${labelProblems.length}`);
  check(labelProblems.length === 0, `controls without a proper accessible name:\n  ${labelProblems.join('\n  ')}`);
  check(problems.length === 0, `the browser reported:\n  ${problems.join('\n  ')}`);
}

await run(main, {
  getBrowser: () => browser,
  getPage: () => page,
  failureShot: path.join(SHOTS, 'sso-failure.png'),
  timeoutMs: OVERALL_TIMEOUT_MS,
});
