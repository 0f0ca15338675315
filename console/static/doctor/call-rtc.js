// One participant's side of a consultation's video call: the signaling WebSocket (rtc.md §2) and the peer
// connection, with perfect negotiation (§2.4) and reconnection (§2.5). It draws nothing: the page listens to its
// events ("change", "joined", "track", "chat", "peer-media", "peer-gone", "ended", "fatal") and reads its state.

import { ApiError } from "/console/common/api.js";

// Reconnection backoff for the signaling socket, with jitter so both sides do not retry in lockstep.
const BACKOFF_MS = [300, 1000, 2000, 4000, 7000, 10000];
// uvicorn pings too, but only an application-level answer proves frames still get through (rtc.md §2.1).
const PING_EVERY_MS = 15000;
const PONG_WITHIN_MS = 10000;
// "disconnected" often heals by itself within seconds; restart ICE only when it does not.
const ICE_DISCONNECTED_GRACE_MS = 4000;
// An ICE restart that has not connected by then is given up for a new peer connection.
const ICE_RESTART_WITHIN_MS = 15000;
// After this long without media, tell the user the call cannot connect (while still trying).
export const CONNECT_TIMEOUT_MS = 20000;
// Closing codes after which joining again cannot help (rtc.md §2.1); 4401 (a token burnt by a slow network)
// is retried with a new token.
const FATAL_CLOSE = { 4403: "not_participant", 4404: "not_found", 4409: "replaced" };
const ENDED_CLOSE = 4410;

// The DTLS fingerprint names the peer connection that wrote an SDP: a new one means the other side started over.
function fingerprint(sdp) {
  const match = /^a=fingerprint:(.+)$/m.exec(sdp || "");
  return match ? match[1].trim() : "";
}

export class Call extends EventTarget {
  // request(method, path) calls the JSON API with the signed-in user's token; stream is the camera/microphone.
  constructor({ consultationId, stream, request }) {
    super();
    this.consultationId = consultationId;
    this.stream = stream;
    this.request = request;
    // what the page shows
    this.signaling = "connecting"; // connecting | open | reconnecting | closed
    this.attempt = 0;
    this.peerPresent = false;
    this.peerAway = false; // dropped, within the server's grace period
    this.peerGone = false; // left, or away longer than the grace period
    this.media = "idle"; // idle | connecting | connected | reconnecting
    this.unreachable = false; // no media path within CONNECT_TIMEOUT_MS
    this.stopped = false;
    // negotiation
    this.polite = true;
    this.iceServers = [];
    this.sessionId = null;
    this.ws = null;
    this.pc = null;
    this.makingOffer = false;
    this.ignoreOffer = false;
    this.restartedAt = 0;
    this.outbox = []; // candidates gathered while the socket was down
    this.inbound = Promise.resolve(); // server frames are handled one after the other, in order
    this.localMedia = { audio: true, video: true };
    this.timers = {};
    this.lastPongAt = 0;
    this.onOnline = () => { if (this.signaling === "reconnecting") this.reconnectNow(); };
    window.addEventListener("online", this.onOnline);
  }

  emit(type, detail) { this.dispatchEvent(new CustomEvent(type, { detail })); }
  changed() { this.emit("change"); }

  start() { return this.connect(); }

  // ---- signaling ---------------------------------------------------------------------------------------------

  async connect() {
    if (this.stopped) return;
    let grant;
    try {
      grant = await this.request("POST", `/consultations/${this.consultationId}/join-token`);
    } catch (err) {
      // the API refusing (not yours, outside the window, consultation over) will not change by retrying
      if (err instanceof ApiError && err.status >= 400 && err.status < 500 && err.status !== 429) {
        this.fail("api", err);
      } else {
        this.retry();
      }
      return;
    }
    if (this.stopped) return;
    const url = new URL(grant.websocket_path, location.href);
    url.protocol = location.protocol === "https:" ? "wss:" : "ws:";
    const ws = new WebSocket(url);
    this.ws = ws;
    // the token goes in the first frame, never in the URL (proxy logs)
    ws.onopen = () => ws.send(JSON.stringify({
      type: "join", token: grant.token, resume_session: this.sessionId || undefined,
      client: { platform: "web-console", app_version: "1" },
    }));
    ws.onmessage = (event) => {
      if (ws !== this.ws) return;
      let frame;
      try { frame = JSON.parse(event.data); } catch { return; }
      this.inbound = this.inbound.then(() => this.receive(frame)).catch((err) => console.warn("call frame", err));
    };
    ws.onclose = (event) => { if (ws === this.ws) this.socketClosed(event.code); };
  }

  socketClosed(code) {
    this.ws = null;
    clearInterval(this.timers.ping);
    if (this.stopped) return;
    if (code === ENDED_CLOSE) this.finish();
    else if (code in FATAL_CLOSE) this.fail(FATAL_CLOSE[code]);
    else this.retry();
  }

  retry() {
    if (this.stopped) return;
    this.signaling = "reconnecting";
    this.attempt += 1;
    this.changed();
    const base = BACKOFF_MS[Math.min(this.attempt - 1, BACKOFF_MS.length - 1)];
    clearTimeout(this.timers.reconnect);
    this.timers.reconnect = setTimeout(() => this.connect(), base * (0.8 + Math.random() * 0.4));
  }

  reconnectNow() {
    clearTimeout(this.timers.reconnect);
    this.connect();
  }

  // A socket that stopped answering is dropped at once (its close handshake could take minutes).
  dropSocket() {
    const ws = this.ws;
    if (!ws) return;
    this.ws = null;
    ws.onclose = null;
    ws.close();
    this.socketClosed(1006);
  }

  send(frame, { keep = false } = {}) {
    if (this.ws && this.ws.readyState === WebSocket.OPEN && this.signaling === "open") {
      this.ws.send(JSON.stringify(frame));
      return true;
    }
    if (keep) this.outbox.push(frame);
    return false;
  }

  startPing() {
    clearInterval(this.timers.ping);
    this.lastPongAt = Date.now();
    this.timers.ping = setInterval(() => {
      if (Date.now() - this.lastPongAt > PING_EVERY_MS + PONG_WITHIN_MS) this.dropSocket();
      else this.send({ type: "ping" });
    }, PING_EVERY_MS);
  }

  async receive(frame) {
    switch (frame.type) {
      case "joined": return this.joined(frame);
      case "offer": case "answer": return this.description(frame);
      case "ice-candidate": return this.candidate(frame);
      case "peer-joined":
        // the one who joins later offers (rtc.md §2.4): we wait for its offer
        this.peerPresent = true;
        this.peerAway = this.peerGone = false;
        this.send({ type: "media-state", ...this.localMedia });
        this.changed();
        return undefined;
      case "peer-left": return this.peerLeft(frame);
      case "media-state": this.emit("peer-media", frame); return undefined;
      case "chat": this.emit("chat", frame); return undefined;
      case "ended": this.finish(); return undefined;
      case "pong": this.lastPongAt = Date.now(); return undefined;
      case "error": console.warn("signaling error", frame.code, frame.detail); return undefined;
      default: return undefined;
    }
  }

  joined(frame) {
    this.signaling = "open";
    this.attempt = 0;
    this.sessionId = frame.session_id;
    this.polite = frame.polite;
    this.iceServers = frame.ice_servers || [];
    this.peerPresent = frame.peers.length > 0;
    this.peerAway = this.peerGone = false;
    this.startPing();
    this.emit("joined", frame);
    const pending = this.outbox.splice(0);
    if (this.peerPresent) {
      this.send({ type: "media-state", ...this.localMedia }); // the other side may have missed a change
      if (this.pc && this.pc.connectionState === "connected") {
        // media survived the signaling blip: keep it, and deliver what was gathered meanwhile
        for (const f of pending) this.send(f);
      } else {
        this.renew({ offering: true }); // we are the later joiner: offer from a fresh connection
      }
    }
    this.changed();
  }

  peerLeft(frame) {
    this.peerPresent = false;
    this.peerAway = frame.reason === "disconnected";
    this.peerGone = !this.peerAway;
    if (this.peerGone) {
      // gone for good (left, or the grace period is over): its next join starts a new connection
      this.closePeer();
      this.media = "idle";
      this.unreachable = false;
      clearTimeout(this.timers.connect);
      this.timers.connect = null;
      this.emit("peer-gone", frame);
    }
    this.changed();
  }

  // ---- peer connection ---------------------------------------------------------------------------------------

  renew({ offering }) {
    this.closePeer();
    const pc = new RTCPeerConnection({ iceServers: this.iceServers });
    this.pc = pc;
    this.makingOffer = false;
    this.ignoreOffer = false;
    this.restartedAt = 0;
    this.outbox = [];
    pc.onicecandidate = ({ candidate }) => {
      if (pc !== this.pc) return;
      this.send({ type: "ice-candidate", ...(candidate ? candidate.toJSON() : { candidate: null }) }, { keep: true });
    };
    pc.ontrack = ({ track, streams }) => {
      if (pc === this.pc) this.emit("track", { track, stream: streams[0] || new MediaStream([track]) });
    };
    pc.onnegotiationneeded = () => this.negotiate(pc);
    pc.onconnectionstatechange = () => this.peerState(pc);
    pc.oniceconnectionstatechange = () => this.peerState(pc);
    // the offerer adds its tracks now (that fires negotiationneeded); the answerer adds them to the offered
    // transceivers once the offer is set, so no second negotiation starts
    if (offering) for (const track of this.stream.getTracks()) pc.addTrack(track, this.stream);
    this.media = "connecting";
    this.armConnectTimer();
    this.changed();
    return pc;
  }

  closePeer() {
    for (const name of ["disconnected", "restart"]) clearTimeout(this.timers[name]);
    if (this.pc) {
      const pc = this.pc;
      this.pc = null;
      pc.onicecandidate = pc.ontrack = pc.onnegotiationneeded = null;
      pc.onconnectionstatechange = pc.oniceconnectionstatechange = null;
      pc.close();
    }
  }

  async negotiate(pc) {
    if (pc !== this.pc || !this.peerPresent) return;
    try {
      this.makingOffer = true;
      await pc.setLocalDescription();
      if (pc === this.pc) this.send({ type: "offer", sdp: pc.localDescription.sdp });
    } catch (err) {
      console.warn("could not make an offer", err);
    } finally {
      this.makingOffer = false;
    }
  }

  // Perfect negotiation (rtc.md §2.4, MDN's pattern): on glare the polite side yields, the impolite one ignores.
  async description(frame) {
    const { type, sdp } = frame;
    let pc = this.pc;
    if (type === "offer") {
      this.peerPresent = true;
      this.peerAway = this.peerGone = false;
      const restarted = pc && pc.remoteDescription && fingerprint(pc.remoteDescription.sdp) !== fingerprint(sdp);
      // the other side opened a new peer connection (it reconnected, or its app restarted): so do we
      if (!pc || restarted || pc.connectionState === "closed") pc = this.renew({ offering: false });
    } else if (!pc) {
      return;
    }
    const collision = type === "offer" && (this.makingOffer || pc.signalingState !== "stable");
    this.ignoreOffer = !this.polite && collision;
    if (this.ignoreOffer) return;
    if (type === "answer" && pc.signalingState !== "have-local-offer") return; // an answer to an older offer
    await pc.setRemoteDescription({ type, sdp }); // on glare this rolls our offer back first
    if (type !== "offer" || pc !== this.pc) return;
    for (const track of this.stream.getTracks()) {
      if (!pc.getSenders().some((sender) => sender.track === track)) pc.addTrack(track, this.stream);
    }
    await pc.setLocalDescription();
    this.send({ type: "answer", sdp: pc.localDescription.sdp });
  }

  async candidate(frame) {
    // aiortc peers put every candidate in their SDP and send none; an empty string or null ends the list
    if (!this.pc || !frame.candidate) return;
    try {
      await this.pc.addIceCandidate({ candidate: frame.candidate, sdpMid: frame.sdpMid,
        sdpMLineIndex: frame.sdpMLineIndex, usernameFragment: frame.usernameFragment });
    } catch (err) {
      if (!this.ignoreOffer) console.warn("candidate refused", err);
    }
  }

  peerState(pc) {
    if (pc !== this.pc) return;
    const ice = pc.iceConnectionState;
    const state = pc.connectionState;
    clearTimeout(this.timers.disconnected);
    if (state === "connected") {
      this.media = "connected";
      this.unreachable = false;
      this.restartedAt = 0;
      clearTimeout(this.timers.connect);
      this.timers.connect = null;
      clearTimeout(this.timers.restart);
    } else if (state === "failed" || ice === "failed") {
      this.media = "reconnecting";
      this.recover(pc);
    } else if (ice === "disconnected") {
      this.media = "reconnecting";
      this.armConnectTimer();
      this.timers.disconnected = setTimeout(() => this.recover(pc), ICE_DISCONNECTED_GRACE_MS);
    }
    this.changed();
  }

  // ICE restart first (with the newest TURN credentials); a new peer connection when that does not help.
  recover(pc) {
    if (pc !== this.pc || pc.connectionState === "connected" || this.stopped) return;
    if (!this.peerPresent) return; // the other side offers afresh when it comes back
    if (this.restartedAt) {
      this.renew({ offering: true });
      return;
    }
    this.restartedAt = Date.now();
    pc.setConfiguration({ ...pc.getConfiguration(), iceServers: this.iceServers });
    pc.restartIce();
    clearTimeout(this.timers.restart);
    this.timers.restart = setTimeout(() => {
      if (pc === this.pc && pc.connectionState !== "connected") this.renew({ offering: true });
    }, ICE_RESTART_WITHIN_MS);
  }

  // Counted from the first attempt since media last flowed: new attempts (ICE restart, new connection) do not
  // push the message back.
  armConnectTimer() {
    if (this.timers.connect) return;
    this.timers.connect = setTimeout(() => {
      this.timers.connect = null;
      if (this.media !== "connected" && this.pc) {
        this.unreachable = true;
        this.changed();
      }
    }, CONNECT_TIMEOUT_MS);
  }

  // ---- what the page asks ------------------------------------------------------------------------------------

  setMedia({ audio, video }) {
    this.localMedia = { audio, video };
    if (this.peerPresent) this.send({ type: "media-state", audio, video });
  }

  chat(text) {
    return this.send({ type: "chat", text });
  }

  // end: the doctor completes the consultation (both sides get "ended"); otherwise just leave the room.
  async hangUp({ end }) {
    if (end) {
      if (this.send({ type: "end", reason: "completed" })) {
        const ended = new Promise((resolve) => this.addEventListener("ended", resolve, { once: true }));
        const timeout = new Promise((resolve) => setTimeout(resolve, 5000, "timeout"));
        if (await Promise.race([ended, timeout]) !== "timeout") return;
      }
      // no socket (or no answer): the REST call ends it just the same
      await this.request("POST", `/consultations/${this.consultationId}/complete`);
      this.finish();
      return;
    }
    this.send({ type: "leave" });
    this.stop();
  }

  finish() {
    if (this.stopped) return;
    this.stop();
    this.emit("ended");
  }

  fail(reason, error) {
    if (this.stopped) return;
    this.stop();
    this.emit("fatal", { reason, error });
  }

  stop() {
    this.stopped = true;
    this.signaling = "closed";
    this.media = "idle";
    for (const timer of Object.values(this.timers)) { clearTimeout(timer); clearInterval(timer); }
    window.removeEventListener("online", this.onOnline);
    this.closePeer();
    if (this.ws) {
      const ws = this.ws;
      this.ws = null;
      ws.close(1000, "left");
    }
    this.changed();
  }
}
