// Live recognition: frames of the camera or of a local video file go to the server's WebSocket
// as JPEG, about five a second, one at a time (the next leaves when the answer is back, so a
// slow server lowers the rate instead of queueing). Each answer's faces are drawn on a canvas
// over the video: named faces green, unknown ones red, undecided tracks grey.
"use strict";

(() => {
  const { $, el } = FG;
  const FPS = 5;
  const video = $("camera"), canvas = $("boxes"), ctx = canvas.getContext("2d");
  let gallery = () => "";
  let ws = null, running = false, sentAt = 0, fileUrl = null, timer = null;
  const times = [];  // arrival times of the last answers, for the frame rate

  const source = () => (document.querySelector("input[name=source]:checked") || {}).value || "camera";

  function sourceChanged() {
    $("video-file").disabled = source() !== "file";
  }

  function colour(face) {
    return face.subject ? "#2e7d32" : face.state === "unknown" ? "#c62828" : "#6b7280";
  }

  function label(face) {
    if (face.subject) return `${face.display_name || face.subject}${face.score !== null && face.score !== undefined ? " " + face.score.toFixed(2) : ""}`;
    return face.state === "unknown" ? "unknown" : "...";
  }

  function draw(faces) {
    canvas.width = video.videoWidth || 640;
    canvas.height = video.videoHeight || 480;
    ctx.clearRect(0, 0, canvas.width, canvas.height);
    const line = Math.max(2, canvas.width / 240);
    ctx.font = `${Math.round(canvas.width / 32)}px system-ui, sans-serif`;
    for (const f of faces) {
      const [x1, y1, x2, y2] = f.box;
      ctx.strokeStyle = colour(f);
      ctx.lineWidth = line;
      ctx.strokeRect(x1, y1, x2 - x1, y2 - y1);
      const text = label(f);
      const h = Math.round(canvas.width / 26);
      const w = ctx.measureText(text).width + 12;
      const top = y1 - h >= 0 ? y1 - h : y2;
      ctx.fillStyle = colour(f);
      ctx.fillRect(x1 - line / 2, top, w, h);
      ctx.fillStyle = "#fff";
      ctx.fillText(text, x1 + 6, top + h * 0.75);
    }
    const names = [...new Set(faces.map((f) => (f.subject ? f.display_name || f.subject : f.state === "unknown" ? "unknown" : null)).filter(Boolean))];
    const list = $("in-view");
    list.replaceChildren(...names.map((n) => el("li", n, n === "unknown" ? "unknown" : "known")));
    if (!names.length) list.append(el("li", faces.length ? "recognising..." : "nobody", "pending"));
  }

  function url() {
    const proto = location.protocol === "https:" ? "wss:" : "ws:";
    const params = new URLSearchParams({ fps: String(FPS) });
    if (FG.apiKey()) params.set("api_key", FG.apiKey());
    return `${proto}//${location.host}/api/v1/galleries/${encodeURIComponent(gallery())}/live?${params}`;
  }

  async function send() {
    if (!running || !ws || ws.readyState !== WebSocket.OPEN) return;
    if (!video.videoWidth || video.paused && source() === "file") { timer = setTimeout(send, 200); return; }
    const blob = await FG.grab(video, 0.8);
    if (!running) return;
    sentAt = performance.now();
    ws.send(await blob.arrayBuffer());
  }

  function onMessage(e) {
    const now = performance.now();
    let msg;
    try { msg = JSON.parse(e.data); } catch (_) { return; }
    if (msg.error && msg.frame === undefined) { stop(`Refused: ${msg.detail || msg.error}`, "error"); return; }
    if (msg.error) FG.say("status", `Frame ${msg.frame}: ${msg.detail}`, "warn");
    else {
      draw(msg.faces);
      FG.say("status", `Recognising: frame ${msg.frame}.`);
    }
    times.push(now);
    while (times.length > 10) times.shift();
    const fps = times.length > 1 ? (times.length - 1) / ((times[times.length - 1] - times[0]) / 1000) : 0;
    $("stats").textContent = `${fps.toFixed(1)} fps · latency ${Math.round(now - sentAt)} ms`;
    clearTimeout(timer);
    timer = setTimeout(send, Math.max(0, 1000 / FPS - (now - sentAt)));
  }

  async function start(e) {
    e.preventDefault();
    if (!gallery()) { FG.say("status", "Choose a gallery first.", "error"); $("gallery").focus(); return; }
    stop();
    try {
      if (source() === "file") {
        const file = $("video-file").files[0];
        if (!file) { FG.say("status", "Choose a video file first.", "error"); $("video-file").focus(); return; }
        fileUrl = URL.createObjectURL(file);
        video.src = fileUrl;
        await video.play();
      } else {
        await FG.startCamera(video);
      }
    } catch (err) {
      FG.say("status", `Cannot play the source: ${err.message}`, "error");
      return;
    }
    running = true;
    times.length = 0;
    ws = new WebSocket(url());
    ws.addEventListener("open", () => { FG.say("status", "Connected: sending frames."); send(); });
    ws.addEventListener("message", onMessage);
    ws.addEventListener("close", (ev) => { if (running) stop(`Connection closed (${ev.code}${ev.reason ? ": " + ev.reason : ""}).`, "error"); });
    $("start").disabled = true;
    $("stop").disabled = false;
  }

  function stop(message = "Stopped.", kind = "") {
    const wasRunning = running;
    running = false;
    clearTimeout(timer);
    if (ws) { ws.close(); ws = null; }
    FG.stopCamera(video);
    if (fileUrl) { video.pause(); video.removeAttribute("src"); video.load(); URL.revokeObjectURL(fileUrl); fileUrl = null; }
    ctx.clearRect(0, 0, canvas.width, canvas.height);
    $("start").disabled = false;
    $("stop").disabled = true;
    if (wasRunning || kind) FG.say("status", message, kind);
  }

  for (const r of document.querySelectorAll("input[name=source]")) r.addEventListener("change", sourceChanged);
  $("live-form").addEventListener("submit", start);
  $("stop").addEventListener("click", () => { stop(); $("start").focus(); });
  gallery = FG.accessBar(() => {});
  sourceChanged();
})();
