// The "Voice and Video Calls" page: log in, make, answer, reject and end calls; every call is
// listed and tracked by its own id.

import { Client } from './client.js';
import { CallManager, isTerminal, states } from './calls.js';
import { $, button, cell, clearMedia, log, render } from './ui.js';

const client = new Client({ onState: onConnection });
const calls = new CallManager(client);
window.softphone = { client, calls, states };

let connectedOnce = false;

function onConnection(state, detail = {}) {
  if (state === 'connected') {
    $('auth-state').textContent = 'Subscribed: true';
    if (connectedOnce) {
      log('Reconnected' + (detail.resumed ? ': resumed, nothing missed.' : '.'));
      return;
    }
    connectedOnce = true;
    log('Subscription state changed.');
    log('Subscribed services: ' + client.subscription.services.join(', '));
  } else if (state === 'reconnecting') {
    $('auth-state').textContent = 'Subscribed: true (reconnecting)';
  } else if (state === 'resync') {
    log('Missed notifications; resynchronising calls.');
  } else if (state === 'gone') {
    $('auth-state').textContent = 'Subscribed: false';
    log('Subscription ended: ' + (detail.reason || 'closed'));
  } else if (state === 'error') {
    log('Subscription error: ' + detail.message + ' (' + detail.code + ')');
  }
}

$('login-form').addEventListener('submit', async (event) => {
  event.preventDefault();
  const username = $('username').value.trim();
  try {
    await client.login(username, $('password').value);
    $('password').value = '';
    log('Credentials set');
    await client.subscribe();
    client.connect();
    $('login').disabled = true;
    $('logout').disabled = false;
  } catch (err) {
    log('Connect error: ' + err.message + ' (' + (err.code || 'error') + ')');
  }
});

$('logout').addEventListener('click', async () => {
  try {
    await client.logout();
  } catch (err) {
    log('Error: ' + err.message);
  }
  $('auth-state').textContent = 'Subscribed: false';
  $('login').disabled = false;
  $('logout').disabled = true;
  log('Credentials unset');
});

$('make-call').addEventListener('click', () => {
  const callee = $('callee').value.trim();
  if (!client.loggedIn) {
    log('Error: log in first.');
    return;
  }
  if (!callee) {
    log('Error: Please provide the callee.');
    return;
  }
  log('Making call to ' + callee);
  calls.make(callee, { video: $('make-with-video').checked });
  refresh();
});

function answer(id) {
  const call = calls.getById(id);
  log('Answering call from ' + call.remoteParty);
  calls.answer(id, { video: $('answer-with-video').checked });
}

function reject(id) {
  log('Rejecting call from ' + calls.getById(id).remoteParty);
  calls.reject(id);
}

function end(id) {
  log('Ending call with ' + calls.getById(id).remoteParty);
  calls.end(id);
}

function hold(id, on) {
  log((on ? 'Holding' : 'Resuming') + ' call with ' + calls.getById(id).remoteParty);
  calls.hold(id, on);
}

calls.on('call:start', () => log('Call successfully started. Waiting for response.'));
calls.on('call:error', (params) => log('Error: Encountered error on call: ' + params.error.message));
calls.on('call:receive', (params) => {
  const call = calls.getById(params.callId);
  log('Received incoming call from ' + call.remoteParty + (call.media.video ? ' (with video)' : ''));
  refresh();
});
calls.on('call:stateChange', (params) => {
  const call = calls.getById(params.callId);
  if (params.error && params.error.message) log('Error: ' + params.error.message);
  log('Call state changed from ' + params.previous.state + ' to ' + call.state + ' (' + call.remoteParty + ')');
  if (call.state === states.ENDED || call.state === states.CANCELLED) {
    log('Call with ' + call.remoteParty + ' ended' + (call.endReason ? ' (' + call.endReason + ')' : ''));
    const active = calls.getAll().filter((c) => !isTerminal(c.state) && c.pc);
    if (active.length) render(active[active.length - 1]);
    else clearMedia();
  }
  refresh();
});
calls.on('call:newTrack', (params) => render(calls.getById(params.callId)));
calls.on('call:trackEnded', (params) => {
  const call = calls.getById(params.callId);
  if (!isTerminal(call.state)) render(call);
});

function refresh() {
  const body = $('calls').querySelector('tbody');
  body.replaceChildren();
  for (const call of calls.getAll()) {
    const row = document.createElement('tr');
    row.dataset.callId = call.id;
    if (isTerminal(call.state)) row.className = 'ended';
    cell(row, call.id);
    cell(row, call.direction);
    cell(row, call.remoteParty + (call.anonymous ? ' (anonymous)' : ''));
    cell(row, call.state).className = 'state';
    cell(row, call.media.video ? 'audio+video' : 'audio');
    const actions = cell(row, '');
    const unanswered = call.state === states.INITIATED || call.state === states.RINGING;
    if (call.direction === 'incoming' && unanswered) {
      button(actions, 'Answer', () => answer(call.id)).className = 'answer';
      button(actions, 'Reject', () => reject(call.id)).className = 'reject';
    }
    if (call.state === states.CONNECTED) button(actions, 'Hold', () => hold(call.id, true)).className = 'hold';
    if (call.state === states.ON_HOLD && call.localHold) button(actions, 'Unhold', () => hold(call.id, false)).className = 'unhold';
    if (!isTerminal(call.state)) button(actions, 'End', () => end(call.id)).className = 'end';
    body.appendChild(row);
  }
}
