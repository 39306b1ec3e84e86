"use strict";

// What the pages an application adds to the monitor share: element
// builders that set text only as text, number formats, their API, a
// refresh loop that shows in the header whether it worked, and two small
// SVG charts. It defines the global sluice, before the page's own scripts
// run.

(() => {
  const svgNS = "http://www.w3.org/2000/svg";

  function fill(e, attrs, children) {
    for (const [k, v] of Object.entries(attrs || {})) {
      if (v === null || v === undefined || v === false) continue;
      if (k === "class") e.setAttribute("class", v);
      else if (k.startsWith("on")) e.addEventListener(k.slice(2), v);
      else e.setAttribute(k, v);
    }
    for (const c of children) {
      if (c === null || c === undefined) continue;
      e.append(c instanceof Node ? c : String(c));
    }
    return e;
  }

  function el(tag, attrs, ...children) {
    return fill(document.createElement(tag), attrs, children);
  }

  function svg(tag, attrs, ...children) {
    return fill(document.createElementNS(svgNS, tag), attrs, children);
  }

  function fmt(n, digits) {
    if (n === null || n === undefined || Number.isNaN(n)) return "–";
    return Number(n).toLocaleString("en-US", { maximumFractionDigits: digits === undefined ? 1 : digits });
  }

  // api fetches path of the page's API and returns its JSON, or throws the
  // error the API answered.
  async function api(path) {
    const resp = await fetch(document.body.dataset.api + path, { cache: "no-store" });
    let body;
    try {
      body = await resp.json();
    } catch (err) {
      throw new Error(resp.status + " " + resp.statusText);
    }
    if (!resp.ok) throw new Error((body && body.error) || resp.statusText);
    return body;
  }

  // every runs fn now and then every ms (default a second), one run at a
  // time, and says in the header when it last worked or why it did not.
  function every(fn, ms) {
    const status = document.getElementById("status");
    let running = false;
    const run = async () => {
      if (running) return;
      running = true;
      try {
        await fn();
        status.textContent = "updated " + new Date().toLocaleTimeString();
        status.classList.remove("down");
      } catch (err) {
        status.textContent = "not reachable: " + err.message;
        status.classList.add("down");
      } finally {
        running = false;
      }
    };
    run();
    return setInterval(run, ms || 1000);
  }

  // frame returns an empty chart of w by h.
  function frame(w, h) {
    return svg("svg", { class: "chart", viewBox: "0 0 " + w + " " + h, preserveAspectRatio: "none" });
  }

  // lineChart draws series of numbers as lines, each scaled to its own
  // peak (at least 1), newest at the right; the first series in the
  // accent colour, the second in red.
  function lineChart(series, opts) {
    const w = (opts && opts.width) || 300, h = (opts && opts.height) || 60;
    const chart = frame(w, h);
    series.forEach((values, i) => {
      const peak = Math.max(1, ...values);
      const step = values.length > 1 ? w / (values.length - 1) : 0;
      const points = values.map((v, j) => (j * step).toFixed(1) + "," + (h - 2 - (v / peak) * (h - 6)).toFixed(1));
      chart.append(svg("polyline", { points: points.join(" "), class: i ? "second" : null }));
    });
    return chart;
  }

  // barChart draws bars of values, the highest at full height, with a
  // second series (scaled to its own peak) as a red step line across them
  // when given, a null in it leaving its slot out; titles, when given, are
  // the bars' tooltips. The chart stretches to its box, so labels belong
  // in the page, beside it.
  function barChart(values, opts) {
    const w = (opts && opts.width) || 300, h = (opts && opts.height) || 70;
    const titles = (opts && opts.titles) || [];
    const line = (opts && opts.line) || [];
    const chart = frame(w, h);
    const peak = Math.max(1, ...values);
    const slot = values.length ? w / values.length : w;
    values.forEach((v, i) => {
      const bh = (v / peak) * (h - 4);
      chart.append(svg("rect", {
        x: (i * slot + slot * 0.1).toFixed(1), y: (h - bh).toFixed(1),
        width: (slot * 0.8).toFixed(1), height: bh.toFixed(1),
      }, titles[i] ? svg("title", {}, titles[i]) : null));
    });
    const lpeak = Math.max(1, ...line.filter(v => v !== null));
    const points = [];
    line.forEach((v, i) => {
      if (v === null || v === undefined) return;
      const y = (h - 2 - (v / lpeak) * (h - 6)).toFixed(1);
      points.push((i * slot + slot * 0.1).toFixed(1) + "," + y, ((i + 0.9) * slot).toFixed(1) + "," + y);
    });
    if (points.length) chart.append(svg("polyline", { points: points.join(" "), class: "second" }));
    return chart;
  }

  window.sluice = { el, svg, fmt, api, every, lineChart, barChart };
})();
