// A type-ahead combobox (WAI-ARIA combobox with a listbox popup): the server is asked as the doctor types,
// the arrow keys move through the answers, Enter picks one, Escape closes the list. Used for ICD-10 and drugs.

import { el } from "/console/common/ui.js";

const DEBOUNCE_MS = 200;

// typeahead({id, label, search: async (q, signal) => items, describe: item => [text, detail], onPick, t})
export function typeahead({ id, label, search, describe, onPick, t }) {
  const listId = `${id}-list`;
  const input = el("input", { id, type: "text", role: "combobox", autocomplete: "off", "aria-autocomplete": "list",
    "aria-expanded": "false", "aria-controls": listId, spellcheck: "false" });
  const list = el("ul", { id: listId, role: "listbox", "aria-label": label, hidden: true });
  const count = el("span", { class: "visually-hidden", "aria-live": "polite" });
  let items = [];
  let active = -1;
  let timer = null;
  let inflight = null;

  function close() {
    list.hidden = true;
    input.setAttribute("aria-expanded", "false");
    input.removeAttribute("aria-activedescendant");
    active = -1;
  }

  function highlight(index) {
    active = index;
    [...list.children].forEach((li, i) => li.setAttribute("aria-selected", String(i === index)));
    const chosen = list.children[index];
    if (chosen && chosen.id) {
      input.setAttribute("aria-activedescendant", chosen.id);
      chosen.scrollIntoView({ block: "nearest" });
    }
  }

  function pick(index) {
    const item = items[index];
    if (!item) return;
    close();
    input.value = "";
    onPick(item);
  }

  function show(found) {
    items = found;
    list.replaceChildren(...(found.length ? found.map((item, i) => {
      const [text, detail] = describe(item);
      return el("li", { id: `${id}-opt-${i}`, role: "option", "aria-selected": "false",
        // mousedown, not click: keeps focus in the input so the list does not close first
        onmousedown: (e) => { e.preventDefault(); pick(i); } }, text, detail ? el("small", {}, detail) : null);
    }) : [el("li", { class: "muted", role: "option", "aria-disabled": "true" }, t("no_results"))]));
    list.hidden = false;
    input.setAttribute("aria-expanded", "true");
    count.textContent = found.length ? t("results_count", { n: found.length }) : t("no_results");
    highlight(found.length ? 0 : -1);
  }

  input.addEventListener("input", () => {
    clearTimeout(timer);
    const q = input.value.trim();
    if (!q) { close(); return; }
    timer = setTimeout(async () => {
      inflight?.abort();
      inflight = new AbortController();
      try {
        show(await search(q, inflight.signal));
      } catch (err) {
        if (err.name !== "AbortError") close();
      }
    }, DEBOUNCE_MS);
  });

  input.addEventListener("keydown", (e) => {
    const open = !list.hidden && items.length > 0;
    if (e.key === "ArrowDown" && open) { e.preventDefault(); highlight((active + 1) % items.length); }
    else if (e.key === "ArrowUp" && open) { e.preventDefault(); highlight((active - 1 + items.length) % items.length); }
    else if (e.key === "Enter" && open && active >= 0) { e.preventDefault(); pick(active); }
    else if (e.key === "Escape" && !list.hidden) { e.preventDefault(); close(); }
  });
  input.addEventListener("blur", () => setTimeout(close, 100));

  const wrapper = el("div", { class: "combo" }, el("label", { for: id }, label), input, list, count);
  return { wrapper, input };
}
