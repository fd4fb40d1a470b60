// The public pages (no session): the accessibility statement, reached from
// the footer of the sign-in page, in Dutch and English; unknown pages.

import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';

import { CSP, assertAccessible, launch, newPage, shot, startKluis } from './harness.mjs';

let srv;
let browser;

before(async () => {
  srv = await startKluis();
  browser = await launch();
});

after(async () => {
  await browser?.close();
  await srv?.stop();
});

test('the accessibility statement is one link away from the sign-in page', async () => {
  const t = await newPage(browser);
  const { page } = t;
  await page.goto(`${srv.base}/login`);
  const link = page.locator('footer').getByRole('link', { name: 'Toegankelijkheid', exact: true });
  assert.equal(await link.count(), 1, 'a link in the footer');
  const [res] = await Promise.all([page.waitForResponse((r) => r.url().endsWith('/toegankelijkheid')), link.click()]);
  assert.equal(res.status(), 200);
  assert.equal(res.headers()['content-security-policy'], CSP);
  assert.equal((await page.locator('h1').textContent()).trim(), 'Toegankelijkheidsverklaring');
  assert.match(await page.locator('main').textContent(), /WCAG 2\.1/);
  await shot(page, 'accessibility-statement');
  await assertAccessible(page, 'the accessibility statement');

  // In English.
  await page.getByRole('button', { name: 'English', exact: true }).click();
  await page.waitForURL((u) => u.pathname === '/toegankelijkheid');
  assert.equal((await page.locator('h1').textContent()).trim(), 'Accessibility statement');
  await assertAccessible(page, 'the accessibility statement in English');
  assert.deepEqual(t.problems(), [], 'no CSP violation, page error or failed resource');
  await t.context.close();
});

test('an unknown page says so, in a page of its own', async () => {
  const t = await newPage(browser);
  const { page } = t;
  const res = await page.goto(`${srv.base}/bestaat-niet`);
  assert.equal(res.status(), 404);
  assert.equal(res.headers()['content-security-policy'], CSP);
  assert.match(await page.locator('[role="alert"]').textContent(), /bestaat niet/);
  await assertAccessible(page, 'the 404 page');
  assert.deepEqual(t.problems(), [], 'no CSP violation, page error or failed resource');
  await t.context.close();
});
