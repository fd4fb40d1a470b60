// The harness against the real server, without a browser: `kluis serve`
// starts and answers /healthz, `kluis user add` makes a user who logs in over
// the API, and the API helpers the browser tests set up their data with work
// (users, clients, coach, uploads of the very files the browser tests use,
// closing a trajectory). When this file fails, the browser tests cannot pass.

import assert from 'node:assert/strict';
import { access } from 'node:fs/promises';
import { after, before, test } from 'node:test';

import {
  addUser,
  api,
  apiLogin,
  apiOk,
  assignCoach,
  closeTrajectory,
  createClient,
  createUser,
  exeBytes,
  pdfBytes,
  startKluis,
  uploadDocument,
} from './harness.mjs';

let srv;
let manager;

before(async () => {
  srv = await startKluis();
});

after(async () => {
  await srv?.stop();
});

test('kluis serve answers /healthz on its announced address', async () => {
  assert.match(srv.base, /^http:\/\/127\.0\.0\.1:\d+$/);
  const res = await fetch(`${srv.base}/healthz`);
  assert.equal(res.status, 200);
});

test('kluis user add makes a user who logs in over the API', async () => {
  manager = await addUser(srv, 'directie', 'management', 'Directie');
  assert.match(manager.id, /^[0-9a-f-]{36}$/);
  assert.match(manager.secret, /^[A-Z2-7]+=*$/);
  assert.ok(manager.password.length >= 12);
  const token = await apiLogin(srv, manager);
  const me = await apiOk(srv, token, 'GET', '/api/v1/me');
  assert.equal(me.username ?? me.user?.username, 'directie');
  manager.token = token;
});

test('the API helpers set up a coach, a client, documents, a closed trajectory', async () => {
  const token = manager.token;
  const coach = await createUser(srv, token, 'coach.api', 'coach', 'Coach Api');
  assert.match(coach.secret, /^[A-Z2-7]+=*$/);
  const client = await createClient(srv, token);
  assert.match(client.id, /^[0-9a-f-]{36}$/);
  await assignCoach(srv, token, client.id, coach);

  // The coach sees the client and can upload the browser tests' files.
  const coachToken = await apiLogin(srv, coach);
  const pdf = await uploadDocument(srv, coachToken, client.id, {
    type: 'work_plan',
    title: 'Werkplan',
    name: 'werkplan.pdf',
    bytes: pdfBytes('Werkplan van Jan Jansen'),
    mime: 'application/pdf',
  });
  assert.match(pdf.id, /^[0-9a-f-]{36}$/);
  await uploadDocument(srv, coachToken, client.id, {
    type: 'intake',
    name: 'notities.txt',
    bytes: Buffer.from('Gesprek met Jan.\n', 'utf8'),
    mime: 'text/plain',
  });
  const list = await apiOk(srv, coachToken, 'GET', `/api/v1/clients/${client.id}/documents`);
  assert.equal((list.documents ?? list).length, 2, JSON.stringify(list));

  // The executable the browser test uploads is refused by its content.
  const form = new FormData();
  form.append('type', 'work_plan');
  form.append('title', 'Programma');
  form.append('file', new Blob([exeBytes()]), 'programma.exe');
  const refused = await api(srv, coachToken, 'POST', `/api/v1/clients/${client.id}/documents`, form);
  assert.equal(refused.status, 415, JSON.stringify(refused.body));

  await closeTrajectory(srv, token, client.id);
});

test('stop() ends the server and removes its directory', async () => {
  const other = await startKluis();
  await other.stop();
  await assert.rejects(fetch(`${other.base}/healthz`));
  await assert.rejects(access(other.dir));
});
