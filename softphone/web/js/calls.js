// Calls for the browser pages: the same states and event names as the Python engine
// (softphone/engine): call:start, call:receive, call:stateChange (with the previous state),
// call:newTrack, call:trackEnded, call:error. Every call is tracked by its own id; there is no
// single "current call".
//
// WebRTC: an RTCPeerConnection per call with the subscription's ICE servers (an anonymous call:
// those the server gives for it before the offer). Trickle ICE (protocol v1 extension, §3.3
// `candidates`): an offer or answer is sent at once, with whatever candidates it has, and each
// candidate found later goes to POST /v1/calls/{id}/candidates (an empty body at the end of
// candidates) once the description it belongs to has been sent; the other party's arrive as
// `call.candidate` notifications. `new CallManager(client, {trickle: false})` waits for the
// complete gathering instead (what every protocol v1 client did before).

import { ApiError, Client, rtcIceServers } from './client.js';

export const states = Object.freeze({
  INITIATING: 'Initiating',
  INITIATED: 'Initiated',
  RINGING: 'Ringing',
  CONNECTED: 'Connected',
  ON_HOLD: 'On Hold',
  CANCELLED: 'Cancelled',
  ENDED: 'Ended',
});

const TERMINAL = new Set([states.CANCELLED, states.ENDED]);
const GATHER_TIMEOUT_MS = 5000;

export function isTerminal(state) {
  return TERMINAL.has(state);
}

/** Resolve once ICE gathering is complete (or after a timeout, with what was gathered). */
export function iceGatheringComplete(pc, timeoutMs = GATHER_TIMEOUT_MS) {
  if (pc.iceGatheringState === 'complete') return Promise.resolve();
  return new Promise((resolve) => {
    const done = () => {
      if (pc.iceGatheringState !== 'complete') return;
      pc.removeEventListener('icegatheringstatechange', done);
      clearTimeout(timer);
      resolve();
    };
    const timer = setTimeout(() => {
      pc.removeEventListener('icegatheringstatechange', done);
      resolve();
    }, timeoutMs);
    pc.addEventListener('icegatheringstatechange', done);
  });
}

/**
 * Resolve at the end of candidates (or after a timeout). Needed after an ICE restart: Chrome
 * starts the new gathering a task after setLocalDescription, while iceGatheringState still reads
 * 'complete' from the last one, so waiting on that state alone sends an SDP with no candidates.
 */
export function endOfCandidates(pc, timeoutMs = GATHER_TIMEOUT_MS) {
  return new Promise((resolve) => {
    const finish = () => {
      pc.removeEventListener('icecandidate', onCandidate);
      clearTimeout(timer);
      resolve();
    };
    const onCandidate = (event) => {
      if (!event.candidate) finish();
    };
    const timer = setTimeout(finish, timeoutMs);
    pc.addEventListener('icecandidate', onCandidate);
  });
}

/** Whether an SDP puts every audio/video section on hold (sendonly or inactive). */
function sdpHolds(sdp) {
  const sections = sdp.split(/\r?\nm=/).slice(1);
  if (!sections.length) return false;
  return sections.every((s) => /\r?\na=(sendonly|inactive)\b/.test(s) || /^\S+ 0 /.test(s));
}

const EXTMAP = /^a=extmap:(\d+)(\/\w+)? (\S+)/;

/**
 * Keep RTP header extension ids stable across a re-offer. aiortc numbers them afresh in every
 * offer it makes, and Chrome refuses a re-offer that moves an id to another extension ("RTP
 * extension ID reassignment not supported"); so map each extension back to the id already
 * negotiated for it, and give any new extension an id not in use.
 */
export function keepExtensionIds(offer, current) {
  if (!current) return offer;
  const known = new Map();
  for (const line of current.split(/\r?\n/)) {
    const m = EXTMAP.exec(line);
    if (m && !known.has(m[3])) known.set(m[3], Number(m[1]));
  }
  const used = new Set(known.values());
  const fresh = new Map();
  const freeId = () => {
    for (let id = 1; id <= 255; id += 1) {
      if (id !== 15 && !used.has(id)) {
        used.add(id);
        return id;
      }
    }
    return null;
  };
  return offer
    .split('\r\n')
    .map((line) => {
      const m = EXTMAP.exec(line);
      if (!m) return line;
      let id = known.get(m[3]);
      if (id === undefined) {
        if (!fresh.has(m[3])) fresh.set(m[3], freeId());
        id = fresh.get(m[3]);
      }
      return id === null ? line : line.replace(EXTMAP, `a=extmap:${id}${m[2] || ''} ${m[3]}`);
    })
    .join('\r\n');
}

export class CallManager {
  #handlers = new Map();
  #byServerId = new Map();
  #early = new Map();
  #count = 0;

  /**
   * @param {Client|null} client the logged-in user's client, or null (anonymous page)
   * @param {{trickle?: boolean}} [options] trickle: send candidates as they come (default)
   */
  constructor(client = null, { trickle = true } = {}) {
    this.client = client;
    this.trickle = trickle;
    this.calls = new Map(); // id -> call
    if (client) {
      client.onNotification = (frame) => this.#onFrame(frame, client);
      const onState = client.onState;
      client.onState = (state, detail) => {
        if (state === 'resync') this.resync(client);
        onState(state, detail);
      };
    }
  }

  on(name, handler) {
    if (!this.#handlers.has(name)) this.#handlers.set(name, new Set());
    this.#handlers.get(name).add(handler);
  }

  off(name, handler) {
    const set = this.#handlers.get(name);
    if (set) set.delete(handler);
  }

  #emit(name, params) {
    for (const handler of this.#handlers.get(name) || []) {
      try {
        handler(params);
      } catch (err) {
        console.error(name, err);
      }
    }
  }

  getById(id) {
    return this.calls.get(id);
  }

  getAll() {
    return [...this.calls.values()];
  }

  #newCall(fields) {
    this.#count += 1;
    const call = {
      id: `call-${this.#count}`,
      serverId: null,
      direction: 'outgoing',
      from: '',
      to: '',
      remoteParty: '',
      state: states.INITIATING,
      media: { audio: true, video: false },
      anonymous: false,
      pc: null,
      localStream: null,
      remoteStream: new MediaStream(),
      offerSdp: null,
      localHold: false,
      remoteHold: false,
      endReason: null,
      client: this.client,
      startedAt: performance.now(),
      connectedAt: null,
      trickle: this.trickle,
      trickleReady: false, // our latest description reached the server: candidates may follow
      inSdp: new Set(), // candidates our latest description carries already
      localUfrag: null, // the ICE ufrag of our latest description
      posting: Promise.resolve(), // our candidates' requests, one after the other
      outCandidates: [], // ours, until then
      inCandidates: [], // the other party's, until its description is applied
      ...fields,
    };
    this.calls.set(call.id, call);
    return call;
  }

  #bind(call, serverId) {
    call.serverId = serverId;
    this.#byServerId.set(serverId, call);
    const early = this.#early.get(serverId);
    if (early) {
      this.#early.delete(serverId);
      for (const [frame, client] of early) this.#onFrame(frame, client);
    }
  }

  #setState(call, state, error = null) {
    const previous = { state: call.state, localHold: call.localHold, remoteHold: call.remoteHold };
    if (call.state === state && state !== states.ON_HOLD) return;
    if (isTerminal(call.state)) return;
    call.state = state;
    if (state === states.CONNECTED && call.connectedAt === null) call.connectedAt = performance.now();
    const params = { callId: call.id, previous, state };
    if (error) params.error = error;
    this.#emit('call:stateChange', params);
    if (isTerminal(state)) this.#release(call);
  }

  #error(call, err) {
    const error = { code: err.code || 'call:2', message: err.message || String(err) };
    this.#emit('call:error', { callId: call ? call.id : null, error });
    return error;
  }

  async #localMedia(call, video) {
    const stream = await navigator.mediaDevices.getUserMedia({ audio: true, video });
    call.localStream = stream;
    for (const track of stream.getTracks()) {
      this.#emit('call:newTrack', { callId: call.id, trackId: track.id, kind: track.kind, local: true });
    }
    return stream;
  }

  #peer(call, iceServers) {
    const pc = new RTCPeerConnection({ iceServers });
    call.pc = pc;
    pc.addEventListener('track', (event) => {
      const track = event.track;
      call.remoteStream.addTrack(track);
      this.#emit('call:newTrack', { callId: call.id, trackId: track.id, kind: track.kind, local: false });
      track.addEventListener('ended', () => {
        call.remoteStream.removeTrack(track);
        this.#emit('call:trackEnded', { callId: call.id, trackId: track.id, kind: track.kind, local: false });
      });
    });
    pc.addEventListener('icecandidate', (event) => this.#localCandidate(call, event.candidate));
    pc.addEventListener('connectionstatechange', () => {
      if (pc.connectionState === 'failed' && !isTerminal(call.state)) {
        const error = this.#error(call, { code: 'call:2', message: 'media connection failed' });
        this.#hangUp(call, error);
      }
    });
    return pc;
  }

  async #localSdp(pc, description, call = null) {
    if (call && call.trickle) {
      // Sent at once; the candidates follow once it reached the server (#trickleReady).
      call.trickleReady = false;
      await pc.setLocalDescription(description);
      const sdp = pc.localDescription.sdp;
      // What the description already carries is not trickled again (Firefox on loopback
      // often has every candidate by the time it resolves). Its end-of-candidates is left
      // out: after an ICE restart Firefox's description can still end the last generation's
      // candidates, which would tell the other party there is nothing more to come; the end
      // goes as a trickled `{}` once this gathering is really over.
      call.inSdp = new Set(
        sdp.split(/\r?\n/).filter((l) => l.startsWith('a=candidate:')).map((l) => l.slice(2)),
      );
      const ufrag = /\r?\na=ice-ufrag:(\S+)/.exec(sdp);
      call.localUfrag = ufrag ? ufrag[1] : null;
      return sdp.replace(/\r?\na=end-of-candidates(?=\r?\n)/g, '');
    }
    const gathered = endOfCandidates(pc);
    await pc.setLocalDescription(description);
    await iceGatheringComplete(pc);
    if (!/\r?\na=candidate:/.test(pc.localDescription.sdp)) await gathered; // an ICE restart
    return pc.localDescription.sdp;
  }

  /** Call a user. Returns the call id at once; the call starts in Initiating. */
  make(to, { video = false } = {}) {
    const me = this.client.user;
    const call = this.#newCall({ from: me, to, remoteParty: to, media: { audio: true, video } });
    this.#start(call, async (sdp) => {
      const info = await call.client.request('POST', '/v1/calls', {
        to,
        sdp,
        media: { audio: true, video },
      });
      call.to = info.callee;
      call.remoteParty = info.callee;
      return info;
    }, video, this.client.iceServers);
    return call.id;
  }

  /**
   * An anonymous call (no login): regular mode with `from`, or token mode with `credentials`
   * ({realm, accountToken, fromToken, toToken}). It gets its own call-scoped client.
   */
  makeAnonymous(to, credentials, { from = '', video = false, displayName = null } = {}) {
    const client = new Client({ base: this.client ? this.client.base : '' });
    const call = this.#newCall({
      from,
      to,
      remoteParty: to,
      anonymous: true,
      client,
      media: { audio: true, video },
    });
    client.onNotification = (frame) => this.#onFrame(frame, client);
    client.onState = (state) => {
      if (state === 'resync') this.resync(client);
    };
    const parties = credentials ? { credentials } : { from, to };
    // The offer gathers its candidates with the ICE servers (TURN) the server gives for this
    // call before it exists (§3.4); a server without that lookup (404) leaves it none.
    const iceServers = async () => {
      try {
        const found = await client.request('POST', '/v1/anonymous/ice-servers', parties, { auth: false });
        return rtcIceServers(found.ice_servers);
      } catch (err) {
        if (err instanceof ApiError && err.status === 404) return [];
        throw err;
      }
    };
    this.#start(call, async (sdp) => {
      const body = { sdp, media: { audio: true, video }, ...parties };
      if (!credentials && displayName) body.display_name = displayName;
      const made = await client.request('POST', '/v1/anonymous/calls', body, { auth: false });
      client.adoptAnonymous(made);
      client.connect();
      // Later offers (an ICE restart) use the call's own, freshly minted, ICE servers.
      call.pc.setConfiguration({ iceServers: rtcIceServers(made.ice_servers) });
      call.from = made.call.caller;
      call.to = made.call.callee;
      call.remoteParty = made.call.callee;
      return made.call;
    }, video, iceServers);
    return call.id;
  }

  /** @param {object[] | (() => Promise<object[]>)} iceServers the list, or how to get it */
  async #start(call, post, video, iceServers) {
    try {
      const stream = await this.#localMedia(call, video);
      const servers = typeof iceServers === 'function' ? await iceServers() : iceServers;
      if (isTerminal(call.state)) return; // ended while asking
      const pc = this.#peer(call, servers);
      for (const track of stream.getTracks()) pc.addTrack(track, stream);
      const sdp = await this.#localSdp(pc, await pc.createOffer(), call);
      if (isTerminal(call.state)) return; // ended while preparing
      const info = await post(sdp);
      this.#bind(call, info.id);
      this.#trickleReady(call);
      if (isTerminal(call.state)) {
        // Ended by the user while the request was on its way: end it on the server too.
        call.client.request('POST', `/v1/calls/${info.id}/end`).catch(() => {});
        return;
      }
      this.#emit('call:start', { callId: call.id });
      const state = info.state === 'Ringing' ? states.RINGING : states.INITIATED;
      if (call.state === states.INITIATING) this.#setState(call, state);
    } catch (err) {
      const error = this.#error(call, err);
      this.#setState(call, states.ENDED, error);
    }
  }

  async answer(id, { video = false } = {}) {
    const call = this.#need(id);
    try {
      const stream = await this.#localMedia(call, video);
      const pc = this.#peer(call, call.client.iceServers);
      await pc.setRemoteDescription({ type: 'offer', sdp: call.offerSdp });
      for (const track of stream.getTracks()) pc.addTrack(track, stream);
      for (const t of pc.getTransceivers()) {
        const kind = t.receiver.track.kind;
        if (!stream.getTracks().some((s) => s.kind === kind)) t.direction = 'recvonly';
      }
      await this.#remoteCandidates(call);
      const sdp = await this.#localSdp(pc, await pc.createAnswer(), call);
      await call.client.request('POST', `/v1/calls/${call.serverId}/answer`, { sdp });
      this.#trickleReady(call);
      this.#setState(call, states.CONNECTED);
    } catch (err) {
      const error = this.#error(call, err);
      this.#hangUp(call, error);
    }
  }

  async reject(id) {
    const call = this.#need(id);
    try {
      await call.client.request('POST', `/v1/calls/${call.serverId}/reject`);
      call.endReason = 'rejected';
      this.#setState(call, states.ENDED);
    } catch (err) {
      this.#error(call, err);
    }
  }

  async end(id) {
    const call = this.#need(id);
    await this.#hangUp(call, null);
  }

  async #hangUp(call, error) {
    if (isTerminal(call.state)) return;
    if (call.serverId) {
      try {
        await call.client.request('POST', `/v1/calls/${call.serverId}/end`);
      } catch (err) {
        if (err.code !== 'wrong_state') this.#error(call, err);
      }
    }
    this.#setState(call, states.ENDED, error);
  }

  /** Put a connected call on hold (hold=true) or take it off hold, with a re-offer. */
  async hold(id, hold = true) {
    const call = this.#need(id);
    if (call.state !== states.CONNECTED && call.state !== states.ON_HOLD) return;
    try {
      for (const t of call.pc.getTransceivers()) {
        if (t.currentDirection === 'stopped') continue;
        const sending = t.sender.track !== null;
        if (hold) t.direction = sending ? 'sendonly' : 'inactive';
        else t.direction = sending ? 'sendrecv' : 'recvonly';
      }
      const sdp = await this.#localSdp(call.pc, await call.pc.createOffer(), call);
      call.pendingUpdate = true;
      await call.client.request('POST', `/v1/calls/${call.serverId}/update`, { sdp });
      this.#trickleReady(call);
      call.localHold = hold;
      this.#setState(call, call.localHold || call.remoteHold ? states.ON_HOLD : states.CONNECTED);
    } catch (err) {
      call.pendingUpdate = false;
      this.#error(call, err);
    }
  }

  async stats(id) {
    const call = this.#need(id);
    const out = { audio: { packetsReceived: 0, bytesReceived: 0 }, video: { packetsReceived: 0, bytesReceived: 0, framesDecoded: 0 } };
    if (!call.pc) return out;
    (await call.pc.getStats()).forEach((s) => {
      if (s.type !== 'inbound-rtp' || !out[s.kind]) return;
      out[s.kind].packetsReceived += s.packetsReceived || 0;
      out[s.kind].bytesReceived += s.bytesReceived || 0;
      if (s.kind === 'video') out.video.framesDecoded += s.framesDecoded || 0;
    });
    return out;
  }

  #need(id) {
    const call = this.calls.get(id);
    if (!call) throw new Error(`no call ${id}`);
    return call;
  }

  #release(call) {
    if (call.localStream) {
      for (const track of call.localStream.getTracks()) {
        track.stop();
        this.#emit('call:trackEnded', { callId: call.id, trackId: track.id, kind: track.kind, local: true });
      }
    }
    if (call.pc) call.pc.close();
    if (call.anonymous && call.client !== this.client) call.client.close();
  }

  async #onFrame(frame, client) {
    if (frame.type === 'call.incoming') {
      this.#incoming(frame.call, frame.sdp, client);
      return;
    }
    const serverId = frame.call_id;
    if (!serverId) return;
    const call = this.#byServerId.get(serverId);
    if (!call) {
      // An outgoing call whose POST has not answered yet: keep the frame for it.
      if (!this.#early.has(serverId)) this.#early.set(serverId, []);
      this.#early.get(serverId).push([frame, client]);
      return;
    }
    switch (frame.type) {
      case 'call.ringing':
        if (call.state === states.INITIATED || call.state === states.INITIATING) {
          this.#setState(call, states.RINGING);
        }
        break;
      case 'call.answered':
        try {
          await call.pc.setRemoteDescription({ type: 'answer', sdp: frame.sdp });
          await this.#remoteCandidates(call);
          this.#setState(call, states.CONNECTED);
        } catch (err) {
          this.#hangUp(call, this.#error(call, err));
        }
        break;
      case 'call.rejected':
        call.endReason = 'rejected';
        this.#setState(call, states.ENDED);
        break;
      case 'call.cancelled':
        call.endReason = frame.reason;
        this.#setState(call, states.CANCELLED);
        break;
      case 'call.ended':
        call.endReason = frame.reason;
        this.#setState(call, states.ENDED);
        break;
      case 'call.update':
        await this.#answerUpdate(call, frame.sdp);
        break;
      case 'call.candidate':
        call.inCandidates.push(frame);
        await this.#remoteCandidates(call);
        break;
      case 'call.update_answer':
        call.pendingUpdate = false;
        try {
          await call.pc.setRemoteDescription({ type: 'answer', sdp: frame.sdp });
          await this.#remoteCandidates(call);
        } catch (err) {
          this.#error(call, err);
        }
        break;
      default:
        break;
    }
  }

  async #answerUpdate(call, sdp) {
    try {
      const current = call.pc.currentLocalDescription;
      const offer = keepExtensionIds(sdp, current && current.sdp);
      await call.pc.setRemoteDescription({ type: 'offer', sdp: offer });
      await this.#remoteCandidates(call);
      const answer = await this.#localSdp(call.pc, await call.pc.createAnswer(), call);
      await call.client.request('POST', `/v1/calls/${call.serverId}/update-answer`, { sdp: answer });
      this.#trickleReady(call);
      call.remoteHold = sdpHolds(sdp);
      this.#setState(call, call.localHold || call.remoteHold ? states.ON_HOLD : states.CONNECTED);
    } catch (err) {
      this.#error(call, err);
    }
  }

  /** One of our candidates (null: the end of them): to the server once it may follow. */
  #localCandidate(call, candidate) {
    if (!call.trickle) return;
    if (candidate && !candidate.candidate) return; // Firefox: one m-line's end; null follows
    const body = candidate
      ? {
          candidate: candidate.candidate,
          sdp_mid: candidate.sdpMid,
          sdp_mline_index: candidate.sdpMLineIndex,
          ufrag: candidate.usernameFragment || call.localUfrag,
        }
      : { ufrag: call.localUfrag }; // the end of this generation's candidates
    if (call.trickleReady && call.serverId) this.#postCandidate(call, body);
    else call.outCandidates.push(body);
  }

  /** One at a time, in order: an end-of-candidates must never overtake a candidate. */
  #postCandidate(call, body) {
    if (isTerminal(call.state)) return;
    if (body.candidate && call.inSdp.has(body.candidate)) return;
    call.posting = call.posting
      .then(() => call.client.request('POST', `/v1/calls/${call.serverId}/candidates`, body))
      .catch((err) => console.warn('candidate not sent', err.message || err));
  }

  /** Our description reached the server: the candidates gathered meanwhile follow it. */
  #trickleReady(call) {
    call.trickleReady = true;
    const queued = call.outCandidates;
    call.outCandidates = [];
    for (const body of queued) this.#postCandidate(call, body);
  }

  /** Apply the other party's candidates once its description is (kept until then). */
  async #remoteCandidates(call) {
    const pc = call.pc;
    if (!pc || !pc.remoteDescription) return;
    const queued = call.inCandidates;
    call.inCandidates = [];
    for (const frame of queued) {
      const ufrag = frame.ufrag || undefined;
      const init = frame.candidate
        ? {
            candidate: frame.candidate.replace(/^a=/, ''),
            sdpMid: frame.sdp_mid,
            sdpMLineIndex: frame.sdp_mline_index,
            usernameFragment: ufrag,
          }
        : { candidate: '', sdpMid: frame.sdp_mid ?? '0', sdpMLineIndex: frame.sdp_mline_index ?? 0 };
      try {
        await pc.addIceCandidate(init);
      } catch (err) {
        console.warn('candidate refused', err.message || err);
      }
    }
  }

  #incoming(info, sdp, client) {
    if (this.#byServerId.has(info.id)) return; // already known (resync)
    const call = this.#newCall({
      direction: 'incoming',
      from: info.caller,
      to: info.callee,
      remoteParty: info.caller,
      state: states.INITIATED,
      media: info.media,
      anonymous: info.anonymous,
      offerSdp: sdp,
      client,
    });
    this.#bind(call, info.id);
    this.#emit('call:receive', { callId: call.id });
    // Tell the caller we are alerting.
    client
      .request('POST', `/v1/calls/${info.id}/ringing`)
      .then(() => this.#setState(call, states.RINGING))
      .catch((err) => {
        if (err.code !== 'wrong_state') this.#error(call, err);
      });
  }

  /** After resume_failed: learn the calls' state from GET /v1/calls (§4.4). */
  async resync(client) {
    let listed;
    try {
      listed = (await client.listCalls()).calls;
    } catch (err) {
      this.#error(null, err);
      return;
    }
    const live = new Map(listed.map((c) => [c.id, c]));
    for (const call of this.calls.values()) {
      if (call.client !== client || isTerminal(call.state) || !call.serverId) continue;
      const info = live.get(call.serverId);
      if (!info) {
        this.#setState(call, call.direction === 'incoming' && call.state !== states.CONNECTED ? states.CANCELLED : states.ENDED);
      } else if (info.state === 'Connected' && call.direction === 'incoming' && call.state !== states.CONNECTED && call.state !== states.ON_HOLD) {
        this.#setState(call, states.CANCELLED); // answered elsewhere
      }
    }
    for (const info of listed) {
      if (!this.#byServerId.has(info.id) && info.offer_sdp && info.state !== 'Connected') {
        this.#incoming(info, info.offer_sdp, client);
      }
    }
  }
}
