// Operator sign-in: username and password give an HttpOnly session cookie (and a CSRF cookie the
// pages echo); then who you are, your role, and the pages that role uses.
"use strict";

(() => {
  const $ = FG.$;
  const PAGES = {
    admin: [["/admin", "Administration"], ["/team", "Team access"], ["/door", "Door"], ["/kiosk", "Exam check-in kiosk"], ["/live", "Live recognition"]],
    proctor: [["/kiosk", "Exam check-in kiosk"], ["/admin", "Administration (exams, alerts, lockouts)"]],
    lead: [["/team", "Team access: members and rights"], ["/door", "Door: grant or refuse"]],
  };

  function show(me) {
    $("signin-form").classList.toggle("hidden", !!me);
    $("signed-in").classList.toggle("hidden", !me);
    if (!me) return;
    $("whoami").textContent = `Signed in as ${me.display_name || me.username} (${me.username})`;
    $("session-info").textContent = `Role: ${me.role}${me.gallery ? `, gallery ${me.gallery}` : ", every gallery"}; session ends ${FG.time(me.expires_at)}.`;
    if (me.gallery) FG.setGallery(me.gallery);
    $("role-links").replaceChildren(...(PAGES[me.role] || []).map(([href, text]) => {
      const li = document.createElement("li");
      const a = FG.el("a", text);
      a.href = href;
      li.append(a);
      return li;
    }));
    const first = $("role-links").querySelector("a");
    if (first) first.focus();
  }

  $("signin-form").addEventListener("submit", async (e) => {
    e.preventDefault();
    FG.say("signin-status", "signing in…");
    try {
      FG.useKey(""); // a session, not a key, from now on in this tab
      const me = await FG.api("/auth/operator/login", { method: "POST", body: { username: $("username").value.trim(), password: $("password").value } });
      $("password").value = "";
      FG.say("signin-status", "");
      show(me);
    } catch (err) {
      $("password").value = "";
      FG.say("signin-status", err.status === 401 ? "Wrong username or password." : err.message, "error");
      $("password").focus();
    }
  });

  $("signout").addEventListener("click", async () => {
    try { await FG.api("/auth/operator/logout", { method: "POST" }); } catch { /* the session is gone either way */ }
    show(null);
    FG.say("signin-status", "Signed out.");
    $("username").focus();
  });

  FG.whoami().then(show).catch((err) => FG.say("signin-status", err.message, "error"));
})();
