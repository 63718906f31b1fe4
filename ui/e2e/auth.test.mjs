// The web UI against a loupe that requires bearer tokens (`--auth-tokens-file`, tokens made
// with `loupe token create`): the page asks for a token once, says when one is refused, keeps
// the accepted one for the tab, and a token without the read scope is told so.

import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { openBrowser, startWithTokens } from './fixture.mjs';

let world;
let ui;

before(async () => {
  world = await startWithTokens();
  ui = await openBrowser();
});

after(async () => {
  await ui?.browser.close();
  await world?.stop();
});

/// Page errors, minus the browser's own log line for each expected 401/403 answer.
function unexpectedErrors() {
  return ui.errors.splice(0).filter((e) => !/status of 40[13]/.test(e));
}

test('the API refuses a call without a token, the page and its assets do not', async () => {
  assert.equal((await fetch(`${world.base}/api/v1/incidents`)).status, 401);
  assert.equal((await fetch(`${world.base}/`)).status, 200);
  assert.equal((await fetch(`${world.base}/healthz`)).status, 200);
  const ok = await fetch(`${world.base}/api/v1/incidents`, { headers: { authorization: `Bearer ${world.tokens.read}` } });
  assert.equal(ok.status, 200);
});

test('the page asks for a token, refuses a wrong one, keeps the right one for the tab', async () => {
  const { page } = ui;
  await page.goto(`${world.base}/incidents`);
  const dialog = page.getByTestId('token-dialog');
  await dialog.waitFor({ state: 'visible' });
  await page.getByTestId('token-input').fill('loupe_not-a-token');
  await page.getByTestId('token-submit').click();
  // Refused: the dialog comes back and says so.
  await page.getByTestId('token-dialog').getByText('That token was refused').waitFor();
  await ui.shot('token-dialog');
  await page.getByTestId('token-input').fill(world.tokens.read);
  await page.getByTestId('token-submit').click();
  await page.getByText('No incidents yet').waitFor();
  assert.equal(await page.getByTestId('token-dialog').count(), 0);
  // A reload in the same tab asks no more.
  await page.reload();
  await page.getByText('No incidents yet').waitFor();
  assert.equal(await page.getByTestId('token-dialog').count(), 0);
  assert.deepEqual(unexpectedErrors(), []);
});

test('a token without the read scope gets the server\'s reason, not a blank page', async () => {
  const { page } = ui;
  await page.evaluate((t) => sessionStorage.setItem('loupe.token', t), world.tokens.ingest);
  await page.goto(`${world.base}/incidents`);
  await page.getByText('lacks the read scope').first().waitFor();
  assert.deepEqual(unexpectedErrors(), []);
});
