// Plotly, loaded from the installed plotly package (served at /static/vendor/plotly.min.js) the
// first time a chart is drawn, so the rest of a page is usable before its 4.8 MB are parsed.

let loading = null;

export function loadPlotly() {
  if (window.Plotly) return Promise.resolve(window.Plotly);
  if (!loading) {
    loading = new Promise((resolve, reject) => {
      const script = document.createElement("script");
      script.src = "/static/vendor/plotly.min.js";
      script.onload = () => (window.Plotly ? resolve(window.Plotly)
        : reject(new Error("Charts need plotly on the server: pip install 'katib-lite[ui]'")));
      script.onerror = () => { loading = null; reject(new Error("Plotly could not be loaded from the server")); };
      document.head.append(script);
    });
  }
  return loading;
}

// Draw (or redraw in place) a figure {data, layout} in ``el``.
export async function draw(el, figure) {
  const Plotly = await loadPlotly();
  const layout = { autosize: true, margin: { t: 40, r: 20, b: 50, l: 60 }, ...figure.layout };
  await Plotly.react(el, figure.data, layout, { responsive: true, displaylogo: false });
  el.dataset.traces = String(figure.data.length);
  const notes = (layout.annotations || []).map((a) => a.text).filter(Boolean);
  el.dataset.note = notes.join(" | ");
}
