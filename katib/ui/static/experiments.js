// The experiments list: status, algorithm, trial counts, best value, age; filters by status
// and name; "New experiment" from pasted YAML (checked, then confirmed, then created).
import { get, send, watch } from "./api.js";
import { age, badge, banner, confirmDialog, experimentHref, h, replace, showErrors } from "./dom.js";

const STATUSES = ["", "Created", "Running", "Restarting", "Succeeded", "Failed", "Interrupted"];

function row(e) {
  const best = e.best ? `${e.best.metric}=${e.best.value}` : "";
  const c = e.counts;
  return h("tr", { dataset: { name: e.name, status: e.status } },
    h("td", { class: "name" }, h("a", { href: experimentHref(e.namespace, e.name) }, e.name)),
    h("td", { class: "status" }, badge(e.status)),
    h("td", { class: "algorithm", text: e.algorithm }),
    h("td", { class: "num trials", title: `${c.done} done of ${e.maxTrialCount ?? "unlimited"}` },
      `${c.done}/${e.maxTrialCount ?? "∞"}`),
    h("td", { class: "num running", text: c.running }),
    h("td", { class: "num failed", text: c.failed }),
    h("td", { class: "best", title: e.best ? `trial ${e.best.trial}` : "" }, best),
    h("td", { class: "age", title: e.created, dataset: { created: e.created } }, age(e.created)),
  );
}

function listTable(payload, namespace) {
  if (!payload.experiments.length) {
    return h("p", { id: "experiments-empty", class: "muted" },
      `No experiment matches in namespace ${namespace}. Run one with \`katib run FILE\` or katib.tune(), `,
      "or paste one with New experiment.");
  }
  return h("table", { id: "experiments", class: "grid" },
    h("thead", {}, h("tr", {}, ["Name", "Status", "Algorithm", "Trials done", "Running", "Failed", "Best", "Age"]
      .map((t) => h("th", { text: t })))),
    h("tbody", {}, payload.experiments.map(row)));
}

function createPanel(settings, namespace) {
  const text = h("textarea", { id: "create-yaml", rows: 18, spellcheck: "false",
    placeholder: "apiVersion: kubeflow.org/v1beta1\nkind: Experiment\nmetadata:\n  name: ...\nspec:\n  ..." });
  const errors = h("ul", { id: "create-errors", class: "errors", hidden: true });
  const note = h("p", { id: "create-note", class: "muted" });
  const check = async () => {
    errors.hidden = true;
    note.textContent = "";
    const summary = await send("POST", `/api/validate?namespace=${encodeURIComponent(namespace())}`, text.value,
      "application/yaml");
    note.textContent = `Valid: experiment ${summary.name} (${summary.algorithm}, ${summary.parameters.length} ` +
      `parameter(s), up to ${summary.maxTrialCount ?? "unlimited"} trials, ${summary.parallelTrialCount} at a time).` +
      (summary.warnings.length ? ` Warning: ${summary.warnings.join("; ")}` : "");
    return summary;
  };
  const onCheck = async () => {
    try { await check(); } catch (err) { showErrors(errors, err); }
  };
  const onCreate = async () => {
    let summary;
    try { summary = await check(); } catch (err) { showErrors(errors, err); return; }
    let created = null;
    const ok = await confirmDialog({
      title: `Create experiment ${summary.name}?`,
      body: [h("p", {}, `In namespace ${summary.namespace}: ${summary.algorithm} over `,
        `${summary.parameters.join(", ")}; up to ${summary.maxTrialCount ?? "unlimited"} trials, `,
        `${summary.parallelTrialCount} at a time.`),
      settings.backend === "local" ? h("p", { class: "muted" }, "Its trials start running on this machine.") : null],
      ok: "Create",
      action: async () => {
        created = await send("POST", `/api/experiments?namespace=${encodeURIComponent(namespace())}`, text.value,
          "application/yaml");
      },
    });
    if (ok && created) window.location.href = experimentHref(created.namespace, created.name);
  };
  return h("section", { id: "create", class: "panel", hidden: true },
    h("h2", { text: "New experiment" }),
    h("p", { class: "muted" }, "Paste an Experiment (YAML or JSON). It is checked as `katib validate` checks a file."),
    text, errors, note,
    h("div", { class: "buttons" },
      h("button", { id: "create-check", type: "button", onclick: onCheck }, "Check"),
      h("button", { id: "create-submit", type: "button", class: "primary", onclick: onCreate }, "Create…")));
}

export async function experimentsView(root, settings) {
  const params = new URLSearchParams(window.location.search);
  const state = { namespace: params.get("namespace") || settings.namespace, status: params.get("status") || "",
    q: params.get("q") || "" };
  document.title = "Experiments · Katib";
  const list = h("div", { id: "experiments-list" }, h("p", { class: "muted", text: "Loading…" }));
  const statusSelect = h("select", { id: "filter-status", "aria-label": "Status" },
    STATUSES.map((s) => h("option", { value: s, selected: s === state.status }, s || "Any status")));
  const nameInput = h("input", { id: "filter-name", type: "search", placeholder: "Filter by name", value: state.q });
  const namespaceInput = h("input", { id: "filter-namespace", type: "text", value: state.namespace, size: 14,
    title: "Namespace", "aria-label": "Namespace" });
  const panel = createPanel(settings, () => state.namespace);
  const newButton = h("button", { id: "new-experiment", type: "button", class: "primary",
    disabled: !settings.allowActions, title: settings.actionsNote || "Paste an Experiment to create it",
    onclick: () => { panel.hidden = !panel.hidden; if (!panel.hidden) panel.querySelector("textarea").focus(); } },
  "New experiment");
  replace(root, h("div", { class: "toolbar" }, h("h1", { text: "Experiments" }),
    h("label", { class: "muted" }, "namespace ", namespaceInput), nameInput, statusSelect, newButton),
    settings.actionsNote ? h("p", { id: "actions-note", class: "muted", text: settings.actionsNote }) : null,
    panel, list);

  let stop = () => {};
  let ages = null;
  const show = (payload) => {
    banner(null);
    replace(list, listTable(payload, state.namespace));
  };
  const load = async () => {
    stop();
    const query = { namespace: state.namespace, status: state.status, q: state.q };
    const url = new URLSearchParams(Object.entries(query).filter(([k, v]) => v && !(k === "namespace" && v === settings.namespace)));
    window.history.replaceState(null, "", url.toString() ? `/?${url}` : "/");
    let payload = null;
    try {
      payload = await get("/api/experiments", query);
      show(payload);
    } catch (err) {
      banner(err.message);
      replace(list);
    }
    stop = watch({ watch: "experiments", ...query }, payload && payload.token, show,
      (problem) => banner(problem && problem.message));
  };
  statusSelect.addEventListener("change", () => { state.status = statusSelect.value; load(); });
  namespaceInput.addEventListener("change", () => {
    state.namespace = namespaceInput.value.trim() || settings.namespace;
    load();
  });
  let timer = null;
  nameInput.addEventListener("input", () => {
    clearTimeout(timer);
    timer = setTimeout(() => { state.q = nameInput.value.trim(); load(); }, 250);
  });
  clearInterval(ages);
  ages = setInterval(() => {
    for (const cell of list.querySelectorAll("td.age")) cell.textContent = age(cell.dataset.created);
  }, 10000);
  await load();
}
