// Team access for a team lead: add members with rights, change their rights, enroll a member's
// face from a short video clip, and see every member with their rights.
"use strict";

(() => {
  const $ = FG.$;
  const say = (text, error = false) => FG.say("team-status", text, error ? "error" : "");
  const g = () => encodeURIComponent($("team-gallery").value);
  const splitRights = (text) => text.split(",").map((r) => r.trim()).filter(Boolean);

  async function loadTeams() {
    const page = await FG.api("/galleries?limit=500");
    const keep = FG.galleryName();
    $("team-gallery").replaceChildren(...page.items.map((x) => new Option(`${x.name} (${x.subjects} people)`, x.name)));
    if (page.items.some((x) => x.name === keep)) $("team-gallery").value = keep;
    if (!page.items.length) { say("no gallery to manage: ask an admin to create one", true); return; }
    await loadMembers();
  }

  async function loadMembers() {
    FG.setGallery($("team-gallery").value);
    const members = [];
    let cursor = null;
    do {
      const page = await FG.api(`/galleries/${g()}/subjects?limit=500${cursor ? `&cursor=${encodeURIComponent(cursor)}` : ""}`);
      members.push(...page.items);
      cursor = page.next_cursor;
    } while (cursor && members.length < 5000);
    FG.fill("members", members, (m) => {
      const rights = (m.attributes && m.attributes.rights) || [];
      const form = document.createElement("form");
      form.className = "rights-form";
      const input = document.createElement("input");
      input.type = "text";
      input.value = rights.join(", ");
      input.setAttribute("aria-label", `rights of ${m.external_id}`);
      const save = FG.el("button", "Save");
      save.type = "submit";
      form.append(input, save);
      form.addEventListener("submit", async (e) => {
        e.preventDefault();
        try {
          await FG.api(`/galleries/${g()}/members/${encodeURIComponent(m.external_id)}/rights`, { method: "PUT", body: { rights: splitRights(input.value) } });
          await loadMembers();
          say(`rights of ${m.external_id} saved`);
        } catch (err) { say(err.message, true); }
      });
      const tags = document.createElement("span");
      for (const r of rights) tags.append(FG.el("span", r, "tag"));
      if (!rights.length) tags.append(FG.el("span", "no rights", "tag warn"));
      return [m.external_id, m.display_name || "-", { text: String(m.templates), cls: m.templates ? "" : "yes" }, tags, form];
    });
    $("video-member").replaceChildren(...members.map((m) => new Option(`${m.external_id}${m.display_name ? ` (${m.display_name})` : ""}`, m.external_id)));
  }

  $("member-form").addEventListener("submit", async (e) => {
    e.preventDefault();
    const body = { external_id: $("member-id").value.trim(), display_name: $("member-name").value.trim(), rights: splitRights($("member-rights").value) };
    try {
      const m = await FG.api(`/galleries/${g()}/members`, { method: "POST", body });
      say(`${m.external_id} added with ${m.attributes.rights.length ? m.attributes.rights.join(", ") : "no rights"}: now enroll their face below`);
      for (const id of ["member-id", "member-name", "member-rights"]) $(id).value = "";
      await loadMembers();
      $("video-member").value = m.external_id;
    } catch (err) { say(err.message, true); }
  });

  $("video-form").addEventListener("submit", async (e) => {
    e.preventDefault();
    const file = $("video-file").files[0];
    if (!file) return;
    const form = new FormData();
    form.append("file", file, file.name);
    form.append("frames", $("video-frames").value || "5");
    const who = $("video-member").value;
    FG.say("video-result", `enrolling ${who} from ${file.name}… (this takes a few seconds)`);
    try {
      const r = await FG.api(`/galleries/${g()}/subjects/${encodeURIComponent(who)}/enroll-video`, { method: "POST", body: form });
      const e2 = r.enrollment;
      FG.say("video-result", `${who}: ${e2.accepted} face template(s) added from ${r.chosen_frames.length} frame(s), ${e2.rejected} refused.` +
        (r.notes && r.notes.length ? ` ${r.notes.join(" ")}` : ""), e2.accepted ? "ok" : "error");
      await loadMembers();
    } catch (err) { FG.say("video-result", err.message, "error"); }
  });

  $("team-gallery-form").addEventListener("submit", (e) => e.preventDefault());
  $("team-gallery").addEventListener("change", () => loadMembers().catch((err) => say(err.message, true)));

  (async () => {
    const me = await FG.whoami().catch(() => null);
    $("team-who").textContent = me ? `Signed in as ${me.display_name || me.username} (${me.role})` : "";
    if (!me && !sessionStorage.getItem("facegate-key")) {
      say("Sign in first (Sign in page).", true);
      return;
    }
    try { await loadTeams(); } catch (err) { say(err.message, true); }
  })();
})();
