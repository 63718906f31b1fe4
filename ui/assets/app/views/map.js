// The service map as of any time: at / window / known_at, a time slider, focus service + depth,
// kind filter, and a diff mode between two windows.
import {
  html, useState, useEffect, useMemo, useApi, api, setQuery, href, entityHref, toMs, isoSec, iso, parseTimeInput,
  parseDuration, durationParam, fmtTime, fmtLocalInput, fmtPct, fmtSecs, fmtNum, Time, useTitle,
} from '../lib.js';
import { ErrorBox, Loading, KindTag, kindLabel } from '../components/common.js';
import { ServiceMap, MapLegend, rateLabel } from '../components/servicemap.js';

export const ALL_KINDS = ['service', 'database', 'messaging_destination', 'external', 'pod', 'node', 'operation', 'service_instance', 'workload', 'namespace', 'change', 'event'];
export const DEFAULT_KINDS = ['service', 'database', 'messaging_destination', 'external'];
const WINDOWS = ['1m', '5m', '15m', '30m', '1h', '6h'];

// The data's time range (for the slider), from the stored spans; shared by the pages for 30 s.
let extentCache = null;
export async function dataExtent() {
  if (extentCache && Date.now() - extentCache.at < 30e3) return extentCache.value;
  const res = await api('/api/v1/query', { method: 'POST', body: { sql: 'SELECT min(start_time_unix_nano) AS lo, max(start_time_unix_nano) AS hi FROM spans', max_rows: 1 } });
  const row = res.rows[0] || {};
  const value = row.lo !== undefined && row.hi !== undefined ? { lo: toMs(row.lo), hi: toMs(row.hi) } : null;
  extentCache = { at: Date.now(), value };
  return value;
}

export function useExtent() {
  const [state, set] = useState({ extent: null, error: null, done: false });
  useEffect(() => {
    let alive = true;
    dataExtent().then((extent) => alive && set({ extent, error: null, done: true })).catch((error) => alive && set({ extent: null, error, done: true }));
    return () => { alive = false; };
  }, []);
  return state;
}

/** The data's latest time: now while data is live, else the newest stored span. */
export function dataNow(extent) {
  return extent && Date.now() - extent.hi > 5 * 60e3 ? extent.hi : Date.now();
}

/** The services active in the hour up to `at` (default: the data's latest time); {names, error}. */
export function useServiceNames(at) {
  const { extent, done } = useExtent();
  const p = new URLSearchParams({ window: '1h' });
  if (at) p.set('at', at);
  else if (extent && Date.now() - extent.hi > 5 * 60e3) p.set('at', isoSec(extent.hi + 1000));
  const { data, error } = useApi(at || done ? `/api/v1/services?${p}` : null);
  return { names: data ? data.services.map((s) => s.name) : [], error };
}

function TimeField({ label, value, placeholder, onCommit, testid, size = 19 }) {
  const [text, setText] = useState(value === null || value === undefined ? '' : fmtLocalInput(value));
  const [bad, setBad] = useState(false);
  useEffect(() => { setText(value === null || value === undefined ? '' : fmtLocalInput(value)); setBad(false); }, [value]);
  const commit = () => {
    if (!text.trim()) { setBad(false); onCommit(null); return; }
    const ms = parseTimeInput(text);
    if (ms === null) { setBad(true); return; }
    setBad(false);
    onCommit(ms);
  };
  return html`<label class=${`field ${bad ? 'bad' : ''}`} title="your time zone; also RFC 3339, unix ns, now, or -15m">${label}
    <input data-testid=${testid} value=${text} placeholder=${placeholder} size=${size} onInput=${(e) => setText(e.currentTarget.value)}
      onKeyDown=${(e) => { if (e.key === 'Enter') commit(); }} onBlur=${commit} />
  </label>`;
}

function Slider({ extent, atMs, windowMs, onCommit }) {
  // Milliseconds since the epoch, in steps of at least 10 s, over the stored spans' range
  // (at most its last 6 hours; up to now when the data is live).
  const now = Date.now();
  const hi = extent ? (now - extent.hi < 5 * 60e3 ? now : extent.hi) : now;
  const lo = extent ? Math.max(extent.lo, hi - 6 * 3600e3) : hi - 3600e3;
  const span = Math.max(60e3, hi - lo);
  const step = Math.max(10, Math.round(span / 1000 / 360 / 10) * 10) * 1000;
  const min = Math.floor(lo / step) * step;
  const max = Math.ceil(hi / step) * step;
  const cur = atMs === null ? max : Math.min(max, Math.max(min, Math.round(atMs)));
  const [pending, setPending] = useState(null);
  useEffect(() => setPending(null), [atMs]);
  const shown = pending !== null ? pending : cur;
  return html`<div class="slider-row">
    <span class="muted small nowrap"><${Time} ms=${min} /></span>
    <input type="range" data-testid="time-slider" min=${min} max=${max} step=${step} value=${shown}
      aria-label="time of the map" title=${fmtTime(shown, { date: true })}
      onInput=${(e) => setPending(Number(e.currentTarget.value))}
      onChange=${(e) => { const v = Number(e.currentTarget.value); setPending(v); onCommit(v); }} />
    <span class="muted small nowrap"><${Time} ms=${max} /></span>
    <span class="slider-value">${pending !== null && pending !== cur ? html`→ ${fmtTime(pending, { date: false })}` : null}</span>
    <span class="muted small" title="the slider spans the stored spans' time range (at most the last 6 hours of it)">window ${durationParam(windowMs)}</span>
  </div>`;
}

function graphUrl({ at, window, knownAt, service, depth }) {
  const p = new URLSearchParams();
  if (at) p.set('at', at);
  p.set('window', window);
  if (knownAt) p.set('known_at', knownAt);
  if (service) { p.set('service', service); p.set('depth', depth || '1'); }
  return `/api/v1/graph?${p}`;
}

function significant(rc) {
  return [rc.calls_test, rc.error_ratio_test, rc.latency_test].some((t) => t && t.significant);
}
function worse(rc) {
  return (rc.error_ratio_test && rc.error_ratio_test.significant && rc.error_ratio_test.z > 0)
    || (rc.latency_test && rc.latency_test.significant && rc.latency_test.z > 0);
}

function NodePanel({ node, at, windowStr, windowSecs, onClose, onFocus }) {
  const svc = node.kind === 'service' ? node.name : node.service;
  return html`<aside class="side-panel" data-testid="node-panel">
    <div class="side-head"><${KindTag} kind=${node.kind} /><strong>${node.name}</strong><button class="btn small ghost" type="button" onClick=${onClose}>×</button></div>
    ${node.calls !== undefined ? html`<table class="kv"><tbody>
      <tr><th>calls</th><td>${fmtNum(node.calls)} (${rateLabel(node.calls, windowSecs)})</td></tr>
      <tr><th>errors</th><td>${fmtNum(node.errors)} (${fmtPct(node.error_ratio)})</td></tr>
      <tr><th>p50 / p90 / p99</th><td>${fmtSecs(node.duration_p50_seconds)} / ${fmtSecs(node.duration_p90_seconds)} / ${fmtSecs(node.duration_p99_seconds)}</td></tr>
      ${node.self_time_mean_seconds != null ? html`<tr><th>mean self time</th><td>${fmtSecs(node.self_time_mean_seconds)}</td></tr>` : null}
    </tbody></table>` : null}
    <table class="kv"><tbody>
      <tr><th>first seen</th><td><${Time} t=${node.first_seen_unix_nano} date=${true} /></td></tr>
      <tr><th>last seen</th><td><${Time} t=${node.last_seen_unix_nano} date=${true} /></td></tr>
      ${node.service ? html`<tr><th>service</th><td>${node.service}</td></tr>` : null}
    </tbody></table>
    <div class="side-links">
      <a class="btn small" href=${entityHref(node.id, { at })}>Open entity</a>
      ${node.kind === 'service' ? html`<button class="btn small" type="button" onClick=${() => onFocus(node.name)}>Focus here</button>` : null}
      <a class="btn small" href=${entityHref(node.id, { at, window: windowStr, tab: 'blast' })}>Blast radius</a>
      ${svc ? html`<a class="btn small" href=${href('/traces', { service: svc, to: at, from: at ? isoSec(toMs(at) - (parseDuration(windowStr) || 300e3)) : undefined })}>Traces</a>` : null}
      ${svc ? html`<a class="btn small" href=${href('/changes', { service: svc })}>Changes</a>` : null}
    </div>
  </aside>`;
}

function DiffList({ diff }) {
  if (!diff) return null;
  const sig = diff.red_changes.filter(significant);
  const rest = diff.red_changes.length - sig.length;
  const ent = (e, type) => html`<li data-testid="diff-item" data-type=${type} data-id=${e.id} data-diff=${type.startsWith('added') ? 'added' : 'removed'} class=${type.startsWith('added') ? 'added' : 'removed'}>
    <span class="diff-sign">${type.startsWith('added') ? '+' : '−'}</span><${KindTag} kind=${e.kind} /> <a href=${entityHref(e.id)}>${e.name}</a></li>`;
  const rel = (r, type) => html`<li data-testid="diff-item" data-type=${type} data-source=${r.source} data-target=${r.target} data-kind=${r.kind} data-diff=${type.startsWith('added') ? 'added' : 'removed'}
      class=${type.startsWith('added') ? 'added' : 'removed'}>
    <span class="diff-sign">${type.startsWith('added') ? '+' : '−'}</span><span class="mono small">${r.source}</span> <span class="muted">${r.kind} →</span> <span class="mono small">${r.target}</span></li>`;
  const t = (test, name) => (test ? html`<span class=${`ztest ${test.significant ? "zsig" : ""}`} title=${`${name}: z = ${test.z.toFixed(2)}${test.significant ? ' (significant, |z| ≥ 3)' : ''}`}>${name} z ${test.z.toFixed(1)}</span>` : null);
  return html`<aside class="side-panel diff-panel" data-testid="diff-list">
    <div class="side-head"><strong>What changed</strong></div>
    <div class="muted small">[<${Time} t=${diff.before[0]} /> – <${Time} t=${diff.before[1]} />) against [<${Time} t=${diff.after[0]} /> – <${Time} t=${diff.after[1]} />)</div>
    ${diff.version_changes.length ? html`<h4>Versions</h4><ul class="diff-ul">${diff.version_changes.map((v) => html`<li data-testid="diff-item" data-type="version-change" data-id=${`service:${v.service}`} data-diff="changed" class="changed">
      <span class="diff-sign">Δ</span><a href=${entityHref(`service:${v.service}`)}>${v.service}</a> <span class="mono">${v.before.join(', ') || '—'} → ${v.after.join(', ') || '—'}</span></li>`)}</ul>` : null}
    ${sig.length ? html`<h4>Significant RED changes</h4><ul class="diff-ul">${sig.map((rc) => html`<li data-testid="diff-item" data-type="red-change" data-id=${rc.id} data-diff="changed" class=${worse(rc) ? 'worse' : 'changed'}>
      <span class="diff-sign">${worse(rc) ? '▲' : 'Δ'}</span><span class="mono small">${rc.id.replace('>', ' → ')}</span>
      <div class="small">calls ${fmtNum(rc.before.calls)} → ${fmtNum(rc.after.calls)} · errors ${fmtPct(rc.before.error_ratio)} → ${fmtPct(rc.after.error_ratio)} · p90 ${fmtSecs(rc.before.duration_p90_seconds)} → ${fmtSecs(rc.after.duration_p90_seconds)}</div>
      <div class="small">${t(rc.calls_test, 'calls')} ${t(rc.error_ratio_test, 'errors')} ${t(rc.latency_test, 'latency')}</div></li>`)}</ul>` : null}
    ${rest > 0 ? html`<div class="muted small">${rest} other RED movement${rest === 1 ? '' : 's'} not significant (|z| ${'<'} 3).</div>` : null}
    ${diff.added_entities.length ? html`<h4>Added entities</h4><ul class="diff-ul">${diff.added_entities.map((e) => ent(e, 'added-entity'))}</ul>` : null}
    ${diff.removed_entities.length ? html`<h4>Removed entities</h4><ul class="diff-ul">${diff.removed_entities.map((e) => ent(e, 'removed-entity'))}</ul>` : null}
    ${diff.added_relations.length ? html`<h4>Added relations</h4><ul class="diff-ul">${diff.added_relations.map((r) => rel(r, 'added-relation'))}</ul>` : null}
    ${diff.removed_relations.length ? html`<h4>Removed relations</h4><ul class="diff-ul">${diff.removed_relations.map((r) => rel(r, 'removed-relation'))}</ul>` : null}
    ${diff.changes.length ? html`<h4>Changes in between</h4><ul class="diff-ul">${diff.changes.map((c) => html`<li data-testid="diff-change">
      <span class=${`tag chg-${c.kind}`}>${c.kind.replace('_', ' ')}</span> <${Time} t=${c.time_unix_nano} /> ${c.summary}</li>`)}</ul>` : null}
    ${!diff.version_changes.length && !sig.length && !diff.added_entities.length && !diff.removed_entities.length && !diff.added_relations.length && !diff.removed_relations.length
      ? html`<div class="empty small">No difference between the two windows.</div>` : null}
  </aside>`;
}

export function MapPage({ query }) {
  useTitle('Service map');
  const atStr = query.get('at') || '';
  const windowStr = query.get('window') || '5m';
  const knownAtStr = query.get('known_at') || '';
  const service = query.get('service') || '';
  const depth = query.get('depth') || '1';
  const diffMode = query.get('mode') === 'diff';
  const kinds = (query.get('kinds') || DEFAULT_KINDS.join(',')).split(',').filter(Boolean);
  const windowMs = parseDuration(windowStr) || 300e3;
  const atMs = atStr ? toMs(/^\d+$/.test(atStr) ? atStr : atStr) : null;
  const [selected, setSelected] = useState(null);
  const { extent, error: extentError, done: extentEmpty } = useExtent();
  // "Now" is the data's latest time: the wall clock while data is live, else (replayed, old
  // data) the newest stored span, so the map opens on something.
  const stale = !!(extent && Date.now() - extent.hi > 5 * 60e3);
  const nowRef = useMemo(() => (stale ? Math.ceil(extent.hi / 1000) * 1000 : Date.now()), [atStr, diffMode, stale]);
  const effAt = atStr || (stale ? isoSec(nowRef) : '');
  const timeKnown = !!atStr || extentEmpty;

  // Diff mode windows: [from − window, from) against [to − window, to).
  const toMsV = diffMode ? (query.get('to') ? toMs(query.get('to')) : (atMs || nowRef)) : null;
  const fromMsV = diffMode ? (query.get('from') ? toMs(query.get('from')) : toMsV - Math.max(15 * 60e3, windowMs)) : null;

  const common = { window: windowStr, knownAt: knownAtStr, service, depth };
  const mainUrl = !timeKnown && !(diffMode && query.get('to')) ? null
    : diffMode ? graphUrl({ ...common, at: isoSec(toMsV) }) : graphUrl({ ...common, at: effAt });
  // The first window's graph is read whole (the focus service may not exist then) and cut to
  // the neighbourhood of the second's below.
  const diffTimes = timeKnown || !!query.get('to');
  const beforeUrl = diffMode && diffTimes ? graphUrl({ ...common, service: '', at: isoSec(fromMsV) }) : null;
  const diffP = new URLSearchParams({ window: windowStr });
  if (knownAtStr) diffP.set('known_at', knownAtStr);
  let diffUrl = null;
  if (diffMode) { diffP.set('from', isoSec(fromMsV)); diffP.set('to', isoSec(toMsV)); diffUrl = diffTimes ? `/api/v1/graph/diff?${diffP}` : null; }
  else {
    // Anomalies: RED figures that moved significantly against the same window 30 min earlier.
    const ref = atMs || nowRef;
    diffP.set('from', isoSec(ref - 30 * 60e3));
    diffP.set('to', isoSec(ref));
    diffUrl = timeKnown ? `/api/v1/graph/diff?${diffP}` : null;
  }
  const main = useApi(mainUrl);
  const before = useApi(beforeUrl);
  const diff = useApi(diffUrl);
  const servicesList = useServiceNames(effAt);

  const view = useMemo(() => {
    if (!main.data) return null;
    // In diff mode the entities that came or went are shown whatever their kind.
    // (When there are few of them: a window before the data began makes everything "added".)
    const came = diffMode && diff.data ? [...diff.data.added_entities, ...diff.data.removed_entities].filter((e) => !kinds.includes(e.kind) && e.kind !== 'operation') : [];
    const diffIds = new Set(came.length <= 24 ? came.map((e) => e.id) : []);
    const keep = (n) => kinds.includes(n.kind) || diffIds.has(n.id);
    let nodes = main.data.nodes.filter(keep).map((n) => ({ ...n }));
    let edges = main.data.edges.map((e) => ({ ...e }));
    const anomalous = new Set();
    if (diffMode && diff.data && before.data) {
      const d = diff.data;
      const byId = new Map(nodes.map((n) => [n.id, n]));
      let beforeNodes = before.data.nodes;
      if (service) {
        // Focused: what the first window had next to the second window's neighbourhood.
        const near = new Set(byId.keys());
        for (const e of before.data.edges) { if (byId.has(e.source)) near.add(e.target); if (byId.has(e.target)) near.add(e.source); }
        beforeNodes = beforeNodes.filter((n) => near.has(n.id));
      }
      for (const n of beforeNodes) if (keep(n) && !byId.has(n.id)) { const c = { ...n, diff: 'removed' }; nodes.push(c); byId.set(n.id, c); }
      const ekey = (e) => `${e.kind}|${e.source}|${e.target}`;
      const edgeKeys = new Set(edges.map(ekey));
      for (const e of before.data.edges) if (!edgeKeys.has(ekey(e))) { edges.push({ ...e, diff: 'removed' }); edgeKeys.add(ekey(e)); }
      for (const r of d.removed_relations) if (!edgeKeys.has(ekey(r))) { edges.push({ ...r, diff: 'removed' }); edgeKeys.add(ekey(r)); }
      const added = new Set(d.added_entities.map((e) => e.id));
      const removed = new Set(d.removed_entities.map((e) => e.id));
      const changed = new Set(d.version_changes.map((v) => `service:${v.service}`));
      const changedEdges = new Set();
      for (const rc of d.red_changes) if (significant(rc)) { if (rc.kind === 'service') changed.add(rc.id); else changedEdges.add(rc.id); }
      for (const n of nodes) {
        if (added.has(n.id)) n.diff = 'added';
        else if (removed.has(n.id)) n.diff = 'removed';
        else if (changed.has(n.id)) n.diff = 'changed';
      }
      const addedR = new Set(d.added_relations.map(ekey));
      const removedR = new Set(d.removed_relations.map(ekey));
      for (const e of edges) {
        if (addedR.has(ekey(e))) e.diff = 'added';
        else if (removedR.has(ekey(e))) e.diff = 'removed';
        else if (e.kind === 'calls' && changedEdges.has(`${e.source}>${e.target}`)) e.diff = 'changed';
      }
    } else if (!diffMode && diff.data) {
      for (const rc of diff.data.red_changes) if (worse(rc)) anomalous.add(rc.id);
    }
    const ids = new Set(nodes.map((n) => n.id));
    edges = edges.filter((e) => ids.has(e.source) && ids.has(e.target));
    return { nodes, edges, anomalous };
  }, [main.data, before.data, diff.data, kinds.join(','), diffMode]);

  const presentKinds = useMemo(() => {
    const s = new Set(main.data ? main.data.nodes.map((n) => n.kind) : []);
    return ALL_KINDS.filter((k) => s.has(k) || kinds.includes(k));
  }, [main.data, kinds.join(',')]);

  const loading = main.loading || (diffMode && (before.loading || diff.loading)) || (!main.data && !main.error);
  const services = [...servicesList.names];
  if (service && !services.includes(service)) services.unshift(service);
  const shownAt = diffMode ? toMsV : (atMs !== null ? atMs : nowRef);

  const toggleKind = (k) => {
    const s = new Set(kinds);
    if (s.has(k)) s.delete(k); else s.add(k);
    const list = ALL_KINDS.filter((x) => s.has(x));
    setQuery({ kinds: list.join(',') === DEFAULT_KINDS.join(',') ? null : list.join(',') || 'service' }, { replace: true });
  };
  const toggleDiff = () => {
    if (diffMode) setQuery({ mode: null, from: null, to: null });
    else {
      const to = atMs !== null ? atMs : (extent && Date.now() - extent.hi > 5 * 60e3 ? extent.hi : Date.now());
      setQuery({ mode: 'diff', to: isoSec(to), from: isoSec(to - Math.max(15 * 60e3, windowMs)) });
    }
  };
  const shift = (dir) => setQuery({ at: isoSec((atMs !== null ? atMs : nowRef) + dir * windowMs) });

  return html`<div class="page map-page">
    <div class="page-head">
      <h1>Service map</h1>
      <span class="map-at" data-testid="map-at" data-at=${new Date(shownAt).toISOString()} title=${new Date(shownAt).toISOString()}>
        ${diffMode ? 'comparing up to ' : 'as of '}<strong>${fmtTime(shownAt, { date: true })}</strong>${!diffMode && atMs === null ? html` <span class="tag live" title=${stale ? 'no data is live: the newest stored data' : 'live'}>${stale ? 'latest data' : 'now'}</span>` : null}
        ${knownAtStr ? html` <span class="tag warn" title="only what loupe had learned by then">as known at ${fmtTime(toMs(knownAtStr), { date: true })}</span>` : null}
      </span>
      <span class="spacer"></span>
      <button class=${`btn ${diffMode ? 'primary' : ''}`} type="button" data-testid="diff-toggle" aria-pressed=${diffMode ? 'true' : 'false'} onClick=${toggleDiff}>
        ${diffMode ? 'Diff mode: on' : 'Compare two windows'}</button>
    </div>
    <div class="toolbar">
      ${diffMode ? html`
        <${TimeField} label="before, up to" value=${fromMsV} testid="diff-from" onCommit=${(v) => setQuery({ from: v === null ? null : isoSec(v) })} />
        <${TimeField} label="after, up to" value=${toMsV} testid="diff-to" onCommit=${(v) => setQuery({ to: v === null ? null : isoSec(v) })} />`
      : html`
        <button class="btn small" type="button" title="one window earlier" onClick=${() => shift(-1)}>◀</button>
        <${TimeField} label="at" value=${atMs} placeholder="now" testid="map-at-input" onCommit=${(v) => setQuery({ at: v === null ? null : isoSec(v) })} />
        <button class="btn small" type="button" title="one window later" onClick=${() => shift(1)}>▶</button>
        <button class="btn small" type="button" data-testid="map-now" disabled=${atMs === null} onClick=${() => setQuery({ at: null })}>now</button>`}
      <label class="field">window
        <select value=${windowStr} data-testid="map-window" onChange=${(e) => setQuery({ window: e.currentTarget.value === '5m' ? null : e.currentTarget.value })}>
          ${(WINDOWS.includes(windowStr) ? WINDOWS : [windowStr, ...WINDOWS]).map((w) => html`<option value=${w}>${w}</option>`)}
        </select></label>
      <${TimeField} label="known at" value=${knownAtStr ? toMs(knownAtStr) : null} placeholder="now (all we know)" testid="map-known-at" size=${16}
        onCommit=${(v) => setQuery({ known_at: v === null ? null : isoSec(v) })} />
      <label class="field">focus
        <select value=${service} data-testid="map-focus" onChange=${(e) => setQuery({ service: e.currentTarget.value || null, depth: e.currentTarget.value ? depth : null })}>
          <option value="">whole graph</option>
          ${services.map((s) => html`<option value=${s}>${s}</option>`)}
        </select></label>
      ${service ? html`<label class="field">depth
        <input type="number" min="1" max="6" value=${depth} data-testid="map-depth" style="width:3.5em"
          onChange=${(e) => setQuery({ depth: e.currentTarget.value })} /></label>` : null}
    </div>
    <div class="toolbar kinds">
      <span class="muted small">show</span>
      ${presentKinds.map((k) => html`<label class="check"><input type="checkbox" data-testid=${`kind-${k}`} checked=${kinds.includes(k)} onChange=${() => toggleKind(k)} />${kindLabel(k)}</label>`)}
    </div>
    ${!diffMode && (extent || extentError || extentEmpty) ? html`<${Slider} extent=${extent} atMs=${atMs !== null ? atMs : (stale ? nowRef : null)} windowMs=${windowMs} onCommit=${(ms) => setQuery({ at: isoSec(ms) }, { replace: false })} />` : null}
    ${!diffMode && !(extent || extentError || extentEmpty) ? html`<div class="slider-row muted small">reading the data's time range…</div>` : null}
    <${ErrorBox} error=${main.error} what="The graph" />
    <${ErrorBox} error=${before.error} what="The graph of the first window" />
    <${ErrorBox} error=${diff.error} what=${diffMode ? 'The diff' : 'The anomaly check (against 30 min earlier)'} />
    <${ErrorBox} error=${extentError} what="The data's time range" />
    <${ErrorBox} error=${servicesList.error} what="The services (for the focus list)" />
    <div class=${`map-layout ${selected || diffMode ? 'with-panel' : ''}`}>
      <div class="map-main">
        ${view ? html`<${ServiceMap} nodes=${view.nodes} edges=${view.edges} windowSecs=${windowMs / 1000}
            anomalous=${view.anomalous} selected=${selected && selected.id} onSelect=${setSelected} loading=${loading}
            height=${diffMode ? 600 : 620} emptyText=${`No ${kinds.map(kindLabel).join(', ')} valid in this window.`} />`
          : (main.error ? null : html`<${Loading} what="Loading the graph" /><svg data-testid="map" data-ready="false" width="0" height="0"></svg>`)}
        <div class="map-foot"><${MapLegend} diff=${diffMode} />
          ${view ? html`<span class="muted small">${view.nodes.length} entities, ${view.edges.length} relations · drag to pan, ctrl+wheel to zoom · edge: calls/s · error % · p90</span>` : null}</div>
      </div>
      ${diffMode ? html`<${DiffList} diff=${diff.data} />` : null}
      ${!diffMode && selected ? html`<${NodePanel} node=${selected} at=${effAt || isoSec(nowRef)} windowStr=${windowStr} windowSecs=${windowMs / 1000}
        onClose=${() => setSelected(null)} onFocus=${(s) => setQuery({ service: s, depth })} />` : null}
    </div>
  </div>`;
}
