// Exam check-in kiosk: a proctor leaves it open at the door of the exam room. The student types
// or scans their ID and looks at the camera; the page waits for one good face (quality route,
// nothing logged), sends that frame to check-in and shows a large admitted / refused verdict.
// With the gallery's liveness on it records a few seconds instead (liveness.js): in active mode
// the challenge's instructions ("Blink once", ...) show large over the camera, one at a time.
// The present / expected count and the session's alerts refresh on their own.
"use strict";

(() => {
  const { $, api, el } = FG;
  const video = $("camera"), form = $("checkin-form"), idInput = $("student-id"), select = $("session");
  const resultBox = $("result");
  let gallery = () => "";
  let sessions = [];
  let watcher = null, resetTimer = null, alertsTimer = null, cameraOn = false;
  const seenAlerts = new Set();

  const g = () => encodeURIComponent(gallery());
  const current = () => sessions.find((s) => s.code === select.value);

  async function loadSessions() {
    sessions = [];
    select.replaceChildren();
    if (!gallery()) return;
    try {
      sessions = await api(`/galleries/${g()}/exam-sessions`);
    } catch (err) {
      FG.say("advice", `Cannot list exam sessions: ${err.message}`, "error");
      return;
    }
    const now = Date.now();
    const open = (s) => new Date(s.starts_at).getTime() - s.checkin_opens_minutes * 60000 <= now && now <= new Date(s.ends_at).getTime();
    sessions.sort((a, b) => Number(open(b)) - Number(open(a)) || a.starts_at.localeCompare(b.starts_at));
    for (const s of sessions) {
      const o = el("option", `${s.code} · ${s.course}${s.room ? " · " + s.room : ""}${open(s) ? "" : " (closed)"}`);
      o.value = s.code;
      select.append(o);
    }
    const remembered = localStorage.getItem("facegate-kiosk-session");
    if (sessions.some((s) => s.code === remembered)) select.value = remembered;
    if (!sessions.length) FG.say("advice", "No exam session in this gallery.", "error");
    sessionChanged();
  }

  function sessionChanged() {
    seenAlerts.clear();
    $("alerts-list").replaceChildren();
    if (select.value) localStorage.setItem("facegate-kiosk-session", select.value);
    refreshCount();
    pollAlerts();
  }

  async function refreshCount() {
    const s = current();
    if (!s) { $("count").textContent = "Present - / -"; return; }
    try {
      const rows = await api(`/galleries/${g()}/exam-sessions/${encodeURIComponent(s.code)}/attendance?format=json`);
      const expected = s.students ? s.students.length : rows.length;
      const present = rows.filter((r) => r.status === "present").length;
      $("count").textContent = `Present ${present} / ${expected}`;
    } catch (err) {
      $("count").textContent = `Present ? (${err.message})`;
    }
  }

  async function pollAlerts() {
    clearTimeout(alertsTimer);
    const s = current();
    if (s) {
      try {
        const page = await api(`/galleries/${g()}/alerts?session_id=${s.id}&limit=50`);
        const fresh = page.items.filter((a) => !seenAlerts.has(a.id)).sort((a, b) => a.id - b.id);
        const list = $("alerts-list");
        for (const a of fresh) {  // oldest of the new first, each put on top: newest ends first
          seenAlerts.add(a.id);
          const li = el("li", "", `alert ${a.severity}`);
          li.append(el("span", FG.time(a.created_at), "when"), el("strong", a.kind), el("span", a.subject || ""),
            el("span", a.message, "msg"));
          list.prepend(li);
        }
      } catch (_) { /* shown by the count line already */ }
    }
    alertsTimer = setTimeout(pollAlerts, 4000);
  }

  async function ensureCamera() {
    if (cameraOn) return;
    await FG.startCamera(video);
    cameraOn = true;
  }

  function showResult(ok, title, who, message, score, liveness) {
    resultBox.hidden = false;
    resultBox.className = `result ${ok ? "admitted" : "refused"}`;
    $("result-title").textContent = title;
    $("result-who").textContent = who;
    $("result-message").textContent = message;
    $("result-score").textContent = score;
    $("result-score").hidden = !score;
    $("result-liveness").textContent = liveness;
    $("result-liveness").hidden = !liveness;
    clearTimeout(resetTimer);
    resetTimer = setTimeout(reset, 8000);
    idInput.value = "";
    idInput.focus();
  }

  function reset() {
    clearTimeout(resetTimer);
    resultBox.hidden = true;
    if (!watcher) FG.say("advice", "Enter a student ID to start.");
  }

  /** One check-in: the photo (liveness off) or a recording of the camera (liveness on). */
  async function send(s, studentId, blob, mode) {
    const body = new FormData();
    body.append("student_id", studentId);
    body.append("kiosk", "web kiosk");
    if (mode === "off") body.append("file", blob, "checkin.jpg");
    else {
      FG.say("advice", mode === "active" ? `${studentId}: follow the instruction over the camera.` : `${studentId}: hold on, recording...`);
      const { recording, challenge } = await FG.captureLiveness(video, gallery(), mode, studentId, $("prompt"));
      FG.appendRecording(body, recording, challenge);
    }
    FG.say("advice", "Checking...");
    return api(`/galleries/${g()}/exam-sessions/${encodeURIComponent(s.code)}/checkin`, { method: "POST", body });
  }

  async function checkin(studentId, blob) {
    const s = current();
    try {
      const mode = await FG.livenessMode(gallery());
      let r;
      try {
        r = await send(s, studentId, blob, mode);
      } catch (err) {  // liveness on, but this caller could not read the setting: record instead
        const needed = mode === "off" ? FG.recordingNeeded(err, gallery()) : null;
        if (!needed) throw err;
        r = await send(s, studentId, blob, needed);
      }
      const row = await nameOf(s, studentId);
      const notLive = r.status === "liveness_failed";
      const score = notLive ? "" : r.score === null || r.score === undefined ? "no face score"
        : `score ${FG.fmt(r.score)} ${r.score >= r.threshold ? "≥" : "<"} threshold ${FG.fmt(r.threshold)}`;
      showResult(r.admitted, r.admitted ? "Admitted" : "Not admitted", `${row || ""} ${studentId}`.trim(),
        notLive ? "liveness_failed: enter the ID again and follow the instruction over the camera" : `${r.status}: ${r.message}`,
        score, FG.livenessLine(r.liveness));
    } catch (err) {
      showResult(false, "Not admitted", studentId, err.message, "", "");
    }
    FG.say("advice", "Next student: enter an ID.");
    refreshCount();
    setTimeout(pollAlerts, 300);
  }

  async function nameOf(s, studentId) {
    try {
      const rows = await api(`/galleries/${g()}/exam-sessions/${encodeURIComponent(s.code)}/attendance?format=json`);
      const row = rows.find((r) => r.student_id === studentId);
      return row ? row.name : "";
    } catch (_) { return ""; }
  }

  async function start(e) {
    e.preventDefault();
    const studentId = idInput.value.trim();
    if (!studentId || !current()) {
      FG.say("advice", !current() ? "Choose an exam session first." : "Enter a student ID first.", "error");
      (current() ? idInput : select).focus();
      return;
    }
    reset();
    if (watcher) watcher.stop();
    try { await ensureCamera(); } catch (err) { FG.say("advice", `Camera: ${err.message}`, "error"); return; }
    FG.say("advice", `${studentId}: look at the camera.`);
    watcher = FG.watch(video, gallery, {
      onAdvice: (text) => { if (text) FG.say("advice", `${studentId}: ${text}`, "warn"); },
      onGood: async (blob) => { watcher = null; await checkin(studentId, blob); return true; },
    });
  }

  form.addEventListener("submit", start);
  select.addEventListener("change", sessionChanged);
  document.addEventListener("keydown", (e) => {
    if (!resultBox.hidden && !e.repeat) reset();
  });
  gallery = FG.accessBar(() => {
    loadSessions();
    ensureCamera().catch((err) => FG.say("advice", `Camera: ${err.message}`, "error"));
  });
})();
