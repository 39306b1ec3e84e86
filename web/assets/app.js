"use strict";

// The page asks /api/state every second and redraws what it shows; the table
// browser asks the view endpoints on demand. Text from the server is only
// ever set as text, never parsed as HTML.

const refreshMs = 1000;
const previous = new Map(); // "group/partition" -> {at, consumed}

function el(tag, attrs, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (k === "class") e.className = v;
    else e.setAttribute(k, v);
  }
  for (const c of children) {
    if (c === null || c === undefined) continue;
    e.append(c instanceof Node ? c : String(c));
  }
  return e;
}

const svgNS = "http://www.w3.org/2000/svg";

function fmt(n) {
  if (n === null || n === undefined) return "–";
  return Number(n).toLocaleString("en-US", { maximumFractionDigits: 1 });
}

function ago(iso) {
  if (!iso) return "";
  const s = Math.max(0, Math.round((Date.now() - new Date(iso).getTime()) / 1000));
  return s < 1 ? "now" : s + "s ago";
}

function errorText(e) {
  if (!e) return "";
  return new Date(e.time).toLocaleTimeString() + " " + e.message;
}

function chart(points) {
  const svg = document.createElementNS(svgNS, "svg");
  svg.setAttribute("class", "chart");
  svg.setAttribute("viewBox", "0 0 300 60");
  svg.setAttribute("preserveAspectRatio", "none");
  const now = points.length ? points[points.length - 1].at : Date.now();
  // Up to five minutes, and at least one, so that a young chart is not a
  // sliver at the right edge.
  const first = points.length ? points[0].at : now;
  const span = Math.min(300, Math.max(60, (now - first) / 1000));
  const peak = Math.max(1, ...points.map(p => p.perSecond));
  const coords = points
    .filter(p => now - p.at <= span * 1000)
    .map(p => {
      const x = 300 - (now - p.at) / 1000 * (300 / span);
      const y = 58 - (p.perSecond / peak) * 54;
      return x.toFixed(1) + "," + y.toFixed(1);
    });
  const line = document.createElementNS(svgNS, "polyline");
  line.setAttribute("points", coords.join(" "));
  svg.append(line);
  return { svg, peak, span };
}

function partitionRate(group, p, at) {
  const key = group + "/" + p.partition;
  const before = previous.get(key);
  previous.set(key, { at, consumed: p.consumed });
  if (!before || at <= before.at || p.consumed < before.consumed) return null;
  return (p.consumed - before.consumed) / ((at - before.at) / 1000);
}

function renderGroups(groups, at) {
  const root = document.getElementById("groups");
  if (!groups.length) {
    root.replaceChildren(el("p", { class: "empty" }, "No processors."));
    return;
  }
  root.replaceChildren(...groups.map(g => {
    const last = g.rate.length ? g.rate[g.rate.length - 1].perSecond : 0;
    const { svg, peak, span } = chart(g.rate);
    const rows = g.partitions.map(p => {
      const rate = partitionRate(g.group, p, at);
      const committed = p.inputs.length ? p.inputs.map(i => i.committed < 0 ? "–" : fmt(i.committed)).join(" / ") : "–";
      const hwm = p.inputs.length ? p.inputs.map(i => fmt(i.highWatermark)).join(" / ") : "–";
      const restore = p.state === "restoring"
        ? fmt(p.restoreOffset) + " / " + fmt(p.restoreEnd)
        : (p.restored ? fmt(p.restored) + " restored" : "");
      return el("tr", { "data-partition": p.partition },
        el("td", { class: "num" }, p.partition),
        el("td", { class: "state state-" + p.state }, p.state),
        el("td", { class: "num" }, fmt(p.consumed)),
        el("td", { class: "num rate" }, rate === null ? "–" : fmt(rate)),
        el("td", { class: "num committed" }, committed),
        el("td", { class: "num hwm" }, hwm),
        el("td", { class: "num lag" }, p.lag === null ? "–" : fmt(p.lag)),
        el("td", { class: "measured" }, ago(p.lagMeasured)),
        el("td", { class: "num rows" }, fmt(p.tableRows)),
        el("td", {}, restore),
        el("td", { class: "error" }, errorText(p.lastError)));
    });
    return el("div", { class: "card group", "data-group": g.group },
      el("div", { class: "card-head" },
        el("h3", {}, g.group),
        el("span", { class: "figure" }, "consumed ", el("b", {}, fmt(g.consumed))),
        el("span", { class: "figure" }, "produced ", el("b", {}, fmt(g.produced))),
        el("span", { class: "figure" }, "records/s ", el("b", { class: "group-rate" }, fmt(last))),
        el("span", { class: "figure" }, "failed/skipped/dead-lettered ",
          el("b", {}, fmt(g.failed) + " / " + fmt(g.skipped) + " / " + fmt(g.deadLettered))),
        el("span", { class: "figure" }, "rebalances ", el("b", {}, fmt(g.rebalances))),
        g.commits || g.aborts ? el("span", { class: "figure" }, "transactions ", el("b", {}, fmt(g.commits) + " committed, " + fmt(g.aborts) + " aborted")) : null),
      svg,
      el("div", { class: "chart-label" }, "records/s, last " + Math.round(span) + " s (peak " + fmt(peak) + ")"),
      g.lastError ? el("p", { class: "error" }, "last error: " + errorText(g.lastError)) : null,
      g.standbys.length ? el("p", { class: "standbys" }, "standbys: ", ...g.standbys.map(s =>
        el("span", { class: "standby state-" + s.state, "data-standby": s.partition },
          s.partition + " " + s.state + ", " + fmt(s.behind) + " behind "))) : null,
      el("table", { class: "grid partitions" },
        el("thead", {}, el("tr", {},
          ...["partition", "state", "consumed", "records/s", "committed", "high watermark", "lag", "measured", "table rows", "restore", "last error"]
            .map((h, i) => el("th", { class: [0, 2, 3, 4, 5, 6, 8].includes(i) ? "num" : "" }, h)))),
        el("tbody", {}, ...rows)));
  }));
}

function renderViews(views) {
  document.getElementById("views").replaceChildren(...views.map(v =>
    el("tr", { "data-view": v.name },
      el("td", {}, v.name),
      el("td", { class: "state-" + v.state }, v.state),
      el("td", { class: "num" }, fmt(v.rows)))));
  const select = document.getElementById("browse-view");
  const names = views.map(v => v.name);
  const have = Array.from(select.options).map(o => o.value);
  if (names.join("\n") !== have.join("\n")) {
    const chosen = select.value;
    select.replaceChildren(...names.map(n => el("option", { value: n }, n)));
    if (names.includes(chosen)) select.value = chosen;
  }
}

// renderPages links the pages the application added, when there are any.
function renderPages(pages) {
  const nav = document.getElementById("pages");
  const want = pages.map(p => p.path + " " + p.title).join("\n");
  if (nav.dataset.pages === want) return;
  nav.dataset.pages = want;
  nav.replaceChildren(...(pages.length ? [el("a", { href: "/", class: "current" }, "overview")] : []),
    ...pages.map(p => el("a", { href: p.path }, p.title)));
}

function renderEmitters(emitters) {
  document.getElementById("emitters").replaceChildren(...emitters.map(e =>
    el("tr", {},
      el("td", {}, e.topic),
      el("td", { class: "num" }, fmt(e.emitted)),
      el("td", { class: "num" }, fmt(e.errors)))));
}

async function refresh() {
  const status = document.getElementById("status");
  try {
    const resp = await fetch("/api/state", { cache: "no-store" });
    const body = await resp.json();
    if (!resp.ok) throw new Error(body.error || resp.statusText);
    const at = new Date(body.time).getTime();
    renderGroups(body.groups, at);
    renderViews(body.views);
    renderEmitters(body.emitters);
    renderPages(body.pages || []);
    document.getElementById("metrics-link").hidden = !body.metrics;
    status.textContent = "updated " + new Date(body.time).toLocaleTimeString();
    status.classList.remove("down");
  } catch (err) {
    status.textContent = "not reachable: " + err.message;
    status.classList.add("down");
  }
}

async function browse(path) {
  const out = document.getElementById("browse-result");
  const view = document.getElementById("browse-view").value;
  if (!view) {
    out.replaceChildren(el("p", { class: "error" }, "no view to browse"));
    return;
  }
  try {
    const resp = await fetch("/api/views/" + encodeURIComponent(view) + path, { cache: "no-store" });
    const body = await resp.json();
    if (!resp.ok) {
      out.replaceChildren(el("p", { class: "error", id: "browse-error" }, body.error || resp.statusText));
      return;
    }
    if (body.rows) {
      out.replaceChildren(
        el("table", { class: "grid", id: "browse-rows" },
          el("thead", {}, el("tr", {}, el("th", {}, "key"), el("th", {}, "value"))),
          el("tbody", {}, ...body.rows.map(r =>
            el("tr", {}, el("td", {}, r.key), el("td", {}, JSON.stringify(r.value)))))),
        el("p", { class: "empty" }, body.rows.length + " rows" + (body.more ? ", more follow" : "")));
    } else {
      out.replaceChildren(el("pre", { id: "browse-value" }, JSON.stringify(body.value, null, 2)));
    }
  } catch (err) {
    out.replaceChildren(el("p", { class: "error" }, err.message));
  }
}

document.getElementById("browse-get-form").addEventListener("submit", ev => {
  ev.preventDefault();
  const key = document.getElementById("browse-key").value;
  if (!key) return;
  browse("/keys/" + encodeURIComponent(key));
});

document.getElementById("browse-range-form").addEventListener("submit", ev => {
  ev.preventDefault();
  const q = new URLSearchParams();
  const from = document.getElementById("browse-from").value;
  const to = document.getElementById("browse-to").value;
  if (from) q.set("from", from);
  if (to) q.set("to", to);
  q.set("limit", document.getElementById("browse-limit").value || "20");
  browse("/rows?" + q.toString());
});

refresh();
setInterval(refresh, refreshMs);
