// The browser suite's world: the real `loupe` binary serving on free ports with a data
// directory, fed one simulated OpenTelemetry Demo case with a bad deployment (`loupe simulate
// cases` then `loupe replay sim`, OTLP/gRPC and the deployment webhook), until loupe has
// opened the incident and ranked its causes; and a headless Chromium (Debian's, through
// playwright-core) whose page fails the test on any page error or console error.

import { spawn, execFile } from 'node:child_process';
import { mkdtempSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { chromium } from 'playwright-core';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '../..');
const run = promisify(execFile);

/// The binary under test: LOUPE_BIN, else the debug build `cargo build` leaves.
export const bin = process.env.LOUPE_BIN ?? join(root, 'target/debug/loupe');
/// Where screenshots go (CI keeps `target/` as its artifacts).
export const shots = join(root, 'target/ui-e2e');
/// The seed of the case set: its one case is a bad deployment that brings errors, so the
/// availability objective pages.
const SEED = process.env.LOUPE_E2E_SEED ?? '3';

async function freePort() {
  return new Promise((ok, fail) => {
    const s = createServer();
    s.unref();
    s.on('error', fail);
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address();
      s.close(() => ok(port));
    });
  });
}

async function until(what, seconds, probe) {
  const deadline = Date.now() + seconds * 1000;
  let last;
  while (Date.now() < deadline) {
    try {
      const got = await probe();
      if (got) return got;
    } catch (e) {
      last = e;
    }
    await new Promise((r) => setTimeout(r, 250));
  }
  throw new Error(`${what}: not within ${seconds}s${last ? ` (last error: ${last.message})` : ''}`);
}

/// Spawns `loupe serve` with `args` on three free loopback ports: `{base, grpc, stop, log}`;
/// `stop()` also removes `work`.
async function serve(work, args) {
  const [grpc, otlpHttp, http] = [await freePort(), await freePort(), await freePort()];
  const server = spawn(bin, [
    'serve', ...args,
    '--otlp-grpc-addr', `127.0.0.1:${grpc}`, '--otlp-http-addr', `127.0.0.1:${otlpHttp}`,
    '--http-addr', `127.0.0.1:${http}`,
  ], { stdio: ['ignore', 'inherit', 'pipe'] });
  let log = '';
  server.stderr.on('data', (d) => { log += d; });
  const exited = new Promise((r) => server.on('exit', r));
  const stop = async () => {
    server.kill('SIGINT');
    await Promise.race([exited, new Promise((r) => setTimeout(r, 10_000))]);
    server.kill('SIGKILL');
    rmSync(work, { recursive: true, force: true });
  };
  return { base: `http://127.0.0.1:${http}`, grpc, stop, log: () => log };
}

/// Starts loupe with the case replayed into it up to half a minute before the fault's end.
/// Returns `{base, truth, incident, api, stop}`: `base` the web UI's origin, `truth` the case's
/// ground truth (with `replayed_until_unix_ns`), `incident` the summary of the
/// incident loupe opened, `api(path, init)` a JSON fetch that throws on a non-2xx answer.
export async function startLoupe() {
  const work = mkdtempSync(join(tmpdir(), 'loupe-ui-e2e-'));
  const cases = join(work, 'cases');
  await run(bin, [
    'simulate', 'cases', '--out', cases, '--cases', '1', '--seed', SEED,
    '--topologies', 'otel-demo', '--faults', 'bad_deployment', '--herring-chance', '0',
  ]);
  const [truth] = JSON.parse(readFileSync(join(cases, 'ground_truth.json'), 'utf8'));
  const slo = join(work, 'slo.json');
  writeFileSync(slo, JSON.stringify({
    default_slo: { availability: 0.999 },
    slos: { 'frontend-proxy': { availability: 0.999, latency_threshold_seconds: 0.5, latency_target: 0.99 } },
  }));
  const data = join(work, 'data');
  mkdirSync(data);
  const { base, grpc, stop, log } = await serve(work, ['--data-dir', data, '--slo-file', slo]);
  const api = async (path, init) => {
    const r = await fetch(base + path, init);
    const body = await r.json();
    if (!r.ok) throw new Error(`${path}: ${r.status} ${JSON.stringify(body)}`);
    return body;
  };
  try {
    await until('loupe ready', 60, async () => (await fetch(`${base}/readyz`)).ok);
    // The replay stops half a minute before the fault ends: the SRE looks while the bad
    // version still runs (the case's rollback webhook comes at the fault's end).
    const stopAt = BigInt(truth.fault_end_unix_ns) - 30_000_000_000n;
    truth.replayed_until_unix_ns = stopAt.toString();
    await run(bin, [
      'replay', 'sim', cases, '--endpoint', `http://127.0.0.1:${grpc}`, '--api', base,
      '--from', String(truth.baseline_start_unix_ns), '--to', stopAt.toString(),
    ]);
    // The detector runs on the data's own clock; the incident's ranking settles once the
    // replay's last data is in.
    const incident = await until('an incident with ranked causes', 90, async () => {
      const { incidents } = await api('/api/v1/incidents');
      return incidents.find((i) => i.top_cause_id);
    });
    return { base, truth, incident, api, stop, log };
  } catch (e) {
    await stop();
    throw new Error(`${e.message}\nloupe's log:\n${log().slice(-4000)}`);
  }
}

/// Starts an empty loupe that requires bearer tokens, with two made by `loupe token create`:
/// `{base, tokens: {read, ingest}, stop}`.
export async function startWithTokens() {
  const work = mkdtempSync(join(tmpdir(), 'loupe-ui-auth-'));
  const file = join(work, 'tokens.txt');
  const tokens = {};
  for (const [name, scope] of [['viewer', 'read'], ['collector', 'ingest']]) {
    const { stdout } = await run(bin, ['token', 'create', '--name', name, '--scope', scope, '--tokens-file', file]);
    tokens[scope] = stdout.trim();
  }
  const { base, stop, log } = await serve(work, ['--data-dir', join(work, 'data'), '--auth-tokens-file', file]);
  try {
    await until('loupe ready', 60, async () => (await fetch(`${base}/readyz`)).ok);
  } catch (e) {
    await stop();
    throw new Error(`${e.message}\nloupe's log:\n${log().slice(-4000)}`);
  }
  return { base, tokens, stop };
}

/// A headless Chromium and a page that records page errors and console errors.
export async function openBrowser() {
  const browser = await chromium.launch({
    executablePath: process.env.CHROMIUM ?? '/usr/bin/chromium',
    args: ['--no-sandbox', '--disable-gpu', '--disable-dev-shm-usage', '--disable-quic',
      '--no-first-run', '--disable-background-networking', '--disable-component-update',
      '--disable-sync'],
  });
  const context = await browser.newContext({ viewport: { width: 1366, height: 900 }, timezoneId: 'Europe/Paris' });
  const page = await context.newPage();
  const errors = [];
  page.on('pageerror', (e) => errors.push(`page error: ${e.message}`));
  page.on('console', (m) => { if (m.type() === 'error') errors.push(`console error: ${m.text()}`); });
  mkdirSync(shots, { recursive: true });
  return {
    browser, page, errors,
    shot: (name) => page.screenshot({ path: join(shots, `${name}.png`), fullPage: true }),
  };
}
