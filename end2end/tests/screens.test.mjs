// The user guide, walked in a real browser with JavaScript on: sign in, the
// Licenses table, auto-assign, a product and its revoke, the devices list
// with search, delete and ignore, a device by deep link with its licenses,
// the settings with the keys and the ignore list, and signing out.

import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { admin, adminCall, checkIn, confirmDialog, hydrated, launchBrowser, screenshot, seed, startReceiver, startServer, submit, webhookSignature } from '../harness.mjs';

let server;
let keys;
let browser;
let page;
let context;
let problems;

before(async () => {
  server = await startServer();
  keys = await seed(server);
  ({ browser, context, page, problems } = await launchBrowser());
});

after(async () => {
  await browser?.close();
  await server?.stop();
});

async function signIn(key = keys.adminKey) {
  await page.getByLabel('Administration API key').fill(key);
  await page.getByRole('button', { name: 'Sign in' }).click();
}

test('a deep link while signed out asks for the key, then shows the page asked for', async () => {
  await page.goto(`${server.baseURL}/products/editor`);
  await hydrated(page);
  await screenshot(page, 'sign-in');
  await assert.doesNotReject(page.getByLabel('Administration API key').waitFor());

  await signIn('sk_admin_0123456789abcdef0123456789abcdef0123456789abcdef');
  const alert = page.getByRole('alert');
  await alert.waitFor();
  assert.match(await alert.textContent(), /not valid/);
  await screenshot(page, 'sign-in-wrong-key');

  await signIn();
  await page.getByRole('heading', { name: 'Editor Pro' }).waitFor();
  assert.equal(new URL(page.url()).pathname, '/products/editor');
  const cookies = await context.cookies();
  const session = cookies.find((c) => c.name === 'seatkeeper_session');
  assert.ok(session, 'a session cookie');
  assert.equal(session.httpOnly, true);
  assert.equal(session.sameSite, 'Strict');
  assert.ok(!session.value.includes(keys.adminKey), 'the cookie is not the key');
});

test('the header has the tabs, the organization and the cog', async () => {
  await page.goto(server.baseURL);
  await hydrated(page);
  const nav = page.getByRole('navigation');
  await nav.getByRole('link', { name: 'Licenses' }).waitFor();
  await nav.getByRole('link', { name: 'Devices' }).waitFor();
  await page.getByText('Acme Corp', { exact: true }).waitFor();
  await page.getByRole('link', { name: 'Settings' }).waitFor();
  await page.getByRole('button', { name: 'Sign out' }).waitFor();
});

test('the Licenses screen shows seats per product and switches auto-assign at once', async () => {
  await page.goto(server.baseURL);
  await hydrated(page);
  await page.getByRole('heading', { name: 'Licenses' }).waitFor();
  for (const column of ['Product', 'Seats', 'Assigned', 'Available', 'Auto-assign']) {
    await page.getByRole('columnheader', { name: column }).waitFor();
  }
  const editor = page.getByRole('row', { name: /Editor Pro/ });
  assert.deepEqual(await editor.getByRole('cell').allTextContents().then((cells) => cells.slice(0, 3)), ['3', '2', '1']);
  assert.equal(await page.getByRole('link', { name: 'Editor Pro' }).getAttribute('href'), '/products/editor');
  await screenshot(page, 'licenses');

  const viewer = page.getByRole('switch', { name: 'Auto-assign Viewer' });
  assert.equal(await viewer.isChecked(), false);
  await Promise.all([page.waitForResponse((r) => r.url().includes('/api/set_auto_assign')), viewer.click()]);
  assert.equal((await admin(server.baseURL, keys.adminKey, '/products/viewer')).auto_assign, true, 'saved without a Save button');
  await page.reload();
  assert.equal(await page.getByRole('switch', { name: 'Auto-assign Viewer' }).isChecked(), true);

  // Flipped twice in a row: the second waits for the first to be saved, and
  // the screen ends where the server does.
  await hydrated(page);
  const again = page.getByRole('switch', { name: 'Auto-assign Viewer' });
  await again.click();
  await again.click();
  await page.waitForFunction(() => !document.querySelector('[aria-label="Auto-assign Viewer"]').disabled);
  assert.equal(await again.isChecked(), true);
  assert.equal((await admin(server.baseURL, keys.adminKey, '/products/viewer')).auto_assign, true, 'the screen and the server agree');
  assert.equal((await checkIn(server.baseURL, keys.productKey, 'viewer', 'NEW-VIEWER')).licensed, true,
    'auto-assign is on: a new device gets the free Viewer seat');
});

test('an over-allocated product stands out', async () => {
  server.cli(['product', 'set-seats', '--org', 'Acme Corp', '--code', 'editor', '--seats', '1']);
  await page.goto(server.baseURL);
  await hydrated(page);
  await page.getByRole('row', { name: /Editor Pro/ }).getByText('Over-allocated').waitFor();
  await screenshot(page, 'licenses-over-allocated');
  server.cli(['product', 'set-seats', '--org', 'Acme Corp', '--code', 'editor', '--seats', '3']);
});

test('the Product screen lists the holders and revokes a seat at once', async () => {
  await page.goto(server.baseURL);
  await hydrated(page);
  await page.getByRole('link', { name: 'Editor Pro' }).click();
  await page.getByRole('heading', { name: 'Editor Pro' }).waitFor();
  await page.getByRole('link', { name: 'LAPTOP-001' }).waitFor();
  await screenshot(page, 'product');
  await page.getByRole('button', { name: 'Revoke LAPTOP-002' }).click();
  await page.getByRole('link', { name: 'LAPTOP-002' }).waitFor({ state: 'detached' });
  assert.equal((await admin(server.baseURL, keys.adminKey, '/products/editor')).assigned, 1);
  assert.equal((await checkIn(server.baseURL, keys.productKey, 'editor', 'LAPTOP-002')).reason, 'revoked_by_admin');
});

test('the Product screen charts seat usage over 30 or 90 days, and Licenses shows each trend', async () => {
  await page.goto(`${server.baseURL}/products/editor`);
  await hydrated(page);
  // A product with one day of readings says so, and draws its seat count
  // across the range instead of a lone dot.
  const chart = page.getByRole('img', { name: /^History starts today: \d+ of \d+ seats assigned/ });
  await chart.waitFor();
  assert.equal(await chart.locator('polyline').count(), 2, 'assigned and seats');
  assert.equal(await chart.locator('line.latest').count(), 0, 'no lone dot');
  await page.locator('figure.usage figcaption').getByText('History starts today').waitFor();
  await page.getByRole('link', { name: '90 days' }).click();
  await page.getByRole('img', { name: /^History starts today/ }).waitFor();
  await screenshot(page, 'product-usage');
  await page.getByRole('navigation').getByRole('link', { name: 'Licenses' }).click();
  const trend = page.getByRole('row', { name: /Editor Pro/ }).getByRole('img', { name: /^Assigned over 30 days/ });
  await trend.waitFor();
  assert.equal(await trend.locator('line.latest').count(), 1, 'the latest reading marked');
  await screenshot(page, 'licenses-trend');
});

test('the Product screen sets how long signed licenses stay valid', async () => {
  await page.goto(`${server.baseURL}/products/editor`);
  await hydrated(page);
  const days = page.getByLabel('Signed licenses stay valid for');
  assert.equal(await days.inputValue(), '7');
  await days.fill('30');
  await submit(page, page.locator('form').filter({ has: days }).getByRole('button', { name: 'Save' }));
  for (let tries = 0; ; tries++) {
    const policy = await admin(server.baseURL, keys.adminKey, '/products/editor/policy');
    if (policy.license_days === 30) break;
    assert.ok(tries < 50, `saved: ${JSON.stringify(policy)}`);
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  const answer = await checkIn(server.baseURL, keys.productKey, 'editor', 'LAPTOP-001');
  const claims = JSON.parse(Buffer.from(answer.license.split('.')[1], 'base64url').toString());
  assert.equal(claims.exp - claims.iat, 30 * 86400);

  assert.equal(await days.inputValue(), '30', 'the page that comes back shows it');
  await days.fill('0');
  await days.evaluate((input) => input.removeAttribute('min'));
  await submit(page, page.locator('form').filter({ has: days }).getByRole('button', { name: 'Save' }));
  await page.getByRole('alert').filter({ hasText: '1 to 365' }).waitFor();
  assert.equal((await admin(server.baseURL, keys.adminKey, '/products/editor/policy')).license_days, 30, 'nothing changed');
});

test('the Product screen sets when idle seats are reclaimed, and the Licenses screen shows it', async () => {
  await page.goto(`${server.baseURL}/products/viewer`);
  await hydrated(page);
  const days = page.getByLabel('Reclaim seats of devices not seen for');
  assert.equal(await days.inputValue(), '', 'never, by default');
  await days.fill('30');
  await submit(page, page.locator('form').filter({ has: days }).getByRole('button', { name: 'Save' }));
  for (let tries = 0; ; tries++) {
    const policy = await admin(server.baseURL, keys.adminKey, '/products/viewer/policy');
    if (policy.reclaim_after_days === 30) break;
    assert.ok(tries < 50, `saved: ${JSON.stringify(policy)}`);
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  await page.getByRole('navigation').getByRole('link', { name: 'Licenses' }).click();
  await page.getByRole('row', { name: /Viewer/ }).getByText('Idle seats reclaimed after 30 days').waitFor();

  await page.goto(`${server.baseURL}/products/viewer`);
  await hydrated(page);
  await days.fill('');
  await page.locator('form').filter({ has: days }).getByRole('button', { name: 'Save' }).click();
  for (let tries = 0; ; tries++) {
    const policy = await admin(server.baseURL, keys.adminKey, '/products/viewer/policy');
    if (policy.reclaim_after_days === null) break;
    assert.ok(tries < 50, `turned off: ${JSON.stringify(policy)}`);
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
});

test('the Activity screen lists every change, filters it and downloads it as CSV', async () => {
  await page.getByRole('link', { name: 'Activity' }).click();
  await page.getByRole('heading', { name: 'Activity' }).waitFor();
  await hydrated(page);
  const revoked = page.getByRole('row').filter({ hasText: 'Seat revoked' });
  await revoked.filter({ hasText: 'LAPTOP-002' }).waitFor();
  assert.match(await revoked.first().textContent(), /Admin \(screens\)/, 'the revoke on the Product screen, by this admin');
  assert.ok(await page.getByRole('row').filter({ hasText: 'Device check-in' }).count() > 0, 'auto-assignments by devices');
  await screenshot(page, 'activity');

  await page.getByLabel('What').selectOption('seat_revoked');
  await page.getByRole('button', { name: 'Apply' }).click();
  await page.waitForURL(/kind=seat_revoked/);
  await page.getByRole('row').filter({ hasText: 'Device check-in' }).first().waitFor({ state: 'detached' });
  const rows = await page.locator('tbody tr').count();
  assert.equal(rows, await page.getByRole('row').filter({ hasText: 'Seat revoked' }).count(), 'only revokes are left');

  const csvLink = page.getByRole('link', { name: 'Download CSV' });
  const href = await csvLink.getAttribute('href');
  assert.match(href, /^\/activity\.csv\?.*kind=seat_revoked/);
  const csv = await page.evaluate(async (url) => (await fetch(url)).text(), href);
  const lines = csv.trim().split('\r\n');
  assert.equal(lines[0], 'at,actor,kind,product,serial,detail');
  assert.equal(lines.length - 1, rows, 'the download holds what the screen shows');
  assert.ok(lines.slice(1).every((line) => line.includes(',seat_revoked,')));
});

test('the Devices screen lists, searches, deletes and ignores devices', async () => {
  for (let i = 0; i < 60; i++) await checkIn(server.baseURL, keys.productKey, 'viewer', `FLEET-${String(i).padStart(3, '0')}`);
  await page.getByRole('navigation').getByRole('link', { name: 'Devices' }).click();
  await page.getByRole('heading', { name: 'Devices' }).waitFor();
  for (const column of ['Serial number', 'First seen', 'Last seen', 'Seats assigned']) {
    await page.getByRole('columnheader', { name: column }).waitFor();
  }
  const seen = page.getByRole('row', { name: /DESK-7/ }).locator('time').first();
  assert.match(await seen.textContent(), /just now|min ago/);
  assert.match(await seen.getAttribute('title'), /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/, 'the exact UTC time on hover');
  await screenshot(page, 'devices');

  await page.getByRole('link', { name: 'Next page →' }).click();
  await page.getByRole('link', { name: '← First page' }).waitFor();

  await page.getByLabel('Search serial numbers').fill('laptop');
  await submit(page, page.getByRole('button', { name: 'Search' }));
  await page.getByRole('row', { name: /LAPTOP-001/ }).waitFor();
  await page.getByRole('row', { name: /DESK-7/ }).waitFor({ state: 'detached' });
  assert.equal(await page.getByRole('row').count(), 3, 'a header and the two laptops');
  await screenshot(page, 'devices-search');

  await hydrated(page);
  let asked = confirmDialog(page);
  await submit(page, page.getByRole('button', { name: 'Delete LAPTOP-002' }));
  assert.match(await asked, /^Delete LAPTOP-002\?/);
  await page.getByRole('row', { name: /LAPTOP-002/ }).waitFor({ state: 'detached' });

  await page.getByLabel('Search serial numbers').fill('');
  await submit(page, page.getByRole('button', { name: 'Search' }));
  await hydrated(page);
  asked = confirmDialog(page);
  await submit(page, page.getByRole('button', { name: 'Ignore DESK-7' }));
  assert.match(await asked, /^Ignore DESK-7\?/);
  await page.getByRole('row', { name: /DESK-7/ }).waitFor({ state: 'detached' });
  assert.equal((await checkIn(server.baseURL, keys.productKey, 'viewer', 'DESK-7')).reason, 'device_ignored');
  assert.equal((await admin(server.baseURL, keys.adminKey, '/devices/DESK-7')).error?.code, 'unknown_device');
});

test('the Devices screen applies one action to the selected devices, or to every match, and says what it did', async () => {
  await page.getByLabel('Search serial numbers').fill('FLEET-00');
  await submit(page, page.getByRole('button', { name: 'Search' }));
  await page.getByRole('row', { name: /FLEET-009/ }).waitFor();
  await page.getByRole('checkbox', { name: 'Select FLEET-000' }).check();
  await page.getByRole('checkbox', { name: 'Select FLEET-001' }).check();
  await page.getByLabel('With the selected devices').selectOption('delete');
  await hydrated(page);
  let asked = confirmDialog(page);
  await submit(page, page.getByRole('button', { name: 'Apply' }));
  assert.match(await asked, /selected devices/);
  await page.getByRole('status').filter({ hasText: 'deleted 2' }).waitFor();
  await page.getByRole('row', { name: /FLEET-000/ }).waitFor({ state: 'detached' });
  assert.equal((await admin(server.baseURL, keys.adminKey, '/devices/FLEET-001')).error?.code, 'unknown_device');

  await page.getByLabel('Search serial numbers').fill('FLEET-01');
  await submit(page, page.getByRole('button', { name: 'Search' }));
  await page.getByRole('row', { name: /FLEET-019/ }).waitFor();
  await page.getByLabel('With the selected devices').selectOption('ignore');
  await page.getByRole('checkbox', { name: /every device matching/ }).check();
  await hydrated(page);
  asked = confirmDialog(page);
  await submit(page, page.getByRole('button', { name: 'Apply' }));
  assert.match(await asked, /selected devices/);
  await page.getByRole('status').filter({ hasText: 'ignored 10' }).waitFor();
  await screenshot(page, 'devices-bulk');
  assert.equal((await checkIn(server.baseURL, keys.productKey, 'viewer', 'FLEET-015')).reason, 'device_ignored');
  await page.getByLabel('Search serial numbers').fill('');
  await submit(page, page.getByRole('button', { name: 'Search' }));
});

test('the Device screen, opened by deep link, assigns and unassigns licenses', async () => {
  await page.goto(`${server.baseURL}/devices/LAPTOP-001`);
  await hydrated(page);
  await page.getByRole('heading', { name: 'LAPTOP-001' }).waitFor();
  await page.getByRole('heading', { name: 'Assigned Licenses' }).waitFor();
  const editor = page.getByRole('checkbox', { name: 'Assigned Editor Pro' });
  const viewer = page.getByRole('checkbox', { name: 'Assigned Viewer' });
  assert.equal(await editor.isChecked(), true);
  assert.equal(await viewer.isChecked(), false);
  await screenshot(page, 'device');

  // The one Viewer seat is NEW-VIEWER's: checking says so and stays unchecked.
  await viewer.click();
  const alert = page.getByRole('alert');
  await alert.waitFor();
  assert.match(await alert.textContent(), /No seats available/);
  assert.equal(await viewer.isChecked(), false, 'the box stays unchecked');
  assert.equal((await admin(server.baseURL, keys.adminKey, '/devices/LAPTOP-001')).seats_assigned, 1);
  await screenshot(page, 'device-no-seats');

  const seats = page.locator('dl.facts dd').nth(2);
  assert.equal(await seats.textContent(), '1');
  await Promise.all([page.waitForResponse((r) => r.url().includes('/api/set_license')), editor.uncheck()]);
  await page.waitForFunction(() => !document.querySelector('[aria-label="Assigned Editor Pro"]').checked);
  assert.equal((await admin(server.baseURL, keys.adminKey, '/devices/LAPTOP-001')).seats_assigned, 0);
  await page.waitForFunction(() => document.querySelector('dl.facts dd:nth-of-type(3)').textContent === '0');
  await Promise.all([page.waitForResponse((r) => r.url().includes('/api/set_license')), editor.check()]);
  assert.equal(await editor.isChecked(), true);
  assert.equal((await admin(server.baseURL, keys.adminKey, '/devices/LAPTOP-001')).seats_assigned, 1);
  await page.waitForFunction(() => document.querySelector('dl.facts dd:nth-of-type(3)').textContent === '1');
  assert.equal(new URL(page.url()).pathname, '/devices/LAPTOP-001', 'all of it without leaving the page');
});

test('a serial with markup and quotes in it is text on the page and in its island', async () => {
  const serial = `<i>"O'Neil" & Co <x>`;
  const path = `/devices/${encodeURIComponent(serial)}`;
  assert.equal((await checkIn(server.baseURL, keys.productKey, 'editor', serial)).licensed, true);
  await page.goto(`${server.baseURL}${path}`);
  await hydrated(page);
  await page.getByRole('heading', { name: serial, exact: true }).waitFor();
  assert.equal(await page.locator('i').count(), 0, 'no element made of the serial');
  const editor = page.getByRole('checkbox', { name: 'Assigned Editor Pro' });
  assert.equal(await editor.isChecked(), true);
  await Promise.all([page.waitForResponse((r) => r.url().includes('/api/set_license')), editor.uncheck()]);
  assert.equal((await admin(server.baseURL, keys.adminKey, path)).seats_assigned, 0, 'the island posted this serial');
});

test('the Device screen asks before deleting a device, then goes back to the list', async () => {
  await page.goto(`${server.baseURL}/devices/FLEET-050`);
  await hydrated(page);
  const posts = [];
  page.on('request', (request) => { if (request.method() === 'POST') posts.push(request.url()); });
  let asked = confirmDialog(page, { accept: false });
  await page.getByRole('button', { name: 'Delete device' }).click();
  assert.match(await asked, /^Delete FLEET-050\?/);
  await new Promise((resolve) => setTimeout(resolve, 300));
  assert.deepEqual(posts, [], 'nothing posted without a yes');
  assert.equal((await admin(server.baseURL, keys.adminKey, '/devices/FLEET-050')).serial, 'FLEET-050', 'not deleted');
  assert.equal(new URL(page.url()).pathname, '/devices/FLEET-050');

  asked = confirmDialog(page);
  await submit(page, page.getByRole('button', { name: 'Delete device' }));
  assert.match(await asked, /^Delete FLEET-050\?/);
  assert.equal(new URL(page.url()).pathname, '/devices');
  await page.getByRole('heading', { name: 'Devices' }).waitFor();
  assert.equal((await admin(server.baseURL, keys.adminKey, '/devices/FLEET-050')).error?.code, 'unknown_device');
});

test('the Product screen makes seats floating, shows each lease, and Licenses counts the seats in use', async () => {
  server.cli(['product', 'add', '--org', 'Acme Corp', '--code', 'studio', '--name', 'Studio', '--seats', '2', '--auto-assign']);
  await page.goto(`${server.baseURL}/products/studio`);
  await hydrated(page);
  const model = page.getByLabel('Seats are');
  const minutes = page.getByLabel('Leases last');
  assert.equal(await model.inputValue(), 'assigned', 'assigned, by default');
  await model.selectOption('floating');
  await minutes.fill('30');
  await submit(page, page.locator('form').filter({ has: model }).getByRole('button', { name: 'Save' }));
  for (let tries = 0; ; tries++) {
    const policy = await admin(server.baseURL, keys.adminKey, '/products/studio/policy');
    if (policy.seat_model === 'floating' && policy.lease_minutes === 30) break;
    assert.ok(tries < 50, `saved: ${JSON.stringify(policy)}`);
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  for (const serial of ['LAPTOP-001', 'LAPTOP-002']) {
    const answer = await checkIn(server.baseURL, keys.productKey, 'studio', serial);
    assert.ok(answer.licensed && answer.lease_expires_at, JSON.stringify(answer));
  }
  await page.goto(`${server.baseURL}/products/studio`);
  await hydrated(page);
  assert.equal(await model.inputValue(), 'floating');
  await page.getByText('2 of 2 floating seats in use now').waitFor();
  await page.getByRole('columnheader', { name: 'Lease ends' }).waitFor();
  assert.equal(await page.getByRole('row', { name: /LAPTOP-001/ }).locator('time').nth(2).textContent(), 'in 30 min');
  await screenshot(page, 'product-floating');

  const released = await fetch(`${server.baseURL}/api/v1/checkin/release`, {
    method: 'POST',
    headers: { authorization: `Bearer ${keys.productKey}`, 'content-type': 'application/json' },
    body: JSON.stringify({ product: 'studio', serial: 'LAPTOP-001' }),
  });
  assert.deepEqual(await released.json(), { released: true });
  await page.getByRole('navigation').getByRole('link', { name: 'Licenses' }).click();
  const row = page.getByRole('row', { name: /Studio/ });
  await row.getByText('Floating seats: 30-minute leases').waitFor();
  await row.getByText('in use now').waitFor();
  assert.deepEqual(await row.locator('td.num').allTextContents(), ['2', '1in use now', '1']);
  await screenshot(page, 'licenses-floating');
});

test('the Product screen lists the devices waiting for a seat and takes one out of the line', async () => {
  server.cli(['product', 'add', '--org', 'Acme Corp', '--code', 'lab', '--name', 'Lab', '--seats', '1', '--auto-assign']);
  await checkIn(server.baseURL, keys.productKey, 'lab', 'LAB-HOLDER');
  for (const [serial, place] of [['LAB-W1', 1], ['LAB-W2', 2]]) {
    const response = await fetch(`${server.baseURL}/api/v1/checkin`, {
      method: 'POST',
      headers: { authorization: `Bearer ${keys.productKey}`, 'content-type': 'application/json' },
      body: JSON.stringify({ product: 'lab', serial, queue: true }),
    });
    assert.equal((await response.json()).queue_position, place);
  }
  await page.goto(`${server.baseURL}/products/lab`);
  await hydrated(page);
  const line = page.getByRole('region', { name: 'Waiting for a seat' });
  assert.deepEqual(await line.getByRole('rowheader').allTextContents(), ['LAB-W1', 'LAB-W2']);
  await screenshot(page, 'product-waiting-line');
  await submit(page, line.getByRole('button', { name: 'Remove LAB-W1 from the line' }));
  await page.getByRole('heading', { name: 'Lab' }).waitFor();
  assert.deepEqual(await page.getByRole('region', { name: 'Waiting for a seat' }).getByRole('rowheader').allTextContents(), ['LAB-W2']);
  const waiting = await admin(server.baseURL, keys.adminKey, '/products/lab/queue');
  assert.deepEqual(waiting.items.map((w) => [w.position, w.serial]), [[1, 'LAB-W2']]);
});

test('a subscription term shows on Licenses and Product as it nears, then plainly once it has ended', async () => {
  const day = (offset) => new Date(Date.now() + offset * 86_400_000).toISOString().slice(0, 10);
  server.cli(['product', 'set-term', '--org', 'Acme Corp', '--code', 'viewer', '--valid-until', day(12)]);
  await page.goto(server.baseURL);
  await hydrated(page);
  await page.getByRole('row', { name: /Viewer/ }).getByText('Subscription expires in 12 days').waitFor();
  await screenshot(page, 'licenses-term');

  server.cli(['product', 'set-term', '--org', 'Acme Corp', '--code', 'viewer', '--valid-until', day(-1)]);
  const answer = await checkIn(server.baseURL, keys.productKey, 'viewer', 'TERM-1');
  assert.deepEqual([answer.licensed, answer.reason], [false, 'subscription_expired']);
  await page.goto(`${server.baseURL}/products/viewer`);
  await hydrated(page);
  await page.getByText(`Subscription expired on ${day(-1)}`).waitFor();
  await screenshot(page, 'product-term-expired');
  server.cli(['product', 'set-term', '--org', 'Acme Corp', '--code', 'viewer', '--clear']);
  await page.goto(server.baseURL);
  await hydrated(page);
  assert.equal(await page.getByRole('row', { name: /Viewer/ }).getByText(/Subscription/).count(), 0);
});

test('refusals show on Licenses and in the Product chart, whose history starts today', async () => {
  server.cli(['product', 'add', '--org', 'Acme Corp', '--code', 'full', '--name', 'Full House', '--seats', '1', '--auto-assign']);
  for (const serial of ['FULL-1', 'FULL-2', 'FULL-3', 'FULL-2']) await checkIn(server.baseURL, keys.productKey, 'full', serial);
  await page.goto(server.baseURL);
  await hydrated(page);
  await page.getByRole('row', { name: /Full House/ }).getByText('2 devices refused this week').waitFor();
  await page.goto(`${server.baseURL}/products/full`);
  await hydrated(page);
  const chart = page.locator('figure.usage');
  await chart.locator('figcaption').getByText('History starts today').waitFor();
  await chart.locator('figcaption').getByText('Devices refused').waitFor();
  assert.equal(await chart.locator('line.latest').count(), 0, 'no lone dot');
  await screenshot(page, 'product-new-history-refusals');
});

test('the Settings screen adds a webhook, shows its secret once, lists its deliveries and deletes it', async () => {
  const receiver = await startReceiver();
  try {
    await page.getByRole('link', { name: 'Settings' }).click();
    await page.getByRole('heading', { name: 'Webhooks' }).waitFor();
    await hydrated(page);
    await page.getByText('No webhook yet.').waitFor();

    // No event chosen: the form says so and nothing is added.
    await page.getByLabel('Endpoint URL').fill(receiver.url);
    await submit(page, page.getByRole('button', { name: 'Add webhook' }));
    await page.getByRole('alert').filter({ hasText: 'Choose at least one event' }).waitFor();
    assert.deepEqual((await admin(server.baseURL, keys.adminKey, '/webhooks')).items, []);

    await page.getByLabel('Endpoint URL').fill(receiver.url);
    await page.getByRole('checkbox', { name: /A device is ignored/ }).check();
    await page.getByRole('checkbox', { name: /A seat is assigned/ }).check();
    await submit(page, page.getByRole('button', { name: 'Add webhook' }));
    const secret = await page.getByRole('textbox', { name: 'New webhook signing secret' }).inputValue();
    assert.match(secret, /^whsec_[A-Za-z0-9+/]{43}=$/);
    const [hook] = (await admin(server.baseURL, keys.adminKey, '/webhooks')).items;
    assert.deepEqual([hook.url, hook.events], [receiver.url, ['seat.assigned', 'device.ignored']], 'in the order the form lists them');
    await screenshot(page, 'settings-webhook-added');

    // An event reaches the receiver, signed with that secret.
    await adminCall(server.baseURL, keys.adminKey, 'POST', '/devices/HOOK-TEST-1/ignore');
    const [delivery] = await receiver.waitFor(1);
    assert.equal(delivery.headers['webhook-signature'], webhookSignature(secret, delivery));
    assert.deepEqual(JSON.parse(delivery.body).data, { serial: 'HOOK-TEST-1', by: 'admin_api', removed: false });
    await adminCall(server.baseURL, keys.adminKey, 'DELETE', '/ignored/HOOK-TEST-1');

    await page.reload();
    const item = page.getByRole('listitem', { name: `Webhook ${receiver.url}` });
    await item.getByRole('cell', { name: '200' }).waitFor();
    await item.getByRole('cell', { name: 'device.ignored' }).waitFor();
    assert.equal(await page.getByRole('textbox', { name: 'New webhook signing secret' }).count(), 0, 'shown only once');
    await screenshot(page, 'settings-webhooks');

    await submit(page, page.getByRole('button', { name: `Delete webhook ${receiver.url}` }));
    await page.getByText('No webhook yet.').waitFor();
    assert.deepEqual((await admin(server.baseURL, keys.adminKey, '/webhooks')).items, []);
  } finally {
    await receiver.close();
  }
});

test('the Settings screen copies and rotates the product key and un-ignores devices', async () => {
  await context.grantPermissions(['clipboard-read', 'clipboard-write'], { origin: server.baseURL });
  await page.getByRole('link', { name: 'Settings' }).click();
  await page.getByRole('heading', { name: 'Settings' }).waitFor();
  await hydrated(page);
  const key = page.getByRole('textbox', { name: 'Product API key' });
  assert.equal(await key.inputValue(), keys.productKey);
  await page.getByRole('button', { name: 'Copy' }).click();
  await page.getByRole('button', { name: 'Copied' }).waitFor();
  assert.equal(await page.evaluate(() => navigator.clipboard.readText()), keys.productKey);
  await screenshot(page, 'settings');

  await submit(page, page.getByRole('button', { name: 'Rotate product key' }));
  await page.waitForFunction((old) => document.getElementById('product-key')?.value !== old, keys.productKey);
  const rotated = await key.inputValue();
  assert.match(rotated, /^sk_prod_/);
  assert.notEqual(rotated, keys.productKey);
  assert.equal((await checkIn(server.baseURL, keys.productKey, 'editor', 'LAPTOP-001')).error?.code, 'invalid_api_key');
  keys.productKey = rotated;

  await page.getByRole('button', { name: 'Un-ignore DESK-7' }).click();
  await page.getByRole('button', { name: 'Un-ignore DESK-7' }).waitFor({ state: 'detached' });
  assert.equal((await checkIn(server.baseURL, keys.productKey, 'viewer', 'DESK-7')).reason, 'no_seats_available',
    'known again, and the one Viewer seat is taken');
});

test('rotating the administration key shows the new key once and keeps this browser signed in', async () => {
  await page.getByRole('button', { name: 'Rotate administration key' }).click();
  const fresh = page.getByRole('textbox', { name: 'New administration API key' });
  await fresh.waitFor();
  const newKey = await fresh.inputValue();
  assert.match(newKey, /^sk_admin_/);
  assert.equal((await admin(server.baseURL, keys.adminKey, '/settings')).error?.code, 'invalid_api_key');
  keys.adminKey = newKey;
  await page.reload();
  await page.getByRole('heading', { name: 'Settings' }).waitFor();
  assert.equal(await page.getByRole('textbox', { name: 'New administration API key' }).count(), 0, 'shown only once');
});

test('signing out ends the session', async () => {
  await page.getByRole('button', { name: 'Sign out' }).click();
  await page.getByLabel('Administration API key').waitFor();
  await page.goto(server.baseURL);
  await page.getByLabel('Administration API key').waitFor();
  await screenshot(page, 'signed-out');
  assert.deepEqual(problems, [], 'no errors in the browser');
});

test('narrow screens keep every screen usable', async () => {
  const narrow = await launchBrowser({ width: 360 });
  try {
    await narrow.page.goto(server.baseURL);
    await narrow.page.getByLabel('Administration API key').fill(keys.adminKey);
    await narrow.page.getByRole('button', { name: 'Sign in' }).click();
    await narrow.page.getByRole('heading', { name: 'Licenses' }).waitFor();
    for (const [name, path] of [['narrow-licenses', '/'], ['narrow-devices', '/devices'], ['narrow-device', '/devices/LAPTOP-001'], ['narrow-settings', '/settings'], ['narrow-activity', '/activity']]) {
      await narrow.page.goto(`${server.baseURL}${path}`);
      await hydrated(narrow.page);
      const overflow = await narrow.page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
      assert.ok(overflow <= 1, `${path} fits in 360 px (overflows by ${overflow})`);
      if (path === '/devices') {
        // Every row's controls are on the screen, not past the right edge of
        // the table's scroll box; the serial links to the Device screen.
        const outside = await narrow.page.evaluate(() => [...document.querySelectorAll('tbody tr')].flatMap((row) =>
          [...row.querySelectorAll('a, button, input[type="checkbox"]')]
            .filter((control) => { const box = control.getBoundingClientRect(); return box.left < 0 || box.right > window.innerWidth; })
            .map((control) => `${row.querySelector('th').textContent}: ${control.getAttribute('aria-label') ?? control.textContent}`)));
        assert.deepEqual(outside, [], 'every row action within 360 px');
        const links = await narrow.page.locator('tbody th a').count();
        assert.equal(links, await narrow.page.locator('tbody tr').count(), 'each serial links to its Device screen');
        // The bulk bar's selects start at one left edge.
        const lefts = await narrow.page.locator('form.bulk select').evaluateAll((selects) => selects.map((s) => Math.round(s.getBoundingClientRect().left)));
        assert.equal(new Set(lefts).size, 1, `the bulk bar's controls line up (${lefts})`);
      }
      await screenshot(narrow.page, name);
    }
  } finally {
    await narrow.browser.close();
  }
});
