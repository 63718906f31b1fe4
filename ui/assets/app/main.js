// The app shell: header with navigation and the verdict name, and the router.
import { html, render, useLocation, useName, setName } from './lib.js';
import { IncidentsPage } from './views/incidents.js';
import { IncidentPage } from './views/incident.js';
import { MapPage } from './views/map.js';
import { EntityPage } from './views/entity.js';
import { ChangesPage } from './views/changes.js';
import { TracesPage, TracePage } from './views/traces.js';
import { QueryPage } from './views/query.js';
import { StatusPage } from './views/status.js';

const NAV = [
  ['incidents', '/incidents', 'Incidents'],
  ['map', '/map', 'Service map'],
  ['changes', '/changes', 'Changes'],
  ['traces', '/traces', 'Traces'],
  ['query', '/query', 'SQL'],
  ['status', '/status', 'Status'],
];

function route(path) {
  const p = path.replace(/\/+$/, '') || '/';
  let m;
  if (p === '/' || p === '/incidents') return { name: 'incidents', view: IncidentsPage };
  if ((m = /^\/incidents\/([^/]+)$/.exec(p))) return { name: 'incidents', view: IncidentPage, params: { id: decodeURIComponent(m[1]) } };
  if (p === '/map') return { name: 'map', view: MapPage };
  if ((m = /^\/entities\/(.+)$/.exec(p))) return { name: 'map', view: EntityPage, params: { id: decodeURIComponent(m[1]) } };
  if (p === '/changes') return { name: 'changes', view: ChangesPage };
  if (p === '/traces') return { name: 'traces', view: TracesPage };
  if ((m = /^\/traces\/([^/]+)$/.exec(p))) return { name: 'traces', view: TracePage, params: { traceId: decodeURIComponent(m[1]) } };
  if (p === '/query') return { name: 'query', view: QueryPage };
  if (p === '/status') return { name: 'status', view: StatusPage };
  return { name: null, view: NotFound };
}

function NotFound() {
  return html`<div class="page"><h1>Not found</h1>
    <div class="error" data-testid="error">No page at <code>${location.pathname}</code>.</div>
    <p><a href="/incidents">Go to the incidents</a></p></div>`;
}

function NameField() {
  const name = useName();
  return html`<label class="who" title="Your name, signed on the verdicts you give (kept in this browser)">
    <span class="muted">you</span>
    <input data-testid="verdict-by" value=${name} size="10" spellcheck="false"
      onInput=${(e) => setName(e.currentTarget.value)} />
  </label>`;
}

function App() {
  const { path, query } = useLocation();
  const r = route(path);
  const View = r.view;
  // A new path remounts the page; a query change re-renders it.
  return html`<div class="shell">
    <header class="top">
      <a class="brand" href="/incidents" title="loupe: incidents">
        <img src="/assets/favicon.svg" width="20" height="20" alt="" />loupe</a>
      <nav>${NAV.map(([key, to, label]) => html`<a href=${to} data-testid=${`nav-${key}`}
        class=${r.name === key ? 'active' : ''} aria-current=${r.name === key ? 'page' : undefined}>${label}</a>`)}</nav>
      <div class="top-right"><${NameField} /></div>
    </header>
    <main key=${path}><${View} params=${r.params || {}} query=${query} /></main>
  </div>`;
}

render(html`<${App} />`, document.getElementById('app'));
