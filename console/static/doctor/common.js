// What every screen of the doctor console shares: its translator, problem alerts in the doctor's language, and the
// polite status line read out by screen readers.

import { translator } from "/console/common/i18n.js";
import { problemAlert } from "/console/common/ui.js";
import strings from "/console/doctor/strings.js";

export const t = translator(strings);

// The API's problem titles are English; known problem types get the console's own words.
export function problem(err) {
  const slug = (err.type || "").split("/").pop();
  const key = `problem:${slug}`;
  const title = t(key);
  if (title === key) return problemAlert(err, t);
  return problemAlert({ status: err.status, title, message: err.message, fields: err.fields }, t);
}

// Puts a problem (or nothing) into a container next to the form it is about.
export function showProblem(container, err) {
  container.replaceChildren(...(err ? [problem(err)] : []));
  if (err && !(err.status >= 400 || err.status === 0)) console.error(err);
}

export function announce(message) {
  const status = document.getElementById("status");
  status.textContent = "";
  // a fresh text node after a tick makes screen readers repeat identical messages
  requestAnimationFrame(() => { status.textContent = message; });
}

export function vnDateTime(date, time) { return `${date}T${time.length === 5 ? `${time}:00` : time}+07:00`; }

// Which dose unit a dosage form is counted in, as a starting point the doctor can change.
export function unitFor(dosageForm) {
  const form = (dosageForm || "").toLowerCase();
  const table = [["gói", "gói"], ["siro", "ml"], ["dung dịch", "ml"], ["hỗn dịch", "ml"], ["xịt", "nhát xịt"],
    ["nhỏ", "giọt"], ["ống", "ống"], ["kem", "tuýp"], ["gel", "tuýp"], ["mỡ", "tuýp"], ["miếng", "miếng"]];
  return (table.find(([word]) => form.includes(word)) || [null, "viên"])[1];
}

export const UNITS = ["viên", "gói", "ml", "nhát xịt", "ống", "chai", "lọ", "bình", "tuýp", "miếng", "giọt"];
