// Administration: the calibration in force, drawn on a canvas. FAR on a log axis against the
// similarity threshold (measured: solid, extrapolated: dashed) and, when the calibration holds
// ROC points, the true-accept rate; the gallery's verify FAR and its threshold are marked.
"use strict";

(() => {
  const $ = FG.$;
  const { g } = Admin;
  const COLORS = { threshold: "#1f5fae", tar: "#1b6e2a", mark: "#b3261e", grid: "#e3e6ea", text: "#1d232a" };

  async function loadCalibration() {
    const c = await FG.api(`/galleries/${g()}/calibration`);
    $("calibration-summary").textContent =
      `${c.name} for ${c.model_id} (weights ${c.model_sha256.slice(0, 12)}): ${c.source}. ` +
      `Measured down to FAR ${c.min_far.toExponential(0)}. ` +
      `This gallery verifies at FAR ${c.verify_far} with threshold ${c.verify_threshold.toFixed(4)}` +
      (c.resolvable ? "." : " (below what the sample can show: extrapolated).");
    FG.fill("threshold-table", c.table, (p) => [p.far.toExponential(2), p.threshold.toFixed(4), p.measured ? "measured" : "extrapolated"],
      (p) => (Math.abs(Math.log10(p.far) - Math.log10(c.verify_far)) < 1e-9 ? "selected" : ""));
    draw($("roc-canvas"), c);
    $("roc-canvas").dataset.drawn = "true";
    $("roc-canvas").dataset.threshold = c.verify_threshold.toFixed(4);
    $("calibration-legend").textContent = c.roc
      ? "Blue: threshold for each FAR (dashed where extrapolated). Green: true-accept rate (ROC, right axis). Red: this gallery's operating point."
      : "Blue: threshold for each FAR (dashed where extrapolated). Red: this gallery's operating point. This calibration holds no ROC points (true-accept rates).";
  }
  Admin.loaders["calibration-tab"] = loadCalibration;

  function draw(canvas, c) {
    const dpr = window.devicePixelRatio || 1;
    const W = 760;
    const H = 440;
    canvas.width = W * dpr;
    canvas.height = H * dpr;
    const ctx = canvas.getContext("2d");
    ctx.setTransform(dpr, 0, 0, dpr, 0, 0);
    ctx.clearRect(0, 0, W, H);
    ctx.fillStyle = "#fff";
    ctx.fillRect(0, 0, W, H);
    const pad = { l: 64, r: c.roc ? 60 : 20, t: 20, b: 52 };
    const fars = c.table.map((p) => p.far).concat(c.roc ? c.roc.map((p) => p.far).filter((f) => f > 0) : [], [c.verify_far]);
    const lo = Math.floor(Math.log10(Math.min(...fars)));
    const hi = Math.min(0, Math.ceil(Math.log10(Math.max(...fars))));
    const thr = c.table.map((p) => p.threshold).concat([c.verify_threshold]);
    const tLo = Math.floor(Math.min(...thr) * 20) / 20;
    const tHi = Math.ceil(Math.max(...thr) * 20) / 20 || 1;
    const x = (far) => pad.l + ((Math.log10(far) - lo) / (hi - lo || 1)) * (W - pad.l - pad.r);
    const y = (t) => H - pad.b - ((t - tLo) / (tHi - tLo || 1)) * (H - pad.t - pad.b);
    const yTar = (v) => H - pad.b - v * (H - pad.t - pad.b);

    // Grid and axes.
    ctx.font = "12px system-ui, sans-serif";
    ctx.strokeStyle = COLORS.grid;
    ctx.fillStyle = COLORS.text;
    ctx.lineWidth = 1;
    ctx.textAlign = "center";
    for (let k = lo; k <= hi; k++) {
      ctx.beginPath(); ctx.moveTo(x(10 ** k), pad.t); ctx.lineTo(x(10 ** k), H - pad.b); ctx.stroke();
      ctx.fillText(`1e${k}`, x(10 ** k), H - pad.b + 16);
    }
    ctx.textAlign = "right";
    const steps = 5;
    for (let i = 0; i <= steps; i++) {
      const t = tLo + ((tHi - tLo) * i) / steps;
      ctx.beginPath(); ctx.moveTo(pad.l, y(t)); ctx.lineTo(W - pad.r, y(t)); ctx.stroke();
      ctx.fillText(t.toFixed(2), pad.l - 6, y(t) + 4);
    }
    ctx.textAlign = "center";
    ctx.fillText("false-accept rate per comparison (log)", (pad.l + W - pad.r) / 2, H - 12);
    ctx.save();
    ctx.translate(16, (pad.t + H - pad.b) / 2);
    ctx.rotate(-Math.PI / 2);
    ctx.fillStyle = COLORS.threshold;
    ctx.fillText("similarity threshold", 0, 0);
    ctx.restore();

    // The threshold table: solid where measured, dashed where extrapolated.
    ctx.lineWidth = 2.5;
    ctx.strokeStyle = COLORS.threshold;
    const pts = [...c.table].sort((a, b) => b.far - a.far);
    for (let i = 1; i < pts.length; i++) {
      ctx.setLineDash(pts[i].measured ? [] : [6, 5]);
      ctx.beginPath(); ctx.moveTo(x(pts[i - 1].far), y(pts[i - 1].threshold)); ctx.lineTo(x(pts[i].far), y(pts[i].threshold)); ctx.stroke();
    }
    ctx.setLineDash([]);
    ctx.fillStyle = COLORS.threshold;
    for (const p of pts) { ctx.beginPath(); ctx.arc(x(p.far), y(p.threshold), 2.5, 0, 2 * Math.PI); ctx.fill(); }

    // ROC points, when the calibration holds them (right axis: TAR 0..1).
    if (c.roc) {
      ctx.strokeStyle = COLORS.tar;
      ctx.fillStyle = COLORS.tar;
      ctx.textAlign = "left";
      for (let i = 0; i <= 4; i++) ctx.fillText((i / 4).toFixed(2), W - pad.r + 6, yTar(i / 4) + 4);
      const roc = c.roc.filter((p) => p.far > 0).sort((a, b) => b.far - a.far);
      ctx.beginPath();
      roc.forEach((p, i) => (i ? ctx.lineTo(x(p.far), yTar(p.tar)) : ctx.moveTo(x(p.far), yTar(p.tar))));
      ctx.stroke();
      ctx.save();
      ctx.translate(W - 10, (pad.t + H - pad.b) / 2);
      ctx.rotate(Math.PI / 2);
      ctx.textAlign = "center";
      ctx.fillText("true-accept rate", 0, 0);
      ctx.restore();
    }

    // The gallery's operating point.
    const px = x(c.verify_far);
    const py = y(c.verify_threshold);
    ctx.strokeStyle = COLORS.mark;
    ctx.fillStyle = COLORS.mark;
    ctx.lineWidth = 1.5;
    ctx.setLineDash([3, 3]);
    ctx.beginPath(); ctx.moveTo(px, H - pad.b); ctx.lineTo(px, py); ctx.lineTo(pad.l, py); ctx.stroke();
    ctx.setLineDash([]);
    ctx.beginPath(); ctx.arc(px, py, 6, 0, 2 * Math.PI); ctx.fill();
    ctx.textAlign = px > W / 2 ? "right" : "left";
    ctx.font = "bold 13px system-ui, sans-serif";
    ctx.fillText(`FAR ${c.verify_far} → threshold ${c.verify_threshold.toFixed(4)}`, px + (px > W / 2 ? -10 : 10), py - 10);
  }
})();
