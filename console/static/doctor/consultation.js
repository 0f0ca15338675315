// One consultation as its doctor works on it: who the patient is and what they had before, the SOAP notes with
// ICD-10 diagnoses, completing the visit, and (prescribing.js) the prescription.

import { clear, el, formatDate, formatDateTime } from "/console/common/ui.js";
import { announce, showProblem, t } from "/console/doctor/common.js";
import { renderPrescribing } from "/console/doctor/prescribing.js";
import { call } from "/console/doctor/session.js";
import { typeahead } from "/console/doctor/typeahead.js";

const PRESCRIBABLE = ["in_call", "completed"];

export function renderConsultation(view, id) {
  view.className = "";
  let stopPrescribing = () => {};
  let stopped = false;
  const problems = el("div");
  clear(view, el("p", {}, el("a", { href: "#/queue" }, t("back_to_queue"))), problems,
    el("p", { class: "muted" }, t("loading")));

  (async () => {
    let consultation;
    let record;
    let history;
    try {
      // one round trip each, side by side: the visit, its notes, and the patient's history
      [consultation, record, history] = await Promise.all([
        call("GET", `/consultations/${id}`), call("GET", `/consultations/${id}/record`),
        call("GET", `/consultations/${id}/patient-history`)]);
    } catch (err) {
      if (!stopped) clear(view, el("p", {}, el("a", { href: "#/queue" }, t("back_to_queue"))), problems);
      showProblem(problems, err);
      return;
    }
    if (stopped) return;
    const header = el("div");
    const notes = notesCard(id, record);
    const rx = el("section", { class: "card", "aria-labelledby": "rx-title" });
    const title = el("h1", { tabindex: "-1" }, t("consultation_title", { name: consultation.patient_name }));
    clear(view, el("p", {}, el("a", { href: "#/queue" }, t("back_to_queue"))), title, header, problems,
      el("div", { class: "consultation" }, el("div", {}, notes.card, rx), historyCard(history)));

    let prescribing = null;

    function showHeader(c) {
      const callable = ["booked", "waiting", "in_call"].includes(c.status);
      clear(header, el("p", {}, t("booked_for", { time: formatDateTime(c.starts_at) }), " · ",
        el("span", { class: `badge status-${c.status}`, "aria-live": "polite" }, t(`status_${c.status}`)),
        c.reason ? ` · ${c.reason}` : ""),
      el("div", { class: "actions" },
        callable ? el("a", { class: "button", href: `/console/doctor/call.html?consultation=${c.id}` },
          t(c.status === "in_call" ? "join_call" : "start_call")) : null,
        c.status === "in_call" ? el("button", { type: "button", class: "primary", onclick: complete },
          t("complete")) : null));
      const open = PRESCRIBABLE.includes(c.status);
      if (open === prescribing) return; // in call → completed keeps the prescription being written
      prescribing = open;
      stopPrescribing();
      if (open) {
        stopPrescribing = renderPrescribing(rx, { consultationId: c.id, diagnoses: notes.diagnoses,
          advice: notes.advice, onNotesChange: notes.onChange });
      } else {
        clear(rx, el("h2", { id: "rx-title" }, t("rx_title")), el("p", { class: "muted" }, t("prescribing_closed")));
      }
    }

    async function complete() {
      showProblem(problems, null);
      try {
        consultation = await call("POST", `/consultations/${id}/complete`);
        showHeader(consultation);
        announce(t("completed_msg"));
        title.focus();
      } catch (err) { showProblem(problems, err); }
    }

    showHeader(consultation);
    title.focus();
  })();

  return () => { stopped = true; stopPrescribing(); };
}

function historyCard(history) {
  const p = history.patient;
  const facts = [p.date_of_birth ? t("born", { date: formatDate(p.date_of_birth) }) : null,
    p.weight_kg ? t("weight", { kg: p.weight_kg }) : null].filter(Boolean).join(" · ");
  return el("aside", { class: "card history", "aria-labelledby": "history-title" },
    el("h2", { id: "history-title" }, t("history_title")),
    el("p", {}, el("strong", {}, p.full_name), facts ? el("div", { class: "muted" }, facts) : null),
    el("h3", {}, t("allergies")),
    p.allergies.length ? el("ul", { class: "allergies" }, p.allergies.map((a) => el("li", { class: "allergy" },
      a.substance, a.severity ? ` (${t(`severity_${a.severity}`)})` : "", a.reaction ? `: ${a.reaction}` : "")))
      : el("p", { class: "muted" }, t("no_allergies")),
    el("h3", {}, t("past_consultations")),
    history.consultations.length ? el("ul", {}, history.consultations.map((c) => el("li", {},
      el("strong", {}, formatDate(c.starts_at)), ` · ${t("by_doctor", { name: c.doctor_name })}`,
      c.diagnoses.length ? el("div", {}, c.diagnoses.map((d) => `${d.code} ${d.name}`).join("; ")) : null,
      c.advice ? el("div", { class: "muted" }, c.advice) : null)))
      : el("p", { class: "muted" }, t("no_past_consultations")),
    el("h3", {}, t("past_prescriptions")),
    history.prescriptions.length ? el("ul", {}, history.prescriptions.map((rx) => el("li", {},
      el("strong", {}, rx.issued_at ? formatDate(rx.issued_at) : ""), ` · ${rx.code || ""} · `,
      t(`rx_status_${rx.status}`), ` · ${t("by_doctor", { name: rx.doctor_name })}`,
      el("div", {}, rx.lines.map((l) => `${l.drug_name} ${l.strength} × ${l.quantity} ${l.quantity_unit}`)
        .join("; ")))))
      : el("p", { class: "muted" }, t("no_past_prescriptions")));
}

function notesCard(id, record) {
  let chosen = record.diagnoses.map((d) => ({ code: d.code, name: d.name, is_principal: d.is_principal }));
  const listeners = new Set();
  const problems = el("div");
  const chips = el("ul", { class: "chips", "aria-live": "polite" });
  const none = el("p", { class: "muted" }, t("no_diagnoses"));

  function changed() { for (const listener of listeners) listener(); }

  function showChosen() {
    clear(chips, chosen.map((d, i) => el("li", {},
      el("input", { type: "radio", name: "principal", id: `principal-${i}`, checked: d.is_principal,
        onchange: () => { chosen.forEach((x, j) => { x.is_principal = j === i; }); } }),
      el("label", { for: `principal-${i}` }, el("strong", {}, d.code), ` ${d.name}`,
        el("span", { class: "visually-hidden" }, ` (${t("principal")})`)),
      el("button", { type: "button", "aria-label": `${t("remove")} ${d.code}`, onclick: () => {
        chosen = chosen.filter((x) => x.code !== d.code);
        if (chosen.length && !chosen.some((x) => x.is_principal)) chosen[0].is_principal = true;
        showChosen();
        changed();
        icd.input.focus();
      } }, t("remove")))));
    none.hidden = chosen.length > 0;
  }

  const icd = typeahead({
    id: "icd-search", label: t("icd_search"), t,
    search: (q, signal) => call("GET", "/icd10", { query: { q, limit: 10 }, signal }),
    describe: (item) => [`${item.code} ${item.title_vi}`, item.title_en],
    onPick: (item) => {
      if (!chosen.some((d) => d.code === item.code)) {
        chosen.push({ code: item.code, name: item.title_vi, is_principal: chosen.length === 0 });
        showChosen();
        changed();
        announce(`${item.code} ${item.title_vi}`);
      }
    },
  });

  const area = (name, rows = 3) => [el("label", { for: `note-${name}` }, t(name)),
    el("textarea", { id: `note-${name}`, name, rows: String(rows), maxlength: name === "advice" ? "4000" : "10000" },
      record[name] || "")];
  const form = el("form", { "aria-labelledby": "notes-title" },
    ...area("subjective"), ...area("objective"), ...area("assessment", 2), ...area("plan", 2),
    el("fieldset", {}, el("legend", {}, t("diagnoses")), icd.wrapper, chips, none),
    ...area("advice", 2),
    el("label", { for: "note-follow_up_days" }, t("follow_up_days")),
    el("input", { id: "note-follow_up_days", name: "follow_up_days", type: "number", min: "1", max: "365",
      value: record.follow_up_days ?? "" }),
    problems,
    el("div", { class: "form-actions" }, el("button", { type: "submit", class: "primary" }, t("save_notes"))));
  form.addEventListener("submit", async (e) => {
    e.preventDefault();
    showProblem(problems, null);
    const value = (name) => form.elements[name].value.trim();
    try {
      const saved = await call("PUT", `/consultations/${id}/record`, { body: {
        subjective: value("subjective"), objective: value("objective"), assessment: value("assessment"),
        plan: value("plan"), advice: value("advice"),
        follow_up_days: value("follow_up_days") ? Number(value("follow_up_days")) : null,
        diagnoses: chosen.map((d) => ({ code: d.code, is_principal: d.is_principal })) } });
      chosen = saved.diagnoses.map((d) => ({ code: d.code, name: d.name, is_principal: d.is_principal }));
      showChosen();
      problems.append(el("p", { class: "alert ok", role: "status" }, t("saved")));
      announce(t("saved"));
    } catch (err) { showProblem(problems, err); }
  });
  form.elements.advice.addEventListener("change", changed);
  showChosen();

  return {
    card: el("section", { class: "card" }, el("h2", { id: "notes-title" }, t("notes_title")), form),
    // the prescription takes its diagnoses and advice from the notes, and re-checks when they change
    diagnoses: () => [...chosen].sort((a, b) => b.is_principal - a.is_principal).map((d) => ({ code: d.code })),
    advice: () => form.elements.advice.value.trim(),
    onChange: (listener) => listeners.add(listener),
  };
}
