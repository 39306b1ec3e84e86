"use strict";

// The Routes page: GET /routes every second for the tables, and
// GET /routes/{path} for the chart of the route chosen (the busiest until
// a row is clicked).

(() => {
  const { el, fmt, api, every, barChart } = sluice;
  const top = 10;
  let chosen = null; // the path the chart shows when the user picked one

  const requests = r => Object.values(r.statuses).reduce((a, b) => a + b, 0);
  const lastMinute = r => r.minutes.length ? r.minutes[r.minutes.length - 1] : null;

  function byClass(r) {
    const c = { 2: 0, 3: 0, 4: 0, 5: 0 };
    for (const [code, n] of Object.entries(r.statuses)) {
      const k = code.charAt(0);
      if (k in c) c[k] += n;
    }
    return c;
  }

  function row(r, cells) {
    return el("tr", { class: "selectable" + (r.path === current() ? " selected" : ""), "data-path": r.path,
      onclick: () => { chosen = r.path; refresh().catch(() => {}); } },
      el("td", { class: "path" }, r.path), ...cells);
  }

  let routes = [];
  const current = () => chosen || (routes.length ? routes[0].path : null);

  function renderTables() {
    // GET /routes lists the busiest first.
    document.querySelector("#busiest tbody").replaceChildren(...routes.slice(0, top).map(r => {
      const c = byClass(r);
      return row(r, [
        el("td", { class: "num requests" }, fmt(requests(r))),
        el("td", { class: "num" }, fmt(c[2])),
        el("td", { class: "num" }, fmt(c[3])),
        el("td", { class: c[4] ? "num bad" : "num" }, fmt(c[4])),
        el("td", { class: c[5] ? "num bad" : "num" }, fmt(c[5])),
        el("td", { class: "num average" }, fmt(r.service.average)),
      ]);
    }));
    const slow = routes.slice().sort((a, b) => b.service.average - a.service.average || (a.path < b.path ? -1 : 1));
    document.querySelector("#slowest tbody").replaceChildren(...slow.slice(0, top).map(r => {
      const m = lastMinute(r);
      return row(r, [
        el("td", { class: "num average" }, fmt(r.service.average)),
        el("td", { class: "num" }, fmt(r.connect.average)),
        el("td", { class: "num" }, m ? fmt(m.p95) : "–"),
        el("td", { class: "num" }, m ? fmt(m.p99) : "–"),
        el("td", { class: "num requests" }, fmt(requests(r))),
      ]);
    }));
    let n = 0, sum = 0, timed = 0;
    for (const r of routes) {
      n += requests(r);
      sum += r.service.sum;
      timed += r.service.count;
    }
    document.getElementById("routes-count").textContent = fmt(routes.length);
    document.getElementById("routes-requests").textContent = fmt(n);
    document.getElementById("routes-average").textContent = timed ? fmt(sum / timed) : "–";
    document.getElementById("routes-empty").hidden = routes.length > 0;
  }

  // span is how many minutes the chart shows, up to the route's newest.
  const span = 30;

  function renderChart(r) {
    const box = document.getElementById("route-chart-svg");
    const chart = document.getElementById("route-chart");
    chart.dataset.path = r.path;
    document.getElementById("route-chart-path").textContent = r.path;
    const m = lastMinute(r);
    for (const q of ["p50", "p95", "p99"]) document.getElementById("route-" + q).textContent = m ? fmt(m[q]) : "–";
    const time = t => new Date(t).toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" });
    if (!m) {
      box.replaceChildren(barChart([]));
      document.getElementById("route-chart-label").textContent = "no minute of " + r.path + " kept yet";
      return;
    }
    // One slot per minute, the newest at the right, so that quiet minutes
    // show as gaps.
    const last = new Date(m.start).getTime();
    const first = last - (span - 1) * 60000;
    const counts = new Array(span).fill(0), p95 = new Array(span).fill(null), titles = new Array(span).fill("");
    for (const x of r.minutes) {
      const i = Math.round((new Date(x.start).getTime() - first) / 60000);
      if (i < 0 || i >= span) continue;
      counts[i] = x.count;
      p95[i] = x.p95;
      titles[i] = time(x.start) + ": " + fmt(x.count) + " requests, p95 " + fmt(x.p95) + " ms";
    }
    box.replaceChildren(barChart(counts, { line: p95, titles }));
    document.getElementById("route-chart-label").textContent =
      "requests per minute (bars, peak " + fmt(Math.max(...counts)) + ") and p95 service time (red, peak " +
      fmt(Math.max(...p95.filter(v => v !== null))) + " ms), " + time(first) + " to " + time(last);
  }

  async function refresh() {
    routes = await api("/routes");
    if (chosen && !routes.some(r => r.path === chosen)) chosen = null;
    renderTables();
    const path = current();
    if (path !== null) renderChart(await api("/routes/" + encodeURIComponent(path)));
  }

  every(refresh);
})();
