// The doctor's video call page: /console/doctor/call.html?consultation=<id>. It opens the camera, starts the
// consultation if needed, joins the call's signaling room and shows the patient, the chat and the connection
// quality. The API decides who may join; the page only shows what it answers.

import { languageSwitch, translatePage, translator } from "/console/common/i18n.js";
import { clear, el, formatDateTime, formatTime, problemAlert } from "/console/common/ui.js";
import { Call } from "/console/doctor/call-rtc.js";
import { classify, forApi, QualityMeter } from "/console/doctor/call-quality.js";
import strings from "/console/doctor/call-strings.js";
// the console's sign-in: request() is the JSON API with the doctor's token, refreshed before it expires
import { call as request, schedule, session, whenSignedOut } from "/console/doctor/session.js";

const t = translator(strings);
const $ = (id) => document.getElementById(id);
const STATS_EVERY_MS = 2000;
const REPORT_EVERY_SAMPLES = 5; // one stored sample per ~10 s (rtc.md §5)
const STARTABLE = ["booked", "waiting"];
const JOINABLE = ["booked", "waiting", "in_call"];

const consultationId = new URLSearchParams(location.search).get("consultation");
const notesUrl = `/console/doctor/#/consultations/${encodeURIComponent(consultationId || "")}`;

let call = null;
let stream = null;
let remoteMedia = { audio: true, video: true };
let samples = 0;
const meter = new QualityMeter();

// ---- drawing ------------------------------------------------------------------------------------------------

function showStatus(text) {
  if ($("call-status").textContent !== text) $("call-status").textContent = text;
}

function showAlert(node) { clear($("alerts"), node); }

function showSignedOut() {
  showAlert(el("div", { class: "alert error", role: "alert" }, t("session_expired"), " ",
    el("a", { href: "/console/doctor/" }, t("sign_in"))));
}

function alertText(text, kind = "error") {
  return el("div", { class: `alert ${kind}`, role: "alert" }, text);
}

function render() {
  if (!call) return;
  let text;
  if (call.signaling === "reconnecting") text = t("status_reconnecting", { n: call.attempt });
  else if (call.signaling === "connecting") text = t("status_joining");
  else if (call.peerAway) text = t("status_peer_away");
  else if (call.peerGone) text = t("status_peer_left");
  else if (!call.peerPresent && call.media !== "connected") text = t("status_waiting");
  else if (call.media === "connected") text = t("status_connected");
  else if (call.media === "reconnecting") text = t("status_media_reconnecting");
  else text = t("status_connecting");
  if (call.signaling !== "closed") showStatus(text);
  // added once, so a screen reader announces it once
  const shown = $("unreachable");
  if (call.unreachable && !shown) {
    $("alerts").append(el("div", { id: "unreachable", class: "alert warning", role: "alert" }, t("unreachable")));
  } else if (!call.unreachable && shown) {
    shown.remove();
  }
}

function renderRemoteMedia() {
  const notes = [];
  if (!remoteMedia.audio) notes.push(t("remote_audio_off"));
  if (!remoteMedia.video) notes.push(t("remote_video_off"));
  $("remote-media").textContent = notes.join(" ");
}

function renderSelfMedia() {
  const notes = [];
  if ($("toggle-mic").getAttribute("aria-pressed") === "true") notes.push(t("mic_off"));
  if ($("toggle-camera").getAttribute("aria-pressed") === "true") notes.push(t("camera_off"));
  $("self-media").textContent = notes.join(" · ");
}

const shownChat = new Set();
function addChat(message) {
  if (shownChat.has(message.id)) return; // a rejoin sends the history again
  shownChat.add(message.id);
  const who = message.from === "doctor" ? t("from_doctor") : t("from_patient");
  $("chat-log").append(el("li", { class: `from-${message.from}`, dataset: { id: message.id } },
    el("span", { class: "chat-meta" }, `${who} · ${formatTime(message.at)}`), el("p", {}, message.text)));
  $("chat-empty").hidden = true;
  $("chat-log").scrollTop = $("chat-log").scrollHeight;
}

function showQuality(sample) {
  const level = sample ? classify(sample, { expectVideo: remoteMedia.video }) : "unknown";
  $("quality-dot").dataset.level = level;
  const label = t(`quality_${level}`);
  if ($("quality-level").textContent !== label) $("quality-level").textContent = label;
  if (!sample) { $("quality-detail").textContent = ""; return; }
  const fmt = (value, unit) => (value == null ? "–" : `${Math.round(value)} ${unit}`);
  $("quality-detail").textContent = t("quality_detail", {
    rtt: fmt(sample.rtt_ms, "ms"), loss: sample.loss_pct == null ? "–" : `${sample.loss_pct.toFixed(1)} %`,
    kbps: fmt(sample.in_kbps, "kbps") });
}

// ---- media --------------------------------------------------------------------------------------------------

async function openDevices() {
  if (!navigator.mediaDevices?.getUserMedia) throw Object.assign(new Error("insecure"), { name: "Insecure" });
  const video = { width: { ideal: 640 }, height: { ideal: 480 }, frameRate: { ideal: 24 } };
  try {
    return await navigator.mediaDevices.getUserMedia({ audio: true, video });
  } catch (err) {
    if (err.name !== "NotFoundError" && err.name !== "OverconstrainedError") throw err;
    // no camera: a consultation by voice still beats none
    const audioOnly = await navigator.mediaDevices.getUserMedia({ audio: true });
    showAlert(alertText(t("media_audio_only"), "warning"));
    return audioOnly;
  }
}

function mediaProblem(err) {
  const key = { NotAllowedError: "media_denied", SecurityError: "media_denied", NotFoundError: "media_absent",
    OverconstrainedError: "media_absent", NotReadableError: "media_busy", AbortError: "media_busy",
    Insecure: "media_insecure" }[err.name] || "media_failed";
  return t(key);
}

function toggle(button, kind) {
  const off = button.getAttribute("aria-pressed") !== "true";
  button.setAttribute("aria-pressed", String(off));
  for (const track of stream.getTracks()) if (track.kind === kind) track.enabled = !off;
  renderSelfMedia();
  call?.setMedia(mediaState());
}

function mediaState() {
  const live = (kind) => stream.getTracks().some((track) => track.kind === kind && track.enabled);
  return { audio: live("audio"), video: live("video") };
}

async function playRemote() {
  const video = $("remote-video");
  try {
    await video.play();
  } catch (err) {
    if (err.name !== "NotAllowedError") return;
    // the browser's autoplay policy wants a click before sound: show the picture muted meanwhile
    video.muted = true;
    $("play-sound").hidden = false;
    await video.play().catch(() => {});
  }
}

// ---- the call -----------------------------------------------------------------------------------------------

function joinCall() {
  call = new Call({ consultationId, stream, request });
  call.addEventListener("change", render);
  call.setMedia(mediaState());
  call.addEventListener("joined", ({ detail }) => {
    for (const message of detail.chat) addChat(message);
  });
  call.addEventListener("track", ({ detail }) => {
    const video = $("remote-video");
    if (video.srcObject !== detail.stream) {
      video.srcObject = detail.stream;
      playRemote();
    }
  });
  call.addEventListener("peer-gone", () => {
    $("remote-video").srcObject = null;
    remoteMedia = { audio: true, video: true };
    renderRemoteMedia();
    showQuality(null);
  });
  call.addEventListener("peer-media", ({ detail }) => {
    remoteMedia = { audio: detail.audio, video: detail.video };
    renderRemoteMedia();
  });
  call.addEventListener("chat", ({ detail }) => addChat(detail));
  call.addEventListener("ended", () => closeCall(t("status_ended"), true));
  call.addEventListener("fatal", ({ detail }) => {
    closeCall(null, false);
    if (detail.error?.status === 401) showSignedOut();
    else showAlert(detail.error ? problemAlert(detail.error, t) : alertText(t(`fatal_${detail.reason}`)));
  });
  call.start();
  setInterval(measure, STATS_EVERY_MS);
}

async function measure() {
  if (!call || call.stopped) return;
  let sample = null;
  try {
    sample = await meter.sample(call.pc);
  } catch {
    sample = null;
  }
  showQuality(sample);
  if (!sample || sample.in_kbps == null) return;
  if (samples++ % REPORT_EVERY_SAMPLES === 0) {
    request("POST", `/consultations/${consultationId}/quality`, { body: forApi(sample) }).catch(() => {});
  }
}

function closeCall(statusText, goToNotes) {
  for (const track of stream?.getTracks() || []) track.stop();
  $("remote-video").srcObject = null;
  for (const id of ["toggle-mic", "toggle-camera", "leave-call", "end-call"]) $(id).disabled = true;
  $("chat-form").querySelector("button").disabled = true;
  if (statusText) showStatus(statusText);
  if (goToNotes) location.assign(notesUrl);
}

async function hangUp(end) {
  if (end && !window.confirm(t("end_confirm"))) return;
  if (!call) { // still starting: nothing to leave yet
    closeCall(t("status_left"), true);
    return;
  }
  for (const id of ["leave-call", "end-call"]) $(id).disabled = true;
  try {
    await call.hangUp({ end });
  } catch (err) {
    for (const id of ["leave-call", "end-call"]) $(id).disabled = false;
    showAlert(problemAlert(err, t));
    return;
  }
  if (!end) closeCall(t("status_left"), true);
}

function wireControls() {
  $("toggle-mic").addEventListener("click", () => toggle($("toggle-mic"), "audio"));
  $("toggle-camera").addEventListener("click", () => toggle($("toggle-camera"), "video"));
  $("toggle-camera").disabled = !stream.getVideoTracks().length;
  $("leave-call").addEventListener("click", () => hangUp(false));
  $("end-call").addEventListener("click", () => hangUp(true));
  $("play-sound").addEventListener("click", () => {
    $("remote-video").muted = false;
    $("play-sound").hidden = true;
  });
  $("chat-form").addEventListener("submit", (event) => {
    event.preventDefault();
    const input = $("chat-text");
    const text = input.value.trim();
    if (!text) return;
    clear($("chat-alert"));
    // the server echoes the message back once it is kept; that copy is what appears in the list
    if (call?.chat(text)) input.value = "";
    else $("chat-alert").append(alertText(t("chat_not_sent")));
  });
}

async function main() {
  translatePage(document, t);
  $("language").append(languageSwitch());
  if (!session.get()) {
    location.replace("/console/doctor/");
    return;
  }
  schedule();
  // Signed out (the refresh token expired or was revoked): media already flowing goes on, but rejoining and
  // saving need a new sign-in, so say so rather than leave the page for the sign-in form mid-call.
  whenSignedOut(showSignedOut);
  if (!consultationId) {
    showStatus("");
    showAlert(alertText(t("no_consultation")));
    return;
  }

  let consultation;
  try {
    consultation = await request("GET", `/consultations/${encodeURIComponent(consultationId)}`);
  } catch (err) {
    showStatus("");
    showAlert(problemAlert(err, t));
    return;
  }
  $("call-title").textContent = t("consultation_with", { name: consultation.patient_name });
  document.title = `${t("page_title")} · ${consultation.patient_name}`;
  $("call-when").textContent = t("starts_at", { time: formatDateTime(consultation.starts_at) });
  if (!JOINABLE.includes(consultation.status)) {
    showStatus("");
    showAlert(alertText(t("not_joinable", { status: t(`state_${consultation.status}`) })));
    return;
  }

  showStatus(t("status_media"));
  while (!stream) {
    try {
      stream = await openDevices();
    } catch (err) {
      showStatus("");
      await new Promise((resolve) => {
        const retry = el("button", { type: "button", class: "primary", onclick: resolve }, t("retry_media"));
        showAlert(el("div", { class: "alert error", role: "alert" }, el("p", {}, mediaProblem(err)), retry));
        retry.focus();
      });
      clear($("alerts"));
    }
  }
  $("local-video").srcObject = stream;
  $("call-layout").hidden = false;
  wireControls();

  if (STARTABLE.includes(consultation.status)) {
    showStatus(t("status_starting"));
    try {
      await request("POST", `/consultations/${consultationId}/start`);
    } catch (err) {
      showStatus("");
      showAlert(problemAlert(err, t));
      closeCall(null, false);
      return;
    }
  }
  showStatus(t("status_joining"));
  joinCall();
}

main();
