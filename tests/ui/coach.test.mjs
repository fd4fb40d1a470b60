// The coach's pages in a real browser, against a real `kluis serve`: signing
// in (two steps with a TOTP code), the caseload, a client's page with a
// multi-file upload and a download, signing out; the strict CSP, the
// cross-site form check, WCAG 2.1 A/AA (axe) and keyboard use.
//
// One server for the file; each test has its own users (a TOTP step is
// accepted once per user), set up over the API by a manager.

import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import { after, before, test } from 'node:test';

import {
  CSP,
  addUser,
  apiLogin,
  assertAccessible,
  assignCoach,
  createClient,
  createUser,
  eventually,
  exeBytes,
  focused,
  launch,
  newPage,
  pdfBytes,
  shot,
  signIn,
  startKluis,
  totp,
} from './harness.mjs';

const TIMEOUT = 180_000; // a sign-in may wait up to 30 s for a fresh TOTP step

let srv;
let browser;
let manager; // bearer token of the manager who sets up users and clients

before(async () => {
  srv = await startKluis();
  const directie = await addUser(srv, 'directie', 'management', 'Directie');
  manager = await apiLogin(srv, directie);
  browser = await launch();
});

after(async () => {
  await browser?.close();
  await srv?.stop();
});

/** A new coach (created over the API) with a new client Jan Jansen assigned. */
async function coachWithClient(username) {
  const coach = await createUser(srv, manager, username, 'coach', `Coach ${username}`);
  const client = await createClient(srv, manager);
  await assignCoach(srv, manager, client.id, coach);
  return { coach, client };
}

/** The frame every page has: the skip link first, the header, the main. */
async function assertFrame(page, { signedIn }) {
  const focusable = 'a[href], button, input:not([type="hidden"]), select, textarea, [tabindex]:not([tabindex="-1"])';
  const first = page.locator(focusable).first();
  assert.match(await first.getAttribute('class') ?? '', /(^|\s)skip(\s|$)/, 'the skip link is the first focusable element');
  assert.equal(await first.getAttribute('href'), '#main');
  assert.equal((await first.textContent()).trim(), 'Naar de inhoud');
  assert.match(await page.locator('header').first().textContent(), /Kluis/, 'the header names the product');
  assert.equal(await page.locator('main#main').count(), 1, 'one <main id="main">');
  const logout = page.locator('form[method="post"][action="/logout"]');
  if (signedIn) {
    assert.equal(await logout.count(), 1, 'a logout form');
    assert.equal(await logout.getByRole('button', { name: 'Afmelden', exact: true }).count(), 1);
  } else {
    assert.equal(await logout.count(), 0, 'no logout form before signing in');
  }
}

/** Wait for the upload row of file NAME to show its outcome; resolves to its text. */
function outcomeOf(page, name) {
  return eventually(
    async () => {
      const row = page.locator('#upload-results li').filter({ hasText: name });
      assert.equal(await row.count(), 1, `one result row for ${name}`);
      const text = (await row.textContent()).replace(/\s+/g, ' ').trim();
      assert.match(text, /Geaccepteerd|Geweigerd/, `the outcome of ${name} (row now: "${text}")`);
      return text;
    },
    { timeout: 30_000 },
  );
}

/** The rows of #documents that are documents (those with a download form). */
function documentRows(page) {
  return page.locator('#documents tr').filter({ has: page.locator('form') });
}

test('without a session / redirects to /login', async () => {
  const res = await fetch(`${srv.base}/`, { redirect: 'manual' });
  assert.equal(res.status, 303);
  assert.equal(new URL(res.headers.get('location'), srv.base).pathname, '/login');
});

test('the login page sends exactly the strict CSP', async () => {
  const res = await fetch(`${srv.base}/login`);
  assert.equal(res.status, 200);
  assert.equal(res.headers.get('content-security-policy'), CSP);
});

test('the login and code pages pass axe, a wrong code is refused', { timeout: TIMEOUT }, async () => {
  const user = await createUser(srv, manager, 'coach.login', 'coach');
  const t = await newPage(browser);
  const { page } = t;

  await page.goto(`${srv.base}/login`);
  await assertFrame(page, { signedIn: false });
  await page.getByLabel('Gebruikersnaam', { exact: true }).fill(user.username);
  await page.getByLabel('Wachtwoord', { exact: true }).fill(user.password);
  assert.equal(await page.locator('#username').getAttribute('autocomplete'), 'username');
  assert.equal(await page.locator('#password').getAttribute('autocomplete'), 'current-password');
  assert.equal(await page.locator('#password').getAttribute('type'), 'password');
  await shot(page, 'login');
  await assertAccessible(page, '/login');

  await Promise.all([
    page.waitForURL((u) => u.pathname === '/login/code'),
    page.getByRole('button', { name: 'Volgende', exact: true }).click(),
  ]);
  await assertFrame(page, { signedIn: false });
  const otp = page.getByLabel('Code uit de authenticator-app', { exact: true });
  assert.equal(await otp.getAttribute('inputmode'), 'numeric');
  assert.equal(await otp.getAttribute('autocomplete'), 'one-time-code');
  await shot(page, 'login-code');
  await assertAccessible(page, '/login/code');

  // A code from an hour ago is wrong whatever the clock skew allowed.
  await otp.fill(totp(user.secret, Date.now() - 3_600_000));
  await Promise.all([
    page.waitForURL((u) => u.pathname === '/login'),
    page.getByRole('button', { name: 'Aanmelden', exact: true }).click(),
  ]);
  const alert = page.locator('[role="alert"]');
  assert.match(await alert.first().textContent(), /onjuist/);
  await shot(page, 'login-wrong-code');
  await assertAccessible(page, '/login with the alert');
  assert.deepEqual(t.problems(), [], 'no CSP violation, page error or failed resource');
  await t.context.close();
});

test('cross-site form posts are refused', async () => {
  const crossSite = {
    Origin: 'http://evil.example',
    'Sec-Fetch-Site': 'cross-site',
    'Content-Type': 'application/x-www-form-urlencoded',
  };
  for (const [path, body] of [
    ['/logout', ''],
    ['/login', ''],
    ['/login', 'username=niemand&password=whatever-password'],
  ]) {
    const res = await fetch(srv.base + path, { method: 'POST', headers: crossSite, body, redirect: 'manual' });
    assert.equal(res.status, 403, `cross-site POST ${path} (${JSON.stringify(body)})`);
  }
  // The same post from the site itself is not refused (so the 403 above is
  // the cross-site check, not a refusal of any post).
  const sameSite = { ...crossSite, Origin: srv.base, 'Sec-Fetch-Site': 'same-origin' };
  const res = await fetch(`${srv.base}/login`, {
    method: 'POST',
    headers: sameSite,
    body: 'username=niemand&password=whatever-password',
    redirect: 'manual',
  });
  assert.notEqual(res.status, 403, 'a same-origin POST /login');
});

test('the coach journey: caseload, client, upload, download, sign out', { timeout: TIMEOUT }, async () => {
  const { coach, client } = await coachWithClient('coach.anna');
  const t = await newPage(browser);
  const { page } = t;

  await signIn(page, srv, coach);

  // The caseload.
  const home = await page.goto(`${srv.base}/`);
  assert.match(home.headers()['cache-control'] ?? '', /no-store/, 'Cache-Control of /');
  assert.equal(home.headers()['content-security-policy'], CSP);
  await assertFrame(page, { signedIn: true });
  assert.equal((await page.locator('h1').textContent()).trim(), 'Mijn cliënten');
  const link = page.locator('table').getByRole('link', { name: 'Jansen, J.', exact: true });
  assert.equal(await link.count(), 1, 'the client in the caseload table');
  assert.equal(await link.getAttribute('href'), `/clients/${client.id}`);
  await shot(page, 'coach-caseload');
  await assertAccessible(page, 'Mijn cliënten');

  // The client's page.
  const [clientPage] = await Promise.all([
    page.waitForResponse((r) => new URL(r.url()).pathname === `/clients/${client.id}` && r.request().method() === 'GET'),
    link.click(),
  ]);
  await page.waitForURL((u) => u.pathname === `/clients/${client.id}`);
  assert.match(clientPage.headers()['cache-control'] ?? '', /no-store/, 'Cache-Control of the client page');
  await assertFrame(page, { signedIn: true });
  assert.match(await page.locator('h1').textContent(), /Jansen/);
  const form = page.locator('form#upload');
  assert.equal(await form.getAttribute('method'), 'post');
  assert.equal(await form.getAttribute('action'), `/clients/${client.id}/documents`);
  assert.equal(await form.getAttribute('enctype'), 'multipart/form-data');
  assert.equal(await page.locator('[role="status"] #upload-results').count(), 1, '#upload-results in a status region');
  await shot(page, 'coach-client-empty');

  // Three files at once.
  const files = [
    { name: 'werkplan-deel-1.pdf', mimeType: 'application/pdf', buffer: pdfBytes('Werkplan deel 1 van Jan Jansen') },
    { name: 'werkplan-deel-2.pdf', mimeType: 'application/pdf', buffer: pdfBytes('Werkplan deel 2 van Jan Jansen') },
    {
      name: 'gespreksnotities.txt',
      mimeType: 'text/plain',
      buffer: Buffer.from('Gesprek met Jan op maandag.\nAfspraken: sollicitatiebrief, cv bijwerken.\n', 'utf8'),
    },
  ];
  await page.getByLabel('Documenttype', { exact: true }).selectOption('work_plan');
  await page.locator('#files').setInputFiles(files);
  await page.locator('form#upload').getByRole('button', { name: 'Uploaden', exact: true }).click();
  for (const f of files) {
    const text = await outcomeOf(page, f.name);
    assert.match(text, /Geaccepteerd/, `${f.name}: ${text}`);
  }
  await shot(page, 'coach-client-uploaded');

  // A file the content check refuses.
  await page.getByLabel('Documenttype', { exact: true }).selectOption('work_plan');
  await page.locator('#files').setInputFiles([
    { name: 'programma.exe', mimeType: 'application/octet-stream', buffer: exeBytes() },
  ]);
  await page.locator('form#upload').getByRole('button', { name: 'Uploaden', exact: true }).click();
  const refused = await outcomeOf(page, 'programma.exe');
  assert.match(refused, /Geweigerd:\s*\S/, `programma.exe refused with a reason: ${refused}`);
  await shot(page, 'coach-client-refused');

  // The documents table lists the three accepted files, not the refused one.
  await page.reload();
  const rows = documentRows(page);
  await eventually(async () => assert.equal(await rows.count(), 3, 'three document rows'));
  const firstCells = await rows.evaluateAll((trs) => trs.map((tr) => tr.cells[0].textContent.trim()));
  for (const f of files) {
    const stem = f.name.replace(/\.[^.]+$/, '');
    assert.ok(firstCells.some((c) => c.includes(stem)), `${f.name} in the first cells ${JSON.stringify(firstCells)}`);
  }
  assert.ok(!firstCells.some((c) => c.includes('programma')), 'the refused file is not listed');
  await shot(page, 'coach-client');
  await assertAccessible(page, 'the client page');

  // Download one with a purpose; the bytes are the ones uploaded.
  const row = rows.filter({ hasText: 'werkplan-deel-1' });
  const downloadForm = row.locator('form');
  assert.equal(await downloadForm.getAttribute('method'), 'post');
  assert.match(await downloadForm.getAttribute('action'), /^\/documents\/[0-9a-f-]{36}\/download$/);
  await row.locator('select[name="purpose"]').selectOption('guidance');
  // Its accessible name may name the document too ("Downloaden: werkplan-deel-1.pdf").
  const downloadButton = row.getByRole('button', { name: /^Downloaden\b/ });
  assert.equal((await downloadButton.textContent()).trim(), 'Downloaden');
  const [download] = await Promise.all([page.waitForEvent('download'), downloadButton.click()]);
  assert.equal(await download.failure(), null, 'the download completed');
  const got = await readFile(await download.path());
  assert.ok(got.equals(files[0].buffer), `downloaded ${got.length} bytes equal to the ${files[0].buffer.length} uploaded`);
  assert.match(download.suggestedFilename(), /\.pdf$/, `file name ${download.suggestedFilename()}`);

  // Sign out.
  await Promise.all([
    page.waitForURL((u) => u.pathname === '/login'),
    page.getByRole('button', { name: 'Afmelden', exact: true }).click(),
  ]);
  assert.match(await page.locator('body').textContent(), /U bent afgemeld\./);
  await shot(page, 'signed-out');
  await page.goto(`${srv.base}/clients/${client.id}`);
  assert.equal(new URL(page.url()).pathname, '/login', 'the session is gone after signing out');

  assert.deepEqual(t.problems(), [], 'no CSP violation, page error or failed resource during the journey');
  await t.context.close();
});

test('keyboard only: skip link first, then the file input and Uploaden', { timeout: TIMEOUT }, async () => {
  const { coach, client } = await coachWithClient('coach.bram');
  const t = await newPage(browser);
  const { page } = t;
  await signIn(page, srv, coach);
  await page.goto(`${srv.base}/clients/${client.id}`);

  const visibleFocus = (f, what) => {
    assert.ok(f.visible, `${what} is visible when focused: ${JSON.stringify(f)}`);
    assert.ok(f.focusVisible, `${what} matches :focus-visible: ${JSON.stringify(f)}`);
    assert.ok(f.ring, `${what} shows a focus outline or shadow: ${JSON.stringify(f)}`);
  };

  await page.keyboard.press('Tab');
  const skip = await focused(page);
  assert.equal(skip.tag, 'a', `the first Tab stop is a link: ${JSON.stringify(skip)}`);
  assert.equal(skip.href, '#main');
  assert.equal(skip.text, 'Naar de inhoud');
  visibleFocus(skip, 'the skip link');
  await shot(page, 'keyboard-skip-link');

  const seen = [];
  const tabUntil = async (want, what) => {
    for (let i = 0; i < 60; i++) {
      await page.keyboard.press('Tab');
      const f = await focused(page);
      seen.push(f.id ? `#${f.id}` : `${f.tag}:${f.text || f.name || ''}`);
      if (want(f)) return f;
    }
    assert.fail(`Tab never reached ${what}; focus went ${seen.join(' → ')}`);
  };
  const fileInput = await tabUntil((f) => f.id === 'files', 'the file input #files');
  assert.equal(fileInput.type, 'file');
  visibleFocus(fileInput, 'the file input');
  const button = await tabUntil((f) => f.tag === 'button' && f.text === 'Uploaden', 'the Uploaden button');
  visibleFocus(button, 'the Uploaden button');
  await shot(page, 'keyboard-upload-button');

  // The skip link leads into the main content.
  await page.goto(`${srv.base}/clients/${client.id}`);
  await page.keyboard.press('Tab');
  await page.keyboard.press('Enter');
  await eventually(() => assert.equal(new URL(page.url()).hash, '#main'), { timeout: 5_000 });
  await page.keyboard.press('Tab');
  assert.ok(
    await page.evaluate(() => document.querySelector('main#main').contains(document.activeElement)),
    'after the skip link, Tab goes to the first control inside <main>',
  );

  assert.deepEqual(t.problems(), [], 'no CSP violation, page error or failed resource');
  await t.context.close();
});
