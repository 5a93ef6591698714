// The "Anonymous Calls" page: call an account without logging in, in regular mode (caller and
// callee typed in) or token mode (a token set fetched from a token service). Tokens are never
// shown: not in the log, not in the page.

import { CallManager, isTerminal, states } from './calls.js';
import { $, cell, clearMedia, log, render } from './ui.js';

const calls = new CallManager(null);
window.softphone = { calls, states };

$('make-token-based-anonymous-call').addEventListener('change', () => {
  const tokens = $('make-token-based-anonymous-call').checked;
  $('caller-section').classList.toggle('hidden', tokens);
  $('callee-section').classList.toggle('hidden', tokens);
  $('token-section').classList.toggle('hidden', !tokens);
});

async function fetchTokenSet(url) {
  const target = new URL(url, window.location.href);
  if (target.origin !== window.location.origin) {
    throw new Error('the token service must be on this page\'s origin');
  }
  const response = await fetch(target, { credentials: 'same-origin', cache: 'no-store' });
  let data = null;
  try {
    data = await response.json();
  } catch {
    data = null;
  }
  if (!response.ok) {
    const message = data && data.error ? data.error.message : `HTTP ${response.status}`;
    throw new Error('token service: ' + message);
  }
  return data;
}

$('make-call').addEventListener('click', async () => {
  const tokenBased = $('make-token-based-anonymous-call').checked;
  const video = $('make-with-video').checked;
  let caller = $('caller').value.trim();
  let callee = $('callee').value.trim();
  if (!tokenBased && !caller) {
    log('Error: Please provide the primary contact for the caller.');
    return;
  }
  if (!tokenBased && !callee) {
    log('Error: Please provide the primary contact for the callee.');
    return;
  }
  if (tokenBased) {
    let data;
    try {
      data = await fetchTokenSet($('token-url').value.trim());
    } catch (err) {
      log('Error: ' + err.message);
      return;
    }
    caller = data.caller;
    callee = data.callee;
    log('Got a token set for realm ' + data.realm + ' (tokens are not shown)');
    log('Got Caller: ' + caller);
    log('Got Callee: ' + callee);
    const credentials = {
      realm: data.realm,
      accountToken: data.accountToken,
      fromToken: data.fromToken,
      toToken: data.toToken,
    };
    log('Making a token-based anonymous call to ' + callee);
    calls.makeAnonymous(callee, credentials, { from: caller, video });
  } else {
    log('Making a regular anonymous call to ' + callee);
    calls.makeAnonymous(callee, null, { from: caller, video });
  }
  refresh();
});

$('end-call').addEventListener('click', () => {
  const live = calls.getAll().filter((c) => !isTerminal(c.state));
  if (!live.length) {
    log('Error: no call to end.');
    return;
  }
  for (const call of live) {
    log('Ending call with ' + call.remoteParty);
    calls.end(call.id);
  }
});

calls.on('call:start', () => log('Call successfully started. Waiting for response.'));
calls.on('call:error', (params) => log('Encountered error on call: ' + params.error.message));
calls.on('call:stateChange', (params) => {
  const call = calls.getById(params.callId);
  if (params.error && params.error.message) log('Error: ' + params.error.message);
  log('Call state changed from ' + params.previous.state + ' to ' + call.state);
  if (isTerminal(call.state)) {
    log('Call with ' + call.remoteParty + ' ended' + (call.endReason ? ' (' + call.endReason + ')' : ''));
    clearMedia();
  }
  refresh();
});
calls.on('call:newTrack', (params) => render(calls.getById(params.callId)));

function refresh() {
  const body = $('calls').querySelector('tbody');
  body.replaceChildren();
  for (const call of calls.getAll()) {
    const row = document.createElement('tr');
    row.dataset.callId = call.id;
    if (isTerminal(call.state)) row.className = 'ended';
    cell(row, call.id);
    cell(row, call.from || '');
    cell(row, call.to || '');
    cell(row, call.state).className = 'state';
    body.appendChild(row);
  }
}
