// rustico's page: plain JavaScript, no build step. It talks to the daemon
// only through Transmission's RPC at /transmission/rpc, and refreshes once
// a second. Text from torrents (names, clients) goes in with textContent,
// never as HTML.
'use strict';

const RPC = '/transmission/rpc';
const REFRESH_MS = 1000;
const STATUS = ['Stopped', 'Check queued', 'Checking', 'Download queued', 'Downloading', 'Seed queued', 'Seeding'];
const LIST_FIELDS = ['id', 'name', 'percentDone', 'totalSize', 'rateDownload', 'rateUpload', 'eta',
  'peersConnected', 'uploadRatio', 'status', 'error', 'errorString', 'metadataPercentComplete'];
const DETAIL_FIELDS = ['id', 'name', 'peers', 'pieces', 'pieceCount', 'rusticoDownloadingPieces',
  'files', 'fileStats', 'trackerStats'];

// The daemon writes the session id into the page, so the first request
// needs no 409 round trip (browsers log a 409 as an error).
let sessionId = (document.querySelector('meta[name="x-transmission-session-id"]') || {}).content || '';
let selected = null;
let tab = 'peers';

async function rpc(method, args) {
  const body = JSON.stringify({ method: method, arguments: args || {} });
  for (let attempt = 0; attempt < 2; attempt++) {
    const response = await fetch(RPC, {
      method: 'POST',
      headers: { 'Content-Type': 'application/json', 'X-Transmission-Session-Id': sessionId },
      body: body,
      credentials: 'same-origin',
    });
    if (response.status === 409) {
      sessionId = response.headers.get('X-Transmission-Session-Id') || '';
      continue;
    }
    if (!response.ok) {
      throw new Error(method + ': HTTP ' + response.status);
    }
    const answer = await response.json();
    if (answer.result !== 'success') {
      throw new Error(method + ': ' + answer.result);
    }
    return answer.arguments;
  }
  throw new Error(method + ': no session id');
}

function bytes(n) {
  if (!(n > 0)) return '0 B';
  const units = ['B', 'kB', 'MB', 'GB', 'TB'];
  let i = 0;
  while (n >= 1000 && i < units.length - 1) { n /= 1000; i++; }
  return (i === 0 ? n.toFixed(0) : n.toFixed(n < 10 ? 2 : 1)) + ' ' + units[i];
}

function rate(n) { return n > 0 ? bytes(n) + '/s' : '–'; }

function eta(seconds) {
  if (seconds < 0) return '–';
  if (seconds < 60) return seconds + ' s';
  if (seconds < 3600) return Math.floor(seconds / 60) + ' min';
  return Math.floor(seconds / 3600) + ' h ' + Math.floor((seconds % 3600) / 60) + ' min';
}

function el(tag, text, cls) {
  const e = document.createElement(tag);
  if (text !== undefined && text !== null) e.textContent = String(text);
  if (cls) e.className = cls;
  return e;
}

function progressBar(fraction) {
  const td = el('td');
  const bar = el('span', null, 'bar');
  const fill = el('span');
  fill.style.width = (Math.max(0, Math.min(1, fraction)) * 100).toFixed(1) + '%';
  bar.appendChild(fill);
  td.appendChild(bar);
  td.appendChild(el('span', (fraction * 100).toFixed(1) + '%', 'bar-label'));
  return td;
}

function button(text, cls, onClick) {
  const b = el('button', text, cls);
  b.type = 'button';
  b.addEventListener('click', (event) => { event.stopPropagation(); onClick(b); });
  return b;
}

async function act(method, id, extra) {
  try {
    await rpc(method, Object.assign({ ids: [id] }, extra || {}));
    await refresh();
  } catch (e) {
    showError(e);
  }
}

function showError(e) {
  const out = document.getElementById('add-result');
  out.textContent = String(e.message || e);
  out.className = 'error';
}

function renderTorrents(torrents) {
  const tbody = document.querySelector('#torrents tbody');
  tbody.replaceChildren();
  document.getElementById('empty').hidden = torrents.length > 0;
  for (const t of torrents) {
    const tr = el('tr');
    tr.dataset.id = t.id;
    if (t.id === selected) tr.className = 'selected';
    tr.appendChild(el('td', t.name, 'name'));
    tr.appendChild(progressBar(t.percentDone));
    tr.appendChild(el('td', bytes(t.totalSize), 'num'));
    tr.appendChild(el('td', rate(t.rateDownload), 'num'));
    tr.appendChild(el('td', rate(t.rateUpload), 'num'));
    tr.appendChild(el('td', eta(t.eta), 'num'));
    tr.appendChild(el('td', t.peersConnected, 'num peers'));
    tr.appendChild(el('td', t.uploadRatio < 0 ? '–' : t.uploadRatio.toFixed(2), 'num'));
    let state = STATUS[t.status] || ('status ' + t.status);
    if (t.metadataPercentComplete < 1 && t.status !== 0) state = 'Fetching metadata';
    const stateCell = el('td', t.error ? 'Error: ' + t.errorString : state, t.error ? 'state error' : 'state');
    tr.appendChild(stateCell);
    const actions = el('td');
    if (t.status === 0) {
      actions.appendChild(button('Resume', 'resume', () => act('torrent-start', t.id)));
    } else {
      actions.appendChild(button('Pause', 'pause', () => act('torrent-stop', t.id)));
    }
    actions.appendChild(button('Remove', 'danger remove', (b) => {
      if (b.dataset.armed) {
        act('torrent-remove', t.id, { 'delete-local-data': false });
        if (selected === t.id) selected = null;
      } else {
        b.dataset.armed = '1';
        b.textContent = 'Really remove?';
      }
    }));
    tr.appendChild(actions);
    tr.addEventListener('click', () => { selected = t.id; refresh(); });
    tbody.appendChild(tr);
  }
}

function decodeBits(b64, count) {
  const raw = atob(b64 || '');
  const have = new Uint8Array(count);
  for (let i = 0; i < count; i++) {
    const byte = raw.charCodeAt(i >> 3);
    have[i] = (byte >> (7 - (i & 7))) & 1;
  }
  return have;
}

function drawPieces(t) {
  const canvas = document.getElementById('piecemap');
  const count = t.pieceCount || 0;
  const have = decodeBits(t.pieces, count);
  const downloading = new Set(t.rusticoDownloadingPieces || []);
  const width = Math.max(1, Math.min(count, 2000));
  canvas.width = width;
  canvas.height = 1;
  const ctx = canvas.getContext('2d');
  const colors = getComputedStyle(document.documentElement);
  const cHave = colors.getPropertyValue('--have').trim();
  const cDown = colors.getPropertyValue('--downloading').trim();
  const cMiss = colors.getPropertyValue('--missing').trim();
  let haveCount = 0;
  for (let x = 0; x < width; x++) {
    const first = Math.floor(x * count / width);
    const last = Math.max(first + 1, Math.floor((x + 1) * count / width));
    let all = true, any = false;
    for (let p = first; p < last; p++) {
      if (have[p]) any = true; else all = false;
      if (downloading.has(p)) any = true;
    }
    ctx.fillStyle = all ? cHave : (any ? cDown : cMiss);
    ctx.fillRect(x, 0, 1, 1);
  }
  for (let p = 0; p < count; p++) haveCount += have[p];
  canvas.dataset.have = haveCount;
  canvas.dataset.total = count;
  document.getElementById('piece-count').textContent =
    haveCount + ' of ' + count + ' pieces, ' + downloading.size + ' downloading';
}

function renderDetail(t) {
  const section = document.getElementById('detail');
  if (!t) { section.hidden = true; return; }
  section.hidden = false;
  document.getElementById('detail-name').textContent = t.name;
  const peers = document.querySelector('#peers tbody');
  peers.replaceChildren();
  for (const p of t.peers || []) {
    const tr = el('tr', null, 'peer');
    tr.appendChild(el('td', p.port ? p.address + ':' + p.port : p.address, 'address'));
    tr.appendChild(el('td', p.clientName, 'client'));
    tr.appendChild(el('td', p.flagStr + (p.isEncrypted ? 'E' : ''), 'flags'));
    tr.appendChild(el('td', rate(p.rateToClient), 'num'));
    tr.appendChild(el('td', rate(p.rateToPeer), 'num'));
    tr.appendChild(progressBar(p.progress));
    tr.appendChild(el('td', p.rusticoRequestsInFlight, 'num'));
    peers.appendChild(tr);
  }
  drawPieces(t);
  const files = document.querySelector('#files tbody');
  files.replaceChildren();
  (t.files || []).forEach((f) => {
    const tr = el('tr', null, 'file');
    tr.appendChild(el('td', f.name));
    tr.appendChild(progressBar(f.length ? f.bytesCompleted / f.length : 1));
    tr.appendChild(el('td', bytes(f.length), 'num'));
    files.appendChild(tr);
  });
  const trackers = document.querySelector('#trackers tbody');
  trackers.replaceChildren();
  for (const tr of t.trackerStats || []) {
    const row = el('tr', null, 'tracker');
    row.appendChild(el('td', tr.tier, 'num'));
    row.appendChild(el('td', tr.announce));
    row.appendChild(el('td', tr.lastAnnounceTime ? new Date(tr.lastAnnounceTime * 1000).toLocaleString() : 'never'));
    row.appendChild(el('td', tr.lastAnnounceResult || '–'));
    row.appendChild(el('td', tr.hasAnnounced ? tr.lastAnnouncePeerCount : '–', 'num'));
    trackers.appendChild(row);
  }
}

let refreshing = false;
async function refresh() {
  if (refreshing) return;
  refreshing = true;
  try {
    const list = await rpc('torrent-get', { fields: LIST_FIELDS });
    const torrents = list.torrents;
    if (selected === null && torrents.length > 0) selected = torrents[0].id;
    if (!torrents.some((t) => t.id === selected)) selected = torrents.length ? torrents[0].id : null;
    renderTorrents(torrents);
    if (selected !== null) {
      const detail = await rpc('torrent-get', { ids: [selected], fields: DETAIL_FIELDS });
      renderDetail(detail.torrents[0]);
    } else {
      renderDetail(null);
    }
    const stats = await rpc('session-stats');
    document.getElementById('totals').textContent =
      stats.torrentCount + ' torrents · down ' + rate(stats.downloadSpeed) + ' · up ' + rate(stats.uploadSpeed);
    document.getElementById('conn').textContent = 'updated ' + new Date().toLocaleTimeString();
  } catch (e) {
    document.getElementById('conn').textContent = 'daemon unreachable: ' + (e.message || e);
  } finally {
    refreshing = false;
  }
}

function readFileBase64(file) {
  return new Promise((resolve, reject) => {
    const reader = new FileReader();
    reader.onload = () => {
      const url = String(reader.result);
      resolve(url.slice(url.indexOf(',') + 1));
    };
    reader.onerror = () => reject(reader.error);
    reader.readAsDataURL(file);
  });
}

async function add(event) {
  event.preventDefault();
  const out = document.getElementById('add-result');
  const file = document.getElementById('add-file');
  const magnet = document.getElementById('add-magnet');
  try {
    let args;
    if (file.files.length > 0) {
      args = { metainfo: await readFileBase64(file.files[0]) };
    } else if (magnet.value.trim()) {
      args = { filename: magnet.value.trim() };
    } else {
      throw new Error('choose a .torrent file or paste a magnet link');
    }
    const answer = await rpc('torrent-add', args);
    const t = answer['torrent-added'] || answer['torrent-duplicate'];
    out.textContent = (answer['torrent-added'] ? 'Added ' : 'Already there: ') + t.name;
    out.className = 'muted';
    selected = t.id;
    file.value = '';
    magnet.value = '';
    await refresh();
  } catch (e) {
    showError(e);
  }
}

function showTab(name) {
  tab = name;
  for (const b of document.querySelectorAll('#tabs button')) {
    b.classList.toggle('active', b.dataset.tab === name);
  }
  for (const t of document.querySelectorAll('.tab')) {
    t.hidden = t.id !== 'tab-' + name;
  }
}

document.addEventListener('DOMContentLoaded', () => {
  document.getElementById('add-form').addEventListener('submit', add);
  for (const b of document.querySelectorAll('#tabs button')) {
    b.addEventListener('click', () => showTab(b.dataset.tab));
  }
  showTab(tab);
  refresh();
  setInterval(refresh, REFRESH_MS);
});
