// Small shared components.
import { html, useState, fmtPct } from '../lib.js';

/** An API error, shown plainly (never swallowed). */
export function ErrorBox({ error, what }) {
  if (!error) return null;
  const code = error.code && error.code !== 'network' ? error.code : null;
  return html`<div class="error" data-testid="error" role="alert">
    <strong>${what ? `${what}: ` : ''}</strong>${error.message || String(error)}${code ? html` <span class="muted">(${error.status ? `${error.status} ` : ''}${code})</span>` : null}
  </div>`;
}

export function Loading({ what = 'Loading' }) {
  return html`<div class="loading" data-testid="loading"><span class="spinner"></span>${what}…</div>`;
}

export function Empty({ children }) {
  return html`<div class="empty">${children}</div>`;
}

/** A probability as a bar and a percentage. */
export function ProbBar({ p, confident }) {
  if (p === null || p === undefined) return html`<span class="muted">—</span>`;
  const pct = Math.max(0, Math.min(1, p));
  const cls = pct >= 0.5 ? 'hi' : pct >= 0.2 ? 'mid' : 'lo';
  return html`<span class="prob" title=${`probability ${fmtPct(p, 1)}${confident === false ? ' (below the confidence bar)' : ''}`}>
    <span class="prob-bar"><span class=${`prob-fill ${cls}`} style=${`width:${(pct * 100).toFixed(1)}%`}></span></span>
    <span class="prob-num">${pct > 0 && pct < 0.005 ? '<1%' : fmtPct(p, 0)}</span>
  </span>`;
}

export function StatusBadge({ status }) {
  return html`<span class=${`badge status-${status}`}><span class="led"></span>${status}</span>`;
}

/** Copies `text` to the clipboard; says so. */
export function CopyButton({ text, label = 'copy' }) {
  const [done, setDone] = useState(null);
  const copy = async () => {
    try {
      if (navigator.clipboard && window.isSecureContext) await navigator.clipboard.writeText(text);
      else {
        const ta = document.createElement('textarea');
        ta.value = text;
        ta.setAttribute('readonly', '');
        ta.style.position = 'fixed';
        ta.style.opacity = '0';
        document.body.appendChild(ta);
        ta.select();
        document.execCommand('copy');
        ta.remove();
      }
      setDone('copied');
    } catch (e) {
      setDone(`copy failed: ${e.message}`);
    }
    setTimeout(() => setDone(null), 1600);
  };
  return html`<button class="btn small copy" type="button" onClick=${copy} data-testid="copy">${done || label}</button>`;
}

const KIND_LABEL = {
  service: 'service', database: 'database', messaging_destination: 'topic', external: 'external',
  pod: 'pod', node: 'node', operation: 'operation', service_instance: 'instance', namespace: 'namespace',
  workload: 'workload', change: 'change', event: 'event', edge: 'network path',
};
export const kindLabel = (k) => KIND_LABEL[k] || k;

export function KindTag({ kind }) {
  return html`<span class=${`kind-tag kind-${kind}`}>${kindLabel(kind)}</span>`;
}

/** A collapsible section with a heading. */
export function Section({ title, right, children, id, testid, cls }) {
  return html`<section class=${`card ${cls || ''}`} id=${id} data-testid=${testid}>
    <div class="card-head"><h2>${title}</h2>${right ? html`<div class="card-right">${right}</div>` : null}</div>
    ${children}
  </section>`;
}

/** A read-only JSON-ish value from an OTLP AnyValue struct (`{string_value: …}`) or a plain value. */
export function anyValue(v) {
  if (v === null || v === undefined) return '';
  if (typeof v !== 'object') return String(v);
  for (const k of ['string_value', 'int_value', 'double_value', 'bool_value', 'bytes_value', 'array_value', 'kvlist_value']) {
    if (v[k] !== undefined && v[k] !== null) return typeof v[k] === 'object' ? JSON.stringify(v[k]) : String(v[k]);
  }
  return JSON.stringify(v);
}
