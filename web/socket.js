// The realtime connection: authenticates with its first frame, resumes every
// room from the last seq this client has, reconnects with backoff and jitter.

const MAX_BACKOFF_MS = 15_000;
const BASE_BACKOFF_MS = 500;

/** Close codes after which reconnecting would not help. */
const CLOSE_REVOKED = 4003;
const CLOSE_UNAUTHENTICATED = 4001;

export class Realtime {
  /**
   * @param {object} hooks
   *   token(): Promise<string|null>  a live access token (refreshing if needed)
   *   lastSeqs(): {room_id: seq}     what to resume from
   *   onEvent(frame)                 every server frame but ack/error/pong
   *   onState(state, detail)         'connecting' | 'online' | 'offline' | 'revoked' | 'unauthenticated'
   */
  constructor(hooks) {
    this.hooks = hooks;
    this.ws = null;
    this.attempt = 0;
    this.timer = null;
    this.stopped = false;
    this.nextRef = 1;
    this.pending = new Map();
    this.pingTimer = null;
  }

  start() {
    this.stopped = false;
    this.connect();
  }

  stop() {
    this.stopped = true;
    clearTimeout(this.timer);
    clearInterval(this.pingTimer);
    if (this.ws) {
      const ws = this.ws;
      this.ws = null;
      ws.onclose = null;
      ws.close(1000, 'bye');
    }
    this.failPending('disconnected');
  }

  get online() {
    return Boolean(this.ws && this.ws.readyState === WebSocket.OPEN && this.ready);
  }

  async connect() {
    if (this.stopped) return;
    this.ready = false;
    this.hooks.onState('connecting');
    let token;
    try {
      token = await this.hooks.token();
    } catch {
      token = null;
    }
    if (this.stopped) return;
    if (!token) {
      this.hooks.onState('unauthenticated');
      return;
    }
    const scheme = location.protocol === 'https:' ? 'wss:' : 'ws:';
    const ws = new WebSocket(`${scheme}//${location.host}/ws`);
    this.ws = ws;
    ws.onopen = () => ws.send(JSON.stringify({ type: 'auth', token }));
    ws.onmessage = (event) => this.receive(ws, event.data);
    ws.onclose = (event) => this.closed(ws, event.code, event.reason);
  }

  receive(ws, data) {
    if (ws !== this.ws) return;
    let frame;
    try {
      frame = JSON.parse(data);
    } catch {
      return;
    }
    switch (frame.type) {
      case 'ready':
        this.ready = true;
        this.attempt = 0;
        this.hooks.onEvent(frame);
        // Resume first: anything since our last seq is replayed in order.
        this.request({ type: 'resume', rooms: this.hooks.lastSeqs() }).catch(() => {});
        this.startPing(frame.heartbeat_interval_ms);
        this.hooks.onState('online');
        break;
      case 'ack':
      case 'error': {
        const waiter = frame.ref !== undefined ? this.pending.get(frame.ref) : undefined;
        if (waiter) {
          this.pending.delete(frame.ref);
          if (frame.type === 'ack') waiter.resolve(frame);
          else waiter.reject(Object.assign(new Error(frame.message), { code: frame.code, retryAfterMs: frame.retry_after_ms }));
        } else if (frame.type === 'error') {
          this.hooks.onEvent(frame);
        }
        break;
      }
      case 'resumed': {
        const waiter = frame.ref !== undefined ? this.pending.get(frame.ref) : undefined;
        if (waiter) {
          this.pending.delete(frame.ref);
          waiter.resolve(frame);
        }
        this.hooks.onEvent(frame);
        break;
      }
      case 'pong':
        break;
      default:
        this.hooks.onEvent(frame);
    }
  }

  startPing(intervalMs) {
    clearInterval(this.pingTimer);
    // The server pings us; our own pings keep idle proxies from closing us.
    const every = Math.max(5_000, (intervalMs || 30_000) / 2);
    this.pingTimer = setInterval(() => this.send({ type: 'ping' }), every);
  }

  closed(ws, code, reason) {
    if (ws !== this.ws) return;
    this.ws = null;
    this.ready = false;
    clearInterval(this.pingTimer);
    this.failPending('disconnected');
    if (this.stopped) return;
    if (code === CLOSE_REVOKED) {
      this.stopped = true;
      this.hooks.onState('revoked', reason);
      return;
    }
    if (code === CLOSE_UNAUTHENTICATED) {
      // Our token was refused: the next connect asks for a fresh one.
      this.hooks.onState('offline', 'unauthenticated');
      this.forceRefresh = true;
    } else {
      this.hooks.onState('offline', code);
    }
    this.schedule();
  }

  /** Exponential backoff with full jitter: a restarted server is not stampeded. */
  schedule() {
    const cap = Math.min(MAX_BACKOFF_MS, BASE_BACKOFF_MS * 2 ** this.attempt);
    const delay = cap / 2 + Math.random() * (cap / 2);
    this.attempt += 1;
    clearTimeout(this.timer);
    this.timer = setTimeout(() => this.connect(), delay);
  }

  failPending(code) {
    for (const waiter of this.pending.values()) {
      waiter.reject(Object.assign(new Error('The connection was lost.'), { code }));
    }
    this.pending.clear();
  }

  /** Fire and forget. Returns false when not connected. */
  send(frame) {
    if (!this.ws || this.ws.readyState !== WebSocket.OPEN || !this.ready) return false;
    this.ws.send(JSON.stringify(frame));
    return true;
  }

  /** A request with a ref: resolves with the ack, rejects with the error. */
  request(frame, timeoutMs = 10_000) {
    const ref = 'r' + this.nextRef++;
    return new Promise((resolve, reject) => {
      if (!this.send({ ...frame, ref })) {
        reject(Object.assign(new Error('Not connected.'), { code: 'disconnected' }));
        return;
      }
      const timer = setTimeout(() => {
        if (this.pending.delete(ref)) reject(Object.assign(new Error('No answer from the server.'), { code: 'timeout' }));
      }, timeoutMs);
      this.pending.set(ref, {
        resolve: (v) => { clearTimeout(timer); resolve(v); },
        reject: (e) => { clearTimeout(timer); reject(e); },
      });
    });
  }
}
