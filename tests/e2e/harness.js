// The test vocabulary: a real Parley server (the binary cargo built) on a
// free port with a temp data dir, Debian's Chromium driven by playwright-core,
// and the few REST calls the tests make behind the browser's back.

import { spawn } from 'node:child_process';
import { mkdtempSync, mkdirSync, rmSync, existsSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join, dirname, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';

const here = dirname(fileURLToPath(import.meta.url));
const repo = resolve(here, '..', '..');

export const PASSWORD = 'Correct-Horse-42';
export const SCREENSHOTS = join(here, 'artifacts', 'screenshots');
export const PHONE = { width: 390, height: 844 };
export const DESKTOP = { width: 1280, height: 800 };

function serverBinary() {
  if (process.env.PARLEY_BIN) return process.env.PARLEY_BIN;
  const target = process.env.CARGO_TARGET_DIR || join(repo, 'target');
  const bin = join(target, 'debug', 'parley');
  if (!existsSync(bin)) throw new Error(`no server binary at ${bin}: run \`cargo build\` or set PARLEY_BIN`);
  return bin;
}

function freePort() {
  return new Promise((ok, fail) => {
    const server = createServer();
    server.unref();
    server.on('error', fail);
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address();
      server.close(() => ok(port));
    });
  });
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/** A Parley server process; `restart()` keeps the port and the data dir. */
export class Server {
  static async start(extraEnv = {}) {
    const server = new Server();
    server.extraEnv = extraEnv;
    server.port = await freePort();
    server.dataDir = mkdtempSync(join(tmpdir(), 'parley-e2e-'));
    server.base = `http://127.0.0.1:${server.port}`;
    await server.boot();
    return server;
  }

  async boot() {
    const env = {
      ...process.env,
      PARLEY_REGISTER_PER_MINUTE: '1000',
      PARLEY_LOGIN_PER_MINUTE: '1000',
      PARLEY_PRESENCE_GRACE_SECS: '1',
      RUST_LOG: process.env.RUST_LOG || 'warn',
      ...this.extraEnv,
    };
    delete env.PARLEY_DATABASE_URL;
    this.log = [];
    this.proc = spawn(serverBinary(), ['serve', '--listen', `127.0.0.1:${this.port}`, '--data-dir', this.dataDir], {
      env, stdio: ['ignore', 'pipe', 'pipe'],
    });
    const keep = (chunk) => { this.log.push(chunk.toString()); if (this.log.length > 200) this.log.shift(); };
    this.proc.stdout.on('data', keep);
    this.proc.stderr.on('data', keep);
    this.exited = new Promise((r) => this.proc.on('exit', r));
    const deadline = Date.now() + 20_000;
    while (Date.now() < deadline) {
      if (this.proc.exitCode !== null) break;
      try {
        const response = await fetch(this.base + '/health');
        if (response.ok) return;
      } catch {
        // not listening yet
      }
      await sleep(100);
    }
    throw new Error('the server did not start:\n' + this.log.join(''));
  }

  async stop() {
    if (!this.proc || this.proc.exitCode !== null) return;
    this.proc.kill('SIGTERM');
    const timer = setTimeout(() => this.proc.kill('SIGKILL'), 10_000);
    await this.exited;
    clearTimeout(timer);
  }

  async restart() {
    await this.stop();
    await this.boot();
  }

  async close() {
    await this.stop();
    rmSync(this.dataDir, { recursive: true, force: true });
  }

  /** A REST call: `server.api('POST', '/rooms', body, token)` → parsed body. */
  async api(method, path, body, token) {
    const headers = {};
    if (body !== undefined) headers['Content-Type'] = 'application/json';
    if (token) headers.Authorization = 'Bearer ' + token;
    const response = await fetch(`${this.base}/api/v1${path}`, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
    const text = await response.text();
    const data = text ? JSON.parse(text) : null;
    if (!response.ok) throw new Error(`${method} ${path} → ${response.status} ${text}`);
    return data;
  }

  /** Registers over REST (for users the test does not drive in a browser). */
  register(username) {
    return this.api('POST', '/auth/register', { username, email: `${username}@example.com`, password: PASSWORD });
  }
}

export async function launchBrowser() {
  return chromium.launch({
    executablePath: process.env.CHROMIUM_PATH || '/usr/bin/chromium',
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
      '--disable-background-networking', '--disable-component-update', '--disable-sync'],
  });
}

/**
 * A browser context and page on the server, collecting console errors and
 * CSP violations (a test fails on any).
 */
export async function openPage(browser, server, { viewport = DESKTOP, colorScheme = 'light' } = {}) {
  const context = await browser.newContext({ viewport, colorScheme, baseURL: server.base });
  const page = await context.newPage();
  page.problems = [];
  page.on('console', (msg) => {
    if (msg.type() === 'error' && !/Failed to load resource|WebSocket connection/.test(msg.text())) {
      page.problems.push(msg.text());
    }
  });
  page.on('pageerror', (error) => page.problems.push(String(error)));
  page.on('dialog', (dialog) => dialog.accept());
  await page.goto('/');
  return page;
}

export async function registerInBrowser(page, username) {
  await page.getByRole('link', { name: 'Create an account' }).click();
  await page.getByLabel('Username').fill(username);
  await page.getByLabel('Email').fill(`${username}@example.com`);
  await page.getByLabel('Password').fill(PASSWORD);
  await page.getByRole('button', { name: 'Create account' }).click();
  await page.getByRole('navigation', { name: 'Rooms' }).waitFor();
}

export async function loginInBrowser(page, login) {
  await page.getByLabel('Username or email').fill(login);
  await page.getByLabel('Password').fill(PASSWORD);
  await page.getByRole('button', { name: 'Sign in' }).click();
  await page.getByRole('navigation', { name: 'Rooms' }).waitFor();
}

export async function screenshot(page, name) {
  mkdirSync(SCREENSHOTS, { recursive: true });
  const { width } = page.viewportSize();
  await page.screenshot({ path: join(SCREENSHOTS, `${name}-${width}.png`) });
}

/** The message list's `<li>`s whose body is exactly `text`. */
export function messagesWithText(page, text) {
  return page.locator('#messages li.message .body').filter({ hasText: exactly(text) });
}

/** The message `<li>` whose body is exactly `text`. */
export function messageItem(page, text) {
  return page.locator('#messages li.message').filter({ has: page.locator('.body', { hasText: exactly(text) }) });
}

function exactly(text) {
  return new RegExp(`^${text.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}$`);
}

export { sleep };
