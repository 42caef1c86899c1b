// Concord web console: browse, view, edit and delete keys and watch the
// cluster, over the gateway's Connect JSON API. No framework, no build.
'use strict';

const $ = (selector) => document.querySelector(selector);

// rpc calls a concord.v1 method with the Connect protocol (JSON) and returns
// the response message; a failure throws an Error with the Connect code.
async function rpc(service, method, request) {
  const res = await fetch(`/concord.v1.${service}/${method}`, {
    method: 'POST',
    headers: { 'Content-Type': 'application/json', 'Connect-Protocol-Version': '1' },
    body: JSON.stringify(request || {}),
  });
  const text = await res.text();
  let body = {};
  try {
    body = text ? JSON.parse(text) : {};
  } catch {
    body = { message: text };
  }
  if (!res.ok) {
    const err = new Error(body.message || `${res.status} ${res.statusText}`);
    err.code = body.code || 'unknown';
    throw err;
  }
  return body;
}

// Values travel as base64 (protobuf bytes in JSON).
function toBase64(bytes) {
  let binary = '';
  for (let i = 0; i < bytes.length; i += 0x8000) {
    binary += String.fromCharCode.apply(null, bytes.subarray(i, i + 0x8000));
  }
  return btoa(binary);
}

function fromBase64(b64) {
  const binary = atob(b64 || '');
  const bytes = new Uint8Array(binary.length);
  for (let i = 0; i < binary.length; i++) bytes[i] = binary.charCodeAt(i);
  return bytes;
}

// utf8 decodes bytes as text, or returns null for anything else.
function utf8(bytes) {
  try {
    return new TextDecoder('utf-8', { fatal: true }).decode(bytes);
  } catch {
    return null;
  }
}

function formatTTL(kv) {
  return kv.ttlSeconds === undefined ? '—' : `${kv.ttlSeconds} s`;
}

let messageTimer;
function say(text, isError) {
  const el = $('#message');
  el.textContent = text;
  el.classList.toggle('error', Boolean(isError));
  clearTimeout(messageTimer);
  messageTimer = setTimeout(() => { el.textContent = ''; }, isError ? 8000 : 3000);
}

// --- key browser --------------------------------------------------------------

// cursors[i] is the cursor of page i (the first page has none); seq numbers
// the requests so that a slow answer never overwrites a newer one.
const listing = { prefix: '', limit: 25, cursors: [''], page: 0, next: '', seq: 0 };

async function list() {
  const seq = ++listing.seq;
  try {
    const res = await rpc('KVService', 'List', {
      prefix: listing.prefix,
      limit: listing.limit,
      cursor: listing.cursors[listing.page],
      keysOnly: true,
      withTtl: true,
    });
    if (seq !== listing.seq) return;
    renderKeys(res.kvs || []);
    listing.next = res.nextCursor || '';
    $('#prev').disabled = listing.page === 0;
    $('#next').disabled = listing.next === '';
    $('#page').textContent = `Page ${listing.page + 1}`;
  } catch (err) {
    say(`Listing failed: ${err.message}`, true);
  }
}

function renderKeys(kvs) {
  const tbody = $('#keys tbody');
  tbody.replaceChildren();
  for (const kv of kvs) {
    const row = document.createElement('tr');
    row.dataset.key = kv.key;
    row.tabIndex = 0;
    for (const text of [kv.key, kv.modRevision, kv.version, formatTTL(kv)]) {
      const cell = document.createElement('td');
      cell.textContent = text;
      row.append(cell);
    }
    row.classList.toggle('selected', kv.key === editing.key);
    tbody.append(row);
  }
  $('#empty').hidden = kvs.length > 0;
}

function search(event) {
  event.preventDefault();
  listing.prefix = $('#prefix').value;
  listing.limit = Number($('#limit').value);
  listing.cursors = [''];
  listing.page = 0;
  list();
}

function openRow(event) {
  const row = event.target.closest('tr[data-key]');
  if (row && (event.type === 'click' || event.key === 'Enter')) open(row.dataset.key);
}

// --- editor ---------------------------------------------------------------------

// editing is the key in the editor: its mod revision (for a safe save) and
// whether the value is binary (shown as base64). A new key has no revision.
const editing = { key: '', revision: '', binary: false, isNew: false };

async function open(key) {
  try {
    const res = await rpc('KVService', 'Get', { key, withTtl: true });
    const kv = res.kv;
    const bytes = fromBase64(kv.value);
    const text = utf8(bytes);
    Object.assign(editing, { key: kv.key, revision: kv.modRevision, binary: text === null, isNew: false });
    $('#editor-title').textContent = 'Edit key';
    $('#edit-key').value = kv.key;
    $('#edit-key').readOnly = true;
    $('#edit-content-type').value = kv.contentType || '';
    $('#edit-value').value = text === null ? toBase64(bytes) : text;
    $('#edit-encoding').textContent = text === null ? '(binary, shown as base64)' : '';
    $('#edit-ttl').value = kv.ttlSeconds === undefined ? '' : kv.ttlSeconds;
    $('#edit-meta').textContent = `revision ${kv.modRevision}, created at ${kv.createRevision}, ` +
      `version ${kv.version}; read from ${res.header.nodeId} at ${res.header.revision}`;
    $('#delete').hidden = false;
    disarmDelete();
    $('#editor').hidden = false;
    for (const row of document.querySelectorAll('#keys tbody tr')) {
      row.classList.toggle('selected', row.dataset.key === kv.key);
    }
  } catch (err) {
    say(`Cannot open ${key}: ${err.message}`, true);
  }
}

function newKey() {
  Object.assign(editing, { key: '', revision: '', binary: false, isNew: true });
  $('#editor-title').textContent = 'New key';
  $('#edit-key').value = listing.prefix;
  $('#edit-key').readOnly = false;
  $('#edit-content-type').value = 'application/json';
  $('#edit-value').value = '';
  $('#edit-encoding').textContent = '';
  $('#edit-ttl').value = '';
  $('#edit-meta').textContent = '';
  $('#delete').hidden = true;
  $('#editor').hidden = false;
  $('#edit-key').focus();
}

function closeEditor() {
  editing.key = '';
  $('#editor').hidden = true;
  for (const row of document.querySelectorAll('#keys tbody tr.selected')) row.classList.remove('selected');
}

async function save(event) {
  event.preventDefault();
  const key = $('#edit-key').value;
  const contentType = $('#edit-content-type').value.trim();
  const text = $('#edit-value').value;
  let value;
  if (editing.binary) {
    try {
      value = toBase64(fromBase64(text.trim()));
    } catch {
      say('The value is not valid base64.', true);
      return;
    }
  } else {
    if (contentType.split(';')[0].trim() === 'application/json') {
      try {
        JSON.parse(text);
      } catch (err) {
        say(`The value is not valid JSON: ${err.message}`, true);
        return;
      }
    }
    value = toBase64(new TextEncoder().encode(text));
  }
  const ttl = $('#edit-ttl').value.trim();
  const request = { key, value, contentType, ttlSeconds: ttl === '' ? '0' : ttl };
  // Never overwrite someone else's write: a new key must not exist, an
  // edited one must still be at the revision that was read.
  if (editing.isNew) request.ifAbsent = true;
  else request.ifModRevision = editing.revision;
  try {
    const res = await rpc('KVService', 'Put', request);
    await Promise.all([open(key), list()]);
    say(`Saved ${key} at revision ${res.header.revision}.`);
  } catch (err) {
    if (err.code === 'failed_precondition') {
      say(editing.isNew ? `${key} already exists.` : `${key} changed since you opened it: reopen it and edit again.`, true);
    } else {
      say(`Save failed: ${err.message}`, true);
    }
  }
}

// Delete asks twice: the first click arms the button for five seconds.
let disarmTimer;
function disarmDelete() {
  clearTimeout(disarmTimer);
  const button = $('#delete');
  button.classList.remove('armed');
  button.textContent = 'Delete';
}

async function remove() {
  const button = $('#delete');
  if (!button.classList.contains('armed')) {
    button.classList.add('armed');
    button.textContent = 'Really delete?';
    disarmTimer = setTimeout(disarmDelete, 5000);
    return;
  }
  disarmDelete();
  const key = editing.key;
  try {
    const res = await rpc('KVService', 'Delete', { key, ifModRevision: editing.revision });
    closeEditor();
    await list();
    say(res.deleted ? `Deleted ${key}.` : `${key} was already gone.`);
  } catch (err) {
    say(err.code === 'failed_precondition' ? `${key} changed since you opened it: not deleted.` : `Delete failed: ${err.message}`, true);
  }
}

// --- cluster ----------------------------------------------------------------------

async function status() {
  try {
    const st = await rpc('ClusterService', 'Status', {});
    $('#status-leader').textContent = st.leaderId || 'none';
    $('#status-revision').textContent = st.appliedIndex || '0';
    $('#status-term').textContent = st.term || '0';
    const members = st.members || [];
    $('#status-members').textContent = members.length;
    const tbody = $('#members tbody');
    tbody.replaceChildren();
    for (const m of members) {
      const row = document.createElement('tr');
      row.dataset.member = m.id;
      const id = document.createElement('td');
      id.textContent = m.id;
      const api = document.createElement('td');
      api.textContent = m.apiAddress || '—';
      const role = document.createElement('td');
      if (m.leader) {
        const badge = document.createElement('span');
        badge.className = 'badge';
        badge.textContent = 'leader';
        role.append(badge);
      } else {
        role.textContent = m.suffrage === 'SUFFRAGE_NONVOTER' ? 'non-voter' : 'follower';
      }
      row.append(id, api, role);
      tbody.append(row);
    }
  } catch (err) {
    $('#status-leader').textContent = 'unknown';
    say(`Cluster status: ${err.message}`, true);
  }
}

document.addEventListener('DOMContentLoaded', () => {
  $('#search').addEventListener('submit', search);
  $('#keys tbody').addEventListener('click', openRow);
  $('#keys tbody').addEventListener('keydown', openRow);
  $('#prev').addEventListener('click', () => { listing.page--; list(); });
  $('#next').addEventListener('click', () => {
    listing.cursors[listing.page + 1] = listing.next;
    listing.page++;
    list();
  });
  $('#new-key').addEventListener('click', newKey);
  $('#edit-form').addEventListener('submit', save);
  $('#delete').addEventListener('click', remove);
  $('#close').addEventListener('click', closeEditor);
  list();
  status();
  setInterval(status, 5000);
});
