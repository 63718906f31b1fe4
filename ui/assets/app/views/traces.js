// Traces: a search form over GET /api/v1/traces, and one trace as a waterfall.
import {
  html, useState, useEffect, useApi, setQuery, href, traceHref, entityHref, toMs, isoSec, parseTimeInput, parseDuration,
  fmtLocalInput, Time, fmtDur, serviceColor, useTitle, navigate,
} from '../lib.js';
import { ErrorBox, Loading, Empty } from '../components/common.js';
import { Waterfall, traceSummary } from '../components/waterfall.js';
import { useServiceNames, useExtent } from './map.js';

const FIELDS = ['service', 'operation', 'status', 'min_duration', 'sort', 'from', 'to', 'limit'];

export function TracesPage({ query }) {
  useTitle('Traces');
  const q = Object.fromEntries(FIELDS.map((k) => [k, query.get(k) || '']));
  const [form, setForm] = useState({ ...q, from: q.from ? fmtLocalInput(toMs(q.from)) : '', to: q.to ? fmtLocalInput(toMs(q.to)) : '' });
  useEffect(() => setForm({ ...q, from: q.from ? fmtLocalInput(toMs(q.from)) : '', to: q.to ? fmtLocalInput(toMs(q.to)) : '' }), [query.toString()]);
  const [formError, setFormError] = useState(null);
  const servicesList = useServiceNames(q.to);
  const services = [...servicesList.names];
  if (q.service && !services.includes(q.service)) services.unshift(q.service);

  // The search runs once a service is chosen (the API requires one).
  // Without `to`: up to the data's latest time (replayed data can be older than now).
  const { extent, done: extentDone } = useExtent();
  let url = null;
  if (q.service && (q.to || extentDone)) {
    const p = new URLSearchParams();
    for (const k of FIELDS) if (q[k]) p.set(k, q[k]);
    if (!q.to && extent && Date.now() - extent.hi > 5 * 60e3) p.set('to', isoSec(extent.hi + 1000));
    url = `/api/v1/traces?${p}`;
  }
  const { data, error, loading } = useApi(url);

  const submit = (e) => {
    e.preventDefault();
    const out = {};
    for (const k of FIELDS) out[k] = (form[k] || '').trim() || null;
    for (const k of ['from', 'to']) {
      if (out[k]) {
        const ms = parseTimeInput(out[k]);
        if (ms === null) { setFormError(new Error(`${k}: cannot read "${out[k]}" as a time`)); return; }
        out[k] = isoSec(ms);
      }
    }
    if (out.min_duration && parseDuration(out.min_duration) === null) { setFormError(new Error(`min duration: "${out.min_duration}" is not a duration such as 250ms or 2s`)); return; }
    if (!out.service) { setFormError(new Error('service: choose the service the traces go through')); return; }
    setFormError(null);
    setQuery(out);
  };
  const set = (k) => (e) => setForm({ ...form, [k]: e.currentTarget.value });

  return html`<div class="page traces">
    <div class="page-head"><h1>Traces</h1><span class="muted small">find traces through a service; open one by id below</span></div>
    <form class="card search-form" onSubmit=${submit} data-testid="trace-search">
      <label class="field">service
        <input value=${form.service} onInput=${set('service')} list="trace-services" placeholder="service.name" size="16" data-testid="traces-service" />
        <datalist id="trace-services">${services.map((s) => html`<option value=${s}></option>`)}</datalist></label>
      <label class="field">operation <input value=${form.operation} onInput=${set('operation')} placeholder="any" size="14" data-testid="traces-operation" /></label>
      <label class="field">status
        <select value=${form.status} onChange=${set('status')} data-testid="traces-status">
          <option value="">any</option><option value="error">error</option><option value="ok">ok</option><option value="unset">unset</option>
        </select></label>
      <label class="field">min duration <input value=${form.min_duration} onInput=${set('min_duration')} placeholder="e.g. 250ms" size="8" data-testid="traces-min-duration" /></label>
      <label class="field">order
        <select value=${form.sort} onChange=${set('sort')} data-testid="traces-sort">
          <option value="">newest</option><option value="slowest">slowest</option>
        </select></label>
      <label class="field">from <input value=${form.from} onInput=${set('from')} placeholder="1 h before to" size="17" data-testid="traces-from" /></label>
      <label class="field">to <input value=${form.to} onInput=${set('to')} placeholder="now" size="17" data-testid="traces-to" /></label>
      <label class="field">limit <input value=${form.limit} onInput=${set('limit')} placeholder="20" size="4" data-testid="traces-limit" /></label>
      <button class="btn primary" type="submit" data-testid="traces-run">Find traces</button>
    </form>
    <${TraceIdBox} />
    <${ErrorBox} error=${formError} what="Search" />
    <${ErrorBox} error=${servicesList.error} what="The services" />
    <${ErrorBox} error=${error} what="Trace search" />
    ${!q.service ? html`<${Empty}>Choose a service and search; times are in your zone (or RFC 3339, or -30m).</${Empty}>` : null}
    ${url && !data && !error ? html`<${Loading} what="Searching" />` : null}
    ${data ? (data.traces.length ? html`<table class=${`table ${loading ? 'is-loading' : ''}`} data-testid="trace-results">
      <thead><tr><th>trace</th><th>root</th><th>start</th><th class="num">duration</th><th class="num">spans</th><th class="num">errors</th></tr></thead>
      <tbody>${data.traces.map((t) => html`<tr data-testid="trace-result" data-trace-id=${t.trace_id} class=${t.error_count ? 'row-error' : ''}>
        <td><a class="mono" href=${traceHref(t.trace_id)}>${t.trace_id}</a></td>
        <td><span class="svc-dot" style=${`background:${serviceColor(t.root_service)}`}></span>${t.root_service} <span class="muted">${t.root_name}</span></td>
        <td><${Time} t=${t.start_time_unix_nano} millis=${true} /></td>
        <td class="num">${fmtDur(t.duration_nano / 1e6)}</td>
        <td class="num">${t.span_count}</td>
        <td class="num">${t.error_count ? html`<span class="err-text">${t.error_count}</span>` : '0'}</td>
      </tr>`)}</tbody></table>` : html`<${Empty}>No trace matches.</${Empty}>`) : null}
  </div>`;
}

function TraceIdBox() {
  const [id, setId] = useState('');
  return html`<form class="toolbar" onSubmit=${(e) => { e.preventDefault(); const v = id.trim().toLowerCase(); if (v) { navigate(traceHref(v)); } }}>
    <label class="field">trace id <input class="mono" value=${id} size="34" placeholder="32 hex digits" onInput=${(e) => setId(e.currentTarget.value)} data-testid="trace-id-input" /></label>
    <button class="btn small" type="submit">Open</button>
  </form>`;
}

export function TracePage({ params }) {
  const id = params.traceId;
  useTitle(`trace ${id.slice(0, 8)}`);
  const { data, error } = useApi(`/api/v1/traces/${encodeURIComponent(id)}`);
  const [filter, setFilter] = useState('');
  const [selected, setSelected] = useState(null);
  const sum = data ? traceSummary(data) : null;
  return html`<div class="page trace">
    <div class="crumbs"><a href="/traces">Traces</a> / <span class="mono">${id}</span></div>
    <${ErrorBox} error=${error} what=${`Trace ${id}`} />
    ${!data && !error ? html`<${Loading} what="Loading the trace" />` : null}
    ${data && sum ? html`
      <section class="card trace-head">
        <div class="trace-title">
          <h1>${sum.root ? html`<span class="svc-dot" style=${`background:${serviceColor(sum.root.service_name)}`}></span>${sum.root.service_name}: ${sum.root.name}` : 'trace'}</h1>
          <span class="mono muted">${data.trace_id}</span>
        </div>
        <div class="facts">
          <div><span class="label">start</span><${Time} ms=${sum.startMs} date=${true} millis=${true} /></div>
          <div><span class="label">duration</span>${fmtDur(sum.totalMs)}</div>
          <div><span class="label">spans</span><span data-testid="span-count">${data.span_count}</span></div>
          <div><span class="label">errors</span>${sum.errors ? html`<span class="err-text" data-testid="error-count">${sum.errors}</span>` : html`<span data-testid="error-count">0</span>`}</div>
          <div><span class="label">depth</span>${sum.depth}</div>
          <div><span class="label">services</span>${data.services.map((s) => html`<a class="svc-chip" href=${entityHref(`service:${s}`)}><span class="svc-dot" style=${`background:${serviceColor(s)}`}></span>${s}</a>`)}</div>
        </div>
        ${data.orphans || data.deep ? html`<div class="banner warn small">${data.orphans ? `${data.orphans} span${data.orphans === 1 ? '' : 's'} whose parent is not stored (yet) shown as extra roots. ` : ''}${data.deep ? `${data.deep} span${data.deep === 1 ? '' : 's'} nested deeper than 128 levels shown as extra roots.` : ''}</div>` : null}
      </section>
      <div class="toolbar">
        <label class="field">find <input value=${filter} placeholder="service, operation, attribute…" size="28" onInput=${(e) => setFilter(e.currentTarget.value)} data-testid="span-filter" /></label>
        <span class="muted small">click a span for its attributes and events</span>
      </div>
      <${Waterfall} key=${data.trace_id} trace=${data} filter=${filter} selected=${selected} onSelect=${setSelected} />
    ` : null}
  </div>`;
}
