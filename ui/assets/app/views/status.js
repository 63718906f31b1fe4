// Status: readiness (and recovery progress), graph size, the store's figures.
import { html, useApi, fmtNum, fmtBytes, useTitle } from '../lib.js';
import { ErrorBox, Loading } from '../components/common.js';

function Progress({ done, total, label }) {
  const f = total ? Math.min(1, done / total) : 0;
  return html`<div class="progress-line"><span class="label">${label}</span>
    <span class="prob-bar wide"><span class="prob-fill hi" style=${`width:${(f * 100).toFixed(1)}%`}></span></span>
    <span class="num">${fmtNum(done)} / ${fmtNum(total)}</span></div>`;
}

export function StatusPage() {
  useTitle('Status');
  const ready = useApi('/readyz', { poll: 3000, allow: [503] });
  const status = useApi('/api/v1/status', { poll: 5000 });
  const store = useApi('/api/v1/store', { poll: 10000 });
  const r = ready.data;
  const isReady = r && r.status === 200 && r.data && r.data.status === 'ready';
  const p = r && r.data && r.data.progress;
  return html`<div class="page status">
    <div class="page-head"><h1>Status</h1></div>
    <${ErrorBox} error=${ready.error} what="Readiness" />
    <section class="card">
      <div class="card-head"><h2>Readiness</h2></div>
      ${!r && !ready.error ? html`<${Loading} />` : null}
      ${r ? html`<div class=${`ready-line ${isReady ? 'ok' : 'warn'}`}>
        <span class="led big"></span><span data-testid="status-ready" data-ready=${isReady ? 'true' : 'false'}>${isReady ? 'ready' : (r.data && r.data.status) || `HTTP ${r.status}`}</span>
        <span class="muted">${isReady ? 'the data directory is recovered; loupe serves and ingests' : 'recovering the data directory'}</span>
      </div>` : null}
      ${p ? html`<div class="recovery">
        <div><span class="label">phase</span> ${p.phase}</div>
        <${Progress} label="segments" done=${p.segments_done} total=${p.segments_total} />
        <${Progress} label="write-ahead log" done=${p.wal_records_done} total=${p.wal_records_total} />
        <div><span class="label">rows read</span> ${fmtNum(p.rows)}</div>
      </div>` : null}
    </section>
    <div class="two-col even">
      <section class="card">
        <div class="card-head"><h2>Knowledge graph</h2></div>
        <${ErrorBox} error=${status.error} what="Graph status" />
        ${status.data ? html`<table class="kv big" data-testid="graph-status"><tbody>
          <tr><th>entities</th><td>${fmtNum(status.data.entities, 2)}</td></tr>
          <tr><th>relations</th><td>${fmtNum(status.data.relations, 2)}</td></tr>
          <tr><th>spans waiting in the join buffer</th><td>${fmtNum(status.data.pending_spans)}</td></tr>
        </tbody></table>` : (!status.error ? html`<${Loading} />` : null)}
      </section>
      <section class="card">
        <div class="card-head"><h2>Store</h2></div>
        <${ErrorBox} error=${store.error} what="Store" />
        ${store.data ? html`<table class="kv big" data-testid="store-status"><tbody>
          <tr><th>rows in memory</th><td>${fmtNum(store.data.hot_rows, 2)} <span class="muted">(${fmtBytes(store.data.hot_bytes)})</span></td></tr>
          <tr><th>segments on disk</th><td>${fmtNum(store.data.segments)} <span class="muted">(${fmtNum(store.data.segment_rows, 2)} rows, ${fmtBytes(store.data.segment_bytes)})</span></td></tr>
          <tr><th>write-ahead log</th><td>${fmtBytes(store.data.wal_bytes)}</td></tr>
          <tr><th>unreadable segments</th><td>${store.data.corrupt_segments.length ? html`<ul class="plain err-text">${store.data.corrupt_segments.map((s) => html`<li>${s}</li>`)}</ul>` : '0'}</td></tr>
        </tbody></table>` : (!store.error ? html`<${Loading} />` : null)}
      </section>
    </div>
    <p class="muted small">API: <a href="/api/v1/openapi.json">/api/v1/openapi.json</a> · third-party licences:${' '}
      ${[['Preact', 'preact'], ['htm', 'htm'], ['uPlot', 'uplot'], ['dagre', 'dagre'], ['graphlib', 'graphlib']].map(([label, f], i) => html`${i ? ', ' : ''}<a href=${`/assets/vendor/licenses/${f}-LICENSE.txt`}>${label}</a>`)}</p>
  </div>`;
}
