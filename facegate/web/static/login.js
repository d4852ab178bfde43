// Face login: the person presses Log in (face alone, or username + password + face), the page
// waits for one good face in view and sends that frame. On success the token is kept in this
// tab only (sessionStorage) and the signed-in view shows whose it is (GET /auth/session) and
// when it ends, with a countdown; Log out forgets it. With the gallery's liveness on, the page
// records a few seconds instead of one frame (liveness.js; active: follow the instructions).
"use strict";

(() => {
  const { $, api } = FG;
  const TOKEN = "facegate-login-token";
  const video = $("camera"), form = $("login-form");
  let gallery = () => "";
  let watcher = null, tick = null;

  const mode = () => (document.querySelector("input[name=mode]:checked") || {}).value || "face";

  function modeChanged() {
    const withPassword = mode() === "password";
    $("credentials").hidden = !withPassword;
    $("username").required = withPassword;
    $("password").required = withPassword;
  }

  function showResult(ok, title, reason, r) {
    const box = $("result");
    box.hidden = false;
    box.className = `result ${ok ? "admitted" : "refused"}`;
    $("result-title").textContent = title;
    $("result-reason").textContent = reason;
    $("result-score").textContent = r && r.score !== null && r.score !== undefined
      ? `score ${FG.fmt(r.score)} ${r.score >= r.threshold ? "≥" : "<"} threshold ${FG.fmt(r.threshold)}` : "";
    $("result-liveness").textContent = FG.livenessLine(r && r.liveness);
    $("result-liveness").hidden = !(r && r.liveness);
  }

  /** One try: the photo (liveness off) or a recording of the camera (liveness on, liveness.js). */
  async function send(blob, live) {
    const body = new FormData();
    let path = `/galleries/${encodeURIComponent(gallery())}/login/face`;
    if (mode() === "password") {
      body.append("username", $("username").value);
      body.append("password", $("password").value);
      path = `/galleries/${encodeURIComponent(gallery())}/login`;
    }
    if (live === "off") body.append("file", blob, "login.jpg");
    else {
      FG.say("advice", live === "active" ? "Follow the instruction over the camera." : "Hold on, recording...");
      const { recording, challenge } = await FG.captureLiveness(video, gallery(), live, null, $("prompt"));
      FG.appendRecording(body, recording, challenge);
    }
    FG.say("advice", "Checking...");
    return api(path, { method: "POST", body });
  }

  async function login(blob) {
    let r;
    try {
      const live = await FG.livenessMode(gallery());
      try {
        r = await send(blob, live);
      } catch (err) {  // liveness on, but this caller could not read the setting: record instead
        const needed = live === "off" ? FG.recordingNeeded(err, gallery()) : null;
        if (!needed) throw err;
        r = await send(blob, needed);
      }
    } catch (err) {
      r = err.problem && "authenticated" in err.problem ? err.problem : null;
      if (!r) { showResult(false, "Not logged in", err.message); FG.say("advice", "Press Log in to try again."); return; }
    }
    $("password").value = "";
    if (r.authenticated) {
      showResult(true, `Welcome, ${r.username}`, r.reason || "recognised", r);
      sessionStorage.setItem(TOKEN, r.token);
      await showSession();
    } else {
      showResult(false, "Not logged in", r.reason || "not recognised", r);
      FG.say("advice", "Press Log in to try again.");
    }
  }

  async function showSession() {
    const token = sessionStorage.getItem(TOKEN);
    if (!token) return;
    let claims;
    try {
      claims = await api("/auth/session", { headers: { "X-Session-Token": token } });
    } catch (err) {
      sessionStorage.removeItem(TOKEN);
      showResult(false, "Session ended", err.message);
      return;
    }
    FG.stopCamera(video);
    $("login-panel").hidden = true;
    video.closest("section").hidden = true;
    $("signed-in").hidden = false;
    $("me-username").textContent = claims.username;
    $("me-detail").textContent = `(gallery ${claims.gallery}, by ${claims.method}, since ${FG.time(claims.issued_at)})`;
    $("me-expires").textContent = FG.time(claims.expires_at);
    const ends = new Date(claims.expires_at).getTime();
    clearInterval(tick);
    const update = () => {
      const left = Math.max(0, Math.round((ends - Date.now()) / 1000));
      $("countdown").textContent = `${Math.floor(left / 60)} min ${String(left % 60).padStart(2, "0")} s`;
      if (!left) logout("Your session has ended: log in again.");
    };
    update();
    tick = setInterval(update, 1000);
    $("signed-h").focus();
  }

  function logout(message = "Logged out: the token is forgotten.") {
    clearInterval(tick);
    sessionStorage.removeItem(TOKEN);
    $("signed-in").hidden = true;
    $("login-panel").hidden = false;
    video.closest("section").hidden = false;
    $("result").hidden = true;
    FG.say("advice", message);
    $("start").focus();
  }

  async function start(e) {
    e.preventDefault();
    if (!gallery()) { FG.say("advice", "Choose a gallery first.", "error"); $("gallery").focus(); return; }
    if (mode() === "password" && (!$("username").value || !$("password").value)) {
      FG.say("advice", "Enter your username and password, or choose face alone.", "error");
      $(!$("username").value ? "username" : "password").focus();
      return;
    }
    $("result").hidden = true;
    if (watcher) watcher.stop();
    try {
      if (!video.srcObject) await FG.startCamera(video);
    } catch (err) { FG.say("advice", `Camera: ${err.message}`, "error"); return; }
    FG.say("advice", "Look at the camera.");
    watcher = FG.watch(video, gallery, {
      onAdvice: (text) => { if (text) FG.say("advice", text, "warn"); },
      onGood: async (blob) => { watcher = null; await login(blob); return true; },
    });
  }

  for (const r of document.querySelectorAll("input[name=mode]")) r.addEventListener("change", modeChanged);
  form.addEventListener("submit", start);
  $("logout").addEventListener("click", () => logout());
  gallery = FG.accessBar(() => {});
  modeChanged();
  showSession();
})();
