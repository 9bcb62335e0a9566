// The same screens with JavaScript turned off: every form posts to its server
// function and the page comes back re-rendered, errors included.

import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { admin, adminCall, checkIn, launchBrowser, screenshot, seed, startReceiver, startServer, webhookSignature } from '../harness.mjs';

let server;
let keys;
let browser;
let page;

before(async () => {
  server = await startServer();
  keys = await seed(server);
  ({ browser, page } = await launchBrowser({ javaScriptEnabled: false }));
});

after(async () => {
  await browser?.close();
  await server?.stop();
});

test('signing in works without JavaScript, and a wrong key says so', async () => {
  await page.goto(`${server.baseURL}/devices`);
  await page.getByLabel('Administration API key').fill('sk_admin_nope');
  await page.getByRole('button', { name: 'Sign in' }).click();
  assert.match(await page.getByRole('alert').textContent(), /not valid/);
  await page.getByLabel('Administration API key').fill(keys.adminKey);
  await page.getByRole('button', { name: 'Sign in' }).click();
  await page.getByRole('heading', { name: 'Devices' }).waitFor();
  assert.equal(new URL(page.url()).pathname, '/devices', 'back to the page asked for');
});

test('auto-assign switches with its Save button', async () => {
  await page.goto(server.baseURL);
  const row = page.getByRole('row', { name: /Viewer/ });
  await row.getByRole('switch', { name: 'Auto-assign Viewer' }).check();
  await row.getByRole('button', { name: 'Save' }).click();
  await page.getByRole('heading', { name: 'Licenses' }).waitFor();
  assert.equal((await admin(server.baseURL, keys.adminKey, '/products/viewer')).auto_assign, true);
  assert.equal(await page.getByRole('switch', { name: 'Auto-assign Viewer' }).isChecked(), true);
  await screenshot(page, 'no-js-licenses');
});

test('license validity and reclaiming are set on the Product screen with their Save buttons', async () => {
  await page.goto(`${server.baseURL}/products/editor`);
  const days = page.getByLabel('Signed licenses stay valid for');
  const save = page.locator('form').filter({ has: days }).getByRole('button', { name: 'Save' });
  await days.fill('14');
  await save.click();
  await page.getByRole('heading', { name: 'Editor Pro' }).waitFor();
  assert.equal(await days.inputValue(), '14');
  assert.equal((await admin(server.baseURL, keys.adminKey, '/products/editor/policy')).license_days, 14);

  await days.evaluate((input) => { input.removeAttribute('max'); input.value = '400'; });
  await save.click();
  assert.match(await page.getByRole('alert').textContent(), /1 to 365/);
  assert.equal((await admin(server.baseURL, keys.adminKey, '/products/editor/policy')).license_days, 14, 'nothing changed');

  const reclaim = page.getByLabel('Reclaim seats of devices not seen for');
  await reclaim.fill('45');
  await page.locator('form').filter({ has: reclaim }).getByRole('button', { name: 'Save' }).click();
  await page.getByRole('heading', { name: 'Editor Pro' }).waitFor();
  assert.equal(await reclaim.inputValue(), '45');
  assert.equal((await admin(server.baseURL, keys.adminKey, '/products/editor/policy')).reclaim_after_days, 45);
  await reclaim.fill('');
  await page.locator('form').filter({ has: reclaim }).getByRole('button', { name: 'Save' }).click();
  await page.getByRole('heading', { name: 'Editor Pro' }).waitFor();
  assert.equal((await admin(server.baseURL, keys.adminKey, '/products/editor/policy')).reclaim_after_days, null);
});

test('a bulk action works as a plain form and says what it did', async () => {
  for (const serial of ['BULK-1', 'BULK-2']) await checkIn(server.baseURL, keys.productKey, 'editor', serial);
  await page.goto(`${server.baseURL}/devices?q=BULK-`);
  await page.getByLabel('With the selected devices').selectOption('delete');
  await page.getByRole('button', { name: 'Apply' }).click();
  assert.match(await page.getByRole('alert').textContent(), /Select at least one device/, 'nothing ticked');
  assert.equal((await admin(server.baseURL, keys.adminKey, '/devices/BULK-1')).serial, 'BULK-1', 'nothing changed');

  await page.getByRole('checkbox', { name: 'Select BULK-1' }).check();
  await page.getByRole('checkbox', { name: 'Select BULK-2' }).check();
  await page.getByLabel('With the selected devices').selectOption('delete');
  await page.getByRole('button', { name: 'Apply' }).click();
  assert.match(await page.getByRole('status').textContent(), /deleted 2/);
  assert.equal((await admin(server.baseURL, keys.adminKey, '/devices/BULK-2')).error?.code, 'unknown_device');
});

test('a license that cannot be assigned says why, next to it', async () => {
  assert.equal((await checkIn(server.baseURL, keys.productKey, 'viewer', 'FILLER')).licensed, true, 'takes the one Viewer seat');
  await page.goto(`${server.baseURL}/devices/LAPTOP-001`);
  await page.getByRole('checkbox', { name: 'Assigned Viewer' }).check();
  await page.getByRole('listitem').filter({ hasText: 'Viewer' }).getByRole('button', { name: 'Save' }).click();
  assert.match(await page.getByRole('alert').textContent(), /No seats available/);
  assert.equal(await page.getByRole('checkbox', { name: 'Assigned Viewer' }).isChecked(), false);
  await screenshot(page, 'no-js-device-no-seats');

  await page.getByRole('checkbox', { name: 'Assigned Editor Pro' }).uncheck();
  await page.getByRole('listitem').filter({ hasText: 'Editor Pro' }).getByRole('button', { name: 'Save' }).click();
  await page.getByRole('heading', { name: 'LAPTOP-001' }).waitFor();
  assert.equal(await page.getByRole('alert').count(), 0, 'no stale error');
  assert.equal((await admin(server.baseURL, keys.adminKey, '/devices/LAPTOP-001')).seats_assigned, 0);
});

test('revoking, deleting and ignoring work as plain forms', async () => {
  await page.goto(`${server.baseURL}/products/editor`);
  await page.getByRole('button', { name: 'Revoke LAPTOP-002' }).click();
  await page.getByRole('heading', { name: 'Editor Pro' }).waitFor();
  assert.equal((await admin(server.baseURL, keys.adminKey, '/products/editor')).assigned, 0);

  await page.goto(`${server.baseURL}/devices`);
  await page.getByRole('button', { name: 'Delete LAPTOP-002' }).click();
  await page.getByRole('heading', { name: 'Devices' }).waitFor();
  await page.getByRole('button', { name: 'Ignore DESK-7' }).click();
  await page.getByRole('heading', { name: 'Devices' }).waitFor();

  await checkIn(server.baseURL, keys.productKey, 'viewer', 'GONE-1');
  await page.goto(`${server.baseURL}/devices/GONE-1`);
  await page.getByRole('button', { name: 'Delete device' }).click();
  await page.getByRole('heading', { name: 'Devices' }).waitFor();
  assert.equal(new URL(page.url()).pathname, '/devices', 'the device is gone: back to the list');
  const serials = (await admin(server.baseURL, keys.adminKey, '/devices')).items.map((d) => d.serial);
  assert.deepEqual(serials, ['FILLER', 'LAPTOP-001']);
});

test('seats turn floating on the Product screen with its Save button, and a bad lease says why', async () => {
  server.cli(['product', 'add', '--org', 'Acme Corp', '--code', 'studio', '--name', 'Studio', '--seats', '2', '--auto-assign']);
  assert.equal((await checkIn(server.baseURL, keys.productKey, 'studio', 'STUDIO-1')).licensed, true);
  await page.goto(`${server.baseURL}/products/studio`);
  const model = page.getByLabel('Seats are');
  const minutes = page.getByLabel('Leases last');
  const save = page.locator('form').filter({ has: model }).getByRole('button', { name: 'Save' });
  await model.selectOption('floating');
  await minutes.evaluate((input) => { input.removeAttribute('min'); input.value = '2'; });
  await save.click();
  assert.match(await page.getByRole('alert').textContent(), /5 to 1440 minutes/);
  assert.equal((await admin(server.baseURL, keys.adminKey, '/products/studio/policy')).seat_model, 'assigned', 'nothing changed');

  await model.selectOption('floating');
  await minutes.fill('15');
  await save.click();
  await page.getByRole('heading', { name: 'Studio' }).waitFor();
  const policy = await admin(server.baseURL, keys.adminKey, '/products/studio/policy');
  assert.deepEqual([policy.seat_model, policy.lease_minutes], ['floating', 15]);
  assert.equal(await model.inputValue(), 'floating');
  await page.getByRole('columnheader', { name: 'Lease ends' }).waitFor();
  await screenshot(page, 'no-js-product-floating');

  await model.selectOption('assigned');
  await save.click();
  await page.getByRole('heading', { name: 'Studio' }).waitFor();
  assert.equal((await admin(server.baseURL, keys.adminKey, '/products/studio/policy')).seat_model, 'assigned');
});

test('the waiting line is listed and trimmed with plain forms', async () => {
  server.cli(['product', 'add', '--org', 'Acme Corp', '--code', 'lab', '--name', 'Lab', '--seats', '0', '--auto-assign']);
  for (const serial of ['LAB-W1', 'LAB-W2']) {
    await fetch(`${server.baseURL}/api/v1/checkin`, {
      method: 'POST',
      headers: { authorization: `Bearer ${keys.productKey}`, 'content-type': 'application/json' },
      body: JSON.stringify({ product: 'lab', serial, queue: true }),
    });
  }
  await page.goto(`${server.baseURL}/products/lab`);
  const line = page.getByRole('region', { name: 'Waiting for a seat' });
  assert.deepEqual(await line.getByRole('rowheader').allTextContents(), ['LAB-W1', 'LAB-W2']);
  await line.getByRole('button', { name: 'Remove LAB-W2 from the line' }).click();
  await page.getByRole('heading', { name: 'Lab' }).waitFor();
  assert.deepEqual(await page.getByRole('region', { name: 'Waiting for a seat' }).getByRole('rowheader').allTextContents(), ['LAB-W1']);
  await screenshot(page, 'no-js-product-waiting-line');
});

test('an alert share is set on the Product screen, and the Licenses screen opens with the alerts', async () => {
  await page.goto(`${server.baseURL}/products/studio`);
  const percent = page.getByLabel('Alert when the seats in use reach');
  await percent.fill('10');
  await page.locator('form').filter({ has: percent }).getByRole('button', { name: 'Save' }).click();
  await page.getByRole('heading', { name: 'Studio' }).waitFor();
  assert.equal((await admin(server.baseURL, keys.adminKey, '/products/studio/policy')).alert_at_percent, 10);
  await page.goto(server.baseURL);
  const alerts = page.getByRole('region', { name: 'Alerts' });
  await alerts.getByText(/Studio: \d+ of \d+ seats in use, at or above the alert at 10%/).waitFor();
  await screenshot(page, 'no-js-licenses-alerts');
  await page.goto(`${server.baseURL}/products/studio`);
  await percent.fill('');
  await page.locator('form').filter({ has: percent }).getByRole('button', { name: 'Save' }).click();
  await page.getByRole('heading', { name: 'Studio' }).waitFor();
  assert.equal((await admin(server.baseURL, keys.adminKey, '/products/studio/policy')).alert_at_percent, null);
});

test('a webhook is added and deleted with plain forms, and a bad address says why', async () => {
  const receiver = await startReceiver();
  try {
    await page.goto(`${server.baseURL}/settings`);
    await page.getByLabel('Endpoint URL').fill('ftp://hooks.example.com/x');
    await page.getByRole('checkbox', { name: /A device is deleted/ }).check();
    await page.getByRole('button', { name: 'Add webhook' }).click();
    assert.match(await page.getByRole('alert').textContent(), /https:\/\/ address on the public internet/);

    await page.getByLabel('Endpoint URL').fill(receiver.url);
    await page.getByRole('checkbox', { name: /A device is deleted/ }).check();
    await page.getByRole('button', { name: 'Add webhook' }).click();
    const secret = await page.getByRole('textbox', { name: 'New webhook signing secret' }).inputValue();
    assert.match(secret, /^whsec_/);
    await checkIn(server.baseURL, keys.productKey, 'viewer', 'NOJS-HOOK');
    await adminCall(server.baseURL, keys.adminKey, 'DELETE', '/devices/NOJS-HOOK');
    const [delivery] = await receiver.waitFor(1);
    assert.equal(delivery.headers['webhook-signature'], webhookSignature(secret, delivery));
    assert.equal(JSON.parse(delivery.body).type, 'device.deleted');

    await page.goto(`${server.baseURL}/settings`);
    assert.equal(await page.getByRole('textbox', { name: 'New webhook signing secret' }).count(), 0, 'shown only once');
    await page.getByRole('button', { name: `Delete webhook ${receiver.url}` }).click();
    await page.getByText('No webhook yet.').waitFor();
    assert.deepEqual((await admin(server.baseURL, keys.adminKey, '/webhooks')).items, []);
  } finally {
    await receiver.close();
  }
});

test('the admin key rotates and is shown once, and signing out works', async () => {
  await page.goto(`${server.baseURL}/settings`);
  await page.getByRole('button', { name: 'Rotate administration key' }).click();
  const fresh = await page.getByRole('textbox', { name: 'New administration API key' }).inputValue();
  assert.match(fresh, /^sk_admin_/);
  assert.equal((await admin(server.baseURL, fresh, '/settings')).organization_name, 'Acme Corp');
  await page.reload();
  assert.equal(await page.getByRole('textbox', { name: 'New administration API key' }).count(), 0, 'shown only once');

  await page.getByRole('button', { name: 'Sign out' }).click();
  await page.getByLabel('Administration API key').waitFor();
  await page.goto(`${server.baseURL}/settings`);
  await page.getByLabel('Administration API key').waitFor();
});
