// Writing and signing a prescription for one consultation. The clinical checks run on the server as the doctor
// types (a dry run that stores nothing); a finding that blocks signing needs the doctor's reason, sent with the
// signing ceremony (authenticator code), after which the prescription's code and QR are shown.

import { clear, el, formatDateTime } from "/console/common/ui.js";
import { announce, showProblem, t, UNITS, unitFor } from "/console/doctor/common.js";
import { call } from "/console/doctor/session.js";
import { typeahead } from "/console/doctor/typeahead.js";

const CHECK_DEBOUNCE_MS = 400;
const MIN_REASON = 10; // the API's shortest override reason

// VN-1.8: whole units for the course, rounded to 3 decimals first as the server does (0.1 × 3 × 10 is 3)
export function requiredQuantity(dose, times, days) {
  return Math.ceil(Math.round(dose * times * days * 1000) / 1000);
}

function number(value) { return String(value).replace(".", ","); }

export function renderPrescribing(container, { consultationId, diagnoses, advice, onNotesChange }) {
  let stopped = false;
  let draftId = null;
  let lines = []; // {drug: {id, label, dosage_form}, dose_per_time, dose_unit, times_per_day, days, quantity, ...}
  let pending = null; // the drug chosen in the line form, not yet added
  let report = null;
  const reasons = new Map(); // finding key → the doctor's override reason, kept across re-checks
  const reasonInputs = new Map();
  let checkTimer = null;
  let checking = null;
  let quantityEdited = false;

  const problems = el("div");
  const issuedList = el("ul");
  const issuedSection = el("section", { hidden: true }, el("h3", {}, t("issued_prescriptions")), issuedList);
  const signedPanel = el("div", { "aria-live": "polite" });

  // ---------------------------------------------------------------- the line being written
  const chosenDrug = el("p", { id: "rx-drug-chosen", class: "muted", "aria-live": "polite" });
  const drug = typeahead({
    id: "rx-drug", label: t("drug_search"), t,
    search: async (q, signal) => (await call("GET", "/drugs", { query: { q, limit: 10 }, signal })).items,
    describe: (d) => [`${d.inn} ${d.strength}`,
      [d.dosage_form, d.trade_names.join(", "), d.atc_code].filter(Boolean).join(" · ")],
    onPick: (d) => {
      pending = { id: d.id, label: `${d.inn} ${d.strength}`, dosage_form: d.dosage_form };
      chosenDrug.textContent = `${pending.label} (${d.dosage_form})`;
      const unit = unitFor(d.dosage_form);
      form.dose_unit.value = unit;
      form.quantity_unit.value = unit;
      recompute();
      form.dose_per_time.focus();
      form.dose_per_time.select();
      scheduleCheck();
    },
  });
  const numberField = (name, attrs) => el("div", {}, el("label", { for: `rx-${name}` }, t(name)),
    el("input", { id: `rx-${name}`, name, type: "number", required: true, ...attrs }));
  const unitField = (name) => el("div", {}, el("label", { for: `rx-${name}` }, t(name)),
    el("select", { id: `rx-${name}`, name }, UNITS.map((u) => new Option(u, u))));
  const lineProblems = el("div");
  const form = el("form", { class: "line-form", "aria-label": t("add_line"), novalidate: true },
    drug.wrapper, chosenDrug,
    el("div", { class: "row" },
      numberField("dose_per_time", { min: "0.001", step: "any", value: "1", inputmode: "decimal" }),
      unitField("dose_unit"),
      numberField("times_per_day", { min: "1", max: "24", step: "1", value: "2" }),
      numberField("days", { min: "1", max: "90", step: "1", value: "5" }),
      numberField("quantity", { min: "1", step: "1", value: "10" }),
      unitField("quantity_unit")),
    el("label", { for: "rx-usage" }, t("usage")),
    el("input", { id: "rx-usage", name: "usage", maxlength: "500", placeholder: t("usage_placeholder") }),
    lineProblems,
    el("div", { class: "form-actions" }, el("button", { type: "submit" }, t("add_line"))));

  function formLine() {
    return { drug: pending, dose_per_time: Number(form.dose_per_time.value),
      dose_unit: form.dose_unit.value, times_per_day: Number(form.times_per_day.value),
      days: Number(form.days.value), quantity: Number(form.quantity.value),
      quantity_unit: form.quantity_unit.value, usage: form.usage.value.trim() };
  }

  function recompute() {
    if (quantityEdited || form.dose_unit.value !== form.quantity_unit.value) return;
    const l = formLine();
    if (l.dose_per_time > 0 && l.times_per_day > 0 && l.days > 0) {
      form.quantity.value = requiredQuantity(l.dose_per_time, l.times_per_day, l.days);
    }
  }

  form.addEventListener("input", (e) => {
    if (e.target.name === "quantity") quantityEdited = true;
    else if (["dose_per_time", "times_per_day", "days", "dose_unit"].includes(e.target.name)) recompute();
    if (e.target !== drug.input) scheduleCheck();
  });
  form.addEventListener("change", (e) => { if (e.target.tagName === "SELECT") { recompute(); scheduleCheck(); } });
  form.addEventListener("submit", (e) => {
    e.preventDefault();
    showProblem(lineProblems, null);
    if (!pending) {
      lineProblems.append(el("p", { class: "alert error", role: "alert" }, t("choose_drug")));
      drug.input.focus();
      return;
    }
    const line = formLine();
    lines.push(line);
    pending = null;
    quantityEdited = false;
    chosenDrug.textContent = "";
    form.usage.value = "";
    showLines();
    announce(t("line_added", { drug: line.drug.label }));
    drug.input.focus();
    scheduleCheck();
  });

  // ---------------------------------------------------------------- lines, findings, signing
  const linesBody = el("tbody");
  const linesTable = el("table", {}, el("caption", { class: "visually-hidden" }, t("rx_lines")),
    el("thead", {}, el("tr", {}, ["col_drug", "col_dose", "col_quantity", "usage"].map((k) =>
      el("th", { scope: "col" }, t(k))), el("th", {}, el("span", { class: "visually-hidden" }, t("remove"))))),
    linesBody);
  const noLines = el("p", { class: "muted" }, t("no_lines"));

  function showLines() {
    clear(linesBody, lines.map((l, i) => el("tr", {},
      el("td", {}, `${i + 1}. `, el("strong", {}, l.drug.label)),
      el("td", {}, t("dose_text", { dose: number(l.dose_per_time), unit: l.dose_unit, times: l.times_per_day,
        days: l.days })),
      el("td", {}, `${l.quantity} ${l.quantity_unit}`), el("td", {}, l.usage),
      el("td", {}, el("button", { type: "button", "aria-label": `${t("remove")} ${l.drug.label}`, onclick: () => {
        lines.splice(i, 1);
        showLines();
        announce(t("line_removed", { drug: l.drug.label }));
        drug.input.focus();
        scheduleCheck();
      } }, t("remove"))))));
    linesTable.hidden = lines.length === 0;
    noLines.hidden = lines.length > 0;
  }

  const findingsBox = el("div", { "aria-live": "polite" });
  const findingsSection = el("section", { "aria-labelledby": "findings-title" },
    el("h3", { id: "findings-title" }, t("findings_title")), findingsBox);

  function wire(l) {
    return { drug_id: l.drug.id, dose_per_time: l.dose_per_time, dose_unit: l.dose_unit,
      times_per_day: l.times_per_day, days: l.days, quantity: l.quantity, quantity_unit: l.quantity_unit,
      usage: l.usage };
  }

  function body(withPending) {
    const all = withPending && pending ? [...lines, formLine()] : lines;
    const chosen = diagnoses();
    return { lines: all.map(wire), advice: advice(), ...(chosen.length ? { diagnoses: chosen } : {}) };
  }

  function scheduleCheck() {
    clearTimeout(checkTimer);
    checkTimer = setTimeout(check, CHECK_DEBOUNCE_MS);
  }

  async function check() {
    const draft = body(true);
    if (!draft.lines.length || draft.lines.some((l) => !(l.dose_per_time > 0 && l.times_per_day >= 1 &&
        l.days >= 1 && l.quantity >= 1))) {
      if (!draft.lines.length) { report = null; showFindings(); }
      return;
    }
    checking?.abort();
    checking = new AbortController();
    findingsBox.setAttribute("aria-busy", "true");
    try {
      report = await call("POST", "/prescriptions/dry-run", { body: { consultation_id: consultationId, ...draft },
        signal: checking.signal });
      if (!stopped) showFindings();
    } catch (err) {
      if (err.name !== "AbortError" && !stopped) showProblem(findingsBox, err);
    } finally {
      findingsBox.removeAttribute("aria-busy");
    }
  }

  function reasonInput(key) {
    if (!reasonInputs.has(key)) {
      const id = `override-${reasonInputs.size + 1}`;
      const input = el("textarea", { id, rows: "2", minlength: String(MIN_REASON), maxlength: "1000",
        "aria-required": "true" }, reasons.get(key) || "");
      input.addEventListener("input", () => reasons.set(key, input.value.trim()));
      reasonInputs.set(key, [el("label", { for: id }, t("override_reason")), input]);
    }
    return reasonInputs.get(key);
  }

  function showFindings() {
    if (!report) { clear(findingsBox); return; }
    const items = report.findings.map((f) => el("div", { class: `finding sev-${f.severity}`,
      dataset: { key: f.key, blocking: String(f.blocks_signing) } },
      el("p", {}, el("span", { class: "badge" }, t(`severity_${f.severity}`)), " ", el("strong", {}, f.title),
        f.blocks_signing ? el("span", { class: "badge status-no_show" }, ` ${t("blocking")}`) : null),
      el("p", {}, f.detail), f.advice ? el("p", { class: "muted" }, f.advice) : null,
      f.blocks_signing ? reasonInput(f.key) : null));
    const ruleProblems = report.problems.length ? el("div", { class: "alert warning" },
      el("strong", {}, t("rule_problems")), el("ul", {}, report.problems.map((p) => el("li", {}, p.message)))) : null;
    clear(findingsBox, items.length ? items : el("p", { class: "muted" }, t("no_findings")), ruleProblems);
  }

  async function saveDraft() {
    const draft = body(false);
    const saved = draftId
      ? await call("PATCH", `/prescriptions/${draftId}`, { body: draft })
      : await call("POST", "/prescriptions", { body: { consultation_id: consultationId, ...draft } });
    draftId = saved.id;
    return saved;
  }

  const saveButton = el("button", { type: "button", onclick: async () => {
    showProblem(problems, null);
    try {
      await saveDraft();
      announce(t("draft_saved"));
      problems.append(el("p", { class: "alert ok", role: "status" }, t("draft_saved")));
    } catch (err) { showProblem(problems, err); }
  } }, t("save_draft"));

  const signForm = el("form", { class: "sign-form", "aria-labelledby": "sign-title" },
    el("h3", { id: "sign-title" }, t("sign_title")),
    el("p", {}, t("sign_statement")),
    el("label", { for: "rx-sign-code" }, t("sign_code")),
    el("input", { id: "rx-sign-code", name: "code", inputmode: "numeric", autocomplete: "one-time-code",
      pattern: "[0-9]{6}", maxlength: "6", required: true }),
    problems,
    el("div", { class: "form-actions" }, saveButton, el("button", { type: "submit", class: "primary" }, t("sign"))));
  signForm.addEventListener("submit", async (e) => {
    e.preventDefault();
    showProblem(problems, null);
    const missing = (report?.findings || []).filter((f) => f.blocks_signing &&
      (reasons.get(f.key) || "").length < MIN_REASON);
    if (missing.length) {
      problems.append(el("p", { class: "alert error", role: "alert" }, t("need_reasons")));
      reasonInput(missing[0].key)[1].focus();
      return;
    }
    const button = signForm.querySelector("button[type=submit]");
    button.disabled = true;
    button.textContent = t("signing");
    try {
      const keys = new Set((report?.findings || []).map((f) => f.key));
      const overrides = [...reasons].filter(([key, reason]) => keys.has(key) && reason.length >= MIN_REASON)
        .map(([key, reason]) => ({ key, reason }));
      const ceremony = { totp_code: signForm.code.value.trim(), overrides };
      let signed;
      if (draftId) {  // a saved draft: save what changed since, then sign it
        await saveDraft();
        signed = await call("POST", `/prescriptions/${draftId}/sign`, { body: ceremony });
      } else {  // never saved: written and signed in one request, nothing kept if the code is refused
        signed = await call("POST", "/prescriptions/signed", {
          body: { consultation_id: consultationId, ...body(false), ...ceremony } });
      }
      signForm.code.value = "";
      await showSigned(signed);
      addIssued(signed);
      reset();
    } catch (err) {
      showProblem(problems, err);
      signForm.code.select();
    } finally {
      button.disabled = false;
      button.textContent = t("sign");
    }
  });

  async function qrImage(rx) {
    // the QR endpoint needs the bearer token, so it is fetched and shown from a blob: URL
    const response = await call("GET", `/prescriptions/${rx.id}/qr.svg`, { raw: true });
    const url = URL.createObjectURL(await response.blob());
    return el("img", { src: url, alt: t("rx_qr", { code: rx.code }), onload: () => URL.revokeObjectURL(url) });
  }

  async function showSigned(rx) {
    const heading = el("h3", { tabindex: "-1" }, t("signed_title"));
    clear(signedPanel, el("div", { class: "alert ok signed", role: "status" }, heading,
      el("p", {}, t("rx_code"), ": ", el("span", { class: "code", id: "rx-code" }, rx.code)),
      rx.valid_until ? el("p", {}, t("valid_until_at", { time: formatDateTime(rx.valid_until) })) : null,
      await qrImage(rx)));
    announce(`${t("signed_title")}: ${rx.code}`);
    heading.focus();
  }

  function addIssued(rx) {
    issuedSection.hidden = false;
    issuedList.append(el("li", {}, el("strong", {}, rx.code), ` · ${t(`rx_status_${rx.status}`)} · `,
      rx.issued_at ? formatDateTime(rx.issued_at) : "", " ",
      el("button", { type: "button", onclick: async () => {
        try { await showSigned(rx); } catch (err) { showProblem(problems, err); }
      } }, t("show_qr"))));
  }

  function reset() {
    draftId = null;
    lines = [];
    report = null;
    reasons.clear();
    reasonInputs.clear();
    showLines();
    showFindings();
  }

  // ---------------------------------------------------------------- layout and what is already there
  clear(container, el("h2", { id: "rx-title" }, t("rx_title")), signedPanel, issuedSection, form,
    el("h3", {}, t("rx_lines")), linesTable, noLines, findingsSection, signForm);
  showLines();
  onNotesChange?.(() => { if (!stopped) scheduleCheck(); });

  (async () => {
    try {
      const mine = await call("GET", "/prescriptions", { query: { consultation_id: consultationId } });
      if (stopped) return;
      for (const rx of mine.filter((p) => p.status !== "draft").reverse()) addIssued(rx);
      const draft = mine.find((p) => p.status === "draft");
      if (draft) {
        const full = await call("GET", `/prescriptions/${draft.id}`);
        if (stopped) return;
        draftId = full.id;
        lines = full.lines.map((l) => ({ drug: { id: l.drug_id, label: `${l.drug_name} ${l.strength}`,
          dosage_form: l.dosage_form }, dose_per_time: l.dose_per_time, dose_unit: l.dose_unit,
          times_per_day: l.times_per_day, days: l.days, quantity: l.quantity, quantity_unit: l.quantity_unit,
          usage: l.usage }));
        showLines();
        scheduleCheck();
      }
    } catch (err) { if (!stopped) showProblem(problems, err); }
  })();

  return () => { stopped = true; clearTimeout(checkTimer); checking?.abort(); };
}
