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
    const r = await fetch("/api/v1" + path, { ...options, method, headers, body, credentials: "same-origin" });
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

  return { api, $, fmt, time, say, el, button, fill, startCamera, stopCamera, grab, advice, galleryName, setGallery, useKey, cookie };
})();
