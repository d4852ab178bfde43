// Administration sections about what happens: exam sessions and attendance, alerts, lockouts,
// the decision log, drift, and the models with their licences.
"use strict";

(() => {
  const $ = FG.$;
  const { g, say, day } = Admin;

  // -- exam sessions and attendance -------------------------------------------------------------
  let exam = null;

  async function loadExams() {
    const sessions = await FG.api(`/galleries/${g()}/exam-sessions`);
    FG.fill("exams", sessions, (x) => [x.code, x.course, x.room || "-", day(x.starts_at), day(x.ends_at), x.online ? "yes" : "no",
      x.students ? x.students.length : "all", FG.button("Attendance", () => showAttendance(x.code))],
    (x) => (x.code === exam ? "selected" : ""));
    if (exam) await showAttendance(exam);
  }
  Admin.loaders.exams = loadExams;

  async function showAttendance(code) {
    exam = code;
    const rows = await FG.api(`/galleries/${g()}/exam-sessions/${encodeURIComponent(code)}/attendance?format=json`);
    $("attendance-box").classList.remove("hidden");
    $("attendance-code").textContent = code;
    const columns = rows.length ? Object.keys(rows[0]) : ["student_id", "status"];
    $("attendance").querySelector("thead tr").replaceChildren(...columns.map((c) => FG.el("th", c.replaceAll("_", " "))));
    FG.fill("attendance", rows, (r) => columns.map((c) => (c === "status" ? { text: r[c], cls: r[c] === "present" ? "no" : "yes" } : r[c])));
  }

  $("attendance-csv").addEventListener("click", async () => {
    if (!exam) return;
    try {
      await FG.download(`/galleries/${g()}/exam-sessions/${encodeURIComponent(exam)}/attendance?format=csv`, `attendance-${exam}.csv`);
      say(`attendance-${exam}.csv downloaded`);
    } catch (err) { say(err.message, true); }
  });

  const localInput = (date) => new Date(date.getTime() - date.getTimezoneOffset() * 60000).toISOString().slice(0, 16);
  if (!$("exam-starts").value) {
    const start = new Date(Date.now() + 3600e3);
    start.setMinutes(0, 0, 0);
    $("exam-starts").value = localInput(start);
    $("exam-ends").value = localInput(new Date(start.getTime() + 2 * 3600e3));
  }

  $("exam-create").addEventListener("submit", async (e) => {
    e.preventDefault();
    const body = {
      code: $("exam-code").value.trim(), course: $("exam-course").value.trim(), room: $("exam-room").value.trim(),
      starts_at: new Date($("exam-starts").value).toISOString(), ends_at: new Date($("exam-ends").value).toISOString(),
      online: $("exam-online").checked,
    };
    try {
      await FG.api(`/galleries/${g()}/exam-sessions`, { method: "POST", body });
      say(`exam session ${body.code} created`);
      $("exam-code").value = "";
      await loadExams();
    } catch (err) { say(err.message, true); }
  });

  // -- alerts and lockouts ------------------------------------------------------------------------
  async function loadAlerts() {
    const unacked = $("unacked-only").checked ? "&unacknowledged=true" : "";
    const page = await FG.api(`/galleries/${g()}/alerts?limit=100${unacked}`);
    FG.fill("alerts", page.items, (a) => [
      a.id, day(a.created_at), a.kind, a.severity, a.subject || "-", a.message, a.delivery_status,
      a.acknowledged_at ? `ack: ${a.acknowledged_by}` : FG.button("Acknowledge", async () => {
        const who = Admin.me() ? Admin.me().username : "admin page";
        try { await FG.api(`/galleries/${g()}/alerts/${a.id}/ack`, { method: "POST", body: { by: who } }); await loadAlerts(); } catch (err) { say(err.message, true); }
      }),
    ], (a) => (a.acknowledged_at ? "acked" : a.severity === "critical" ? "critical" : ""));
  }
  Admin.loaders["alerts-tab"] = loadAlerts;
  $("unacked-only").addEventListener("change", () => Admin.load("alerts-tab"));

  async function loadLockouts() {
    const locks = await FG.api(`/galleries/${g()}/lockouts`);
    FG.fill("lockouts", locks, (l) => [l.identity, day(l.locked_at), l.reason,
      FG.button("Clear", async () => {
        const who = encodeURIComponent(Admin.me() ? Admin.me().username : "admin page");
        try { await FG.api(`/galleries/${g()}/lockouts/${encodeURIComponent(l.identity)}?by=${who}`, { method: "DELETE" }); await loadLockouts(); } catch (err) { say(err.message, true); }
      })]);
    if (!locks.length) FG.fill("lockouts", [null], () => [{ text: "Nobody is locked out.", cls: "muted" }, "", "", ""]);
  }
  Admin.loaders["lockouts-tab"] = loadLockouts;

  // -- decision log -----------------------------------------------------------------------------------
  let decisionsCursor = null;
  const kinds = new Set();

  function calibrationCell(text) {
    // "name: where it was measured": the name in the table, the whole provenance on hover.
    const span = FG.el("span", (text || "-").split(":")[0]);
    span.title = text || "";
    return span;
  }

  async function loadDecisions(more = false) {
    const kind = $("decision-kind").value.trim();
    const cursor = more && decisionsCursor ? `&cursor=${encodeURIComponent(decisionsCursor)}` : "";
    const page = await FG.api(`/galleries/${g()}/decisions?limit=50${kind ? `&kind=${encodeURIComponent(kind)}` : ""}${cursor}`);
    const body = $("decisions").querySelector("tbody");
    const kept = more ? [...body.children] : [];
    FG.fill("decisions", page.items, (d) => [d.id, day(d.created_at), d.kind, d.outcome, d.subject || "-",
      FG.fmt(d.score), FG.fmt(d.threshold), calibrationCell(d.calibration)]);
    body.prepend(...kept);
    decisionsCursor = page.next_cursor;
    $("decisions-more").disabled = !decisionsCursor;
    for (const d of page.items) kinds.add(d.kind);
    $("decision-kinds").replaceChildren(...[...kinds].sort().map((k) => new Option(k, k)));
  }
  Admin.loaders["decisions-tab"] = () => loadDecisions(false);
  $("decisions-form").addEventListener("submit", (e) => { e.preventDefault(); Admin.load("decisions-tab"); });
  $("decisions-more").addEventListener("click", () => loadDecisions(true).catch((err) => say(err.message, true)));

  // -- drift --------------------------------------------------------------------------------------------
  async function loadDrift() {
    const q = `reference_last=${encodeURIComponent($("reference-last").value)}&recent_last=${encodeURIComponent($("recent-last").value)}`;
    const report = await FG.api(`/galleries/${g()}/monitoring/drift?${q}`);
    const counts = `reference ${report.reference.decisions} decisions, recent ${report.recent.decisions}`;
    const measured = report.features.filter((f) => f.enough_samples);
    let text;
    let cls = "";
    if (report.drifted) {
      text = `Drift in: ${report.drifted_features.join(", ")} (${counts})`;
      cls = "error";
    } else if (!report.reference.decisions || !report.recent.decisions || !measured.length) {
      // An empty or tiny window shows nothing either way: never call that "no drift".
      text = `Not enough data to tell: ${counts}; each window needs at least ${report.limits.min_samples ?? 20} values per feature.`;
    } else {
      const unmeasured = report.features.length - measured.length;
      text = `No drift found in the ${measured.length} feature(s) with enough data (${counts})` +
        (unmeasured ? `; not enough data for ${unmeasured} other(s).` : ".");
      cls = "ok";
    }
    FG.say("drift-summary", text, cls);
    FG.fill("drift", report.features, (f) => [f.feature, f.reference_n, f.recent_n, FG.fmt(f.psi), `${FG.fmt(f.statistic)} (${f.test})`,
      FG.fmt(f.p_value, 4), { text: f.drifted ? "yes" : (f.enough_samples ? "no" : "not enough data"), cls: f.drifted ? "yes" : (f.enough_samples ? "no" : "muted") }]);
  }
  Admin.loaders["drift-tab"] = loadDrift;
  $("drift-form").addEventListener("submit", (e) => { e.preventDefault(); Admin.load("drift-tab"); });

  // -- models and licences ------------------------------------------------------------------------
  async function loadModels() {
    const models = await FG.api("/models");
    FG.fill("models-table", models, (m) => [m.key, m.role,
      { text: m.commercial_use ? "commercial OK" : "research only", cls: m.commercial_use ? "no" : "yes" },
      { text: m.checksum === "ok" ? `ok ${m.sha256.slice(0, 12)}` : m.checksum, cls: ["ok", "built in"].includes(m.checksum) ? "" : "yes" },
      m.used_by.length ? m.used_by.join(", ") : "-", m.licence, m.file]);
  }
  loadModels.needsGallery = false;
  Admin.loaders.models = loadModels;
})();
