// The dashboard's router: one HTML shell, a view per path.
//   /                                         experiments
//   /experiments/{ns}/{name}                  an experiment (tabs in the #hash)
//   /experiments/{ns}/{name}/trials/{trial}   a trial
import { info } from "./api.js";
import { banner, h, replace } from "./dom.js";
import { experimentsView } from "./experiments.js";
import { experimentView } from "./experiment.js";
import { trialView } from "./trial.js";

function route(path) {
  const parts = path.split("/").filter(Boolean).map(decodeURIComponent);
  if (parts.length === 0) return { view: "experiments" };
  if (parts[0] === "experiments" && parts.length === 3) return { view: "experiment", ns: parts[1], name: parts[2] };
  if (parts[0] === "experiments" && parts.length === 5 && parts[3] === "trials") {
    return { view: "trial", ns: parts[1], name: parts[2], trial: parts[4] };
  }
  return { view: "missing" };
}

async function main() {
  const root = document.getElementById("app");
  let settings;
  try {
    settings = await info();
  } catch (err) {
    banner(err.message);
    replace(root);
    return;
  }
  const source = settings.backend === "local" ? `store ${settings.source}` : `Kubernetes ${settings.source}`;
  document.getElementById("source").textContent = `${source} · namespace ${settings.namespace}`;
  const where = route(window.location.pathname);
  if (where.view === "experiments") return experimentsView(root, settings);
  if (where.view === "experiment") return experimentView(root, settings, where.ns, where.name);
  if (where.view === "trial") return trialView(root, settings, where.ns, where.name, where.trial);
  replace(root, h("h1", { text: "Not found" }),
    h("p", {}, "There is no page at this address. ", h("a", { href: "/" }, "All experiments")));
}

main();
