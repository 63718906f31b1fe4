// An entity: validity intervals, versions, RED history (uPlot, with change and event markers,
// drag to zoom), relations, the changes that concern it, and its blast radius at a chosen time.
import {
  html, useState, useMemo, useEffect, useApi, setQuery, href, entityHref, toMs, iso, isoSec, parseDuration, durationParam,
  Time, fmtPct, fmtSecs, fmtNum, fmtDur, splitId, useTitle, parseTimeInput,
} from '../lib.js';
import { ErrorBox, Loading, KindTag, Section, Empty, ProbBar } from '../components/common.js';
import { Chart } from '../components/chart.js';
import { useExtent } from './map.js';

const PRESETS = [['15m', 15 * 60e3], ['1h', 3600e3], ['6h', 6 * 3600e3], ['24h', 24 * 3600e3]];

function stepFor(from, to) {
  return `${Math.max(10, Math.ceil((to - from) / 1000 / 180 / 10) * 10)}s`;
}

function RangeBar({ from, to, onRange }) {
  return html`<div class="toolbar">
    <span class="muted small">history</span>
    <span><${Time} ms=${from} date=${true} /> – <${Time} ms=${to} date=${true} /></span>
    <span class="muted small">(${fmtDur(to - from)}; drag on a chart to zoom)</span>
    ${PRESETS.map(([label, ms]) => html`<button class="btn small" type="button" onClick=${() => onRange(to - ms, to)}>${label}</button>`)}
    <button class="btn small" type="button" title="earlier" onClick=${() => onRange(from - (to - from) / 2, to - (to - from) / 2)}>◀</button>
    <button class="btn small" type="button" title="later" onClick=${() => onRange(from + (to - from) / 2, to + (to - from) / 2)}>▶</button>
    <button class="btn small" type="button" title="zoom out" onClick=${() => onRange(from - (to - from) / 2, to + (to - from) / 2)}>zoom out</button>
  </div>`;
}

function History({ id, from, to, changes, onRange }) {
  const url = `/api/v1/entities/${encodeURIComponent(id)}/history?${new URLSearchParams({ from: iso(from), to: iso(to), step: stepFor(from, to) })}`;
  const { data, error, loading } = useApi(url);
  const charts = useMemo(() => {
    if (!data) return null;
    const stepS = data.step_nanos / 1e9;
    const pts = data.points;
    const xs = pts.map((p) => toMs(p.start_unix_nano) / 1000);
    const col = (f) => pts.map(f);
    const markers = changes.map((c) => ({
      x: toMs(c.time_unix_nano) / 1000,
      color: c.kind === 'kubernetes_event' ? '#ff8c5a' : '#4e9af1',
      label: `${c.kind.replace('_', ' ')}: ${c.summary}`,
    }));
    const any = (arr) => arr.some((v) => v !== null && v !== undefined && v !== 0);
    const rate = col((p) => p.calls / stepS);
    const errs = col((p) => (p.calls ? p.error_ratio : null));
    const p50 = col((p) => p.duration_p50_seconds);
    const p90 = col((p) => p.duration_p90_seconds);
    const p99 = col((p) => p.duration_p99_seconds);
    const logs = col((p) => p.log_records / stepS);
    const elogs = col((p) => p.error_log_records / stepS);
    const out = [];
    if (any(rate)) out.push({ key: 'rate', label: 'Requests per second', data: [xs, rate], series: [{ label: 'calls/s', color: '#4e9af1', fill: 'rgba(78,154,241,0.1)' }], yFmt: (v) => fmtNum(v) });
    if (any(rate)) out.push({ key: 'errors', label: 'Error ratio', data: [xs, errs], series: [{ label: 'errors', color: '#f06a8a', fill: 'rgba(240,106,138,0.1)' }], yFmt: (v) => fmtPct(v) });
    if (any(p90) || any(p50)) {
      out.push({
        key: 'latency',
        label: 'Duration',
        data: [xs, p50, p90, p99],
        series: [{ label: 'p50', color: '#5cc98f' }, { label: 'p90', color: '#f2a93b' }, { label: 'p99', color: '#f06a8a', dash: [4, 3] }],
        yFmt: (v) => fmtSecs(v),
      });
    }
    if (any(logs) || any(elogs)) out.push({ key: 'logs', label: 'Log records per second', data: [xs, logs, elogs], series: [{ label: 'logs/s', color: '#8b97a8' }, { label: 'error logs/s', color: '#f06a8a' }], yFmt: (v) => fmtNum(v) });
    return { out, markers };
  }, [data, changes]);
  const select = (a, b) => onRange(a * 1000, b * 1000);
  return html`<div>
    <${ErrorBox} error=${error} what="History" />
    ${!charts && !error ? html`<${Loading} what="Loading history" />` : null}
    ${charts && charts.out.length === 0 ? html`<${Empty}>No RED figures or logs for this entity in the range.</${Empty}>` : null}
    ${charts ? html`<div class=${`charts ${loading ? 'is-loading' : ''}`}>${charts.out.map((c) => html`<${Chart} key=${c.key} label=${c.label} data=${c.data}
        series=${c.series} markers=${charts.markers} yFmt=${c.yFmt} yMin=${0} height=${150} sync="entity" onSelect=${select} testid=${`chart-${c.key}`} />`)}</div>` : null}
  </div>`;
}

function BlastRadius({ id, at, windowStr, onChange }) {
  const url = `/api/v1/entities/${encodeURIComponent(id)}/blast-radius?${new URLSearchParams({ at: isoSec(at), window: windowStr })}`;
  const { data, error } = useApi(url);
  const [text, setText] = useState('');
  return html`<div>
    <div class="toolbar">
      <span class="muted small">as of</span> <${Time} ms=${at} date=${true} />
      <span class="muted small">over</span>
      <select value=${windowStr} onChange=${(e) => onChange(at, e.currentTarget.value)}>
        ${['1m', '5m', '15m', '1h'].concat(['1m', '5m', '15m', '1h'].includes(windowStr) ? [] : [windowStr]).map((w) => html`<option value=${w}>${w}</option>`)}
      </select>
      <input placeholder="other time (RFC 3339 or local)" value=${text} size="22" onInput=${(e) => setText(e.currentTarget.value)}
        onKeyDown=${(e) => { if (e.key === 'Enter') { const t = parseTimeInput(text); if (t !== null) onChange(t, windowStr); } }} />
    </div>
    <${ErrorBox} error=${error} what="Blast radius" />
    ${data ? (data.dependents.length ? html`<table class="table compact" data-testid="blast-radius">
      <thead><tr><th>dependent</th><th class="num">distance</th><th>share of its traffic through ${splitId(id)[1]}</th></tr></thead>
      <tbody>${data.dependents.map((d) => html`<tr><td><${KindTag} kind=${splitId(d.id)[0]} /> <a href=${entityHref(d.id)}>${splitId(d.id)[1]}</a></td>
        <td class="num">${d.distance}</td><td><${ProbBar} p=${d.traffic_share} /></td></tr>`)}</tbody>
    </table>` : html`<div class="muted">Nothing depends on it in this window.</div>`) : (!error ? html`<${Loading} />` : null)}
  </div>`;
}

function Relations({ relations }) {
  const [all, setAll] = useState(false);
  const sorted = [...relations].sort((a, b) => (a.kind + a.direction + a.other).localeCompare(b.kind + b.direction + b.other));
  const shown = all ? sorted : sorted.slice(0, 40);
  if (!relations.length) return html`<div class="muted">none</div>`;
  return html`<table class="table compact" data-testid="relations">
    <thead><tr><th>relation</th><th>other end</th><th>valid</th></tr></thead>
    <tbody>${shown.map((r) => {
      const last = r.intervals[r.intervals.length - 1];
      return html`<tr><td class="nowrap">${r.direction === 'out' ? html`<span class="muted">this</span> ${r.kind} →` : html`← ${r.kind} <span class="muted">by</span>`}</td>
        <td><${KindTag} kind=${splitId(r.other)[0]} /> <a href=${entityHref(r.other)}>${splitId(r.other)[1]}</a></td>
        <td class="small">${last ? html`<${Time} t=${last.valid_from} /> – <${Time} t=${last.valid_to} />` : '—'}${r.intervals.length > 1 ? html` <span class="muted">(${r.intervals.length} intervals)</span>` : null}</td></tr>`;
    })}</tbody>
    ${sorted.length > shown.length ? html`<tfoot><tr><td colspan="3"><button class="btn small" type="button" onClick=${() => setAll(true)}>show all ${sorted.length}</button></td></tr></tfoot>` : null}
  </table>`;
}

export function ChangesTable({ changes, showService = true }) {
  if (!changes.length) return html`<div class="muted">none</div>`;
  return html`<table class="table compact">
    <thead><tr><th>when</th><th>kind</th>${showService ? html`<th>service</th>` : null}<th>what</th><th>version</th><th>by</th><th>source</th></tr></thead>
    <tbody>${changes.map((c) => html`<tr>
      <td class="nowrap"><${Time} t=${c.time_unix_nano} date=${true} /></td>
      <td><span class=${`tag chg-${c.kind}`}>${c.kind.replace('_', ' ')}</span></td>
      ${showService ? html`<td>${c.service ? html`<a href=${entityHref(`service:${c.service}`)}>${c.service}</a>` : '—'}</td>` : null}
      <td>${c.summary}</td>
      <td class="mono small">${c.version_from || c.version_to ? `${c.version_from || '?'} → ${c.version_to || '?'}` : ''}</td>
      <td>${c.author || ''}${c.commit ? html` <code class="small">${c.commit.slice(0, 10)}</code>` : null}</td>
      <td class="muted">${c.source}</td>
    </tr>`)}</tbody>
  </table>`;
}

export function EntityPage({ params, query }) {
  const id = params.id;
  const [kind, name] = splitId(id);
  useTitle(`${name}`);
  const knownAt = query.get('known_at') || '';
  const detail = useApi(`/api/v1/entities/${encodeURIComponent(id)}${knownAt ? `?known_at=${encodeURIComponent(knownAt)}` : ''}`);
  const { extent, done: extentDone } = useExtent();
  const rangeKnown = (query.get('to') && query.get('from')) || extentDone;
  const hasRed = !['change', 'event', 'namespace'].includes(kind);
  const d = detail.data;

  // The range: from/to in the URL, else the last hour of the entity's validity.
  const lastValid = d && d.intervals.length ? toMs(d.intervals[d.intervals.length - 1].valid_to) : null;
  const firstValid = d && d.intervals.length ? toMs(d.intervals[0].valid_from) : null;
  const dataEnd = extent && Date.now() - extent.hi > 5 * 60e3 ? extent.hi : Date.now();
  const defTo = Math.min(dataEnd, lastValid || dataEnd);
  const to = query.get('to') ? toMs(query.get('to')) : Math.ceil(defTo / 60e3) * 60e3;
  const from = query.get('from') ? toMs(query.get('from')) : Math.floor(Math.max(to - 3600e3, (firstValid || to - 3600e3) - 5 * 60e3) / 60e3) * 60e3;
  const at = query.get('at') ? toMs(query.get('at')) : Math.min(to, lastValid ? lastValid - 1000 : to);
  const windowStr = query.get('window') || '5m';
  const onRange = (a, b) => setQuery({ from: isoSec(Math.floor(a)), to: isoSec(Math.ceil(b)) });
  const changes = d ? d.changes : [];

  return html`<div class="page entity">
    <div class="crumbs"><a href="/map">Map</a> / ${kind}</div>
    <div class="page-head">
      <${KindTag} kind=${kind} /><h1 class="mono-ish">${name}</h1>
      ${d && d.service ? html`<span class="muted">of service <a href=${entityHref(`service:${d.service}`)}>${d.service}</a></span>` : null}
      <span class="spacer"></span>
      ${kind === 'service' ? html`<a class="btn small" href=${href('/map', { service: name, depth: 2, at: query.get('at') || undefined })}>Focus on the map</a>
        <a class="btn small" href=${href('/traces', { service: name, from: isoSec(to - 15 * 60e3), to: isoSec(to) })}>Traces</a>
        <a class="btn small" href=${href('/changes', { service: name, from: isoSec(from), to: isoSec(to) })}>Changes</a>` : null}
    </div>
    <${ErrorBox} error=${detail.error} what=${`Entity ${id}`} />
    ${!d && !detail.error ? html`<${Loading} what="Loading the entity" />` : null}
    ${d ? html`
      ${hasRed ? html`<${Section} title="RED history" testid="history">
        <${RangeBar} from=${from} to=${to} onRange=${onRange} />
        ${rangeKnown ? html`<${History} id=${id} from=${from} to=${to} changes=${changes} onRange=${onRange} />` : html`<${Loading} what="Reading the data's time range" />`}
        ${changes.length ? html`<div class="muted small">Markers: <span class="chip-blue">■</span> changes, <span class="chip-orange">■</span> Kubernetes events (hover for text).</div>` : null}
      </${Section}>` : null}
      <div class="two-col even">
        <${Section} title="Validity" testid="intervals">
          <table class="table compact">
            <thead><tr><th>valid from</th><th>valid to</th><th>recorded</th><th>superseded</th></tr></thead>
            <tbody>${d.intervals.map((i) => html`<tr><td><${Time} t=${i.valid_from} date=${true} /></td><td><${Time} t=${i.valid_to} date=${true} /></td>
              <td><${Time} t=${i.recorded_at} /></td><td>${i.superseded_at ? html`<${Time} t=${i.superseded_at} />` : html`<span class="muted">—</span>`}</td></tr>`)}</tbody>
          </table>
          ${d.versions && d.versions.length ? html`<h4>Versions</h4><table class="table compact" data-testid="versions">
            <thead><tr><th>version</th><th>first seen</th><th>last seen</th></tr></thead>
            <tbody>${d.versions.map((v) => html`<tr><td class="mono">${v.version}</td><td><${Time} t=${v.first_seen_unix_nano} date=${true} /></td><td><${Time} t=${v.last_seen_unix_nano} date=${true} /></td></tr>`)}</tbody>
          </table>` : null}
        </${Section}>
        ${hasRed ? html`<${Section} title=${`Blast radius`} testid="blast">
          ${rangeKnown || query.get('at') ? html`<${BlastRadius} id=${id} at=${at} windowStr=${windowStr} onChange=${(t, w) => setQuery({ at: isoSec(t), window: w === '5m' ? null : w }, { replace: true })} />` : html`<${Loading} />`}
        </${Section}>` : html`<${Section} title="What it is" testid="about"><div>${d.name}</div></${Section}>`}
      </div>
      <${Section} title=${`Changes and events (${changes.length})`} testid="entity-changes"><${ChangesTable} changes=${changes} showService=${kind !== 'service'} /></${Section}>
      <${Section} title=${`Relations (${d.relations.length})`} testid="entity-relations"><${Relations} relations=${d.relations} /></${Section}>
    ` : null}
  </div>`;
}
