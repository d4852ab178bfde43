// Administration sections about who and what is known: galleries and their settings, subjects
// and their templates, API keys, operators.
"use strict";

(() => {
  const $ = FG.$;
  const { g, say, day } = Admin;

  // -- galleries ------------------------------------------------------------------------------
  async function loadGalleries() {
    const page = await FG.api("/galleries?limit=500");
    FG.fill("galleries-table", page.items, (x) => [x.name, x.model_id, x.detector, x.subjects, x.templates, day(x.created_at),
      FG.button("Select", () => { $("gallery").value = x.name; $("gallery").dispatchEvent(new Event("change")); })],
    (x) => (x.name === Admin.gallery() ? "selected" : ""));
    const current = page.items.find((x) => x.name === Admin.gallery());
    if (current) settingsForm(current);
  }
  loadGalleries.needsGallery = false;
  Admin.loaders.galleries = loadGalleries;

  /** One input per setting, typed from the settings JSON itself. */
  function settingsForm(info) {
    $("settings-gallery").textContent = info.name;
    const fields = $("settings-fields");
    fields.replaceChildren();
    for (const [name, value] of Object.entries(info.settings)) {
      const label = FG.el("label", name.replaceAll("_", " "));
      const input = document.createElement("input");
      input.name = name;
      input.id = "setting-" + name;
      if (typeof value === "boolean") {
        input.type = "checkbox";
        input.checked = value;
        label.className = "check";
        label.prepend(input);
      } else {
        input.type = typeof value === "number" ? "number" : "text";
        if (input.type === "number") input.step = "any";
        input.value = value === null ? "" : String(value);
        label.append(input);
      }
      input.dataset.original = input.type === "checkbox" ? String(value) : input.value;
      fields.append(label);
    }
  }

  $("settings-form").addEventListener("submit", async (e) => {
    e.preventDefault();
    const changes = {};
    for (const input of $("settings-fields").querySelectorAll("input")) {
      const now = input.type === "checkbox" ? String(input.checked) : input.value;
      if (now === input.dataset.original) continue;
      changes[input.name] = input.type === "checkbox" ? input.checked : input.type === "number" ? Number(input.value) : input.value;
    }
    if (!Object.keys(changes).length) { say("no setting changed"); return; }
    try {
      const info = await FG.api(`/galleries/${g()}/settings`, { method: "PATCH", body: changes });
      settingsForm(info);
      say(`saved: ${Object.keys(changes).join(", ")}`);
      await Admin.loadCalibrationLine();
    } catch (err) { say(err.message, true); }
  });

  $("gallery-create").addEventListener("submit", async (e) => {
    e.preventDefault();
    const name = $("new-gallery-name").value.trim();
    try {
      await FG.api("/galleries", { method: "POST", body: { name, model: $("new-gallery-model").value, detector: $("new-gallery-detector").value } });
      $("new-gallery-name").value = "";
      await Admin.loadGalleries(name);
      say(`gallery ${name} created`);
    } catch (err) { say(err.message, true); }
  });

  // -- subjects -------------------------------------------------------------------------------
  const PAGE = 25;
  let cursors = [null]; // the cursor of each page seen; the last is the current page's
  let next = null;
  let selected = null;

  const attributesText = (attrs) => {
    const parts = [];
    for (const [k, v] of Object.entries(attrs || {})) parts.push(`${k}: ${Array.isArray(v) ? v.join(", ") : typeof v === "object" ? JSON.stringify(v) : v}`);
    return parts.join("; ") || "-";
  };

  function showSubjects(items) {
    FG.fill("subjects", items, (s) => [s.external_id, s.display_name || "-", s.templates ?? s.faces ?? "-", attributesText(s.attributes),
      FG.button("Open", () => openSubject(s))], (s) => (selected && s.external_id === selected.external_id ? "selected" : ""));
  }

  async function loadSubjects() {
    const q = $("subject-q").value.trim().toLowerCase();
    if (q) return search(q);
    const cursor = cursors[cursors.length - 1];
    const page = await FG.api(`/galleries/${g()}/subjects?limit=${PAGE}${cursor ? `&cursor=${encodeURIComponent(cursor)}` : ""}`);
    next = page.next_cursor;
    showSubjects(page.items);
    $("subjects-page").textContent = `page ${cursors.length}`;
    $("subjects-prev").disabled = cursors.length === 1;
    $("subjects-next").disabled = !next;
  }
  Admin.loaders.subjects = loadSubjects;

  /** Search by id or name: the exact id first, else a scan of the gallery's subjects. */
  async function search(q) {
    const found = [];
    let cursor = null;
    do {
      const page = await FG.api(`/galleries/${g()}/subjects?limit=500${cursor ? `&cursor=${encodeURIComponent(cursor)}` : ""}`);
      for (const s of page.items) {
        if (s.external_id.toLowerCase().includes(q) || (s.display_name || "").toLowerCase().includes(q)) found.push(s);
      }
      cursor = page.next_cursor;
    } while (cursor && found.length < PAGE);
    showSubjects(found.slice(0, PAGE));
    $("subjects-page").textContent = `${found.length}${cursor ? "+" : ""} match${found.length === 1 ? "" : "es"} for "${q}"`;
    $("subjects-prev").disabled = true;
    $("subjects-next").disabled = true;
  }

  async function openSubject(s) {
    selected = s;
    $("subject-detail").classList.remove("hidden");
    $("subject-title").textContent = `${s.external_id}${s.display_name ? ` (${s.display_name})` : ""}`;
    $("subject-attributes").textContent = `Rights and attributes: ${attributesText(s.attributes)}`;
    const id = encodeURIComponent(s.external_id);
    const faces = await FG.api(`/galleries/${g()}/subjects/${id}/faces?limit=500`);
    FG.fill("faces", faces.items, (f) => [f.id, f.model_id, { text: FG.fmt(f.quality, 2), cls: f.quality < 0.5 ? "yes" : "" },
      f.box.map((v) => Math.round(v)).join(", "), f.has_crop ? "kept" : "-", day(f.created_at),
      FG.button("Remove", async () => {
        if (!(await FG.confirm($("confirm-dialog"), `Remove template ${f.id} of ${s.external_id}?`))) return;
        try { await FG.api(`/galleries/${g()}/subjects/${id}/faces/${f.id}`, { method: "DELETE" }); await openSubject(s); } catch (err) { say(err.message, true); }
      })]);
    await loadSubjectsQuietly();
  }

  async function loadSubjectsQuietly() { try { await loadSubjects(); } catch { /* the list stays as it was */ } }

  $("subject-delete").addEventListener("click", async () => {
    if (!selected) return;
    const s = selected;
    const ok = await FG.confirm($("confirm-dialog"), `Delete subject ${s.external_id} and erase all its templates? This cannot be undone.`);
    if (!ok) { say("nothing deleted"); return; }
    try {
      const r = await FG.api(`/galleries/${g()}/subjects/${encodeURIComponent(s.external_id)}`, { method: "DELETE" });
      say(`deleted ${r.deleted}: ${r.templates_erased} template(s) erased`);
      selected = null;
      $("subject-detail").classList.add("hidden");
      await loadSubjects();
    } catch (err) { say(err.message, true); }
  });
  $("subject-search").addEventListener("submit", (e) => { e.preventDefault(); cursors = [null]; Admin.load("subjects"); });
  $("subjects-next").addEventListener("click", () => { if (next) { cursors.push(next); Admin.load("subjects"); } });
  $("subjects-prev").addEventListener("click", () => { if (cursors.length > 1) { cursors.pop(); Admin.load("subjects"); } });
  $("gallery").addEventListener("change", () => { cursors = [null]; selected = null; $("subject-detail").classList.add("hidden"); });

  // -- API keys -------------------------------------------------------------------------------
  async function loadKeys() {
    const keys = await FG.api("/keys");
    FG.fill("keys-table", keys, (k) => [k.id, k.prefix, k.name, k.scopes.join(", "), k.gallery || "all", day(k.created_at),
      k.revoked ? "revoked" : "active",
      k.revoked ? "" : FG.button("Revoke", async () => {
        if (!(await FG.confirm($("confirm-dialog"), `Revoke key ${k.name} (${k.prefix}…)? Whatever uses it stops working.`))) return;
        try { await FG.api(`/keys/${k.id}`, { method: "DELETE" }); say(`key ${k.name} revoked`); await loadKeys(); } catch (err) { say(err.message, true); }
      })], (k) => (k.revoked ? "acked" : ""));
  }
  loadKeys.needsGallery = false;
  Admin.loaders.keys = loadKeys;

  $("key-create").addEventListener("submit", async (e) => {
    e.preventDefault();
    const scopes = [...document.querySelectorAll('#key-create input[name="scope"]:checked')].map((i) => i.value);
    const body = { name: $("key-name").value.trim(), scopes, gallery: $("key-bound").checked && Admin.gallery() ? Admin.gallery() : null };
    try {
      const created = await FG.api("/keys", { method: "POST", body });
      $("key-name").value = "";
      $("new-secret").textContent = created.secret;
      $("copy-status").textContent = "";
      $("secret-dialog").showModal();
      await loadKeys();
    } catch (err) { say(err.message, true); }
  });
  $("secret-dialog").addEventListener("close", () => { $("new-secret").textContent = ""; }); // shown once
  $("copy-secret").addEventListener("click", async () => {
    const text = $("new-secret").textContent;
    try {
      await navigator.clipboard.writeText(text);
      $("copy-status").textContent = "Copied.";
    } catch {
      const range = document.createRange();
      range.selectNodeContents($("new-secret"));
      getSelection().removeAllRanges();
      getSelection().addRange(range);
      $("copy-status").textContent = "Selected: press Ctrl+C (or Cmd+C) to copy.";
    }
  });

  // -- operators ------------------------------------------------------------------------------
  async function loadOperators() {
    const ops = await FG.api("/operators");
    const me = Admin.me();
    FG.fill("operators-table", ops, (o) => [o.username, o.display_name || "-", o.role, o.gallery || "all", day(o.last_login_at),
      o.locked ? "locked" : "active",
      me && me.username === o.username ? "you" : FG.button("Delete", async () => {
        if (!(await FG.confirm($("confirm-dialog"), `Delete operator ${o.username}? Their sessions end now.`))) return;
        try { await FG.api(`/operators/${encodeURIComponent(o.username)}`, { method: "DELETE" }); await loadOperators(); } catch (err) { say(err.message, true); }
      })]);
  }
  loadOperators.needsGallery = false;
  Admin.loaders.operators = loadOperators;

  $("operator-create").addEventListener("submit", async (e) => {
    e.preventDefault();
    const body = { username: $("op-username").value.trim(), password: $("op-password").value, role: $("op-role").value,
      display_name: $("op-display").value.trim(), gallery: $("op-bound").checked && Admin.gallery() ? Admin.gallery() : null };
    try {
      await FG.api("/operators", { method: "POST", body });
      for (const id of ["op-username", "op-password", "op-display"]) $(id).value = "";
      say(`operator ${body.username} created (${body.role})`);
      await loadOperators();
    } catch (err) { say(err.message, true); }
  });
})();
