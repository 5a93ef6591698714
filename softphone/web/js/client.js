// A small browser client for softphone signaling protocol v1 (docs/protocol.md):
// REST commands with a bearer token, and the notification websocket with hello, a seq cursor,
// resume with last_seq, resynchronisation after resume_failed, and an app-level ping.
//
// The token lives in a private field: it is sent in the Authorization header and in the hello
// frame (browsers cannot set headers on a websocket), never in a URL and never to a log.

export class ApiError extends Error {
  constructor(status, code, message, retryAfter = null) {
    super(message);
    this.name = 'ApiError';
    this.status = status;
    this.code = code;
    this.retryAfter = retryAfter;
  }
}

// Close codes after which the subscription must not reconnect (§4.8).
const FINAL_CLOSE = new Set([4000, 4001, 4002]);
const BACKOFF_BASE_MS = 250;
const BACKOFF_CAP_MS = 5000;

/** The RTCPeerConnection form of the server's ice_servers (§8). */
export function rtcIceServers(iceServers) {
  return (iceServers || []).map((s) => {
    const out = { urls: s.urls };
    if (s.username != null) out.username = s.username;
    if (s.credential != null) out.credential = s.credential;
    return out;
  });
}

export class Client {
  #token = null;

  /**
   * @param {object} options
   * @param {string} [options.base] origin of the server ('' = this page's origin)
   * @param {(frame: object) => void} [options.onNotification] each notification, once, in order
   * @param {(state: string, detail?: object) => void} [options.onState] connection changes:
   *   'connected', 'reconnecting', 'resync' (call GET /v1/calls), 'gone' (no reconnect)
   */
  constructor({ base = '', onNotification = () => {}, onState = () => {} } = {}) {
    this.base = base;
    this.onNotification = onNotification;
    this.onState = onState;
    this.user = null;
    this.subscription = null; // {subscription_id, ice_servers, ping_interval, ...}
    this.cursor = null; // highest notification seq processed
    this.ws = null;
    this.connected = false;
    this.#reset();
  }

  #reset() {
    this.stopped = false;
    this.attempt = 0;
    this.pingTimer = null;
    this.pingOutstanding = null;
    this.pingCount = 0;
    this.reconnectTimer = null;
  }

  get loggedIn() {
    return this.#token !== null;
  }

  get iceServers() {
    return rtcIceServers(this.subscription && this.subscription.ice_servers);
  }

  async request(method, path, body = undefined, { auth = true } = {}) {
    const headers = {};
    if (auth && this.#token) headers.Authorization = `Bearer ${this.#token}`;
    const init = { method, headers, credentials: 'omit', cache: 'no-store' };
    if (body !== undefined) {
      headers['Content-Type'] = 'application/json';
      init.body = JSON.stringify(body);
    }
    const response = await fetch(this.base + path, init);
    if (response.status === 204) return null;
    let data = null;
    try {
      data = await response.json();
    } catch {
      data = null;
    }
    if (!response.ok) {
      const err = (data && data.error) || {};
      const retry = response.headers.get('Retry-After');
      throw new ApiError(
        response.status,
        err.code || 'http_error',
        err.message || `HTTP ${response.status}`,
        retry ? Number(retry) : null,
      );
    }
    return data;
  }

  async login(username, password) {
    const data = await this.request('POST', '/v1/sessions', { username, password }, { auth: false });
    this.#token = data.token;
    this.user = data.user;
    return { user: data.user, expires_at: data.expires_at };
  }

  async subscribe({ forceLogout = false } = {}) {
    this.subscription = await this.request('POST', '/v1/subscriptions', {
      services: ['call'],
      force_logout: forceLogout,
    });
    this.cursor = 0; // a new subscription is resumable from 0 (§4.4)
    return this.subscription;
  }

  /** Adopt the call-scoped token and subscription of an anonymous call (§3.4). */
  adoptAnonymous(response) {
    this.#token = response.token;
    this.user = null;
    this.subscription = {
      subscription_id: response.subscription_id,
      channel: response.channel,
      ice_servers: response.ice_servers,
      ping_interval: response.ping_interval,
      resume_window: response.resume_window,
      services: ['call'],
    };
    this.cursor = 0;
  }

  async logout() {
    this.close();
    if (this.#token) {
      try {
        await this.request('DELETE', '/v1/sessions');
      } finally {
        this.#token = null;
        this.subscription = null;
      }
    }
  }

  listCalls() {
    return this.request('GET', '/v1/calls');
  }

  connect() {
    if (!this.subscription) throw new Error('subscribe first');
    this.stopped = false;
    this.#open();
  }

  close() {
    this.stopped = true;
    clearTimeout(this.reconnectTimer);
    this.#stopPing();
    if (this.ws) {
      const ws = this.ws;
      this.ws = null;
      ws.onclose = null;
      ws.close(1000);
    }
    this.connected = false;
  }

  #open() {
    const loc = this.base ? new URL(this.base) : window.location;
    const scheme = loc.protocol === 'https:' ? 'wss:' : 'ws:';
    const path = this.subscription.channel || '/v1/notifications';
    const ws = new WebSocket(`${scheme}//${loc.host}${path}`);
    this.ws = ws;
    ws.onopen = () => {
      const hello = {
        type: 'hello',
        subscription_id: this.subscription.subscription_id,
        token: this.#token,
      };
      if (this.cursor !== null) hello.last_seq = this.cursor;
      ws.send(JSON.stringify(hello));
    };
    ws.onmessage = (event) => {
      let frame;
      try {
        frame = JSON.parse(event.data);
      } catch {
        return;
      }
      this.#onFrame(frame);
    };
    ws.onclose = (event) => {
      if (this.ws !== ws) return;
      this.ws = null;
      this.connected = false;
      this.#stopPing();
      if (this.stopped) return;
      if (FINAL_CLOSE.has(event.code)) {
        this.stopped = true;
        this.onState('gone', { code: event.code, reason: this.goneReason || event.reason });
        return;
      }
      this.onState('reconnecting', { code: event.code });
      const delay = Math.min(BACKOFF_CAP_MS, BACKOFF_BASE_MS * 2 ** this.attempt);
      this.attempt += 1;
      this.reconnectTimer = setTimeout(() => this.#open(), delay);
    };
  }

  #onFrame(frame) {
    switch (frame.type) {
      case 'welcome':
        this.attempt = 0;
        this.connected = true;
        // resumed=false always means: reset the cursor to welcome.seq (§4.4).
        if (!frame.resumed) this.cursor = frame.seq;
        this.#startPing(frame.ping_interval);
        this.onState('connected', { resumed: frame.resumed });
        return;
      case 'resume_failed':
        this.onState('resync', { reason: frame.reason });
        return;
      case 'pong':
        if (frame.id === this.pingOutstanding) this.pingOutstanding = null;
        return;
      case 'ping':
        this.#send({ type: 'pong', id: frame.id });
        return;
      case 'error':
        this.onState('error', { code: frame.code, message: frame.message });
        return;
      default:
        break;
    }
    if (typeof frame.seq === 'number') {
      if (this.cursor !== null && frame.seq <= this.cursor) return; // already processed
      this.cursor = frame.seq;
    }
    if (frame.type === 'subscription.gone') this.goneReason = frame.message || frame.reason;
    this.onNotification(frame);
  }

  #send(frame) {
    if (this.ws && this.ws.readyState === WebSocket.OPEN) this.ws.send(JSON.stringify(frame));
  }

  #startPing(intervalSeconds) {
    this.#stopPing();
    const period = Math.max(1, Number(intervalSeconds) || 20) * 1000;
    this.pingTimer = setInterval(() => {
      if (this.pingOutstanding !== null) {
        // No pong for a whole period: the path is dead; reconnect and resume.
        if (this.ws) this.ws.close(4999);
        return;
      }
      this.pingCount += 1;
      this.pingOutstanding = `p${this.pingCount}`;
      this.#send({ type: 'ping', id: this.pingOutstanding });
    }, period);
  }

  #stopPing() {
    clearInterval(this.pingTimer);
    this.pingTimer = null;
    this.pingOutstanding = null;
  }
}
