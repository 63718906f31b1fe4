// One incident, in the order an SRE reads it: what degraded (symptoms with sparklines), the
// ranked causes with their evidence, counter-evidence, change and remediation, and a verdict on
// each; then the timeline on one time axis, the focused map as of the incident, and example
// traces through the top cause.
import {
  html, useState, useMemo, useApi, Time, toMs, fmtDur, fmtPct, fmtSecs, fmtNum, iso, isoSec, durationParam, href,
  entityHref, traceHref, post, useName, useTitle, useTick, causeName,
} from '../lib.js';
import { ErrorBox, Loading, ProbBar, StatusBadge, CopyButton, KindTag, Section, Empty } from '../components/common.js';
import { Chart } from '../components/chart.js';
import { ServiceMap, MapLegend } from '../components/servicemap.js';

const MIN = 60e3;

/** Where a cause sits in the graph: {nodeId, edgeKey, service, link}. */
export function causeTarget(c) {
  const { kind, name } = c.entity;
  switch (kind) {
    case 'service': return { nodeId: `service:${name}`, service: name, link: entityHref(`service:${name}`) };
    case 'database': return { nodeId: `database:${name}`, service: null, link: entityHref(`database:${name}`) };
    case 'node': return { nodeId: `node:${name}`, service: null, link: entityHref(`node:${name}`) };
    case 'edge': {
      const [a, b] = name.split('->');
      return { edgeKey: `service:${a}>service:${b}`, nodeId: null, service: a, callee: b, link: href('/map', { service: a, depth: 1 }) };
    }
    case 'change': {
      const svc = (c.change && c.change.service) || name.split(':')[0];
      return { nodeId: `service:${svc}`, service: svc, link: href('/changes', { service: svc }) };
    }
    default: return { nodeId: null, service: null, link: null };
  }
}

function windowOf(inc) {
  const a = inc.analysis;
  const onset = toMs(inc.onset_unix_nano);
  const end = inc.resolved_unix_nano ? toMs(inc.resolved_unix_nano)
    : Math.max(toMs(inc.opened_unix_nano), ...inc.symptoms.map((x) => toMs(x.at_unix_nano)));
  const win = a ? [toMs(a.window[0]), toMs(a.window[1])] : [onset, end];
  const base = a ? [toMs(a.baseline[0]), toMs(a.baseline[1])] : [onset - (end - onset), onset];
  // The charts and the timeline span the baseline through the window (at least 30 min before onset).
  const from = Math.floor(Math.min(base[0], onset - 30 * MIN, win[0]) / MIN) * MIN;
  const to = Math.ceil(Math.max(win[1], onset + 5 * MIN) / 30e3) * 30e3;
  return { onset, win, base, from, to };
}

function stepFor(from, to, points = 120) {
  const s = Math.max(10, Math.ceil((to - from) / 1000 / points / 10) * 10);
  return `${s}s`;
}

// ---------------------------------------------------------------------------------------------

function Header({ inc, w }) {
  const a = inc.analysis;
  const symOnset = toMs(inc.symptom_onset_unix_nano);
  // An open incident lasts until its latest data (not the wall clock: replayed data is old).
  const end = inc.resolved_unix_nano ? toMs(inc.resolved_unix_nano)
    : Math.max(toMs(inc.opened_unix_nano), ...inc.symptoms.map((x) => toMs(x.at_unix_nano)), a ? toMs(a.window[1]) : 0);
  const top = a && a.causes && a.causes[0];
  return html`<section class="card incident-head">
    <div class="incident-title">
      <${StatusBadge} status=${inc.status} />
      <h1>${inc.title}</h1>
      <span class="muted">#${inc.id} · ${inc.source === 'manual' ? 'opened by hand' : 'detected'}</span>
    </div>
    <div class="facts">
      <div><span class="label">onset</span><${Time} t=${inc.onset_unix_nano} date=${true} ago=${true} /></div>
      <div><span class="label">symptoms left baseline</span>${symOnset ? html`<${Time} ms=${symOnset} />` : html`<span class="muted">not found yet</span>`}</div>
      <div><span class="label">opened</span><${Time} t=${inc.opened_unix_nano} /></div>
      <div><span class="label">${inc.resolved_unix_nano ? 'resolved' : 'status'}</span>${inc.resolved_unix_nano ? html`<${Time} t=${inc.resolved_unix_nano} />` : html`<span>still ${inc.status}</span>`}</div>
      <div><span class="label">duration</span>${fmtDur(end - w.onset)}${inc.resolved_unix_nano ? '' : ' so far'}</div>
      ${a ? html`<div><span class="label">analysed</span><${Time} ms=${w.win[0]} /> – <${Time} ms=${w.win[1]} /> <span class="muted">against</span> <${Time} ms=${w.base[0]} /> – <${Time} ms=${w.base[1]} /></div>` : null}
      ${a ? html`<div><span class="label">model</span>${a.model}</div>` : null}
    </div>
    <div class="head-links">
      <a class="btn small" href=${href('/map', { at: isoSec(w.win[1]), window: durationParam(Math.min(Math.max(w.win[1] - w.win[0], MIN), 60 * MIN)) })}>Map as of the incident</a>
      <a class="btn small" href=${href('/map', { mode: 'diff', from: isoSec(w.base[1]), to: isoSec(w.win[1]), window: durationParam(Math.min(Math.max(w.win[1] - w.win[0], MIN), 60 * MIN)) })}>What changed (diff)</a>
      <a class="btn small" href=${href('/changes', { from: isoSec(w.from), to: isoSec(w.to) })}>Changes around it</a>
    </div>
    ${inc.analysis_error ? html`<div class="error" data-testid="error"><strong>The analysis could not run: </strong>${inc.analysis_error}</div>` : null}
    ${a && (!a.confident || !a.causes.length) ? html`<div class="banner warn" data-testid="no-confident-cause">
      <strong>No confident cause.</strong> ${a.causes.length
        ? html`No candidate reaches the confidence bar (the top one, ${causeName(top.entity.kind, top.entity.name)}, has ${fmtPct(top.probability, 0)}). The ranking below is a list of best guesses: read the evidence before acting.`
        : 'The analysis found no candidate with evidence in this window.'}
    </div>` : null}
    ${!a && !inc.analysis_error ? html`<div class="banner">No analysis yet: loupe ranks causes at the next update of the incident.</div>` : null}
  </section>`;
}

// ---------------------------------------------------------------------------------------------
// Symptoms

function symptomSeries(objective) {
  if (objective === 'latency') return { key: 'duration_p90_seconds', label: 'p90 duration', fmt: fmtSecs, scale: 1 };
  if (objective === 'traffic') return { key: 'calls', label: 'requests/s', fmt: (v) => `${fmtNum(v)}/s`, perSec: true };
  return { key: 'error_ratio', label: 'error ratio', fmt: (v) => fmtPct(v) };
}

function SymptomChart({ service, objective, w, inc }) {
  const spec = symptomSeries(objective);
  const url = `/api/v1/entities/${encodeURIComponent(`service:${service}`)}/history?${new URLSearchParams({ from: iso(w.from), to: iso(w.to), step: stepFor(w.from, w.to) })}`;
  const { data, error } = useApi(url);
  const chart = useMemo(() => {
    if (!data) return null;
    const stepS = data.step_nanos / 1e9;
    // The steps before the first data (loupe started later) are left out.
    const first = Math.max(0, data.points.findIndex((p) => p.calls > 0 || p.log_records > 0) - 2);
    const pts = data.points.slice(first);
    const xs = pts.map((p) => toMs(p.start_unix_nano) / 1000);
    const ys = pts.map((p) => {
      const v = p[spec.key];
      if (v === null || v === undefined) return null;
      if (spec.key === 'error_ratio' && p.calls === 0) return null;
      return spec.perSec ? v / stepS : v;
    });
    const bands = [
      { from: w.base[0] / 1000, to: w.base[1] / 1000, color: 'rgba(78,154,241,0.10)' },
      { from: w.win[0] / 1000, to: w.win[1] / 1000, color: 'rgba(240,106,138,0.12)' },
    ];
    const markers = [{ x: w.onset / 1000, color: '#f06a8a', label: 'incident onset' }];
    const so = toMs(inc.symptom_onset_unix_nano);
    if (so) markers.push({ x: so / 1000, color: '#f2a93b', label: 'symptoms left their baseline' });
    return { data: [xs, ys], series: [{ label: spec.label, color: '#f06a8a', fmt: spec.fmt, fill: 'rgba(240,106,138,0.08)' }], bands, markers };
  }, [data]);
  if (error) return html`<${ErrorBox} error=${error} what=${`History of ${service}`} />`;
  if (!chart) return html`<div class="spark-placeholder muted small">loading…</div>`;
  return html`<${Chart} data=${chart.data} series=${chart.series} bands=${chart.bands} markers=${chart.markers}
    height=${110} yFmt=${spec.fmt} yMin=${0} sync="incident" legend=${false} testid="symptom-chart" />`;
}

function Symptoms({ inc, w }) {
  if (!inc.symptoms.length) {
    return html`<${Section} title="Symptoms" testid="symptoms"><div class="muted">None: this incident was opened by hand for a window.</div></${Section}>`;
  }
  return html`<${Section} title="What degraded" testid="symptoms" right=${html`<span class="muted small">blue band: baseline · red band: analysed window · red line: onset</span>`}>
    <div class="symptoms">
      ${inc.symptoms.map((s) => html`<div class="symptom" data-testid="symptom" data-service=${s.service} data-objective=${s.objective}>
        <div class="symptom-text">
          <div class="symptom-what">
            <a href=${entityHref(`service:${s.service}`, { from: iso(w.from), to: iso(w.to) })}><strong>${s.service}</strong></a>
            ${s.operation ? html` <span class="mono">${s.operation}</span>` : null}
            <span class=${`tag obj-${s.objective}`}>${s.objective.replace('_', ' ')}</span>
            <span class="tag">${s.detector === 'baseline' ? 'off its baseline' : 'burn rate'}</span>
          </div>
          ${s.detector === 'burn_rate' || s.long_burn_rate !== undefined ? html`<div class="symptom-fig">
            burning <strong>${(s.long_burn_rate ?? 0).toFixed(1)}×</strong> over ${Math.round(s.windows[0] / 6e10)} min and${' '}
            <strong>${(s.short_burn_rate ?? 0).toFixed(1)}×</strong> over ${Math.round(s.windows[1] / 6e10)} min${' '}
            ${s.threshold ? html`<span class="muted">(pages at ${s.threshold}×)</span>` : null}
            ${s.bad_ratio !== undefined ? html` · <strong>${fmtPct(s.bad_ratio)}</strong> of requests bad` : null}
          </div>` : null}
          ${s.deviation ? html`<div class="symptom-fig">
            ${s.deviation.statistic === 'requests' ? `${fmtNum(s.deviation.current)} requests where ${fmtNum(s.deviation.expected)} were expected`
              : `p90 ${fmtSecs(s.deviation.current)} where ${fmtSecs(s.deviation.expected)} was expected`}${' '}
            <span class="muted">(robust z ${s.deviation.z.toFixed(1)}${s.deviation.seasonal_factor !== 1 ? `, seasonal ×${s.deviation.seasonal_factor.toFixed(2)}` : ''})</span>
          </div>` : null}
          <div class="muted small">last seen firing <${Time} t=${s.at_unix_nano} /></div>
        </div>
        <div class="symptom-chart"><${SymptomChart} service=${s.service} objective=${s.objective} w=${w} inc=${inc} /></div>
      </div>`)}
    </div>
  </${Section}>`;
}

// ---------------------------------------------------------------------------------------------
// Causes

const SIGNAL_ICON = { traces: 'T', logs: 'L', metrics: 'M', changes: 'C' };

function fmtFigure(feature, v) {
  if (v === null || v === undefined) return '—';
  if (/ratio|share|utilization/.test(feature)) return fmtPct(v);
  if (/_p50|_p90|_p99|duration|self_time|gap/.test(feature)) return fmtSecs(v);
  return fmtNum(v, 2);
}

function onsetText(o) {
  const s = o.seconds_from_onset;
  const a = Math.abs(s);
  const d = a >= 90 ? `${(a / 60).toFixed(1)} min` : `${Math.round(a)} s`;
  if (a < 1) return 'at the symptoms’ onset';
  return s < 0 ? `${d} before the symptoms` : `${d} after the symptoms`;
}

function ChangeBlock({ change, rolledBack }) {
  return html`<div class="change-block" data-testid="cause-change">
    <div class="change-title"><span class=${`tag chg-${change.kind}`}>${change.kind.replace('_', ' ')}</span>
      ${change.service ? html`<a href=${entityHref(`service:${change.service}`)}>${change.service}</a>` : null}
      ${change.version_from || change.version_to ? html`<span class="mono version">${change.version_from || '?'} → ${change.version_to || '?'}</span>` : null}
      <span class="muted">at <${Time} t=${change.time_unix_nano} /></span>
    </div>
    <div class="change-meta">
      ${change.author ? html`<span><span class="muted">by</span> ${change.author}</span>` : null}
      ${change.commit ? html`<span><span class="muted">commit</span> <code>${change.commit}</code></span>` : null}
      <span><span class="muted">source</span> ${change.source}</span>
      ${change.flag ? html`<span><span class="muted">flag</span> <code>${change.flag}</code></span>` : null}
      ${change.reason ? html`<span><span class="muted">reason</span> ${change.reason}</span>` : null}
    </div>
    ${change.summary ? html`<div class="change-summary">${change.summary}</div>` : null}
    ${rolledBack ? html`<div class="banner ok small">Rolled back: ${rolledBack.summary} (<${Time} t=${rolledBack.time_unix_nano} />, ${rolledBack.version_from || '?'} → ${rolledBack.version_to || '?'})</div>` : null}
  </div>`;
}

function CauseCard({ cause, incident, judged, onJudged, expanded, onToggle }) {
  const id = `${cause.entity.kind}:${cause.entity.name}`;
  const target = causeTarget(cause);
  const [comment, setComment] = useState('');
  const name = useName();
  const [busy, setBusy] = useState(null);
  const [error, setError] = useState(null);
  const verdict = judged;
  const judge = async (v) => {
    setBusy(v);
    setError(null);
    try {
      const by = name.trim();
      const res = await post(`/api/v1/incidents/${encodeURIComponent(incident.id)}/causes/${encodeURIComponent(id)}/verdict`, { verdict: v, comment, by });
      setComment('');
      onJudged(id, res);
    } catch (e) {
      setError(e);
    } finally {
      setBusy(null);
    }
  };
  const remediation = cause.remediation || [];
  return html`<article class=${`cause ${expanded ? 'open' : ''} ${verdict ? `judged-${verdict.verdict}` : ''}`} data-testid="cause"
      data-entity=${id} data-rank=${cause.rank} data-kind=${cause.entity.kind} data-service=${target.service || undefined}>
    <header class="cause-head" onClick=${(e) => { if (!e.target.closest('a,button,input,textarea')) onToggle(); }}>
      <span class="rank">${cause.rank}</span>
      <${KindTag} kind=${cause.entity.kind} />
      <span class="cause-name" title=${id}>${target.link ? html`<a href=${target.link}>${causeName(cause.entity.kind, cause.entity.name)}</a>` : causeName(cause.entity.kind, cause.entity.name)}</span>
      <${ProbBar} p=${cause.probability} />
      <span class="muted small" title="the model's score w·x (log-odds)">score ${cause.score.toFixed(2)}</span>
      ${cause.onset ? html`<span class=${`tag ${cause.onset.seconds_from_onset < 0 ? 'before' : ''}`} title=${cause.onset.summary}>moved ${onsetText(cause.onset)}</span>` : null}
      ${cause.change && cause.change.version_to ? html`<span class="tag chg">${cause.change.kind.replace('_', ' ')} ${cause.change.version_from || ''}→${cause.change.version_to}</span>` : null}
      <span class="spacer"></span>
      ${verdict ? html`<span class=${`verdict-badge ${verdict.verdict}`} title=${`${verdict.by}${verdict.comment ? `: ${verdict.comment}` : ''}`}><span data-testid="verdict">${verdict.verdict}</span><span class="muted"> by ${verdict.by}</span></span>` : null}
      <button class="btn small ghost" type="button" onClick=${onToggle} aria-expanded=${expanded ? 'true' : 'false'}>${expanded ? 'less' : 'details'}</button>
    </header>
    ${expanded ? html`<div class="cause-body">
      ${cause.change ? html`<${ChangeBlock} change=${cause.change} rolledBack=${cause.rolled_back_by} />` : null}
      ${cause.onset ? html`<div class="onset-line"><span class="label">onset</span>${cause.onset.summary} <span class="muted">(<${Time} t=${cause.onset.at_unix_nano} />, ${onsetText(cause.onset)})</span></div>` : null}
      <div class="evidence">
        <h4>Evidence</h4>
        ${cause.evidence.length ? html`<table class="table compact">
          <thead><tr><th></th><th>what</th><th class="num">baseline</th><th class="num">now</th><th class="num">score</th></tr></thead>
          <tbody>${cause.evidence.map((e) => html`<tr data-testid="evidence">
            <td><span class=${`sig sig-${e.signal}`} title=${e.signal}>${SIGNAL_ICON[e.signal] || '?'}</span></td>
            <td><div>${e.summary}</div><div class="muted small mono">${e.feature}</div></td>
            <td class="num">${fmtFigure(e.feature, e.baseline)}</td>
            <td class="num">${fmtFigure(e.feature, e.current)}</td>
            <td class="num">${e.score.toFixed(2)}</td>
          </tr>`)}</tbody></table>` : html`<div class="muted">none</div>`}
      </div>
      ${cause.counter_evidence && cause.counter_evidence.length ? html`<div class="counter" data-testid="counter-evidence">
        <h4>Counter-evidence</h4>
        <ul>${cause.counter_evidence.map((s) => html`<li>${s}</li>`)}</ul>
      </div>` : null}
      ${cause.hypotheses && cause.hypotheses.length ? html`<div class="hypotheses">
        <h4>Hypotheses</h4>
        <ul>${cause.hypotheses.map((hy) => html`<li class=${hy.weight < 0 ? 'against' : ''}>${hy.sentence} <span class="muted small">(${hy.rule}, weight ${hy.weight > 0 ? '+' : ''}${hy.weight})</span></li>`)}</ul>
      </div>` : null}
      ${remediation.length ? html`<div class="remediation">
        <h4>Suggested remediation <span class="muted small">(loupe never runs these)</span></h4>
        ${remediation.map((r) => html`<div class="remedy">
          <div><strong>${r.action}</strong></div>
          ${r.command ? html`<div class="cmd"><pre data-testid="remediation-command">${r.command}</pre><${CopyButton} text=${r.command} /></div>` : null}
          <div class="muted small">${r.why}</div>
        </div>`)}
      </div>` : null}
      <div class="verdict-form">
        <h4>Your verdict</h4>
        <textarea data-testid="verdict-comment" rows="2" placeholder="Why? (e.g. confirmed by the rollback, or by design)" value=${comment}
          onInput=${(e) => setComment(e.currentTarget.value)}></textarea>
        <div class="verdict-buttons">
          <button class="btn accept" type="button" data-testid="accept" disabled=${!!busy} onClick=${() => judge('accepted')}>${busy === 'accepted' ? 'Saving…' : 'Accept: this is the cause'}</button>
          <button class="btn reject" type="button" data-testid="reject" disabled=${!!busy} onClick=${() => judge('rejected')}>${busy === 'rejected' ? 'Saving…' : 'Reject'}</button>
          <span class="muted small">signed as <strong>${name || '(set your name at the top right)'}</strong>; a rejected cause drops below the others</span>
        </div>
        <${ErrorBox} error=${error} what="The verdict was not recorded" />
        ${(incident.verdicts || []).filter((v) => v.cause === id).map((v) => html`<div class="verdict-row">
          <span class=${`verdict-badge ${v.verdict}`}>${v.verdict}</span> by <strong>${v.by}</strong> <${Time} t=${v.at_unix_nano} />
          ${v.comment ? html`: <q>${v.comment}</q>` : null}</div>`)}
      </div>
    </div>` : null}
  </article>`;
}

function Causes({ inc, reload }) {
  const a = inc.analysis;
  const [toggled, setToggled] = useState({});
  const [local, setLocal] = useState({});
  if (!a) return null;
  const latest = {};
  for (const v of inc.verdicts || []) latest[v.cause] = v;
  for (const [k, v] of Object.entries(local)) if (!latest[k] || latest[k].at_unix_nano <= v.at_unix_nano) latest[k] = v;
  const onJudged = (id, v) => {
    setLocal((l) => ({ ...l, [id]: v }));
    setToggled((t) => ({ ...t, [id]: true }));
    reload();
  };
  return html`<${Section} title=${`Ranked causes (${a.causes.length})`} testid="causes"
      right=${html`<span class="muted small">probability: softmax of the model's scores over every candidate</span>`}>
    ${a.causes.length ? html`<div class="causes">
      ${a.causes.map((c) => {
        const id = `${c.entity.kind}:${c.entity.name}`;
        const expanded = toggled[id] !== undefined ? toggled[id] : c.rank <= 3;
        return html`<${CauseCard} key=${id} cause=${c} incident=${inc} judged=${latest[id]} onJudged=${onJudged}
          expanded=${expanded} onToggle=${() => setToggled((t) => ({ ...t, [id]: !expanded }))} />`;
      })}
    </div>` : html`<${Empty}>No candidate causes.</${Empty}>`}
  </${Section}>`;
}

// ---------------------------------------------------------------------------------------------
// Timeline: incident.timeline merged with the changes of the range, on one time axis.

const LANES = [
  ['symptom', 'symptoms', '#f06a8a'],
  ['cause', 'cause onsets', '#f2d25b'],
  ['change', 'changes', '#4e9af1'],
  ['k8s', 'k8s events', '#ff8c5a'],
  ['verdict', 'verdicts & ranking', '#c77dff'],
  ['lifecycle', 'incident', '#8b97a8'],
];

function classify(event) {
  if (/ (accepted|rejected) \S+$/.test(event)) return 'verdict';
  if (/^(suppressed|raised)[: ]/.test(event) || /re-?rank|top cause/.test(event)) return 'verdict';
  if (/burning its budget|off its baseline/.test(event)) return 'symptom';
  return 'lifecycle';
}

function Timeline({ inc, w }) {
  const url = `/api/v1/changes?${new URLSearchParams({ from: iso(w.from), to: iso(w.to) })}`;
  const { data, error } = useApi(url);
  const items = useMemo(() => {
    const out = [];
    for (const t of inc.timeline) out.push({ ms: toMs(t.at_unix_nano), lane: classify(t.event), text: t.event });
    out.push({ ms: w.onset, lane: 'lifecycle', text: 'onset: the degradation began' });
    if (inc.symptom_onset_unix_nano) out.push({ ms: toMs(inc.symptom_onset_unix_nano), lane: 'symptom', text: 'the symptoms’ signals left their baselines' });
    out.push({ ms: toMs(inc.opened_unix_nano), lane: 'lifecycle', text: 'loupe opened the incident' });
    const a = inc.analysis;
    if (a) {
      for (const c of a.causes.slice(0, 5)) {
        if (c.onset) out.push({ ms: toMs(c.onset.at_unix_nano), lane: 'cause', text: `#${c.rank} ${causeName(c.entity.kind, c.entity.name)}: ${c.onset.summary}` });
      }
    }
    for (const c of (data && data.changes) || []) {
      out.push({
        ms: toMs(c.time_unix_nano),
        lane: c.kind === 'kubernetes_event' ? 'k8s' : 'change',
        text: c.summary || `${c.kind} of ${c.service}`,
        change: c,
      });
    }
    out.sort((x, y) => x.ms - y.ms);
    return out;
  }, [inc, data]);
  const lo0 = Math.min(w.base[0], ...items.map((i) => i.ms));
  const hi0 = Math.max(w.win[1], ...items.map((i) => i.ms));
  const lo = lo0 - (hi0 - lo0) * 0.02;
  const hi = hi0 + (hi0 - lo0) * 0.02;
  const span = Math.max(1, hi - lo);
  const pos = (ms) => `${(((ms - lo) / span) * 100).toFixed(3)}%`;
  const tickN = 6;
  const ticks = Array.from({ length: tickN + 1 }, (_, i) => lo + (span * i) / tickN);
  const lanes = LANES.filter(([k]) => items.some((i) => i.lane === k));
  return html`<${Section} title="Timeline" testid="timeline" right=${html`<span class="muted small">hover a mark for its text; the list below has them all</span>`}>
    <${ErrorBox} error=${error} what="Changes of the incident's range" />
    <div class="tl">
      <div class="tl-lanes">
        ${lanes.map(([k, label, color]) => html`<div class="tl-lane" data-lane=${k}>
          <div class="tl-label" style=${`color:${color}`}>${label}</div>
          <div class="tl-track">
            ${w.base ? html`<div class="tl-band base" style=${`left:${pos(w.base[0])};width:calc(${pos(w.base[1])} - ${pos(w.base[0])})`}></div>` : null}
            <div class="tl-band win" style=${`left:${pos(w.win[0])};width:calc(${pos(w.win[1])} - ${pos(w.win[0])})`}></div>
            ${items.filter((i) => i.lane === k).map((i) => html`<span class="tl-dot" style=${`left:${pos(i.ms)};background:${color}`}
              title=${`${new Date(i.ms).toLocaleString()} — ${i.text}`}></span>`)}
          </div>
        </div>`)}
        <div class="tl-lane axis"><div class="tl-label"></div><div class="tl-track">
          ${ticks.map((t, i) => html`<span class="tl-tick" style=${`left:${pos(t)};transform:translateX(${i === 0 ? '0' : i === ticks.length - 1 ? '-100%' : '-50%'})`}><${Time} ms=${t} short=${true} /></span>`)}
          <span class="tl-onset" style=${`left:${pos(w.onset)}`} title="onset"></span>
        </div></div>
      </div>
      <table class="table compact tl-list">
        <tbody>${items.map((i) => html`<tr data-testid="timeline-item" data-lane=${i.lane}>
          <td class="nowrap"><${Time} ms=${i.ms} /></td>
          <td><span class="tl-chip" style=${`background:${(LANES.find((l) => l[0] === i.lane) || [])[2]}`}></span>${(LANES.find((l) => l[0] === i.lane) || [])[1]}</td>
          <td>${i.text}${i.change && i.change.version_to ? html` <span class="mono muted">${i.change.version_from || '?'} → ${i.change.version_to}</span>` : null}
            ${i.change && i.change.author ? html` <span class="muted">by ${i.change.author}</span>` : null}</td>
        </tr>`)}</tbody>
      </table>
    </div>
  </${Section}>`;
}

// ---------------------------------------------------------------------------------------------
// The focused map: the services on the paths from the symptoms to the top causes.

const MAP_KINDS = new Set(['service', 'database', 'messaging_destination', 'external', 'node']);

function focusGraph(graph, keep) {
  // Kubernetes nodes only when one is a top cause (their pods are not drawn here).
  const nodes = graph.nodes.filter((n) => MAP_KINDS.has(n.kind) && (n.kind !== 'node' || keep.has(n.id)));
  const ids = new Set(nodes.map((n) => n.id));
  const edges = graph.edges.filter((e) => ids.has(e.source) && ids.has(e.target) && ['calls', 'queries', 'publishes', 'consumes', 'runs_on'].includes(e.kind));
  if (nodes.length <= 24) return { nodes, edges };
  // Undirected shortest paths between every pair of kept entities.
  const adj = new Map();
  for (const e of edges) {
    if (e.kind === 'runs_on') continue;
    if (!adj.has(e.source)) adj.set(e.source, []);
    if (!adj.has(e.target)) adj.set(e.target, []);
    adj.get(e.source).push(e.target);
    adj.get(e.target).push(e.source);
  }
  const chosen = new Set([...keep].filter((k) => ids.has(k)));
  const seeds = [...chosen];
  for (const s of seeds) {
    const prev = new Map([[s, null]]);
    const queue = [s];
    while (queue.length) {
      const x = queue.shift();
      for (const y of adj.get(x) || []) if (!prev.has(y)) { prev.set(y, x); queue.push(y); }
    }
    for (const t of seeds) {
      let c = t;
      while (c !== null && prev.has(c)) { chosen.add(c); c = prev.get(c); }
    }
  }
  // And the direct neighbours of the causes.
  for (const k of keep) for (const y of adj.get(k) || []) chosen.add(y);
  if (chosen.size === 0) return { nodes, edges };
  return { nodes: nodes.filter((n) => chosen.has(n.id)), edges: edges.filter((e) => chosen.has(e.source) && chosen.has(e.target)) };
}

function IncidentMap({ inc, w }) {
  const winMs = Math.min(Math.max(w.win[1] - w.win[0], MIN), 30 * MIN);
  const at = isoSec(w.win[1]);
  const url = `/api/v1/graph?${new URLSearchParams({ at, window: durationParam(winMs) })}`;
  const { data, error, loading } = useApi(url);
  const [selected, setSelected] = useState(null);
  const { causes, causeEdges, symptoms, keep } = useMemo(() => {
    const causesM = new Map();
    const edgesM = new Map();
    const keepS = new Set();
    for (const c of ((inc.analysis && inc.analysis.causes) || []).slice(0, 5)) {
      const t = causeTarget(c);
      if (c.entity.kind === 'node' && c.rank > 3) continue;
      if (t.nodeId && !causesM.has(t.nodeId)) { causesM.set(t.nodeId, c.rank); keepS.add(t.nodeId); }
      if (t.edgeKey && !edgesM.has(t.edgeKey)) { edgesM.set(t.edgeKey, c.rank); for (const p of t.edgeKey.split('>')) keepS.add(p); }
    }
    const sym = new Set(inc.symptoms.map((s) => `service:${s.service}`));
    for (const s of sym) keepS.add(s);
    return { causes: causesM, causeEdges: edgesM, symptoms: sym, keep: keepS };
  }, [inc]);
  const g = useMemo(() => (data ? focusGraph(data, keep) : null), [data, keep]);
  return html`<${Section} title="The map as of the incident" testid="incident-map"
      right=${html`<a class="btn small" href=${href('/map', { at, window: durationParam(winMs) })}>open the full map</a>`}>
    <${ErrorBox} error=${error} what="The graph" />
    ${g ? html`<${ServiceMap} nodes=${g.nodes} edges=${g.edges} windowSecs=${winMs / 1000} causes=${causes} causeEdges=${causeEdges}
        symptoms=${symptoms} height=${440} loading=${loading} selected=${selected && selected.id}
        onSelect=${setSelected} emptyText="No entities in the analysed window." />
      <div class="map-foot"><${MapLegend} /><span class="muted small">numbered: ranked causes · red ring: symptom</span></div>
      ${selected ? html`<div class="map-pick">${selected.name}: <a href=${entityHref(selected.id, { at })}>open entity</a> ·${" "}
        <a href=${href('/map', { at, window: durationParam(winMs), service: selected.kind === 'service' ? selected.name : undefined, depth: 1 })}>focus on the map</a></div>` : null}`
      : (!error ? html`<${Loading} what="Loading the graph" />` : null)}
  </${Section}>`;
}

// ---------------------------------------------------------------------------------------------
// Example traces through a cause.

function ExampleTraces({ inc, w }) {
  const causes = ((inc.analysis && inc.analysis.causes) || []).map((c) => ({ c, t: causeTarget(c) })).filter((x) => x.t.service);
  const fallback = inc.symptoms[0] && inc.symptoms[0].service;
  const options = causes.length ? causes.map((x) => ({ service: x.t.service, label: `#${x.c.rank} ${causeName(x.c.entity.kind, x.c.entity.name)}` })) : [];
  if (fallback && !options.some((o) => o.service === fallback)) options.push({ service: fallback, label: `symptom ${fallback}` });
  const [pick, setPick] = useState(0);
  const opt = options[Math.min(pick, options.length - 1)];
  const range = { from: iso(w.win[0]), to: iso(w.win[1]) };
  const errUrl = opt ? `/api/v1/traces?${new URLSearchParams({ service: opt.service, ...range, status: 'error', limit: '5' })}` : null;
  const allUrl = opt ? `/api/v1/traces?${new URLSearchParams({ service: opt.service, ...range, sort: 'slowest', limit: '5' })}` : null;
  const errs = useApi(errUrl);
  const all = useApi(allUrl);
  const slow = all.data ? all.data.traces : [];
  const row = (t) => html`<li><a data-testid="example-trace" href=${traceHref(t.trace_id)} class="trace-link">
    <span class="mono">${t.trace_id.slice(0, 12)}…</span>
    <span>${t.root_service} <span class="muted">${t.root_name}</span></span>
    <span class="num">${fmtDur(t.duration_nano / 1e6)}</span>
    <span class="muted small">${t.span_count} spans${t.error_count ? html`, <span class="err-text">${t.error_count} errors</span>` : ''}</span>
    <span class="muted small"><${Time} t=${t.start_time_unix_nano} /></span>
  </a></li>`;
  return html`<${Section} title="Example traces" testid="example-traces"
      right=${options.length > 1 ? html`<label class="small">through <select value=${pick} onChange=${(e) => setPick(Number(e.currentTarget.value))}>
        ${options.map((o, i) => html`<option value=${i}>${o.label}</option>`)}</select></label>` : null}>
    ${!opt ? html`<div class="muted">No service to look for traces of.</div>` : html`
      <div class="muted small">Traces with a span of <strong>${opt.service}</strong> in the analysed window.${" "}
        <a href=${href('/traces', { service: opt.service, ...range })}>search more</a></div>
      <h4>Failing</h4>
      <${ErrorBox} error=${errs.error} what="Failing traces" />
      ${errs.data ? (errs.data.traces.length ? html`<ul class="traces-mini">${errs.data.traces.map(row)}</ul>` : html`<div class="muted small">none with an error span of ${opt.service}</div>`) : (!errs.error ? html`<${Loading} />` : null)}
      <h4>Slowest</h4>
      <${ErrorBox} error=${all.error} what="Traces" />
      ${all.data ? (slow.length ? html`<ul class="traces-mini">${slow.map(row)}</ul>` : html`<div class="muted small">none</div>`) : (!all.error ? html`<${Loading} />` : null)}`}
  </${Section}>`;
}

// ---------------------------------------------------------------------------------------------

export function IncidentPage({ params }) {
  const id = params.id;
  const { data: inc, error, reload } = useApi(`/api/v1/incidents/${encodeURIComponent(id)}`, { poll: 10000 });
  useTitle(inc ? `#${inc.id} ${inc.title}` : `Incident ${id}`);
  useTick(30000);
  // The range only moves with the analysis (not with every poll), so charts are not refetched needlessly.
  const wKey = inc ? `${inc.onset_unix_nano}|${inc.analysis ? inc.analysis.window.join(',') : ''}|${inc.resolved_unix_nano || ''}|${inc.symptom_onset_unix_nano || ''}` : '';
  const w = useMemo(() => (inc ? windowOf(inc) : null), [wKey]);
  return html`<div class="page incident">
    <div class="crumbs"><a href="/incidents">Incidents</a> / #${id}</div>
    <${ErrorBox} error=${error} what=${`Incident ${id}`} />
    ${!inc && !error ? html`<${Loading} what="Loading the incident" />` : null}
    ${inc ? html`
      <${Header} inc=${inc} w=${w} />
      <${Symptoms} inc=${inc} w=${w} />
      <${Causes} inc=${inc} reload=${reload} />
      <${Timeline} inc=${inc} w=${w} />
      <${IncidentMap} inc=${inc} w=${w} />
      <${ExampleTraces} inc=${inc} w=${w} />` : null}
  </div>`;
}
