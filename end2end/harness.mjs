// What the browser tests share: a real `seatkeeper` server on a throwaway
// SQLite database, the operator command line on the same database, the
// check-in API, and Debian's Chromium driven by playwright-core.

import { spawn, spawnSync } from 'node:child_process';
import { createHmac } from 'node:crypto';
import { createServer } from 'node:http';
import { mkdtempSync, mkdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';

export const repo = join(dirname(fileURLToPath(import.meta.url)), '..');
const targetDir = process.env.CARGO_TARGET_DIR || join(repo, 'target');
const binary = join(targetDir, 'release', 'seatkeeper');
const screenshots = join(repo, 'end2end', 'screenshots');

/** Starts the release server on a random port with an empty database. */
export async function startServer() {
  const folder = mkdtempSync(join(tmpdir(), 'seatkeeper-e2e-'));
  const env = {
    ...process.env,
    DATABASE_URL: `sqlite://${join(folder, 'seatkeeper.db')}`,
    LEPTOS_SITE_ROOT: join(repo, 'target', 'site'),
    RUST_LOG: 'info',
  };
  // Private webhooks allowed: the tests' receivers listen on this machine.
  const child = spawn(binary, ['serve', '--addr', '127.0.0.1:0', '--allow-private-webhooks'], { cwd: repo, env, stdio: ['ignore', 'pipe', 'pipe'] });
  let printed = '';
  child.stdout.on('data', (chunk) => { printed += chunk; });
  const baseURL = await new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error('the server did not start within 20 s')), 20_000);
    child.on('exit', (code) => reject(new Error(`the server exited with ${code}`)));
    createInterface({ input: child.stderr }).on('line', (line) => {
      const at = line.indexOf('http://');
      if (at >= 0) {
        clearTimeout(timer);
        resolve(line.slice(at).split(/\s/)[0]);
      }
    });
  });
  return {
    baseURL,
    printed: () => printed,
    /** Runs an operator command on the same database and returns its JSON. */
    cli(args) {
      const run = spawnSync(binary, [...args, '--json'], { cwd: repo, env, encoding: 'utf8' });
      if (run.status !== 0) throw new Error(`seatkeeper ${args.join(' ')} failed: ${run.stderr}`);
      return JSON.parse(run.stdout);
    },
    async stop() {
      if (child.exitCode === null) {
        const exited = new Promise((resolve) => child.once('exit', resolve));
        child.kill('SIGTERM');
        await exited;
      }
      rmSync(folder, { recursive: true, force: true });
    },
  };
}

/** An HTTP receiver for webhooks on a random local port: answers 200 and keeps every request. */
export async function startReceiver() {
  const received = [];
  const server = createServer((request, response) => {
    let body = '';
    request.on('data', (chunk) => { body += chunk; });
    request.on('end', () => {
      received.push({ headers: request.headers, body });
      response.writeHead(200).end();
    });
  });
  await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    url: `http://127.0.0.1:${server.address().port}/hook`,
    received,
    async waitFor(n) {
      for (let waited = 0; received.length < n && waited < 15_000; waited += 50) await new Promise((r) => setTimeout(r, 50));
      return received;
    },
    close: () => new Promise((resolve) => server.close(resolve)),
  };
}

/** The Standard Webhooks signature a delivery must carry for this secret (`whsec_…`). */
export function webhookSignature(secret, { headers, body }) {
  const key = Buffer.from(secret.replace(/^whsec_/, ''), 'base64');
  const signed = `${headers['webhook-id']}.${headers['webhook-timestamp']}.${body}`;
  return `v1,${createHmac('sha256', key).update(signed).digest('base64')}`;
}

/** Calls the admin API with any method. */
export async function adminCall(baseURL, adminKey, method, path) {
  const response = await fetch(`${baseURL}/api/v1/admin${path}`, { method, headers: { authorization: `Bearer ${adminKey}` } });
  return response.json();
}

/** A device checks in with the product key. */
export async function checkIn(baseURL, productKey, product, serial) {
  const response = await fetch(`${baseURL}/api/v1/checkin`, {
    method: 'POST',
    headers: { authorization: `Bearer ${productKey}`, 'content-type': 'application/json' },
    body: JSON.stringify({ product, serial }),
  });
  return response.json();
}

/** Calls the admin API with the administration key. */
export async function admin(baseURL, adminKey, path) {
  const response = await fetch(`${baseURL}/api/v1/admin${path}`, { headers: { authorization: `Bearer ${adminKey}` } });
  return response.json();
}

/**
 * The organization the tests walk through, set up as an operator and devices
 * would: "Acme Corp" with Editor Pro (3 seats, auto-assign on) and Viewer
 * (1 seat, auto-assign off); two laptops hold Editor Pro seats, a desk
 * machine has checked in for Viewer.
 */
export async function seed(server) {
  const org = server.cli(['org', 'create', 'Acme Corp']);
  server.cli(['product', 'add', '--org', 'Acme Corp', '--code', 'editor', '--name', 'Editor Pro', '--seats', '3', '--auto-assign']);
  server.cli(['product', 'add', '--org', 'Acme Corp', '--code', 'viewer', '--name', 'Viewer', '--seats', '1']);
  for (const serial of ['LAPTOP-001', 'LAPTOP-002']) await checkIn(server.baseURL, org.product_key, 'editor', serial);
  await checkIn(server.baseURL, org.product_key, 'viewer', 'DESK-7');
  return { adminKey: org.admin_key, productKey: org.product_key };
}

export async function launchBrowser({ javaScriptEnabled = true, width = 1200 } = {}) {
  const browser = await chromium.launch({
    executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
    args: ['--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-component-update',
      '--disable-sync', '--no-first-run', '--disable-quic'],
  });
  const context = await browser.newContext({ javaScriptEnabled, viewport: { width, height: 800 } });
  const page = await context.newPage();
  const problems = [];
  page.on('pageerror', (error) => problems.push(`page error: ${error}`));
  page.on('console', (message) => {
    // A refused action (401, 409, …) is logged by the browser as a failed load; it is an answer, not a fault.
    if (message.type() === 'error' && !message.text().startsWith('Failed to load resource')) problems.push(`console: ${message.text()}`);
    // An island the bundle lacks is only a warning in the browser; here it is a fault.
    if (message.type() === 'warning' && /island/i.test(message.text())) problems.push(`console: ${message.text()}`);
  });
  return { browser, context, page, problems };
}

/** Waits until the page has hydrated (its WebAssembly is running). */
export async function hydrated(page) {
  await page.waitForFunction(() => document.documentElement.dataset.hydrated === 'true', null, { timeout: 15_000 });
}

/**
 * Clicks what posts a form (or follows a link) and waits for the page that
 * comes back: the screens post their forms as plain HTML, so each answer is
 * a new page.
 */
export async function submit(page, locator) {
  await Promise.all([page.waitForNavigation(), locator.click()]);
}

/**
 * Answers the next confirmation dialog: resolves to its question, so a test
 * can check it was asked.
 */
export function confirmDialog(page, { accept = true } = {}) {
  return new Promise((resolve) => {
    page.once('dialog', async (dialog) => {
      const question = dialog.message();
      await (accept ? dialog.accept() : dialog.dismiss());
      resolve(question);
    });
  });
}

export async function screenshot(page, name) {
  mkdirSync(screenshots, { recursive: true });
  await page.screenshot({ path: join(screenshots, `${name}.png`), fullPage: true });
}
