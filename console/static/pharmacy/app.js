// The pharmacist's counter: sign in, find a prescription by code or QR, hold it, dispense all or part, take the
// payment by VNPay QR and print a receipt. Every rule (who may dispense what, how much remains) is the API's; this
// page only shows what the API answers.

import { api, ApiError, Session } from "/console/common/api.js";
import { translator, translatePage, languageSwitch } from "/console/common/i18n.js";
import {
  el, clear, formatDate, formatDateTime, formatVnd, problemAlert, vietnamToday, TIME_ZONE,
} from "/console/common/ui.js";
import strings from "/console/pharmacy/strings.js";

const t = translator(strings);
const session = new Session("pharmacy");
const $ = (id) => document.getElementById(id);

const SCAN_EVERY_MS = 500;
const POLL_PAYMENT_MS = 2000;
const CAMERA_MAX_SIDE = 960; // enough for a QR held up to the camera, small enough to send twice a second
const PHOTO_MAX_SIDE = 1600; // a phone photo keeps a small QR readable at this size
const EXPIRING_SOON_MS = 24 * 3600 * 1000;

const state = {
  rx: null, // the last verification
  identity: null, // what the pharmacist read from the patient's papers, sent with every re-check
  saleKey: null, // Idempotency-Key of the sale being submitted; kept across retries of the same sale
  sale: null, // {dispense, rx, recipient, substitutes}
  payment: null,
  pollTimer: null,
  camera: null, // {stream, timer}
  substitutes: new Map(), // drug id → label, for the receipt
};

// Raised after the session ended and the sign-in form is showing: callers need not report anything more.
class SignedOut extends Error {}

// ------------------------------------------------------------------------------------------------ session

let refreshing = null;

async function refreshSession() {
  const current = session.get();
  if (!current?.refreshToken) return false;
  refreshing ??= api("POST", "/auth/refresh", { body: { refresh_token: current.refreshToken } })
    .then((fresh) => {
      session.set({ ...session.get(), accessToken: fresh.access_token, refreshToken: fresh.refresh_token });
      return true;
    })
    .catch(() => false)
    .finally(() => { refreshing = null; });
  return refreshing;
}

// api() with this session's token; an expired access token is refreshed once, a dead session signs out.
async function call(method, path, options = {}) {
  const current = session.get();
  if (!current) { showSignIn(t("session_expired")); throw new SignedOut(); }
  try {
    return await api(method, path, { ...options, token: current.accessToken });
  } catch (err) {
    if (!(err instanceof ApiError) || err.status !== 401) throw err;
    if (await refreshSession()) return api(method, path, { ...options, token: session.get().accessToken });
    session.clear();
    showSignIn(t("session_expired"));
    throw new SignedOut();
  }
}

function showSignIn(message) {
  stopCamera();
  stopPolling();
  $("counter").hidden = true;
  $("receipt").hidden = true;
  $("sign-out").hidden = true;
  clear($("who"));
  $("sign-in").hidden = false;
  clear($("sign-in-message"), message ? el("div", { class: "alert warning", role: "status" }, message) : null);
  $("username").focus();
}

function showCounter() {
  const current = session.get();
  $("sign-in").hidden = true;
  $("counter").hidden = false;
  $("sign-out").hidden = false;
  clear($("who"), [current.name, current.pharmacy?.name].filter(Boolean).join(" · "));
  $("code").focus();
}

async function signIn(event) {
  event.preventDefault();
  const form = event.currentTarget;
  const button = form.querySelector("button[type=submit]");
  clear($("sign-in-error"));
  clear($("sign-in-message"));
  button.disabled = true;
  button.textContent = t("signing_in");
  try {
    const result = await api("POST", "/auth/login", { body: {
      username: $("username").value.trim(), password: $("password").value, totp_code: $("totp").value.trim() } });
    if (result.kind === "totp_enrolment_required") {
      clear($("sign-in-error"), el("div", { class: "alert warning", role: "alert" }, t("enrolment_required")));
      return;
    }
    if (result.role !== "pharmacist") {
      clear($("sign-in-error"), el("div", { class: "alert error", role: "alert" }, t("not_pharmacist")));
      return;
    }
    session.set({ accessToken: result.access_token, refreshToken: result.refresh_token });
    const me = await call("GET", "/me");
    const pharmacy = me.pharmacy_id ? await api("GET", `/pharmacies/${me.pharmacy_id}`) : null;
    session.set({ ...session.get(), name: me.full_name, username: me.username,
                  pharmacy: pharmacy && { id: pharmacy.id, name: pharmacy.name, address: pharmacy.address,
                                          phone: pharmacy.phone } });
    form.reset();
    showCounter();
  } catch (err) {
    report($("sign-in-error"), err);
  } finally {
    button.disabled = false;
    button.textContent = t("sign_in");
  }
}

async function signOut() {
  const current = session.get();
  if (current) {
    // best effort: the refresh token dies on the server; the page forgets both tokens either way
    await api("POST", "/auth/logout", { body: { refresh_token: current.refreshToken }, token: current.accessToken })
      .catch(() => {});
  }
  session.clear();
  resetCounter();
  showSignIn(t("signed_out"));
}

// ------------------------------------------------------------------------------------------------ verify

function announce(text) { $("announce").textContent = text; }

// problemAlert with the title in the page's language when the problem type is a known one; the detail stays the API's
function alertFor(err) {
  const slug = String(err.type || "").replace(/^\/problems\//, "");
  const key = `problem_${slug.replaceAll("-", "_")}`;
  const title = t(key);
  return problemAlert(title === key ? err : { status: err.status, title, message: err.message, fields: err.fields }, t);
}

function report(where, err) {
  if (err instanceof SignedOut) return;
  clear(where, alertFor(err));
}

function identity() {
  const dob = $("dob").value;
  const citizen = $("citizen-id").value.trim();
  if (!dob && !citizen) return null;
  return { ...(dob ? { date_of_birth: dob } : {}), ...(citizen ? { citizen_id: citizen } : {}) };
}

// {code} or {qr}; errors go to ``errorBox``, next to what the pharmacist used.
async function verify(input, errorBox) {
  clear($("verify-error"));
  clear($("scan-error"));
  announce(t("verifying"));
  try {
    state.identity = identity();
    const body = { ...input, ...(state.identity ? { identity: state.identity } : {}) };
    state.rx = await call("POST", "/dispensing/verify", { body });
    $("code").value = state.rx.code;
    $("code").removeAttribute("aria-invalid");
    state.sale = null;
    stopPolling();
    $("sale").hidden = true;
    render();
    announce(t("rx_title", { code: state.rx.code }) + ": " + t(`st_${state.rx.status}`));
    $("rx-title").focus();
  } catch (err) {
    if (errorBox === $("verify-error")) $("code").setAttribute("aria-invalid", "true");
    report(errorBox, err);
  }
}

// after a hold, release or sale: the same prescription, re-read so remaining quantities are the server's
async function recheck() {
  state.rx = await call("POST", "/dispensing/verify", {
    body: { code: state.rx.code, ...(state.identity ? { identity: state.identity } : {}) } });
  render();
}

function useQrText(text) {
  // a Lienthong QR carries the prescriber's signature over the code; anything else may be a printed plain code
  const input = text.startsWith("LT1.") ? { qr: text } : { code: text.trim() };
  return verify(input, $("scan-error"));
}

// ------------------------------------------------------------------------------------------------ QR pictures

// The picture as 8-bit grey pixels (ITU-R BT.601 luma), scaled down to maxSide, base64 for JSON.
function greyFrame(source, width, height, maxSide) {
  const scale = Math.min(1, maxSide / Math.max(width, height));
  const w = Math.max(1, Math.round(width * scale));
  const h = Math.max(1, Math.round(height * scale));
  const canvas = document.createElement("canvas");
  canvas.width = w;
  canvas.height = h;
  const context = canvas.getContext("2d", { willReadFrequently: true });
  context.drawImage(source, 0, 0, w, h);
  const rgba = context.getImageData(0, 0, w, h).data;
  const grey = new Uint8Array(w * h);
  for (let i = 0, j = 0; i < grey.length; i += 1, j += 4) {
    grey[i] = (rgba[j] * 299 + rgba[j + 1] * 587 + rgba[j + 2] * 114) / 1000;
  }
  let binary = "";
  for (let i = 0; i < grey.length; i += 0x8000) binary += String.fromCharCode(...grey.subarray(i, i + 0x8000));
  return { width: w, height: h, luminance: btoa(binary) };
}

const notFound = (err) => err instanceof ApiError && err.type === "/problems/qr-not-found";

async function startCamera() {
  clear($("scan-error"));
  try {
    // browsers offer cameras only to secure pages (HTTPS, or this machine itself)
    if (!navigator.mediaDevices?.getUserMedia) throw new Error(t("camera_needs_https"));
    const stream = await navigator.mediaDevices.getUserMedia({ video: { facingMode: "environment" }, audio: false });
    state.camera = { stream, timer: null };
    const video = $("camera");
    video.srcObject = stream;
    video.hidden = false;
    await video.play();
    $("camera-button").textContent = t("stop_camera");
    $("scan-status").textContent = t("scanning");
    state.camera.timer = setTimeout(scanCameraFrame, SCAN_EVERY_MS);
  } catch (err) {
    stopCamera();
    clear($("scan-error"), el("div", { class: "alert error", role: "alert" },
      t("camera_unavailable", { reason: err.message || err.name })));
  }
}

function stopCamera() {
  if (!state.camera) return;
  clearTimeout(state.camera.timer);
  for (const track of state.camera.stream.getTracks()) track.stop();
  state.camera = null;
  const video = $("camera");
  video.srcObject = null;
  video.hidden = true;
  $("camera-button").textContent = t("scan_camera");
  $("scan-status").textContent = "";
}

// one frame at a time: the next is taken only after the server answered the last
async function scanCameraFrame() {
  const camera = state.camera;
  if (!camera) return;
  const video = $("camera");
  if (video.videoWidth) {
    try {
      const { text } = await call("POST", "/dispensing/qr-scan",
        { body: greyFrame(video, video.videoWidth, video.videoHeight, CAMERA_MAX_SIDE) });
      stopCamera();
      $("scan-status").textContent = t("qr_found");
      await useQrText(text);
      return;
    } catch (err) {
      if (!notFound(err)) { stopCamera(); report($("scan-error"), err); return; }
    }
  }
  if (state.camera === camera) camera.timer = setTimeout(scanCameraFrame, SCAN_EVERY_MS);
}

async function scanPhoto(event) {
  const file = event.currentTarget.files[0];
  if (!file) return;
  stopCamera();
  clear($("scan-error"));
  $("scan-status").textContent = t("reading_photo");
  try {
    let bitmap;
    try { bitmap = await createImageBitmap(file); } catch {
      clear($("scan-error"), el("div", { class: "alert error", role: "alert" }, t("photo_unreadable")));
      return;
    }
    const frame = greyFrame(bitmap, bitmap.width, bitmap.height, PHOTO_MAX_SIDE);
    bitmap.close();
    const { text } = await call("POST", "/dispensing/qr-scan", { body: frame });
    $("scan-status").textContent = t("qr_found");
    await useQrText(text);
  } catch (err) {
    $("scan-status").textContent = "";
    report($("scan-error"), err);
  } finally {
    event.target.value = ""; // choosing the same photo again scans it again
  }
}

// ------------------------------------------------------------------------------------------------ prescription

const drugLabel = (line) => [line.drug_name, line.strength, line.dosage_form].filter(Boolean).join(" ");

function render() {
  renderPrescription();
  renderDispenseForm();
}

function derivedWarnings(rx) {
  const warnings = [];
  const controlled = rx.lines.filter((line) => line.control_class !== "none");
  if (controlled.length) {
    warnings.push(t("warn_controlled", { drugs: controlled.map((line) =>
      `${drugLabel(line)} (${t(`control_${line.control_class}`)})`).join(", ") }));
  }
  const left = Date.parse(rx.valid_until) - Date.now();
  if (left > 0 && left < EXPIRING_SOON_MS) warnings.push(t("warn_expiring", { when: formatDateTime(rx.valid_until) }));
  return warnings;
}

function fact(term, ...value) {
  return [el("dt", {}, term), el("dd", {}, ...value)];
}

function renderPrescription() {
  const rx = state.rx;
  const box = $("prescription");
  box.hidden = false;
  const p = rx.patient;
  const patient = [el("strong", {}, p.full_name), p.birth_year ? ` (${t("born", { year: p.birth_year })})` : null];
  if (rx.identity_confirmed) {
    patient.push(" ", el("span", { class: "badge ok" }, t("identity_confirmed")));
    const more = [p.date_of_birth && `${t("date_of_birth")}: ${formatDate(p.date_of_birth)}`,
      p.sex && `${t("sex")}: ${p.sex}`, p.address && `${t("address")}: ${p.address}`,
      p.weight_kg && `${t("weight")}: ${p.weight_kg} kg`].filter(Boolean);
    if (more.length) patient.push(el("br"), more.join(" · "));
  }
  const warnings = [...rx.warnings, ...derivedWarnings(rx)];
  const holdText = rx.held_by_you ? t("held_by_you", { until: formatDateTime(rx.hold_expires_at) })
    : rx.held_by_another_pharmacy ? t("held_by_other") : t("not_held");
  clear(box,
    el("div", { class: "rx-head" },
      el("h2", { id: "rx-title", tabindex: "-1" }, t("rx_title", { code: rx.code })),
      el("span", { id: "rx-status", class: `badge status-${rx.status}` }, t(`st_${rx.status}`))),
    // a fully dispensed prescription is the normal end, not an alarm
    rx.reasons.length ? el("div", rx.status === "dispensed" && rx.signature_valid
      ? { class: "alert ok", id: "rx-reasons" } : { class: "alert error", role: "alert", id: "rx-reasons" },
    el("strong", {}, t("cannot_dispense")), el("ul", {}, rx.reasons.map((r) => el("li", {}, r)))) : null,
    warnings.length ? el("div", { class: "alert warning", id: "rx-warnings" },
      el("strong", {}, t("warnings")), el("ul", {}, warnings.map((w) => el("li", {}, w)))) : null,
    el("dl", { class: "facts" },
      fact(t("patient"), ...patient),
      fact(t("doctor"), rx.doctor_name, el("span", { class: "muted" }, ` · ${t("licence", { licence: rx.doctor_licence })}`)),
      fact(t("facility"), `${rx.facility_name} (${rx.facility_code})`),
      fact(t("rx_type"), t(`rx_type_${rx.rx_type}`)),
      fact(t("issued_at"), formatDateTime(rx.issued_at)),
      fact(t("valid_until"), formatDateTime(rx.valid_until)),
      fact(t("signature"), el("span", { class: rx.signature_valid ? "ok-text" : "bad-text" },
        t(rx.signature_valid ? "signature_ok" : "signature_bad")))),
    el("div", { class: "hold row" },
      el("p", { id: "hold-state", role: "status" }, holdText),
      rx.dispensable && !rx.held_by_you ? el("button", { type: "button", id: "hold-button", onclick: hold }, t("hold")) : null,
      rx.held_by_you ? el("button", { type: "button", id: "release-button", onclick: release }, t("release")) : null),
    el("div", { id: "hold-error", "aria-live": "polite" }),
    el("table", { id: "rx-lines" },
      el("caption", {}, t("lines_caption")),
      el("thead", {}, el("tr", {}, ["col_no", "col_drug", "col_instructions", "col_prescribed", "col_dispensed",
        "col_remaining"].map((key) => el("th", { scope: "col" }, t(key))))),
      el("tbody", {}, rx.lines.map((line) => el("tr", { dataset: { position: line.position } },
        el("td", {}, line.position),
        el("td", {}, el("strong", {}, drugLabel(line)), line.control_class !== "none"
          ? el("span", { class: "badge controlled" }, ` ${t(`control_${line.control_class}`)}`) : null),
        el("td", {}, line.instructions),
        el("td", { class: "num" }, `${line.quantity} ${line.quantity_unit}`),
        el("td", { class: "num" }, `${line.dispensed_quantity} ${line.quantity_unit}`),
        el("td", { class: "num remaining" }, `${line.remaining_quantity} ${line.quantity_unit}`))))));
}

async function holdAction(path, message) {
  clear($("hold-error"));
  try {
    const out = await call("POST", `/dispensing/prescriptions/${encodeURIComponent(state.rx.code)}/${path}`);
    await recheck();
    announce(message(out));
  } catch (err) {
    report($("hold-error"), err);
  }
}

const hold = () => holdAction("hold", (out) => t("held_ok", { until: formatDateTime(out.hold_expires_at) }));
const release = () => holdAction("release", () => t("released_ok"));

// ------------------------------------------------------------------------------------------------ dispense

function invoiceSuggestion() {
  // HD + the Vietnam date and time to the second: unique enough at one counter, 14 of the 20 allowed characters
  const now = new Intl.DateTimeFormat("sv-SE", { timeZone: TIME_ZONE, year: "numeric", month: "2-digit",
    day: "2-digit", hour: "2-digit", minute: "2-digit", second: "2-digit" }).format(new Date());
  return `HD${now.replace(/\D/g, "").slice(2)}`;
}

function field(id, label, input) {
  return el("div", { class: "field" }, el("label", { for: id }, label), input, el("div", { class: "field-error", id: `${id}-error` }));
}

function lineFieldset(line) {
  const p = line.position;
  const name = drugLabel(line);
  const described = `${p}-error`;
  return el("fieldset", { class: "dispense-line", dataset: { position: p } },
    el("legend", {}, `${p}. ${name} · ${t("col_remaining")}: ${line.remaining_quantity} ${line.quantity_unit}`),
    el("div", { class: "row" },
      field(`qty-${p}`, t("col_quantity"), el("input", { id: `qty-${p}`, type: "number", min: "0",
        max: String(line.remaining_quantity), step: "1", value: String(line.remaining_quantity),
        "aria-describedby": `qty-${described}` })),
      field(`lot-${p}`, t("col_lot"), el("input", { id: `lot-${p}`, maxlength: "50", autocomplete: "off",
        "aria-describedby": `lot-${described}` })),
      field(`expiry-${p}`, t("col_expiry"), el("input", { id: `expiry-${p}`, type: "date", min: vietnamToday(),
        "aria-describedby": `expiry-${described}` })),
      field(`price-${p}`, t("col_price"), el("input", { id: `price-${p}`, type: "number", min: "0", step: "1",
        inputmode: "numeric", "aria-describedby": `price-${described}` })),
      field(`origin-${p}`, t("col_origin"), el("input", { id: `origin-${p}`, maxlength: "100",
        "aria-describedby": `origin-${described}` }))),
    el("details", { class: "substitute" },
      el("summary", {}, t("substitute_for", { drug: name })),
      el("div", { class: "row" },
        field(`sub-q-${p}`, t("substitute_search"), el("input", { id: `sub-q-${p}`, type: "search",
          value: line.drug_name, onkeydown: (e) => { if (e.key === "Enter") { e.preventDefault(); searchSubstitutes(p); } } })),
        el("div", { class: "field narrow" }, el("button", { type: "button", onclick: () => searchSubstitutes(p) }, t("search"))),
        field(`sub-${p}`, t("substitute_drug"), el("select", { id: `sub-${p}`, "aria-describedby": `sub-${described}` },
          new Option(t("choose_substitute"), "")))),
      el("label", { class: "check" }, el("input", { type: "checkbox", id: `consent-${p}` }), " ", t("buyer_consent")),
      el("div", { class: "field-error", id: `consent-${described}` })));
}

async function searchSubstitutes(position) {
  const select = $(`sub-${position}`);
  const errorBox = $(`sub-${position}-error`);
  clear(errorBox);
  try {
    const page = await call("GET", "/drugs", { query: { q: $(`sub-q-${position}`).value.trim(), limit: 20 } });
    const options = page.items.filter((drug) => drug.active).map((drug) => {
      const label = [drug.inn, drug.strength, drug.dosage_form, drug.trade_names?.length ? `(${drug.trade_names.join(", ")})` : ""]
        .filter(Boolean).join(" ");
      state.substitutes.set(drug.id, label);
      return new Option(label, drug.id);
    });
    clear(select, new Option(t("choose_substitute"), ""), options);
    if (!options.length) errorBox.textContent = t("no_drugs_found");
  } catch (err) {
    report(errorBox, err);
  }
}

function renderDispenseForm() {
  const rx = state.rx;
  const box = $("dispense");
  const open = rx.lines.filter((line) => line.remaining_quantity > 0);
  if (!rx.dispensable || !open.length) { box.hidden = true; clear(box); return; }
  box.hidden = false;
  const controlled = rx.rx_type === "n" || rx.rx_type === "h";
  clear(box,
    el("h2", { id: "dispense-title" }, t("dispense_title")),
    el("p", { class: "muted" }, t("dispense_hint")),
    el("form", { id: "dispense-form", novalidate: true, onsubmit: dispense },
      open.map(lineFieldset),
      el("div", { class: "row" },
        field("recipient-name", t("recipient_name"), el("input", { id: "recipient-name", required: true,
          maxlength: "200", value: rx.patient.full_name })),
        field("recipient-id", t("recipient_id"), el("input", { id: "recipient-id", maxlength: "20",
          required: controlled, "aria-describedby": "recipient-id-hint" })),
        field("invoice", t("invoice_number"), el("input", { id: "invoice", required: true, maxlength: "20",
          value: invoiceSuggestion() }))),
      controlled ? el("p", { id: "recipient-id-hint", class: "muted" }, t("recipient_id_required")) : null,
      el("div", { id: "dispense-error", "aria-live": "polite" }),
      el("button", { class: "primary", type: "submit", id: "dispense-button" }, t("dispense"))));
}

const numberOrNull = (value) => (value.trim() === "" ? null : Number(value));

function collectSale() {
  const lines = [];
  for (const line of state.rx.lines.filter((l) => l.remaining_quantity > 0)) {
    const p = line.position;
    const quantity = numberOrNull($(`qty-${p}`).value);
    if (quantity === 0) continue;
    const substitute = $(`sub-${p}`).value;
    lines.push({
      position: p, quantity, lot_number: $(`lot-${p}`).value.trim(), expiry_date: $(`expiry-${p}`).value || null,
      unit_price_vnd: numberOrNull($(`price-${p}`).value), origin: $(`origin-${p}`).value.trim(),
      ...(substitute ? { substitute_drug_id: substitute, buyer_consent: $(`consent-${p}`).checked } : {}),
    });
  }
  const idNumber = $("recipient-id").value.trim().toUpperCase();
  return {
    lines, invoice_number: $("invoice").value.trim(),
    recipient: { full_name: $("recipient-name").value.trim(), ...(idNumber ? { id_number: idNumber } : {}) },
  };
}

// "body.lines[1].lot_number" → the input it is about, so the message stands next to it
function inputFor(path, sent) {
  const line = /^body\.lines\[(\d+)\]\.(\w+)/.exec(path);
  if (line) {
    const position = sent.lines[Number(line[1])]?.position;
    const ids = { quantity: "qty", lot_number: "lot", expiry_date: "expiry", unit_price_vnd: "price", origin: "origin",
                  substitute_drug_id: "sub", buyer_consent: "consent", position: "qty" };
    return position && ids[line[2]] ? `${ids[line[2]]}-${position}` : null;
  }
  return { "body.invoice_number": "invoice", "body.recipient.full_name": "recipient-name",
           "body.recipient.id_number": "recipient-id" }[path] ?? null;
}

function clearFieldErrors(form) {
  for (const node of form.querySelectorAll("[aria-invalid]")) node.removeAttribute("aria-invalid");
  for (const node of form.querySelectorAll(".field-error")) clear(node);
}

async function dispense(event) {
  event.preventDefault();
  const form = event.currentTarget;
  clearFieldErrors(form);
  clear($("dispense-error"));
  const body = collectSale();
  if (!body.lines.length) {
    clear($("dispense-error"), el("div", { class: "alert error", role: "alert" }, t("nothing_selected")));
    return;
  }
  const button = $("dispense-button");
  button.disabled = true;
  button.textContent = t("dispensing");
  state.saleKey ??= crypto.randomUUID();
  try {
    const sent = await call("POST", `/dispensing/prescriptions/${encodeURIComponent(state.rx.code)}/dispenses`,
      { body, headers: { "Idempotency-Key": state.saleKey } });
    state.saleKey = null;
    state.sale = { dispense: sent, rx: state.rx, recipient: body.recipient,
                   substitutes: new Map(sent.lines.filter((l) => l.substituted)
                     .map((l) => [l.drug_id, state.substitutes.get(l.drug_id) ?? l.drug_id])) };
    state.payment = null;
    stopPolling();
    await recheck();
    renderSale();
  } catch (err) {
    if (err instanceof SignedOut) return;
    if (err instanceof ApiError && err.status !== 0) state.saleKey = null; // refused: nothing was sold
    let first = null;
    for (const problem of err.problem?.errors || []) {
      const id = inputFor(problem.path, body);
      if (!id || !$(id)) continue;
      $(id).setAttribute("aria-invalid", "true");
      $(`${id}-error`)?.append(el("span", {}, problem.message));
      first ??= $(id);
    }
    clear($("dispense-error"), alertFor(err));
    first?.focus();
  } finally {
    if (button.isConnected) { button.disabled = false; button.textContent = t("dispense"); }
  }
}

// ------------------------------------------------------------------------------------------------ sale, payment

function saleLines(sale) {
  const byPosition = new Map(sale.rx.lines.map((line) => [line.position, line]));
  return sale.dispense.lines.map((line) => {
    const prescribed = byPosition.get(line.position);
    const name = line.substituted ? `${sale.substitutes.get(line.drug_id)} ${t("receipt_substituted")}` : drugLabel(prescribed);
    return { ...line, name, unit: prescribed?.quantity_unit ?? "" };
  });
}

function saleTable(sale, id) {
  return el("table", { id },
    el("thead", {}, el("tr", {}, ["col_no", "col_drug", "col_lot", "col_expiry", "col_qty", "col_price",
      "col_amount"].map((key) => el("th", { scope: "col" }, t(key))))),
    el("tbody", {}, saleLines(sale).map((line) => el("tr", {},
      el("td", {}, line.position), el("td", {}, line.name), el("td", {}, line.lot_number),
      el("td", {}, formatDate(line.expiry_date)), el("td", { class: "num" }, `${line.quantity} ${line.unit}`),
      el("td", { class: "num" }, formatVnd(line.unit_price_vnd)),
      el("td", { class: "num" }, formatVnd(line.quantity * line.unit_price_vnd))))),
    el("tfoot", {}, el("tr", {}, el("th", { scope: "row", colspan: "6" }, t("total")),
      el("td", { class: "num total" }, formatVnd(sale.dispense.total_vnd)))));
}

function renderSale() {
  const sale = state.sale;
  const d = sale.dispense;
  const box = $("sale");
  box.hidden = false;
  clear(box,
    el("h2", { id: "sale-title", tabindex: "-1" }, t("sale_title", { invoice: d.invoice_number })),
    el("div", { class: "alert ok", role: "status", id: "sale-done" }, t("sale_done", { total: formatVnd(d.total_vnd) })),
    el("p", { id: "sale-status" }, t("sale_status", { status: t(`st_${d.prescription_status}`) })),
    saleTable(sale, "sale-lines"),
    el("div", { class: "actions" },
      d.total_vnd > 0 ? el("button", { type: "button", id: "pay-button", class: "primary", onclick: startPayment },
        t("pay_vnpay")) : null,
      el("button", { type: "button", id: "receipt-button", onclick: showReceipt }, t("show_receipt"))),
    el("div", { id: "payment", "aria-live": "polite" }),
    // a mistaken sale is undone here, soon after (the server enforces the window and refunds a paid one)
    el("details", { id: "void-sale" },
      el("summary", {}, t("void_title")),
      el("form", { id: "void-form", onsubmit: voidSale, novalidate: true },
        el("label", { for: "void-reason" }, t("void_reason")),
        el("input", { id: "void-reason", name: "reason", required: true, minlength: "5", maxlength: "500",
                      autocomplete: "off" }),
        el("span", { class: "field-error", id: "void-reason-error" }),
        el("button", { type: "submit", id: "void-button", class: "danger" }, t("void_button")),
        el("div", { id: "void-result", "aria-live": "polite" }))));
  $("sale-title").focus();
}

async function voidSale(event) {
  event.preventDefault();
  const input = $("void-reason");
  input.removeAttribute("aria-invalid");
  clear($("void-reason-error"));
  clear($("void-result"));
  const reason = input.value.trim();
  if (reason.length < 5) {
    input.setAttribute("aria-invalid", "true");
    clear($("void-reason-error"), t("void_reason_short"));
    input.focus();
    return;
  }
  const button = $("void-button");
  button.disabled = true;
  try {
    const voided = await call("POST", `/dispensing/dispenses/${state.sale.dispense.id}/void`, { body: { reason } });
    stopPolling();
    state.sale.dispense = voided;
    await recheck();
    clear($("sale-done"), t("void_done"));
    $("sale-done").className = "alert warning";
    for (const id of ["pay-button", "void-sale"]) $(id)?.remove();
  } catch (err) {
    button.disabled = false;
    report($("void-result"), err);
  }
}

function paymentText(status) {
  return { pending: t("pay_pending"), paid: t("pay_paid"), failed: t("pay_failed"), expired: t("pay_expired"),
           needs_review: t("pay_needs_review") }[status] ?? t("pay_other", { status });
}

// The API's QR is SVG meant for inline HTML (no namespace); shown as an image it can never run anything.
function svgImageUrl(svg) {
  const standalone = svg.includes("xmlns=") ? svg : svg.replace("<svg", '<svg xmlns="http://www.w3.org/2000/svg"');
  return `data:image/svg+xml;charset=utf-8,${encodeURIComponent(standalone)}`;
}

function renderPayment() {
  const pay = state.payment;
  const svg = pay.qr_svg && pay.status === "pending"
    ? el("img", { id: "payment-qr", src: svgImageUrl(pay.qr_svg),
                  alt: t("payment_qr"), width: "280", height: "280" }) : null;
  clear($("payment"),
    el("h3", {}, t("payment_title")),
    svg,
    el("p", {}, `${t("payment_amount")}: `, el("strong", { id: "payment-amount" }, formatVnd(pay.amount_vnd))),
    el("p", { id: "payment-status", role: "status", class: `pay-${pay.status}` }, paymentText(pay.status)),
    pay.status === "pending" ? el("p", { class: "muted" }, t("payment_expires", { when: formatDateTime(pay.expires_at) }),
      pay.pay_url ? [" · ", el("a", { href: pay.pay_url, target: "_blank", rel: "noopener" }, t("payment_link"))] : null)
      : null);
}

async function startPayment() {
  const button = $("pay-button");
  button.disabled = true;
  try {
    state.payment = await call("POST", `/payments/dispenses/${state.sale.dispense.id}`);
    renderPayment();
    pollPayment();
  } catch (err) {
    button.disabled = false;
    report($("payment"), err);
  }
}

function pollPayment() {
  stopPolling();
  if (state.payment?.status !== "pending") return;
  state.pollTimer = setTimeout(async () => {
    try {
      state.payment = await call("GET", `/payments/${state.payment.id}`);
      renderPayment();
      if (state.payment.status !== "pending") announce(paymentText(state.payment.status));
    } catch (err) {
      if (err instanceof SignedOut) return;
    }
    pollPayment();
  }, POLL_PAYMENT_MS);
}

function stopPolling() {
  clearTimeout(state.pollTimer);
  state.pollTimer = null;
}

// ------------------------------------------------------------------------------------------------ receipt

function showReceipt() {
  const sale = state.sale;
  const d = sale.dispense;
  const pharmacy = session.get()?.pharmacy;
  $("counter").hidden = true;
  const box = $("receipt");
  box.hidden = false;
  clear(box,
    el("header", { class: "receipt-head" },
      pharmacy ? el("p", { class: "pharmacy-name" }, el("strong", {}, pharmacy.name)) : null,
      pharmacy ? el("p", {}, pharmacy.address) : null,
      pharmacy?.phone ? el("p", {}, `${t("receipt_phone")}: ${pharmacy.phone}`) : null,
      el("h2", { id: "receipt-title", tabindex: "-1" }, t("receipt_title"))),
    el("dl", { class: "facts" },
      fact(t("receipt_date"), formatDateTime(d.created_at)),
      fact(t("receipt_invoice"), d.invoice_number),
      fact(t("receipt_code"), d.code),
      fact(t("patient"), sale.rx.patient.full_name),
      fact(t("doctor"), sale.rx.doctor_name),
      fact(t("receipt_recipient"), sale.recipient.full_name),
      fact(t("receipt_pharmacist"), session.get()?.name ?? "")),
    saleTable(sale, "receipt-lines"),
    state.payment?.status === "paid" ? el("p", { id: "receipt-paid" }, el("strong", {}, t("receipt_paid"))) : null,
    el("div", { class: "actions" },
      el("button", { type: "button", class: "primary", id: "print-button", onclick: () => window.print() }, t("print")),
      el("button", { type: "button", id: "receipt-back", onclick: hideReceipt }, t("back"))));
  $("receipt-title").focus();
}

function hideReceipt() {
  $("receipt").hidden = true;
  $("counter").hidden = false;
  $("receipt-button")?.focus();
}

// ------------------------------------------------------------------------------------------------ start

function resetCounter() {
  stopCamera();
  stopPolling();
  Object.assign(state, { rx: null, identity: null, saleKey: null, sale: null, payment: null });
  for (const id of ["prescription", "dispense", "sale"]) { $(id).hidden = true; clear($(id)); }
  for (const id of ["verify-error", "scan-error"]) clear($(id));
  $("verify-form").reset();
}

function start() {
  translatePage(document, t);
  $("language").append(languageSwitch());
  $("sign-in-form").addEventListener("submit", signIn);
  $("sign-out").addEventListener("click", signOut);
  $("verify-form").addEventListener("submit", (event) => {
    event.preventDefault();
    const code = $("code").value.trim();
    if (code) verify({ code }, $("verify-error"));
    else $("code").focus();
  });
  $("camera-button").addEventListener("click", () => (state.camera ? stopCamera() : startCamera()));
  $("photo").addEventListener("change", scanPhoto);
  if (session.get()?.accessToken) showCounter();
  else showSignIn();
}

start();
