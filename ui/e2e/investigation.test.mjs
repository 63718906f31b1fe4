// An SRE's investigation in a real headless Chromium against the real loupe binary fed a
// simulated bad deployment: the incident list, the incident with its cause, evidence and
// rollback, a verdict, the service map before and after the deployment and its diff, a trace
// found through the incident, the SQL page. A screenshot of each page lands in
// target/ui-e2e/.

import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { openBrowser, startLoupe } from './fixture.mjs';

let world;
let ui;

before(async () => {
  world = await startLoupe();
  ui = await openBrowser();
});

after(async () => {
  await ui?.browser.close();
  await world?.stop();
});

/// Fails on any page or console error since the last check.
function noErrors() {
  const seen = ui.errors.splice(0);
  assert.deepEqual(seen, [], 'the page logged errors');
}

const MINUTE_NS = 60_000_000_000n;
const iso = (ns) => new Date(Number(BigInt(ns) / 1_000_000n)).toISOString();

test('the incidents page lists the incident loupe opened, with its top cause', async () => {
  const { page } = ui;
  await page.goto(world.base + '/');
  const row = page.locator(`[data-testid=incident-row][data-id="${world.incident.id}"]`);
  await row.waitFor();
  assert.match(await row.textContent(), new RegExp(world.incident.title.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')));
  assert.equal((await row.locator('[data-testid=top-cause]').textContent()).includes(world.truth.root_cause_service), true);
  await ui.shot('incidents');
  noErrors();
});

test('the incident shows the injected cause first, its evidence and its rollback command', async () => {
  const { page } = ui;
  await page.locator(`[data-testid=incident-row][data-id="${world.incident.id}"] a`).first().click();
  await page.waitForURL(`**/incidents/${world.incident.id}`);
  const first = page.locator('[data-testid=cause]').first();
  await first.waitFor();
  // The injected cause: the root-cause service, or the deployment of it that loupe names.
  const svc = world.truth.root_cause_service;
  const top = await first.getAttribute('data-entity');
  assert.ok(top === `service:${svc}` || top.startsWith(`change:${svc}:deployment@`), top);
  assert.equal(await first.getAttribute('data-service'), svc);
  assert.ok(await first.locator('[data-testid=evidence]').count() > 0, 'its evidence is shown');
  assert.equal(await first.getAttribute('data-rank'), '1');
  const commands = await first.locator('[data-testid=remediation-command]').allTextContents();
  const rollback = commands.find((c) => c.includes('rollout undo'));
  assert.ok(rollback, `a rollback command among: ${commands.join(' | ')}`);
  assert.ok(rollback.includes(world.truth.root_cause_service), rollback);
  await page.locator('[data-testid=timeline]').waitFor();
  await ui.shot('incident');
  noErrors();
});

test('rejecting the top cause with a comment moves it down and stores the verdict', async () => {
  const { page } = ui;
  const entity = await page.locator('[data-testid=cause]').first().getAttribute('data-entity');
  const cause = page.locator(`[data-testid=cause][data-entity="${entity}"]`);
  await cause.locator('[data-testid=verdict-comment]').fill('the rollout was already reverted');
  await cause.locator('[data-testid=reject]').click();
  await cause.locator('[data-testid=verdict]').filter({ hasText: 'rejected' }).first().waitFor();
  // The rejected cause drops below the others.
  await page.waitForFunction(
    (id) => document.querySelector('[data-testid=cause]')?.getAttribute('data-entity') !== id,
    entity,
  );
  const { verdicts } = await world.api('/api/v1/verdicts');
  const stored = verdicts.find((v) => v.incident === world.incident.id && v.cause === entity);
  assert.ok(stored, `a stored verdict on ${entity}: ${JSON.stringify(verdicts)}`);
  assert.equal(stored.verdict, 'rejected');
  assert.equal(stored.comment, 'the rollout was already reverted');
  await ui.shot('incident-rejected');
  noErrors();
});

test('the map shows the services, and before the deployment not the new version', async () => {
  const { page } = ui;
  const { truth } = world;
  const end = BigInt(truth.replayed_until_unix_ns);
  // The new version's pods, as the API knows them after the rollout.
  const after = await world.api(`/api/v1/graph?at=${end}&window=5m&stats=false`);
  const before = await world.api(
    `/api/v1/graph?at=${BigInt(truth.fault_start_unix_ns) - MINUTE_NS}&window=5m&stats=false`);
  const beforeIds = new Set(before.nodes.map((n) => n.id));
  const added = after.nodes.filter((n) => !beforeIds.has(n.id) && n.kind === 'pod').map((n) => n.id);
  assert.ok(added.length > 0, 'the rollout brought new pods');

  await page.goto(`${world.base}/map?at=${encodeURIComponent(iso(end))}&window=5m&kinds=service,pod,database`);
  await page.locator('svg[data-ready=true]').waitFor();
  const service = `service:${truth.root_cause_service}`;
  await page.locator(`g[data-testid=node][data-id="${service}"]`).waitFor();
  const mapped = await page.locator('g[data-testid=node]').evaluateAll((gs) => gs.map((g) => g.dataset.id));
  const services = after.nodes.filter((n) => n.kind === 'service').map((n) => n.id);
  for (const id of [...services, ...added]) assert.ok(mapped.includes(id), `${id} on the map: ${mapped.join(' ')}`);
  // The new version's relations (its pods on their service or workload) are drawn.
  const edgeEnds = await page.locator('[data-testid=edge]').evaluateAll(
    (es) => es.map((e) => [e.dataset.source, e.dataset.target]));
  assert.ok(edgeEnds.some(([s, t]) => added.includes(s) || added.includes(t)), 'a relation of a new pod');
  await ui.shot('map');

  // Move the slider back to before the deployment: the new version's pods are gone.
  const slider = page.locator('input[data-testid=time-slider]');
  const target = Number((BigInt(truth.fault_start_unix_ns) - MINUTE_NS) / 1_000_000n);
  await slider.evaluate((el, ms) => {
    const min = Number(el.min), max = Number(el.max), step = Number(el.step) || 1;
    const v = Math.max(min, Math.min(max, min + Math.floor((ms - min) / step) * step));
    el.value = String(v);
    el.dispatchEvent(new Event('input', { bubbles: true }));
    el.dispatchEvent(new Event('change', { bubbles: true }));
  }, target);
  await page.waitForFunction(
    (ids) => document.querySelector('svg[data-ready=true]')
      && ids.every((id) => !document.querySelector(`g[data-testid=node][data-id="${CSS.escape(id)}"]`)
        && !document.querySelector(`[data-testid=edge][data-source="${CSS.escape(id)}"]`)
        && !document.querySelector(`[data-testid=edge][data-target="${CSS.escape(id)}"]`))
      && document.querySelectorAll('g[data-testid=node]').length > 0,
    added,
  );
  assert.ok(await page.locator(`g[data-testid=node][data-id="${service}"]`).count() === 1, 'the service is still there');
  await ui.shot('map-before-deployment');
  noErrors();
});

test('the diff mode shows what the deployment changed', async () => {
  const { page } = ui;
  const { truth } = world;
  const from = iso(BigInt(truth.fault_start_unix_ns) - MINUTE_NS);
  const to = iso(BigInt(truth.replayed_until_unix_ns));
  await page.goto(`${world.base}/map?mode=diff&from=${encodeURIComponent(from)}&to=${encodeURIComponent(to)}&window=3m`);
  const items = page.locator('[data-testid=diff-item]');
  await items.first().waitFor();
  const text = (await items.allTextContents()).join('\n');
  assert.ok(text.includes(truth.root_cause_service), `the diff names ${truth.root_cause_service}:\n${text}`);
  assert.ok(await page.locator('[data-diff=added]').count() > 0, 'added entities are marked on the map');
  await ui.shot('map-diff');
  noErrors();
});

test('a trace found through the incident opens as a waterfall with every span', async () => {
  const { page } = ui;
  await page.goto(`${world.base}/incidents/${world.incident.id}`);
  const link = page.locator('a[data-testid=example-trace]').first();
  await link.waitFor();
  const href = await link.getAttribute('href');
  const traceId = href.split('/').pop();
  await link.click();
  await page.waitForURL(`**/traces/${traceId}`);
  const tree = await world.api(`/api/v1/traces/${traceId}`);
  await page.locator('[data-testid=span-row]').first().waitFor();
  assert.equal(Number(await page.locator('[data-testid=span-count]').textContent()), tree.span_count);
  assert.equal(await page.locator('[data-testid=span-row]').count(), tree.span_count);
  await page.locator('[data-testid=span-row]').first().click();
  await page.locator('[data-testid=span-detail]').waitFor();
  await ui.shot('trace');
  noErrors();
});

test('the SQL page runs a query and shows its rows, and shows an error plainly', async () => {
  const { page } = ui;
  await page.goto(`${world.base}/query`);
  await page.locator('textarea[data-testid=sql-input]').fill(
    'SELECT service_name, count(*) AS spans FROM spans GROUP BY service_name ORDER BY spans DESC');
  await page.locator('[data-testid=sql-run]').click();
  await page.locator('[data-testid=result-row]').first().waitFor();
  const rows = await page.locator('[data-testid=result-row]').count();
  const { rows: want } = await world.api('/api/v1/query', {
    method: 'POST', headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ sql: 'SELECT count(DISTINCT service_name) AS n FROM spans' }),
  });
  assert.equal(rows, want[0].n);
  await ui.shot('query');
  await page.locator('textarea[data-testid=sql-input]').fill('SELECT nope FROM spans');
  await page.locator('[data-testid=sql-run]').click();
  const error = page.locator('[data-testid=error]');
  await error.waitFor();
  assert.match(await error.textContent(), /nope/);
  // The API's 400 is the error shown, not a console error.
  ui.errors.splice(0).forEach((e) => assert.match(e, /400/));
});

test('the status page says the server is ready', async () => {
  const { page } = ui;
  await page.goto(`${world.base}/status`);
  await page.locator('[data-testid=status-ready]').waitFor();
  await ui.shot('status');
  noErrors();
});
