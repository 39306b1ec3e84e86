"use strict";

// The Export page: GET /status every second; the chart keeps the pending
// count of the last five minutes the page has seen.

(() => {
  const { fmt, api, every, lineChart } = sluice;
  const keep = 300;
  const pending = [];

  const set = (id, text) => { document.getElementById(id).textContent = text; };
  const when = iso => {
    const s = Math.max(0, Math.round((Date.now() - new Date(iso).getTime()) / 1000));
    return new Date(iso).toLocaleTimeString() + " (" + (s < 1 ? "now" : s + " s ago") + ")";
  };

  function renderFlow(g) {
    set("export-in", g ? fmt(g.updatesIn, 0) : "–");
    set("export-deduped", g ? fmt(g.deduped, 0) : "–");
    set("export-out", g ? fmt(g.eventsOut, 0) : "–");
    set("export-skipped", g ? fmt(g.skipped, 0) : "–");
    set("export-lag", g && g.bucketLagSeconds !== null ? fmt(g.bucketLagSeconds) + " s" : "–");
  }

  function renderSink(s) {
    document.getElementById("export-no-sink").hidden = s !== null;
    document.getElementById("export-pending-card").hidden = s === null;
    document.getElementById("export-sink").closest("section").hidden = s === null;
    if (s === null) return;
    set("export-pending", fmt(s.pending, 0));
    set("export-limit", fmt(s.pendingLimit, 0));
    set("export-resume", fmt(s.resumeAt, 0));
    const state = document.getElementById("export-state");
    state.textContent = s.paused ? "paused" : "flowing";
    state.className = s.paused ? "bad" : "ok";
    const share = s.pendingLimit ? Math.min(1, s.pending / s.pendingLimit) : 0;
    document.getElementById("export-meter-bar").style.width = (share * 100).toFixed(1) + "%";
    document.getElementById("export-meter").classList.toggle("full", s.paused);
    set("export-sent", fmt(s.eventsSent, 0));
    set("export-calls", fmt(s.calls, 0));
    set("export-records", fmt(s.records, 0));
    set("export-errors-call", fmt(s.errors.call || 0, 0));
    set("export-errors-record", fmt(s.errors.record || 0, 0));
    set("export-last-success", s.lastSuccess ? when(s.lastSuccess) : "none yet");
    set("export-last-error", s.lastError ? when(s.lastError.time) + " " + s.lastError.kind + ": " + s.lastError.message : "none");

    pending.push(s.pending);
    if (pending.length > keep) pending.shift();
    document.getElementById("export-chart").replaceChildren(lineChart([pending]));
    set("export-chart-label", "pending events, the last " + pending.length + " s this page has seen (peak " +
      fmt(Math.max(...pending), 0) + ", limit " + fmt(s.pendingLimit, 0) + ")");
  }

  every(async () => {
    const s = await api("/status");
    renderFlow(s.group);
    renderSink(s.sink);
  });
})();
