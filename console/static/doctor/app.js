// The doctor console: sign-in (password + authenticator, enrolling one when the account has none), today's queue,
// the schedule editor and, in consultation.js, the notes and prescribing of one consultation. Hash routes keep it
// one page: #/queue, #/schedule, #/consultations/<id>.

import { api } from "/console/common/api.js";
import { languageSwitch, translatePage } from "/console/common/i18n.js";
import { clear, el, formatDate, formatDateTime, formatTime } from "/console/common/ui.js";
import { announce, showProblem, t, vnDateTime } from "/console/doctor/common.js";
import { renderConsultation } from "/console/doctor/consultation.js";
import { call, schedule, session, signOut, store, whenSignedOut } from "/console/doctor/session.js";

const view = document.getElementById("view");
const QUEUE_REFRESH_MS = 5000;
let leaving = () => {}; // stops the current screen's timers when another one is shown

translatePage(document, t);
document.title = t("title");
document.getElementById("language").append(languageSwitch());
document.getElementById("sign-out").addEventListener("click", () => signOut());
whenSignedOut((expired) => {
  route();
  if (expired) view.prepend(el("p", { class: "alert warning", role: "alert" }, t("session_expired")));
});
window.addEventListener("hashchange", route);
schedule();
route();

function route() {
  leaving();
  leaving = () => {};
  const current = session.get();
  const signedIn = Boolean(current);
  document.getElementById("nav").hidden = !signedIn;
  document.getElementById("sign-out").hidden = !signedIn;
  document.getElementById("who").textContent = signedIn ? t("signed_in_as", { name: current.account.full_name }) : "";
  if (!signedIn) { renderSignIn(); return; }
  const hash = location.hash || "#/queue";
  const consultation = hash.match(/^#\/consultations\/([0-9a-f-]{36})$/);
  const page = consultation ? "consultation" : hash === "#/schedule" ? "schedule" : "queue";
  for (const link of document.querySelectorAll("#nav a")) {
    if (link.dataset.route === page) link.setAttribute("aria-current", "page");
    else link.removeAttribute("aria-current");
  }
  if (consultation) leaving = renderConsultation(view, consultation[1]);
  else if (page === "schedule") renderSchedule();
  else leaving = renderQueue();
}

// Shows a route; a hash that does not change fires no hashchange, so the screen is drawn here then.
function go(hash) {
  if (location.hash === hash) route();
  else location.hash = hash;
}

function heading(key, vars) {
  return el("h1", { tabindex: "-1" }, t(key, vars));
}

// ------------------------------------------------------------------------------------------------ sign-in

function field(id, key, attrs = {}) {
  return [el("label", { for: id }, t(key)), el("input", { id, name: id, ...attrs })];
}

function renderSignIn() {
  view.className = "narrow";
  const problems = el("div");
  const form = el("form", { class: "card", novalidate: true },
    ...field("username", "username", { autocomplete: "username", required: true, autocapitalize: "none" }),
    ...field("password", "password", { type: "password", autocomplete: "current-password", required: true }),
    ...field("totp", "totp_code", { inputmode: "numeric", autocomplete: "one-time-code", pattern: "[0-9]{6}",
      maxlength: "6", "aria-describedby": "totp-hint" }),
    el("p", { id: "totp-hint", class: "muted" }, t("totp_hint")),
    problems,
    el("div", { class: "form-actions" }, el("button", { class: "primary", type: "submit" }, t("signin"))));
  form.addEventListener("submit", async (e) => {
    e.preventDefault();
    const button = form.querySelector("button");
    button.disabled = true;
    showProblem(problems, null);
    const code = form.totp.value.trim();
    try {
      const answer = await api("POST", "/auth/login", { body: {
        username: form.username.value.trim(), password: form.password.value, ...(code ? { totp_code: code } : {}) } });
      if (answer.kind === "totp_enrolment_required") { await renderEnrolment(answer.enrolment_token); return; }
      await store(answer);
      go(location.hash && location.hash !== "#/" ? location.hash : "#/queue");
    } catch (err) {
      showProblem(problems, err);
      form.totp.value = "";
      form.totp.focus();
    } finally {
      button.disabled = false;
    }
  });
  clear(view, heading("signin_title"), form);
  form.username.focus();
}

async function renderEnrolment(enrolmentToken) {
  const problems = el("div");
  let enrolment;
  try {
    enrolment = await api("POST", "/auth/totp/enrol", { token: enrolmentToken });
  } catch (err) {
    showProblem(problems, err);
    clear(view, heading("enrol_title"), problems);
    return;
  }
  // the SVG is drawn by our API; shown as an image so nothing in it can run. It is made for inline use, and a
  // standalone SVG image needs its namespace.
  const svg = /<svg[^>]*xmlns=/.test(enrolment.qr_svg) ? enrolment.qr_svg
    : enrolment.qr_svg.replace("<svg", '<svg xmlns="http://www.w3.org/2000/svg"');
  const qr = URL.createObjectURL(new Blob([svg], { type: "image/svg+xml" }));
  const secret = new URL(enrolment.provisioning_uri).searchParams.get("secret") || "";
  const form = el("form", { class: "card" },
    el("p", {}, t("enrol_help")),
    el("div", { class: "enrol-qr" }, el("img", { src: qr, alt: t("enrol_qr") })),
    el("p", {}, t("enrol_uri"), ": ", el("code", {}, secret)),
    ...field("enrol-code", "enrol_code", { inputmode: "numeric", autocomplete: "one-time-code", required: true,
      pattern: "[0-9]{6}", maxlength: "6" }),
    problems,
    el("div", { class: "form-actions" }, el("button", { class: "primary", type: "submit" }, t("enrol_confirm"))));
  form.addEventListener("submit", async (e) => {
    e.preventDefault();
    showProblem(problems, null);
    try {
      const confirmed = await api("POST", "/auth/totp/confirm", { token: enrolmentToken,
        body: { code: form["enrol-code"].value.trim() } });
      URL.revokeObjectURL(qr);
      if (confirmed.session) await store(confirmed.session);
      renderRecoveryCodes(confirmed.recovery_codes);
    } catch (err) {
      showProblem(problems, err);
    }
  });
  clear(view, heading("enrol_title"), form);
  form["enrol-code"].focus();
}

function renderRecoveryCodes(codes) {
  const next = el("button", { class: "primary", type: "button",
    onclick: () => go("#/queue") }, t("continue"));
  clear(view, heading("recovery_title"),
    el("section", { class: "card" }, el("p", {}, t("recovery_help")),
      el("ul", { class: "recovery" }, codes.map((c) => el("li", {}, c))), next));
  next.focus();
}

// ------------------------------------------------------------------------------------------------ queue

function minutesSince(iso) { return Math.max(0, Math.floor((Date.now() - Date.parse(iso)) / 60000)); }

function statusCell(entry) {
  const badge = el("span", { class: `badge status-${entry.status}` }, t(`status_${entry.status}`));
  let detail = null;
  if (entry.status === "waiting" && entry.waiting_since) {
    detail = t("waiting_since", { time: formatTime(entry.waiting_since), minutes: minutesSince(entry.waiting_since) });
  } else if (entry.status === "in_call" && entry.call_started_at) {
    detail = t("in_call_since", { time: formatTime(entry.call_started_at) });
  }
  return el("td", {}, badge, detail ? el("div", { class: "muted" }, detail) : null);
}

function queueActions(entry, onNoShow) {
  const id = entry.consultation_id;
  const callable = ["booked", "waiting", "in_call"].includes(entry.status);
  const noShowAllowed = entry.status === "booked" && Date.now() >= Date.parse(entry.starts_at);
  return el("td", {}, el("div", { class: "actions" },
    callable ? el("a", { class: "button", href: `/console/doctor/call.html?consultation=${id}`,
      dataset: { key: `call-${id}` } }, t(entry.status === "in_call" ? "join_call" : "start_call")) : null,
    el("a", { href: `#/consultations/${id}`, dataset: { key: `notes-${id}` } }, t("open_notes")),
    noShowAllowed ? el("button", { type: "button", dataset: { key: `noshow-${id}` },
      onclick: () => onNoShow(entry) }, t("mark_no_show")) : null));
}

function renderQueue() {
  view.className = "";
  const problems = el("div");
  const updated = el("p", { class: "muted" });
  const body = el("tbody");
  const table = el("table", {},
    el("caption", { class: "visually-hidden" }, t("queue_title")),
    el("thead", {}, el("tr", {}, ["col_time", "col_patient", "col_reason", "col_status", "col_actions"]
      .map((k) => el("th", { scope: "col" }, t(k))))), body);
  const empty = el("p", { class: "muted", hidden: true }, t("queue_empty"));
  clear(view, heading("queue_title"), problems, el("section", { class: "card" }, table, empty), updated);
  let shown = "";
  let before = null; // the entries last drawn, to announce newly arrived patients
  let stopped = false;

  async function markNoShow(entry) {
    if (!confirm(t("confirm_no_show", { name: entry.patient_name }))) return;
    try {
      await call("POST", `/consultations/${entry.consultation_id}/no-show`);
      announce(t("status_no_show"));
      await load();
    } catch (err) { showProblem(problems, err); }
  }

  async function load() {
    try {
      const entries = await call("GET", "/doctors/me/queue");
      if (stopped) return;
      showProblem(problems, null);
      updated.textContent = t("queue_updated", { time: formatTime(new Date().toISOString()) });
      // re-draw only when something a person would see changed, so keyboard focus is not lost every 5 s
      const signature = JSON.stringify(entries) + Math.floor(Date.now() / 60000);
      if (signature === shown) return;
      shown = signature;
      const focusedKey = document.activeElement?.dataset?.key;
      clear(body, entries.map((entry) => el("tr", { dataset: { consultation: entry.consultation_id } },
        el("td", {}, `${formatTime(entry.starts_at)}–${formatTime(entry.ends_at)}`),
        el("td", {}, el("strong", {}, entry.patient_name),
          entry.patient_date_of_birth ? el("div", { class: "muted" },
            t("born", { date: formatDate(entry.patient_date_of_birth) })) : null),
        el("td", {}, entry.reason), statusCell(entry), queueActions(entry, markNoShow))));
      table.hidden = entries.length === 0;
      empty.hidden = entries.length > 0;
      if (focusedKey) body.querySelector(`[data-key="${focusedKey}"]`)?.focus();
      const arrived = before && entries.filter((e) => e.status === "waiting" &&
        !before.some((b) => b.consultation_id === e.consultation_id && b.status === "waiting"));
      if (arrived?.length) announce(arrived.map((e) => `${e.patient_name}: ${t("status_waiting")}`).join(". "));
      before = entries;
    } catch (err) {
      if (!stopped) showProblem(problems, err);
    }
  }

  load();
  const timer = setInterval(load, QUEUE_REFRESH_MS);
  const onFocus = () => { if (document.visibilityState === "visible") load(); };
  window.addEventListener("focus", onFocus);
  document.addEventListener("visibilitychange", onFocus);
  return () => {
    stopped = true;
    clearInterval(timer);
    window.removeEventListener("focus", onFocus);
    document.removeEventListener("visibilitychange", onFocus);
  };
}

// ------------------------------------------------------------------------------------------------ schedule

let ruleRow = 0;
const ALWAYS = "2000-01-01"; // the API's valid_from of a rule without a start date

function ruleEditor(rule) {
  const n = ++ruleRow;
  const cell = (key, input) => el("td", {}, el("label", { class: "visually-hidden", for: input.id }, t(key)), input);
  const weekday = el("select", { id: `rule-${n}-weekday`, name: "weekday" },
    [1, 2, 3, 4, 5, 6, 7].map((d) => new Option(t(`wd_${d}`), String(d), false, d === rule.weekday)));
  const row = el("tr", {},
    cell("weekday", weekday),
    cell("start_time", el("input", { id: `rule-${n}-start`, name: "start_time", type: "time", required: true,
      value: rule.start_time.slice(0, 5) })),
    cell("end_time", el("input", { id: `rule-${n}-end`, name: "end_time", type: "time", required: true,
      value: rule.end_time.slice(0, 5) })),
    cell("valid_from", el("input", { id: `rule-${n}-from`, name: "valid_from", type: "date",
      value: rule.valid_from === ALWAYS ? "" : rule.valid_from || "" })),
    cell("valid_until", el("input", { id: `rule-${n}-until`, name: "valid_until", type: "date",
      value: rule.valid_until || "" })),
    el("td", {}, el("button", { type: "button", onclick: () => row.remove() }, t("remove"))));
  return row;
}

function readRules(body) {
  return [...body.querySelectorAll("tr")].map((row) => {
    const value = (name) => row.querySelector(`[name="${name}"]`).value;
    const time = (v) => (v.length === 5 ? `${v}:00` : v);
    return { weekday: Number(value("weekday")), start_time: time(value("start_time")),
      end_time: time(value("end_time")), valid_from: value("valid_from") || null,
      valid_until: value("valid_until") || null };
  });
}

async function renderSchedule() {
  view.className = "";
  const problems = el("div");
  clear(view, heading("schedule_title"), problems, el("p", { class: "muted" }, t("loading")));
  let current;
  try {
    current = await call("GET", "/doctors/me/schedule");
  } catch (err) { showProblem(problems, err); return; }

  const weeklyProblems = el("div");
  const rulesBody = el("tbody", {}, current.rules.map(ruleEditor));
  const weekly = el("form", { class: "card", "aria-labelledby": "weekly-title" },
    el("h2", { id: "weekly-title" }, t("weekly_title")),
    el("table", {}, el("thead", {}, el("tr", {}, ["weekday", "start_time", "end_time", "valid_from", "valid_until"]
      .map((k) => el("th", { scope: "col" }, t(k))), el("th", {}, el("span", { class: "visually-hidden" },
      t("remove"))))), rulesBody),
    weeklyProblems,
    el("div", { class: "form-actions" },
      el("button", { type: "button", onclick: () => {
        const row = ruleEditor({ weekday: 1, start_time: "08:00", end_time: "12:00" });
        rulesBody.append(row);
        row.querySelector("select").focus();
      } }, t("add_rule")),
      el("button", { type: "submit", class: "primary" }, t("save_weekly"))));
  weekly.addEventListener("submit", async (e) => {
    e.preventDefault();
    showProblem(weeklyProblems, null);
    try {
      await call("PUT", "/doctors/me/schedule/weekly", { body: { rules: readRules(rulesBody) } });
      announce(t("saved"));
      weeklyProblems.append(el("p", { class: "alert ok" }, t("saved")));
    } catch (err) { showProblem(weeklyProblems, err); }
  });

  const exceptionsProblems = el("div");
  const exceptionsBody = el("tbody");
  const exceptionsTable = el("table", {},
    el("thead", {}, el("tr", {}, ["kind", "from", "until", "reason"].map((k) => el("th", { scope: "col" }, t(k))),
      el("th", {}, el("span", { class: "visually-hidden" }, t("remove"))))), exceptionsBody);
  const noExceptions = el("p", { class: "muted" }, t("no_exceptions"));

  function showExceptions(list) {
    clear(exceptionsBody, list.map((x) => el("tr", {},
      el("td", {}, t(`kind_${x.kind}`)), el("td", {}, formatDateTime(x.starts_at)),
      el("td", {}, formatDateTime(x.ends_at)), el("td", {}, x.reason),
      el("td", {}, el("button", { type: "button", onclick: async () => {
        try {
          await call("DELETE", `/doctors/me/schedule/exceptions/${x.id}`);
          current.exceptions = current.exceptions.filter((y) => y.id !== x.id);
          showExceptions(current.exceptions);
          announce(t("removed"));
          addForm.kind.focus();
        } catch (err) { showProblem(exceptionsProblems, err); }
      } }, t("remove"))))));
    exceptionsTable.hidden = list.length === 0;
    noExceptions.hidden = list.length > 0;
  }

  const addForm = el("form", { class: "row", "aria-label": t("add_exception") },
    el("div", {}, el("label", { for: "x-kind" }, t("kind")), el("select", { id: "x-kind", name: "kind" },
      new Option(t("kind_leave"), "leave"), new Option(t("kind_extra"), "extra"))),
    el("div", {}, el("label", { for: "x-start-date" }, t("start_date")),
      el("input", { id: "x-start-date", name: "start_date", type: "date", required: true })),
    el("div", {}, el("label", { for: "x-start-time" }, t("start_time")),
      el("input", { id: "x-start-time", name: "start_time", type: "time", value: "00:00", required: true })),
    el("div", {}, el("label", { for: "x-end-date" }, t("end_date")),
      el("input", { id: "x-end-date", name: "end_date", type: "date" })),
    el("div", {}, el("label", { for: "x-end-time" }, t("end_time")),
      el("input", { id: "x-end-time", name: "end_time", type: "time", value: "23:59", required: true })),
    el("div", {}, el("label", { for: "x-reason" }, t("reason")),
      el("input", { id: "x-reason", name: "reason", maxlength: "300" })),
    el("div", {}, el("button", { type: "submit", class: "primary" }, t("add_exception"))));
  addForm.addEventListener("submit", async (e) => {
    e.preventDefault();
    showProblem(exceptionsProblems, null);
    const f = addForm;
    const startDate = f.start_date.value;
    try {
      const added = await call("POST", "/doctors/me/schedule/exceptions", { body: {
        kind: f.kind.value, reason: f.reason.value.trim(),
        starts_at: startDate ? vnDateTime(startDate, f.start_time.value) : "",
        ends_at: vnDateTime(f.end_date.value || startDate, f.end_time.value) } });
      current.exceptions.push(added);
      current.exceptions.sort((a, b) => Date.parse(a.starts_at) - Date.parse(b.starts_at));
      showExceptions(current.exceptions);
      announce(t("saved"));
      f.reason.value = "";
    } catch (err) { showProblem(exceptionsProblems, err); }
  });
  showExceptions(current.exceptions);

  clear(view, heading("schedule_title"), problems, weekly,
    el("section", { class: "card", "aria-labelledby": "exceptions-title" },
      el("h2", { id: "exceptions-title" }, t("exceptions_title")), exceptionsTable, noExceptions, addForm,
      exceptionsProblems));
}
