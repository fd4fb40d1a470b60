// bench/ui.mjs: page loads of the web UI in a real browser (issue 12; see
// bench/ui and BENCHMARKS.md).
//
//   node bench/ui.mjs BASE SEEDED_JSON [OUT_JSONL]
//
// BASE is a running `kluis serve` (http://127.0.0.1:PORT) on the catalog
// that `search_bench --seed-only` seeded; SEEDED_JSON is that tool's
// "seeded" line (users, their TOTP secrets, the password, a client of
// coach0). Signs in an office user and a coach through the two sign-in
// pages in Debian's headless Chromium (tests/ui/harness.mjs), then per role
// and page, after BENCH_UI_WARMUP loads (default 5), BENCH_UI_RUNS (100)
// times, alternating:
//
// - browser: page.goto(url) until `load`, then the page's Navigation Timing
//   entry: responseStart (server time, network included: the first byte),
//   responseEnd (the HTML read), domContentLoadedEventEnd, and
//   loadEventEnd (= duration: the page with its CSS, icon and script);
// - baseline: the same GET with node's fetch and the same session cookie,
//   until the body's last byte (the raw server time, nothing rendered);
// - where the page has a JSON twin in the API (the searches) the same
//   request on /api/v1 with the session token as bearer: the vault's work
//   without the template.
//
// Then BENCH_UI_PROFILE (10) untimed loads more with the renderer's
// counters (style, layout, script, all main-thread tasks). Prints markdown
// tables on stdout, progress on stderr, one JSON object per measurement to
// OUT_JSONL when given.

import { appendFile, readFile } from 'node:fs/promises';
import os from 'node:os';
import { performance } from 'node:perf_hooks';
import { setTimeout as sleep } from 'node:timers/promises';

import { launch, newPage, signIn } from '../tests/ui/harness.mjs';

const [base, seededPath, outPath] = process.argv.slice(2);
if (!base || !seededPath) {
  console.error('usage: node bench/ui.mjs BASE SEEDED_JSON [OUT_JSONL]');
  process.exit(2);
}
const RUNS = Number(process.env.BENCH_UI_RUNS || 100);
const WARMUP = Number(process.env.BENCH_UI_WARMUP || 5);
const SEARCH_WORD = process.env.BENCH_UI_QUERY || 'rapportage';
const FILTER = process.env.BENCH_UI_FILTER || 'q=maart&status=active&type=progress_report';
const PROFILE = Number(process.env.BENCH_UI_PROFILE || 10);

const seeded = JSON.parse(await readFile(seededPath, 'utf8'));
const log = (...a) => console.error('[bench/ui]', ...a);
const out = async (v) => {
  if (outPath) await appendFile(outPath, JSON.stringify(v) + '\n');
};

/** Nearest-rank quantile Q (0 to 1) of SORTED, rounded to 0.1 ms. */
function pct(sorted, q) {
  if (sorted.length === 0) return NaN;
  return Math.round(sorted[Math.round((sorted.length - 1) * q)] * 10) / 10;
}
function stats(values) {
  const s = [...values].sort((a, b) => a - b);
  return { n: s.length, p50: pct(s, 0.5), p95: pct(s, 0.95), p99: pct(s, 0.99), max: pct(s, 1) };
}

/** One GET with fetch: { status, ms, ttfbMs, bytes }. */
async function timedFetch(url, headers) {
  const t0 = performance.now();
  const res = await fetch(url, { headers, redirect: 'manual' });
  const t1 = performance.now();
  const body = Buffer.from(await res.arrayBuffer());
  const t2 = performance.now();
  return { status: res.status, ms: t2 - t0, ttfbMs: t1 - t0, bytes: body.length, body };
}

/** One browser load: the navigation entry's times (ms from its start). */
async function browserLoad(page, url) {
  const res = await page.goto(url, { waitUntil: 'load', timeout: 120_000 });
  const status = res?.status();
  const where = new URL(page.url()).pathname;
  // loadEventEnd is set once the load handlers return: wait for it.
  const t = await page.evaluate(
    () =>
      new Promise((resolve) => {
        const poll = () => {
          const n = performance.getEntriesByType('navigation')[0];
          if (n && n.loadEventEnd > 0) {
            resolve({
              responseStart: n.responseStart - n.startTime,
              responseEnd: n.responseEnd - n.startTime,
              domContentLoaded: n.domContentLoadedEventEnd - n.startTime,
              load: n.loadEventEnd - n.startTime,
              duration: n.duration,
              transferSize: n.transferSize,
              decodedBodySize: n.decodedBodySize,
            });
          } else {
            setTimeout(poll, 1);
          }
        };
        poll();
      }),
  );
  return { status, where, ...t };
}

const users = Object.fromEntries(seeded.users.map((u) => [u.role, u]));
const client = seeded.client.id;
const pages = [
  { name: `search \`${SEARCH_WORD}\``, path: `/search?q=${encodeURIComponent(SEARCH_WORD)}`, api: `/api/v1/search?q=${encodeURIComponent(SEARCH_WORD)}&limit=20` },
  { name: `search \`${FILTER}\``, path: `/search?${FILTER}`, api: `/api/v1/search?${FILTER}&limit=20` },
  { name: 'client list `/`', path: '/', api: null },
  { name: `client page (${seeded.client.documents} documents)`, path: `/clients/${client}`, api: null },
];

/** Until the node's index answers (503 while it loads). */
async function waitReady(token) {
  for (;;) {
    const r = await fetch(`${base}/api/v1/search?q=x&limit=1`, { headers: { Authorization: `Bearer ${token}` } });
    await r.arrayBuffer();
    if (r.status === 200) return;
    if (r.status !== 503) throw new Error(`search answered ${r.status}`);
    await sleep(200);
  }
}

const machine = {
  at: new Date().toISOString(),
  cpus: os.cpus().length,
  cpu: os.cpus()[0]?.model,
  loadavg_start: os.loadavg().map((x) => Math.round(x * 100) / 100),
  node: process.version,
  runs: RUNS,
  warmup: WARMUP,
  documents: seeded.documents,
  clients: seeded.clients,
};
log(`machine: ${JSON.stringify(machine)}`);

const browser = await launch();
machine.chromium = browser.version();
const rows = [];
try {
  for (const role of ['office', 'coach']) {
    const u = users[role];
    const { context, page, problems } = await newPage(browser);
    const t0 = performance.now();
    await signIn(page, { base }, { username: u.username, password: seeded.password, secret: u.totp_secret });
    log(`${role} (${u.username}) signed in (${Math.round(performance.now() - t0)} ms, landing on /)`);
    const sid = (await context.cookies()).find((c) => c.name === '__Host-kluis_sid')?.value;
    if (!sid) throw new Error(`no session cookie after ${role}'s sign-in`);
    const cookie = { Cookie: `__Host-kluis_sid=${sid}` };
    const bearer = { Authorization: `Bearer ${sid}` };
    await waitReady(sid);

    for (const p of pages) {
      const url = base + p.path;
      const apiUrl = p.api && base + p.api;
      // What the page shows: its size, and how many rows it has.
      const first = await timedFetch(url, cookie);
      if (first.status !== 200) throw new Error(`GET ${p.path} as ${role}: ${first.status}`);
      const html = first.body.toString('utf8');
      // The rows of the page's first table (hits, clients, documents).
      const body = html.match(/<tbody>([\s\S]*?)<\/tbody>/)?.[1] ?? '';
      const rowsShown = (body.match(/<tr[\s>]/g) || []).length;
      // "Resultaten 1–20 van 133.309": the count a paged list shows.
      const total = html.match(/id="(?:search|client|docs)-count">[^<]*?([\d.]+)\s*</)?.[1] ?? null;
      let apiInfo = null;
      if (apiUrl) {
        const a = await timedFetch(apiUrl, bearer);
        if (a.status !== 200) throw new Error(`GET ${p.api} as ${role}: ${a.status}`);
        const v = JSON.parse(a.body.toString('utf8'));
        apiInfo = { total: v.total ?? (Array.isArray(v.clients) ? v.clients.length : Array.isArray(v) ? v.length : null) };
      }
      const b = { responseStart: [], responseEnd: [], domContentLoaded: [], load: [] };
      const f = { ms: [], ttfb: [] };
      const j = [];
      const t = performance.now();
      let lastBytes = first.bytes;
      for (let i = 0; i < WARMUP + RUNS; i++) {
        const warm = i < WARMUP;
        const r = await browserLoad(page, url);
        if (r.status !== 200 || r.where !== new URL(url).pathname) {
          throw new Error(`browser load of ${p.path} as ${role}: ${r.status} at ${r.where}`);
        }
        const x = await timedFetch(url, cookie);
        if (x.status !== 200) throw new Error(`fetch ${p.path} as ${role}: ${x.status}`);
        lastBytes = x.bytes; // a page that shows the audit trail grows as it is viewed
        const y = apiUrl ? await timedFetch(apiUrl, bearer) : null;
        if (y && y.status !== 200) throw new Error(`fetch ${p.api} as ${role}: ${y.status}`);
        if (warm) continue;
        for (const k of Object.keys(b)) b[k].push(r[k]);
        f.ms.push(x.ms);
        f.ttfb.push(x.ttfbMs);
        if (y) j.push(y.ms);
      }
      // Then PROFILE loads more, untimed, with the renderer's own counters
      // (Chrome DevTools' Performance.getMetrics, cumulative seconds of
      // the page's main thread) read before and after each: how long the
      // load spent in style, layout and script, and in all its tasks
      // (parsing the HTML is the part of the tasks that is none of them).
      const cdp = await context.newCDPSession(page);
      await cdp.send('Performance.enable');
      const metrics = async () =>
        Object.fromEntries((await cdp.send('Performance.getMetrics')).metrics.map((x) => [x.name, x.value * 1000]));
      const prof = { style: [], layout: [], script: [], tasks: [] };
      for (let i = 0; i < PROFILE; i++) {
        const before = await metrics();
        await browserLoad(page, url);
        const after = await metrics();
        const d = (k) => after[k] - before[k];
        if (d('TaskDuration') < 0) continue; // another renderer: counters restarted
        prof.style.push(d('RecalcStyleDuration'));
        prof.layout.push(d('LayoutDuration'));
        prof.script.push(d('ScriptDuration'));
        prof.tasks.push(d('TaskDuration'));
      }
      await cdp.detach();
      const row = {
        role,
        page: p.name,
        path: p.path,
        html_bytes: first.bytes,
        html_bytes_last: lastBytes,
        table_rows: rowsShown,
        total_shown: total,
        api_total: apiInfo?.total ?? null,
        browser: Object.fromEntries(Object.entries(b).map(([k, v]) => [k, stats(v)])),
        fetch: stats(f.ms),
        fetch_ttfb: stats(f.ttfb),
        api_json: apiUrl ? { path: p.api, ...stats(j) } : null,
        renderer: Object.fromEntries(Object.entries(prof).map(([k, v]) => [k, stats(v)])),
        seconds: Math.round((performance.now() - t) / 100) / 10,
      };
      rows.push(row);
      await out({ phase: 'page', ...row });
      log(
        `${role} ${p.path}: load p50 ${row.browser.load.p50} p95 ${row.browser.load.p95} ms; ` +
          `first byte p50 ${row.browser.responseStart.p50}; fetch p50 ${row.fetch.p50} p95 ${row.fetch.p95} ms ` +
          `(${row.seconds} s)`,
      );
    }
    const bad = problems();
    if (bad.length) log(`${role}: page problems: ${bad.join('; ')}`);
    await context.close();
  }
} finally {
  await browser.close();
}
machine.loadavg_end = os.loadavg().map((x) => Math.round(x * 100) / 100);
await out({ phase: 'machine', ...machine });
log(`load average at the end: ${machine.loadavg_end.join(' ')}`);

// The tables.
const ms = (s) => `${s.p50} / ${s.p95} / ${s.p99}`;
const kib = (n) => `${Math.round(n / 1024).toLocaleString('en')} KiB`;
const size = (r) =>
  r.html_bytes_last > r.html_bytes * 1.1 ? `${kib(r.html_bytes)} → ${kib(r.html_bytes_last)}` : kib(r.html_bytes);
console.log(`Chromium ${machine.chromium}, node ${machine.node}, ${machine.cpus} CPUs; ` +
  `${RUNS} loads per page after ${WARMUP} warm-up; ms p50 / p95 / p99`);
console.log('');
console.log('| role | page | shown | HTML | browser: page load | browser: first byte | fetch: same GET (baseline) | load p95 ÷ fetch p95 | ≤ 200 ms p95 |');
console.log('|---|---|---|---|---|---|---|---|---|');
for (const r of rows) {
  const shown = r.total_shown ? `${r.table_rows} of ${r.total_shown}` : `${r.table_rows.toLocaleString('en')}`;
  const ratio = (r.browser.load.p95 / r.fetch.p95).toFixed(1);
  console.log(
    `| ${r.role} | ${r.page} | ${shown} | ${size(r)} | **${ms(r.browser.load)}** | ${ms(r.browser.responseStart)} | ` +
      `${ms(r.fetch)} | ${ratio}× | ${r.browser.load.p95 <= 200 ? 'yes' : '**no**'} |`,
  );
}
console.log('');
console.log(
  "Where a load goes: p50 ms from the navigation's start; the renderer's main thread per load (median of " +
    `${PROFILE} more loads); the API's JSON twin of the page (p50 / p95):`,
);
console.log('');
console.log('| role | page | first byte | HTML read | DOMContentLoaded | load | renderer: tasks (style + layout + script) | API JSON twin |');
console.log('|---|---|---|---|---|---|---|---|');
for (const r of rows) {
  const api = r.api_json ? `${r.api_json.p50} / ${r.api_json.p95} (\`${r.api_json.path}\`)` : '–';
  const b = r.browser;
  const q = r.renderer;
  console.log(
    `| ${r.role} | ${r.page} | ${b.responseStart.p50} | ${b.responseEnd.p50} | ${b.domContentLoaded.p50} | ${b.load.p50} | ` +
      `${q.tasks.p50} (${q.style.p50} + ${q.layout.p50} + ${q.script.p50}) | ${api} |`,
  );
}
