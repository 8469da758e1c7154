// edge-ecg bedside display: sweeping ECG at 25 mm/s with an erase bar, HR, lead and source
// state, IEC 60601-1-8 alarm signals, acknowledge / audio pause with the local secret, model
// findings and the alarm history. Everything arrives pushed over one EventSource (/events);
// the page never polls. window.edgeEcg.stats holds what the tests and the benchmark read.
"use strict";
(function () {
  const GAP = -32768;
  const MM_PER_S = 25, MM_PER_MV = 10;
  const RING = 8192;              // display samples kept per lead (>= 32 s at 250 Hz)
  const LAG_S = 0.05;             // playout buffer: absorbs frame jitter, keeps the sweep smooth
  const LABEL_W = 44, ERASE_W = 16;
  const stats = { rafFrames: 0, rafMissed: 0, rafStart: 0, drawLat: [], recvLat: [], alarmLat: [], frameWork: [], framesRecv: 0,
                  samplesDrawn: 0, sweepX: 0, waveMessages: 0, stateMessages: 0, connects: 0, lastHr: null };
  const S = { leads: [], fs: 250, k: 1, pxPerMm: 96 / 25.4, ring: [], ringJ: new Float64Array(RING).fill(-1),
              recvJ: null, drawJ: null, lastJ: null, rate: 250, lastRecvWall: 0, lastRecvJ: 0, marks: [],
              state: null, streamT: 0, hr: null, off: [], secret: null, secretUntil: 0, unlockS: 60, control: false, relearn: false,
              pending: null, history: [], shownAlarms: new Set() };
  window.edgeEcg = { stats: stats, S: S };
  const $ = (id) => document.getElementById(id);
  const canvas = $("waves"), ctx = canvas.getContext("2d", { alpha: false });
  let geom = null;

  function pushBounded(arr, v, n) { arr.push(v); if (arr.length > n) arr.splice(0, arr.length - n); }
  function now() { return performance.timeOrigin + performance.now(); }
  function fmtT(t) { if (t == null) return "--"; const m = Math.floor(t / 60), s = Math.floor(t % 60); return m + ":" + String(s).padStart(2, "0"); }
  function el(tag, cls, text) { const e = document.createElement(tag); if (cls) e.className = cls; if (text != null) e.textContent = text; return e; }
  function pretty(name) { return (name || "").replace(/^model:/, "model: ").replace(/_/g, " "); }

  // ---- geometry --------------------------------------------------------------------------
  function layout() {
    const box = $("wave-box"), dpr = window.devicePixelRatio || 1;
    const w = Math.max(100, box.clientWidth), h = Math.max(100, box.clientHeight);
    canvas.width = Math.round(w * dpr); canvas.height = Math.round(h * dpr);
    ctx.setTransform(dpr, 0, 0, dpr, 0, 0);
    ctx.fillStyle = "#000"; ctx.fillRect(0, 0, w, h);
    const n = Math.max(1, S.leads.length), cols = n > 6 ? 2 : 1, rows = Math.ceil(n / cols);
    const colW = w / cols, rowH = h / rows;
    const strips = [];
    for (let i = 0; i < n; i++) {
      const c = Math.floor(i / rows), r = i % rows;
      strips.push({ x0: c * colW + LABEL_W, x1: (c + 1) * colW - 4, y0: r * rowH, h: rowH, mid: r * rowH + rowH / 2 });
    }
    geom = { w: w, h: h, strips: strips, sweepW: colW - LABEL_W - 4, pxPerSample: MM_PER_S * S.pxPerMm / S.fs,
             pxPerUv: MM_PER_MV * S.pxPerMm / 1000 };
    S.lastJ = null;
    drawLabels();
    $("scale").textContent = MM_PER_S + " mm/s \u00b7 " + MM_PER_MV + " mm/mV \u00b7 " + (S.leads.join(", ") || "no leads") +
      " @ " + (S.fs * S.k).toFixed(0) + " Hz";
  }

  function drawLabels() {
    if (!geom) return;
    geom.strips.forEach(function (st, i) {
      ctx.fillStyle = "#000"; ctx.fillRect(st.x0 - LABEL_W, st.y0, LABEL_W - 2, st.h);
      ctx.fillStyle = "#3cff6a"; ctx.font = "bold 14px sans-serif"; ctx.fillText(S.leads[i] || "", st.x0 - LABEL_W + 4, st.y0 + 18);
      if (S.off[i]) { ctx.fillStyle = "#ffd000"; ctx.font = "bold 11px sans-serif"; ctx.fillText("LEAD", st.x0 - LABEL_W + 4, st.y0 + 36); ctx.fillText("OFF", st.x0 - LABEL_W + 4, st.y0 + 49); }
      // 1 mV calibration pulse
      const cy = st.mid + 0.5 * 1000 * geom.pxPerUv;
      ctx.strokeStyle = "#3cff6a"; ctx.lineWidth = 1; ctx.beginPath();
      ctx.moveTo(st.x0 - 14, cy); ctx.lineTo(st.x0 - 12, cy); ctx.lineTo(st.x0 - 12, cy - 1000 * geom.pxPerUv);
      ctx.lineTo(st.x0 - 6, cy - 1000 * geom.pxPerUv); ctx.lineTo(st.x0 - 6, cy); ctx.lineTo(st.x0 - 4, cy); ctx.stroke();
    });
  }

  // ---- waveform data -------------------------------------------------------------------------
  function onStream(m) {
    S.leads = m.leads; S.fs = m.fs; S.k = m.k;
    S.ring = m.leads.map(function () { return new Int16Array(RING); });
    S.ringJ.fill(-1); S.recvJ = null; S.drawJ = null; S.rate = m.fs; S.marks = [];
    layout();
  }

  function onWave(m) {
    const t = now();
    stats.waveMessages++; stats.framesRecv++;
    if (!S.leads.length) return;
    const bin = atob(m.d), n = m.n, L = S.leads.length;
    const buf = new Int16Array(n * L), bytes = new Uint8Array(buf.buffer);
    for (let i = 0; i < bytes.length; i++) bytes[i] = bin.charCodeAt(i);
    for (let r = 0; r < n; r++) {
      const j = m.j + r, slot = j % RING;
      for (let l = 0; l < L; l++) S.ring[l][slot] = buf[r * L + l];
      S.ringJ[slot] = j;
    }
    const end = m.j + n;
    if (S.recvJ !== null && S.lastRecvWall) {
      const dt = (t - S.lastRecvWall) / 1000;
      if (dt > 0.005 && end > S.lastRecvJ) S.rate = 0.9 * S.rate + 0.1 * Math.min(S.fs * 20, Math.max(S.fs * 0.2, (end - S.lastRecvJ) / dt));
    }
    S.lastRecvWall = t; S.lastRecvJ = end;
    S.recvJ = S.recvJ === null ? end : Math.max(S.recvJ, end);
    if (S.drawJ === null || S.recvJ - S.drawJ > S.rate * 2 || S.drawJ > S.recvJ + S.rate) S.drawJ = Math.max(m.j, S.recvJ - S.rate * LAG_S);
    pushBounded(stats.recvLat, t - m.w1, 3000);
    S.marks.push({ j0: m.j, j1: end - 1, w0: m.w0, w1: m.w1, d0: false });
    if (S.marks.length > 400) S.marks.splice(0, S.marks.length - 400);
    S.streamT = m.t;
    if (m.hr !== undefined) setHr(m.hr);
    if (m.off && m.off.join() !== S.off.join()) { S.off = m.off; drawLabels(); if (S.state) renderSource(S.state); }
  }

  function setHr(hr) {
    S.hr = hr; stats.lastHr = hr;
    $("hr").textContent = hr == null ? "---" : String(Math.round(hr));
  }

  // ---- sweep ---------------------------------------------------------------------------------
  let lastFrame = 0;
  function frame(ts) {
    requestAnimationFrame(frame);
    const w0 = performance.now();
    if (lastFrame) {
      const dt = ts - lastFrame;
      stats.rafFrames++;
      const missed = Math.round(dt / (1000 / 60)) - 1;
      if (missed > 0) stats.rafMissed += missed;
    } else { stats.rafStart = now(); }
    const dtS = lastFrame ? Math.min(0.25, (ts - lastFrame) / 1000) : 0;
    lastFrame = ts;
    if (geom && S.drawJ !== null && S.recvJ !== null) {
      let target = S.drawJ + S.rate * dtS;
      const lag = S.recvJ - target, want = S.rate * LAG_S;
      if (lag > want * 1.5) target += (lag - want) * 0.15;   // behind: catch up within a few frames
      if (target > S.recvJ) target = S.recvJ;                // never draw what has not arrived
      S.drawJ = Math.max(S.drawJ, target);
      draw(Math.floor(S.drawJ));
    }
    updateCountdown();
    pushBounded(stats.frameWork, performance.now() - w0, 3000);  // the page's own script time per frame
  }

  function draw(upto) {
    const g = geom, L = S.leads.length;
    if (S.lastJ === null) S.lastJ = upto - 1;
    if (upto <= S.lastJ) return;
    if (upto - S.lastJ > RING / 2) S.lastJ = upto - 1;
    const t = now();
    const from = S.lastJ;
    ctx.lineWidth = 1.4; ctx.strokeStyle = "#3cff6a";
    for (let l = 0; l < L; l++) {
      const st = g.strips[l]; if (!st) continue;
      const ring = S.ring[l];
      // erase bar ahead of the pen
      eraseSpan(st, ((from + 1) * g.pxPerSample) % g.sweepW, (upto - from) * g.pxPerSample + ERASE_W);
      ctx.beginPath();
      let pen = false, prevX = -1;
      for (let j = from; j <= upto; j++) {
        const slot = ((j % RING) + RING) % RING;
        const v = S.ringJ[slot] === j ? ring[slot] : GAP;
        const x = st.x0 + (j * g.pxPerSample) % g.sweepW;
        if (v === GAP || x < prevX) { pen = false; if (v === GAP) { prevX = x; continue; } }
        const y = Math.max(st.y0 + 1, Math.min(st.y0 + st.h - 1, st.mid - v * g.pxPerUv));
        if (pen) ctx.lineTo(x, y); else { ctx.moveTo(x, y); pen = true; }
        prevX = x;
      }
      ctx.stroke();
    }
    stats.samplesDrawn += upto - from;
    stats.sweepX = (upto * g.pxPerSample) % g.sweepW;
    S.lastJ = upto;
    for (const mk of S.marks) {
      if (!mk.d0 && upto >= mk.j0) { mk.d0 = true; pushBounded(stats.drawLat, t - mk.w0, 3000); }
      if (upto >= mk.j1) { mk.done = true; pushBounded(stats.drawLat, t - mk.w1, 3000); }
    }
    S.marks = S.marks.filter(function (mk) { return !mk.done; });
  }

  function eraseSpan(st, xa, len) {
    // clear [xa, xa + len) of the sweep, wrapping at its right edge
    const W = geom.sweepW;
    ctx.fillStyle = "#000";
    if (len >= W) { ctx.fillRect(st.x0, st.y0, W, st.h); return; }
    const end = xa + len;
    if (end <= W) { ctx.fillRect(st.x0 + xa, st.y0, len, st.h); return; }
    ctx.fillRect(st.x0 + xa, st.y0, W - xa, st.h);
    ctx.fillRect(st.x0, st.y0, end - W, st.h);
  }

  // ---- alarms and state ------------------------------------------------------------------------
  const PRIO = { high: 3, medium: 2, low: 1 };
  function ordered(alarms) {
    return alarms.slice().sort(function (a, b) {
      return (PRIO[b.priority] - PRIO[a.priority]) || ((a.category === "technical") - (b.category === "technical")) || (a.onset_t - b.onset_t);
    });
  }
  function alarmFlags(a) {
    const f = [];
    if (a.latched) f.push("LATCHED"); else if (!a.active) f.push("ended");
    if (a.acknowledged) f.push("ACKNOWLEDGED");
    f.push("since " + fmtT(a.onset_t));
    return f.join(" \u00b7 ");
  }
  function visualClass(a) {
    // flashing for unacknowledged high and medium alarms; low steady; acknowledged alarms stay lit but stop flashing
    return a.priority + " " + a.category + ((a.priority !== "low" && !a.acknowledged) ? " flash" : "");
  }

  function onState(m) {
    stats.stateMessages++;
    const st = m.state; S.state = st;
    if (st.unlock_s) S.unlockS = st.unlock_s;
    if (st.px_per_mm && Math.abs(st.px_per_mm - S.pxPerMm) > 1e-6) { S.pxPerMm = st.px_per_mm; layout(); }
    S.control = !!st.control_enabled;
    S.relearn = !!st.relearn_enabled;
    if (st.hr !== undefined && st.hr !== S.hr) setHr(st.hr);
    if (typeof st.stream_t === "number" && st.stream_t > S.streamT) S.streamT = st.stream_t;
    renderAlarms(st.alarms || []);
    renderSource(st);
    renderFindings(st.findings || []);
    (m.events || []).forEach(addHistory);
    const t = now();
    (m.events || []).forEach(function (e) {
      if (e.kind === "raised" && e.wall) pushBounded(stats.alarmLat, { alarm: e.alarm, ms: t - e.wall * 1000, priority: e.priority }, 200);
    });
    renderControls();
  }

  function renderAlarms(alarms) {
    const list = ordered(alarms), b = $("banner");
    const top = list[0];
    if (!top) {
      b.className = "banner none"; b.querySelector(".msg").textContent = "No alarms";
      b.querySelector(".kind").textContent = ""; b.querySelector(".flags").textContent = "";
    } else {
      const cls = "banner " + visualClass(top);
      if (b.className !== cls) b.className = cls;
      b.dataset.alarm = top.alarm; b.dataset.priority = top.priority; b.dataset.category = top.category;
      b.querySelector(".kind").textContent = top.category === "technical" ? "TECHNICAL" : "PATIENT";
      b.querySelector(".msg").textContent = pretty(top.alarm).toUpperCase();
      b.querySelector(".flags").textContent = alarmFlags(top);
    }
    const ul = $("alarm-list"); ul.textContent = "";
    list.slice(1).forEach(function (a) {
      const li = el("li", visualClass(a), (a.category === "technical" ? "\u2699 " : "\u2665 ") + pretty(a.alarm) + " \u00b7 " + alarmFlags(a));
      li.dataset.alarm = a.alarm; ul.appendChild(li);
    });
  }

  function renderSource(st) {
    const src = $("source"), s = st.source || "unknown";
    const ok = s === "streaming" || s === "connected";
    src.className = "source " + (ok ? "ok" : "bad");
    src.textContent = "source: " + (s === "lost" ? "SIGNAL LOST" : s);
    const off = (S.leads || []).filter(function (_, i) { return S.off[i]; });
    if (off.length) src.textContent += " \u00b7 LEADS OFF: " + off.join(", ");
    const noisy = (st.quality || []).filter(function (q) { return q.noisy; }).map(function (q) { return q.lead; });
    if (noisy.length) src.textContent += " \u00b7 noisy: " + noisy.join(", ");
    $("stream").textContent = "stream t " + fmtT(S.streamT);
  }

  function renderFindings(findings) {
    const ul = $("findings-list");
    if (!findings.length) return;
    ul.textContent = "";
    findings.forEach(function (f) {
      ul.appendChild(el("li", "bundle", f.bundle + " \u00b7 window ending " + fmtT(f.window && f.window[1])));
      f.labels.forEach(function (x) {
        const li = el("li", x.flagged ? "flagged" : "");
        li.appendChild(el("span", "", x.label + (x.flagged ? " (finding)" : "")));
        li.appendChild(el("span", "", "p=" + x.p.toFixed(2) + " / " + x.threshold.toFixed(2)));
        li.dataset.label = x.label; ul.appendChild(li);
      });
    });
  }

  function describe(e) {
    if (e.kind === "operator_action") {
      const who = (e.origin && (e.origin.via + " " + (e.origin.remote || ""))) || "";
      return e.action + (e.accepted ? " accepted" : " REFUSED (" + (e.reason || "") + ")") + " \u00b7 " + who;
    }
    return e.kind + " " + pretty(e.alarm || "") + (e.priority ? " (" + e.priority + ")" : "") + (e.audio ? " \u00b7 audio " + e.audio : "");
  }

  function addHistory(e) {
    if (!e || !e.kind) return;
    if (e.kind !== "operator_action" && !e.alarm && e.kind !== "audio_paused" && e.kind !== "audio_resumed") return;
    S.history.push(e);
    const ol = $("history-list");
    const li = el("li", e.kind === "operator_action" ? ("action" + (e.accepted ? "" : " refused")) : "");
    li.appendChild(el("span", "", fmtT(e.t) + " "));
    li.appendChild(el("span", e.priority ? "p-" + e.priority : "", describe(e)));
    if (e.evidence_url) {
      const btn = el("button", "", "snapshot"); btn.type = "button";
      btn.addEventListener("click", function () { showEvidence(e); });
      li.appendChild(btn);
    }
    li.dataset.kind = e.kind; if (e.alarm) li.dataset.alarm = e.alarm;
    ol.insertBefore(li, ol.firstChild);
    while (ol.children.length > 200) ol.removeChild(ol.lastChild);
  }

  function showEvidence(e) {
    const d = $("evidence-dialog"), img = $("evidence-img");
    img.src = e.evidence_url + "?seq=" + (e.seq || "");
    $("evidence-caption").textContent = pretty(e.alarm) + " at " + fmtT(e.t) + " (stream time) \u00b7 " + JSON.stringify(e.evidence || {}).slice(0, 300);
    d.showModal();
  }

  // ---- controls --------------------------------------------------------------------------------
  function renderControls() {
    const st = S.state || {}, alarms = st.alarms || [];
    const ackable = alarms.some(function (a) { return !a.acknowledged || a.latched; });
    $("ack").disabled = !S.control || !ackable;
    $("pause").disabled = !S.control;
    $("relearn").hidden = !S.relearn;
    $("lock").textContent = S.control ? (S.secret && now() < S.secretUntil ? "unlocked" : "PIN needed for actions") : "actions disabled: no PIN configured";
    updateCountdown();
  }
  function updateCountdown() {
    const st = S.state; if (!st) return;
    const a = $("audio"), p = $("pause");
    if (st.paused_until != null) {
      const left = Math.max(0, st.paused_until - Math.max(S.streamT, st.t || 0));
      a.className = "audio paused"; a.textContent = "AUDIO PAUSED " + fmtT(left);
      $("pause-left").textContent = fmtT(left); p.classList.add("active");
    } else {
      a.className = "audio"; a.textContent = "audio " + (st.audio || "off");
      $("pause-left").textContent = ""; p.classList.remove("active");
    }
  }

  function post(path, body) {
    return fetch(path, { method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify(body), cache: "no-store" })
      .then(function (r) { return r.json().then(function (j) { j.status = r.status; return j; }); });
  }
  function act(action, extra) {
    if (S.secret && now() < S.secretUntil) return send(action, extra, S.secret);
    askPin(action, extra);
  }
  function send(action, extra, secret) {
    return post("/api/" + action, Object.assign({ secret: secret }, extra || {})).then(function (r) {
      if (r.ok) { S.secret = secret; S.secretUntil = now() + 1000 * (r.unlock_s || S.unlockS); $("pin-dialog").close(); renderControls(); }
      else { S.secret = null; if (!$("pin-dialog").open) askPin(action, extra); $("pin-msg").textContent = "Refused: " + r.error; }
      return r;
    });
  }
  function askPin(action, extra) {
    S.pending = { action: action, extra: extra };
    $("pin-title").textContent = ({ ack: "Acknowledge", pause: "Audio pause", relearn: "Relearn rhythm" }[action] || action) + ": enter PIN";
    $("pin-input").value = ""; $("pin-msg").textContent = "";
    $("pin-dialog").showModal(); $("pin-input").focus();
  }
  function buildKeypad() {
    const pad = $("keypad");
    ["1", "2", "3", "4", "5", "6", "7", "8", "9", "\u232b", "0", "C"].forEach(function (k) {
      const b = el("button", "", k); b.type = "button";
      b.addEventListener("click", function () {
        const inp = $("pin-input");
        if (k === "\u232b") inp.value = inp.value.slice(0, -1); else if (k === "C") inp.value = ""; else inp.value += k;
      });
      pad.appendChild(b);
    });
    $("pin-ok").addEventListener("click", function () { if (S.pending) send(S.pending.action, S.pending.extra, $("pin-input").value); });
    $("pin-input").addEventListener("keydown", function (ev) { if (ev.key === "Enter" && S.pending) send(S.pending.action, S.pending.extra, $("pin-input").value); });
    $("pin-cancel").addEventListener("click", function () { S.pending = null; $("pin-dialog").close(); });
    $("evidence-close").addEventListener("click", function () { $("evidence-dialog").close(); });
    $("ack").addEventListener("click", function () { act("ack", {}); });
    $("pause").addEventListener("click", function () { act("pause", {}); });
    // relearn changes what the VT rule sees for the rest of the stream: the page asks first
    $("relearn").addEventListener("click", function () { $("relearn-dialog").showModal(); });
    $("relearn-cancel").addEventListener("click", function () { $("relearn-dialog").close(); });
    $("relearn-ok").addEventListener("click", function () { $("relearn-dialog").close(); act("relearn", {}); });
  }

  // ---- connection --------------------------------------------------------------------------------
  function connect() {
    const es = new EventSource("/events");
    es.addEventListener("hello", function (ev) {
      stats.connects++;
      const m = JSON.parse(ev.data);
      $("link").textContent = "live"; $("link").className = "";
      if (m.stream && m.stream.leads) onStream(m.stream);
      $("history-list").textContent = ""; S.history = [];
      (m.history || []).forEach(addHistory);
      onState({ state: m.state, events: [] });
    });
    es.addEventListener("stream", function (ev) { onStream(JSON.parse(ev.data)); });
    es.addEventListener("wave", function (ev) { onWave(JSON.parse(ev.data)); });
    es.addEventListener("state", function (ev) { onState(JSON.parse(ev.data)); });
    es.onerror = function () { $("link").textContent = "DISPLAY NOT CONNECTED TO THE MONITOR (reconnecting)"; $("link").className = "bad"; };
  }

  window.addEventListener("resize", function () { if (S.leads.length) layout(); });
  buildKeypad();
  connect();
  requestAnimationFrame(frame);
})();
