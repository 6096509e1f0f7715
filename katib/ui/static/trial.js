// A trial: why it failed (first, when it did), parameters, metrics, metrics per step (chart and
// table), conditions and the end of its log; live while it runs.
import { get, watch } from "./api.js";
import { draw } from "./charts.js";
import { age, badge, banner, experimentHref, h, replace } from "./dom.js";

function failureBox(f) {
  if (!f) return null;
  return h("section", { id: "failure", class: f.error ? "failure" : "notice" },
    h("h2", { text: f.error ? `Why it ${f.state === "Failed" ? "failed" : "has no metrics"}` : `Why it ended: ${f.state}` }),
    h("p", { id: "failure-summary", class: "summary", text: f.summary || f.reason }),
    f.message && f.message !== f.summary ? h("p", { id: "failure-message", text: f.message }) : null,
    f.output ? h("pre", { id: "failure-output", class: "output" }, f.output) : null,
    f.output && f.source ? h("p", { class: "muted", text: `From ${f.source}` }) : null);
}

function keyValues(id, rows) {
  return h("table", { id, class: "grid compact" },
    h("tbody", {}, rows.map(([k, v]) => h("tr", { dataset: { name: k } }, h("th", { text: k }), h("td", { class: "num", text: v })))));
}

function metricsTable(t) {
  if (!t.metrics.length) return h("p", { id: "metrics", class: "muted", text: "No metric reported yet." });
  return h("table", { id: "metrics", class: "grid compact" },
    h("thead", {}, h("tr", {}, ["Metric", "Value", "Min", "Max", "Latest"].map((x) => h("th", { text: x })))),
    h("tbody", {}, t.metrics.map((m) => h("tr", { dataset: { name: m.name } },
      h("th", {}, m.name, m.name === t.objective ? " (objective)" : ""),
      h("td", { class: "num value", title: `by ${m.strategy}`, text: m.value }),
      h("td", { class: "num", text: m.min }), h("td", { class: "num", text: m.max }),
      h("td", { class: "num", text: m.latest })))));
}

function stepsTable(steps) {
  if (!steps.rows.length) return h("p", { class: "muted", text: "" });
  return h("div", { class: "scroll short" }, h("table", { id: "steps", class: "grid compact" },
    h("thead", {}, h("tr", {}, h("th", { text: "Step" }), steps.metrics.map((m) => h("th", { class: "num", text: m })))),
    h("tbody", {}, steps.rows.map((r) => h("tr", {}, r.map((v) => h("td", { class: "num", text: v })))))));
}

export async function trialView(root, settings, ns, name, trial) {
  document.title = `${trial} · Katib`;
  const base = `/api/experiments/${encodeURIComponent(ns)}/${encodeURIComponent(name)}/trials/${encodeURIComponent(trial)}`;
  const chart = h("div", { id: "steps-chart", class: "chart small" });
  const parts = {
    head: h("div"), failure: h("div"), params: h("div"), metrics: h("div"), stepsNote: h("p", { class: "muted" }),
    steps: h("div"), conditions: h("div"), log: h("div"),
  };
  replace(root, parts.head, parts.failure,
    h("div", { class: "columns" },
      h("section", {}, h("h2", { text: "Parameters" }), parts.params),
      h("section", {}, h("h2", { text: "Metrics" }), parts.metrics)),
    h("section", {}, h("h2", { text: "Metrics per step" }), parts.stepsNote, chart, parts.steps),
    h("section", {}, h("h2", { text: "Conditions" }), parts.conditions),
    h("section", {}, h("h2", { text: "Log" }), parts.log));

  let logPinned = true; // follow the end of the log unless the reader scrolled up
  function render(t) {
    replace(parts.head, h("h1", {}, h("a", { href: "/", class: "crumb" }, "Experiments"), " / ",
      h("a", { href: experimentHref(ns, name), class: "crumb" }, name), ` / ${t.name} `, badge(t.state)),
    h("p", { id: "trial-times", class: "muted" },
      t.startTime ? `Started ${age(t.startTime)} ago` : "Not started", t.duration ? ` · ${t.duration}` : "",
      t.completionTime ? ` · ended ${age(t.completionTime)} ago` : ""));
    replace(parts.failure, failureBox(t.failure));
    replace(parts.params, keyValues("params", t.parameters.map((p) => [p.name, p.value])));
    replace(parts.metrics, metricsTable(t));
    parts.stepsNote.textContent = t.stepsError || (t.steps.total > t.steps.rows.length
      ? `The last ${t.steps.rows.length} of ${t.steps.total} steps.` : (t.steps.total ? "" : "No metric reported yet."));
    draw(chart, t.chart).catch((err) => { parts.stepsNote.textContent = err.message; });
    replace(parts.steps, stepsTable(t.steps));
    replace(parts.conditions, h("table", { id: "trial-conditions", class: "grid compact" },
      h("thead", {}, h("tr", {}, ["Type", "Status", "Reason", "Message", "Since"].map((x) => h("th", { text: x })))),
      h("tbody", {}, t.conditions.map((c) => h("tr", {}, h("td", { text: c.type }), h("td", { text: c.status }),
        h("td", { text: c.reason }), h("td", { class: "message", text: c.message }), h("td", { title: c.time, text: age(c.time) }))))));
    const pre = parts.log.querySelector("pre");
    if (pre) logPinned = pre.scrollTop + pre.clientHeight >= pre.scrollHeight - 4;
    const log = t.log;
    const count = log.total === null ? `The last ${log.lines.length} lines`
      : (log.total > log.lines.length ? `The last ${log.lines.length} of ${log.total} lines` : `${log.total} lines`);
    const note = log.error ? log.error : `${count} of ${log.source}`;
    const view = h("pre", { id: "log", class: "log" }, log.lines.join("\n"));
    replace(parts.log, h("p", { id: "log-note", class: "muted", text: note }), log.lines.length ? view : null);
    if (logPinned) view.scrollTop = view.scrollHeight;
  }

  let first;
  try {
    first = await get(base);
  } catch (err) {
    replace(parts.head, h("h1", {}, h("a", { href: experimentHref(ns, name), class: "crumb" }, name), ` / ${trial}`));
    banner(err.status === 404 ? `${err.message}. It may have been deleted.` : err.message);
    return;
  }
  render(first);
  watch({ watch: "trial", namespace: ns, name, trial }, first.token, (t) => { banner(null); render(t); },
    (problem) => banner(problem && problem.message));
}
