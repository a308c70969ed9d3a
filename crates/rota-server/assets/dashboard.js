// Live pages: the event stream (authenticated by the session cookie) tells the page that
// something changed; parts marked hx-trigger="rota-change from:body" fetch themselves again,
// at most once per 500 ms.
(function () {
  if (!document.body.dataset.live) return;
  let pending = null;
  const changed = () => {
    if (pending) return;
    pending = setTimeout(() => {
      pending = null;
      document.body.dispatchEvent(new Event("rota-change"));
    }, 500);
  };
  let es = null;
  // Each event is named by its type (data-events lists them all).
  const types = (document.body.dataset.events || "").split(" ").filter(Boolean);
  const open = () => {
    es = new EventSource("/v1/events/stream");
    types.forEach((t) => es.addEventListener(t, changed));
    es.onerror = () => { es.close(); setTimeout(open, 2000); };
  };
  open();
})();

// Charts: a div.chart with data-series (JSON: {"x": [unix s…], "ok": […], "failed": […]}).
function rotaCharts() {
  document.querySelectorAll("div.chart[data-series]").forEach((el) => {
    if (el.dataset.drawn === el.dataset.series) return;
    el.dataset.drawn = el.dataset.series;
    el.innerHTML = "";
    const s = JSON.parse(el.dataset.series);
    const width = Math.max(300, el.clientWidth - 10);
    new uPlot({
      width, height: 200,
      series: [{}, { label: "succeeded/min", stroke: "#1f7a4d" },
                   { label: "failed/min", stroke: "#c0362c" }],
      axes: [{}, {}],
    }, [s.x, s.ok, s.failed], el);
  });
}
document.addEventListener("DOMContentLoaded", rotaCharts);
document.addEventListener("htmx:afterSwap", rotaCharts);
