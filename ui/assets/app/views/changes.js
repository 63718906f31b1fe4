// Changes: deployments, config, flags, scaling and Kubernetes events of a window, filterable by
// service and kind; each linked to its entity, to the incidents it weighed in, and to an
// analysis of the minutes after it.
import {
  html, useState, useEffect, useMemo, useApi, api, post, setQuery, href, entityHref, navigate, toMs, iso, isoSec, parseTimeInput,
  fmtLocalInput, Time, fmtPct, fmtTime, splitId, useTitle, causeName,
} from '../lib.js';
import { ErrorBox, Loading, ProbBar, Empty, KindTag } from '../components/common.js';
import { useServiceNames, useExtent } from './map.js';

const KINDS = ['deployment', 'config', 'feature_flag', 'scaling', 'kubernetes_event'];
const KIND_COLOR = { deployment: '#4e9af1', config: '#3cc7c7', feature_flag: '#c77dff', scaling: '#5cc98f', kubernetes_event: '#ff8c5a' };
const PRESETS = [['15m', 15 * 60e3], ['1h', 3600e3], ['6h', 6 * 3600e3], ['24h', 24 * 3600e3], ['7d', 7 * 86400e3]];

function Analyze({ change }) {
  const t = toMs(change.time_unix_nano);
  const [mins, setMins] = useState(10);
  const [state, setState] = useState({ busy: false, res: null, error: null });
  const run = async () => {
    setState({ busy: true, res: null, error: null });
    try {
      const res = await post('/api/v1/analyze', { start: iso(t), end: iso(t + mins * 60e3) });
      setState({ busy: false, res, error: null });
    } catch (error) {
      setState({ busy: false, res: null, error });
    }
  };
  const open = async () => {
    try {
      const inc = await post('/api/v1/incidents', { start: iso(t), end: iso(t + mins * 60e3), title: `after ${change.summary}` });
      navigate(`/incidents/${inc.id}`);
    } catch (error) { setState((s) => ({ ...s, error })); }
  };
  useEffect(() => { run(); }, [mins]);
  const r = state.res;
  return html`<div class="analyze-box" data-testid="analysis">
    <div class="toolbar">
      <strong>Causes ranked over the ${mins} min after this change</strong>
      <span class="muted small">(against the ${mins} min before)</span>
      <select value=${mins} onChange=${(e) => setMins(Number(e.currentTarget.value))}>${[5, 10, 15, 30].map((m) => html`<option value=${m}>${m} min</option>`)}</select>
      <button class="btn small" type="button" onClick=${open}>Open as an incident</button>
    </div>
    <${ErrorBox} error=${state.error} what="Analysis" />
    ${state.busy ? html`<${Loading} what="Ranking causes" />` : null}
    ${r ? html`${!r.confident ? html`<div class="banner warn small">No confident cause in this window.</div>` : null}
      <ol class="mini-causes">${r.causes.slice(0, 5).map((c) => html`<li>
        <${KindTag} kind=${c.entity.kind} /> <strong title=${`${c.entity.kind}:${c.entity.name}`}>${causeName(c.entity.kind, c.entity.name)}</strong> <${ProbBar} p=${c.probability} />
        <span class="muted small">${c.evidence[0] ? c.evidence[0].summary : ''}</span></li>`)}</ol>` : null}
  </div>`;
}

export function ChangesPage({ query }) {
  useTitle('Changes');
  const fromStr = query.get('from') || '';
  const toStr = query.get('to') || '';
  const service = query.get('service') || '';
  const kind = query.get('kind') || '';
  const knownAt = query.get('known_at') || '';
  // Without a range: the hour up to the data's latest time (now while data is live; replayed
  // data can be older).
  const { extent, done: extentDone } = useExtent();
  const stale = extent && Date.now() - extent.hi > 5 * 60e3;
  const p = new URLSearchParams();
  if (fromStr) p.set('from', fromStr);
  if (toStr) p.set('to', toStr);
  else if (stale) { p.set('to', isoSec(extent.hi + 1000)); if (!fromStr) p.set('from', isoSec(extent.hi + 1000 - 3600e3)); }
  if (service) p.set('service', service);
  if (knownAt) p.set('known_at', knownAt);
  const { data, error, loading } = useApi(fromStr || toStr || extentDone ? `/api/v1/changes?${p}` : null);
  const servicesList = useServiceNames(toStr);
  const incidents = useApi('/api/v1/incidents');
  const [open, setOpen] = useState(null);

  const all = data ? data.changes : [];
  const shown = kind ? all.filter((c) => c.kind === kind) : all;
  const rows = [...shown].reverse(); // newest first in the table

  // Which incidents each change weighed in: the causes of incidents whose window holds it.
  const [weighed, setWeighed] = useState({});
  const [weighError, setWeighError] = useState(null);
  useEffect(() => {
    if (!incidents.data || !all.length) return;
    const times = all.map((c) => toMs(c.time_unix_nano));
    const lo = Math.min(...times) - 3600e3;
    const hi = Math.max(...times) + 3 * 3600e3;
    const cand = incidents.data.incidents.filter((i) => { const o = toMs(i.onset_unix_nano); return o >= lo && o <= hi && i.top_cause !== undefined; }).slice(0, 12);
    let alive = true;
    Promise.all(cand.map((i) => api(`/api/v1/incidents/${i.id}`))).then((details) => {
      if (!alive) return;
      const out = {};
      for (const inc of details) {
        for (const c of (inc.analysis && inc.analysis.causes) || []) {
          if (!c.change) continue;
          const key = `${c.change.service}|${Math.round(toMs(c.change.time_unix_nano) / 1000)}|${c.change.kind}`;
          (out[key] = out[key] || []).push({ id: inc.id, rank: c.rank, title: inc.title, p: c.probability });
        }
      }
      setWeighed(out);
    }).catch((e) => alive && setWeighError(e));
    return () => { alive = false; };
  }, [incidents.data, data]);

  const range = all.length ? [Math.min(...all.map((c) => toMs(c.time_unix_nano))), Math.max(...all.map((c) => toMs(c.time_unix_nano)))] : null;
  const lo = p.get('from') ? toMs(p.get('from')) : (range ? range[0] : Date.now() - 3600e3);
  const hi = p.get('to') ? toMs(p.get('to')) : Math.max(Date.now(), range ? range[1] : 0);
  const pos = (ms) => `${(((ms - lo) / Math.max(1, hi - lo)) * 100).toFixed(2)}%`;
  const services = [...servicesList.names];
  if (service && !services.includes(service)) services.unshift(service);

  const [fromText, setFromText] = useState(fromStr ? fmtLocalInput(toMs(fromStr)) : '');
  const [toText, setToText] = useState(toStr ? fmtLocalInput(toMs(toStr)) : '');
  useEffect(() => { setFromText(fromStr ? fmtLocalInput(toMs(fromStr)) : ''); setToText(toStr ? fmtLocalInput(toMs(toStr)) : ''); }, [fromStr, toStr]);
  const [formError, setFormError] = useState(null);
  const apply = (e) => {
    e.preventDefault();
    const a = fromText.trim() ? parseTimeInput(fromText) : null;
    const b = toText.trim() ? parseTimeInput(toText) : null;
    if (fromText.trim() && a === null) { setFormError(new Error(`from: cannot read "${fromText}" as a time`)); return; }
    if (toText.trim() && b === null) { setFormError(new Error(`to: cannot read "${toText}" as a time`)); return; }
    setFormError(null);
    setQuery({ from: a === null ? null : isoSec(a), to: b === null ? null : isoSec(b) });
  };

  return html`<div class="page changes">
    <div class="page-head"><h1>Changes</h1>
      <span class="muted">${p.get('from') || p.get('to') ? html`<${Time} ms=${lo} date=${true} /> – ${p.get('to') ? html`<${Time} ms=${hi} date=${true} />` : 'now'}` : 'the last hour'}${!fromStr && !toStr && stale ? ' (the last hour of the stored data)' : ''}</span>
    </div>
    <form class="toolbar" onSubmit=${apply}>
      <label class="field">from <input data-testid="changes-from" value=${fromText} placeholder="1 h before to" size="19" onInput=${(e) => setFromText(e.currentTarget.value)} /></label>
      <label class="field">to <input data-testid="changes-to" value=${toText} placeholder="now" size="19" onInput=${(e) => setToText(e.currentTarget.value)} /></label>
      <button class="btn small" type="submit">apply</button>
      ${PRESETS.map(([label, ms]) => html`<button class="btn small" type="button" onClick=${() => { const end = stale ? extent.hi + 1000 : Date.now(); setQuery({ from: isoSec(end - ms), to: stale ? isoSec(end) : null }); }}>last ${label}</button>`)}
      <label class="field">service
        <select value=${service} data-testid="changes-service" onChange=${(e) => setQuery({ service: e.currentTarget.value || null }, { replace: true })}>
          <option value="">all</option>${services.map((s) => html`<option value=${s}>${s}</option>`)}
        </select></label>
      <label class="field">kind
        <select value=${kind} data-testid="changes-kind" onChange=${(e) => setQuery({ kind: e.currentTarget.value || null }, { replace: true })}>
          <option value="">all</option>${KINDS.map((k) => html`<option value=${k}>${k.replace('_', ' ')}</option>`)}
        </select></label>
    </form>
    <${ErrorBox} error=${formError} what="Range" />
    <${ErrorBox} error=${error} what="Changes" />
    <${ErrorBox} error=${weighError} what="Incidents the changes weighed in" />
    <${ErrorBox} error=${servicesList.error} what="The services (for the filter)" />
    <${ErrorBox} error=${incidents.error} what="The incidents" />
    ${!data && !error ? html`<${Loading} what="Loading changes" />` : null}
    ${data && shown.length ? html`<div class="strip" title="changes on the range's time axis">
      ${shown.map((c) => html`<span class="strip-dot" style=${`left:${pos(toMs(c.time_unix_nano))};background:${KIND_COLOR[c.kind] || '#8b97a8'}`}
        title=${`${fmtTime(toMs(c.time_unix_nano), { date: true })} ${c.kind}: ${c.summary}`}></span>`)}
      <span class="strip-lo"><${Time} ms=${lo} /></span><span class="strip-hi"><${Time} ms=${hi} /></span>
    </div>` : null}
    ${data && !shown.length ? html`<${Empty}>No ${kind ? kind.replace('_', ' ') : 'change'}${service ? ` of ${service}` : ''} in this range.${fromStr ? '' : ' Try a longer range.'}</${Empty}>` : null}
    ${rows.length ? html`<table class=${`table changes-table ${loading ? 'is-loading' : ''}`} data-testid="changes">
      <thead><tr><th>when</th><th>kind</th><th>service</th><th>what</th><th>version</th><th>by</th><th>source</th><th>weighed in</th><th></th></tr></thead>
      <tbody>${rows.map((c) => {
        const key = `${c.service}|${Math.round(toMs(c.time_unix_nano) / 1000)}|${c.kind}`;
        const w = weighed[key] || [];
        const isOpen = open === c.id;
        return html`<tr data-testid="change-row" data-id=${c.id} data-kind=${c.kind}>
          <td class="nowrap"><${Time} t=${c.time_unix_nano} date=${true} /></td>
          <td><span class=${`tag chg-${c.kind}`}>${c.kind.replace('_', ' ')}</span></td>
          <td>${c.service ? html`<a href=${entityHref(`service:${c.service}`, { from: isoSec(toMs(c.time_unix_nano) - 30 * 60e3), to: isoSec(toMs(c.time_unix_nano) + 30 * 60e3) })}>${c.service}</a>` : '—'}</td>
          <td>${c.summary}${c.targets && c.targets.length ? html`<div class="small">${c.targets.slice(0, 4).map((t) => html`<a class="target" href=${entityHref(t)}>${splitId(t)[1]}</a>`)}${c.targets.length > 4 ? ` +${c.targets.length - 4}` : ''}</div>` : null}</td>
          <td class="mono small">${c.version_from || c.version_to ? `${c.version_from || '?'} → ${c.version_to || '?'}` : ''}${c.flag ? html`<code>${c.flag}</code>` : null}</td>
          <td>${c.author || ''}${c.commit ? html`<div><code class="small">${c.commit.slice(0, 12)}</code></div>` : null}</td>
          <td class="muted">${c.source}</td>
          <td>${w.map((x) => html`<a class="tag" href=${`/incidents/${x.id}`} title=${`${x.title}: rank ${x.rank}, ${fmtPct(x.p, 0)}`}>#${x.id} rank ${x.rank}</a>`)}</td>
          <td class="nowrap">
            <button class="btn small" type="button" data-testid="analyze-around" onClick=${() => setOpen(isOpen ? null : c.id)}>${isOpen ? 'close' : 'analyze after'}</button>
            <a class="btn small ghost" href=${href('/map', { mode: 'diff', from: isoSec(toMs(c.time_unix_nano)), to: isoSec(toMs(c.time_unix_nano) + 10 * 60e3) })} title="the map before against after">diff</a>
          </td>
        </tr>${isOpen ? html`<tr class="sub-row"><td colspan="9"><${Analyze} change=${c} /></td></tr>` : null}`;
      })}</tbody>
    </table>` : null}
  </div>`;
}
