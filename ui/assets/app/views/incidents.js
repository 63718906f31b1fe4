// Incidents: the landing page, live (polled every 5 s), newest first.
import {
  html, useState, useApi, Time, causeName, splitId, toMs, fmtDur, setQuery, href, navigate, post, parseTimeInput, iso, useTick, useTitle, fmtLocalInput,
} from '../lib.js';
import { ErrorBox, Loading, ProbBar, StatusBadge, Empty } from '../components/common.js';

const WORDS = { error_ratio: 'errors', latency: 'slow', traffic: 'traffic drop' };
export function symptomWords(i) {
  if (Array.isArray(i.symptom_objectives) && i.symptom_objectives.length) {
    return i.symptom_objectives.map((o) => WORDS[o] || o.replace(/_/g, ' ')).join(' + ');
  }
  if (i.source === 'manual' && !i.symptoms) return 'opened by hand';
  return `${i.symptoms} alert${i.symptoms === 1 ? '' : 's'}`;
}

function OpenWindow() {
  const [start, setStart] = useState(fmtLocalInput(Date.now() - 15 * 60e3));
  const [end, setEnd] = useState(fmtLocalInput(Date.now()));
  const [title, setTitle] = useState('');
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState(null);
  const submit = async (e) => {
    e.preventDefault();
    setError(null);
    const a = parseTimeInput(start);
    const b = parseTimeInput(end);
    if (a === null) { setError(new Error(`start: cannot read "${start}" as a time`)); return; }
    if (b === null) { setError(new Error(`end: cannot read "${end}" as a time`)); return; }
    setBusy(true);
    try {
      const body = { start: iso(a), end: iso(b) };
      if (title.trim()) body.title = title.trim();
      const inc = await post('/api/v1/incidents', body);
      navigate(`/incidents/${inc.id}`);
    } catch (err) {
      setError(err);
    } finally {
      setBusy(false);
    }
  };
  return html`<details class="card open-window">
    <summary>Investigate a window by hand…</summary>
    <form class="form-row" onSubmit=${submit}>
      <label>from <input value=${start} onInput=${(e) => setStart(e.currentTarget.value)} size="19" /></label>
      <label>to <input value=${end} onInput=${(e) => setEnd(e.currentTarget.value)} size="19" /></label>
      <label>title <input value=${title} placeholder="optional" onInput=${(e) => setTitle(e.currentTarget.value)} size="24" /></label>
      <button class="btn primary" disabled=${busy} type="submit">${busy ? 'Ranking causes…' : 'Open an incident and rank causes'}</button>
      <span class="muted small">Times in your zone (or RFC 3339, or -15m). loupe ranks the causes of the window against the one before.</span>
    </form>
    <${ErrorBox} error=${error} what="Could not open the incident" />
  </details>`;
}

export function IncidentsPage({ query }) {
  useTitle('Incidents');
  useTick(15000);
  const { data, error, loading } = useApi('/api/v1/incidents', { poll: 5000 });
  const status = query.get('status') || '';
  const list = data ? [...data.incidents].sort((a, b) => (b.onset_unix_nano - a.onset_unix_nano) || (b.id - a.id)) : [];
  const counts = { open: 0, suppressed: 0, resolved: 0 };
  for (const i of list) counts[i.status] = (counts[i.status] || 0) + 1;
  const shown = status ? list.filter((i) => i.status === status) : list;
  const now = Date.now();

  return html`<div class="page">
    <div class="page-head">
      <h1>Incidents</h1>
      <div class="tabs">
        ${[['', `all ${list.length}`], ['open', `open ${counts.open}`], ['suppressed', `suppressed ${counts.suppressed}`], ['resolved', `resolved ${counts.resolved}`]].map(([k, label]) => html`
          <a class=${`tab ${status === k ? 'active' : ''} ${k ? `tab-${k}` : ''}`} href=${href('/incidents', { status: k })}
             onClick=${(e) => { e.preventDefault(); setQuery({ status: k }, { replace: true }); }}>${label}</a>`)}
      </div>
      <span class="live muted small" title="polled every 5 s"><span class=${`live-dot ${error ? 'down' : ''}`}></span>live${loading ? '…' : ''}</span>
    </div>
    <${ErrorBox} error=${error} what="Could not list the incidents" />
    ${!data && !error ? html`<${Loading} what="Loading incidents" />` : null}
    ${data && shown.length === 0 ? html`<${Empty}>${list.length === 0
      ? html`No incidents yet. loupe opens one when a user-facing service burns its error budget or leaves its baseline; you can also investigate a window by hand below.`
      : 'No incident with this status.'}</${Empty}>` : null}
    ${shown.length ? html`<table class="table incidents" data-testid="incidents">
      <thead><tr><th>status</th><th>#</th><th>incident</th><th>onset</th><th>duration</th><th>top cause</th><th>symptoms</th></tr></thead>
      <tbody>${shown.map((i) => {
        const onset = toMs(i.onset_unix_nano);
        const end = i.resolved_unix_nano ? toMs(i.resolved_unix_nano) : now;
        return html`<tr data-testid="incident-row" data-id=${i.id} data-status=${i.status} class=${`row-${i.status}`}
            onClick=${(e) => { if (!e.target.closest('a')) navigate(`/incidents/${i.id}`); }}>
          <td><${StatusBadge} status=${i.status} /></td>
          <td class="num muted">${i.id}</td>
          <td class="title-cell"><a href=${`/incidents/${i.id}`}>${i.title}</a>${i.source === 'manual' ? html` <span class="tag">by hand</span>` : null}</td>
          <td><${Time} t=${i.onset_unix_nano} ago=${true} /></td>
          <td>${i.resolved_unix_nano || now - toMs(i.opened_unix_nano) < 86400e3 ? fmtDur(end - onset) : ''}${i.resolved_unix_nano ? '' : html` <span class="muted small">ongoing</span>`}</td>
          <td class="cause-cell">
            ${i.top_cause ? html`<span class="top-cause" data-testid="top-cause" title=${i.top_cause_id || i.top_cause}>${causeName(i.top_cause_id ? splitId(i.top_cause_id)[0] : '', i.top_cause)}</span>
              <${ProbBar} p=${i.top_cause_probability} confident=${i.confident} />
              ${i.confident === false ? html`<span class="tag warn" title="no cause reaches the confidence bar">not confident</span>` : null}`
              : html`<span class="muted">no analysis yet</span>`}
          </td>
          <td>${symptomWords(i)}</td>
        </tr>`;
      })}</tbody>
    </table>` : null}
    <${OpenWindow} />
  </div>`;
}
