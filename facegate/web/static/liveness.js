// Liveness for the camera pages (kiosk, login, door), after common.js. With the gallery's
// `liveness` setting off, a page sends one photo as before. With it on, the page records the
// camera for a few seconds and sends the frames with their times instead: `passive` records
// about 2 s with no instruction; `active` first asks the server for a challenge (a nonce and
// 1-3 actions), shows each instruction large with a countdown while it records, and sends the
// nonce back with the frames. The server alone judges the recording.
"use strict";

(() => {
  const FPS = 10;            // frames a second while recording (the server takes 6-40 frames)
  const MAX_FRAMES = 40;
  const PASSIVE_SECONDS = 2;
  const modes = new Map();   // gallery -> "off" | "passive" | "active", learnt from a 409

  /** The gallery's liveness mode: its settings when the caller may read them, else what an
   * earlier refusal said, else "off" (the single photo is tried, and a 409 tells the truth). */
  FG.livenessMode = async (gallery) => {
    try {
      const g = await FG.api(`/galleries/${encodeURIComponent(gallery)}`);
      const mode = (g.settings && g.settings.liveness) || "off";
      modes.set(gallery, mode);
      return mode;
    } catch (_) {
      return modes.get(gallery) || "off";
    }
  };

  /** When an error is the server's "send a recording" (the gallery's liveness is on): the mode
   * it names, remembered for the gallery; else null. */
  FG.recordingNeeded = (err, gallery) => {
    if (!err || err.status !== 409 || !/recording/i.test(err.message)) return null;
    const named = /liveness is '(passive|active)'/.exec(err.message);
    const mode = named ? named[1] : "active";
    modes.set(gallery, mode);
    return mode;
  };

  /** A new challenge of the gallery, bound to `subject` when it is a known one. */
  FG.askChallenge = async (gallery, subject) => {
    const path = `/galleries/${encodeURIComponent(gallery)}/liveness/challenges`;
    try {
      return await FG.api(path, { method: "POST", body: subject ? { subject } : {} });
    } catch (err) {
      if (subject && err.status === 404) return FG.api(path, { method: "POST", body: {} });
      throw err;
    }
  };

  /** Change a text only when it differs (a live region re-reads a replaced text). */
  const set = (node, text) => { if (node.textContent !== text) node.textContent = text; };
  const sleep = (ms) => new Promise((ok) => setTimeout(ok, Math.max(0, ms)));

  /** Record the camera while the challenge's actions are shown one after the other (each gets
   * an equal share of max_seconds). `challenge` null: a passive recording of about 2 s.
   * onInstruction({step, total, action, instruction, left}) runs when the step changes and every
   * tick (`left`: seconds left). Resolves {frames: [Blob], timestamps: [seconds from the first]}. */
  FG.recordChallenge = async (video, challenge, onInstruction) => {
    const seconds = challenge ? Number(challenge.max_seconds) || 4 : PASSIVE_SECONDS;
    const steps = challenge && challenge.actions.length ? challenge.actions
      : [{ action: "still", instruction: "Look at the camera and hold on" }];
    const slot = seconds / steps.length;
    const frames = [], timestamps = [];
    const t0 = performance.now();
    let next = t0, last = -1;
    while (frames.length < MAX_FRAMES) {
      await sleep(next - performance.now());
      const now = performance.now();
      const t = Math.round(now - t0) / 1000;
      if (t >= seconds) break;
      const step = Math.min(steps.length - 1, Math.floor(t / slot));
      if (onInstruction) {
        onInstruction({ step: step + 1, total: steps.length, action: steps[step].action,
                        instruction: steps[step].instruction, left: Math.max(0, Math.ceil(seconds - t)) });
      }
      if (t > last) {
        frames.push(await FG.grab(video, 0.85));
        timestamps.push(t);
        last = t;
      }
      next += 1000 / FPS;
      if (next < performance.now()) next = performance.now();  // a slow frame: no burst after it
    }
    return { frames, timestamps };
  };

  /** Add a recording (and the challenge's nonce) to a form, as the check routes take it. */
  FG.appendRecording = (form, recording, challenge) => {
    recording.frames.forEach((blob, i) => form.append("frames", blob, `frame${String(i).padStart(2, "0")}.jpg`));
    form.append("timestamps", recording.timestamps.map((t) => t.toFixed(3)).join(","));
    if (challenge) form.append("challenge", challenge.nonce);
  };

  /** The whole capture for a mode on: ask the challenge (active), show its steps in `prompt`
   * (an element with [data-step], [data-text], [data-left] and a <progress>), record, hide it. */
  FG.captureLiveness = async (video, gallery, mode, subject, prompt) => {
    const challenge = mode === "active" ? await FG.askChallenge(gallery, subject) : null;
    const seconds = challenge ? challenge.max_seconds : PASSIVE_SECONDS;
    const bar = prompt.querySelector("progress");
    prompt.hidden = false;
    try {
      const started = performance.now();
      const recording = await FG.recordChallenge(video, challenge, (s) => {
        prompt.dataset.action = s.action;
        set(prompt.querySelector("[data-step]"), challenge ? `Step ${s.step} of ${s.total}` : "Recording");
        set(prompt.querySelector("[data-text]"), s.instruction);  // announced once per step (role=alert)
        set(prompt.querySelector("[data-left]"), `${s.left} s`);
        if (bar) { bar.max = seconds; bar.value = Math.min(seconds, (performance.now() - started) / 1000); }
      });
      return { recording, challenge };
    } finally {
      prompt.hidden = true;
    }
  };

  /** One line on a liveness result: passed with the actions' times, or failed with the reason. */
  FG.livenessLine = (live) => {
    if (!live) return "";
    if (live.passed) {
      const seen = (live.actions || []).filter((a) => a.happened)
        .map((a) => `${a.action.replace("_", " ")} at ${FG.fmt(a.start, 2)} s`);
      return `liveness passed (${live.mode}${seen.length ? ": " + seen.join(", ") : ""})`;
    }
    return `liveness failed (${live.mode}): ${live.reason || "not live"}`;
  };
})();
