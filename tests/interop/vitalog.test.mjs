// Interop: a third-party FHIR client (fhir-kit-client, from npm) drives the
// real vitalog binary. Proves that what a common JavaScript client sends and
// expects (URLs, headers, Bundles, paging links, errors) works unchanged.
//
// Run by tests/interop/run.sh with VITALOG_BIN set; node's built-in runner.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, existsSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Client } from 'fhir-kit-client';

const bin = process.env.VITALOG_BIN;
let server, dir, client, baseUrl;

async function waitForFile(path, ms) {
  const end = Date.now() + ms;
  while (Date.now() < end) {
    if (existsSync(path) && readFileSync(path, 'utf8').trim()) return readFileSync(path, 'utf8').trim();
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error(`server did not write ${path}`);
}

before(async () => {
  assert.ok(bin, 'VITALOG_BIN must name the vitalog binary');
  dir = mkdtempSync(join(tmpdir(), 'vitalog-interop-'));
  server = spawn(bin, ['serve', '--data', join(dir, 'data'), '--listen', '127.0.0.1:0',
                       '--port-file', join(dir, 'port')], { stdio: ['ignore', 'ignore', 'inherit'] });
  const port = await waitForFile(join(dir, 'port'), 10000);
  baseUrl = `http://127.0.0.1:${port}/fhir`;
  // the bootstrap admin token, written before the server listens
  const token = readFileSync(join(dir, 'data', 'admin.token'), 'utf8').trim();
  client = new Client({ baseUrl, bearerToken: token });
});

after(async () => {
  if (server) {
    const exited = new Promise((r) => server.once('exit', (code) => r(code)));
    server.kill('SIGTERM');
    assert.equal(await exited, 0, 'server exits 0 on SIGTERM');
  }
  if (dir) rmSync(dir, { recursive: true, force: true });
});

const heartRate = (patient, when, bpm) => ({
  resourceType: 'Observation',
  status: 'final',
  category: [{ coding: [{ system: 'http://terminology.hl7.org/CodeSystem/observation-category', code: 'vital-signs' }] }],
  code: { coding: [{ system: 'http://loinc.org', code: '8867-4', display: 'Heart rate' }] },
  subject: { reference: `Patient/${patient}` },
  effectiveDateTime: when,
  valueQuantity: { value: bpm, unit: 'beats/minute', system: 'http://unitsofmeasure.org', code: '/min' },
});

test('capability statement describes what the server serves', async () => {
  const cs = await client.capabilityStatement();
  assert.equal(cs.resourceType, 'CapabilityStatement');
  assert.equal(cs.fhirVersion, '4.0.1');
  const obs = cs.rest[0].resource.find((r) => r.type === 'Observation');
  assert.ok(obs, 'Observation is listed');
  const codes = obs.interaction.map((i) => i.code);
  for (const c of ['read', 'vread', 'update', 'delete', 'create', 'search-type', 'history-instance']) {
    assert.ok(codes.includes(c), `Observation supports ${c}`);
  }
});

test('create, read, vread, update, history, delete', async () => {
  const created = await client.create({ resourceType: 'Observation', body: heartRate('interop-1', '2024-05-06T10:00:00Z', 72) });
  assert.match(created.id, /^[0-9a-f]{32}$/);
  assert.equal(created.meta.versionId, '1');

  const read = await client.read({ resourceType: 'Observation', id: created.id });
  assert.deepEqual(read, created);

  const changed = { ...read, status: 'amended', valueQuantity: { ...read.valueQuantity, value: 75 } };
  const updated = await client.update({ resourceType: 'Observation', id: created.id, body: changed });
  assert.equal(updated.meta.versionId, '2');
  assert.equal(updated.status, 'amended');

  const v1 = await client.vread({ resourceType: 'Observation', id: created.id, version: '1' });
  assert.equal(v1.status, 'final');

  const hist = await client.history({ resourceType: 'Observation', id: created.id });
  assert.equal(hist.type, 'history');
  assert.deepEqual(hist.entry.map((e) => e.resource.meta.versionId), ['2', '1']);

  await client.delete({ resourceType: 'Observation', id: created.id });
  await assert.rejects(client.read({ resourceType: 'Observation', id: created.id }),
    (e) => e.response.status === 410);
});

test('search with paging follows the server links', async () => {
  for (let i = 0; i < 5; i++) {
    await client.create({ resourceType: 'Observation', body: heartRate('interop-2', `2024-06-0${i + 1}T08:00:00Z`, 60 + i) });
  }
  const first = await client.search({
    resourceType: 'Observation',
    searchParams: { patient: 'Patient/interop-2', code: 'http://loinc.org|8867-4', _sort: '-date', _count: 2 },
  });
  assert.equal(first.type, 'searchset');
  assert.equal(first.total, 5);
  const seen = first.entry.map((e) => e.resource.effectiveDateTime);
  let page = first;
  while ((page = await client.nextPage({ bundle: page }))) {
    seen.push(...page.entry.map((e) => e.resource.effectiveDateTime));
  }
  assert.deepEqual(seen, ['2024-06-05T08:00:00Z', '2024-06-04T08:00:00Z', '2024-06-03T08:00:00Z',
    '2024-06-02T08:00:00Z', '2024-06-01T08:00:00Z']);

  const june = await client.search({ resourceType: 'Observation', searchParams: { subject: 'Patient/interop-2', date: 'ge2024-06-03' } });
  assert.equal(june.total, 3);
});

test('errors arrive as OperationOutcome with the right status', async () => {
  await assert.rejects(client.read({ resourceType: 'Observation', id: 'no-such-id' }),
    (e) => e.response.status === 404 && e.response.data.resourceType === 'OperationOutcome');
  await assert.rejects(client.create({ resourceType: 'Observation', body: { resourceType: 'Observation', code: { text: 'x' } } }),
    (e) => e.response.status === 400 && e.response.data.issue.some((i) => (i.expression || []).includes('Observation.status')));
  await assert.rejects(client.search({ resourceType: 'Observation', searchParams: { 'no-such-param': 'x' } }),
    (e) => e.response.status === 400);
});

test('patients searchable by identifier and name', async () => {
  await client.create({ resourceType: 'Patient', body: {
    resourceType: 'Patient', identifier: [{ system: 'urn:oid:1.2.36.146.595.217.0.1', value: '12345' }],
    name: [{ family: 'Chalmers', given: ['Peter', 'James'] }], gender: 'male', birthDate: '1974-12-25' } });
  const byId = await client.search({ resourceType: 'Patient', searchParams: { identifier: 'urn:oid:1.2.36.146.595.217.0.1|12345' } });
  assert.equal(byId.total, 1);
  const byName = await client.search({ resourceType: 'Patient', searchParams: { name: 'chal' } });
  assert.equal(byName.total, 1);
  assert.equal(byName.entry[0].resource.name[0].family, 'Chalmers');
});

test('transaction: urn:uuid references resolved, all entries answered in order', async () => {
  const patientUrn = 'urn:uuid:7f3c1e20-0000-4000-8000-000000000001';
  const body = {
    resourceType: 'Bundle',
    type: 'transaction',
    entry: [
      { fullUrl: patientUrn,
        resource: { resourceType: 'Patient', identifier: [{ system: 'http://example.org/mrn', value: 'tx-1' }],
                    name: [{ family: 'Transaction' }] },
        request: { method: 'PUT', url: 'Patient?identifier=http://example.org/mrn|tx-1' } },
      { fullUrl: 'urn:uuid:7f3c1e20-0000-4000-8000-000000000002',
        resource: { ...heartRate('placeholder', '2024-07-01T08:00:00Z', 64), subject: { reference: patientUrn } },
        request: { method: 'POST', url: 'Observation' } },
      { request: { method: 'GET', url: `Observation?subject=${patientUrn}` } },
    ],
  };
  const resp = await client.transaction({ body });
  assert.equal(resp.type, 'transaction-response');
  assert.deepEqual(resp.entry.map((e) => e.response.status), ['201 Created', '201 Created', '200 OK']);
  const patientId = resp.entry[0].resource.id;
  assert.equal(resp.entry[1].resource.subject.reference, `Patient/${patientId}`);
  assert.equal(resp.entry[2].resource.total, 1, 'the GET entry sees the transaction\'s own write');
  assert.match(resp.entry[1].response.location, /\/fhir\/Observation\/[0-9a-f]{32}\/_history\/1$/);

  // the same transaction again: the conditional update now matches and updates
  const again = await client.transaction({ body });
  assert.deepEqual(again.entry.map((e) => e.response.status), ['200 OK', '201 Created', '200 OK']);
  assert.equal(again.entry[0].resource.id, patientId);
  assert.equal(again.entry[1].resource.subject.reference, `Patient/${patientId}`);
  assert.equal(again.entry[2].resource.total, 2);
});

test('transaction: a failing last entry writes nothing and names the entry', async () => {
  const before = await client.search({ resourceType: 'Observation', searchParams: { subject: 'Patient/tx-fail', _count: 0 } });
  await assert.rejects(client.transaction({ body: {
    resourceType: 'Bundle', type: 'transaction', entry: [
      { resource: heartRate('tx-fail', '2024-07-02T08:00:00Z', 70), request: { method: 'POST', url: 'Observation' } },
      { request: { method: 'DELETE', url: 'Observation/does-not-exist' } },
    ] } }),
  (e) => e.response.status === 404 && e.response.data.resourceType === 'OperationOutcome' &&
         e.response.data.issue[0].expression[0] === 'Bundle.entry[1]');
  const after = await client.search({ resourceType: 'Observation', searchParams: { subject: 'Patient/tx-fail', _count: 0 } });
  assert.equal(after.total, before.total);
});

test('batch: entries succeed or fail on their own', async () => {
  const resp = await client.batch({ body: {
    resourceType: 'Bundle', type: 'batch', entry: [
      { resource: heartRate('batch-1', '2024-07-03T08:00:00Z', 80), request: { method: 'POST', url: 'Observation' } },
      { resource: { resourceType: 'Observation', code: { text: 'no status' } }, request: { method: 'POST', url: 'Observation' } },
      { request: { method: 'GET', url: 'Observation/does-not-exist' } },
    ] } });
  assert.equal(resp.type, 'batch-response');
  assert.deepEqual(resp.entry.map((e) => e.response.status), ['201 Created', '400 Bad Request', '404 Not Found']);
  assert.equal(resp.entry[1].response.outcome.resourceType, 'OperationOutcome');
  const stored = await client.search({ resourceType: 'Observation', searchParams: { subject: 'Patient/batch-1' } });
  assert.equal(stored.total, 1);
});

test('conditional update through the client', async () => {
  const body = { resourceType: 'Patient', identifier: [{ system: 'http://example.org/mrn', value: 'cu-1' }], active: true };
  const created = await client.update({ resourceType: 'Patient', searchParams: { identifier: 'http://example.org/mrn|cu-1' }, body });
  assert.equal(created.meta.versionId, '1');
  const updated = await client.update({ resourceType: 'Patient', searchParams: { identifier: 'http://example.org/mrn|cu-1' },
    body: { ...body, active: false } });
  assert.equal(updated.id, created.id);
  assert.equal(updated.meta.versionId, '2');
});

test('$ledger is a Parameters resource; an unknown operation says so', async () => {
  const created = await client.create({ resourceType: 'Observation', body: heartRate('ledger-1', '2024-07-04T08:00:00Z', 66) });
  const p = await client.operation({ name: 'ledger', resourceType: 'Observation', id: `${created.id}/_history/1`, method: 'GET' });
  assert.equal(p.resourceType, 'Parameters');
  const names = p.parameter.map((x) => x.name);
  for (const n of ['entry', 'entryHash', 'index', 'salt', 'bytes', 'inclusionProof', 'checkpoint']) {
    assert.ok(names.includes(n), `$ledger has ${n}`);
  }
  await assert.rejects(client.operation({ name: 'nope', resourceType: 'Patient', id: 'x', method: 'GET' }),
    (e) => e.response.status === 404 && /unknown operation/.test(e.response.data.issue[0].diagnostics));
});
