// The door: a camera preview; when one good face is in view (or on a click) a frame goes to
// POST .../access/check with the right asked for, and the answer fills the screen: GRANTED in
// green or DENIED in red, with who, which right, and why. With the gallery's liveness on, a
// recording goes instead of the frame (liveness.js: active shows the challenge over the camera).
"use strict";

(() => {
  const $ = FG.$;
  const video = $("door-video");
  const say = (text, error = false) => FG.say("door-status", text, error ? "error" : "");
  const g = () => encodeURIComponent($("door-gallery").value);
  const PAUSE_MS = 4000; // after a verdict, before the next automatic check
  let busy = false;
  let pausedUntil = 0;
  let running = false;

  async function loadGalleries() {
    const page = await FG.api("/galleries?limit=500");
    const keep = FG.galleryName();
    $("door-gallery").replaceChildren(...page.items.map((x) => new Option(x.name, x.name)));
    if (page.items.some((x) => x.name === keep)) $("door-gallery").value = keep;
  }

  /** The faces of a frame with their quality (the gallery's own detector). */
  async function faces(blob) {
    const form = new FormData();
    form.append("photo", blob, "frame.jpg");
    try {
      return await FG.api(`/galleries/${g()}/quality`, { method: "POST", body: form });
    } catch (err) {
      if (err.status !== 404 && err.status !== 405) throw err;
      const detect = new FormData();
      detect.append("file", blob, "frame.jpg");
      return FG.api("/detect", { method: "POST", body: detect });
    }
  }

  function verdict(r) {
    $("verdict").className = "verdict " + (r.granted ? "granted" : "denied");
    $("verdict-word").textContent = r.granted ? "GRANTED" : "DENIED";
    $("verdict-who").textContent = r.subject ? `${r.display_name || r.subject} (${r.subject})` : "Not recognised";
    $("verdict-right").textContent = `Right: ${r.right || "any"}${r.rights && r.rights.length ? ` (holds ${r.rights.join(", ")})` : ""}`;
    $("verdict-liveness").textContent = FG.livenessLine(r.liveness);
    $("verdict-reason").textContent = `${r.reason}${r.score !== null && r.score !== undefined ? ` (score ${r.score.toFixed(3)}, threshold ${r.threshold.toFixed(3)})` : ""}`;
  }

  /** One access check: the photo (liveness off) or a recording (liveness on, liveness.js). */
  async function ask(blob, live) {
    const form = new FormData();
    if (live === "off") form.append("file", blob || (await FG.grab(video)), "door.jpg");
    else {
      $("door-advice").textContent = live === "active" ? "follow the instruction over the camera" : "hold on, recording…";
      const { recording, challenge } = await FG.captureLiveness(video, $("door-gallery").value, live, null, $("prompt"));
      FG.appendRecording(form, recording, challenge);
      $("door-advice").textContent = "checking…";
    }
    form.append("right", $("door-right").value.trim());
    if ($("door-where").value.trim()) form.append("where", $("door-where").value.trim());
    return FG.api(`/galleries/${g()}/access/check`, { method: "POST", body: form });
  }

  async function check(blob) {
    busy = true;
    try {
      const gallery = $("door-gallery").value;
      const live = await FG.livenessMode(gallery);
      let r;
      try {
        r = await ask(blob, live);
      } catch (err) {  // liveness on, but this caller could not read the setting: record instead
        const needed = live === "off" ? FG.recordingNeeded(err, gallery) : null;
        if (!needed) throw err;
        r = await ask(blob, needed);
      }
      verdict(r);
      pausedUntil = Date.now() + PAUSE_MS;
    } catch (err) {
      say(err.message, true);
    } finally {
      busy = false;
    }
  }

  async function watch() {
    while (running) {
      await new Promise((ok) => setTimeout(ok, 700));
      if (!running || busy || !$("door-auto").checked || Date.now() < pausedUntil || !video.videoWidth) continue;
      busy = true;
      try {
        const frame = await FG.grab(video);
        const found = await faces(frame);
        const advice = FG.advice(found);
        $("door-advice").textContent = advice || "one good face in view: checking…";
        busy = false;
        if (!advice) await check(frame);
      } catch (err) {
        busy = false;
        say(err.message, true);
      }
    }
  }

  $("door-start").addEventListener("click", async () => {
    try {
      await FG.startCamera(video);
      $("door-check").disabled = false;
      $("door-start").disabled = true;
      say("camera on");
      running = true;
      watch();
    } catch (err) { say(`camera: ${err.message}`, true); }
  });
  $("door-check").addEventListener("click", () => { if (!busy) check(); });
  $("door-form").addEventListener("submit", (e) => { e.preventDefault(); if (!busy && video.videoWidth) check(); });
  $("door-gallery").addEventListener("change", () => FG.setGallery($("door-gallery").value));

  (async () => {
    const me = await FG.whoami().catch(() => null);
    if (!me && !sessionStorage.getItem("facegate-key")) { say("Sign in first (Sign in page), or use a door API key on the admin page.", true); return; }
    try { await loadGalleries(); } catch (err) { say(err.message, true); }
  })();
})();
