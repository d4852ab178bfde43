// Self-service enrollment: a person agrees to the processing of their face, picks a username
// and password and takes 3 to 5 photos. The camera is checked every 600 ms so a photo can only
// be taken when one good face is in view (or taken automatically, with a pause between shots);
// uploaded files are the fallback. The API stores all or nothing, and the page says which.
"use strict";

(() => {
  const { $, api, el } = FG;
  const MIN = 3, MAX = 5, PAUSE_MS = 1200;
  const video = $("camera"), form = $("enroll-form"), captureBtn = $("capture"), auto = $("auto");
  let gallery = () => "";
  let photos = [];  // {blob, url, name}
  let good = null, lastShot = 0, watcher = null, counter = 0;

  function render() {
    const list = $("photos");
    list.replaceChildren();
    photos.forEach((p, i) => {
      const li = el("li");
      const img = el("img");
      img.src = p.url;
      img.alt = `Photo ${i + 1}`;
      li.append(img, FG.button(`Remove photo ${i + 1}`, () => remove(i), "small"));
      list.append(li);
    });
    const n = photos.length;
    $("photo-count").textContent = n < MIN ? `${n} of 3-5 photos: take ${MIN - n} more.`
      : `${n} of 3-5 photos${n === MAX ? " (the most)" : ""}: ready to create the account.`;
    captureBtn.disabled = !good || n >= MAX;
  }

  function add(blob, name) {
    if (photos.length >= MAX) return false;
    counter += 1;
    photos.push({ blob, url: URL.createObjectURL(blob), name: name || `photo-${counter}.jpg` });
    render();
    return true;
  }

  function remove(i) {
    URL.revokeObjectURL(photos[i].url);
    photos.splice(i, 1);
    render();
    captureBtn.focus();
  }

  function capture() {
    if (good && add(good)) {
      lastShot = performance.now();
      good = null;
      render();
      FG.say("advice", "Photo taken. Move your head a little for the next one.", "ok");
    }
  }

  function startWatching() {
    if (watcher) watcher.stop();
    watcher = FG.watch(video, gallery, {
      every: 600,
      onAdvice: (text, faces, blob) => {
        if (text === null) {
          good = blob;
          if (photos.length >= MAX) FG.say("advice", "Five photos taken: that is the most.", "ok");
          else FG.say("advice", "Good: one face, good quality. You can take the photo.", "ok");
          if (auto.checked && photos.length < MAX && performance.now() - lastShot > PAUSE_MS) capture();
        } else {
          good = null;
          FG.say("advice", text, "warn");
        }
        render();
      },
      onError: (err) => { good = null; FG.say("advice", err.message, "error"); render(); },
    });
  }

  function problems() {
    const out = [];
    if (!$("consent").checked) out.push(["consent", "tick the consent box"]);
    const user = $("username").value;
    if (!/^[A-Za-z0-9_.@-]{3,100}$/.test(user)) out.push(["username", "username: 3-100 of letters, digits, _ . @ -"]);
    if ($("password").value.length < 10) out.push(["password", "password: at least 10 characters"]);
    if (photos.length < MIN || photos.length > MAX) out.push(["capture", `take 3 to 5 photos (you have ${photos.length})`]);
    if (!gallery()) out.push(["gallery", "choose a gallery"]);
    return out;
  }

  async function submit(e) {
    e.preventDefault();
    const wrong = problems();
    if (wrong.length) {
      FG.say("result", `Not sent: ${wrong.map((w) => w[1]).join("; ")}.`, "error");
      $(wrong[0][0]).focus();
      return;
    }
    const body = new FormData();
    body.append("username", $("username").value);
    body.append("password", $("password").value);
    body.append("display_name", $("display-name").value.trim());
    body.append("consent", "true");
    body.append("consent_text", $("consent-text").textContent.trim());
    for (const p of photos) body.append("files", p.blob, p.name);
    const btn = $("register");
    btn.disabled = true;
    FG.say("result", "Creating the account...");
    try {
      const r = await api(`/galleries/${encodeURIComponent(gallery())}/accounts`, { method: "POST", body });
      FG.say("result", `Account ${r.username} created: ${r.accepted_photos} photos enrolled (subject ${r.subject}). You can now log in by face.`, "ok");
      verdicts(r.items);
      $("password").value = "";
    } catch (err) {
      FG.say("result", `Nothing was stored: ${err.message}`, "error");
      const items = err.problem && Array.isArray(err.problem.items) ? err.problem.items : null;
      if (items) verdicts(items); else $("verdicts").hidden = true;
    } finally {
      btn.disabled = false;
    }
  }

  function verdicts(items) {
    const table = $("verdicts");
    table.hidden = false;
    FG.fill(table, items, (i) => [i.image, { text: i.status, cls: i.status === "accepted" ? "no" : "yes" }, i.reason || "ok"]);
  }

  $("files").addEventListener("change", (e) => {
    for (const f of e.target.files) if (!add(f, f.name)) break;
    e.target.value = "";
  });
  captureBtn.addEventListener("click", capture);
  form.addEventListener("submit", submit);
  gallery = FG.accessBar(() => {
    if (video.srcObject) { startWatching(); return; }
    FG.startCamera(video).then(startWatching, (err) => FG.say("advice", `No camera (${err.message}): upload photos instead.`, "error"));
  });
  render();
})();
