// Small DOM and formatting helpers shared by the pages. Times a person reads are shown in Asia/Ho_Chi_Minh whatever
// the browser's own zone; the API speaks UTC.

export const TIME_ZONE = "Asia/Ho_Chi_Minh";

// el("button", {class: "primary", onclick: f}, "Text", childNode)
export function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs || {})) {
    if (value === undefined || value === null || value === false) continue;
    if (key.startsWith("on") && typeof value === "function") node.addEventListener(key.slice(2), value);
    else if (key === "class") node.className = value;
    else if (key === "dataset") Object.assign(node.dataset, value);
    else if (value === true) node.setAttribute(key, "");
    else node.setAttribute(key, value);
  }
  for (const child of children.flat()) {
    if (child === undefined || child === null || child === false) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

export function clear(node, ...children) {
  node.replaceChildren(...children.flat().filter((c) => c !== undefined && c !== null && c !== false));
  return node;
}

function locale() { return document.documentElement.lang === "en" ? "en-GB" : "vi-VN"; }

export function formatDateTime(iso) {
  if (!iso) return "";
  return new Intl.DateTimeFormat(locale(), { timeZone: TIME_ZONE, dateStyle: "short", timeStyle: "short" })
    .format(new Date(iso));
}

export function formatTime(iso) {
  if (!iso) return "";
  return new Intl.DateTimeFormat(locale(), { timeZone: TIME_ZONE, hour: "2-digit", minute: "2-digit" })
    .format(new Date(iso));
}

export function formatDate(iso) {
  if (!iso) return "";
  const value = iso.length === 10 ? new Date(`${iso}T00:00:00+07:00`) : new Date(iso);
  return new Intl.DateTimeFormat(locale(), { timeZone: TIME_ZONE, dateStyle: "medium" }).format(value);
}

// today's date in Vietnam as YYYY-MM-DD
export function vietnamToday() {
  return new Intl.DateTimeFormat("en-CA", { timeZone: TIME_ZONE }).format(new Date());
}

export function formatVnd(amount) {
  return new Intl.NumberFormat("vi-VN", { style: "currency", currency: "VND", maximumFractionDigits: 0 }).format(amount);
}

// A problem document as an alert, with the fields it names listed; returns the node.
export function problemAlert(error, t) {
  const items = (error.fields || []).map((f) => el("li", {}, f.field ? `${f.field}: ${f.message}` : f.message));
  const title = error.status === 0 ? t("network_error") : (error.title || t("error"));
  return el("div", { class: "alert error", role: "alert" },
    el("strong", {}, title), error.message && error.message !== title ? el("p", {}, error.message) : null,
    items.length ? el("ul", {}, items) : null);
}
