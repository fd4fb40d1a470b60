// Helpers of the browser tests: a real `kluis serve` on a free port with an
// embedded vault (SQLite and local files) in a temporary directory, users made
// with `kluis user add`, TOTP codes, the JSON API for setting up data, and a
// headless Chromium (Debian's /usr/bin/chromium, driven by playwright-core)
// with console, page-error and CSP-violation collection, axe checks and
// screenshots.
//
// Run the suite with scripts/ui-test (it installs and builds what is needed).

import { spawn } from 'node:child_process';
import { createHmac } from 'node:crypto';
import { constants } from 'node:fs';
import { access, mkdtemp, mkdir, open, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import readline from 'node:readline';
import { setTimeout as sleep } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';

import AxeBuilder from '@axe-core/playwright';
import { chromium } from 'playwright-core';

export const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
export const ARTIFACTS = path.join(ROOT, 'target', 'ui-artifacts');
export const KLUIS_BIN = process.env.KLUIS_BIN
  ? path.resolve(process.env.KLUIS_BIN)
  : path.join(ROOT, 'target', 'debug', 'kluis');
export const CHROMIUM = process.env.KLUIS_UI_CHROMIUM || '/usr/bin/chromium';

/** The Content-Security-Policy every page sends (the page contract). */
export const CSP =
  "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; connect-src 'self'; " +
  "form-action 'self'; frame-ancestors 'none'; base-uri 'none'";

/** The accessibility standard the pages are held to. */
export const AXE_TAGS = ['wcag2a', 'wcag2aa', 'wcag21a', 'wcag21aa'];

// ---------------------------------------------------------------------------
// The server

const running = new Set();
// A test that fails before its `after` hook still leaves no server behind.
process.on('exit', () => {
  for (const child of running) child.kill('SIGKILL');
});

/** The parent's environment without any KLUIS_* variable, plus the data dir. */
function kluisEnv(dir) {
  const env = {};
  for (const [k, v] of Object.entries(process.env)) {
    if (!k.startsWith('KLUIS_')) env[k] = v;
  }
  env.KLUIS_DATA_DIR = path.join(dir, 'data');
  return env;
}

/**
 * Start `kluis serve --listen 127.0.0.1:0` on a fresh temporary data dir.
 * Resolves to { base, dir, log, stop() } once the server printed its address.
 */
export async function startKluis() {
  await access(KLUIS_BIN, constants.X_OK).catch(() => {
    throw new Error(`no kluis binary at ${KLUIS_BIN}: run scripts/ui-test, or cargo build --bin kluis, or set KLUIS_BIN`);
  });
  const dir = await mkdtemp(path.join(tmpdir(), 'kluis-ui-'));
  await mkdir(path.join(dir, 'data'), { recursive: true });
  const log = path.join(dir, 'server.log');
  const logFile = await open(log, 'w');
  const child = spawn(KLUIS_BIN, ['serve', '--listen', '127.0.0.1:0'], {
    cwd: dir,
    env: kluisEnv(dir),
    stdio: ['ignore', 'pipe', logFile.fd],
  });
  // Every listener before the next await: the child's events may come at once.
  const spawnError = new Promise((_, reject) => child.once('error', reject));
  const exited = new Promise((resolve) => child.once('exit', (code, signal) => resolve({ code, signal })));
  exited.then(() => running.delete(child));
  running.add(child);
  const lines = readline.createInterface({ input: child.stdout });
  const firstLine = new Promise((resolve) => lines.once('line', resolve));
  // Keep draining stdout so the server never blocks writing to it.
  lines.on('line', () => {});
  await logFile.close(); // the child holds its own copy of the descriptor

  const outcome = await Promise.race([
    firstLine.then((line) => ({ line })),
    exited.then((status) => ({ status })),
    spawnError,
    sleep(60_000, null, { ref: false }).then(() => ({ timeout: true })),
  ]).catch((e) => ({ error: e }));

  const prefix = 'kluis listening on ';
  if (!outcome.line?.startsWith(prefix)) {
    child.kill('SIGKILL');
    const text = await readFile(log, 'utf8').catch(() => '');
    throw new Error(
      `kluis serve (${KLUIS_BIN}) did not start: ${JSON.stringify(outcome, errorReplacer)}\n` +
        `--- ${log} ---\n${text}`,
    );
  }
  const base = outcome.line.slice(prefix.length).trim();

  const srv = {
    base,
    dir,
    log,
    env: kluisEnv(dir),
    // KLUIS_UI_KEEP=1 keeps the directory (data and server.log) to look into.
    async stop({ keep = process.env.KLUIS_UI_KEEP === '1' } = {}) {
      if (child.exitCode === null && child.signalCode === null) {
        child.kill('SIGTERM');
        const done = await Promise.race([exited, sleep(10_000, null, { ref: false })]);
        if (!done) {
          child.kill('SIGKILL');
          await exited;
        }
      }
      if (!keep) await rm(dir, { recursive: true, force: true });
    },
  };
  return srv;
}

function errorReplacer(key, value) {
  return value instanceof Error ? String(value) : value;
}

/** Run `kluis ARGS` with the server's environment; resolves to { code, stdout, stderr }. */
export function runKluis(srv, args, input = '') {
  return new Promise((resolve, reject) => {
    const child = spawn(KLUIS_BIN, args, { cwd: srv.dir, env: srv.env, stdio: ['pipe', 'pipe', 'pipe'] });
    const out = [];
    const err = [];
    child.stdout.on('data', (b) => out.push(b));
    child.stderr.on('data', (b) => err.push(b));
    child.once('error', reject);
    const timer = setTimeout(() => child.kill('SIGKILL'), 120_000);
    child.once('close', (code, signal) => {
      clearTimeout(timer);
      resolve({
        code: code ?? signal,
        stdout: Buffer.concat(out).toString('utf8'),
        stderr: Buffer.concat(err).toString('utf8'),
      });
    });
    child.stdin.end(input);
  });
}

/** A password of at least 12 characters for USERNAME. */
export function passwordFor(username) {
  return `${username}-geheim-wachtwoord-42`;
}

/**
 * Create a user with `kluis user add` (role: management, office,
 * administration, coach, freelance_coach). Resolves to
 * { id, username, password, secret, role, displayName }.
 */
export async function addUser(srv, username, role, displayName = `Test ${role} ${username}`) {
  const password = passwordFor(username);
  const args = ['user', 'add', '--username', username, '--role', role, '--display-name', displayName];
  const r = await runKluis(srv, args, `${password}\n`);
  if (r.code !== 0) {
    throw new Error(`kluis ${args.join(' ')} exited ${r.code}:\n${r.stderr}${r.stdout}`);
  }
  const v = JSON.parse(r.stdout);
  if (!v.id || !v.totp_secret) throw new Error(`kluis user add answered without id or totp_secret: ${r.stdout}`);
  return { id: v.id, username, password, secret: v.totp_secret, role, displayName };
}

/**
 * Create a user over the API as the holder of TOKEN (management). Resolves to
 * the same shape as addUser.
 */
export async function createUser(srv, token, username, role, displayName = `Test ${role} ${username}`) {
  const password = passwordFor(username);
  const body = { username, role, display_name: displayName, password };
  const v = await apiOk(srv, token, 'POST', '/api/v1/users', body, 201);
  return { id: v.id, username, password, secret: v.totp_secret, role, displayName };
}

// ---------------------------------------------------------------------------
// TOTP (RFC 6238: HMAC-SHA-1, 30 s steps)

const BASE32 = 'ABCDEFGHIJKLMNOPQRSTUVWXYZ234567';

/** Decode RFC 4648 base32 (case-insensitive; padding, spaces and dashes ignored). */
export function base32Decode(text) {
  const clean = text.toUpperCase().replace(/[\s=-]/g, '');
  const out = [];
  let bits = 0;
  let value = 0;
  for (const ch of clean) {
    const i = BASE32.indexOf(ch);
    if (i < 0) throw new Error(`not base32: ${JSON.stringify(ch)}`);
    value = (value << 5) | i;
    bits += 5;
    if (bits >= 8) {
      bits -= 8;
      out.push((value >>> bits) & 0xff);
    }
  }
  return Buffer.from(out);
}

/** The HOTP value (RFC 4226) of KEY (bytes) at COUNTER, DIGITS long. */
export function hotp(key, counter, digits = 6) {
  const msg = Buffer.alloc(8);
  msg.writeBigUInt64BE(BigInt(counter));
  const mac = createHmac('sha1', key).update(msg).digest();
  const offset = mac[mac.length - 1] & 0x0f;
  const binary = mac.readUInt32BE(offset) & 0x7fffffff;
  return String(binary % 10 ** digits).padStart(digits, '0');
}

/** The TOTP code of a base32 SECRET at TIME (ms since the epoch). */
export function totp(secret, time = Date.now(), digits = 6) {
  return hotp(base32Decode(secret), Math.floor(time / 1000 / 30), digits);
}

// The server accepts each time step once per user: remember the last step
// used for each secret and wait for a new step when it was used already.
const lastStep = new Map();

/**
 * A TOTP code for SECRET that has not been used yet in this process, waiting
 * for the next 30 s step when needed. A step with under 3 s left is skipped
 * too, so that the code is still current when the server checks it.
 */
export async function freshCode(secret) {
  for (;;) {
    const now = Date.now();
    const step = Math.floor(now / 30_000);
    const left = (step + 1) * 30_000 - now;
    const last = lastStep.get(secret);
    if ((last === undefined || step > last) && left > 3_000) {
      lastStep.set(secret, step);
      return totp(secret, now);
    }
    await sleep(left + 250);
  }
}

// ---------------------------------------------------------------------------
// The JSON API

/**
 * Call the API: PATH is the full path (/api/v1/...). BODY is sent as JSON, or
 * as is when it is FormData. Resolves to { status, body, headers }, with the
 * body parsed as JSON when it is JSON.
 */
export async function api(srv, token, method, urlPath, body) {
  const headers = {};
  if (token) headers.Authorization = `Bearer ${token}`;
  let payload;
  if (body instanceof FormData) {
    payload = body;
  } else if (body !== undefined) {
    headers['Content-Type'] = 'application/json';
    payload = JSON.stringify(body);
  }
  const res = await fetch(srv.base + urlPath, { method, headers, body: payload, redirect: 'manual' });
  const text = await res.text();
  let parsed = text;
  if ((res.headers.get('content-type') || '').includes('json') && text) {
    parsed = JSON.parse(text);
  }
  return { status: res.status, body: parsed, headers: res.headers };
}

/** api(), asserting the status; resolves to the body. */
export async function apiOk(srv, token, method, urlPath, body, expected = 200) {
  const r = await api(srv, token, method, urlPath, body);
  if (r.status !== expected) {
    throw new Error(`${method} ${urlPath}: expected ${expected}, got ${r.status}: ${JSON.stringify(r.body)}`);
  }
  return r.body;
}

/** Log USER in over the API; resolves to the bearer token. */
export async function apiLogin(srv, user) {
  const otp = await freshCode(user.secret);
  const v = await apiOk(srv, null, 'POST', '/api/v1/session', {
    username: user.username,
    password: user.password,
    otp,
  });
  return v.token;
}

/** Create a client (Jan Jansen by default); resolves to the client as answered. */
export function createClient(srv, token, fields = {}) {
  const body = {
    first_name: 'Jan',
    initials: 'J.',
    last_name: 'Jansen',
    birth_date: '1980-02-03',
    commissioner: 'uwv',
    ...fields,
  };
  return apiOk(srv, token, 'POST', '/api/v1/clients', body, 201);
}

/** Make COACH (a user) the coach of client CLIENT_ID. */
export function assignCoach(srv, token, clientId, coach) {
  return apiOk(srv, token, 'PUT', `/api/v1/clients/${clientId}/coach`, { coach_id: coach.id });
}

/** Upload a document over the API; resolves to the answer ({ id, ... }). */
export function uploadDocument(srv, token, clientId, { type, title, name, bytes, mime = 'application/octet-stream' }) {
  const form = new FormData();
  form.append('type', type);
  form.append('title', title ?? name);
  form.append('file', new Blob([bytes], { type: mime }), name); // the file goes last
  return apiOk(srv, token, 'POST', `/api/v1/clients/${clientId}/documents`, form, 201);
}

/** Close the client's trajectory. */
export function closeTrajectory(srv, token, clientId) {
  return apiOk(srv, token, 'POST', `/api/v1/clients/${clientId}/close`, {});
}

// ---------------------------------------------------------------------------
// Files to upload

/** A small valid one-page PDF carrying TEXT (unique per call when TEXT is). */
export function pdfBytes(text) {
  const safe = text.replace(/[\\()]/g, '');
  const stream = `BT /F1 18 Tf 72 720 Td (${safe}) Tj ET\n`;
  const objects = [
    '<< /Type /Catalog /Pages 2 0 R >>',
    '<< /Type /Pages /Kids [3 0 R] /Count 1 >>',
    '<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Contents 4 0 R ' +
      '/Resources << /Font << /F1 5 0 R >> >> >>',
    `<< /Length ${Buffer.byteLength(stream)} >>\nstream\n${stream}endstream`,
    '<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>',
  ];
  let out = '%PDF-1.4\n';
  const offsets = [];
  objects.forEach((body, i) => {
    offsets.push(Buffer.byteLength(out));
    out += `${i + 1} 0 obj\n${body}\nendobj\n`;
  });
  const xref = Buffer.byteLength(out);
  out += `xref\n0 ${objects.length + 1}\n0000000000 65535 f \n`;
  for (const o of offsets) out += `${String(o).padStart(10, '0')} 00000 n \n`;
  out += `trailer\n<< /Size ${objects.length + 1} /Root 1 0 R >>\nstartxref\n${xref}\n%%EOF\n`;
  return Buffer.from(out, 'latin1');
}

/** A Windows executable's head: refused by the content check (MZ). */
export function exeBytes() {
  return Buffer.concat([Buffer.from('MZ'), Buffer.alloc(62), Buffer.from('This program cannot be run in DOS mode.\r\n')]);
}

// ---------------------------------------------------------------------------
// The browser

/** Debian's Chromium, headless. Close it with browser.close(). */
export function launch() {
  return chromium.launch({
    executablePath: CHROMIUM,
    args: [
      '--headless',
      '--no-sandbox',
      '--disable-gpu',
      '--disable-quic',
      '--no-first-run',
      '--disable-background-networking',
      '--disable-component-update',
      '--disable-sync',
    ],
  });
}

// Runs in every page (injected over the DevTools protocol, so the page's CSP
// does not apply to it); the event is reported on the console, where the
// collector below finds it next to Chromium's own "Refused to ..." message.
const REPORT_CSP_VIOLATIONS = `
  document.addEventListener('securitypolicyviolation', (e) => {
    console.error('[csp-violation] ' + e.effectiveDirective + ' blocked ' + (e.blockedURI || 'inline') +
      ' at ' + e.sourceFile + ':' + e.lineNumber);
  });
`;

const CSP_MESSAGE = /\[csp-violation\]|Content Security Policy|Refused to (load|execute|apply|connect|frame|send form|evaluate|create)/i;

/**
 * A fresh context (as axe requires) and page. Resolves to
 * { context, page, messages, pageErrors, badResponses, cspViolations(), problems() }:
 * messages are the console messages ("type: text"), pageErrors the uncaught
 * exceptions, badResponses the failed first-party scripts, styles, images and
 * fonts; problems() lists all that a clean page must not have.
 */
export async function newPage(browser) {
  const context = await browser.newContext({ acceptDownloads: true, locale: 'nl-NL' });
  await context.addInitScript(REPORT_CSP_VIOLATIONS);
  const page = await context.newPage();
  const messages = [];
  const pageErrors = [];
  const badResponses = [];
  page.on('console', (m) => messages.push(`${m.type()}: ${m.text()}`));
  page.on('pageerror', (e) => pageErrors.push(String(e)));
  page.on('response', (r) => {
    const kind = r.request().resourceType();
    if (r.status() >= 400 && ['script', 'stylesheet', 'image', 'font'].includes(kind)) {
      badResponses.push(`${r.status()} ${kind} ${r.url()}`);
    }
  });
  page.on('requestfailed', (r) => {
    const kind = r.resourceType();
    if (['script', 'stylesheet', 'image', 'font'].includes(kind)) {
      badResponses.push(`failed ${kind} ${r.url()}: ${r.failure()?.errorText}`);
    }
  });
  const cspViolations = () => messages.filter((m) => CSP_MESSAGE.test(m));
  return {
    context,
    page,
    messages,
    pageErrors,
    badResponses,
    cspViolations,
    problems: () => [
      ...cspViolations().map((m) => `CSP: ${m}`),
      ...pageErrors.map((e) => `page error: ${e}`),
      ...badResponses.map((r) => `resource: ${r}`),
    ],
  };
}

/**
 * Sign USER in through the two pages (/login, then /login/code), waiting for
 * an unused TOTP step when needed. Throws with the page's alert text when the
 * server does not land on `/`.
 */
export async function signIn(page, srv, user) {
  await page.goto(`${srv.base}/login`);
  await page.getByLabel('Gebruikersnaam', { exact: true }).fill(user.username);
  await page.getByLabel('Wachtwoord', { exact: true }).fill(user.password);
  await Promise.all([
    page.waitForURL((u) => u.pathname === '/login/code'),
    page.getByRole('button', { name: 'Volgende', exact: true }).click(),
  ]);
  const otp = await freshCode(user.secret);
  await page.getByLabel('Code uit de authenticator-app', { exact: true }).fill(otp);
  await Promise.all([
    page.waitForURL((u) => u.pathname !== '/login/code'),
    page.getByRole('button', { name: 'Aanmelden', exact: true }).click(),
  ]);
  const where = new URL(page.url()).pathname;
  if (where !== '/') {
    const alert = await page.locator('[role="alert"]').allTextContents();
    throw new Error(`sign-in of ${user.username} ended on ${where}, not /: ${alert.join(' | ') || '(no alert)'}`);
  }
}

/** The axe violations of the page (WCAG 2.1 A and AA). */
export async function axeCheck(page) {
  const result = await new AxeBuilder({ page }).withTags(AXE_TAGS).analyze();
  return result.violations;
}

/** A readable list of axe violations: rule, impact, help, the elements. */
export function formatViolations(violations) {
  return violations
    .map((v) => {
      const nodes = v.nodes.map((n) => `    ${n.target.join(' ')}: ${n.failureSummary?.replace(/\s+/g, ' ')}`);
      return `  ${v.id} (${v.impact}): ${v.help}\n    ${v.helpUrl}\n${nodes.join('\n')}`;
    })
    .join('\n');
}

/** Throw unless axe finds nothing on the page; LABEL names the page. */
export async function assertAccessible(page, label) {
  const violations = await axeCheck(page);
  if (violations.length > 0) {
    throw new Error(`axe: ${violations.length} WCAG 2.1 A/AA violation(s) on ${label}:\n${formatViolations(violations)}`);
  }
}

/** A full-page screenshot in target/ui-artifacts/NAME.png; resolves to its path. */
export async function shot(page, name) {
  await mkdir(ARTIFACTS, { recursive: true });
  const file = path.join(ARTIFACTS, `${name}.png`);
  await page.screenshot({ path: file, fullPage: true });
  return file;
}

/** What the focused element is: { tag, id, text, name, type, focusVisible, ring }. */
export function focused(page) {
  return page.evaluate(() => {
    const el = document.activeElement;
    if (!el || el === document.body) return { tag: 'body' };
    const style = getComputedStyle(el);
    const outline = style.outlineStyle !== 'none' && parseFloat(style.outlineWidth) > 0;
    const shadow = style.boxShadow && style.boxShadow !== 'none';
    const box = el.getBoundingClientRect();
    return {
      tag: el.tagName.toLowerCase(),
      id: el.id,
      text: (el.textContent || '').trim(),
      name: el.getAttribute('name'),
      type: el.getAttribute('type'),
      href: el.getAttribute('href'),
      focusVisible: el.matches(':focus-visible'),
      ring: outline || shadow,
      visible: box.width > 1 && box.height > 1,
    };
  });
}

/**
 * Retry FN (sync or async) until it returns without throwing; resolves to its
 * value, or throws its last error after TIMEOUT ms. The tests wait on the page
 * this way, from Node, with assertions as the condition (playwright-core has
 * no `expect`).
 */
export async function eventually(fn, { timeout = 30_000, interval = 250 } = {}) {
  const end = Date.now() + timeout;
  for (;;) {
    try {
      return await fn();
    } catch (e) {
      if (Date.now() > end) throw e;
    }
    await sleep(interval);
  }
}
