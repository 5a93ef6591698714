// Shared page helpers: the message log and media rendering. Text is set with textContent only.

export const $ = (id) => document.getElementById(id);

export function log(message) {
  const line = document.createElement('div');
  line.textContent = message;
  const box = $('messages');
  box.appendChild(line);
  box.scrollTop = box.scrollHeight;
}

/** Show a call's media in the page's remote and local elements. */
export function render(call) {
  if (!call) return;
  const remote = call.remoteStream;
  const hasVideo = remote.getVideoTracks().length > 0;
  $('remote-video').srcObject = hasVideo ? remote : null;
  $('remote-audio').srcObject = hasVideo ? null : remote;
  const local = call.localStream;
  $('local-video').srcObject = local && local.getVideoTracks().length ? local : null;
}

export function clearMedia() {
  for (const id of ['remote-video', 'remote-audio', 'local-video']) $(id).srcObject = null;
}

export function cell(row, text) {
  const td = document.createElement('td');
  td.textContent = text;
  row.appendChild(td);
  return td;
}

export function button(parent, label, onClick) {
  const b = document.createElement('button');
  b.type = 'button';
  b.textContent = label;
  b.addEventListener('click', onClick);
  parent.appendChild(b);
  return b;
}
