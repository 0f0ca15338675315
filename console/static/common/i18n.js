// Vietnamese is the default language; English is a choice remembered in this browser. Each page keeps its own
// strings ({vi: {...}, en: {...}}); a key missing in English falls back to Vietnamese, then to the key itself.

const STORAGE_KEY = "lienthong.language";
export const LANGUAGES = { vi: "Tiếng Việt", en: "English" };

export function language() {
  const chosen = localStorage.getItem(STORAGE_KEY);
  return chosen in LANGUAGES ? chosen : "vi";
}

export function setLanguage(lang) {
  localStorage.setItem(STORAGE_KEY, lang);
  location.reload();
}

// t(key, {name: "..."}) with {name} placeholders
export function translator(strings) {
  const lang = language();
  return (key, vars = {}) => {
    const text = strings[lang]?.[key] ?? strings.vi?.[key] ?? key;
    return text.replace(/\{(\w+)\}/g, (whole, name) => (name in vars ? String(vars[name]) : whole));
  };
}

// Fills data-i18n (text), data-i18n-placeholder, data-i18n-label (aria-label) and data-i18n-title under root.
export function translatePage(root, t) {
  document.documentElement.lang = language();
  for (const el of root.querySelectorAll("[data-i18n]")) el.textContent = t(el.dataset.i18n);
  for (const el of root.querySelectorAll("[data-i18n-placeholder]")) el.placeholder = t(el.dataset.i18nPlaceholder);
  for (const el of root.querySelectorAll("[data-i18n-label]")) el.setAttribute("aria-label", t(el.dataset.i18nLabel));
  for (const el of root.querySelectorAll("[data-i18n-title]")) el.title = t(el.dataset.i18nTitle);
}

export function languageSwitch() {
  const select = document.createElement("select");
  select.setAttribute("aria-label", "Ngôn ngữ / Language");
  select.id = "language-select";
  for (const [code, name] of Object.entries(LANGUAGES)) select.append(new Option(name, code, false, code === language()));
  select.addEventListener("change", () => setLanguage(select.value));
  return select;
}
