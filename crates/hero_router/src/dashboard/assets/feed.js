// One live feed for every dashboard tab of this origin: a shared worker that holds the one
// `/api/events` stream and passes each event to every tab. A browser keeps at most six
// HTTP/1.1 connections to one origin; a stream per tab used them all with six tabs open, and
// every other request of those tabs (a scan, a call, the detail) then waited.
'use strict';
const EVENTS = ['snapshot', 'service', 'socket', 'reap', 'traffic', 'scan'];
const ports = new Set();
let source = null;

function send(message) {
  for (const port of ports) port.postMessage(message);
}

// A fresh stream starts with a snapshot: a tab that just connected needs one (the others
// take it again, as after any reconnection).
function open() {
  if (source) source.close();
  const s = new EventSource('/api/events');
  source = s;
  s.onopen = () => { if (source === s) send({ state: 'open' }); };
  s.onerror = () => {
    if (source !== s) return;
    if (s.readyState === EventSource.CLOSED) {
      // Refused (the allow-list, say): the browser will not retry by itself.
      send({ state: 'closed' });
      setTimeout(() => { if (source === s) open(); }, 2000);
    } else {
      send({ state: 'lost' });
    }
  };
  for (const name of EVENTS) {
    s.addEventListener(name, (m) => {
      if (source === s) send({ event: name, data: m.data, id: m.lastEventId });
    });
  }
}

self.onconnect = (e) => {
  const port = e.ports[0];
  ports.add(port);
  port.onmessage = (m) => { if (m.data === 'bye') ports.delete(port); };
  port.start();
  open();
};
