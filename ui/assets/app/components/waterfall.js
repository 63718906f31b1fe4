// A Jaeger-like trace waterfall: one row per visible span (indent, service colour, name, bar on
// the trace's time axis, duration), collapse/expand per span and all, error spans marked, the
// span's attributes, events and links on click.
import { html, useState, useMemo, Fragment, serviceColor, fmtDur, rfc3339Ns, Time, toMs, traceHref, entityHref } from '../lib.js';
import { anyValue } from './common.js';

/** Flattens the span tree: [{span, depth, start (ns from trace start), dur (ns), hasChildren, parentIdx}] */
export function flatten(roots) {
  const all = [];
  let t0 = null;
  let t1 = null;
  const walk = (s, depth, parent) => {
    const start = s.start_time_unix_nano !== undefined ? rfc3339Ns(s.start_time_unix_nano) : null;
    const dur = BigInt(Math.round(s.duration_nano || 0));
    if (start !== null) {
      if (t0 === null || start < t0) t0 = start;
      if (t1 === null || start + dur > t1) t1 = start + dur;
    }
    const row = { span: s, depth, startNs: start, durNs: dur, parent, children: [] };
    all.push(row);
    if (parent) parent.children.push(row);
    for (const c of s.children || []) walk(c, depth + 1, row);
  };
  for (const r of roots || []) walk(r, 0, null);
  const base = t0 === null ? 0n : t0;
  for (const r of all) r.offsetMs = r.startNs === null ? 0 : Number(r.startNs - base) / 1e6;
  for (const r of all) r.durMs = Number(r.durNs) / 1e6;
  return { rows: all, startNs: t0, totalMs: t0 === null ? 0 : Number(t1 - t0) / 1e6 };
}

const isError = (s) => s.status_code === 'error';

function pills(s) {
  const a = s.attributes || {};
  const out = [];
  const pick = (k, label) => { if (a[k] !== undefined) out.push(`${label || ''}${anyValue(a[k])}`); };
  pick('http.request.method'); pick('http.method');
  pick('http.response.status_code'); pick('http.status_code');
  pick('rpc.system'); pick('db.system.name'); pick('db.system');
  pick('messaging.system');
  return out.slice(0, 3);
}

function ticks(total) {
  return [0, 0.25, 0.5, 0.75, 1].map((f) => ({ f, label: fmtDur(total * f) }));
}

function AttrTable({ attrs }) {
  const keys = Object.keys(attrs || {}).sort();
  if (!keys.length) return html`<div class="muted small">none</div>`;
  return html`<table class="kv"><tbody>${keys.map((k) => html`<tr><th>${k}</th><td>${anyValue(attrs[k])}</td></tr>`)}</tbody></table>`;
}

function SpanDetail({ row, traceStartNs, traceId }) {
  const s = row.span;
  const events = s.events || [];
  const links = s.links || [];
  return html`<div class="span-detail" data-testid="span-detail" data-span-id=${s.span_id}>
    <div class="span-detail-head">
      <strong>${s.name}</strong>
      <span class="muted">${s.service_name}</span>
      ${isError(s) ? html`<span class="badge status-error">error${s.status_message ? `: ${s.status_message}` : ''}</span>` : html`<span class="badge">${s.status_code || 'unset'}</span>`}
    </div>
    <div class="grid-kv">
      <div><span class="muted">span</span> <code>${s.span_id}</code></div>
      <div><span class="muted">parent</span> <code>${s.parent_span_id || '— (root)'}</code></div>
      <div><span class="muted">kind</span> ${s.kind || '—'}</div>
      <div><span class="muted">start</span> <${Time} t=${s.start_time_unix_nano} millis=${true} /> <span class="muted">(+${fmtDur(row.offsetMs)})</span></div>
      <div><span class="muted">duration</span> ${fmtDur(row.durMs)}</div>
      <div><span class="muted">service</span> <a href=${entityHref(`service:${s.service_name}`)}>${s.service_name}</a></div>
    </div>
    <div class="detail-cols">
      <div><h4>Attributes</h4><${AttrTable} attrs=${s.attributes} /></div>
      <div>
        <h4>Events (${events.length})</h4>
        ${events.length ? html`<table class="kv"><tbody>${events.map((ev) => {
          const at = ev.time_unix_nano !== undefined && traceStartNs !== null ? Number(rfc3339Ns(ev.time_unix_nano) - traceStartNs) / 1e6 : null;
          return html`<tr><th>${at !== null ? `+${fmtDur(at)}` : ''}</th><td><strong>${ev.name}</strong>
            ${Object.keys(ev.attributes || {}).length ? html`<${AttrTable} attrs=${ev.attributes} />` : null}</td></tr>`;
        })}</tbody></table>` : html`<div class="muted small">none</div>`}
        <h4>Links (${links.length})</h4>
        ${links.length ? html`<ul class="plain">${links.map((l) => html`<li>${l.trace_id && l.trace_id !== traceId ? html`<a href=${traceHref(l.trace_id)}>${l.trace_id}</a>` : html`<code>${l.trace_id}</code>`} / <code>${l.span_id}</code></li>`)}</ul>` : html`<div class="muted small">none</div>`}
        <h4>Resource</h4><${AttrTable} attrs=${s.resource_attributes} />
      </div>
    </div>
  </div>`;
}

/** props: trace (the API's TraceResponse), filter (text), selected, onSelect. */
export function Waterfall({ trace, filter = '', selected, onSelect }) {
  const flat = useMemo(() => flatten(trace.roots), [trace]);
  const [collapsed, setCollapsed] = useState(() => {
    // Very large traces open collapsed below the third level.
    const c = new Set();
    if (flat.rows.length > 1500) for (const r of flat.rows) if (r.depth >= 2 && r.children.length) c.add(r.span.span_id);
    return c;
  });
  const total = flat.totalMs || 1;
  const f = filter.trim().toLowerCase();
  const matches = (r) => !f || `${r.span.service_name} ${r.span.name} ${r.span.span_id}`.toLowerCase().includes(f)
    || Object.entries(r.span.attributes || {}).some(([k, v]) => `${k}=${anyValue(v)}`.toLowerCase().includes(f));

  const visible = [];
  const walk = (r) => {
    visible.push(r);
    if (!collapsed.has(r.span.span_id)) for (const c of r.children) walk(c);
  };
  for (const r of flat.rows) if (!r.parent) walk(r);

  const toggle = (id) => {
    const c = new Set(collapsed);
    if (c.has(id)) c.delete(id); else c.add(id);
    setCollapsed(c);
  };
  const collapseAll = () => setCollapsed(new Set(flat.rows.filter((r) => r.children.length).map((r) => r.span.span_id)));
  const expandAll = () => setCollapsed(new Set());
  const maxDepthShown = () => Math.max(0, ...visible.map((r) => r.depth));
  const expandOne = () => {
    // Opens the next level: every collapsed span at the shallowest collapsed depth.
    const shut = flat.rows.filter((r) => r.children.length && collapsed.has(r.span.span_id) && visible.includes(r));
    if (!shut.length) return;
    const d = Math.min(...shut.map((r) => r.depth));
    const c = new Set(collapsed);
    for (const r of shut) if (r.depth === d) c.delete(r.span.span_id);
    setCollapsed(c);
  };
  const collapseOne = () => {
    const d = maxDepthShown() - 1;
    if (d < 0) return;
    const c = new Set(collapsed);
    for (const r of flat.rows) if (r.depth >= d && r.children.length) c.add(r.span.span_id);
    setCollapsed(c);
  };

  return html`<div class="waterfall">
    <div class="wf-toolbar">
      <button class="btn small" type="button" data-testid="expand-all" onClick=${expandAll}>Expand all</button>
      <button class="btn small" type="button" data-testid="collapse-all" onClick=${collapseAll}>Collapse all</button>
      <button class="btn small" type="button" data-testid="expand-one" onClick=${expandOne} title="open one more level">Expand +1</button>
      <button class="btn small" type="button" data-testid="collapse-one" onClick=${collapseOne} title="close the deepest open level">Collapse +1</button>
      <span class="muted small">${visible.length} of ${flat.rows.length} spans shown</span>
    </div>
    <div class="wf-head">
      <div class="wf-name-col">Service · operation</div>
      <div class="wf-bar-col">${ticks(total).map((t) => html`<span class="wf-tick" style=${`left:${t.f * 100}%`}>${t.label}</span>`)}</div>
    </div>
    <div class="wf-rows">
      ${visible.map((r) => {
        const s = r.span;
        const err = isError(s);
        const left = (r.offsetMs / total) * 100;
        const width = Math.max(0.15, (r.durMs / total) * 100);
        const color = serviceColor(s.service_name);
        const open = !collapsed.has(s.span_id);
        const dim = f && !matches(r);
        const sel = selected === s.span_id;
        return html`<${Fragment} key=${s.span_id}>
          <div class=${`wf-row ${err ? 'is-error' : ''} ${sel ? 'selected' : ''} ${dim ? 'dim' : ''} ${f && !dim ? 'hit' : ''}`} data-testid="span-row"
              data-span-id=${s.span_id} data-error=${err ? 'true' : undefined} data-depth=${r.depth}
              onClick=${() => onSelect(sel ? null : s.span_id)}>
            <div class="wf-name-col" style=${`padding-left:${6 + r.depth * 14}px`}>
              ${r.children.length
                ? html`<button class="wf-toggle" type="button" data-testid="span-toggle" aria-expanded=${open ? 'true' : 'false'}
                    title=${open ? 'collapse' : `expand (${r.children.length} children)`}
                    onClick=${(e) => { e.stopPropagation(); toggle(s.span_id); }}>${open ? '▾' : '▸'}</button>`
                : html`<span class="wf-toggle-pad"></span>`}
              <span class="wf-svc" style=${`background:${color}`}></span>
              <span class="wf-service">${s.service_name}</span>
              <span class="wf-op" title=${s.name}>${s.name}</span>
              ${err ? html`<span class="err-mark" title=${s.status_message || 'error'}>!</span>` : null}
              ${pills(s).map((p) => html`<span class="pill">${p}</span>`)}
              ${!open ? html`<span class="muted small">+${r.children.length}</span>` : null}
            </div>
            <div class="wf-bar-col">
              <div class="wf-grid"></div>
              <div class="wf-bar" style=${`left:${left}%;width:${width}%;background:${err ? 'var(--red)' : color}`}></div>
              <span class=${`wf-dur ${left + width > 86 && width > 9 ? 'inside' : ''}`} style=${left + width <= 86 ? `left:${left + width + 0.4}%`
                : width > 9 ? `right:${Math.max(0, 100 - left - width) + 0.4}%` : `right:${100 - left + 0.4}%`}>${fmtDur(r.durMs)}</span>
            </div>
          </div>
          ${sel ? html`<${SpanDetail} row=${r} traceStartNs=${flat.startNs} traceId=${trace.trace_id} />` : null}
        </${Fragment}>`;
      })}
    </div>
  </div>`;
}

export function traceSummary(trace) {
  const flat = flatten(trace.roots);
  const root = flat.rows.find((r) => !r.parent);
  return {
    root: root ? root.span : null,
    startMs: flat.startNs === null ? null : toMs(flat.startNs),
    totalMs: flat.totalMs,
    errors: flat.rows.filter((r) => isError(r.span)).length,
    depth: flat.rows.reduce((m, r) => Math.max(m, r.depth + 1), 0),
    flat,
  };
}
