// trial-ledger pages: the live SAE alert list (server-sent events) and the as-of selector.
// No framework, no CDN: the pages work offline.
"use strict";

(function () {
  function cell(text, className) {
    const td = document.createElement("td");
    td.textContent = text === null || text === undefined ? "–" : String(text);
    if (className) td.className = className;
    return td;
  }

  // The server's rendering of an instant: "2025-06-01 09:30:00.123 UTC".
  function instant(iso) {
    if (!iso) return null;
    const moment = new Date(iso);
    return isNaN(moment) ? iso : moment.toISOString().replace("T", " ").replace("Z", " UTC");
  }

  function alertRow(alert, patientBase) {
    const row = document.createElement("tr");
    row.className = "alert open new";
    row.dataset.alertId = alert.alert_id;
    row.dataset.status = "open";
    row.appendChild(cell("open", "status"));
    const who = document.createElement("td");
    const link = document.createElement("a");
    link.href = patientBase + encodeURIComponent(alert.patient_id) +
      "?site=" + encodeURIComponent(alert.site_id);
    link.className = "patient-link";
    link.textContent = alert.site_id + "/" + alert.patient_id;
    who.appendChild(link);
    row.appendChild(who);
    row.appendChild(cell(alert.term));
    row.appendChild(cell(alert.grade, "num"));
    row.appendChild(cell((alert.seriousness || []).join(", ")));
    row.appendChild(cell(alert.susar ? "yes" : "no"));
    row.appendChild(cell(instant(alert.awareness_at), "nowrap"));
    row.appendChild(cell(alert.acknowledgement_due));
    row.appendChild(cell(alert.report_due));
    row.appendChild(cell(alert.late_entry ? "yes" : "no"));
    row.appendChild(cell(alert.seq, "num"));
    return row;
  }

  function followAlerts(table) {
    const state = document.getElementById("stream-state");
    const body = table.tBodies[0];
    const source = new EventSource(table.dataset.stream);
    source.onopen = function () { if (state) state.textContent = "live"; };
    source.onerror = function () { if (state) state.textContent = "reconnecting…"; };
    source.addEventListener("sae_alert", function (message) {
      const alert = JSON.parse(message.data);
      if (body.querySelector('tr[data-alert-id="' + CSS.escape(alert.alert_id) + '"]')) return;
      body.insertBefore(alertRow(alert, table.dataset.patientBase), body.firstChild);
    });
    window.addEventListener("pagehide", function () { source.close(); });
  }

  function asOfSelector(form) {
    // An empty instant means "live": drop the parameter instead of sending as_of=.
    form.addEventListener("submit", function (event) {
      const input = form.querySelector('input[name="as_of"]');
      if (input && !input.value.trim()) {
        event.preventDefault();
        window.location.href = form.getAttribute("action") || window.location.pathname;
      }
    });
  }

  document.addEventListener("DOMContentLoaded", function () {
    const table = document.querySelector("table[data-stream]");
    if (table && window.EventSource) followAlerts(table);
    const form = document.getElementById("as-of-form");
    if (form) asOfSelector(form);
  });
})();
