// Parley's web client: views, state and the realtime event handling.
// Plain ES modules, no build step; every text goes in as text (dom.js).

import { h, replace, $, formatTime } from './dom.js';
import * as rest from './api.js';
import { api, ApiError } from './api.js';
import { Realtime } from './socket.js';

const QUICK_REACTIONS = ['👍', '❤️', '😂', '🎉', '😮'];
const HISTORY_PAGE = 50;
const TYPING_SEND_EVERY_MS = 3000;

const app = document.getElementById('app');
const live = document.getElementById('announcer');

let state = freshState();
let realtime = null;

function freshState() {
  return {
    me: null,
    rooms: new Map(),
    users: new Map(),
    invites: [],
    notifications: [],
    features: { profileEdit: false, settings: false, avatar: false, notifications: false, userSearch: false },
    settings: null,
    connection: 'connecting',
    activeRoomId: null,
    replyTo: null,
    editing: null,
    lastTypingSent: 0,
    readTimer: null,
    toast: null,
  };
}

// ---------------------------------------------------------------- helpers

function say(text) {
  // Screen-reader announcement (and a visible toast).
  live.textContent = text;
  showToast(text);
}

function showToast(text) {
  let toast = $('#toast');
  if (!toast) {
    toast = h('div', { id: 'toast', class: 'toast', role: 'status' });
    document.body.appendChild(toast);
  }
  toast.textContent = text;
  toast.hidden = false;
  clearTimeout(state.toast);
  state.toast = setTimeout(() => { toast.hidden = true; }, 4000);
}

function errorText(error) {
  if (error instanceof ApiError) {
    const fields = error.details && error.details.fields;
    if (fields) {
      return Object.entries(fields).map(([name, f]) => `${name}: ${f.message}`).join(' · ');
    }
    if (error.code === 'account_locked' && error.details.retry_after) {
      return `${error.message} Try again in ${Math.ceil(error.details.retry_after / 60)} min.`;
    }
    return error.message;
  }
  return (error && error.message) || 'Something went wrong.';
}

function userName(id) {
  if (!id) return 'deleted user';
  const user = state.users.get(id);
  if (!user) {
    ensureUser(id);
    return '…';
  }
  return user.display_name || user.username || 'unknown user';
}

const userRequests = new Map();
function ensureUser(id) {
  if (!id || state.users.has(id) || userRequests.has(id)) return;
  userRequests.set(id, api('GET', `/users/${id}`)
    .then((user) => {
      rememberUser(user);
      render();
    })
    .catch(() => {
      state.users.set(id, { id, username: 'unknown user', presence: 'offline' });
    }));
}

function rememberUser(user) {
  const id = user.id || user.user_id;
  const old = state.users.get(id) || {};
  state.users.set(id, { ...old, ...user, id, presence: user.presence || old.presence || 'offline' });
}

function presenceOf(id) {
  const user = state.users.get(id);
  return (user && user.presence) || 'offline';
}

function roomLabel(room) {
  if (room.visibility === 'direct') {
    const other = room.members && [...room.members.keys()].find((id) => id !== state.me.id);
    return other ? userName(other) : 'Direct message';
  }
  return room.name;
}

function dmPeer(room) {
  if (room.visibility !== 'direct' || !room.members) return null;
  return [...room.members.keys()].find((id) => id !== state.me.id) || null;
}

function unreadText(n) {
  return n >= 100 ? '99+' : String(n);
}

function newRoom(data) {
  return {
    id: data.id,
    name: data.name,
    topic: data.topic || null,
    visibility: data.visibility || 'public',
    my_role: data.my_role || 'member',
    last_seq: data.last_seq || 0,
    last_read_seq: data.last_read_seq || 0,
    unread: data.unread_count || 0,
    // The highest seq this client has processed: what `resume` asks from.
    seq: data.last_seq || 0,
    messages: new Map(),
    loaded: false,
    hasMore: true,
    loadingOlder: false,
    members: null,
    typing: new Map(),
    reads: new Map(),
    myReactions: new Set(),
  };
}

function upsertRoom(data) {
  const room = state.rooms.get(data.id);
  if (!room) {
    const created = newRoom(data);
    state.rooms.set(data.id, created);
    if (created.visibility === 'direct') loadMembers(created);
    return created;
  }
  for (const key of ['name', 'topic', 'visibility', 'my_role']) {
    if (data[key] !== undefined) room[key] = data[key];
  }
  if (data.last_seq !== undefined) room.last_seq = Math.max(room.last_seq, data.last_seq);
  return room;
}

function activeRoom() {
  return state.activeRoomId ? state.rooms.get(state.activeRoomId) : null;
}

function route() {
  const hash = location.hash.replace(/^#\/?/, '');
  const [path, query] = hash.split('?');
  const parts = path.split('/').filter(Boolean);
  return { name: parts[0] || 'home', id: parts[1] || null, query: new URLSearchParams(query || '') };
}

// ---------------------------------------------------------------- start

async function boot() {
  rest.on('signedOut', (message) => signOut(message));
  window.addEventListener('hashchange', () => onRoute());
  window.addEventListener('focus', () => markRead());
  document.addEventListener('keydown', globalKeys);
  matchMedia('(prefers-color-scheme: dark)').addEventListener('change', () => applyTheme());
  if (rest.hasStoredSession()) {
    try {
      await rest.refresh();
      await startSession();
      return;
    } catch {
      // fall through to the login page
    }
  }
  showAuth('login');
}

function signOut(message) {
  if (realtime) realtime.stop();
  realtime = null;
  rest.clearTokens();
  state = freshState();
  applyTheme();
  if (location.hash) history.replaceState(null, '', location.pathname);
  showAuth('login', message);
}

async function startSession() {
  state = freshState();
  const profile = await api('GET', '/users/profile');
  state.me = profile;
  rememberUser({ ...profile, presence: 'online' });
  await Promise.all([loadRooms(), loadInvites(), detectFeatures()]);
  renderShell();
  realtime = new Realtime({
    token: async () => {
      if (realtime && realtime.forceRefresh) {
        realtime.forceRefresh = false;
        await rest.refresh();
      } else if (rest.accessExpiresSoon(30_000)) {
        await rest.refresh();
      }
      return rest.getAccessToken();
    },
    lastSeqs: () => Object.fromEntries([...state.rooms.values()].map((r) => [r.id, r.seq])),
    onEvent: onEvent,
    onState: onConnection,
  });
  realtime.start();
  onRoute();
}

async function loadRooms() {
  let cursor = null;
  do {
    const page = await api('GET', '/rooms?limit=200' + (cursor ? '&cursor=' + encodeURIComponent(cursor) : ''));
    for (const item of page.items) {
      const room = upsertRoom(item);
      room.unread = item.unread_count;
      room.last_read_seq = item.last_read_seq;
    }
    cursor = page.next_cursor;
  } while (cursor);
}

async function loadInvites() {
  try {
    const page = await api('GET', '/invites?limit=200');
    state.invites = page.items.filter((i) => !i.status || i.status === 'pending');
  } catch {
    state.invites = [];
  }
}

/** What the server has, by asking its routes (never by version). */
async function detectFeatures() {
  const f = state.features;
  const checks = [
    rest.probe('PUT', '/users/profile', {}).then((ok) => { f.profileEdit = ok; }),
    api('GET', '/users/settings').then((s) => { f.settings = true; state.settings = s; applyTheme(); })
      .catch(() => { f.settings = false; }),
    rest.probe('GET', '/notifications?unread=true').then((ok) => { f.notifications = ok; }),
    rest.probe('GET', '/users/search?q=a').then((ok) => { f.userSearch = ok; }),
    rest.probe('POST', '/users/avatar', new FormData()).then((ok) => { f.avatar = ok; }),
  ];
  await Promise.all(checks);
  if (f.notifications) {
    try {
      const page = await api('GET', '/notifications');
      state.notifications = page.items || [];
    } catch {
      state.notifications = [];
    }
  }
}

function applyTheme() {
  const theme = (state.settings && state.settings.theme) || 'system';
  document.documentElement.dataset.theme = theme;
}

// ---------------------------------------------------------------- realtime

function onConnection(status) {
  if (status === 'revoked') {
    signOut('You were signed out: this session was ended from another device or by an administrator.');
    return;
  }
  if (status === 'unauthenticated') {
    signOut('Your session has ended. Please sign in again.');
    return;
  }
  state.connection = status;
  renderConnection();
  if (status === 'online') {
    // Anything we missed in rooms not opened yet is counted by the server.
    refreshUnread();
  }
}

async function refreshUnread() {
  try {
    const before = state.rooms.size;
    await loadRooms();
    if (state.rooms.size !== before) render();
    else renderRoomList();
  } catch {
    // the next event will bring them
  }
}

function onEvent(frame) {
  const room = frame.room_id ? state.rooms.get(frame.room_id) : null;
  switch (frame.type) {
    case 'ready':
      for (const r of frame.rooms) {
        const known = state.rooms.get(r.id);
        if (!known) {
          upsertRoom(r).unread = r.unread_count;
          fetchRoom(r.id);
        }
      }
      renderRoomList();
      break;
    case 'message.created':
      if (!room) {
        fetchRoom(frame.room_id);
        return;
      }
      addMessage(room, frame.message, true);
      break;
    case 'message.updated':
      if (room && room.messages.has(frame.message.seq)) {
        room.messages.set(frame.message.seq, frame.message);
        if (room.id === state.activeRoomId) renderMessages();
      }
      break;
    case 'message.deleted':
      if (room) {
        const m = room.messages.get(frame.seq);
        if (m) {
          room.messages.set(frame.seq, { ...m, deleted: true, body: '' });
          if (room.id === state.activeRoomId) renderMessages();
        }
      }
      break;
    case 'reaction.added':
    case 'reaction.removed':
      if (room) onReaction(room, frame);
      break;
    case 'typing':
      if (room && frame.user_id !== state.me.id) onTyping(room, frame);
      break;
    case 'presence': {
      const user = state.users.get(frame.user_id);
      if (user) user.presence = frame.status;
      else rememberUser({ id: frame.user_id, presence: frame.status });
      renderRoomList();
      renderMembers();
      break;
    }
    case 'read':
      if (!room) return;
      if (frame.user_id === state.me.id) {
        room.last_read_seq = Math.max(room.last_read_seq, frame.seq);
        room.unread = 0;
        renderRoomList();
      } else {
        room.reads.set(frame.user_id, frame.seq);
        if (room.id === state.activeRoomId) renderMessages();
      }
      break;
    case 'member.joined':
      if (frame.user_id === state.me.id) {
        fetchRoom(frame.room_id);
      } else if (room && room.members) {
        room.members.set(frame.user_id, { user_id: frame.user_id, role: frame.role || 'member' });
        ensureUser(frame.user_id);
        renderMembers();
      }
      break;
    case 'member.left':
      if (frame.user_id === state.me.id) {
        dropRoom(frame.room_id, frame.reason === 'left' ? null : `You were ${frame.reason === 'banned' ? 'banned' : 'removed'} from ${room ? room.name : 'a room'}.`);
      } else if (room && room.members) {
        room.members.delete(frame.user_id);
        renderMembers();
      }
      break;
    case 'member.updated':
      if (room && room.members && room.members.has(frame.user_id)) {
        room.members.get(frame.user_id).role = frame.role;
        renderMembers();
      }
      if (room && frame.user_id === state.me.id) room.my_role = frame.role;
      break;
    case 'room.updated':
      if (room && frame.room) {
        upsertRoom(frame.room);
        render();
      }
      break;
    case 'room.deleted':
      dropRoom(frame.room_id, room ? `${room.name} was deleted.` : null);
      break;
    case 'invite':
      if (frame.invite && !state.invites.some((i) => i.id === frame.invite.id)) {
        state.invites.push(frame.invite);
        say(`${userName(frame.invite.inviter_id)} invited you to ${frame.invite.room_name || 'a room'}.`);
        renderSidebarActions();
        if (route().name === 'invites') renderPane();
      }
      break;
    case 'notification':
      if (frame.notification) {
        state.notifications.unshift(frame.notification);
        renderSidebarActions();
      }
      break;
    case 'user.updated':
      if (frame.user) {
        rememberUser(frame.user);
        render();
      }
      break;
    case 'system':
      say(frame.message);
      break;
    case 'resync_required':
      if (room) resync(room, frame.last_seq);
      break;
    case 'error':
      say(frame.message);
      break;
    default:
      break;
  }
}

function addMessage(room, message, liveEvent) {
  const known = room.messages.has(message.seq) || (!room.loaded && message.seq <= room.seq);
  room.seq = Math.max(room.seq, message.seq);
  room.last_seq = Math.max(room.last_seq, message.seq);
  if (known) return;
  if (room.loaded) room.messages.set(message.seq, message);
  if (message.author_id) {
    room.typing.delete(message.author_id);
    ensureUser(message.author_id);
  }
  const mine = message.author_id === state.me.id;
  const visible = room.id === state.activeRoomId && document.visibilityState === 'visible';
  if (liveEvent && !mine && !message.deleted && message.seq > room.last_read_seq) {
    if (visible) markRead();
    else room.unread += 1;
  }
  if (room.id === state.activeRoomId) {
    renderMessages();
    renderTyping();
  }
  renderRoomList();
}

function onReaction(room, frame) {
  const m = [...room.messages.values()].find((x) => x.id === frame.message_id);
  if (frame.user_id === state.me.id) {
    const key = `${frame.message_id} ${frame.emoji}`;
    if (frame.type === 'reaction.added') room.myReactions.add(key);
    else room.myReactions.delete(key);
  }
  if (!m) return;
  const reactions = { ...(m.reactions || {}) };
  const count = (reactions[frame.emoji] || 0) + (frame.type === 'reaction.added' ? 1 : -1);
  if (count > 0) reactions[frame.emoji] = count;
  else delete reactions[frame.emoji];
  room.messages.set(m.seq, { ...m, reactions });
  if (room.id === state.activeRoomId) renderMessages();
}

function onTyping(room, frame) {
  const old = room.typing.get(frame.user_id);
  if (old) clearTimeout(old);
  room.typing.set(frame.user_id, setTimeout(() => {
    room.typing.delete(frame.user_id);
    if (room.id === state.activeRoomId) renderTyping();
  }, frame.expires_in_ms || 5000));
  ensureUser(frame.user_id);
  if (room.id === state.activeRoomId) renderTyping();
}

async function resync(room, lastSeq) {
  room.seq = Math.max(room.seq, lastSeq);
  room.last_seq = Math.max(room.last_seq, lastSeq);
  if (room.loaded) {
    room.messages.clear();
    room.loaded = false;
    room.hasMore = true;
    await loadHistory(room);
  }
  refreshUnread();
}

async function fetchRoom(id) {
  try {
    const room = await api('GET', `/rooms/${id}`);
    const r = upsertRoom(room);
    if (room.my_role) r.my_role = room.my_role;
    render();
  } catch {
    // not ours after all
  }
}

function dropRoom(id, message) {
  state.rooms.delete(id);
  if (state.activeRoomId === id) {
    state.activeRoomId = null;
    location.hash = '#/';
  }
  if (message) say(message);
  render();
}

// ---------------------------------------------------------------- data

async function loadHistory(room) {
  const page = await api('GET', `/rooms/${room.id}/messages?limit=${HISTORY_PAGE}`);
  for (const m of page.items) {
    room.messages.set(m.seq, m);
    if (m.author_id) ensureUser(m.author_id);
    room.seq = Math.max(room.seq, m.seq);
  }
  room.hasMore = page.items.length === HISTORY_PAGE && Math.min(...page.items.map((m) => m.seq)) > 1;
  room.loaded = true;
}

async function loadOlder(room) {
  if (room.loadingOlder || !room.hasMore || !room.loaded) return;
  const oldest = Math.min(...room.messages.keys());
  if (!Number.isFinite(oldest) || oldest <= 1) {
    room.hasMore = false;
    return;
  }
  room.loadingOlder = true;
  try {
    const page = await api('GET', `/rooms/${room.id}/messages?limit=${HISTORY_PAGE}&before_seq=${oldest}`);
    for (const m of page.items) {
      room.messages.set(m.seq, m);
      if (m.author_id) ensureUser(m.author_id);
    }
    room.hasMore = page.items.length === HISTORY_PAGE;
    if (room.id === state.activeRoomId) renderMessages({ keepOffset: true });
  } catch (error) {
    say(errorText(error));
  } finally {
    room.loadingOlder = false;
  }
}

async function loadMembers(room) {
  try {
    const page = await api('GET', `/rooms/${room.id}/members?limit=200`);
    const items = page.items || page;
    room.members = new Map();
    for (const m of items) {
      room.members.set(m.user_id, m);
      rememberUser({ id: m.user_id, username: m.username, display_name: m.display_name, presence: m.presence });
    }
    render();
  } catch {
    room.members = room.members || null;
  }
}

function markRead() {
  const room = activeRoom();
  if (!room || document.visibilityState !== 'visible') return;
  clearTimeout(state.readTimer);
  state.readTimer = setTimeout(() => {
    const seq = room.seq;
    if (seq <= room.last_read_seq && room.unread === 0) return;
    room.last_read_seq = Math.max(room.last_read_seq, seq);
    room.unread = 0;
    renderRoomList();
    if (!realtime || !realtime.send({ type: 'read', room_id: room.id, seq })) {
      api('POST', `/rooms/${room.id}/read`, { seq }).catch(() => {});
    }
  }, 300);
}

function clientId() {
  return 'web-' + crypto.randomUUID();
}

async function sendMessage(room, body, replyTo) {
  const frame = { type: 'message.send', room_id: room.id, body, client_id: clientId() };
  if (replyTo) frame.reply_to = replyTo;
  try {
    const ack = await realtime.request(frame);
    if (ack.message) addMessage(room, ack.message, false);
  } catch (error) {
    if (error.code !== 'disconnected' && error.code !== 'timeout' && error.code !== 'unavailable') throw error;
    // Over REST with the same client_id: a send that did land is not doubled.
    const rest_body = { body, client_id: frame.client_id };
    if (replyTo) rest_body.reply_to = replyTo;
    const message = await api('POST', `/rooms/${room.id}/messages`, rest_body);
    addMessage(room, message, false);
  }
}

function socketOrRest(frame, method, path, body) {
  if (realtime && realtime.online) return realtime.request(frame);
  return api(method, path, body);
}

// ---------------------------------------------------------------- views: auth

function showAuth(mode, notice) {
  document.title = 'Parley — sign in';
  const error = h('p', { class: 'form-error', role: 'alert', id: 'auth-error' });
  const noticeEl = notice ? h('p', { class: 'notice', role: 'alert', id: 'auth-notice' }, notice) : null;
  let form;
  if (mode === 'register') {
    form = h('form', { class: 'card', 'aria-labelledby': 'auth-title', novalidate: true },
      h('h2', { id: 'auth-title' }, 'Create an account'),
      field('Username', h('input', { id: 'reg-username', name: 'username', autocomplete: 'username', required: true, minlength: 3, maxlength: 32 }),
        '3–32 characters: a–z, 0–9, _ . -'),
      field('Email', h('input', { id: 'reg-email', name: 'email', type: 'email', autocomplete: 'email', required: true })),
      field('Password', h('input', { id: 'reg-password', name: 'password', type: 'password', autocomplete: 'new-password', required: true, minlength: 8 }),
        'At least 8 characters with an uppercase letter, a lowercase letter and a digit.'),
      error,
      h('button', { type: 'submit', class: 'primary' }, 'Create account'),
      h('p', {}, 'Have an account? ', h('a', { href: '#', onclick: (e) => { e.preventDefault(); showAuth('login'); } }, 'Sign in')));
    form.addEventListener('submit', async (e) => {
      e.preventDefault();
      error.textContent = '';
      busy(form, true);
      try {
        await rest.register(form.username.value.trim(), form.email.value.trim(), form.password.value);
        await startSession();
      } catch (err) {
        error.textContent = errorText(err);
        busy(form, false);
      }
    });
  } else {
    const totp = h('div', { class: 'field', hidden: true, id: 'totp-field' },
      h('label', { for: 'login-totp' }, 'Two-factor code'),
      h('input', { id: 'login-totp', name: 'totp', inputmode: 'numeric', autocomplete: 'one-time-code', maxlength: 32 }),
      h('p', { class: 'hint' }, 'The 6-digit code from your authenticator app, or a recovery code.'));
    form = h('form', { class: 'card', 'aria-labelledby': 'auth-title', novalidate: true },
      h('h2', { id: 'auth-title' }, 'Sign in'),
      field('Username or email', h('input', { id: 'login-name', name: 'login', autocomplete: 'username', required: true })),
      field('Password', h('input', { id: 'login-password', name: 'password', type: 'password', autocomplete: 'current-password', required: true })),
      totp,
      error,
      h('button', { type: 'submit', class: 'primary' }, 'Sign in'),
      h('p', {}, 'New here? ', h('a', { href: '#', onclick: (e) => { e.preventDefault(); showAuth('register'); } }, 'Create an account')));
    form.addEventListener('submit', async (e) => {
      e.preventDefault();
      error.textContent = '';
      busy(form, true);
      try {
        await rest.login(form.login.value.trim(), form.password.value, totp.hidden ? undefined : form.totp.value.trim());
        await startSession();
      } catch (err) {
        busy(form, false);
        if (err.code === 'totp_required' || err.code === 'invalid_totp') {
          totp.hidden = false;
          error.textContent = err.code === 'totp_required' ? 'Enter your two-factor code.' : 'That code is not valid. Try again.';
          form.totp.value = '';
          form.totp.focus();
        } else {
          error.textContent = errorText(err);
        }
      }
    });
  }
  replace(app, h('main', { class: 'auth', id: 'main' },
    h('h1', { class: 'brand' }, h('img', { src: iconUrl(), alt: '', width: 40, height: 40 }), 'Parley'),
    noticeEl, form));
  const first = form.querySelector('input');
  if (first) first.focus();
}

function iconUrl() {
  const link = document.querySelector('link[rel=icon]');
  return link ? link.getAttribute('href') : '';
}

function field(label, input, hint) {
  const id = input.id;
  const hintEl = hint ? h('p', { class: 'hint', id: id + '-hint' }, hint) : null;
  if (hintEl) input.setAttribute('aria-describedby', id + '-hint');
  return h('div', { class: 'field' }, h('label', { for: id }, label), input, hintEl);
}

function busy(form, on) {
  for (const el of form.querySelectorAll('button, input, select, textarea')) el.disabled = on;
  form.setAttribute('aria-busy', on ? 'true' : 'false');
}

// ---------------------------------------------------------------- views: shell

function renderShell() {
  document.title = 'Parley';
  replace(app,
    h('a', { class: 'skip', href: '#composer', onclick: (e) => { e.preventDefault(); const c = $('#composer'); if (c) c.focus(); } }, 'Skip to message box'),
    h('div', { class: 'shell', id: 'shell' },
      h('aside', { class: 'sidebar', id: 'sidebar', 'aria-label': 'Rooms and account' },
        h('header', { class: 'me' },
          h('span', { class: 'brand small' }, h('img', { src: iconUrl(), alt: '', width: 24, height: 24 }), 'Parley'),
          h('div', { class: 'me-line' },
            h('span', { class: 'dot online', id: 'my-dot', 'aria-hidden': 'true' }),
            h('span', { id: 'my-name' }, userName(state.me.id)),
            presenceSelect())),
        h('div', { id: 'connection', class: 'connection', role: 'status', 'aria-live': 'polite' }),
        h('nav', { 'aria-label': 'Rooms', class: 'room-nav' },
          h('h2', {}, 'Rooms'), h('ul', { id: 'room-list', class: 'room-list' }),
          h('h2', {}, 'Direct messages'), h('ul', { id: 'dm-list', class: 'room-list' })),
        h('nav', { 'aria-label': 'Actions', class: 'actions', id: 'sidebar-actions' })),
      h('main', { class: 'pane', id: 'pane', tabindex: '-1' })));
  renderRoomList();
  renderSidebarActions();
  renderConnection();
}

function presenceSelect() {
  const select = h('select', { id: 'presence', 'aria-label': 'My status' },
    ...['online', 'away', 'dnd', 'invisible'].map((s) => h('option', { value: s }, { online: 'Online', away: 'Away', dnd: 'Do not disturb', invisible: 'Invisible' }[s])));
  select.addEventListener('change', async () => {
    try {
      await realtime.request({ type: 'presence.set', status: select.value });
      const dot = $('#my-dot');
      if (dot) dot.className = 'dot ' + (select.value === 'invisible' ? 'offline' : select.value);
    } catch (error) {
      say(errorText(error));
    }
  });
  return select;
}

function render() {
  if (!state.me || !$('#shell')) return;
  const name = $('#my-name');
  if (name) name.textContent = userName(state.me.id);
  renderRoomList();
  renderSidebarActions();
  const r = route();
  if (r.name === 'room' && state.activeRoomId === r.id) {
    renderRoomHeader();
    renderMessages();
    renderMembers();
  }
}

function renderConnection() {
  const el = $('#connection');
  if (!el) return;
  const text = { connecting: 'Connecting…', online: '', offline: 'Offline — reconnecting…' }[state.connection] || '';
  el.textContent = text;
  el.dataset.state = state.connection;
  document.body.dataset.connection = state.connection;
}

function renderRoomList() {
  const list = $('#room-list');
  const dms = $('#dm-list');
  if (!list) return;
  const rooms = [...state.rooms.values()].sort((a, b) => roomLabel(a).localeCompare(roomLabel(b)));
  const item = (room) => {
    const active = room.id === state.activeRoomId;
    const peer = dmPeer(room);
    const label = roomLabel(room);
    return h('li', {},
      h('a', {
        href: `#/room/${room.id}`, class: 'room-link' + (active ? ' active' : '') + (room.unread ? ' has-unread' : ''),
        'aria-current': active ? 'page' : false, dataset: { roomId: room.id },
        'aria-label': label + (room.unread ? `, ${unreadText(room.unread)} unread` : '') + (peer ? `, ${presenceOf(peer)}` : ''),
      },
      peer ? h('span', { class: 'dot ' + presenceOf(peer), 'aria-hidden': 'true' }) : h('span', { class: 'hash', 'aria-hidden': 'true' }, room.visibility === 'private' ? '🔒' : '#'),
      h('span', { class: 'room-name' }, label),
      room.unread ? h('span', { class: 'badge', 'aria-hidden': 'true' }, unreadText(room.unread)) : null));
  };
  replace(list, ...rooms.filter((r) => r.visibility !== 'direct').map(item));
  if (!list.children.length) list.appendChild(h('li', { class: 'empty' }, 'No rooms yet.'));
  replace(dms, ...rooms.filter((r) => r.visibility === 'direct').map(item));
  if (!dms.children.length) dms.appendChild(h('li', { class: 'empty' }, 'Use “Message” in a room’s member list.'));
  const total = rooms.reduce((n, r) => n + (r.unread ? 1 : 0), 0);
  document.title = total ? `(${total}) Parley` : 'Parley';
}

function renderSidebarActions() {
  const nav = $('#sidebar-actions');
  if (!nav) return;
  const current = route().name;
  const link = (href, label, name, badge) => h('a', { href, class: 'action' + (current === name ? ' active' : ''), 'aria-current': current === name ? 'page' : false },
    label, badge ? h('span', { class: 'badge' }, String(badge), h('span', { class: 'sr-only' }, ' new')) : null);
  const unreadNotes = state.notifications.filter((n) => !n.read && !n.read_at).length;
  replace(nav,
    link('#/new-room', '+ New room', 'new-room'),
    link('#/directory', 'Browse rooms', 'directory'),
    link('#/invites', 'Invites', 'invites', state.invites.length),
    state.features.notifications ? link('#/notifications', 'Notifications', 'notifications', unreadNotes) : null,
    link('#/search', 'Search', 'search'),
    link('#/settings', 'Settings', 'settings'),
    h('button', { type: 'button', class: 'action link', id: 'logout', onclick: async () => {
      try { await rest.logout(); } catch { /* signed out locally anyway */ }
      signOut('You signed out.');
    } }, 'Sign out'));
}

// ---------------------------------------------------------------- routing

function onRoute() {
  if (!state.me || !$('#shell')) return;
  const r = route();
  const shell = $('#shell');
  shell.dataset.view = r.name === 'home' ? 'list' : 'pane';
  if (r.name === 'room') {
    if (!state.rooms.has(r.id)) {
      location.hash = '#/';
      return;
    }
    openRoom(r.id);
  } else {
    state.activeRoomId = null;
    state.replyTo = null;
    state.editing = null;
    renderPane();
  }
  renderRoomList();
  renderSidebarActions();
}

function renderPane() {
  const pane = $('#pane');
  const r = route();
  const views = {
    home: viewHome, 'new-room': viewNewRoom, directory: viewDirectory, invites: viewInvites,
    search: viewSearch, settings: viewSettings, notifications: viewNotifications,
  };
  replace(pane, (views[r.name] || viewHome)(r));
}

function paneHeader(title, extra) {
  return h('header', { class: 'pane-header' },
    h('a', { href: '#/', class: 'back', 'aria-label': 'Back to rooms' }, '‹'),
    h('h1', {}, title), extra || null);
}

function viewHome() {
  const name = userName(state.me.id);
  return h('section', { class: 'view home' },
    paneHeader('Welcome'),
    h('div', { class: 'view-body' },
      h('p', {}, `Hello, ${name}.`),
      h('p', {}, state.rooms.size ? 'Pick a room on the left, or start something new.' : 'You are not in any room yet.'),
      h('p', {}, h('a', { href: '#/directory', class: 'button' }, 'Browse public rooms'), ' ', h('a', { href: '#/new-room', class: 'button' }, 'Create a room')),
      h('p', { class: 'hint' }, 'Keyboard: Alt+↑ / Alt+↓ move between rooms; Enter sends; Shift+Enter adds a line; Escape cancels a reply or edit.')));
}

function viewNewRoom() {
  const error = h('p', { class: 'form-error', role: 'alert' });
  const form = h('form', { class: 'card wide', novalidate: true },
    field('Name', h('input', { id: 'room-name', name: 'name', required: true, maxlength: 64 })),
    field('Topic (optional)', h('input', { id: 'room-topic', name: 'topic', maxlength: 500 })),
    h('fieldset', {}, h('legend', {}, 'Who can join'),
      h('label', { class: 'radio' }, h('input', { type: 'radio', name: 'visibility', value: 'public', checked: true }), ' Public: anyone can find and join it'),
      h('label', { class: 'radio' }, h('input', { type: 'radio', name: 'visibility', value: 'private' }), ' Private: by invitation only')),
    error,
    h('button', { type: 'submit', class: 'primary' }, 'Create room'));
  form.addEventListener('submit', async (e) => {
    e.preventDefault();
    error.textContent = '';
    busy(form, true);
    try {
      const body = { name: form.name.value.trim(), visibility: form.visibility.value };
      if (form.topic.value.trim()) body.topic = form.topic.value.trim();
      const room = await api('POST', '/rooms', body);
      upsertRoom(room);
      location.hash = `#/room/${room.id}`;
    } catch (err) {
      error.textContent = errorText(err);
      busy(form, false);
    }
  });
  setTimeout(() => form.name.focus());
  return h('section', { class: 'view' }, paneHeader('New room'), h('div', { class: 'view-body' }, form));
}

function viewDirectory(r) {
  const results = h('ul', { class: 'list', id: 'directory-results', 'aria-live': 'polite' });
  const input = h('input', { id: 'directory-q', type: 'search', name: 'q', value: r.query.get('q') || '', placeholder: 'Filter by name' });
  const load = async () => {
    replace(results, h('li', { class: 'empty' }, 'Loading…'));
    try {
      const q = input.value.trim();
      const page = await api('GET', '/rooms/public?limit=100' + (q ? '&q=' + encodeURIComponent(q) : ''));
      replace(results, ...page.items.map((room) => {
        const joined = state.rooms.has(room.id);
        return h('li', { class: 'row' },
          h('div', { class: 'grow' }, h('strong', {}, '# ' + room.name), room.topic ? h('p', { class: 'muted' }, room.topic) : null),
          joined
            ? h('a', { href: `#/room/${room.id}`, class: 'button' }, 'Open')
            : h('button', { type: 'button', class: 'primary', 'aria-label': `Join ${room.name}`, onclick: async (e) => {
              e.target.disabled = true;
              try {
                await api('POST', `/rooms/${room.id}/join`);
                upsertRoom(room);
                location.hash = `#/room/${room.id}`;
              } catch (err) {
                e.target.disabled = false;
                say(errorText(err));
              }
            } }, 'Join'));
      }));
      if (!page.items.length) results.appendChild(h('li', { class: 'empty' }, 'No public rooms match.'));
    } catch (err) {
      replace(results, h('li', { class: 'form-error' }, errorText(err)));
    }
  };
  const form = h('form', { class: 'inline-form', role: 'search' },
    h('label', { for: 'directory-q', class: 'sr-only' }, 'Filter public rooms'), input,
    h('button', { type: 'submit' }, 'Filter'));
  form.addEventListener('submit', (e) => { e.preventDefault(); load(); });
  load();
  setTimeout(() => input.focus());
  return h('section', { class: 'view' }, paneHeader('Public rooms'), h('div', { class: 'view-body' }, form, results));
}

function viewInvites() {
  const list = h('ul', { class: 'list', id: 'invite-list' });
  const fill = () => {
    replace(list, ...state.invites.map((invite) => h('li', { class: 'row' },
      h('div', { class: 'grow' }, h('strong', {}, invite.room_name || 'A room'), h('p', { class: 'muted' }, `from ${userName(invite.inviter_id)} · ${formatTime(invite.created_at)}`)),
      h('button', { type: 'button', class: 'primary', onclick: () => answer(invite, 'accept') }, 'Accept'),
      h('button', { type: 'button', onclick: () => answer(invite, 'decline') }, 'Decline'))));
    if (!state.invites.length) list.appendChild(h('li', { class: 'empty' }, 'No invitations.'));
  };
  const answer = async (invite, verb) => {
    try {
      const reply = await api('POST', `/invites/${invite.id}/${verb}`);
      state.invites = state.invites.filter((i) => i.id !== invite.id);
      renderSidebarActions();
      if (verb === 'accept') {
        await fetchRoom(reply.room_id || invite.room_id);
        location.hash = `#/room/${reply.room_id || invite.room_id}`;
      } else {
        fill();
      }
    } catch (err) {
      say(errorText(err));
    }
  };
  fill();
  return h('section', { class: 'view' }, paneHeader('Invitations'), h('div', { class: 'view-body' }, list));
}

function viewSearch(r) {
  const results = h('ul', { class: 'list', id: 'search-results', 'aria-live': 'polite' });
  const input = h('input', { id: 'search-q', type: 'search', name: 'q', value: r.query.get('q') || '', placeholder: 'Words to find', maxlength: 200 });
  const run = async () => {
    const q = input.value.trim();
    if (!q) return;
    replace(results, h('li', { class: 'empty' }, 'Searching…'));
    try {
      const page = await api('GET', '/search/messages?limit=50&q=' + encodeURIComponent(q));
      replace(results, ...page.items.map((m) => {
        const room = state.rooms.get(m.room_id);
        return h('li', { class: 'row search-hit' },
          h('a', { href: `#/room/${m.room_id}`, class: 'grow' },
            h('span', { class: 'muted' }, `${room ? roomLabel(room) : 'room'} · ${userName(m.author_id)} · ${formatTime(m.created_at)}`),
            h('p', { class: 'body' }, m.body)));
      }));
      if (!page.items.length) results.appendChild(h('li', { class: 'empty' }, 'Nothing found.'));
    } catch (err) {
      replace(results, h('li', { class: 'form-error' }, errorText(err)));
    }
  };
  const form = h('form', { class: 'inline-form', role: 'search' },
    h('label', { for: 'search-q', class: 'sr-only' }, 'Search messages'), input, h('button', { type: 'submit' }, 'Search'));
  form.addEventListener('submit', (e) => { e.preventDefault(); run(); });
  if (input.value) run();
  setTimeout(() => input.focus());
  return h('section', { class: 'view' }, paneHeader('Search messages'), h('div', { class: 'view-body' }, form, results));
}

function viewNotifications() {
  const list = h('ul', { class: 'list' });
  const fill = () => {
    replace(list, ...state.notifications.map((n) => h('li', { class: 'row' + (n.read || n.read_at ? '' : ' unread') },
      h('div', { class: 'grow' }, h('strong', {}, String(n.kind || n.type || 'notification').replace('_', ' ')),
        h('p', { class: 'muted' }, n.message || n.body || (n.data && n.data.body) || '', ' · ', formatTime(n.created_at))))));
    if (!state.notifications.length) list.appendChild(h('li', { class: 'empty' }, 'Nothing new.'));
  };
  fill();
  const markAll = h('button', { type: 'button', onclick: async () => {
    try {
      await api('POST', '/notifications/read', { all: true });
      state.notifications = state.notifications.map((n) => ({ ...n, read: true }));
      fill();
      renderSidebarActions();
    } catch (err) {
      say(errorText(err));
    }
  } }, 'Mark all read');
  return h('section', { class: 'view' }, paneHeader('Notifications', markAll), h('div', { class: 'view-body' }, list));
}

function viewSettings() {
  const me = state.me;
  const body = h('div', { class: 'view-body settings' });

  // Profile
  const profile = h('section', { class: 'card wide', 'aria-labelledby': 'profile-title' },
    h('h2', { id: 'profile-title' }, 'Profile'),
    h('div', { class: 'profile-line' },
      me.avatar_url ? h('img', { class: 'avatar', src: me.avatar_url, alt: 'My avatar', width: 64, height: 64 }) : h('span', { class: 'avatar initial', 'aria-hidden': 'true' }, (me.username || '?')[0].toUpperCase()),
      h('dl', {}, h('dt', {}, 'Username'), h('dd', {}, me.username), h('dt', {}, 'Email'), h('dd', {}, me.email))));
  if (state.features.profileEdit) {
    const error = h('p', { class: 'form-error', role: 'alert' });
    const form = h('form', { novalidate: true },
      field('Display name', h('input', { id: 'profile-display', name: 'display_name', maxlength: 64, value: me.display_name || '' })),
      field('Bio', h('textarea', { id: 'profile-bio', name: 'bio', maxlength: 500, rows: 3 }, me.bio || '')),
      error, h('button', { type: 'submit' }, 'Save profile'));
    form.addEventListener('submit', async (e) => {
      e.preventDefault();
      error.textContent = '';
      try {
        const updated = await api('PUT', '/users/profile', { display_name: form.display_name.value, bio: form.bio.value });
        state.me = { ...state.me, ...(updated || {}) };
        rememberUser(state.me);
        render();
        say('Profile saved.');
      } catch (err) {
        error.textContent = errorText(err);
      }
    });
    profile.appendChild(form);
  }
  if (state.features.avatar) {
    const input = h('input', { id: 'avatar-file', type: 'file', accept: 'image/png,image/jpeg,image/webp,image/gif' });
    const error = h('p', { class: 'form-error', role: 'alert' });
    input.addEventListener('change', async () => {
      if (!input.files.length) return;
      const data = new FormData();
      data.append('file', input.files[0]);
      try {
        const reply = await api('POST', '/users/avatar', data);
        state.me.avatar_url = reply.avatar_url;
        rememberUser(state.me);
        renderPane();
        say('Avatar updated.');
      } catch (err) {
        error.textContent = errorText(err);
      }
    });
    profile.appendChild(field('Avatar (PNG, JPEG, WebP or GIF, up to 5 MiB)', input));
    profile.appendChild(error);
  }
  body.appendChild(profile);

  // Appearance
  if (state.features.settings) {
    const select = h('select', { id: 'theme' },
      ...['system', 'light', 'dark'].map((t) => h('option', { value: t, selected: (state.settings.theme || 'system') === t }, { system: 'Follow the system', light: 'Light', dark: 'Dark' }[t])));
    select.addEventListener('change', async () => {
      try {
        const reply = await api('PUT', '/users/settings', { theme: select.value });
        state.settings = reply || { ...state.settings, theme: select.value };
        applyTheme();
      } catch (err) {
        say(errorText(err));
      }
    });
    body.appendChild(h('section', { class: 'card wide', 'aria-labelledby': 'look-title' },
      h('h2', { id: 'look-title' }, 'Appearance'), field('Theme', select)));
  }

  // Password
  const pwError = h('p', { class: 'form-error', role: 'alert' });
  const pwForm = h('form', { novalidate: true },
    field('Current password', h('input', { id: 'pw-current', name: 'current', type: 'password', autocomplete: 'current-password' })),
    field('New password', h('input', { id: 'pw-new', name: 'next', type: 'password', autocomplete: 'new-password' })),
    pwError, h('button', { type: 'submit' }, 'Change password'));
  pwForm.addEventListener('submit', async (e) => {
    e.preventDefault();
    pwError.textContent = '';
    try {
      const reply = await api('POST', '/auth/password', { current_password: pwForm.current.value, new_password: pwForm.next.value });
      pwForm.reset();
      say(`Password changed. ${reply.revoked_sessions} other session(s) signed out.`);
      loadSessions();
    } catch (err) {
      pwError.textContent = errorText(err);
    }
  });
  body.appendChild(h('section', { class: 'card wide', 'aria-labelledby': 'pw-title' }, h('h2', { id: 'pw-title' }, 'Password'), pwForm));

  // Sessions
  const sessions = h('ul', { class: 'list', id: 'session-list' });
  const loadSessions = async () => {
    try {
      const page = await api('GET', '/sessions?limit=200');
      replace(sessions, ...page.items.map((s) => h('li', { class: 'row' },
        h('div', { class: 'grow' },
          h('strong', { title: s.user_agent || '' }, deviceName(s.device || s.user_agent)), s.current ? h('span', { class: 'tag' }, 'this device') : null,
          h('p', { class: 'muted' }, `${s.ip || ''} · signed in ${formatTime(s.created_at)} · last seen ${formatTime(s.last_seen_at)}`)),
        s.current ? null : h('button', { type: 'button', class: 'danger', 'aria-label': `Sign out session from ${formatTime(s.created_at)}`, onclick: async () => {
          try {
            await api('DELETE', `/sessions/${s.id}`);
            say('Session signed out.');
            loadSessions();
          } catch (err) {
            say(errorText(err));
          }
        } }, 'Sign out'))));
    } catch (err) {
      replace(sessions, h('li', { class: 'form-error' }, errorText(err)));
    }
  };
  loadSessions();
  body.appendChild(h('section', { class: 'card wide', 'aria-labelledby': 'sessions-title' },
    h('h2', { id: 'sessions-title' }, 'Sessions'), sessions,
    h('button', { type: 'button', class: 'danger', onclick: async () => {
      try {
        const reply = await api('DELETE', '/sessions');
        say(`${reply.revoked_sessions} other session(s) signed out.`);
        loadSessions();
      } catch (err) {
        say(errorText(err));
      }
    } }, 'Sign out all other sessions')));

  return h('section', { class: 'view' }, paneHeader('Settings'), body);
}

/** "Chrome on Linux" from a user agent; the full string is in the tooltip. */
function deviceName(ua) {
  if (!ua) return 'Unknown device';
  const browser = /Edg\//.test(ua) ? 'Edge' : /Firefox\//.test(ua) ? 'Firefox' : /Chrome\//.test(ua) ? 'Chrome'
    : /Safari\//.test(ua) ? 'Safari' : null;
  const os = /Android/.test(ua) ? 'Android' : /iPhone|iPad/.test(ua) ? 'iOS' : /Windows/.test(ua) ? 'Windows'
    : /Mac OS X/.test(ua) ? 'macOS' : /Linux/.test(ua) ? 'Linux' : null;
  if (!browser) return ua.length > 40 ? ua.slice(0, 40) + '…' : ua;
  return os ? `${browser} on ${os}` : browser;
}

// ---------------------------------------------------------------- views: room

async function openRoom(id) {
  const room = state.rooms.get(id);
  const changed = state.activeRoomId !== id;
  state.activeRoomId = id;
  if (changed) {
    state.replyTo = null;
    state.editing = null;
  }
  const pane = $('#pane');
  replace(pane,
    h('section', { class: 'room-view', 'aria-labelledby': 'room-title' },
      h('header', { class: 'pane-header room-header', id: 'room-header' }),
      h('div', { class: 'room-body' },
        h('div', { class: 'conversation' },
          h('div', { class: 'messages', id: 'messages', role: 'log', 'aria-label': 'Messages', tabindex: '0' },
            h('p', { class: 'empty' }, 'Loading…')),
          h('p', { class: 'typing', id: 'typing', 'aria-live': 'polite' }),
          composer(room)),
        h('aside', { class: 'members', id: 'members', 'aria-label': 'Members', hidden: !(document.body.classList.contains('show-members') && matchMedia('(min-width: 761px)').matches) }))));
  $('#messages').addEventListener('scroll', onScroll);
  renderRoomHeader();
  renderMembers();
  if (!matchMedia('(pointer: coarse)').matches) $('#composer').focus();
  try {
    if (!room.loaded) await loadHistory(room);
    if (!room.members) loadMembers(room);
  } catch (err) {
    say(errorText(err));
  }
  if (state.activeRoomId !== id) return;
  renderMessages({ toBottom: true });
  markRead();
}

function renderRoomHeader() {
  const room = activeRoom();
  const header = $('#room-header');
  if (!room || !header) return;
  const peer = dmPeer(room);
  replace(header,
    h('a', { href: '#/', class: 'back', 'aria-label': 'Back to rooms' }, '‹'),
    h('div', { class: 'grow' },
      h('h1', { id: 'room-title' }, peer ? h('span', { class: 'dot ' + presenceOf(peer), 'aria-hidden': 'true' }) : (room.visibility === 'private' ? '🔒 ' : '# '), roomLabel(room),
        peer ? h('span', { class: 'sr-only' }, `, ${presenceOf(peer)}`) : null),
      room.topic ? h('p', { class: 'topic muted' }, room.topic) : null),
    h('button', { type: 'button', id: 'toggle-members', 'aria-expanded': String(!$('#members').hidden), 'aria-controls': 'members', onclick: () => {
      const panel = $('#members');
      panel.hidden = !panel.hidden;
      document.body.classList.toggle('show-members', !panel.hidden);
      $('#toggle-members').setAttribute('aria-expanded', String(!panel.hidden));
    } }, 'Members'),
    room.my_role !== 'owner' && room.visibility !== 'direct'
      ? h('button', { type: 'button', onclick: async () => {
        if (!confirm(`Leave ${room.name}?`)) return;
        try {
          await api('POST', `/rooms/${room.id}/leave`);
          dropRoom(room.id, `You left ${room.name}.`);
        } catch (err) {
          say(errorText(err));
        }
      } }, 'Leave')
      : null);
}

function composer(room) {
  const input = h('textarea', { id: 'composer', name: 'body', rows: 1, maxlength: 4000, placeholder: `Message ${roomLabel(room)}`, 'aria-describedby': 'composer-help' });
  const reply = h('div', { class: 'replying', id: 'replying', hidden: true });
  const error = h('p', { class: 'form-error', role: 'alert', id: 'composer-error' });
  const form = h('form', { class: 'composer', id: 'composer-form' },
    reply,
    h('label', { for: 'composer', class: 'sr-only' }, `Message ${roomLabel(room)}`),
    h('div', { class: 'composer-row' }, input, h('button', { type: 'submit', class: 'primary', id: 'send' }, 'Send')),
    h('p', { id: 'composer-help', class: 'sr-only' }, 'Enter sends, Shift+Enter adds a new line.'),
    error);
  const submit = async () => {
    const body = input.value;
    if (!body.trim()) return;
    error.textContent = '';
    const replyTo = state.replyTo;
    input.value = '';
    autosize(input);
    state.replyTo = null;
    renderReplying();
    try {
      await sendMessage(room, body, replyTo && replyTo.id);
    } catch (err) {
      input.value = body;
      autosize(input);
      error.textContent = errorText(err);
    }
  };
  input.addEventListener('keydown', (e) => {
    if (e.key === 'Enter' && !e.shiftKey && !e.isComposing) {
      e.preventDefault();
      submit();
    } else if (e.key === 'Escape' && state.replyTo) {
      state.replyTo = null;
      renderReplying();
    } else if (e.key === 'ArrowUp' && !input.value) {
      const mine = [...room.messages.values()].filter((m) => m.author_id === state.me.id && !m.deleted).pop();
      if (mine) {
        e.preventDefault();
        startEdit(mine);
      }
    }
  });
  input.addEventListener('input', () => {
    autosize(input);
    const now = Date.now();
    if (input.value && now - state.lastTypingSent > TYPING_SEND_EVERY_MS && realtime) {
      state.lastTypingSent = now;
      realtime.send({ type: 'typing', room_id: room.id });
    }
  });
  form.addEventListener('submit', (e) => { e.preventDefault(); submit(); });
  return form;
}

function autosize(textarea) {
  textarea.style.height = 'auto';
  textarea.style.height = Math.min(textarea.scrollHeight, 200) + 'px';
}

function renderReplying() {
  const el = $('#replying');
  if (!el) return;
  const target = state.replyTo;
  el.hidden = !target;
  if (target) {
    replace(el, h('span', {}, `Replying to ${userName(target.author_id)}: `), h('span', { class: 'snippet' }, snippet(target.body)),
      h('button', { type: 'button', class: 'link', 'aria-label': 'Cancel reply', onclick: () => { state.replyTo = null; renderReplying(); $('#composer').focus(); } }, '✕'));
  }
}

function snippet(text) {
  return text.length > 80 ? text.slice(0, 80) + '…' : text;
}

function onScroll() {
  const el = $('#messages');
  const room = activeRoom();
  if (el && room && el.scrollTop < 80) loadOlder(room);
}

function renderMessages({ toBottom = false, keepOffset = false } = {}) {
  const room = activeRoom();
  const el = $('#messages');
  if (!room || !el || !room.loaded) return;
  const nearBottom = el.scrollHeight - el.scrollTop - el.clientHeight < 60;
  const oldHeight = el.scrollHeight;
  const oldTop = el.scrollTop;
  const focusedId = document.activeElement && el.contains(document.activeElement) ? document.activeElement.id : null;
  const messages = [...room.messages.values()].sort((a, b) => a.seq - b.seq);
  const items = [];
  if (room.hasMore) items.push(h('li', { class: 'history-more' }, h('button', { type: 'button', class: 'link', id: 'load-older', onclick: () => loadOlder(room) }, 'Load earlier messages')));
  else items.push(h('li', { class: 'history-start muted' }, 'This is the beginning of the room.'));
  let lastAuthor = null;
  let lastTime = 0;
  const myLast = [...messages].reverse().find((m) => m.author_id === state.me.id && !m.deleted);
  for (const m of messages) {
    const time = new Date(m.created_at).getTime();
    const grouped = m.author_id === lastAuthor && time - lastTime < 5 * 60_000 && !m.reply_to;
    lastAuthor = m.author_id;
    lastTime = time;
    items.push(messageItem(room, m, grouped, m === myLast));
  }
  if (!messages.length) items.push(h('li', { class: 'empty' }, 'No messages yet. Say hello!'));
  replace(el, h('ol', { class: 'message-list' }, ...items));
  if (toBottom || nearBottom) el.scrollTop = el.scrollHeight;
  else if (keepOffset) el.scrollTop = oldTop + (el.scrollHeight - oldHeight);
  else el.scrollTop = oldTop;
  if (focusedId) {
    const again = document.getElementById(focusedId);
    if (again) again.focus();
  }
  renderReplying();
}

function messageItem(room, m, grouped, isMyLast) {
  const mine = m.author_id === state.me.id;
  const editing = state.editing && state.editing.id === m.id;
  const body = m.deleted
    ? h('p', { class: 'body deleted muted' }, 'This message was deleted.')
    : editing ? editForm(room, m) : h('p', { class: 'body' }, m.body);
  const parent = m.reply_to ? [...room.messages.values()].find((x) => x.id === m.reply_to) : null;
  const quote = m.reply_to
    ? h('blockquote', { class: 'quote' }, parent
      ? [h('span', { class: 'author' }, userName(parent.author_id) + ': '), parent.deleted ? 'deleted message' : snippet(parent.body)]
      : 'in reply to an earlier message')
    : null;
  const reactions = Object.entries(m.reactions || {}).filter(([, n]) => n > 0);
  const seenBy = isMyLast ? [...room.reads.entries()].filter(([id, seq]) => id !== state.me.id && seq >= m.seq).map(([id]) => userName(id)) : [];
  const actions = m.deleted || editing ? null : h('div', { class: 'message-actions', role: 'group', 'aria-label': 'Message actions' },
    ...QUICK_REACTIONS.map((emoji) => h('button', { type: 'button', class: 'react', 'aria-label': `React ${emoji}`, onclick: () => toggleReaction(room, m, emoji) }, emoji)),
    h('button', { type: 'button', onclick: () => { state.replyTo = m; renderReplying(); $('#composer').focus(); } }, 'Reply'),
    mine ? h('button', { type: 'button', onclick: () => startEdit(m) }, 'Edit') : null,
    mine || room.my_role === 'owner' || room.my_role === 'admin'
      ? h('button', { type: 'button', class: 'danger', onclick: () => deleteMessage(room, m) }, 'Delete') : null);
  return h('li', { class: 'message' + (mine ? ' mine' : '') + (grouped ? ' grouped' : ''), id: `msg-${m.seq}`, dataset: { seq: m.seq, id: m.id } },
    h('div', { class: 'meta' + (grouped ? ' sr-only' : '') },
      h('span', { class: 'author' }, userName(m.author_id)),
      h('time', { datetime: m.created_at, title: new Date(m.created_at).toLocaleString() }, formatTime(m.created_at)),
      m.edited_at && !m.deleted ? h('span', { class: 'muted edited' }, '(edited)') : null),
    quote, body,
    reactions.length ? h('div', { class: 'reactions' }, ...reactions.map(([emoji, n]) => {
      const pressed = room.myReactions.has(`${m.id} ${emoji}`);
      return h('button', { type: 'button', class: 'reaction', 'aria-pressed': String(pressed), 'aria-label': `${emoji} ${n}, ${pressed ? 'remove my reaction' : 'react'}`, onclick: () => toggleReaction(room, m, emoji) },
        emoji, ' ', h('span', { class: 'count' }, String(n)));
    })) : null,
    seenBy.length ? h('p', { class: 'seen muted' }, 'Seen by ' + seenBy.join(', ')) : null,
    actions);
}

async function toggleReaction(room, m, emoji) {
  const mineNow = room.myReactions.has(`${m.id} ${emoji}`);
  const type = mineNow ? 'reaction.remove' : 'reaction.add';
  const path = `/rooms/${room.id}/messages/${m.id}/reactions/${encodeURIComponent(emoji)}`;
  try {
    await socketOrRest({ type, room_id: room.id, message_id: m.id, emoji }, mineNow ? 'DELETE' : 'PUT', path);
  } catch (err) {
    say(errorText(err));
  }
}

function startEdit(m) {
  state.editing = m;
  renderMessages();
  const box = $('#edit-box');
  if (box) {
    box.focus();
    box.setSelectionRange(box.value.length, box.value.length);
  }
}

function editForm(room, m) {
  const box = h('textarea', { id: 'edit-box', rows: 2, maxlength: 4000, 'aria-label': 'Edit message' }, m.body);
  const done = () => {
    state.editing = null;
    renderMessages();
    $('#composer').focus();
  };
  const save = async () => {
    const body = box.value;
    if (!body.trim() || body === m.body) return done();
    try {
      const ack = await socketOrRest({ type: 'message.edit', room_id: room.id, message_id: m.id, body }, 'PATCH', `/rooms/${room.id}/messages/${m.id}`, { body });
      const updated = ack && (ack.message || (ack.seq ? ack : null));
      if (updated) room.messages.set(updated.seq, updated);
      done();
    } catch (err) {
      say(errorText(err));
    }
  };
  box.addEventListener('keydown', (e) => {
    if (e.key === 'Enter' && !e.shiftKey) {
      e.preventDefault();
      save();
    } else if (e.key === 'Escape') {
      e.preventDefault();
      done();
    }
  });
  return h('div', { class: 'edit' }, box,
    h('div', { class: 'edit-actions' }, h('button', { type: 'button', class: 'primary', onclick: save }, 'Save'), h('button', { type: 'button', onclick: done }, 'Cancel'),
      h('span', { class: 'muted' }, 'Enter saves, Escape cancels')));
}

async function deleteMessage(room, m) {
  if (!confirm('Delete this message?')) return;
  try {
    await socketOrRest({ type: 'message.delete', room_id: room.id, message_id: m.id }, 'DELETE', `/rooms/${room.id}/messages/${m.id}`);
    const current = room.messages.get(m.seq);
    if (current) room.messages.set(m.seq, { ...current, deleted: true, body: '' });
    renderMessages();
  } catch (err) {
    say(errorText(err));
  }
}

function renderTyping() {
  const room = activeRoom();
  const el = $('#typing');
  if (!room || !el) return;
  const names = [...room.typing.keys()].map(userName);
  el.textContent = names.length === 0 ? '' : names.length === 1 ? `${names[0]} is typing…` : `${names.join(', ')} are typing…`;
}

function renderMembers() {
  const room = activeRoom();
  const el = $('#members');
  if (!room || !el) return;
  if (!room.members) {
    replace(el, h('h2', {}, 'Members'), h('p', { class: 'muted' }, 'Loading…'));
    return;
  }
  const members = [...room.members.values()].sort((a, b) => userName(a.user_id).localeCompare(userName(b.user_id)));
  const invite = room.visibility !== 'direct' && (room.visibility === 'public' || room.my_role !== 'member') ? inviteForm(room) : null;
  replace(el, h('h2', {}, `Members (${members.length})`),
    h('ul', { class: 'member-list' }, ...members.map((m) => {
      const presence = presenceOf(m.user_id);
      const me = m.user_id === state.me.id;
      return h('li', { class: 'member' },
        h('span', { class: 'dot ' + presence, 'aria-hidden': 'true' }),
        h('span', { class: 'grow' }, userName(m.user_id), h('span', { class: 'sr-only' }, `, ${presence}`),
          m.role !== 'member' ? h('span', { class: 'tag' }, m.role) : null),
        me ? null : h('button', { type: 'button', class: 'small', 'aria-label': `Message ${userName(m.user_id)}`, onclick: () => openDm(m.user_id) }, 'Message'));
    })),
    invite);
}

function inviteForm(room) {
  const input = h('input', { id: 'invite-who', name: 'who', placeholder: state.features.userSearch ? 'Username' : 'User ID' });
  const error = h('p', { class: 'form-error', role: 'alert' });
  const form = h('form', { class: 'invite-form' },
    h('label', { for: 'invite-who' }, 'Invite someone'), input, h('button', { type: 'submit', class: 'small' }, 'Invite'), error);
  form.addEventListener('submit', async (e) => {
    e.preventDefault();
    error.textContent = '';
    let userId = input.value.trim();
    if (!userId) return;
    try {
      if (state.features.userSearch) {
        const page = await api('GET', '/users/search?q=' + encodeURIComponent(userId));
        const hit = (page.items || []).find((u) => u.username === userId.toLowerCase()) || (page.items || [])[0];
        if (!hit) throw new Error('No such user.');
        userId = hit.id;
      }
      await api('POST', `/rooms/${room.id}/invites`, { user_id: userId });
      input.value = '';
      say('Invitation sent.');
    } catch (err) {
      error.textContent = errorText(err);
    }
  });
  return form;
}

async function openDm(userId) {
  try {
    const room = await api('POST', '/dm', { user_id: userId });
    const r = upsertRoom(room);
    if (!r.members) await loadMembers(r);
    location.hash = `#/room/${room.id}`;
  } catch (err) {
    say(errorText(err));
  }
}

// ---------------------------------------------------------------- keyboard

function globalKeys(e) {
  if (!state.me || !$('#shell')) return;
  if (e.altKey && (e.key === 'ArrowDown' || e.key === 'ArrowUp')) {
    e.preventDefault();
    const links = [...document.querySelectorAll('.room-link')];
    if (!links.length) return;
    const current = links.findIndex((a) => a.dataset.roomId === state.activeRoomId);
    const next = e.key === 'ArrowDown' ? (current + 1) % links.length : (current - 1 + links.length) % links.length;
    location.hash = links[next].getAttribute('href');
  }
}

document.addEventListener('visibilitychange', () => markRead());

boot();
