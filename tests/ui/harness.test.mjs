// The harness itself, without the kluis server: the TOTP function against
// RFC 6238, the test PDF, and the browser side (Chromium starts, the CSP
// collector sees a violation, axe sees a WCAG failure), against a tiny page
// served from Node with the same CSP as the real pages.

import assert from 'node:assert/strict';
import http from 'node:http';
import { after, before, test } from 'node:test';

import { CSP, axeCheck, base32Decode, launch, newPage, pdfBytes, totp } from './harness.mjs';

// RFC 6238 appendix B, SHA-1: the secret is the ASCII "12345678901234567890".
const RFC_SECRET = 'GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ';
const RFC_VECTORS = [
  [59, '94287082'],
  [1111111109, '07081804'],
  [1111111111, '14050471'],
  [1234567890, '89005924'],
  [2000000000, '69279037'],
  [20000000000, '65353130'],
];

test('base32 decodes the RFC 6238 secret', () => {
  assert.equal(base32Decode(RFC_SECRET).toString('ascii'), '12345678901234567890');
  assert.equal(base32Decode('gezd gnbv-gy3t qojq====').toString('ascii'), '1234567890');
});

test('totp matches the RFC 6238 SHA-1 test vectors', () => {
  for (const [seconds, code] of RFC_VECTORS) {
    assert.equal(totp(RFC_SECRET, seconds * 1000, 8), code, `8 digits at T=${seconds}`);
    assert.equal(totp(RFC_SECRET, seconds * 1000), code.slice(2), `6 digits at T=${seconds}`);
  }
  assert.equal(totp(RFC_SECRET, 59_000), '287082');
});

test('the test PDF has the head and tail the upload check expects', () => {
  const pdf = pdfBytes('Werkplan (deel 1)');
  assert.equal(pdf.subarray(0, 9).toString('latin1'), '%PDF-1.4\n');
  assert.equal(pdf.subarray(-6).toString('latin1'), '%%EOF\n');
  assert.notDeepEqual(pdfBytes('a'), pdfBytes('b'));
});

// Pages served with the real CSP: a clean one (first-party script and
// style), one with inline script and style (CSP violations), and one with
// an unlabelled input (an axe violation).
const PAGES = {
  '/clean': '<!doctype html><html lang="nl"><head><title>Schoon</title><link rel="stylesheet" href="/s.css">' +
    '<script src="/s.js"></script></head><body><main><h1>Schoon</h1></main></body></html>',
  '/inline': '<!doctype html><html lang="nl"><head><title>Inline</title><script>document.title = "x"</script>' +
    '<style>h1 { color: red }</style></head><body><main><h1>Inline</h1></main></body></html>',
  '/unlabelled': '<!doctype html><html lang="nl"><head><title>Zonder label</title></head>' +
    '<body><main><h1>Zonder label</h1><input type="text" name="x"></main></body></html>',
  '/s.css': 'h1 { color: #222 }',
  '/s.js': 'document.documentElement.dataset.ran = "yes";',
};

let server;
let base;
let browser;

before(async () => {
  server = http.createServer((req, res) => {
    const body = PAGES[req.url];
    if (body === undefined) {
      res.writeHead(404).end();
      return;
    }
    const type = req.url.endsWith('.css') ? 'text/css' : req.url.endsWith('.js') ? 'text/javascript' : 'text/html';
    res.writeHead(200, { 'Content-Type': `${type}; charset=utf-8`, 'Content-Security-Policy': CSP });
    res.end(body);
  });
  await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
  base = `http://127.0.0.1:${server.address().port}`;
  browser = await launch();
});

after(async () => {
  await browser?.close();
  await new Promise((resolve) => server?.close(resolve));
});

test('Chromium renders a data: URL', async () => {
  const { context, page } = await newPage(browser);
  await page.goto('data:text/html,<title>t</title><h1>Hallo Kluis</h1>');
  assert.equal(await page.locator('h1').textContent(), 'Hallo Kluis');
  await context.close();
});

test('a clean page under the CSP shows no problem and runs its script', async () => {
  const t = await newPage(browser);
  await t.page.goto(`${base}/clean`);
  assert.equal(await t.page.locator('html').getAttribute('data-ran'), 'yes');
  assert.deepEqual(t.problems(), []);
  assert.deepEqual(await axeCheck(t.page), []);
  await t.context.close();
});

test('inline script and style are caught as CSP violations', async () => {
  const t = await newPage(browser);
  await t.page.goto(`${base}/inline`);
  assert.equal(await t.page.title(), 'Inline', 'the inline script must not have run');
  const csp = t.cspViolations();
  assert.ok(csp.some((m) => m.includes('script-src')), `a script-src violation in ${JSON.stringify(t.messages)}`);
  assert.ok(csp.some((m) => m.includes('style-src')), `a style-src violation in ${JSON.stringify(t.messages)}`);
  await t.context.close();
});

test('axe reports an unlabelled input', async () => {
  const t = await newPage(browser);
  await t.page.goto(`${base}/unlabelled`);
  const ids = (await axeCheck(t.page)).map((v) => v.id);
  assert.ok(ids.includes('label'), `axe found ${ids.join(', ')}`);
  await t.context.close();
});
