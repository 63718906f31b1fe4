// Shared plumbing of the app: Preact + htm, the router, the API client, time and number
// formatting. No build step: every import is a vendored ES module under /assets/vendor/.
import { h, render, Fragment } from '/assets/vendor/preact-11.2.0.mjs';
import {
  useState, useEffect, useRef, useMemo, useCallback, useLayoutEffect,
} from '/assets/vendor/preact-hooks-11.2.0.mjs';
import htm from '/assets/vendor/htm-3.1.1.mjs';

export const html = htm.bind(h);
export { h, render, Fragment, useState, useEffect, useRef, useMemo, useCallback, useLayoutEffect };

// ---------------------------------------------------------------------------------------------
// Router: path-based, history.pushState; every bit of view state lives in the URL.

const listeners = new Set();
function notify() { for (const f of listeners) f(); }
window.addEventListener('popstate', notify);

/** Goes to `to` (a path with an optional query). `replace` keeps the history entry. */
export function navigate(to, { replace = false } = {}) {
  const here = location.pathname + location.search;
  if (to === here) return;
  history[replace ? 'replaceState' : 'pushState'](null, '', to);
  if (!replace) window.scrollTo(0, 0);
  notify();
}

/** Re-renders the caller whenever the URL changes; returns {path, query}. */
export function useLocation() {
  const [, tick] = useState(0);
  useEffect(() => {
    const f = () => tick((x) => x + 1);
    listeners.add(f);
    return () => listeners.delete(f);
  }, []);
  return { path: location.pathname, query: new URLSearchParams(location.search) };
}

/** A URL: `path` plus the non-empty entries of `params`. */
export function href(path, params = {}) {
  const q = new URLSearchParams();
  for (const [k, v] of Object.entries(params)) {
    if (v !== undefined && v !== null && v !== '' && v !== false) q.set(k, String(v));
  }
  const s = q.toString();
  return s ? `${path}?${s}` : path;
}

/** Merges `updates` into the current query (null/'' deletes) and navigates. */
export function setQuery(updates, { replace = false } = {}) {
  const q = new URLSearchParams(location.search);
  for (const [k, v] of Object.entries(updates)) {
    if (v === undefined || v === null || v === '' || v === false) q.delete(k);
    else q.set(k, String(v));
  }
  const s = q.toString();
  navigate(location.pathname + (s ? `?${s}` : ''), { replace });
}

// Same-origin links to app pages navigate without a reload.
document.addEventListener('click', (e) => {
  if (e.defaultPrevented || e.button !== 0 || e.metaKey || e.ctrlKey || e.shiftKey || e.altKey) return;
  const a = e.target.closest && e.target.closest('a[href]');
  if (!a || a.target || a.hasAttribute('download')) return;
  const url = new URL(a.href, location.href);
  if (url.origin !== location.origin) return;
  if (url.pathname.startsWith('/api/') || url.pathname.startsWith('/assets/')) return;
  e.preventDefault();
  navigate(url.pathname + url.search);
});

export const entityHref = (id, params = {}) => href(`/entities/${encodeURIComponent(id)}`, params);
export const traceHref = (id) => `/traces/${encodeURIComponent(id)}`;

// ---------------------------------------------------------------------------------------------
// API client.

export class ApiError extends Error {
  constructor(status, code, message) {
    super(message);
    this.status = status;
    this.code = code;
  }
}

// A server started with --auth-tokens-file answers 401 without a bearer token: the page asks
// for one once, keeps it for the tab (sessionStorage, never localStorage) and sends it with
// every call.
const TOKEN_KEY = 'loupe.token';
let tokenPrompt = null;

function storedToken() {
  try { return sessionStorage.getItem(TOKEN_KEY) || ''; } catch { return ''; }
}

/** Asks for a token in a modal dialog; resolves to it (one dialog for concurrent calls). */
function askToken(reason) {
  if (tokenPrompt) return tokenPrompt;
  tokenPrompt = new Promise((resolve) => {
    const dialog = document.createElement('dialog');
    dialog.className = 'token-dialog';
    dialog.dataset.testid = 'token-dialog';
    dialog.innerHTML = `
      <form method="dialog">
        <h2>This loupe needs a token</h2>
        <p class="muted"></p>
        <label>Bearer token
          <input name="token" type="password" autocomplete="off" required data-testid="token-input"
                 placeholder="loupe_…">
        </label>
        <p class="muted">A token with the <b>read</b> scope shows everything; <b>admin</b> also
          records verdicts. <code>loupe token create --name you --scope admin --tokens-file …</code>
          makes one. It is kept for this tab only.</p>
        <menu><button type="submit" class="btn primary" data-testid="token-submit">Use token</button></menu>
      </form>`;
    dialog.querySelector('p.muted').textContent = reason;
    dialog.addEventListener('cancel', (e) => e.preventDefault());
    dialog.querySelector('form').addEventListener('submit', (e) => {
      e.preventDefault();
      const value = dialog.querySelector('input').value.trim();
      if (!value) return;
      try { sessionStorage.setItem(TOKEN_KEY, value); } catch { /* private mode: memory only */ }
      dialog.close();
      dialog.remove();
      tokenPrompt = null;
      resolve(value);
    });
    document.body.appendChild(dialog);
    dialog.showModal();
  });
  return tokenPrompt;
}

/**
 * Calls the API; resolves to the parsed JSON, rejects with an ApiError carrying the server's
 * `{"error":{"code","message"}}`. `allow` lists non-2xx statuses whose body is an answer
 * (e.g. /readyz's 503 while recovering). A 401 asks for a token and tries again.
 */
export async function api(path, { method = 'GET', body, allow = [], signal } = {}) {
  let r;
  let token = storedToken();
  try {
    for (;;) {
      const headers = body === undefined ? { accept: 'application/json' }
        : { 'content-type': 'application/json', accept: 'application/json' };
      if (token) headers.authorization = `Bearer ${token}`;
      r = await fetch(path, {
        method,
        signal,
        headers,
        body: body === undefined ? undefined : JSON.stringify(body),
      });
      if (r.status !== 401) break;
      let reason = 'The server asks for a bearer token.';
      try { reason = (await r.json()).error.message; } catch { /* keep the default */ }
      try { sessionStorage.removeItem(TOKEN_KEY); } catch { /* nothing kept */ }
      token = await askToken(token ? `That token was refused: ${reason}` : reason);
    }
  } catch (e) {
    if (e && e.name === 'AbortError') throw e;
    throw new ApiError(0, 'network', `${method} ${path}: the server did not answer (${e.message})`);
  }
  const text = await r.text();
  let data = null;
  try { data = text ? JSON.parse(text) : null; } catch { data = undefined; }
  if (!r.ok && !allow.includes(r.status)) {
    const err = data && data.error;
    const message = err && err.message ? err.message : (text || r.statusText || 'request failed');
    throw new ApiError(r.status, (err && err.code) || `http_${r.status}`, `${message}`);
  }
  if (data === undefined) throw new ApiError(r.status, 'bad_json', `${method} ${path}: the answer is not JSON`);
  if (allow.length) return { status: r.status, data };
  return data;
}

export const post = (path, body) => api(path, { method: 'POST', body });

/**
 * Fetches `url` (null: nothing) and keeps {data, error, loading}. `poll` (ms) refetches; the
 * data stays while a refetch runs, so polling never flickers. `reload()` refetches now.
 */
export function useApi(url, { poll = 0, allow } = {}) {
  const [state, setState] = useState({ data: null, error: null, loading: !!url, url: null });
  const seq = useRef(0);
  const [nonce, setNonce] = useState(0);
  useEffect(() => {
    if (!url) { setState({ data: null, error: null, loading: false, url: null }); return undefined; }
    let alive = true;
    const ctl = new AbortController();
    const run = async () => {
      const mine = ++seq.current;
      setState((s) => ({ ...s, loading: true, data: s.url === url ? s.data : null }));
      try {
        const data = await api(url, { allow, signal: ctl.signal });
        if (alive && mine === seq.current) setState({ data, error: null, loading: false, url });
      } catch (e) {
        if (e && e.name === 'AbortError') return;
        if (alive && mine === seq.current) setState((s) => ({ data: s.url === url ? s.data : null, error: e, loading: false, url }));
      }
    };
    run();
    const timer = poll ? setInterval(() => { if (!document.hidden) run(); }, poll) : null;
    return () => { alive = false; ctl.abort(); if (timer) clearInterval(timer); };
  }, [url, poll, nonce]);
  const reload = useCallback(() => setNonce((n) => n + 1), []);
  return { ...state, reload };
}

// ---------------------------------------------------------------------------------------------
// Time. The API's nanosecond integers exceed 2^53, so JSON.parse rounds them: fine for display,
// never sent back. Times sent to the API are RFC 3339 strings or integer strings from BigInt.

/** Milliseconds since the epoch from unix nanoseconds (number), an RFC 3339 string, or a Date. */
export function toMs(t) {
  if (t === null || t === undefined || t === '') return null;
  if (typeof t === 'number') return t / 1e6;
  if (typeof t === 'bigint') return Number(t / 1000n) / 1000;
  if (t instanceof Date) return t.getTime();
  if (/^\d+$/.test(t)) return Number(BigInt(t) / 1000n) / 1000;
  const ms = Date.parse(zoned(t));
  return Number.isNaN(ms) ? null : ms;
}

/** The API's times are UTC: a timestamp written without a zone (arrow-json) gets `Z`. */
function zoned(s) {
  return /^\d{4}-\d\d-\d\d[T ]\d\d:\d\d(:\d\d(\.\d+)?)?$/.test(s) ? `${s.replace(' ', 'T')}Z` : s;
}

/** RFC 3339 UTC string (millisecond precision) for the API and the URL. */
export function iso(ms) {
  return new Date(Math.round(ms)).toISOString();
}
/** RFC 3339 UTC to the second, for URLs people read. */
export function isoSec(ms) {
  return new Date(Math.floor(ms / 1000) * 1000).toISOString().replace('.000Z', 'Z');
}

/** Integer unix nanoseconds as a string, built with BigInt from milliseconds. */
export function nsString(ms) {
  return (BigInt(Math.round(ms)) * 1000000n).toString();
}

/** Nanoseconds from an RFC 3339 string with up to 9 fraction digits (exact, as a BigInt). */
export function rfc3339Ns(s) {
  if (typeof s === 'number') return BigInt(Math.round(s));
  s = zoned(s);
  const m = /^(.*?:\d\d)(?:\.(\d+))?(Z|[+-]\d\d:?\d\d)?$/i.exec(s);
  if (!m) return BigInt(Math.round((Date.parse(s) || 0) * 1e6));
  const base = Date.parse(m[1] + (m[3] || 'Z'));
  const frac = (m[2] || '').slice(0, 9).padEnd(9, '0');
  return BigInt(base) * 1000000n + BigInt(frac);
}

/** A time typed by a person: RFC 3339, `YYYY-MM-DD HH:MM[:SS]` (local), unix ns or ms, `now`,
 *  or `-15m` (relative to now). Milliseconds, or null when it is none of those. */
export function parseTimeInput(s, now = Date.now()) {
  s = (s || '').trim();
  if (!s) return null;
  if (s === 'now') return now;
  const rel = /^-\s*(.+)$/.exec(s);
  if (rel) { const d = parseDuration(rel[1]); return d === null ? null : now - d; }
  if (/^\d{16,}$/.test(s)) return Number(BigInt(s) / 1000n) / 1000;
  if (/^\d{12,13}$/.test(s)) return Number(s);
  const local = /^(\d{4})-(\d\d)-(\d\d)[ T](\d\d):(\d\d)(?::(\d\d)(?:\.(\d+))?)?$/.exec(s);
  if (local) {
    const [, y, mo, d, hh, mm, ss = '0', fr = '0'] = local;
    return new Date(+y, +mo - 1, +d, +hh, +mm, +ss, Math.round(Number(`0.${fr}`) * 1000)).getTime();
  }
  const ms = Date.parse(s);
  return Number.isNaN(ms) ? null : ms;
}

const UNITS = { ns: 1e-6, us: 1e-3, 'µs': 1e-3, ms: 1, s: 1e3, sec: 1e3, m: 60e3, min: 60e3, h: 3600e3, d: 86400e3 };
/** `5m`, `90s`, `1h 30m`, `250ms` → milliseconds (null when unreadable). */
export function parseDuration(s) {
  s = String(s || '').trim();
  if (!s) return null;
  if (/^\d+$/.test(s)) return Number(s) / 1e6; // integer nanoseconds, as the API reads them
  let total = 0;
  let rest = s;
  const re = /^\s*(\d+(?:\.\d+)?)\s*(ns|us|µs|ms|sec|min|s|m|h|d)/;
  while (rest.trim()) {
    const m = re.exec(rest);
    if (!m) return null;
    total += Number(m[1]) * UNITS[m[2]];
    rest = rest.slice(m[0].length);
  }
  return total;
}

/** Milliseconds → a duration the API reads (`90s`, `5m`, `1h`). */
export function durationParam(ms) {
  const s = Math.max(1, Math.round(ms / 1000));
  if (s % 3600 === 0) return `${s / 3600}h`;
  if (s % 60 === 0) return `${s / 60}m`;
  return `${s}s`;
}

const pad = (n, w = 2) => String(n).padStart(w, '0');
/** Local time: `HH:MM:SS`, with the date when it is not today (or `date` is set). */
export function fmtTime(ms, { date, millis, short } = {}) {
  if (ms === null || ms === undefined || Number.isNaN(ms)) return '—';
  const d = new Date(ms);
  const today = new Date();
  const sameDay = d.getFullYear() === today.getFullYear() && d.getMonth() === today.getMonth() && d.getDate() === today.getDate();
  let t = `${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}`;
  if (millis) t += `.${pad(d.getMilliseconds(), 3)}`;
  if (date || (!sameDay && !short)) t = `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())} ${t}`;
  return t;
}
/** For an input: local `YYYY-MM-DD HH:MM:SS`. */
export const fmtLocalInput = (ms) => (ms === null || ms === undefined ? '' : fmtTime(ms, { date: true }));

/** A time in the browser's zone; its UTC form on hover. `t`: ns number, RFC 3339, or `ms`. */
export function Time({ t, ms, date, millis, ago, short }) {
  const v = ms !== undefined ? ms : toMs(t);
  if (v === null || v === undefined) return html`<span class="muted">—</span>`;
  const u = new Date(v).toISOString();
  return html`<time datetime=${u} title=${`${u.replace('T', ' ').replace('Z', '')} UTC`}>${fmtTime(v, { date, millis, short })}${ago ? html` <span class="muted">(${fmtAgo(v)})</span>` : null}</time>`;
}

/** `3 min ago`, `in 20 s`. */
export function fmtAgo(ms, now = Date.now()) {
  const d = now - ms;
  const a = Math.abs(d);
  let s;
  if (a < 60e3) s = `${Math.round(a / 1e3)} s`;
  else if (a < 3600e3) s = `${Math.round(a / 60e3)} min`;
  else if (a < 86400e3) s = `${(a / 3600e3).toFixed(a < 36000e3 ? 1 : 0)} h`;
  else s = `${(a / 86400e3).toFixed(1)} d`;
  return d >= 0 ? `${s} ago` : `in ${s}`;
}

/** Milliseconds → `1h 05m`, `3m 20s`, `4.2 s`, `340 ms`, `12 µs`. */
export function fmtDur(ms) {
  if (ms === null || ms === undefined || Number.isNaN(ms)) return '—';
  if (ms === 0) return '0';
  const a = Math.abs(ms);
  const sign = ms < 0 ? '−' : '';
  if (a >= 3600e3) return `${sign}${Math.floor(a / 3600e3)}h ${pad(Math.floor((a % 3600e3) / 60e3))}m`;
  if (a >= 60e3) return `${sign}${Math.floor(a / 60e3)}m ${pad(Math.floor((a % 60e3) / 1e3))}s`;
  if (a >= 10e3) return `${sign}${(a / 1e3).toFixed(0)} s`;
  if (a >= 1e3) return `${sign}${(a / 1e3).toFixed(2)} s`;
  if (a >= 10) return `${sign}${a.toFixed(0)} ms`;
  if (a >= 1) return `${sign}${a.toFixed(1)} ms`;
  if (a >= 0.001) return `${sign}${(a * 1e3).toFixed(0)} µs`;
  return `${sign}${(a * 1e6).toFixed(0)} ns`;
}
export const fmtSecs = (s) => (s === null || s === undefined ? '—' : fmtDur(s * 1e3));

/** 0.0123 → `1.2%`. */
export function fmtPct(r, digits) {
  if (r === null || r === undefined || Number.isNaN(r)) return '—';
  const p = r * 100;
  const d = digits !== undefined ? digits : (p === 0 ? 0 : Math.abs(p) < 1 ? 2 : Math.abs(p) < 10 ? 1 : 0);
  return `${p.toFixed(d)}%`;
}

/** Compact numbers: 1234 → `1.2k`. */
export function fmtNum(n, digits = 1) {
  if (n === null || n === undefined || Number.isNaN(n)) return '—';
  const a = Math.abs(n);
  if (a >= 1e9) return `${(n / 1e9).toFixed(digits)}G`;
  if (a >= 1e6) return `${(n / 1e6).toFixed(digits)}M`;
  if (a >= 1e4) return `${(n / 1e3).toFixed(digits)}k`;
  if (Number.isInteger(n)) return String(n);
  if (a >= 100) return n.toFixed(0);
  if (a >= 1) return n.toFixed(digits);
  return n.toPrecision(2);
}

/** Bytes → `1.2 MB`. */
export function fmtBytes(n) {
  if (n === null || n === undefined) return '—';
  const u = ['B', 'KB', 'MB', 'GB', 'TB'];
  let i = 0;
  let v = n;
  while (v >= 1024 && i < u.length - 1) { v /= 1024; i += 1; }
  return `${i ? v.toFixed(1) : v} ${u[i]}`;
}

/** A colour per service name, stable across pages. */
const PALETTE = ['#4e9af1', '#f2a93b', '#5cc98f', '#c77dff', '#f06a8a', '#3cc7c7', '#d9d35b', '#8f9dff',
  '#ff8c5a', '#7fd16b', '#e08ee8', '#56b4e9', '#c9a36b', '#9ad0ec', '#f7b2c4', '#a0e3a7'];
export function serviceColor(name) {
  let x = 2166136261;
  for (const c of String(name || '')) { x ^= c.codePointAt(0); x = Math.imul(x, 16777619); }
  return PALETTE[(x >>> 0) % PALETTE.length];
}

/** A cause's name for people: a change cause `cart:deployment@2026-…Z` reads `cart deployment`. */
export function causeName(kind, name) {
  if (kind === 'change') {
    const m = /^(.+):([a-z_]+)@(.+)$/.exec(name);
    if (m) return `${m[1]} ${m[2].replace(/_/g, ' ')}`;
  }
  return name;
}

/** An entity id `kind:name` → [kind, name]. */
export function splitId(id) {
  const i = id.indexOf(':');
  return i < 0 ? ['', id] : [id.slice(0, i), id.slice(i + 1)];
}

// localStorage is optional (private windows can refuse it).
export function stored(key, fallback) {
  try { const v = localStorage.getItem(key); return v === null ? fallback : v; } catch { return fallback; }
}
export function store(key, value) {
  try { localStorage.setItem(key, value); } catch { /* not kept: fine */ }
}

/** The name verdicts are signed with (editable in the header). */
const nameListeners = new Set();
export function getName() { return stored('loupe.by', 'sre'); }
export function setName(v) { store('loupe.by', v); for (const f of nameListeners) f(v); }
export function useName() {
  const [name, set] = useState(getName());
  useEffect(() => { nameListeners.add(set); return () => nameListeners.delete(set); }, []);
  return name;
}

/** Runs `fn` at most once per `ms`; the last call wins. */
export function debounce(fn, ms) {
  let t = null;
  return (...args) => { clearTimeout(t); t = setTimeout(() => fn(...args), ms); };
}

/** Refreshes the caller every `ms` (for "ago" labels). */
export function useTick(ms) {
  const [, set] = useState(0);
  useEffect(() => { const t = setInterval(() => set((x) => x + 1), ms); return () => clearInterval(t); }, [ms]);
}

export function useTitle(title) {
  useEffect(() => { document.title = title ? `${title} · loupe` : 'loupe'; }, [title]);
}
