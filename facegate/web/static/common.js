// What every FaceGate page shares: the API call (operator session cookie + CSRF token, or an
// API key for kiosks and machines), the camera, tables and buttons. Text from data is always
// set with textContent, never HTML.
"use strict";

const FG = (() => {
  const KEY = "facegate-key";
  const GALLERY = "facegate-gallery";
  const cookie = (name) => {
    const hit = document.cookie.split("; ").find((c) => c.startsWith(name + "="));
    return hit ? decodeURIComponent(hit.slice(name.length + 1)) : "";
  };

  /** Call /api/v1 + path. A FormData or object body is sent as multipart or JSON. Errors carry
   * the server's problem detail (err.problem) and HTTP status (err.status). */
  async function api(path, options = {}) {
    const headers = { ...(options.headers || {}) };
    const key = sessionStorage.getItem(KEY);
    if (key) headers["X-API-Key"] = key;
    const method = (options.method || "GET").toUpperCase();
    if (method !== "GET" && method !== "HEAD") {
      const csrf = cookie("fg_csrf");
      if (csrf) headers["X-CSRF-Token"] = csrf;
    }
    let body = options.body;
    if (body && !(body instanceof FormData) && !(body instanceof Blob) && typeof body !== "string") {
      body = JSON.stringify(body);
      headers["Content-Type"] = "application/json";
    }
    // No call waits for ever: a request the server never answers ends with a clear error.
    const abort = new AbortController();
    const timer = setTimeout(() => abort.abort(), options.timeoutMs || 120000);
    let r;
    try {
      r = await fetch("/api/v1" + path, { ...options, method, headers, body, credentials: "same-origin", signal: abort.signal });
    } catch (err) {
      if (abort.signal.aborted) throw new Error(`the server did not answer within ${Math.round((options.timeoutMs || 120000) / 1000)} s; try again`);
      throw err;
    } finally {
      clearTimeout(timer);
    }
    const type = r.headers.get("content-type") || "";
    const data = type.includes("json") ? await r.json() : await r.text();
    if (!r.ok) {
      const err = new Error((data && data.detail) || `HTTP ${r.status}`);
      err.status = r.status;
      err.problem = typeof data === "object" ? data : null;
      throw err;
    }
    return data;
  }

  const $ = (id) => document.getElementById(id);
  const fmt = (v, digits = 3) => (v === null || v === undefined ? "-" : typeof v === "number" ? v.toFixed(digits) : String(v));
  const time = (iso) => (iso ? new Date(iso).toLocaleString() : "-");

  function say(el, text, kind = "") {
    const target = typeof el === "string" ? $(el) : el;
    target.textContent = text;
    target.className = kind;
  }

  function el(tag, text = "", cls = "") {
    const node = document.createElement(tag);
    if (text !== "") node.textContent = text;
    if (cls) node.className = cls;
    return node;
  }

  function button(label, onClick, cls = "") {
    const b = el("button", label, cls);
    b.type = "button";
    b.addEventListener("click", onClick);
    return b;
  }

  /** Replace a table's body with one row a record; a cell is text, a Node or {text, cls}. */
  function fill(table, rows, cells, rowClass) {
    const body = (typeof table === "string" ? $(table) : table).querySelector("tbody");
    body.replaceChildren();
    for (const row of rows) {
      const tr = document.createElement("tr");
      if (rowClass) tr.className = rowClass(row) || "";
      for (const cell of cells(row)) {
        const td = document.createElement("td");
        if (cell instanceof Node) td.append(cell);
        else if (cell && typeof cell === "object") { td.textContent = cell.text; td.className = cell.cls || ""; }
        else td.textContent = cell === null || cell === undefined ? "-" : String(cell);
        tr.append(td);
      }
      body.append(tr);
    }
  }

  // -- camera ---------------------------------------------------------------------------------
  /** Start the user's camera in a <video> element; resolves when frames flow. */
  async function startCamera(video, width = 640, height = 480) {
    if (!navigator.mediaDevices || !navigator.mediaDevices.getUserMedia) {
      throw new Error("this browser gives no camera here (it needs https or localhost)");
    }
    const stream = await navigator.mediaDevices.getUserMedia({ video: { width, height }, audio: false });
    video.srcObject = stream;
    video.muted = true;
    video.playsInline = true;
    await video.play();
    if (!video.videoWidth) await new Promise((ok) => video.addEventListener("loadeddata", ok, { once: true }));
    return stream;
  }

  function stopCamera(video) {
    const stream = video.srcObject;
    if (stream) stream.getTracks().forEach((t) => t.stop());
    video.srcObject = null;
  }

  /** The current frame of a <video> as a JPEG Blob. */
  function grab(video, quality = 0.92) {
    const canvas = document.createElement("canvas");
    canvas.width = video.videoWidth;
    canvas.height = video.videoHeight;
    canvas.getContext("2d").drawImage(video, 0, 0);
    return new Promise((ok, fail) => canvas.toBlob((b) => (b ? ok(b) : fail(new Error("no frame"))), "image/jpeg", quality));
  }

  /** What to tell a person in front of the camera, from POST /detect's faces: null when one
   * face of good quality is in view, else the advice. */
  function advice(faces) {
    if (!faces.length) return "no face in view: look at the camera";
    if (faces.length > 1) return `${faces.length} faces in view: only one person, please`;
    const q = faces[0].quality || {};
    if (q.acceptable) return null;
    const reasons = (q.reasons || []).join(", ");
    return reasons ? `hold on: ${reasons}` : "hold on: image quality too low";
  }

  // -- who is using the page ------------------------------------------------------------------
  const galleryName = () => localStorage.getItem(GALLERY) || "";
  const setGallery = (name) => localStorage.setItem(GALLERY, name);
  const useKey = (key) => (key ? sessionStorage.setItem(KEY, key) : sessionStorage.removeItem(KEY));

  const apiKey = () => sessionStorage.getItem(KEY) || "";

  // -- pages for people in front of a camera (kiosk, enroll, login, live) -------------------------
  /** Mark the nav link of this page (aria-current) so the reader and the eye know where they are. */
  function markNav() {
    for (const a of document.querySelectorAll(".site-nav a")) {
      if (a.getAttribute("href") === location.pathname) a.setAttribute("aria-current", "page");
    }
  }

  /** The access bar (#access form: #gallery input + #galleries datalist, #api-key, #who status):
   * the gallery is remembered; a device key is optional when an operator is signed in or the
   * gallery is self-service. onChange(gallery) runs at start and after every change. */
  function accessBar(onChange) {
    markNav();
    const form = $("access"), input = $("gallery"), keyInput = $("api-key"), who = $("who");
    input.value = galleryName();
    async function refresh() {
      let text = "not signed in: self-service galleries only, or use a device key";
      if (apiKey()) text = "using a device key";
      else {
        try {
          const me = await api("/auth/operator/me");
          text = `signed in as ${me.username || me.name || "operator"}`;
        } catch (_) { /* nobody signed in */ }
      }
      who.textContent = text;
      try {
        const page = await api("/galleries?limit=500");
        const list = $("galleries");
        list.replaceChildren(...page.items.map((g) => { const o = el("option"); o.value = g.name; return o; }));
        if (!input.value && page.items.length) input.value = page.items[0].name;
      } catch (_) { /* an anonymous caller lists no galleries: type its name */ }
      if (input.value) setGallery(input.value.trim());
      onChange(input.value.trim());
    }
    form.addEventListener("submit", (e) => {
      e.preventDefault();
      if (keyInput.value.trim()) { useKey(keyInput.value.trim()); keyInput.value = ""; }
      refresh();
    });
    refresh();
    return () => input.value.trim();
  }

  let qualityPath = null;
  /** The faces of a frame with their quality, for live advice: POST /galleries/{g}/quality
   * (nothing logged), or POST /detect where that route is not there. */
  async function quality(gallery, blob) {
    const form = new FormData();
    const path = qualityPath || `/galleries/${encodeURIComponent(gallery)}/quality`;
    form.append(path === "/detect" ? "file" : "photo", blob, "frame.jpg");
    if (path !== "/detect") form.append("file", blob, "frame.jpg");
    try {
      const faces = await api(path, { method: "POST", body: form });
      qualityPath = path === "/detect" ? path : null;
      return faces;
    } catch (err) {
      if (path !== "/detect" && (err.status === 404 || err.status === 405) && !/galler/i.test(err.message)) {
        qualityPath = "/detect";
        return quality(gallery, blob);
      }
      throw err;
    }
  }

  /** Look at the camera every `every` ms; tell the person what to change (onAdvice(text|null,
   * faces)) and, if onGood is given, hand it the first frame with one acceptable face; the loop
   * waits for onGood's promise and stops when it resolves true. Returns {stop()}. */
  function watch(video, gallery, { every = 600, onAdvice, onGood, onError } = {}) {
    let running = true, timer = null;
    async function tick() {
      if (!running) return;
      const started = performance.now();
      try {
        if (video.videoWidth) {
          const blob = await grab(video, 0.9);
          const faces = await quality(gallery(), blob);
          if (!running) return;
          const text = advice(faces);
          if (onAdvice) onAdvice(text, faces, blob);
          if (text === null && onGood && (await onGood(blob, faces))) { running = false; return; }
        }
      } catch (err) {
        if (onError) onError(err); else if (onAdvice) onAdvice(err.message, []);
      }
      if (running) timer = setTimeout(tick, Math.max(50, every - (performance.now() - started)));
    }
    tick();
    return { stop() { running = false; clearTimeout(timer); } };
  }

  return { api, $, fmt, time, say, el, button, fill, startCamera, stopCamera, grab, advice, galleryName, setGallery,
           useKey, cookie, apiKey, markNav, accessBar, quality, watch };
})();

// -- shared by the admin, sign-in, team and door pages (appended) -----------------------------
/** The signed-in operator ({username, role, gallery, display_name, expires_at}) or null. */
FG.whoami = async () => {
  try {
    return await FG.api("/auth/operator/me");
  } catch (err) {
    if (err.status === 401 || err.status === 404) return null;
    throw err;
  }
};

/** Download an /api/v1 resource with the page's credentials (a plain link would carry no API
 * key): fetch it, then click a temporary Blob URL. */
FG.download = async (path, filename, type = "text/csv") => {
  const data = await FG.api(path);
  const blob = data instanceof Blob ? data : new Blob([typeof data === "string" ? data : JSON.stringify(data)], { type });
  const url = URL.createObjectURL(blob);
  const a = document.createElement("a");
  a.href = url;
  a.download = filename;
  document.body.append(a);
  a.click();
  a.remove();
  setTimeout(() => URL.revokeObjectURL(url), 10000);
};

/** Ask in a <dialog> (Esc or Cancel says no); resolves true when confirmed. */
FG.confirm = (dialog, text) => new Promise((resolve) => {
  dialog.querySelector("[data-text]").textContent = text;
  const done = () => { dialog.removeEventListener("close", done); resolve(dialog.returnValue === "yes"); };
  dialog.returnValue = "";
  dialog.addEventListener("close", done);
  dialog.showModal();
});

document.addEventListener("DOMContentLoaded", FG.markNav);
