// hero_router dashboard: keeps the server-rendered page live from /api/events (server-sent
// events). No dependencies, no build step; everything it needs is on the router itself.
(() => {
  'use strict';
  const $ = (sel) => document.querySelector(sel);
  const services = new Map();     // name -> Service (router.services shape)
  const rates = new Map();        // name -> {rps, errors}
  // name -> {rps: [90 slots], rps_1m, errors_1m} (the feed's). A Map: a service may be called
  // `constructor` or `toString`, which a plain object already has.
  let traffic = new Map();
  let events = [];                // newest first: {event, data}
  let detailName = null;
  let detailTimer = null;
  let renderQueued = false;
  let source = null;

  // --- small helpers -------------------------------------------------------------------------
  function el(tag, attrs, ...children) {
    const node = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (v === null || v === undefined || v === false) continue;
      if (k === 'text') node.textContent = v;
      else if (k.startsWith('on')) node.addEventListener(k.slice(2), v);
      else node.setAttribute(k, v === true ? '' : v);
    }
    for (const c of children.flat(Infinity)) {
      if (c !== null && c !== undefined) node.append(c instanceof Node ? c : String(c));
    }
    return node;
  }
  function ago(ms) {
    if (!ms) return '';
    const s = Math.max(0, Math.round((Date.now() - ms) / 1000));
    if (s < 60) return s + ' s ago';
    if (s < 3600) return Math.floor(s / 60) + ' min ago';
    if (s < 86400) return Math.floor(s / 3600) + ' h ago';
    return Math.floor(s / 86400) + ' d ago';
  }
  function time(ms, prefix) {
    const iso = ms ? new Date(ms).toISOString() : '';
    return el('time', { datetime: iso, title: iso, 'data-ms': ms }, (prefix || '') + ago(ms));
  }
  // Bidirectional controls (U+202E…) written out as JSON escapes: the same JSON, and a
  // service's string reorders nothing of the text around it in a block.
  const BIDI = /[\u061C\u200E\u200F\u202A-\u202E\u2066-\u2069]/g;
  function json(v) {
    return JSON.stringify(v, null, 2)
      .replace(BIDI, (c) => '\\u' + c.charCodeAt(0).toString(16).toUpperCase().padStart(4, '0'));
  }

  // --- charts: inline SVG, no library ----------------------------------------------------------
  const SVG_NS = 'http://www.w3.org/2000/svg';
  function svg(tag, attrs, ...children) {
    const node = document.createElementNS(SVG_NS, tag);
    for (const [k, v] of Object.entries(attrs || {})) node.setAttribute(k, v);
    for (const c of children) node.append(c);
    return node;
  }
  // Polylines of `lines` ([{values, cls}], nulls are gaps) in a w x h box, scaled to the
  // largest value; `label` is the chart's accessible name.
  function chart(lines, w, h, label, cls) {
    const all = lines.flatMap((l) => l.values).filter((v) => v !== null && v !== undefined);
    const max = Math.max(...all, 0) || 1;
    const n = Math.max(...lines.map((l) => l.values.length), 2);
    const x = (i) => (i * (w - 2) / (n - 1) + 1).toFixed(1);
    const y = (v) => (h - 1 - (v / max) * (h - 2)).toFixed(1);
    const paths = lines.map((l) => {
      let d = '';
      let pen = false;
      l.values.forEach((v, i) => {
        if (v === null || v === undefined) { pen = false; return; }
        d += (pen ? 'L' : 'M') + x(i) + ' ' + y(v);
        pen = true;
      });
      return svg('path', { d: d || 'M0 0', class: 'line ' + (l.cls || ''), 'data-max': String(max) });
    });
    return svg('svg', { viewBox: `0 0 ${w} ${h}`, width: w, height: h, role: 'img', 'aria-label': label,
      class: cls || 'chart', 'data-max': String(max) }, ...paths);
  }
  // The feed's object of services as a Map (only its own keys).
  function byName(obj) {
    return new Map(Object.entries(obj));
  }
  function sparkCell(name) {
    const t = traffic.get(name);
    if (!t) return '–';
    return el('span', { class: 'spark' },
      chart([{ values: t.rps }], 90, 18, `${name}: requests per second, last 15 minutes`, 'sparkline'),
      ' ', t.rps_1m.toFixed(1));
  }
  function errorCell(name) {
    const t = traffic.get(name);
    if (!t) return '–';
    return t.errors_1m
      ? el('span', { class: 'badge', title: 'errors in the last minute' }, String(t.errors_1m))
      : '0';
  }

  // --- the table -----------------------------------------------------------------------------
  function row(s) {
    const r = rates.get(s.name);
    const sockets = el('ul', { class: 'sockets' }, (s.sockets || []).map((k) =>
      el('li', {}, el('span', { class: 'state', 'data-state': k.state }, k.kind + ': ' + k.state), ' ',
        time(k.since_unix_ms, 'since '))));
    return el('tr', { 'data-name': s.name, 'data-status': s.status },
      el('td', { 'data-label': 'Name' }, el('a', { href: '#service=' + s.name }, s.name)),
      el('td', { 'data-label': 'Status' }, el('span', { class: 'status', 'data-status': s.status }, s.status)),
      el('td', { 'data-label': 'Title' }, s.title || ''),
      el('td', { 'data-label': 'Version' }, s.version || ''),
      el('td', { 'data-label': 'Methods' }, s.methods_count === null || s.methods_count === undefined ? '–' : s.methods_count),
      el('td', { 'data-label': 'Sockets' }, sockets),
      el('td', { 'data-label': 'req/s' }, traffic.has(s.name) ? sparkCell(s.name) : r ? r.rps.toFixed(1) : '–'),
      el('td', { 'data-label': 'Errors' }, traffic.has(s.name) ? errorCell(s.name) : '–'));
  }
  function render() {
    renderQueued = false;
    const name = $('#filter-name').value.trim().toLowerCase();
    const status = $('#filter-status').value;
    const counts = { healthy: 0, degraded: 0, unhealthy: 0, non_rpc: 0 };
    const rows = [];
    for (const s of [...services.values()].sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0))) {
      counts[s.status] = (counts[s.status] || 0) + 1;
      if (name && !s.name.toLowerCase().includes(name)) continue;
      if (status && s.status !== status) continue;
      rows.push(row(s));
    }
    // Rows are rebuilt: give the keyboard focus back to the same service's link.
    const focused = document.activeElement && document.activeElement.closest('#services tbody tr');
    $('#services tbody').replaceChildren(...rows);
    if (focused) {
      const link = document.querySelector(`#services tbody tr[data-name="${focused.dataset.name}"] a`);
      if (link) link.focus();
    }
    for (const li of document.querySelectorAll('#counts li[data-status]')) {
      li.querySelector('b').textContent = counts[li.dataset.status] || 0;
    }
    $('#empty').hidden = services.size > 0;
  }
  function schedule() {
    if (!renderQueued) { renderQueued = true; requestAnimationFrame(render); }
  }

  // --- recent events -------------------------------------------------------------------------
  function describe(e) {
    const d = e.data;
    switch (e.event) {
      case 'socket': return `${d.service}: socket ${d.kind} ${d.from} → ${d.to}`;
      case 'reap': return d.skipped
        ? `${d.service}: reap of ${d.socket} skipped (${d.reason}${d.detail ? ': ' + d.detail : ''})`
        : `${d.service}: reaped ${d.socket} (${d.reason})`;
      case 'service': return d.catalog
        ? `${d.service}: spec ${d.catalog.state}${d.catalog.reason ? ' (' + d.catalog.reason + ')' : ''}${d.catalog.fingerprint ? ' ' + d.catalog.fingerprint.slice(0, 19) : ''}`
        : d.empty_for_ms !== undefined
          ? `${d.service}: left the table (no socket for ${Math.round(d.empty_for_ms / 1000)} s)`
          : `${d.service}: ${d.removed ? 'removed' : 'changed'}`;
      case 'scan': return d.root_replaced
        ? `socket root ${d.root} was ${d.recreated ? 'deleted and re-created' : 'replaced'}`
        : `${d.full ? 'full' : 'partial'} scan: ${d.services} services, ${d.sockets} sockets`;
      default: return e.event;
    }
  }
  function renderEvents() {
    $('#events').replaceChildren(...events.map((e) =>
      el('li', { 'data-event': e.event }, time(e.data.at_unix_ms), ' ', describe(e))));
  }
  function remember(event, data) {
    events.unshift({ event, data });
    if (events.length > 200) events.length = 200;
    renderEvents();
  }

  // --- the live feed -------------------------------------------------------------------------
  function setConn(state, text) {
    const c = $('#conn');
    c.dataset.state = state;
    c.textContent = text;
  }
  const handlers = new Map();
  function on(name, handler) { handlers.set(name, handler); }
  // One event of the feed, from the shared worker or the page's own stream.
  function deliver(name, text, lastEventId) {
    const handler = handlers.get(name);
    if (!handler) return;
    let data;
    try { data = JSON.parse(text); } catch (_) { return; }
    handler(data, { lastEventId: lastEventId || '' });
  }
  function feedState(state) {
    if (state === 'open') setConn('live', '● live');
    else if (state === 'closed') setConn('reconnecting', '◌ feed closed; reconnecting…');
    else setConn('reconnecting', '◌ feed lost; reconnecting (the table may be stale)…');
  }
  const FEED_EVENTS = ['snapshot', 'service', 'socket', 'reap', 'traffic', 'scan'];
  // All of a browser's tabs of the dashboard share one stream through a shared worker
  // (/api/feed.js): a stream per tab would take all six connections a browser keeps to one
  // origin with six tabs open, and every other request of the page would wait. A browser
  // without shared workers gives each page a stream of its own.
  function connect() {
    if (window.SharedWorker) {
      try {
        const worker = new SharedWorker('/api/feed.js', { name: 'hero_router live feed' });
        worker.port.onmessage = (m) => {
          if (m.data.state) feedState(m.data.state);
          else deliver(m.data.event, m.data.data, m.data.id);
        };
        worker.port.start();
        window.addEventListener('pagehide', () => worker.port.postMessage('bye'));
        return;
      } catch (_) { /* a stream of the page's own, below */ }
    }
    source = new EventSource('/api/events');
    source.onopen = () => feedState('open');
    source.onerror = () => {
      if (source.readyState === EventSource.CLOSED) {
        feedState('closed');
        setTimeout(connect, 2000);
      } else {
        feedState('lost');
      }
    };
    for (const name of FEED_EVENTS) source.addEventListener(name, (m) => deliver(name, m.data, m.lastEventId));
  }
  function subscribe() {
    on('snapshot', (d, m) => {
      // Which router instance the page follows: a restart shows as a new one.
      $('#conn').dataset.instance = (m.lastEventId || '').split('-')[0];
      services.clear();
      for (const s of d.services) services.set(s.name, s);
      events = d.recent.slice().reverse();
      traffic = byName((d.traffic && d.traffic.services) || {});
      renderEvents();
      showHealth(d.health);
      setConn('live', '● live');
      schedule();
      if (detailName) refreshDetail();
    });
    on('service', (d) => {
      if (d.view) services.set(d.name, d.view); else services.delete(d.name);
      if (d.catalog || d.empty_for_ms !== undefined) remember('service', d);
      schedule();
      if (d.name === detailName) refreshDetailSoon();
    });
    on('socket', (d) => {
      const s = services.get(d.service);
      if (s) {
        const k = (s.sockets || []).find((x) => x.path === d.socket);
        if (k && d.to !== 'gone') { k.state = d.to; k.since_unix_ms = d.at_unix_ms; }
      }
      remember('socket', d);
      schedule();
      if (d.service === detailName) refreshDetailSoon();
    });
    on('reap', (d) => remember('reap', d));
    on('traffic', (d) => {
      traffic = byName(d.services || {});
      schedule();
      if (detailName) refreshTraffic();
    });
    on('scan', (d) => { if (d.root_replaced || (d.full && !d.periodic)) remember('scan', d); });
  }

  // --- health and metrics at a glance --------------------------------------------------------
  function showHealth(h) {
    if (!h) return;
    $('#health').textContent = `router ${h.status}${h.ready ? '' : ', not ready'}${h.reason ? ': ' + h.reason : ''}` +
      `, ${h.services} services, up ${h.uptime_secs} s`;
  }
  let previous = null;
  async function poll() {
    try {
      const [health, metrics] = await Promise.all([
        fetch('/health').then((r) => r.json()), fetch('/metrics').then((r) => r.text())]);
      showHealth(health);
      const now = Date.now();
      const totals = new Map();
      const re = /^hero_router_requests_total\{service="((?:[^"\\]|\\.)*)",kind="(?:[^"\\]|\\.)*",status="(\d+)"\} (\d+)/;
      for (const line of metrics.split('\n')) {
        const m = re.exec(line);
        if (!m) continue;
        const t = totals.get(m[1]) || { total: 0, errors: 0 };
        t.total += Number(m[3]);
        if (Number(m[2]) >= 500) t.errors += Number(m[3]);
        totals.set(m[1], t);
      }
      let sum = 0;
      for (const [name, t] of totals) {
        const before = previous && previous.totals.get(name);
        const rps = before ? (t.total - before.total) / ((now - previous.at) / 1000) : 0;
        sum += rps;
        rates.set(name, { rps, errors: t.errors });
      }
      if (previous) $('#rate-total b').textContent = sum.toFixed(1);
      previous = { at: now, totals };
      schedule();
    } catch (_) { /* the feed's state already says when the router is away */ }
  }

  // --- the service detail --------------------------------------------------------------------
  function refreshDetailSoon() {
    clearTimeout(detailTimer);
    detailTimer = setTimeout(refreshDetail, 250);
  }
  async function refreshDetail() {
    const name = detailName;
    if (!name || !serviceName.test(name)) return;
    let d;
    try {
      const r = await fetch('/api/dashboard/service/' + encodeURIComponent(name));
      d = await r.json();
      if (!r.ok) throw new Error(d.error || r.status);
    } catch (e) {
      $('#detail-body').replaceChildren(el('p', { class: 'error' }, `${name}: ${e.message}`));
      return;
    }
    if (name === detailName) { renderDetail(d); refreshTraffic(); }
  }
  function kv(pairs) {
    return el('dl', { class: 'kv' }, pairs.filter(([, v]) => v !== null && v !== undefined && v !== '')
      .map(([k, v]) => [el('dt', {}, k), el('dd', {}, v)]));
  }
  function copyButton(label, text) {
    return el('button', { type: 'button', onclick: (e) => {
      navigator.clipboard.writeText(text).then(() => { e.target.textContent = 'copied'; }, () => {});
    } }, label);
  }
  function renderDetail(d) {
    const s = d.service;
    // MCP is served on the service listener, not on the dashboard's own origin.
    const mcpUrl = (document.body.dataset.serviceUrl || location.origin) + d.links.mcp;
    const mcpConfig = json({ mcpServers: { [s.name]: { type: 'http', url: mcpUrl } } });
    // A refresh (the service changed) keeps what the reader opened, typed and got back.
    const open = new Set([...document.querySelectorAll('#detail details[open]')].map((x) => x.dataset.method));
    const kept = new Map([...document.querySelectorAll('#detail details[data-method]')].map((x) => [x.dataset.method,
      { params: x.querySelector('textarea').value, request: x.querySelector('pre.request').textContent,
        answer: x.querySelector('pre.answer').textContent }]));
    // And where the reader was typing: a field keeps its focus and its selection.
    const active = document.activeElement;
    const focus = active && active.id && $('#detail-body').contains(active)
      ? { id: active.id, range: 'selectionStart' in active ? [active.selectionStart, active.selectionEnd] : null }
      : null;
    $('#h-detail').textContent = `Service ${s.name}`;
    $('#detail-body').replaceChildren(
      el('p', {}, el('a', { href: '#' }, '← back to all services')),
      kv([['Status', el('span', { class: 'status', 'data-status': s.status }, s.status)],
        ['Title', s.title], ['Version', s.version], ['Description', s.description]]),
      el('p', { class: 'links' },
        d.links.docs ? el('a', { href: d.links.docs }, 'API docs') : 'no API docs (no spec)', ' · ',
        d.links.openrpc ? el('a', { href: d.links.openrpc }, 'OpenRPC document') : null, d.links.openrpc ? ' · ' : null,
        d.links.client_py ? el('a', { href: d.links.client_py }, 'Python client') : null, d.links.client_py ? ' · ' : null,
        d.links.client_ts ? el('a', { href: d.links.client_ts }, 'TypeScript client') : null, d.links.client_ts ? ' · ' : null,
        'MCP: ', el('a', { href: mcpUrl, id: 'mcp-url' }, mcpUrl), ' ', copyButton('copy URL', mcpUrl)),
      el('details', {}, el('summary', {}, 'MCP client config'), el('pre', {}, mcpConfig), copyButton('copy config', mcpConfig)),
      el('h3', {}, 'Traffic, last 15 minutes'),
      el('div', { id: 'detail-traffic' }, 'Loading…'),
      el('h3', {}, 'Sockets'),
      el('div', { class: 'scroll' }, el('table', {},
        el('thead', {}, el('tr', {}, ['Kind', 'State', 'Since', 'Path', 'Detail'].map((h) => el('th', { scope: 'col' }, h)))),
        el('tbody', {}, (s.sockets || []).map((k) => el('tr', {},
          el('td', { 'data-label': 'Kind' }, k.kind),
          el('td', { 'data-label': 'State' }, el('span', { class: 'state', 'data-state': k.state }, k.state)),
          el('td', { 'data-label': 'Since' }, time(k.since_unix_ms)),
          el('td', { 'data-label': 'Path' }, el('code', {}, k.path)),
          el('td', { 'data-label': 'Detail' }, k.detail || '')))))),
      el('h3', {}, 'History'),
      d.history.length
        ? el('ol', { class: 'events', reversed: true }, d.history.slice().reverse().map((e) =>
          el('li', {}, time(e.data.at_unix_ms), ' ', describe(e))))
        : el('p', {}, 'No recent events for this service.'),
      el('h3', {}, 'Manifest'),
      d.manifest ? kv([['Title', d.manifest.title], ['Version', d.manifest.version],
        ['Description', d.manifest.description],
        ['Error', d.manifest.error ? el('span', { class: 'error' }, d.manifest.error) : null]])
        : el('p', {}, 'Not fetched yet.'),
      el('h3', {}, 'Spec'),
      kv([['State', s.spec.state], ['Reason', s.spec.reason ? el('span', { class: 'error' }, s.spec.reason) : null],
        ['OpenRPC', s.spec.openrpc], ['Fingerprint', s.spec.fingerprint],
        ['Fetched', s.spec.fetched_unix_ms ? time(s.spec.fetched_unix_ms) : null]]),
      el('h3', {}, s.methods_count > d.methods.length
        ? `Methods (${d.methods.length} of ${s.methods_count})` : `Methods (${d.methods.length})`),
      ...(d.methods_note ? [el('p', { class: 'note' }, d.methods_note)] : []),
      ...(d.methods.length ? d.methods.map((m, i) => method(s.name, m, i, open.has(m.name), kept.get(m.name)))
        : d.methods_note ? [] : [el('p', {}, 'No methods: the service has no spec, or its spec lists none.')]));
    const again = focus && document.getElementById(focus.id);
    if (again) {
      again.focus();
      if (focus.range && again.setSelectionRange) again.setSelectionRange(...focus.range);
    }
  }
  // The open service's charts, from /api/traffic: redrawn on each `traffic` frame (at most
  // once a second).
  async function refreshTraffic() {
    const name = detailName;
    const box = document.getElementById('detail-traffic');
    if (!name || !box) return;
    let all;
    try { all = await (await fetch('/api/traffic')).json(); } catch (_) { return; }
    const t = (all.services || []).find((x) => x.name === name);
    if (name !== detailName) return;
    if (!t) { box.replaceChildren(el('p', {}, 'No requests in the last 15 minutes.')); return; }
    const ms = (v) => (v === null || v === undefined ? '–' : v + ' ms');
    const w = t.windows;
    box.replaceChildren(
      el('table', { class: 'traffic' },
        el('thead', {}, el('tr', {}, ['Window', 'Requests', 'req/s', 'p50', 'p95', 'p99', '4xx', '5xx', 'router errors']
          .map((h) => el('th', { scope: 'col' }, h)))),
        el('tbody', {}, ['1m', '5m', '15m'].map((k) => el('tr', { 'data-window': k },
          el('td', {}, k), el('td', {}, w[k].requests), el('td', { class: 'rps' }, w[k].rps),
          el('td', { class: 'p50' }, ms(w[k].p50_ms)), el('td', { class: 'p95' }, ms(w[k].p95_ms)),
          el('td', { class: 'p99' }, ms(w[k].p99_ms)), el('td', {}, w[k].errors.service_4xx),
          el('td', {}, w[k].errors.service_5xx), el('td', {}, w[k].errors.router))))),
      el('figure', {},
        chart([{ values: t.slots.rps }], 540, 80, `${name}: requests per second, 10-second slots`, 'chart rps-chart'),
        el('figcaption', {}, `req/s per 10 s (max ${Math.max(...t.slots.rps, 0)})`)),
      el('figure', {},
        chart([{ values: t.slots.p50_ms, cls: 'p50' }, { values: t.slots.p95_ms, cls: 'p95' },
          { values: t.slots.p99_ms, cls: 'p99' }], 540, 80, `${name}: latency p50, p95, p99`, 'chart latency-chart'),
        el('figcaption', {}, el('span', { class: 'key p50' }, 'p50'), ' ', el('span', { class: 'key p95' }, 'p95'), ' ',
          el('span', { class: 'key p99' }, 'p99'), ' latency, ms per 10 s')));
  }
  let callId = 0;
  function method(service, m, index, isOpen, kept) {
    // By place, not by name: two names may read alike once made safe for an id.
    const id = 'try-' + service + '-' + index;
    const params = el('textarea', { id: id + '-params', 'aria-label': `params of ${m.name} (JSON)` });
    params.value = kept ? kept.params : JSON.stringify(m.example_params);
    const request = el('pre', { class: 'request', 'aria-label': 'request' }, kept ? kept.request : '');
    const answer = el('pre', { class: 'answer', 'aria-label': 'answer', 'aria-live': 'polite' }, kept ? kept.answer : '');
    const call = async () => {
      // An empty box sends no params at all (a method that takes none).
      let p;
      try { p = params.value.trim() === '' ? undefined : JSON.parse(params.value); } catch (e) {
        request.textContent = '';
        answer.textContent = 'The params are not JSON: ' + e.message;
        return;
      }
      const body = { jsonrpc: '2.0', id: ++callId, method: service + '.' + m.name, params: p };
      request.textContent = 'POST /rpc\n' + json(body);
      answer.textContent = '…';
      try {
        const r = await fetch('/rpc', { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) });
        const text = await r.text();
        let shown = text;
        try { shown = json(JSON.parse(text)); } catch (_) { /* show it as it came */ }
        answer.textContent = `HTTP ${r.status}\n${shown}`;
      } catch (e) { answer.textContent = 'The request failed: ' + e.message; }
    };
    return el('details', { 'data-method': m.name, open: isOpen },
      el('summary', {}, el('code', {}, m.name), m.summary ? ' — ' + m.summary : ''),
      m.description ? el('p', {}, m.description) : null,
      m.params.length ? el('table', {}, el('thead', {}, el('tr', {}, ['Param', 'Type', 'Required', 'Description'].map((h) => el('th', { scope: 'col' }, h)))),
        el('tbody', {}, m.params.map((p) => el('tr', {}, el('td', {}, el('code', {}, p.name)), el('td', {}, p.type),
          el('td', {}, p.required ? 'yes' : 'no'), el('td', {}, p.description || p.summary || '')))))
        : el('p', {}, 'No params.'),
      m.result ? el('p', {}, 'Result: ', el('code', {}, m.result)) : null,
      el('form', { class: 'try', onsubmit: (e) => { e.preventDefault(); call(); } },
        el('label', { for: id + '-params' }, `Try it: params (${m.param_structure})`), params,
        el('button', { type: 'submit' }, 'Call ' + service + '.' + m.name)),
      request, answer);
  }
  // A service's name as its directory is named (docs/sockets-and-reaping.md#service-names).
  const serviceName = /^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$/;
  function route() {
    const m = /^#service=(.*)$/.exec(location.hash);
    let name = null;
    if (m) { try { name = decodeURIComponent(m[1]); } catch (_) { name = m[1]; } }
    if (name === detailName) return;
    detailName = name;
    $('#detail').hidden = !name;
    if (!name) { $('#detail-body').replaceChildren(); return; }
    // The heading names what was asked for at once: never the service shown before.
    $('#h-detail').textContent = `Service ${name}`;
    if (!serviceName.test(name)) {
      $('#detail-body').replaceChildren(el('p', { class: 'error' },
        `${name}: not a service name (letters, digits, _ and -, up to 64, starting with a letter or digit)`));
      $('#h-detail').focus();
      return;
    }
    $('#detail-body').replaceChildren(el('p', {}, 'Loading…'));
    refreshDetail().then(() => $('#h-detail').focus());
  }

  // --- wiring ---------------------------------------------------------------------------------
  // The filters apply as they are typed; Enter submits nothing (no inline handler: the
  // page's policy runs only this script).
  $('#filters').addEventListener('submit', (e) => e.preventDefault());
  $('#filter-name').addEventListener('input', schedule);
  $('#filter-status').addEventListener('change', schedule);
  $('#scan').addEventListener('click', async () => {
    const out = $('#scan-result');
    out.textContent = 'scanning…';
    try {
      const r = await fetch('/api/scan', { method: 'POST' });
      const d = await r.json();
      out.textContent = r.ok
        ? `scanned ${d.services} services, ${d.sockets} sockets (${d.live} live, ${d.refused} refused) in ${d.duration_ms} ms`
        : d.error;
    } catch (e) { out.textContent = 'scan failed: ' + e.message; }
  });
  document.addEventListener('keydown', (e) => {
    if (e.key === 'Escape' && detailName) location.hash = '';
  });
  window.addEventListener('hashchange', route);
  setInterval(() => {
    for (const t of document.querySelectorAll('time[data-ms]')) {
      const prefix = t.textContent.startsWith('since ') ? 'since ' : '';
      t.textContent = prefix + ago(Number(t.dataset.ms));
    }
  }, 5000);
  setInterval(() => { if (!document.hidden) poll(); }, 5000);
  poll();
  route();
  subscribe();
  connect();
})();
