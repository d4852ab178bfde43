// The door: a camera preview; when one good face is in view (or on a click) a frame goes to
// POST .../access/check with the right asked for, and the answer fills the screen: GRANTED in
// green or DENIED in red, with who, which right, and why.
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
    $("verdict-reason").textContent = `${r.reason}${r.score !== null && r.score !== undefined ? ` (score ${r.score.toFixed(3)}, threshold ${r.threshold.toFixed(3)})` : ""}`;
  }

  async function check(blob) {
    busy = true;
    try {
      const form = new FormData();
      form.append("file", blob || (await FG.grab(video)), "door.jpg");
      form.append("right", $("door-right").value.trim());
      if ($("door-where").value.trim()) form.append("where", $("door-where").value.trim());
      verdict(await FG.api(`/galleries/${g()}/access/check`, { method: "POST", body: form }));
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
