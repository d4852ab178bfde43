// The administration page, core: who is signed in (operator session or API key), the gallery,
// the section tabs, and the calibration line. The sections live in admin-people.js,
// admin-ops.js and admin-chart.js; each registers its loader in Admin.loaders.
"use strict";

const Admin = (() => {
  const $ = FG.$;
  const loaders = {}; // tab id -> async function loading that section
  const gallery = () => $("gallery").value;
  const g = () => encodeURIComponent(gallery());
  const say = (text, error = false) => FG.say("status", text, error ? "error" : "");
  const day = (iso) => (iso ? iso.replace("T", " ").slice(0, 19) : "-");
  let me = null; // the signed-in operator, or null with an API key

  function tabs() { return [...document.querySelectorAll("main > section[data-tab]")]; }
  function currentTab() {
    const hash = location.hash.slice(1);
    return tabs().some((s) => s.dataset.tab === hash) ? hash : "galleries";
  }

  /** Show one section and load it. */
  async function show(tab = currentTab()) {
    for (const s of tabs()) s.hidden = s.dataset.tab !== tab;
    for (const a of document.querySelectorAll(".tabs a")) {
      if (a.getAttribute("href") === "#" + tab) a.setAttribute("aria-current", "true");
      else a.removeAttribute("aria-current");
    }
    await load(tab);
  }

  async function load(tab = currentTab()) {
    const loader = loaders[tab];
    if (!loader || (!gallery() && loader.needsGallery !== false)) return;
    try { await loader(); } catch (err) { say(`${tab.replace("-tab", "")}: ${err.message}`, true); }
  }

  async function loadCalibrationLine() {
    const info = await FG.api(`/galleries/${g()}`);
    const c = info.active_calibration;
    $("calibration").textContent = c
      ? `Calibration in use: ${c.calibration.split(":")[0]} (verify threshold ${FG.fmt(c.threshold, 4)} at FAR ${c.target_rate})`
      : "No calibration matches this gallery's model: re-enroll it.";
    $("calibration").title = c ? c.calibration : "";
    return info;
  }

  /** The galleries this caller sees, in the selector; then the current section. */
  async function loadGalleries(keep = gallery() || FG.galleryName()) {
    const page = await FG.api("/galleries?limit=500");
    const select = $("gallery");
    select.replaceChildren(...page.items.map((x) => new Option(`${x.name} (${x.model_id}, ${x.subjects} subjects)`, x.name)));
    if (page.items.some((x) => x.name === keep)) select.value = keep;
    say(`${page.items.length} galler${page.items.length === 1 ? "y" : "ies"}`);
    Admin.galleries = page.items;
    await refresh();
  }

  async function refresh() {
    if (gallery()) {
      FG.setGallery(gallery());
      try { await loadCalibrationLine(); } catch (err) { say(err.message, true); }
    }
    await show();
  }

  function showWho() {
    const key = sessionStorage.getItem("facegate-key");
    $("sign-out").classList.toggle("hidden", !me);
    $("key-form").classList.toggle("hidden", !!me && !key);
    if (me) {
      $("who").textContent = `Signed in as ${me.display_name || me.username} (${me.role}${me.gallery ? `, gallery ${me.gallery}` : ""})`;
    } else if (key) {
      $("who").textContent = "Using an API key (this tab only).";
    }
    document.querySelector('.tabs a[href="#operators"]').classList.toggle("hidden", !!me && me.role !== "admin");
  }

  async function start() {
    try { me = await FG.whoami(); } catch { me = null; }
    showWho();
    if (me || sessionStorage.getItem("facegate-key")) {
      try { await loadGalleries(); } catch (err) { say(err.message, true); }
    } else {
      await show();
    }
  }

  $("key-form").addEventListener("submit", async (e) => {
    e.preventDefault();
    FG.useKey($("api-key").value.trim());
    $("api-key").value = "";
    showWho();
    try { await loadGalleries(); } catch (err) {
      $("gallery").replaceChildren();
      say(err.status === 401 ? `${err.message} (check the API key)` : err.message, true);
    }
  });
  $("gallery-form").addEventListener("submit", (e) => e.preventDefault());
  $("gallery").addEventListener("change", refresh);
  $("sign-out").addEventListener("click", async () => {
    try { await FG.api("/auth/operator/logout", { method: "POST" }); } catch { /* already signed out */ }
    location.href = "/signin";
  });
  window.addEventListener("hashchange", () => show());
  document.addEventListener("DOMContentLoaded", start);

  return { loaders, gallery, g, say, day, show, load, loadGalleries, loadCalibrationLine, galleries: [], me: () => me };
})();
