// SQL over the stored telemetry: POST /api/v1/query; results as a table, errors shown plainly.
import { html, useState, useEffect, post, setQuery, useTitle, fmtNum, Time, toMs } from '../lib.js';
import { ErrorBox, Loading } from '../components/common.js';

const EXAMPLES = [
  ['Busiest services, last 15 min', `SELECT service_name, count(*) AS spans,
       sum(CASE WHEN status_code = 'error' THEN 1 ELSE 0 END) AS errors
FROM spans
WHERE start_time_unix_nano > now() - INTERVAL '15 minutes'
GROUP BY service_name
ORDER BY spans DESC`],
  ['Slowest spans, last 15 min', `SELECT trace_id, service_name, name, duration_nano / 1e6 AS ms, status_code
FROM spans
WHERE start_time_unix_nano > now() - INTERVAL '15 minutes'
ORDER BY duration_nano DESC
LIMIT 20`],
  ['Recent error spans', `SELECT start_time_unix_nano, trace_id, service_name, name, status_message
FROM spans
WHERE status_code = 'error'
ORDER BY start_time_unix_nano DESC
LIMIT 50`],
  ['Error logs', `SELECT time_unix_nano, service_name, severity_text, body['string_value'] AS body, trace_id
FROM logs
WHERE severity_number >= 17
ORDER BY time_unix_nano DESC
LIMIT 50`],
  ['Changes', 'SELECT * FROM changes LIMIT 50'],
  ['Service edges', 'SELECT * FROM service_edges LIMIT 50'],
  ['Tables and columns', `SELECT table_name, column_name, data_type
FROM information_schema.columns
WHERE table_schema = 'public'
ORDER BY table_name, ordinal_position`],
];

function cell(v, type) {
  if (v === null || v === undefined) return html`<span class="muted">null</span>`;
  // Timestamps in the browser's zone (UTC, as stored, on hover).
  if (typeof v === 'string' && type.startsWith('Timestamp') && toMs(v) !== null) return html`<${Time} ms=${toMs(v)} date=${true} millis=${true} />`;
  if (typeof v === 'object') return html`<code class="small">${JSON.stringify(v)}</code>`;
  const s = String(v);
  if (/^[0-9a-f]{32}$/.test(s)) return html`<a class="mono" href=${`/traces/${s}`}>${s}</a>`;
  return s;
}

export function QueryPage({ query }) {
  useTitle('SQL');
  const urlSql = query.get('sql') || '';
  const [sql, setSql] = useState(urlSql || EXAMPLES[0][1]);
  const [state, setState] = useState({ busy: false, res: null, error: null });
  const run = async (text) => {
    setState({ busy: true, res: null, error: null });
    try {
      const res = await post('/api/v1/query', { sql: text });
      setState({ busy: false, res, error: null });
    } catch (error) {
      setState({ busy: false, res: null, error });
    }
  };
  // The query in the URL runs on load (a shared link shows its result).
  useEffect(() => { if (urlSql) { setSql(urlSql); run(urlSql); } }, [urlSql]);
  const submit = (e) => {
    if (e) e.preventDefault();
    if (sql === urlSql) run(sql);
    else setQuery({ sql });
  };
  const r = state.res;
  return html`<div class="page query">
    <div class="page-head"><h1>SQL</h1>
      <span class="muted small">read-only DataFusion SQL over <code>spans</code>, <code>logs</code>, <code>metric_points</code>, <code>changes</code>, <code>service_edges</code></span></div>
    <form class="card sql-form" onSubmit=${submit}>
      <div class="examples"><span class="muted small">examples</span>
        ${EXAMPLES.map(([label, text]) => html`<button class="btn small ghost" type="button" onClick=${() => setSql(text)}>${label}</button>`)}
      </div>
      <textarea data-testid="sql-input" class="mono" rows="8" spellcheck="false" value=${sql}
        onInput=${(e) => setSql(e.currentTarget.value)}
        onKeyDown=${(e) => { if (e.key === 'Enter' && (e.ctrlKey || e.metaKey)) submit(e); }}></textarea>
      <div class="toolbar">
        <button class="btn primary" type="submit" data-testid="sql-run" disabled=${state.busy}>${state.busy ? 'Running…' : 'Run'}</button>
        <span class="muted small">Ctrl+Enter runs it</span>
      </div>
    </form>
    <${ErrorBox} error=${state.error} what="The query failed" />
    ${state.busy ? html`<${Loading} what="Running" />` : null}
    ${r ? html`<div class="result-meta">
        <span><strong data-testid="row-count">${r.row_count}</strong> row${r.row_count === 1 ? '' : 's'}</span>
        <span class="muted">in ${fmtNum(r.elapsed_ms, 1)} ms</span>
        ${r.truncated ? html`<span class="tag warn">truncated by the row limit</span>` : null}
      </div>
      ${r.columns.length ? html`<div class="table-scroll"><table class="table compact results" data-testid="results">
        <thead><tr>${r.columns.map((c) => html`<th title=${c.type}>${c.name}<div class="muted small">${c.type}</div></th>`)}</tr></thead>
        <tbody>${r.rows.map((row) => html`<tr data-testid="result-row">${r.columns.map((c) => html`<td>${cell(row[c.name], c.type)}</td>`)}</tr>`)}</tbody>
      </table></div>` : null}` : null}
  </div>`;
}
