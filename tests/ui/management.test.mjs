// The management pages in a real browser, against a real `kluis serve`: a
// manager creates a user (the TOTP secret shown once works for a sign-in)
// and deactivates it again; a substitution gives a coach the absent
// colleague's clients until it ends; the destruction list, the audit log
// with the verification of its chain, and the breach register; and the
// office, which has the user pages but neither the audit log nor the breach
// register.
//
// One server for the file; each test has its own users (a TOTP step is
// accepted once per user), set up over the API by a manager.

import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';

import {
  addUser,
  apiLogin,
  apiOk,
  assertAccessible,
  assignCoach,
  createClient,
  createUser,
  launch,
  newPage,
  pdfBytes,
  shot,
  signIn,
  startKluis,
  uploadDocument,
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

/** The whitespace-normalised text of LOCATOR. */
async function text(locator) {
  return (await locator.textContent()).replace(/\s+/g, ' ').trim();
}

/** The main menu ("Hoofdmenu"). */
function menu(page) {
  return page.getByRole('navigation', { name: 'Hoofdmenu' });
}

/** Follow the menu link NAME to PATH; asserts it is marked as the current page. */
async function openFromMenu(page, name, path) {
  await Promise.all([
    page.waitForURL((u) => u.pathname === path),
    menu(page).getByRole('link', { name, exact: true }).click(),
  ]);
  const link = menu(page).getByRole('link', { name, exact: true });
  assert.equal(await link.getAttribute('aria-current'), 'page', `"${name}" is the current page in the menu`);
}

/** The parts of instant T on the agency's clock (Europe/Amsterdam). */
function amsterdam(t) {
  const parts = new Intl.DateTimeFormat('en-GB', {
    timeZone: 'Europe/Amsterdam',
    year: 'numeric',
    month: '2-digit',
    day: '2-digit',
    hour: '2-digit',
    minute: '2-digit',
    hourCycle: 'h23',
  }).formatToParts(t);
  const get = (type) => parts.find((p) => p.type === type).value;
  return { y: get('year'), m: get('month'), d: get('day'), hh: get('hour'), mm: get('minute') };
}

/** YYYY-MM-DD of instant T on the agency's clock (a date input's value). */
function isoDay(t) {
  const a = amsterdam(t);
  return `${a.y}-${a.m}-${a.d}`;
}

/** YYYY-MM-DDTHH:MM of instant T on the agency's clock (a datetime-local value). */
function isoMinute(t) {
  const a = amsterdam(t);
  return `${a.y}-${a.m}-${a.d}T${a.hh}:${a.mm}`;
}

/** A date as the pages write it: YYYY-MM-DD → D-M-YYYY. */
function shownDate(iso) {
  const [y, m, d] = iso.split('-');
  return `${Number(d)}-${Number(m)}-${y}`;
}

/** An instant as the pages write it: D-M-YYYY HH:MM on the agency's clock. */
function shownTime(t) {
  const a = amsterdam(t);
  return `${Number(a.d)}-${Number(a.m)}-${a.y} ${a.hh}:${a.mm}`;
}

/** The day ISO (YYYY-MM-DD) plus N calendar days. */
function addDays(iso, n) {
  const d = new Date(`${iso}T12:00:00Z`);
  d.setUTCDate(d.getUTCDate() + n);
  return d.toISOString().slice(0, 10);
}

test('a manager creates a user who signs in with the secret shown once', { timeout: TIMEOUT }, async () => {
  const boss = await createUser(srv, manager, 'directie.ruud', 'management', 'Ruud Directie');
  const t = await newPage(browser);
  const { page } = t;
  await signIn(page, srv, boss);

  await openFromMenu(page, 'Gebruikers', '/users');
  assert.equal(await text(page.locator('h1')), 'Gebruikers');
  const form = page.locator('form#new-user');
  assert.equal(await form.getAttribute('method'), 'post');
  assert.equal(await form.getAttribute('action'), '/users');

  const nina = { username: 'coach.nina', displayName: 'Nina de Wit', password: 'nina-geheim-wachtwoord-42' };
  const fillForm = async (password) => {
    await page.getByLabel('Gebruikersnaam', { exact: true }).fill(nina.username);
    await page.getByLabel('Volledige naam', { exact: true }).fill(nina.displayName);
    await page.getByLabel('Rol', { exact: true }).selectOption('coach');
    const field = page.getByLabel('Eerste wachtwoord', { exact: true });
    await field.fill('');
    await field.pressSequentially(password); // typed: the browser's own length check applies
  };

  // A too-short password. The browser refuses it first (minlength="12"):
  // nothing is sent.
  await fillForm('kort');
  const password = page.locator('#new-password');
  assert.equal(await password.getAttribute('minlength'), '12');
  assert.equal(await password.evaluate((el) => el.validity.tooShort), true, 'the browser sees a too-short password');
  let posted = 0;
  const countPosts = (r) => {
    if (r.method() === 'POST' && new URL(r.url()).pathname === '/users') posted++;
  };
  page.on('request', countPosts);
  await form.getByRole('button', { name: 'Gebruiker aanmaken', exact: true }).click();
  await page.waitForTimeout(500);
  assert.equal(posted, 0, 'the browser sends no form with a too-short password');
  page.off('request', countPosts);

  // The server refuses it too: as a browser without the check sends it.
  await form.evaluate((f) => {
    f.noValidate = true;
  });
  const [refused] = await Promise.all([
    page.waitForResponse((r) => new URL(r.url()).pathname === '/users' && r.request().method() === 'POST'),
    form.getByRole('button', { name: 'Gebruiker aanmaken', exact: true }).click(),
  ]);
  await page.waitForLoadState('load');
  assert.equal(refused.status(), 422, 'a weak password is refused with 422');
  const error = page.locator('#users-error');
  assert.equal(await error.getAttribute('role'), 'alert', 'the error is an alert');
  assert.equal(await text(error), 'Het wachtwoord is te kort: gebruik minstens 12 tekens.');
  const refusedPassword = page.locator('#new-password');
  assert.equal(await refusedPassword.getAttribute('aria-invalid'), 'true', 'the password field is marked invalid');
  const describedBy = ((await refusedPassword.getAttribute('aria-describedby')) ?? '').split(/\s+/);
  assert.ok(describedBy.includes('users-error'), `the password field points at the error: ${describedBy.join(' ')}`);
  assert.ok(describedBy.includes('new-password-hint'), 'and still at its hint');
  assert.equal(await refusedPassword.inputValue(), '', 'the password is never sent back');
  assert.equal(await page.locator('#new-username').getAttribute('aria-invalid'), null, 'the username is not marked');
  // The rest of the form keeps what was typed.
  assert.equal(await page.getByLabel('Gebruikersnaam', { exact: true }).inputValue(), nina.username);
  assert.equal(await page.getByLabel('Volledige naam', { exact: true }).inputValue(), nina.displayName);
  assert.equal(await page.getByLabel('Rol', { exact: true }).inputValue(), 'coach');
  await shot(page, 'management-users-weak-password');
  await assertAccessible(page, 'the users page with the password error');

  // Now with a good password.
  await fillForm(nina.password);
  const [created] = await Promise.all([
    page.waitForResponse((r) => new URL(r.url()).pathname === '/users' && r.request().method() === 'POST'),
    page.locator('form#new-user').getByRole('button', { name: 'Gebruiker aanmaken', exact: true }).click(),
  ]);
  await page.waitForLoadState('load');
  assert.equal(created.status(), 201);
  assert.match(created.headers()['cache-control'] ?? '', /no-store/, 'the page with the secret is not stored');
  assert.equal(await text(page.locator('h1')), 'Gebruiker aangemaakt');
  assert.match(await text(page.locator('.message.notice[role="status"]')), /^Nina de Wit kan zich aanmelden/);
  assert.equal(await text(page.locator('#created-username')), nina.username);
  const secret = await text(page.locator('#totp-secret'));
  assert.match(secret, /^[A-Z2-7]{16,}=*$/, `a base32 secret: ${secret}`);
  const url = await text(page.locator('#otpauth-url'));
  assert.match(url, /^otpauth:\/\/totp\//, url);
  assert.ok(url.includes(`secret=${secret.replace(/=+$/, '')}`), `the otpauth link carries the same secret: ${url}`);
  await shot(page, 'management-user-created');
  await assertAccessible(page, 'the user-created page');

  // The new user signs in with that secret, in a browser of their own.
  const n = await newPage(browser);
  await signIn(n.page, srv, { ...nina, secret });
  assert.equal(await text(n.page.locator('h1')), 'Mijn cliënten');
  assert.equal(await menu(n.page).getByRole('link', { name: 'Gebruikers', exact: true }).count(), 0, 'a coach has no user pages');
  await shot(n.page, 'management-new-coach-signed-in');

  // Back to the users: the new user is listed as active; deactivate.
  await Promise.all([
    page.waitForURL((u) => u.pathname === '/users'),
    page.getByRole('link', { name: 'Terug naar de gebruikers', exact: true }).click(),
  ]);
  const row = page.locator('#users tbody tr').filter({ hasText: nina.username });
  assert.equal(await row.count(), 1, 'one row for the new user');
  assert.equal(await text(row.locator('th')), nina.displayName);
  const cells = await row.locator('td').allTextContents();
  assert.deepEqual(cells.slice(0, 3).map((c) => c.trim()), [nina.username, 'coach', 'ja'], 'username, role, active');
  const rowId = await row.getAttribute('id');
  assert.match(rowId, /^user-[0-9a-f-]{36}$/);
  const deactivate = row.getByRole('button', { name: /^Deactiveren\b/ });
  assert.equal(await text(deactivate), `Deactiveren: ${nina.displayName}`, 'the button names the user');
  await Promise.all([
    page.waitForURL((u) => u.pathname === '/users' && u.searchParams.get('n') === 'updated'),
    deactivate.click(),
  ]);
  assert.equal(new URL(page.url()).hash, `#${rowId}`, 'back at the row');
  assert.equal(await text(page.locator('.message.notice[role="status"]')), 'De gebruiker is gewijzigd.');
  const deactivatedRow = page.locator(`#${rowId}`);
  assert.equal((await deactivatedRow.locator('td').nth(2).textContent()).trim(), 'nee', 'no longer active');
  assert.equal(await deactivatedRow.getByRole('button', { name: /^Activeren\b/ }).count(), 1, 'can be activated again');
  assert.equal(await deactivatedRow.getByRole('button', { name: /^Deactiveren\b/ }).count(), 0);
  await shot(page, 'management-user-deactivated');

  // The deactivated user's next page load goes to the sign-in page.
  await n.page.goto(`${srv.base}/`);
  const landed = new URL(n.page.url());
  assert.equal(landed.pathname, '/login', 'the session ended with the deactivation');
  assert.equal(landed.searchParams.get('n'), 'expired');
  assert.match(
    await text(n.page.locator('.message.notice[role="status"]')),
    /^Uw sessie is beëindigd/,
    'the sign-in page says the session expired',
  );
  await shot(n.page, 'management-deactivated-user-signed-out');

  assert.deepEqual(t.problems(), [], 'no CSP violation, page error or failed resource (manager)');
  assert.deepEqual(n.problems(), [], 'no CSP violation, page error or failed resource (new user)');
  await n.context.close();
  await t.context.close();
});

test('a substitution gives the substitute the absent coach\'s clients', { timeout: TIMEOUT }, async () => {
  const boss = await createUser(srv, manager, 'directie.sem', 'management', 'Sem Directie');
  const absent = await createUser(srv, manager, 'coach.bas', 'coach', 'Bas Afwezig');
  const substitute = await createUser(srv, manager, 'coach.vera', 'coach', 'Vera Vervanger');
  const client = await createClient(srv, manager, { first_name: 'Lotte', initials: 'L.', last_name: 'Smit' });
  await assignCoach(srv, manager, client.id, absent);

  const t = await newPage(browser);
  const { page } = t;
  await signIn(page, srv, boss);
  await openFromMenu(page, 'Vervangingen', '/substitutions');
  assert.equal(await text(page.locator('h1')), 'Vervangingen');

  const form = page.locator('form#new-substitution');
  const today = isoDay(new Date());
  const later = addDays(today, 7);
  assert.equal(await form.getByLabel('Vanaf', { exact: true }).inputValue(), today, 'from is today by default');
  await form.getByLabel('Afwezige coach', { exact: true }).selectOption({ label: 'Bas Afwezig (coach.bas)' });
  await form.getByLabel('Vervanger', { exact: true }).selectOption({ label: 'Vera Vervanger (coach.vera)' });
  await form.getByLabel('Tot en met', { exact: true }).fill(later);
  await form.getByLabel('Reden', { exact: true }).selectOption({ label: 'Ziekte' });
  await assertAccessible(page, 'the substitutions page with the form filled in');
  await Promise.all([
    page.waitForURL((u) => u.pathname === '/substitutions' && u.searchParams.get('n') === 'created'),
    form.getByRole('button', { name: 'Vervanging vastleggen', exact: true }).click(),
  ]);
  assert.equal(await text(page.locator('.message.notice[role="status"]')), 'De vervanging is vastgelegd.');
  const row = page.locator('#substitutions tbody tr').filter({ hasText: 'Bas Afwezig' });
  assert.equal(await row.count(), 1, 'one row for the substitution');
  assert.equal(await text(row.locator('th')), 'Bas Afwezig');
  const cells = (await row.locator('td').allTextContents()).map((c) => c.replace(/\s+/g, ' ').trim());
  assert.deepEqual(
    cells.slice(0, 3),
    ['Vera Vervanger', `${shownDate(today)} – ${shownDate(later)}`, 'Ziekte'],
    'substitute, period (both days included), reason',
  );
  await shot(page, 'management-substitution');
  await assertAccessible(page, 'the substitutions page with a substitution');

  // The substitute sees the client, marked as a colleague's.
  const v = await newPage(browser);
  await signIn(v.page, srv, substitute);
  assert.equal(await text(v.page.locator('h1')), 'Mijn cliënten');
  const link = v.page.locator('table').getByRole('link', { name: 'Smit, L.', exact: true });
  assert.equal(await link.count(), 1, 'the absent coach\'s client in the substitute\'s caseload');
  assert.equal(await link.getAttribute('href'), `/clients/${client.id}`);
  const clientRow = v.page.locator('table tbody tr').filter({
    has: v.page.getByRole('link', { name: 'Smit, L.', exact: true }),
  });
  assert.match(await text(clientRow), /Vervanging van een collega/, 'marked as a substitution');
  await shot(v.page, 'management-substitute-caseload');

  // The manager ends it; the substitute no longer sees the client.
  const end = row.getByRole('button', { name: /^Beëindigen\b/ });
  assert.equal(await text(end), 'Beëindigen: Bas Afwezig – Vera Vervanger', 'the button names the substitution');
  await Promise.all([
    page.waitForURL((u) => u.pathname === '/substitutions' && u.searchParams.get('n') === 'ended'),
    end.click(),
  ]);
  assert.equal(await text(page.locator('.message.notice[role="status"]')), 'De vervanging is beëindigd.');
  assert.equal(
    await page.locator('#substitutions tbody tr').filter({ hasText: 'Bas Afwezig' }).count(),
    0,
    'the ended substitution is no longer listed',
  );
  await shot(page, 'management-substitution-ended');

  await v.page.reload();
  assert.equal(await text(v.page.locator('h1')), 'Mijn cliënten');
  assert.equal(
    await v.page.locator(`main a[href="/clients/${client.id}"]`).count(),
    0,
    'the client left the substitute\'s caseload',
  );
  const direct = await v.page.goto(`${srv.base}/clients/${client.id}`);
  // Outside the caller's scope is answered like an unknown id (404).
  assert.equal(direct.status(), 404, 'the client\'s page is closed to the former substitute');

  assert.deepEqual(t.problems(), [], 'no CSP violation, page error or failed resource (manager)');
  assert.deepEqual(v.problems(), [], 'no CSP violation, page error or failed resource (substitute)');
  await v.context.close();
  await t.context.close();
});

test('the destruction list, the audit log with its verification, and the breach register', { timeout: TIMEOUT }, async () => {
  const boss = await createUser(srv, manager, 'directie.ilse', 'management', 'Ilse Directie');
  const client = await createClient(srv, manager, { first_name: 'Femke', initials: 'F.', last_name: 'Mulder' });
  const doc = await uploadDocument(srv, manager, client.id, {
    type: 'intake',
    title: 'Intake Mulder',
    name: 'intake-mulder.pdf',
    bytes: pdfBytes('Intake van Femke Mulder'),
    mime: 'application/pdf',
  });
  const until = addDays(new Date().toISOString().slice(0, 10), 10);
  const reason = 'Afspraak met de opdrachtgever';
  await apiOk(srv, manager, 'PUT', `/api/v1/documents/${doc.id}/retention`, { until, reason });

  const t = await newPage(browser);
  const { page } = t;
  await signIn(page, srv, boss);

  // The destruction list: the document with its manual date and reason.
  await openFromMenu(page, 'Vernietigingslijst', '/retention');
  assert.equal(await text(page.locator('h1')), 'Vernietigingslijst');
  const beforeDate = await page.getByLabel('Te vernietigen vóór', { exact: true }).inputValue();
  assert.equal(beforeDate, isoDay(new Date(Date.now() + 30 * 86_400_000)), 'the next 30 days by default');
  const link = page.locator('#due').getByRole('link', { name: 'Intake Mulder', exact: true });
  assert.equal(await link.count(), 1, 'the document on the list');
  assert.equal(await link.getAttribute('href'), `/clients/${client.id}#doc-${doc.id}`);
  const dueRow = page.locator('#due tbody tr').filter({
    has: page.getByRole('link', { name: 'Intake Mulder', exact: true }),
  });
  const [date, type, source] = (await dueRow.locator('td').allTextContents()).map((c) => c.trim());
  assert.equal(date, shownDate(until), 'the manual date');
  assert.equal(type, 'Intakeformulier');
  assert.equal(source, `Handmatig: ${reason}`);
  await shot(page, 'management-retention');
  await assertAccessible(page, 'the destruction list');

  // The audit log, then the verification of its chain.
  await openFromMenu(page, 'Logboek', '/audit');
  assert.equal(await text(page.locator('h1')), 'Logboek');
  const events = page.locator('#events tbody tr');
  assert.ok((await events.count()) > 0, 'the log shows events');
  const whats = await page.locator('#events tbody th').allTextContents();
  assert.ok(whats.some((w) => w.trim() === 'Bewaartermijn gewijzigd'), `the retention change is logged: ${whats.join(', ')}`);
  const seqs = await page.locator('#events tbody td.num').evaluateAll((tds) => tds.map((td) => Number(td.textContent)));
  assert.deepEqual(seqs, [...seqs].sort((a, b) => b - a), 'newest first');
  assert.equal(await page.locator('#verdict').count(), 0, 'no verdict before verifying');
  await shot(page, 'management-audit');
  await assertAccessible(page, 'the audit log');

  // Filtered by action.
  await page.getByLabel('Handeling', { exact: true }).fill('document.retention');
  await Promise.all([
    page.waitForURL((u) => u.pathname === '/audit' && u.searchParams.get('action') === 'document.retention'),
    page.getByRole('button', { name: 'Tonen', exact: true }).click(),
  ]);
  const filtered = (await page.locator('#events tbody th').allTextContents()).map((w) => w.trim());
  assert.ok(filtered.length >= 1, 'the filter finds the retention change');
  assert.deepEqual([...new Set(filtered)], ['Bewaartermijn gewijzigd'], 'only that action');
  const retentionRow = page.locator('#events tbody tr').first();
  assert.equal((await retentionRow.locator('td').nth(4).textContent()).trim(), 'toegestaan');
  assert.equal(
    await retentionRow.getByRole('link', { name: 'Cliënt', exact: true }).getAttribute('href'),
    `/clients/${client.id}`,
    'the event links to its client',
  );

  await Promise.all([
    page.waitForURL((u) => u.pathname === '/audit/verify'),
    page.getByRole('button', { name: 'Keten controleren', exact: true }).click(),
  ]);
  const verdict = page.locator('#verdict');
  assert.equal(await verdict.getAttribute('role'), 'status');
  assert.match(await text(verdict), /^De keten is in orde: [\d.]+ gebeurtenissen, kop \S+\.$/);
  assert.ok((await page.locator('#events tbody tr').count()) > 0, 'the log under the verdict');
  await shot(page, 'management-audit-verified');
  await assertAccessible(page, 'the audit log with the verdict');

  // The breach register: register one through the form.
  await openFromMenu(page, 'Datalekken', '/breaches');
  assert.equal(await text(page.locator('h1')), 'Register van datalekken');
  const form = page.locator('form#new-breach');
  const detected = await form.getByLabel('Ontdekt op (datum en tijd)', { exact: true }).inputValue();
  assert.match(detected, /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}$/, `prefilled with the time: ${detected}`);
  const minutesOff = Math.abs(Date.parse(`${detected}:00Z`) - Date.parse(`${isoMinute(new Date())}:00Z`)) / 60_000;
  assert.ok(minutesOff <= 2, `prefilled with now on the agency's clock: ${detected} vs ${isoMinute(new Date())}`);
  const nature = 'Laptop van een coach gestolen uit de auto';
  await form.getByLabel('Wat is er gebeurd?', { exact: true }).fill(nature);
  await form.getByLabel('Gezondheidsgegevens', { exact: true }).check();
  await form.getByLabel('Contactgegevens', { exact: true }).check();
  await form.getByLabel('Aantal betrokkenen (schatting)', { exact: true }).fill('12');
  await form.getByLabel('Aantal gegevens of documenten (schatting)', { exact: true }).fill('40');
  await form.getByLabel('Mogelijke gevolgen', { exact: true }).fill('Inzage in rapporten door onbevoegden');
  await form.getByLabel('Genomen en voorgenomen maatregelen', { exact: true }).fill('Sessies beëindigd, wachtwoord gewijzigd');
  await shot(page, 'management-breach-form');
  await assertAccessible(page, 'the breach register with the form filled in');
  await Promise.all([
    page.waitForURL((u) => u.pathname === '/breaches' && u.searchParams.get('n') === 'registered'),
    form.getByRole('button', { name: 'Datalek registreren', exact: true }).click(),
  ]);
  assert.match(await text(page.locator('.message.notice[role="status"]')), /^Het datalek is geregistreerd\./);
  const hash = new URL(page.url()).hash;
  assert.match(hash, /^#breach-[0-9a-f-]{36}$/, `back at the breach: ${page.url()}`);
  const id = hash.slice('#breach-'.length);
  const stored = await apiOk(srv, manager, 'GET', `/api/v1/breaches/${id}`);
  assert.deepEqual(stored.categories, ['contact', 'health'], JSON.stringify(stored));
  assert.equal(stored.data_subjects_estimate, 12);
  assert.equal(stored.records_estimate, 40);
  const detectedAt = new Date(stored.detected_at);
  const deadline = new Date(stored.notify_deadline);
  assert.equal(isoMinute(detectedAt), detected, 'detected at the time in the form, on the agency\'s clock');
  assert.equal(deadline - detectedAt, 72 * 3_600_000, 'the deadline is 72 hours after detection');

  const row = page.locator(`#breach-${id}`);
  assert.equal(await text(row.locator('th')), nature);
  const cells = row.locator('td');
  assert.equal(await text(cells.nth(0)), shownTime(detectedAt), 'when detected');
  assert.equal(await text(cells.nth(1)), shownTime(deadline), 'the deadline');
  assert.match(await text(cells.nth(2)), /^Nog te beslissen/, 'not notified yet');
  await shot(page, 'management-breach-registered');
  await assertAccessible(page, 'the breach register with a breach');

  // Record the notification to the authority in the row's details.
  const details = row.locator('details');
  assert.equal(await details.evaluate((d) => d.open), false, 'closed at first');
  await details.locator('summary').filter({ hasText: 'Melding aan de AP vastleggen' }).click();
  assert.equal(await details.evaluate((d) => d.open), true, 'the summary opens the details');
  const notifiedAt = isoMinute(new Date());
  await details.getByLabel('Gemeld op', { exact: true }).fill(notifiedAt);
  await shot(page, 'management-breach-notify-open');
  await assertAccessible(page, 'the breach register with the notification form open');
  await Promise.all([
    page.waitForURL((u) => u.pathname === '/breaches' && u.searchParams.get('n') === 'updated'),
    details.getByRole('button', { name: 'Vastleggen', exact: true }).click(),
  ]);
  assert.equal(new URL(page.url()).hash, `#breach-${id}`, 'back at the breach');
  assert.equal(await text(page.locator('.message.notice[role="status"]')), 'Het datalek is bijgewerkt.');
  const [y, m, d] = notifiedAt.slice(0, 10).split('-');
  const notifiedText = `Gemeld op ${Number(d)}-${Number(m)}-${y} ${notifiedAt.slice(11)}`;
  const notifiedRow = page.locator(`#breach-${id}`);
  assert.equal(await text(notifiedRow.locator('td').nth(2)), notifiedText);
  assert.equal(await notifiedRow.locator('details').count(), 0, 'nothing left to record');
  const updated = await apiOk(srv, manager, 'GET', `/api/v1/breaches/${id}`);
  assert.equal(isoMinute(new Date(updated.authority_notified_at)), notifiedAt, JSON.stringify(updated));
  await shot(page, 'management-breach-notified');
  await assertAccessible(page, 'the breach register with a notified breach');

  assert.deepEqual(t.problems(), [], 'no CSP violation, page error or failed resource');
  await t.context.close();
});

test('office sees no audit log or breach register', { timeout: TIMEOUT }, async () => {
  const office = await createUser(srv, manager, 'office.otto', 'office', 'Otto Office');
  const t = await newPage(browser);
  const { page } = t;
  await signIn(page, srv, office);

  const links = (await menu(page).getByRole('link').allTextContents()).map((l) => l.trim());
  for (const name of ['Gebruikers', 'Vervangingen', 'Vernietigingslijst']) {
    assert.ok(links.includes(name), `"${name}" in the office's menu: ${links.join(', ')}`);
  }
  for (const name of ['Logboek', 'Datalekken']) {
    assert.ok(!links.includes(name), `no "${name}" in the office's menu: ${links.join(', ')}`);
  }
  await shot(page, 'office-menu');

  // The pages of the menu open.
  for (const [name, path, heading] of [
    ['Gebruikers', '/users', 'Gebruikers'],
    ['Vervangingen', '/substitutions', 'Vervangingen'],
    ['Vernietigingslijst', '/retention', 'Vernietigingslijst'],
  ]) {
    await openFromMenu(page, name, path);
    assert.equal(await text(page.locator('h1')), heading);
  }

  // The others answer 403, with a page saying so.
  for (const path of ['/audit', '/audit/verify', '/breaches']) {
    const res = await page.goto(`${srv.base}${path}`);
    assert.equal(res.status(), 403, `GET ${path}`);
    assert.equal(await text(page.locator('h1')), 'Er ging iets mis', `the heading of the 403 page of ${path}`);
    assert.equal(await text(page.locator('[role="alert"]')), 'U heeft geen toegang tot deze pagina.');
  }
  await shot(page, 'office-breaches-forbidden');
  await assertAccessible(page, 'the 403 page');

  assert.deepEqual(t.problems(), [], 'no CSP violation, page error or failed resource');
  await t.context.close();
});
