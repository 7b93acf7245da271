// resized web page: upload an image (raw bytes, options in the query),
// long-poll its token (?wait=1, or less when the node allows less), show the
// result; a cluster panel refreshed every second from /api/v1/cluster and
// /metrics. Plain JS, no dependencies.
// What depends on the node (the width/height max, the output formats it can
// write, its upload limit, its longest poll wait) is in the page as the server
// rendered it.
'use strict';

const $ = (id) => document.getElementById(id);

const POLL_MS = 300; // pause between plain polls
const WAIT_S = 1;    // long-poll wait of each status GET, at most
const RETRY_MS = 1000;     // pause after a transient failure without Retry-After
const RETRY_MAX_MS = 10000; // longest Retry-After followed
const GIVE_UP_MS = 120000;  // transient failures this long in a row: stop
const CLUSTER_MS = 1000;

// -- formatting ---------------------------------------------------------------

function formatBytes(n) {
  if (n < 1024) return `${n} B`;
  if (n < 1024 * 1024) return `${(n / 1024).toFixed(1)} KiB`;
  return `${(n / (1024 * 1024)).toFixed(2)} MiB`;
}

function withThousands(n) {
  return String(n).replace(/\B(?=(\d{3})+(?!\d))/g, '\u2009');
}

// A size in words for limits: "64 MiB", "97.7 KiB", "12.3 MiB".
function formatSize(n) {
  const units = ['bytes', 'KiB', 'MiB', 'GiB'];
  let v = n;
  let i = 0;
  while (v >= 1024 && i < units.length - 1) {
    v /= 1024;
    i++;
  }
  const text = i === 0 ? String(v) : v.toFixed(1).replace(/\.0$/, '');
  return `${text} ${units[i]}`;
}

// Why a file of `size` bytes cannot be sent to a server taking at most
// `limit`; in exact bytes when the rounded sizes would read the same.
function tooBigMessage(size, limit) {
  let over = formatSize(size);
  let max = formatSize(limit);
  if (over === max) {
    over = `${withThousands(size)} bytes`;
    max = `${withThousands(limit)}-byte`;
  }
  return `${over} is over this server's ${max} limit`;
}

// -- upload -------------------------------------------------------------------

let chosen = null;    // the File to send
let pollTimer = null; // the current poll loop
let activeToken = null; // the task the page shows; older polls stop
let startedAt = 0;

// The largest upload this server takes (limits.max-body-bytes: the page
// sends the file as the raw body), filled into the page by the server.
function maxUploadBytes() {
  const n = Number($('file').dataset.maxBytes);
  return Number.isFinite(n) && n > 0 ? n : Infinity;
}

function chooseFile(file) {
  if (!file) return;
  // A file the server would refuse (413) is not uploaded: say so now.
  const limit = maxUploadBytes();
  const tooBig = file.size > limit;
  chosen = tooBig ? null : file;
  $('file-error').hidden = !tooBig;
  $('file-error').textContent = tooBig ? tooBigMessage(file.size, limit) : '';
  $('dropzone').classList.toggle('too-big', tooBig);
  $('dz-empty').hidden = true;
  $('dz-file').hidden = false;
  $('file-name').textContent = file.name;
  $('file-info').textContent =
    `${file.type || 'unknown type'} · ${formatSize(file.size)}`;
  const preview = $('source-preview');
  if (preview.dataset.url) URL.revokeObjectURL(preview.dataset.url);
  preview.dataset.url = URL.createObjectURL(file);
  preview.src = preview.dataset.url;
  $('submit').disabled = tooBig;
}

function setupDropzone() {
  const zone = $('dropzone');
  $('file').addEventListener('change', (e) => chooseFile(e.target.files[0]));
  for (const type of ['dragenter', 'dragover']) {
    zone.addEventListener(type, (e) => {
      e.preventDefault();
      zone.classList.add('over');
    });
  }
  for (const type of ['dragleave', 'drop']) {
    zone.addEventListener(type, () => zone.classList.remove('over'));
  }
  zone.addEventListener('drop', (e) => {
    e.preventDefault();
    const file = e.dataTransfer && e.dataTransfer.files[0];
    if (file) chooseFile(file);
  });
  // Dropping outside the zone must not navigate away from the page.
  window.addEventListener('dragover', (e) => e.preventDefault());
  window.addEventListener('drop', (e) => e.preventDefault());
}

function optionQuery() {
  const q = new URLSearchParams();
  for (const name of ['width', 'height']) {
    const v = $(name).value.trim();
    if (v !== '') q.set(name, v);
  }
  q.set('mode', $('mode').value);
  q.set('format', $('format').value);
  if ($('format').value !== 'png') q.set('quality', $('quality').value);
  return q.toString();
}

function showStep(status) {
  const order = ['UPLOAD', 'PENDING', 'IN_PROGRESS', 'SUCCESS'];
  const failed =
      status === 'FAILURE' || status === 'ERROR' || status === 'STOPPED';
  const at = failed ? -1 : order.indexOf(status);
  for (const li of $('steps').children) {
    const i = order.indexOf(li.dataset.step);
    li.className = '';
    if (failed) {
      if (li.dataset.step === 'SUCCESS') li.className = 'failed';
      else li.className = 'done';
    } else if (i < at || (status === 'SUCCESS' && i === at)) {
      li.className = 'done';
    } else if (i === at) {
      li.className = 'active';
    }
  }
  if (failed) {
    $('steps').lastElementChild.textContent = status === 'FAILURE' ? 'Failed'
      : status === 'STOPPED' ? 'No answer' : 'Rejected';
  } else {
    $('steps').lastElementChild.textContent = 'Done';
  }
  const badge = $('status');
  badge.dataset.status = status;
  badge.textContent = status === 'UPLOAD' ? 'UPLOADING' : status;
}

function showError(message) {
  $('error').hidden = false;
  $('error').textContent = message;
}

function tickElapsed() {
  $('elapsed').textContent = `${((performance.now() - startedAt) / 1000)
    .toFixed(2)} s`;
}

async function submit(e) {
  e.preventDefault();
  if (!chosen) return;
  clearTimeout(pollTimer);
  activeToken = null;
  $('result').hidden = false;
  $('output').hidden = true;
  $('error').hidden = true;
  $('token').textContent = '';
  const img = $('result-img');
  img.onload = null;
  img.onerror = null;
  img.removeAttribute('src');
  $('submit').disabled = true;
  startedAt = performance.now();
  showStep('UPLOAD');
  tickElapsed();
  try {
    const res = await fetch(`/api/v1/resize?${optionQuery()}`, {
      method: 'POST',
      headers: Object.assign(
          {'Content-Type': chosen.type || 'application/octet-stream'},
          authHeaders()),
      body: chosen,
    });
    const body = await res.json().catch(() => null);
    if (res.status !== 202 || !body || !body.token) {
      showStep('ERROR');
      const err = body && body.error;
      showError(err ? `${res.status} ${err.code}: ${err.message}`
                    : `HTTP ${res.status}`);
      return;
    }
    $('token').textContent = body.token;
    showStep('PENDING');
    activeToken = body.token;
    poll(body.token);
  } catch (err) {
    showStep('ERROR');
    showError(`network error: ${err.message}`);
  } finally {
    // (A file chosen meanwhile may be over the limit: then it stays off.)
    $('submit').disabled = !chosen;
  }
}

// The ?wait= of a status GET: WAIT_S, or less when this node's
// http.max-poll-wait (filled into the page by the server) is less, since a
// wait over it is refused (400 invalid_option). 0: plain polling.
function pollWaitSeconds() {
  const max = Number($('result').dataset.maxPollWait);
  return Number.isFinite(max) && max >= 0 ? Math.min(WAIT_S, Math.floor(max))
                                          : 0;
}

// Auth headers for the API (X-API-Key) when the user gave a key; the key is
// kept in localStorage so a reload does not lose it.
function authHeaders() {
  const key = $('apikey').value.trim();
  try { localStorage.setItem('resized.apikey', key); } catch (e) {}
  return key ? {'X-API-Key': key} : {};
}

// Answers after which the task may still finish: the node, or a proxy in
// front of it, could not answer this time (502; 503 store_unavailable,
// shutting_down; 504 timeout). Polling goes on after them, as after a
// network error; a 4xx (unknown_token, unauthorized, ...) or another 5xx
// is final.
function transient(status) {
  return status === 502 || status === 503 || status === 504;
}

// The pause before asking again after a transient answer: its Retry-After
// (seconds), within [POLL_MS, RETRY_MAX_MS], else RETRY_MS.
function retryDelay(res) {
  const value = res ? res.headers.get('Retry-After') : null;
  const s = value === null || value.trim() === '' ? NaN : Number(value);
  if (!Number.isFinite(s) || s < 0) return RETRY_MS;
  return Math.min(Math.max(s * 1000, POLL_MS), RETRY_MAX_MS);
}

// Long poll: the server holds each GET up to pollWaitSeconds() and answers
// as soon as the task is final, so the result shows without delay; in
// between the page still sees PENDING -> IN_PROGRESS at least every WAIT_S.
// On a node that takes no wait (http.max-poll-wait=0) it polls plainly,
// POLL_MS apart. `troubleSince` is when the transient failures in a row
// began (0: the last poll was answered): after GIVE_UP_MS of them the page
// stops and says so.
async function poll(token, troubleSince = 0) {
  if (token !== activeToken) return;
  const wait = pollWaitSeconds();
  let res = null;
  let rec = null;
  let problem = null; // why this poll has no record to show
  try {
    const query = wait > 0 ? `?wait=${wait}` : '';
    res = await fetch(`/api/v1/resize/${token}${query}`,
                      {cache: 'no-store', headers: authHeaders()});
    // A proxy's error page is not JSON.
    rec = await res.json().catch(() => null);
  } catch (err) {
    problem = `network error: ${err.message}`;
  }
  if (token !== activeToken) return;
  if (res && !res.ok) {
    const err = rec && rec.error;
    const text = err ? `${res.status} ${err.code}: ${err.message}`
                     : `HTTP ${res.status}`;
    if (!transient(res.status)) {
      showStep('ERROR');
      showError(text);
      return;
    }
    problem = text;
    rec = null;
  } else if (res && !(rec && rec.status)) {
    problem = `HTTP ${res.status}: not a status record`;
    rec = null;
  }
  tickElapsed();
  if (problem) {
    const now = performance.now();
    const since = troubleSince || now;
    if (now - since >= GIVE_UP_MS) {
      showStep('STOPPED');
      showError(`no answer for ${Math.round((now - since) / 1000)} s ` +
                `(last: ${problem}): stopped following the task, which ` +
                `may still finish; its status: /api/v1/resize/${token}`);
      return;
    }
    const delay = retryDelay(res);
    showError(`${problem}: asking again in ${(delay / 1000).toFixed(1)} s`);
    pollTimer = setTimeout(() => poll(token, since), delay);
    return;
  }
  $('error').hidden = true; // a retry's note, if any
  showStep(rec.status);
  if (rec.status === 'SUCCESS') return showResult(rec);
  if (rec.status === 'FAILURE') {
    const err = rec.error || {};
    return showError(`${err.code || 'failed'}: ${err.message || ''}`);
  }
  // The server already waited: ask again at once; when it did not wait,
  // after a pause.
  pollTimer = setTimeout(() => poll(token), wait > 0 ? 0 : POLL_MS);
}

function showResult(rec) {
  const img = $('result-img');
  img.onload = () => {
    $('output').hidden = false;
    img.dataset.loaded = 'true';
  };
  // The task succeeded but its image did not come (expired, or the
  // connection failed): say so rather than show nothing.
  img.onerror = () => {
    img.dataset.loaded = 'error';
    showError(`the result could not be loaded from ${rec.resized_image_url}` +
              ' (expired, or the connection failed)');
  };
  img.dataset.loaded = 'false';
  img.width = rec.width;
  img.height = rec.height;
  img.src = rec.resized_image_url;
  $('result-dims').textContent = `${rec.width} × ${rec.height}`;
  $('result-bytes').textContent = `${withThousands(rec.bytes)} bytes`;
  $('result-bytes').title = formatBytes(rec.bytes);
  $('result-format').textContent = rec.format.toUpperCase();
  $('result-link').href = rec.resized_image_url;
}

function setupOptions() {
  // The node's limits, filled into the page by the server: a start value
  // above this node's max-dimension would fail the form's own check.
  for (const name of ['width', 'height']) {
    const input = $(name);
    if (Number(input.value) > Number(input.max)) input.value = input.max;
  }
  const limit = maxUploadBytes();
  if (limit !== Infinity) {
    $('size-limit').textContent = ` · up to ${formatSize(limit)}`;
  }
  $('quality').addEventListener('input',
    () => { $('quality-out').textContent = $('quality').value; });
  const lossless = () => {
    $('quality').disabled = $('format').value === 'png';
  };
  $('format').addEventListener('change', lossless);
  lossless();
  $('options').addEventListener('submit', submit);
}

// -- cluster panel --------------------------------------------------------------
// Nodes, workers, queue, done and failed come from /api/v1/cluster (this API
// node's supervisor); tasks per second from deltas of resized_tasks_total in
// /metrics.

// Parses the Prometheus text format into [{name, labels, value}].
function parseMetrics(text) {
  const out = [];
  for (const line of text.split('\n')) {
    if (line === '' || line[0] === '#') continue;
    const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{(.*)\})?\s+(\S+)/.exec(line);
    if (!m) continue;
    const labels = {};
    if (m[3]) {
      const re = /([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"/g;
      let l;
      while ((l = re.exec(m[3])) !== null) {
        labels[l[1]] = l[2].replace(/\\n/g, '\n').replace(/\\(.)/g, '$1');
      }
    }
    out.push({name: m[1], labels, value: Number(m[4])});
  }
  return out;
}

function sumOf(samples, name, filter = () => true) {
  return samples.filter((s) => s.name === name && filter(s.labels))
    .reduce((acc, s) => acc + s.value, 0);
}

const history = []; // tasks/s samples, newest last
let lastTasks = null; // {t, total}

function drawSpark() {
  const w = 300;
  const h = 48;
  const n = 60;
  const data = history.slice(-n);
  const max = Math.max(1, ...data);
  const step = w / (n - 1);
  const x0 = w - (data.length - 1) * step;
  const pts = data.map((v, i) =>
    `${(x0 + i * step).toFixed(1)},${(h - 3 - (v / max) * (h - 8)).toFixed(1)}`);
  if (pts.length < 2) return;
  $('spark-line').setAttribute('d', `M${pts.join('L')}`);
  $('spark-area').setAttribute('d',
    `M${x0.toFixed(1)},${h}L${pts.join('L')}L${w},${h}Z`);
}

function renderNodes(view) {
  const rows = $('node-rows');
  rows.textContent = '';
  if (!view.nodes.length) {
    const tr = rows.insertRow();
    const td = tr.insertCell();
    td.colSpan = 5;
    td.className = 'muted';
    td.textContent = 'no worker nodes';
    return;
  }
  for (const n of view.nodes) {
    const tr = rows.insertRow();
    const name = tr.insertCell();
    name.textContent = n.id;
    name.title = `${n.address} · resized ${n.version} · up since ${n.up_since}`;
    // A node shutting down takes no new tasks: say so beside its role.
    tr.insertCell().textContent =
      n.state === 'leaving' ? `${n.role} · leaving` : n.role;
    const busy = tr.insertCell();
    busy.textContent = `${n.busy} / ${n.workers}`;
    const bar = document.createElement('div');
    bar.className = 'bar';
    const fill = document.createElement('span');
    fill.style.width = `${n.workers ? (100 * n.busy) / n.workers : 0}%`;
    bar.appendChild(fill);
    busy.appendChild(bar);
    tr.insertCell().textContent = withThousands(n.tasks_done);
    tr.insertCell().textContent = withThousands(n.tasks_failed);
  }
}

async function refreshCluster() {
  try {
    const [cres, mres] = await Promise.all([
      fetch('/api/v1/cluster', {cache: 'no-store', headers: authHeaders()}),
      fetch('/metrics', {cache: 'no-store', headers: authHeaders()}),
    ]);
    if (cres.ok) {
      const view = await cres.json();
      $('cluster-node').textContent = `${view.node} · ${view.role}`;
      $('m-nodes').textContent = view.totals.nodes;
      $('m-workers').textContent = `${view.totals.busy} / ${view.totals.workers}`;
      $('m-queue').textContent = view.queue_depth;
      $('m-done').textContent = withThousands(view.totals.succeeded);
      $('m-failed').textContent = withThousands(view.totals.failed);
      $('m-failed').parentElement.classList.toggle('bad',
                                                   view.totals.failed > 0);
      renderNodes(view);
    }
    if (mres.ok) {
      const samples = parseMetrics(await mres.text());
      const ok = sumOf(samples, 'resized_tasks_total',
        (l) => l.status === 'SUCCESS');
      const failed = sumOf(samples, 'resized_tasks_total',
        (l) => l.status === 'FAILURE');
      const now = performance.now();
      const total = ok + failed;
      if (lastTasks) {
        const dt = (now - lastTasks.t) / 1000;
        const rate = dt > 0 ? Math.max(0, total - lastTasks.total) / dt : 0;
        history.push(rate);
        if (history.length > 120) history.shift();
        $('m-rate').textContent = rate < 10 ? rate.toFixed(1)
                                            : Math.round(rate);
        drawSpark();
      }
      lastTasks = {t: now, total};
    }
  } catch (err) {
    // The service is restarting or unreachable: keep the last numbers.
  }
  setTimeout(refreshCluster, CLUSTER_MS);
}

async function refreshHealth() {
  const el = $('health');
  try {
    const res = await fetch('/readyz', {cache: 'no-store'});
    const body = await res.json();
    el.dataset.state = res.ok ? 'ready' : 'down';
    $('health-text').textContent = res.ok ? 'ready'
      : `not ready: ${body.error ? body.error.code : res.status}`;
    el.title = res.ok ? 'GET /readyz: 200' : (body.error || {}).message || '';
  } catch (err) {
    el.dataset.state = 'down';
    $('health-text').textContent = 'unreachable';
  }
  setTimeout(refreshHealth, 5000);
}

try {
  $('apikey').value = localStorage.getItem('resized.apikey') || '';
} catch (e) {}
setupDropzone();
setupOptions();
refreshCluster();
refreshHealth();
