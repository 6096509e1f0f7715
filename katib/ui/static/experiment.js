// An experiment: status, conditions, optimum, budget, spec as YAML; tabs for the trial table
// and each chart; actions (raise budget, stop, delete) behind a confirmation; live updates.
import { get, send, watch } from "./api.js";
import { draw } from "./charts.js";
import { age, badge, banner, confirmDialog, h, replace, trialHref } from "./dom.js";
import { trialTable } from "./trials.js";

const TABS = [
  ["trials", "Trials"], ["history", "History"], ["parallel", "Parallel coordinates"], ["slice", "Slice"],
  ["contour", "Contour"], ["importance", "Importance"], ["intermediate", "Intermediate values"], ["edf", "EDF"],
];

function conditionsTable(conditions) {
  return h("table", { id: "conditions", class: "grid compact" },
    h("thead", {}, h("tr", {}, ["Type", "Status", "Reason", "Message", "Since"].map((t) => h("th", { text: t })))),
    h("tbody", {}, conditions.map((c) => h("tr", { dataset: { type: c.type } },
      h("td", { text: c.type }), h("td", { text: c.status }), h("td", { text: c.reason }),
      h("td", { class: "message", text: c.message }), h("td", { title: c.time, text: age(c.time) })))));
}

function counts(c) {
  const items = [["succeeded", "succeeded"], ["running", "running"], ["pending", "pending"], ["failed", "failed"],
    ["killed", "killed"], ["earlyStopped", "early-stopped"], ["metricsUnavailable", "metrics unavailable"]];
  return h("span", { id: "counts" }, h("strong", { dataset: { count: "trials" }, text: c.trials }), " trials: ",
    items.filter(([key]) => c[key] || ["succeeded", "running", "failed"].includes(key))
      .map(([key, label], i) => [i ? ", " : "", h("span", { dataset: { count: key }, text: c[key] }), ` ${label}`]));
}

function overview(e, ns, name) {
  const opt = e.optimum;
  const best = opt
    ? h("span", { id: "optimum" }, h("a", { href: trialHref(ns, name, opt.trial) }, opt.trial), ": ",
      opt.metrics.map((m) => `${m.name}=${m.value}`).join(", "),
      opt.parameters.length ? ` | ${opt.parameters.map((p) => `${p.name}=${p.value}`).join(", ")}` : "")
    : h("span", { id: "optimum", class: "muted", text: e.optimumText });
  const budget = e.budget;
  const runner = e.runner === null || e.runner === undefined ? null
    : h("span", { id: "runner", class: e.runner ? "ok" : "muted" },
      e.runner ? "a runner is working on it" : "no runner is working on it");
  return h("dl", { class: "facts" },
    h("dt", { text: "Status" }), h("dd", {}, badge(e.status), e.reason ? ` ${e.reason}` : "", runner ? " · " : "", runner),
    h("dt", { text: "Algorithm" }), h("dd", { id: "algorithm" }, e.algorithm,
      e.algorithmSettings.length ? ` (${e.algorithmSettings.map((s) => `${s.name}=${s.value}`).join(", ")})` : "",
      e.earlyStopping ? ` · early stopping: ${e.earlyStopping}` : ""),
    h("dt", { text: "Objective" }), h("dd", { id: "objective" }, `${e.objective.type} ${e.objective.metric}`,
      e.objective.goal ? ` (goal ${e.objective.goal})` : "",
      e.objective.additional.length ? ` · also ${e.objective.additional.join(", ")}` : ""),
    h("dt", { text: "Trials" }), h("dd", {}, counts(e.counts)),
    h("dt", { text: "Budget" }), h("dd", { id: "budget" },
      h("span", { dataset: { budget: "max" }, text: budget.maxTrialCount ?? "unlimited" }), " trials, ",
      h("span", { dataset: { budget: "parallel" }, text: budget.parallelTrialCount ?? "" }), " at a time, ",
      h("span", { dataset: { budget: "failed" }, text: budget.maxFailedTrialCount ?? "unlimited" }), " failures allowed"),
    h("dt", { text: "Best trial" }), h("dd", {}, best),
    h("dt", { text: "Started" }), h("dd", { id: "started", title: e.startTime },
      e.startTime ? `${age(e.startTime)} ago` : "not yet",
      e.duration ? ` · ${e.completionTime ? "took" : "running for"} ${e.duration}` : ""));
}

export async function experimentView(root, settings, ns, name) {
  document.title = `${name} · Katib`;
  const base = `/api/experiments/${encodeURIComponent(ns)}/${encodeURIComponent(name)}`;
  const head = h("div", { id: "experiment-head" });
  const facts = h("div", { id: "experiment-facts" });
  const conditions = h("details", { id: "conditions-box" }, h("summary", { text: "Conditions" }));
  const spec = h("details", { id: "spec-box" }, h("summary", { text: "Spec (YAML)" }), h("pre", { id: "spec-yaml" }));
  const tabBar = h("nav", { class: "tabs", role: "tablist" });
  const panels = {};
  for (const [key] of TABS) panels[key] = h("section", { id: `tab-${key}`, class: "tab", hidden: true });
  replace(root, head, facts, conditions, spec, tabBar, Object.values(panels));

  let current = null;
  let generation = null;
  let stopWatch = () => {};
  let gone = false;
  let tableLoaded = false; // asked for already: the first update need not ask again
  const drawn = {};
  const onError = (err) => {
    if (err.status === 404) markGone(err.message);
    else banner(err.message);
  };
  const table = trialTable(panels.trials, ns, name, onError);

  function markGone(message) {
    gone = true;
    banner(`${message}. It may have been deleted; see all experiments.`);
    for (const button of head.querySelectorAll("button")) button.disabled = true;
  }

  function actionButton(id, label, enabled, why, onclick, danger = false) {
    return h("button", { id, type: "button", class: danger ? "danger" : "", disabled: !enabled || gone,
      title: !settings.allowActions ? settings.actionsNote : why, onclick }, label);
  }

  let shown = null;
  function render(e) {
    current = e;
    // Draw again only what changed: an update that only moves the generation (the trials were
    // read meanwhile) leaves the header, and the buttons someone may be clicking, alone.
    const key = JSON.stringify({ ...e, generation: null, token: null });
    if (key === shown) return;
    shown = key;
    // Locally a stop reaches the experiment's runner: only when one is working on it.
    const running = e.runner === null || e.runner === undefined
      ? ["Running", "Created", "Restarting"].includes(e.status) : e.runner;
    replace(head, h("div", { class: "toolbar" },
      h("h1", {}, h("a", { href: "/", class: "crumb" }, "Experiments"), " / ", e.name, " ", badge(e.status)),
      h("span", { class: "spacer" }),
      actionButton("action-budget", "Raise budget…", settings.allowActions, "Give the experiment more trials", raiseBudget),
      actionButton("action-stop", "Stop…", settings.allowActions && running,
        running ? "Stop the experiment's trials" : "The experiment is not running", stopIt),
      actionButton("action-delete", "Delete…", settings.allowActions, "Delete the experiment, its trials and metrics",
        deleteIt, true)),
    !settings.allowActions ? h("p", { class: "muted", id: "actions-note", text: settings.actionsNote }) : null);
    replace(facts, overview(e, ns, name));
    const open = conditions.open;
    replace(conditions, h("summary", { text: `Conditions (${e.conditions.length})` }), conditionsTable(e.conditions));
    conditions.open = open;
    spec.querySelector("pre").textContent = e.yaml;
  }

  async function raiseBudget() {
    const input = h("input", { id: "budget-input", type: "number", min: 1, step: 1,
      value: (current.budget.maxTrialCount || current.counts.trials) + 10 });
    const ok = await confirmDialog({
      title: `Raise the budget of ${name}?`,
      body: [h("label", {}, "Max trial count ", input),
        h("p", { class: "muted" }, `Now ${current.budget.maxTrialCount ?? "unlimited"}; `,
          `${current.counts.trials} trials so far. An experiment that ended by reaching it resumes.`)],
      ok: "Raise budget",
      action: async () => render(await send("POST", `${base}/budget`, { maxTrialCount: Number(input.value) })),
    });
    if (ok) refresh();
  }

  async function stopIt() {
    const ok = await confirmDialog({
      title: `Stop ${name}?`, ok: "Stop", danger: true,
      body: h("p", {}, "Its running trials are stopped and it gets no more trials. ",
        settings.backend === "local" ? "Running it again (katib run, or Raise budget) resumes it." : ""),
      action: async () => render(await send("POST", `${base}/stop`)),
    });
    if (ok) refresh();
  }

  async function deleteIt() {
    const ok = await confirmDialog({
      title: `Delete ${name}?`, ok: "Delete", danger: true,
      body: h("p", {}, `Experiment ${ns}/${name}, its ${current.counts.trials} trials and their metrics are deleted. `,
        "This cannot be undone."),
      action: async () => { await send("DELETE", base); },
    });
    if (ok) {
      stopWatch();
      window.location.href = "/";
    }
  }

  // -- charts ------------------------------------------------------------------------------
  function chartControls(kind, e) {
    if (kind === "contour") {
      const names = e.parameters.map((p) => p.name);
      const pick = (id, chosen) => h("select", { id, onchange: () => loadChart(kind, true) },
        names.map((n) => h("option", { value: n, selected: n === chosen }, n)));
      return [h("label", {}, "x ", pick("contour-x", names[0])), h("label", {}, " y ", pick("contour-y", names[1] || names[0]))];
    }
    if (kind === "intermediate") {
      return [h("label", {}, "metric ", h("select", { id: "intermediate-metric", onchange: () => loadChart(kind, true) },
        e.metricNames.map((m) => h("option", { value: m }, m))))];
    }
    return [];
  }

  async function loadChart(kind, force = false) {
    const panel = panels[kind];
    if (!drawn[kind]) {
      drawn[kind] = { chart: h("div", { id: `chart-${kind}`, class: "chart" }), generation: undefined, busy: false, busyFor: undefined };
      replace(panel, h("div", { class: "toolbar" }, chartControls(kind, current)),
        h("p", { class: "error-text", hidden: true }), drawn[kind].chart);
    }
    const entry = drawn[kind];
    if (!force && (entry.generation === generation || (entry.busy && entry.busyFor === generation))) return;
    entry.busy = true;
    entry.busyFor = generation;
    const options = {};
    if (kind === "contour") {
      options.x = panel.querySelector("#contour-x").value;
      options.y = panel.querySelector("#contour-y").value;
    }
    if (kind === "intermediate") options.metric = panel.querySelector("#intermediate-metric").value;
    const error = panel.querySelector(".error-text");
    entry.chart.classList.add("loading");
    try {
      const figure = await get(`${base}/figures/${kind}`, options);
      await draw(entry.chart, figure);
      entry.generation = generation;
      error.hidden = true;
    } catch (err) {
      if (err.status === 404) { markGone(err.message); return; }
      error.textContent = err.message;
      error.hidden = false;
    } finally {
      entry.busy = false;
      entry.chart.classList.remove("loading");
    }
  }

  function showTab(key) {
    for (const [k] of TABS) panels[k].hidden = k !== key;
    for (const link of tabBar.querySelectorAll("a")) link.classList.toggle("active", link.dataset.tab === key);
    if (key !== "trials") loadChart(key);
  }

  function activeTab() {
    const key = window.location.hash.slice(1);
    return TABS.some(([k]) => k === key) ? key : "trials";
  }

  function update(e, initial = false) {
    // generation is null when the server answered before reading the trials; the table and
    // the chart then load anyway (they wait for the trials on the server).
    const changed = initial || (e.generation !== null && e.generation !== generation);
    if (e.generation !== null) generation = e.generation;
    render(e);
    if (changed) {
      if (tableLoaded) tableLoaded = false;
      else if (table.generation() !== generation) table.load();
      const tab = activeTab();
      if (tab !== "trials" && !initial) loadChart(tab);
    }
  }

  async function refresh() {
    try { update(await get(base)); } catch (err) { onError(err); }
  }

  let first;
  table.load(); // the trials' first page is asked for alongside the experiment
  tableLoaded = true;
  try {
    first = await get(base);
  } catch (err) {
    replace(root, h("h1", {}, h("a", { href: "/", class: "crumb" }, "Experiments"), ` / ${name}`));
    if (err.status === 404) banner(`${err.message}. It may have been deleted; see all experiments.`);
    else banner(err.message);
    return;
  }
  replace(tabBar, TABS.map(([key, label]) => h("a", { href: `#${key}`, dataset: { tab: key }, role: "tab" }, label)));
  window.addEventListener("hashchange", () => showTab(activeTab()));
  update(first, true);
  showTab(activeTab());
  stopWatch = watch({ watch: "experiment", namespace: ns, name }, first.token, (e) => { banner(null); update(e); },
    (problem) => {
      if (!problem) { banner(null); return; }
      if (problem.kind === "NotFoundError") markGone(problem.message);
      else banner(problem.message);
    });
}
