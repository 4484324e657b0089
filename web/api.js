// REST client and the tokens behind it.
//
// The access token lives in memory only. The refresh token lives in memory
// while the page runs and is parked in sessionStorage only while the page
// unloads, so it survives a reload of this tab, is not shared with other
// tabs (not even a duplicated one, which copies sessionStorage), and is gone
// when the tab closes. See docs/web-client.md for the threats this leaves.

const BASE = '/api/v1';
const REFRESH_KEY = 'parley.refresh_token';

/** An error answer from the server, with the contract's envelope. */
export class ApiError extends Error {
  constructor(status, body) {
    const error = (body && body.error) || {};
    super(error.message || `request failed (${status})`);
    this.status = status;
    this.code = error.code || 'http_' + status;
    this.details = error.details || {};
  }
}

let accessToken = null;
// Taken out of sessionStorage at start; put back only on `pagehide`.
let refreshToken = sessionStorage.getItem(REFRESH_KEY);
sessionStorage.removeItem(REFRESH_KEY);
window.addEventListener('pagehide', () => {
  if (refreshToken) sessionStorage.setItem(REFRESH_KEY, refreshToken);
});
window.addEventListener('pageshow', (event) => {
  // Back from the back/forward cache: this page runs on, so take it back.
  if (event.persisted) sessionStorage.removeItem(REFRESH_KEY);
});
let accessExpiresAt = 0;
let refreshTimer = null;
let refreshing = null;
const listeners = { tokens: [], signedOut: [] };

/** `on('tokens', fn)` after every new token pair; `on('signedOut', fn(reason))`. */
export function on(event, fn) {
  listeners[event].push(fn);
}

function emit(event, arg) {
  for (const fn of listeners[event]) fn(arg);
}

export function getAccessToken() {
  return accessToken;
}

export function hasStoredSession() {
  return Boolean(refreshToken);
}

/** Keeps a token response in memory. */
export function setTokens(reply) {
  accessToken = reply.access_token;
  accessExpiresAt = Date.now() + reply.expires_in * 1000;
  refreshToken = reply.refresh_token;
  scheduleRefresh(reply.expires_in);
  emit('tokens', reply);
}

/** Forgets both tokens (no request). */
export function clearTokens() {
  accessToken = null;
  accessExpiresAt = 0;
  refreshToken = null;
  sessionStorage.removeItem(REFRESH_KEY);
  if (refreshTimer) clearTimeout(refreshTimer);
  refreshTimer = null;
}

function scheduleRefresh(expiresIn) {
  if (refreshTimer) clearTimeout(refreshTimer);
  // Refresh at 80% of the lifetime (at least 5 s before expiry), so the
  // socket's next reconnect and every request carry a live token.
  const lead = Math.max(5, Math.min(60, expiresIn * 0.2));
  const delay = Math.max(1, expiresIn - lead) * 1000;
  refreshTimer = setTimeout(() => {
    refresh().catch(() => {});
  }, delay);
}

/** Is the access token about to expire (within `marginMs`)? */
export function accessExpiresSoon(marginMs = 10_000) {
  return !accessToken || Date.now() > accessExpiresAt - marginMs;
}

/**
 * Trades the stored refresh token for a new pair. One at a time: callers
 * during a refresh share it (the old refresh token is spent by the first
 * use, and a second use would revoke the session).
 */
export function refresh() {
  if (refreshing) return refreshing;
  const token = refreshToken;
  if (!token) return Promise.reject(new ApiError(401, { error: { code: 'invalid_refresh_token', message: 'Please sign in.' } }));
  refreshing = (async () => {
    try {
      const response = await fetch(BASE + '/auth/refresh', {
        method: 'POST',
        headers: { 'Content-Type': 'application/json' },
        body: JSON.stringify({ refresh_token: token }),
      });
      const body = await readBody(response);
      if (!response.ok) {
        const error = new ApiError(response.status, body);
        if (response.status === 401 || response.status === 403) {
          clearTokens();
          emit('signedOut', 'Your session has ended. Please sign in again.');
        }
        throw error;
      }
      setTokens(body);
      return body;
    } finally {
      refreshing = null;
    }
  })();
  return refreshing;
}

async function readBody(response) {
  if (response.status === 204) return null;
  const text = await response.text();
  if (!text) return null;
  try {
    return JSON.parse(text);
  } catch {
    return null;
  }
}

/**
 * `api('GET', '/rooms')`, `api('POST', '/rooms', {name})`. Adds the bearer
 * token, refreshes it once on `invalid_token`, and throws ApiError on any
 * error answer.
 */
export async function api(method, path, body, { auth = true, retried = false } = {}) {
  if (auth && accessExpiresSoon(2000) && hasStoredSession()) {
    await refresh().catch(() => {});
  }
  const headers = {};
  let payload;
  if (body instanceof FormData) {
    payload = body;
  } else if (body !== undefined) {
    headers['Content-Type'] = 'application/json';
    payload = JSON.stringify(body);
  }
  if (auth && accessToken) headers.Authorization = 'Bearer ' + accessToken;
  const response = await fetch(BASE + path, { method, headers, body: payload });
  const data = await readBody(response);
  if (response.ok) return data;
  const error = new ApiError(response.status, data);
  if (auth && !retried && response.status === 401 && error.code === 'invalid_token' && hasStoredSession()) {
    await refresh();
    return api(method, path, body, { auth, retried: true });
  }
  if (auth && response.status === 401) {
    clearTokens();
    emit('signedOut', 'Your session has ended. Please sign in again.');
  }
  throw error;
}

/** Does the server have this route? (404/405 from the router means no.) */
export async function probe(method, path, body) {
  try {
    await api(method, path, body);
    return true;
  } catch (error) {
    if (error.status === 404 || error.status === 405) return false;
    // Any other answer (422 for an empty body, 403 …) means the route exists.
    return error.status !== 401;
  }
}

export async function login(loginName, password, totpCode) {
  const body = { login: loginName, password };
  if (totpCode) body.totp_code = totpCode;
  const reply = await api('POST', '/auth/login', body, { auth: false });
  setTokens(reply);
  return reply;
}

export async function register(username, email, password) {
  const reply = await api('POST', '/auth/register', { username, email, password }, { auth: false });
  setTokens(reply);
  return reply;
}

export async function logout() {
  try {
    await api('POST', '/auth/logout');
  } finally {
    clearTokens();
  }
}
