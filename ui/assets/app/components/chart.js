// A uPlot chart: time on x (seconds), bands (baseline / window), vertical markers (changes,
// events, onsets) with hover text, drag-to-select a range, cursor sync across charts.
import uPlot from '/assets/vendor/uplot-1.6.32.mjs';
import { html, useEffect, useRef, fmtTime } from '../lib.js';

const AXIS = { stroke: '#8b97a8', grid: { stroke: '#263040', width: 1 }, ticks: { stroke: '#263040', width: 1 }, font: '11px system-ui, sans-serif' };

function timeAxisValues(u, splits) {
  const span = splits.length > 1 ? splits[splits.length - 1] - splits[0] : 0;
  return splits.map((s) => {
    const d = new Date(s * 1000);
    const hh = String(d.getHours()).padStart(2, '0');
    const mm = String(d.getMinutes()).padStart(2, '0');
    if (span > 2 * 86400) return `${d.getMonth() + 1}/${d.getDate()}`;
    if (span < 300) return `${hh}:${mm}:${String(d.getSeconds()).padStart(2, '0')}`;
    return `${hh}:${mm}`;
  });
}

/**
 * props: data ([xs in seconds, ...ys]), series ([{label, color, fmt, fill, dash}]), height,
 * bands ([{from, to, color, label}] seconds), markers ([{x, color, label}]), onSelect(from, to),
 * sync (cursor sync key), yFmt (axis labels), spark (no axes, no legend), yMin (e.g. 0).
 */
export function Chart({ data, series, height = 160, bands = [], markers = [], onSelect, sync, yFmt, spark = false, yMin, testid, label, legend }) {
  const box = useRef(null);
  const plot = useRef(null);
  const selectRef = useRef(onSelect);
  selectRef.current = onSelect;

  useEffect(() => {
    const el = box.current;
    if (!el || !data || !data[0] || data[0].length === 0) return undefined;
    const fmtY = yFmt || ((v) => String(v));
    const bandsNow = bands;
    const markersNow = markers;
    const opts = {
      width: Math.max(100, el.clientWidth || 300),
      height,
      legend: { show: legend !== undefined ? legend : !spark, live: true },
      padding: spark ? [4, 2, 2, 2] : [10, 22, 0, 0],
      cursor: {
        sync: sync ? { key: sync } : undefined,
        drag: { x: !!onSelect, y: false, setScale: false },
        points: { size: 6 },
        y: false,
      },
      select: { show: !!onSelect },
      scales: {
        x: { time: true },
        y: {
          range: (u, min, max) => {
            const lo = yMin !== undefined ? Math.min(yMin, min ?? yMin) : (min ?? 0);
            let hi = max ?? 1;
            if (hi <= lo) hi = lo + 1;
            return [lo, hi + (hi - lo) * 0.08];
          },
        },
      },
      axes: spark ? [{ show: false }, { show: false }] : [
        { ...AXIS, values: timeAxisValues, space: 70 },
        { ...AXIS, size: 56, space: height < 140 ? 18 : 30, values: (u, splits) => splits.map((v) => fmtY(v)) },
      ],
      series: [
        { value: (u, v) => (v === null || v === undefined ? '—' : fmtTime(v * 1000, { date: false })) },
        ...series.map((s) => ({
          label: s.label,
          stroke: s.color,
          width: s.width || 1.5,
          fill: s.fill,
          dash: s.dash,
          points: { show: false },
          spanGaps: false,
          value: (u, v) => (v === null || v === undefined ? '—' : (s.fmt || fmtY)(v)),
        })),
      ],
      hooks: {
        drawClear: [(u) => {
          const { ctx } = u;
          const { top, height: h, left, width: w } = u.bbox;
          for (const b of bandsNow) {
            // Clipped to the plot area (a band can start before the data).
            const x0 = Math.max(left, Math.min(left + w, u.valToPos(b.from, 'x', true)));
            const x1 = Math.max(left, Math.min(left + w, u.valToPos(b.to, 'x', true)));
            if (x1 <= x0) continue;
            ctx.fillStyle = b.color;
            ctx.fillRect(x0, top, x1 - x0, h);
          }
        }],
        draw: [(u) => {
          // Markers as DOM, so they carry hover text.
          let layer = u.over.querySelector('.chart-markers');
          if (!layer) {
            layer = document.createElement('div');
            layer.className = 'chart-markers';
            u.over.appendChild(layer);
          }
          layer.textContent = '';
          const [xmin, xmax] = [u.scales.x.min, u.scales.x.max];
          for (const m of markersNow) {
            if (m.x < xmin || m.x > xmax) continue;
            const left = u.valToPos(m.x, 'x');
            const line = document.createElement('div');
            line.className = 'chart-marker';
            line.style.left = `${left}px`;
            line.style.borderColor = m.color;
            const flag = document.createElement('div');
            flag.className = 'chart-flag';
            flag.style.background = m.color;
            flag.title = `${fmtTime(m.x * 1000, { date: true })} — ${m.label}`;
            line.appendChild(flag);
            layer.appendChild(line);
          }
        }],
        setSelect: [(u) => {
          if (!selectRef.current || u.select.width < 3) return;
          const a = u.posToVal(u.select.left, 'x');
          const b = u.posToVal(u.select.left + u.select.width, 'x');
          u.setSelect({ left: 0, top: 0, width: 0, height: 0 }, false);
          selectRef.current(a, b);
        }],
      },
    };
    const u = new uPlot(opts, data, el);
    plot.current = u;
    const ro = new ResizeObserver(() => {
      const w = el.clientWidth;
      if (w > 0 && Math.abs(w - u.width) > 1) u.setSize({ width: w, height });
    });
    ro.observe(el);
    return () => { ro.disconnect(); u.destroy(); plot.current = null; };
  }, [data, series, height, bands, markers, sync, spark]);

  const empty = !data || !data[0] || data[0].length === 0;
  return html`<div class=${`chart ${spark ? 'spark' : ''}`} data-testid=${testid || 'chart'} aria-label=${label}>
    ${label && !spark ? html`<div class="chart-title">${label}</div>` : null}
    ${empty ? html`<div class="empty small">no data in this range</div>` : html`<div ref=${box} class="chart-box"></div>`}
  </div>`;
}
