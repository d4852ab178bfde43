// The admin page: every value comes from the REST API; text is set with textContent, never HTML.
"use strict";
const api = (path, options = {}) => {
  const key = sessionStorage.getItem("facegate-key") || "";
  return fetch("/api/v1" + path, { ...options, headers: { "X-API-Key": key, ...(options.headers || {}) } })
    .then(async (r) => {
      const body = r.headers.get("content-type")?.includes("json") ? await r.json() : await r.text();
      if (!r.ok) throw new Error((body && body.detail) || `HTTP ${r.status}`);
      return body;
    });
};
const $ = (id) => document.getElementById(id);
const say = (text, error = false) => { $("status").textContent = text; $("status").className = error ? "error" : ""; };
const fmt = (v, digits = 3) => (v === null || v === undefined ? "-" : typeof v === "number" ? v.toFixed(digits) : String(v));
const gallery = () => encodeURIComponent($("gallery").value);

function fill(tableId, rows, cells, rowClass) {
  const body = $(tableId).querySelector("tbody");
  body.replaceChildren();
  for (const row of rows) {
    const tr = document.createElement("tr");
    if (rowClass) tr.className = rowClass(row);
    for (const cell of cells(row)) {
      const td = document.createElement("td");
      if (cell instanceof Node) td.append(cell); else if (cell && cell.cls) { td.textContent = cell.text; td.className = cell.cls; } else td.textContent = cell;
      tr.append(td);
    }
    body.append(tr);
  }
}

function button(label, onClick) {
  const b = document.createElement("button");
  b.textContent = label;
  b.addEventListener("click", onClick);
  return b;
}

async function loadGalleries() {
  const page = await api("/galleries?limit=500");
  const select = $("gallery");
  select.replaceChildren(...page.items.map((g) => new Option(`${g.name} (${g.model_id}, ${g.subjects} subjects)`, g.name)));
  say(`${page.items.length} galleries`);
  if (page.items.length) await refresh();
}

async function loadAlerts() {
  const unacked = $("unacked-only").checked ? "&unacknowledged=true" : "";
  const page = await api(`/galleries/${gallery()}/alerts?limit=100${unacked}`);
  fill("alerts", page.items, (a) => [
    a.id, a.created_at.replace("T", " ").slice(0, 19), a.kind, a.severity, a.subject || "-", a.message, a.delivery_status,
    a.acknowledged_at ? `ack: ${a.acknowledged_by}` : button("Acknowledge", async () => {
      await api(`/galleries/${gallery()}/alerts/${a.id}/ack`, {
        method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify({ by: "admin page" }) });
      await loadAlerts();
    }),
  ], (a) => (a.acknowledged_at ? "acked" : a.severity === "critical" ? "critical" : ""));
}

async function loadLockouts() {
  const locks = await api(`/galleries/${gallery()}/lockouts`);
  fill("lockouts", locks, (l) => [l.identity, l.locked_at.replace("T", " ").slice(0, 19), l.reason,
    button("Clear", async () => { await api(`/galleries/${gallery()}/lockouts/${encodeURIComponent(l.identity)}?by=admin%20page`, { method: "DELETE" }); await loadLockouts(); })]);
}

async function loadDrift() {
  const q = `reference_last=${$("reference-last").value}&recent_last=${$("recent-last").value}`;
  const report = await api(`/galleries/${gallery()}/monitoring/drift?${q}`);
  $("drift-summary").textContent = report.drifted
    ? `Drift in: ${report.drifted_features.join(", ")} (reference ${report.reference.decisions} decisions, recent ${report.recent.decisions})`
    : `No drift between the windows (reference ${report.reference.decisions} decisions, recent ${report.recent.decisions}).`;
  fill("drift", report.features, (f) => [f.feature, f.reference_n, f.recent_n, fmt(f.psi), `${fmt(f.statistic)} (${f.test})`,
    fmt(f.p_value, 4), { text: f.drifted ? "yes" : (f.enough_samples ? "no" : "too few"), cls: f.drifted ? "yes" : "no" }]);
}

function calibrationCell(text) {
  // "name: where it was measured": the name in the table, the whole provenance on hover.
  const span = document.createElement("span");
  span.textContent = text.split(":")[0];
  span.title = text;
  return span;
}

async function loadDecisions() {
  const page = await api(`/galleries/${gallery()}/decisions?limit=20`);
  fill("decisions", page.items, (d) => [d.id, d.created_at.replace("T", " ").slice(0, 19), d.kind, d.outcome, d.subject || "-",
    fmt(d.score), fmt(d.threshold), calibrationCell(d.calibration)]);
}

async function loadCalibration() {
  const g = await api(`/galleries/${gallery()}`);
  const c = g.active_calibration;
  $("calibration").textContent = c
    ? `Calibration in use: ${c.calibration.split(":")[0]} (verify threshold ${fmt(c.threshold, 4)} at FAR ${c.target_rate})`
    : "No calibration matches this gallery's model: re-enroll it.";
  $("calibration").title = c ? c.calibration : "";
}

async function refresh() {
  for (const load of [loadCalibration, loadAlerts, loadLockouts, loadDrift, loadDecisions]) {
    try { await load(); } catch (e) { say(`${load.name.replace("load", "")}: ${e.message}`, true); }
  }
}

$("key-form").addEventListener("submit", async (e) => {
  e.preventDefault();
  sessionStorage.setItem("facegate-key", $("api-key").value.trim());
  try { await loadGalleries(); } catch (err) { say(err.message, true); }
});
$("gallery").addEventListener("change", refresh);
$("unacked-only").addEventListener("change", loadAlerts);
$("drift-form").addEventListener("submit", (e) => { e.preventDefault(); loadDrift().catch((err) => say(err.message, true)); });
if (sessionStorage.getItem("facegate-key")) loadGalleries().catch((err) => say(err.message, true));
