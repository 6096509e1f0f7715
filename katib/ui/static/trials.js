// The trial table: sorted, filtered and paged by the server (a 20,000-trial experiment sends
// one page). Click a header to sort by it (again: the other way); type in the filter row
// (numbers: >x, <=x, a..b; text: contains, a,b for either, =x exact; - for empty).
import { get } from "./api.js";
import { badge, h, replace, trialHref } from "./dom.js";

const STATES = ["", "Succeeded", "Running", "Pending", "Failed", "Killed", "EarlyStopped", "MetricsUnavailable"];

export function trialTable(container, ns, name, onError) {
  const state = { sort: "number", order: "desc", offset: 0, limit: 50, filters: {}, columns: null, generation: null, rows: null };
  const stateSelect = h("select", { id: "trial-state", "aria-label": "State" },
    STATES.map((s) => h("option", { value: s }, s || "Any state")));
  const count = h("span", { id: "trial-count", class: "muted" });
  const prev = h("button", { id: "page-prev", type: "button" }, "‹ Previous");
  const next = h("button", { id: "page-next", type: "button" }, "Next ›");
  const size = h("select", { id: "page-size", "aria-label": "Rows per page" },
    [25, 50, 100, 250].map((n) => h("option", { value: n, selected: n === state.limit }, `${n} rows`)));
  const clear = h("button", { id: "filters-clear", type: "button" }, "Clear filters");
  const error = h("p", { id: "trial-error", class: "error-text", hidden: true });
  const tableEl = h("table", { id: "trials", class: "grid trials" });
  replace(container, h("div", { class: "toolbar" }, stateSelect, clear, count, h("span", { class: "spacer" }),
    size, prev, next), error, h("div", { class: "scroll" }, tableEl));

  let timer = null;
  let serial = 0;

  async function load() {
    const mine = ++serial;
    const params = { sort: state.sort, order: state.order, offset: state.offset, limit: state.limit };
    for (const [key, value] of Object.entries(state.filters)) if (value) params[`f.${key}`] = value;
    let page;
    try {
      page = await get(`/api/experiments/${encodeURIComponent(ns)}/${encodeURIComponent(name)}/trials`, params);
    } catch (err) {
      if (mine !== serial) return;
      if (err.status === 400) {
        error.textContent = err.message;
        error.hidden = false;
        return;
      }
      onError(err);
      return;
    }
    if (mine !== serial) return; // a newer request is on its way
    error.hidden = true;
    state.generation = page.generation;
    render(page);
  }

  function header(page) {
    const cells = page.columns.map((c) => {
      const arrow = c.key === page.sort ? (page.descending ? " ▼" : " ▲") : "";
      return h("th", { class: c.numeric ? "num sortable" : "sortable", dataset: { key: c.key },
        title: `Sort by ${c.label}`, onclick: () => sortBy(c.key) }, c.label + arrow);
    });
    cells.push(h("th", { text: "Reason" }));
    const filters = page.columns.map((c) => h("th", {}, h("input", {
      type: "text", class: "filter", dataset: { filter: c.key }, value: state.filters[c.key] || "",
      placeholder: c.numeric ? ">x  a..b" : "contains", "aria-label": `Filter ${c.label}`,
      oninput: (event) => {
        state.filters[c.key] = event.target.value;
        state.offset = 0;
        clearTimeout(timer);
        timer = setTimeout(load, 300);
      },
    })));
    filters.push(h("th"));
    return h("thead", {}, h("tr", {}, cells), h("tr", { class: "filters" }, filters));
  }

  function render(page) {
    // The header (and its filter inputs, which may have focus) is built once per column set.
    const keys = page.columns.map((c) => c.key).join("|") + page.sort + page.descending;
    if (state.columns !== keys) {
      state.columns = keys;
      const old = tableEl.querySelector("thead");
      const focused = document.activeElement && document.activeElement.dataset
        ? document.activeElement.dataset.filter : null;
      const head = header(page);
      if (old) old.replaceWith(head); else tableEl.prepend(head);
      if (focused) {
        const input = head.querySelector(`input[data-filter="${CSS.escape(focused)}"]`);
        if (input) { input.focus(); input.setSelectionRange(input.value.length, input.value.length); }
      }
    }
    // Rows unchanged (the same trials read again): keep the ones on the page.
    const rowsKey = JSON.stringify([page.rows, page.best, keys]);
    if (rowsKey === state.rows) {
      renderCount(page);
      return;
    }
    state.rows = rowsKey;
    const body = h("tbody", {}, page.rows.map((r) => h("tr", {
      class: r.name === page.best ? "best" : "", dataset: { trial: r.name, state: r.state } },
    h("td", { class: "num", text: r.number }),
    h("td", { class: "name" }, h("a", { href: trialHref(ns, name, r.name) }, r.name)),
    h("td", {}, badge(r.state)),
    page.columns.slice(3).map((c) => h("td", { class: c.numeric ? "num" : "", dataset: { key: c.key } }, r.cells[c.key])),
    h("td", { class: "reason", title: r.reason }, r.reason))));
    const old = tableEl.querySelector("tbody");
    if (old) old.replaceWith(body); else tableEl.append(body);
    renderCount(page);
  }

  function renderCount(page) {
    const first = page.matched ? page.offset + 1 : 0;
    const last = Math.min(page.offset + page.limit, page.matched);
    count.textContent = `${first}–${last} of ${page.matched}` +
      (page.matched !== page.total ? ` matching (${page.total} trials)` : " trials");
    count.dataset.matched = page.matched;
    count.dataset.total = page.total;
    prev.disabled = page.offset === 0;
    next.disabled = last >= page.matched;
  }

  function sortBy(key) {
    if (state.sort === key) state.order = state.order === "asc" ? "desc" : "asc";
    else { state.sort = key; state.order = key === "number" ? "desc" : "asc"; }
    state.offset = 0;
    load();
  }

  stateSelect.addEventListener("change", () => {
    state.filters.state = stateSelect.value ? `=${stateSelect.value}` : "";
    state.offset = 0;
    const box = tableEl.querySelector('input[data-filter="state"]');
    if (box) box.value = state.filters.state;
    load();
  });
  clear.addEventListener("click", () => {
    state.filters = {};
    stateSelect.value = "";
    state.offset = 0;
    state.columns = null;
    load();
  });
  prev.addEventListener("click", () => { state.offset = Math.max(0, state.offset - state.limit); load(); });
  next.addEventListener("click", () => { state.offset += state.limit; load(); });
  size.addEventListener("change", () => { state.limit = Number(size.value); state.offset = 0; load(); });
  // generation: that of the experiment's trials the table shows (null: read before them)
  return { load, generation: () => state.generation };
}
