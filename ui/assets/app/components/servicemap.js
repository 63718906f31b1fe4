// The service map: a layered (dagre, left → right) layout drawn by hand as SVG. Each node is a
// <g data-testid=node data-id=… data-kind=…>, each edge a <g data-testid=edge …>, so tests and
// people can click them. Pan by dragging, zoom with the wheel or the buttons.
import * as dagre from '/assets/vendor/dagre-3.1.4.mjs';
import { html, useState, useMemo, useRef, useEffect, fmtPct, fmtSecs, fmtNum } from '../lib.js';
import { kindLabel } from './common.js';

export const MAX_NODES = 300;

const KIND_STROKE = {
  service: '#4e9af1', database: '#3cc7a0', messaging_destination: '#c77dff', external: '#9aa6b8',
  pod: '#7fd16b', node: '#f2a93b', operation: '#56b4e9', service_instance: '#8f9dff',
  workload: '#d9d35b', namespace: '#8b97a8', change: '#4e9af1', event: '#ff8c5a',
};

export function rateLabel(calls, windowSecs) {
  if (calls === undefined || calls === null || !windowSecs) return null;
  const r = calls / windowSecs;
  return r >= 10 ? `${r.toFixed(0)}/s` : r >= 0.1 ? `${r.toFixed(1)}/s` : `${fmtNum(calls)} calls`;
}

function errLevel(ratio) {
  if (ratio === undefined || ratio === null) return '';
  if (ratio >= 0.05) return 'err-hi';
  if (ratio >= 0.01) return 'err-mid';
  return '';
}

/** A short name to draw: pods and instances without their uid, workloads without their namespace. */
export function shortName(n) {
  let s = n.name;
  if (['pod', 'service_instance'].includes(n.kind)) s = s.split('@')[0];
  if (['pod', 'workload'].includes(n.kind)) s = s.split('/').pop();
  return s;
}

function nodeLines(n, windowSecs) {
  const short = shortName(n);
  const name = short.length > 34 ? `${short.slice(0, 32)}…` : short;
  const stats = [];
  if (n.calls !== undefined && n.calls > 0) {
    stats.push(rateLabel(n.calls, windowSecs));
    if (n.error_ratio > 0) stats.push(`${fmtPct(n.error_ratio)} err`);
    if (n.duration_p90_seconds !== null && n.duration_p90_seconds !== undefined) stats.push(`p90 ${fmtSecs(n.duration_p90_seconds)}`);
  }
  return { name, stats: stats.join(' · ') };
}

function nodeSize(n, lines) {
  const small = !['service', 'database', 'messaging_destination', 'external'].includes(n.kind);
  const w = Math.max(small ? 90 : 120, Math.max(lines.name.length * 7.2, lines.stats.length * 6.2) + 28);
  const h = lines.stats ? 44 : (small ? 28 : 34);
  return { width: Math.round(w), height: h };
}

/** Lays out nodes and edges; {nodes:[{…, x, y, width, height}], edges:[{…, points}], width, height}. */
function layout(nodes, edges, windowSecs) {
  const g = new dagre.graphlib.Graph({ multigraph: true });
  g.setGraph({ rankdir: 'LR', nodesep: 16, ranksep: 56, edgesep: 10, marginx: 24, marginy: 24 });
  g.setDefaultEdgeLabel(() => ({}));
  const laid = new Map();
  for (const n of nodes) {
    const lines = nodeLines(n, windowSecs);
    const size = nodeSize(n, lines);
    laid.set(n.id, { ...n, lines, ...size });
    g.setNode(n.id, { ...size });
  }
  const keptEdges = edges.filter((e) => laid.has(e.source) && laid.has(e.target) && e.source !== e.target);
  keptEdges.forEach((e, i) => {
    // Structural relations weigh less in the layering than calls; labelled edges get room for
    // their label, which dagre places.
    const weight = e.kind === 'calls' ? 3 : 1;
    const label = edgeLabel(e, windowSecs);
    g.setEdge(e.source, e.target, label ? { weight, minlen: 1, width: label.length * 5.6 + 6, height: 12, labelpos: 'c' } : { weight, minlen: 1 }, `e${i}`);
  });
  dagre.layout(g);
  const outNodes = [...laid.values()].map((n) => { const p = g.node(n.id); return { ...n, x: p.x, y: p.y }; });
  const outEdges = keptEdges.map((e, i) => {
    const d = g.edge({ v: e.source, w: e.target, name: `e${i}` });
    return { ...e, points: d.points || [], label: edgeLabel(e, windowSecs), lx: d.x, ly: d.y };
  });
  const gr = g.graph();
  return { nodes: outNodes, edges: outEdges, width: gr.width || 200, height: gr.height || 100 };
}

function edgeLabel(e, windowSecs) {
  if (e.kind !== 'calls' || !e.calls) return '';
  return [rateLabel(e.calls, windowSecs), e.error_ratio > 0 ? fmtPct(e.error_ratio) : null,
    e.duration_p90_seconds != null ? `p90 ${fmtSecs(e.duration_p90_seconds)}` : null].filter(Boolean).join(' · ');
}

function edgePath(points) {
  if (!points.length) return '';
  if (points.length < 3) return `M${points.map((p) => `${p.x},${p.y}`).join('L')}`;
  // A smooth curve through dagre's control points.
  let d = `M${points[0].x},${points[0].y}`;
  for (let i = 1; i < points.length - 1; i += 1) {
    const p = points[i];
    const q = points[i + 1];
    const mx = (p.x + q.x) / 2;
    const my = (p.y + q.y) / 2;
    d += ` Q${p.x},${p.y} ${i === points.length - 2 ? `${q.x},${q.y}` : `${mx},${my}`}`;
  }
  return d;
}

function Shape({ n, cls }) {
  const w = n.width;
  const h = n.height;
  const x = -w / 2;
  const y = -h / 2;
  const stroke = KIND_STROKE[n.kind] || '#8b97a8';
  switch (n.kind) {
    case 'database': {
      const ry = 6;
      return html`<g class=${`shape ${cls}`} style=${`--kind:${stroke}`}>
        <path d=${`M${x},${y + ry} A${w / 2},${ry} 0 0 1 ${x + w},${y + ry} L${x + w},${y + h - ry} A${w / 2},${ry} 0 0 1 ${x},${y + h - ry} Z`} />
        <path class="shape-line" d=${`M${x},${y + ry} A${w / 2},${ry} 0 0 0 ${x + w},${y + ry}`} />
      </g>`;
    }
    case 'messaging_destination': {
      const k = 10;
      return html`<g class=${`shape ${cls}`} style=${`--kind:${stroke}`}>
        <polygon points=${`${x + k},${y} ${x + w - k},${y} ${x + w},${0} ${x + w - k},${y + h} ${x + k},${y + h} ${x},${0}`} />
      </g>`;
    }
    case 'external':
      return html`<g class=${`shape dashed ${cls}`} style=${`--kind:${stroke}`}><rect x=${x} y=${y} width=${w} height=${h} rx=${h / 2} /></g>`;
    case 'pod':
      return html`<g class=${`shape ${cls}`} style=${`--kind:${stroke}`}><rect x=${x} y=${y} width=${w} height=${h} rx="2" />
        <rect class="shape-strip" x=${x} y=${y} width="4" height=${h} /></g>`;
    case 'node':
      return html`<g class=${`shape ${cls}`} style=${`--kind:${stroke}`}><rect x=${x} y=${y} width=${w} height=${h} rx="1" />
        <rect class="shape-line" x=${x + 3} y=${y + 3} width=${w - 6} height=${h - 6} rx="1" /></g>`;
    case 'service':
      return html`<g class=${`shape ${cls}`} style=${`--kind:${stroke}`}><rect x=${x} y=${y} width=${w} height=${h} rx="8" /></g>`;
    case 'change':
    case 'event':
      return html`<g class=${`shape ${cls}`} style=${`--kind:${stroke}`}><polygon points=${`0,${y - 4} ${x + w},0 0,${y + h + 4} ${x},0`} /></g>`;
    default:
      return html`<g class=${`shape dotted ${cls}`} style=${`--kind:${stroke}`}><rect x=${x} y=${y} width=${w} height=${h} rx="4" /></g>`;
  }
}

/**
 * props: nodes, edges (graph API shapes, optionally with `diff`), windowSecs (for rates),
 * causes (Map id → rank), symptoms (Set of ids), anomalous (Set of node ids and `src>dst` keys),
 * causeEdges (Map `src>dst` → rank), selected, onSelect(node|null), height, loading, testid.
 */
export function ServiceMap({ nodes, edges, windowSecs, causes, symptoms, anomalous, causeEdges, selected, onSelect, height = 560, loading, emptyText }) {
  const box = useRef(null);
  const [boxW, setBoxW] = useState(1000);
  useEffect(() => {
    const el = box.current;
    if (!el) return undefined;
    setBoxW(el.clientWidth || 1000);
    const ro = new ResizeObserver(() => setBoxW(el.clientWidth || 1000));
    ro.observe(el);
    return () => ro.disconnect();
  }, []);

  const tooMany = nodes.length > MAX_NODES;
  const laid = useMemo(() => (tooMany || nodes.length === 0 ? null : layout(nodes, edges, windowSecs)), [nodes, edges, windowSecs, tooMany]);

  // The initial view: the whole graph, never magnified past 1.25×.
  const fit = useMemo(() => {
    if (!laid) return { x: 0, y: 0, w: 100, h: 100 };
    const minW = boxW / 1.25;
    const minH = height / 1.25;
    const w = Math.max(laid.width, minW, (laid.height * boxW) / height);
    const h = Math.max(laid.height, minH, (w * height) / boxW);
    return { x: (laid.width - w) / 2, y: (laid.height - h) / 2, w, h };
  }, [laid, boxW, height]);
  const [view, setView] = useState(null);
  useEffect(() => setView(null), [laid]);
  const vb = view || fit;

  const drag = useRef(null);
  const svgRef = useRef(null);
  const toGraph = (clientX, clientY) => {
    const r = svgRef.current.getBoundingClientRect();
    const s = Math.max(vb.w / r.width, vb.h / r.height);
    const ox = (r.width * s - vb.w) / 2;
    const oy = (r.height * s - vb.h) / 2;
    return { x: vb.x - ox + (clientX - r.left) * s, y: vb.y - oy + (clientY - r.top) * s, s };
  };
  const zoom = (factor, cx, cy) => {
    const c = cx === undefined ? { x: vb.x + vb.w / 2, y: vb.y + vb.h / 2 } : toGraph(cx, cy);
    const w = Math.min(Math.max(vb.w * factor, 80), Math.max(fit.w * 4, 400));
    const h = (w / vb.w) * vb.h;
    setView({ x: c.x - ((c.x - vb.x) * w) / vb.w, y: c.y - ((c.y - vb.y) * h) / vb.h, w, h });
  };
  const onWheel = (e) => {
    if (!e.ctrlKey && !e.metaKey && !e.altKey && !drag.current) {
      // Plain wheel zooms only when the map has focus (clicked), so the page still scrolls.
      if (document.activeElement !== svgRef.current) return;
    }
    e.preventDefault();
    zoom(e.deltaY > 0 ? 1.15 : 1 / 1.15, e.clientX, e.clientY);
  };
  const onDown = (e) => {
    if (e.button !== 0 || e.target.closest('[data-testid=node]')) return;
    drag.current = { x: e.clientX, y: e.clientY, vb, moved: false };
  };
  const onMove = (e) => {
    const d = drag.current;
    if (!d) return;
    const r = svgRef.current.getBoundingClientRect();
    const s = Math.max(d.vb.w / r.width, d.vb.h / r.height);
    const dx = (e.clientX - d.x) * s;
    const dy = (e.clientY - d.y) * s;
    if (Math.abs(e.clientX - d.x) + Math.abs(e.clientY - d.y) > 3) d.moved = true;
    if (d.moved) setView({ ...d.vb, x: d.vb.x - dx, y: d.vb.y - dy });
  };
  const onUp = (e) => {
    const d = drag.current;
    drag.current = null;
    if (d && !d.moved && onSelect && !e.target.closest('[data-testid=node]')) onSelect(null);
  };

  if (tooMany) {
    return html`<div class="map-box" ref=${box}><div class="empty" data-testid="map-too-large">
      ${nodes.length} entities are too many to draw: pick a focus service (and a depth) or fewer kinds.</div>
      <svg data-testid="map" data-ready="true" width="0" height="0"></svg></div>`;
  }
  if (!laid) {
    return html`<div class="map-box" ref=${box}><div class="empty">${loading ? 'Loading…' : (emptyText || 'Nothing in this window.')}</div>
      <svg data-testid="map" data-ready=${loading ? 'false' : 'true'} width="0" height="0"></svg></div>`;
  }

  const ready = loading ? 'false' : 'true';
  return html`<div class="map-box" ref=${box}>
    <div class="map-tools">
      <button class="btn small" type="button" title="zoom in" onClick=${() => zoom(1 / 1.3)}>+</button>
      <button class="btn small" type="button" title="zoom out" onClick=${() => zoom(1.3)}>−</button>
      <button class="btn small" type="button" title="fit the whole graph" onClick=${() => setView(null)}>fit</button>
    </div>
    <svg ref=${svgRef} class=${`map ${loading ? 'is-loading' : ''}`} data-testid="map" data-ready=${ready}
      tabindex="0" width="100%" height=${height} viewBox=${`${vb.x} ${vb.y} ${vb.w} ${vb.h}`}
      preserveAspectRatio="xMidYMid meet" onWheel=${onWheel} onPointerDown=${onDown} onPointerMove=${onMove}
      onPointerUp=${onUp} onPointerLeave=${() => { drag.current = null; }}>
      <defs>
        ${['plain', 'mid', 'hi', 'add', 'rem', 'cause'].map((k) => html`<marker id=${`arrow-${k}`} viewBox="0 0 10 10" refX="9" refY="5"
          markerWidth="9" markerHeight="9" markerUnits="userSpaceOnUse" orient="auto-start-reverse"><path d="M0,0 L10,5 L0,10 z" class=${`arrowhead ah-${k}`} /></marker>`)}
      </defs>
      <g class="edges">
        ${laid.edges.map((e) => {
          const key = `${e.source}>${e.target}`;
          const lvl = e.kind === 'calls' ? errLevel(e.error_ratio) : '';
          const rank = causeEdges && causeEdges.get(key);
          const anom = anomalous && anomalous.has(key);
          const width = e.kind === 'calls' && e.calls ? Math.min(6, 1.2 + Math.log10(1 + e.calls / Math.max(1, windowSecs || 1)) * 1.6) : 1.2;
          const arrow = e.diff === 'added' ? 'add' : e.diff === 'removed' ? 'rem' : rank ? 'cause' : lvl === 'err-hi' ? 'hi' : lvl === 'err-mid' ? 'mid' : 'plain';
          const { label } = e;
          const mid = e.lx !== undefined ? { x: e.lx, y: e.ly + 2 } : (e.points[Math.floor(e.points.length / 2)] || { x: 0, y: 0 });
          const title = `${e.kind}: ${e.source} → ${e.target}${e.calls !== undefined ? `\ncalls ${e.calls}, errors ${e.errors} (${fmtPct(e.error_ratio)})\np50 ${fmtSecs(e.duration_p50_seconds)}, p90 ${fmtSecs(e.duration_p90_seconds)}, p99 ${fmtSecs(e.duration_p99_seconds)}` : ''}${e.diff ? `\n${e.diff} between the windows` : ''}${anom ? '\nanomalous: its RED figures moved significantly' : ''}`;
          return html`<g data-testid="edge" data-source=${e.source} data-target=${e.target} data-kind=${e.kind}
              data-diff=${e.diff || undefined} class=${`edge kind-${e.kind} ${lvl} ${e.diff ? `diff-${e.diff}` : ''} ${rank ? 'cause' : ''} ${anom ? 'anomalous' : ''}`}>
            <title>${title}</title>
            <path class="edge-hit" d=${edgePath(e.points)} />
            <path class="edge-line" d=${edgePath(e.points)} style=${`stroke-width:${width.toFixed(2)}`} marker-end=${`url(#arrow-${arrow})`} />
            ${label ? html`<text class="edge-label" x=${mid.x} y=${mid.y - 5} text-anchor="middle">${label}</text>` : null}
          </g>`;
        })}
      </g>
      <g class="nodes">
        ${laid.nodes.map((n) => {
          const rank = causes && causes.get(n.id);
          const sym = symptoms && symptoms.has(n.id);
          const anom = anomalous && anomalous.has(n.id);
          const lvl = errLevel(n.error_ratio);
          const cls = [lvl, n.diff ? `diff-${n.diff}` : '', rank ? 'cause' : '', sym ? 'symptom' : '', anom ? 'anomalous' : '', selected === n.id ? 'selected' : ''].join(' ');
          const title = `${kindLabel(n.kind)} ${n.name}${n.service ? ` (service ${n.service})` : ''}${n.calls !== undefined ? `\ncalls ${n.calls}, errors ${n.errors} (${fmtPct(n.error_ratio)})\np50 ${fmtSecs(n.duration_p50_seconds)}, p90 ${fmtSecs(n.duration_p90_seconds)}, p99 ${fmtSecs(n.duration_p99_seconds)}` : ''}${rank ? `\ncause #${rank}` : ''}${sym ? '\nsymptom' : ''}${anom ? '\nanomalous: its RED figures moved significantly' : ''}${n.diff ? `\n${n.diff} between the windows` : ''}`;
          return html`<g data-testid="node" data-id=${n.id} data-kind=${n.kind} data-diff=${n.diff || undefined}
              class=${`node kind-${n.kind} ${cls}`} transform=${`translate(${n.x},${n.y})`}
              onClick=${(ev) => { ev.stopPropagation(); if (onSelect) onSelect(n); }}>
            <title>${title}</title>
            ${anom || sym ? html`<rect class=${sym ? 'halo-symptom' : 'halo-anomalous'} x=${-n.width / 2 - 5} y=${-n.height / 2 - 5} width=${n.width + 10} height=${n.height + 10} rx="11" />` : null}
            <${Shape} n=${n} cls="" />
            <text class="node-name" x="0" y=${n.lines.stats ? -4 : 4} text-anchor="middle">${n.lines.name}</text>
            ${n.lines.stats ? html`<text class="node-stats" x="0" y="13" text-anchor="middle">${n.lines.stats}</text>` : null}
            ${rank ? html`<g class="rank-badge" transform=${`translate(${n.width / 2 - 2},${-n.height / 2 + 2})`}><circle r="10" /><text y="4" text-anchor="middle">${rank}</text></g>` : null}
            ${n.diff ? html`<g class=${`diff-badge diff-${n.diff}`} transform=${`translate(${-n.width / 2 + 2},${-n.height / 2 + 2})`}><circle r="8" /><text y="4" text-anchor="middle">${n.diff === 'added' ? '+' : n.diff === 'removed' ? '−' : 'Δ'}</text></g>` : null}
          </g>`;
        })}
      </g>
    </svg>
  </div>`;
}

/** The legend: shapes and colours. */
export function MapLegend({ diff }) {
  const item = (kind, label) => html`<span class="legend-item"><svg width="22" height="14" viewBox="-12 -8 24 16"><${Shape} n=${{ kind, width: 20, height: 12 }} cls="" /></svg>${label}</span>`;
  return html`<div class="legend">
    ${item('service', 'service')}${item('database', 'database')}${item('messaging_destination', 'topic / queue')}
    ${item('external', 'external')}${item('pod', 'pod')}${item('node', 'node')}
    <span class="legend-item"><span class="swatch err-mid"></span>errors ≥ 1%</span>
    <span class="legend-item"><span class="swatch err-hi"></span>errors ≥ 5%</span>
    <span class="legend-item"><span class="swatch anomalous"></span>anomalous</span>
    ${diff ? html`<span class="legend-item"><span class="swatch diff-added"></span>added</span>
      <span class="legend-item"><span class="swatch diff-removed"></span>removed</span>
      <span class="legend-item"><span class="swatch diff-changed"></span>changed</span>` : null}
  </div>`;
}
