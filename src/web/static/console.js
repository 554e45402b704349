// smartdesk operator console: live call panel (SSE), record form, recent records.
// Keyboard: the form is in reading order; Ctrl+Enter (or Enter in a one-line field)
// submits; when a call arrives and nothing is being typed, the cursor goes to the name.
"use strict";
(function () {
  const $ = (id) => document.getElementById(id);
  const main = $("main");
  if (!main) return;
  const csrf = main.dataset.csrf;
  const form = $("record-form");
  const fields = ["caller_name", "callback_number", "callback_wanted", "purpose", "category", "hearing"];
  let formRow = null;        // the call the form is for
  let formDone = true;       // its record has been written
  let current = null;        // the call at the seat (latest event)
  let timer = null;

  function text(el, s) { el.textContent = s == null ? "" : String(s); }

  function fmtWait(s) {
    const m = Math.floor(s / 60), r = s % 60;
    return m > 0 ? m + "分" + r + "秒" : r + "秒";
  }

  function clearErrors() {
    fields.forEach((f) => {
      const e = $("err-" + f);
      if (e) text(e, "");
      const input = $(f);
      if (input) input.removeAttribute("aria-invalid");
    });
  }

  function setHearing(items, answers) {
    const box = $("hearing-items");
    box.replaceChildren();
    (items || []).forEach((item, i) => {
      const label = document.createElement("label");
      label.htmlFor = "hearing_" + i;
      text(label, item);
      const input = document.createElement("input");
      input.id = "hearing_" + i;
      input.className = "hearing-answer";
      input.maxLength = 1000;
      input.autocomplete = "off";
      if (answers && answers[i]) input.value = answers[i];
      box.append(label, input);
    });
    $("hearing").hidden = !(items && items.length);
  }

  function resetForm() {
    form.reset();
    clearErrors();
    $("supersedes").value = "";
    $("cancel-correction").hidden = true;
    text($("record-for"), "");
  }

  function bindForm(call) {
    resetForm();
    formRow = call.row;
    formDone = !!call.recorded;
    $("call_row").value = call.row;
    $("callback_number").value = call.callback_prefill || "";
    setHearing(call.hearing_items, null);
    text($("record-for"), "（" + call.arrived_at + " " + call.caller_display + "）");
    text($("form-status"), call.recorded ? "この通話は記録済みです。" : "");
    $("form-status").className = "";
  }

  function typing() {
    const a = document.activeElement;
    return a && form.contains(a) && a.tagName !== "BUTTON";
  }

  function showCall(call) {
    current = call;
    const state = $("call-state");
    if (timer) { clearInterval(timer); timer = null; }
    if (!call || call.phase === "idle") {
      state.className = "";
      text(state, "待機中");
      $("call-info").hidden = true;
      return;
    }
    const label = { ringing: "着信中", connected: "通話中", ended: "通話終了（記録してください）" }[call.phase] || call.phase;
    state.className = call.phase;
    text(state, call.recorded && call.phase === "ended" ? "通話終了（記録済み）" : label);
    $("call-info").hidden = false;
    text($("contractor"), call.contractor_name);
    text($("greeting"), "「" + call.greeting + "」");
    text($("caller"), call.caller_display);
    text($("number"), call.number);
    let waited = call.waited_s;
    text($("waited"), fmtWait(waited));
    if (call.phase === "ringing") {
      timer = setInterval(() => { waited += 1; text($("waited"), fmtWait(waited)); }, 1000);
    }
    const ul = $("earlier");
    ul.replaceChildren();
    if (!call.earlier || call.earlier.length === 0) {
      const li = document.createElement("li");
      text(li, "なし");
      ul.append(li);
    } else {
      call.earlier.forEach((e) => {
        const li = document.createElement("li");
        const parts = [e.at];
        if (e.caller_name) parts.push(e.caller_name);
        if (e.category) parts.push(e.category);
        if (e.purpose) parts.push(e.purpose);
        if (!e.purpose && e.outcome) parts.push(e.outcome);
        text(li, parts.join(" / "));
        ul.append(li);
      });
    }
    if (formRow !== call.row && (formRow === null || formDone)) {
      const wasTyping = typing();
      bindForm(call);
      if (!wasTyping && !call.recorded) $("caller_name").focus();
    }
  }

  function collect() {
    const wanted = form.querySelector("input[name=callback_wanted]:checked");
    const sup = $("supersedes").value;
    return {
      call_row: Number($("call_row").value),
      supersedes: sup ? Number(sup) : null,
      caller_name: $("caller_name").value,
      callback_number: $("callback_number").value,
      callback_wanted: wanted ? wanted.value : "",
      purpose: $("purpose").value,
      category: $("category").value,
      hearing_answers: Array.from(document.querySelectorAll(".hearing-answer")).map((i) => i.value),
    };
  }

  async function submit(ev) {
    if (ev) ev.preventDefault();
    clearErrors();
    const status = $("form-status");
    status.className = "";
    if (!$("call_row").value) {
      text(status, "記録する通話がありません。");
      return;
    }
    const btn = $("submit");
    btn.disabled = true;
    try {
      const r = await fetch("/console/records", {
        method: "POST",
        headers: { "Content-Type": "application/json", "X-CSRF-Token": csrf },
        body: JSON.stringify(collect()),
        credentials: "same-origin",
      });
      if (r.status === 401) { location.href = "/console/login"; return; }
      const body = await r.json().catch(() => ({ ok: false, errors: [{ field: "form", message: "送信に失敗しました" }] }));
      if (body.ok) {
        formDone = true;
        resetForm();
        $("call_row").value = formRow;
        status.className = "ok";
        text(status, "記録しました（記録番号 " + body.record_id + "、報告 " + body.reports_queued + " 件を送信します）。");
        status.focus && status.setAttribute("tabindex", "-1");
        loadRecords();
      } else {
        let first = null;
        (body.errors || []).forEach((e) => {
          const slot = $("err-" + e.field);
          if (slot) {
            text(slot, e.message);
            const input = e.field === "callback_wanted" ? $("cb_yes") : e.field === "hearing" ? document.querySelector(".hearing-answer") : $(e.field);
            if (input) { input.setAttribute("aria-invalid", "true"); if (!first) first = input; }
          } else {
            text(status, e.message);
          }
        });
        if (first) first.focus();
      }
    } catch (e) {
      text(status, "送信に失敗しました。もう一度送信してください。");
    } finally {
      btn.disabled = false;
    }
  }

  form.addEventListener("submit", submit);
  document.addEventListener("keydown", (e) => {
    if (e.key === "Enter" && (e.ctrlKey || e.metaKey)) { submit(e); }
  });
  $("cancel-correction").addEventListener("click", () => {
    if (current && current.row) bindForm(current); else resetForm();
    $("caller_name").focus();
  });

  function correct(rec) {
    resetForm();
    formRow = rec.call_id;
    formDone = false;
    $("call_row").value = rec.call_id;
    $("supersedes").value = rec.id;
    $("caller_name").value = rec.caller_name || "";
    $("callback_number").value = rec.callback_number || "";
    $(rec.callback_wanted ? "cb_yes" : "cb_no").checked = true;
    $("purpose").value = rec.purpose || "";
    $("category").value = rec.category;
    const answers = (rec.hearing_answers || []).map((h) => h.answer);
    setHearing((rec.hearing_answers || []).map((h) => h.item), answers);
    text($("record-for"), "（記録 " + rec.id + " 第" + rec.version + "版の訂正）");
    $("cancel-correction").hidden = false;
    $("caller_name").focus();
  }

  async function loadRecords() {
    const r = await fetch("/console/records", { credentials: "same-origin" });
    if (!r.ok) return;
    const body = await r.json();
    const tbody = $("records-body");
    tbody.replaceChildren();
    body.records.forEach((rec) => {
      const tr = document.createElement("tr");
      tr.id = "record-" + rec.id;
      const delivery = rec.delivery.length === 0 ? "報告先なし" : rec.delivery.map((d) =>
        d.channel + ":" + ({ pending: "送信中", delivered: "送信済", failed: "失敗" }[d.state] || d.state)).join(" ");
      [rec.at, rec.caller_display, rec.caller_name, rec.category_label, rec.purpose, delivery].forEach((v) => {
        const td = document.createElement("td");
        text(td, v);
        tr.append(td);
      });
      const td = document.createElement("td");
      const b = document.createElement("button");
      b.type = "button";
      text(b, "訂正");
      b.addEventListener("click", () => correct(rec));
      td.append(b);
      tr.append(td);
      tbody.append(tr);
    });
  }

  async function seatAction(ev) {
    ev.preventDefault();
    const f = ev.target;
    const r = await fetch(f.action, {
      method: "POST",
      headers: { "X-CSRF-Token": csrf, "X-Requested-With": "fetch" },
      body: new URLSearchParams(new FormData(f)),
      credentials: "same-origin",
    });
    if (r.status === 401) { location.href = "/console/login"; return; }
    const body = await r.json().catch(() => null);
    if (!body) return;
    const s = $("seat-state");
    text(s, body.paused ? "休止中（" + body.reason + "）" : "受付中");
  }
  $("pause-form").addEventListener("submit", seatAction);
  $("resume-form").addEventListener("submit", seatAction);

  const es = new EventSource("/console/events");
  es.addEventListener("call", (e) => { try { showCall(JSON.parse(e.data)); } catch (_) {} });
  es.addEventListener("expired", () => { es.close(); location.href = "/console/login"; });
  loadRecords();
  setInterval(loadRecords, 15000);
})();

// Browser phone (issue #11): WebRTC to the daemon, signalled over POST /console/phone, call
// control on the connection's "control" data channel. Opt-in per browser (a softphone seat
// must not also ring here); remembered so that a reload reconnects.
(function () {
  const $ = (id) => document.getElementById(id);
  const main = $("main");
  const startBtn = $("phone-start");
  if (!main || !startBtn) return;
  const csrf = main.dataset.csrf;
  const btn = { answer: $("phone-answer"), decline: $("phone-decline"), hangup: $("phone-hangup"), mute: $("phone-mute"), hold: $("phone-hold") };
  const stateEl = $("phone-state");
  let pc = null, dc = null, mic = null, phase = "off", muted = false, held = false, ringer = null;

  function show(p, label) {
    phase = p;
    stateEl.textContent = label;
    stateEl.className = "phone-" + p;
    startBtn.hidden = !(p === "off" || p === "error");
    btn.answer.hidden = btn.decline.hidden = p !== "ringing";
    btn.hangup.hidden = btn.mute.hidden = btn.hold.hidden = p !== "connected";
    ring(p === "ringing");
  }

  // Ring tone made in the page (no media file to fetch): 1 s of 400/450 Hz, 2 s silence.
  function ring(on) {
    if (!on) { if (ringer) { ringer.stop(); ringer = null; } return; }
    if (ringer) return;
    try {
      const ctx = new (window.AudioContext || window.webkitAudioContext)();
      const gain = ctx.createGain();
      gain.gain.value = 0;
      gain.connect(ctx.destination);
      [400, 450].forEach((f) => { const o = ctx.createOscillator(); o.frequency.value = f; o.connect(gain); o.start(); });
      let n = 0;
      const t = setInterval(() => { gain.gain.value = (n++ % 3 === 0) ? 0.1 : 0; }, 1000);
      ringer = { stop: () => { clearInterval(t); ctx.close(); } };
    } catch (_) { ringer = null; }
  }

  function send(o) { if (dc && dc.readyState === "open") dc.send(JSON.stringify(o)); }

  function onEvent(ev) {
    if (ev.event === "ringing") {
      show("ringing", "着信中：【" + (ev.contractor || "") + "】" + (ev.caller || "") + "　第一声「" + (ev.greeting || "") + "」");
      btn.answer.focus();
    } else if (ev.event === "connected") {
      muted = held = false;
      if (mic) mic.enabled = true;
      $("phone-audio").muted = false;
      btn.mute.setAttribute("aria-pressed", "false");
      btn.hold.setAttribute("aria-pressed", "false");
      show("connected", "通話中");
    } else if (ev.event === "ended" || ev.event === "ready") {
      show("ready", "受付可能（ブラウザ電話）");
    } else if (ev.event === "refused") {
      show("error", "この席はブラウザ電話を使えません。");
    }
  }

  function lost() {
    if (phase === "off" || phase === "error") return;
    show("error", "ブラウザ電話が切断されました。もう一度開始してください。");
    if (pc) { try { pc.close(); } catch (_) {} }
    pc = dc = null;
  }

  function gathered(c, ms) {
    return new Promise((resolve) => {
      if (c.iceGatheringState === "complete") return resolve();
      const t = setTimeout(resolve, ms);
      c.addEventListener("icegatheringstatechange", () => {
        if (c.iceGatheringState === "complete") { clearTimeout(t); resolve(); }
      });
    });
  }

  async function start() {
    show("starting", "接続中…");
    try {
      const stream = await navigator.mediaDevices.getUserMedia({ audio: true });
      mic = stream.getAudioTracks()[0];
      pc = new RTCPeerConnection({ iceServers: [] });
      pc.addTrack(mic, stream);
      dc = pc.createDataChannel("control");
      dc.onmessage = (e) => { try { onEvent(JSON.parse(e.data)); } catch (_) {} };
      dc.onopen = () => { localStorage.setItem("smartdesk-phone", "on"); show("starting", "接続中…（席を登録しています）"); };
      dc.onclose = lost;
      pc.ontrack = (e) => { $("phone-audio").srcObject = e.streams[0] || new MediaStream([e.track]); };
      pc.onconnectionstatechange = () => { if (pc && (pc.connectionState === "failed" || pc.connectionState === "closed")) lost(); };
      await pc.setLocalDescription(await pc.createOffer());
      await gathered(pc, 3000);
      const r = await fetch("/console/phone", {
        method: "POST",
        headers: { "Content-Type": "application/json", "X-CSRF-Token": csrf },
        body: JSON.stringify({ sdp: pc.localDescription.sdp }),
        credentials: "same-origin",
      });
      if (r.status === 401) { location.href = "/console/login"; return; }
      const body = await r.json();
      if (!body.ok) throw new Error((body.errors || []).map((e) => e.message).join(" "));
      await pc.setRemoteDescription({ type: "answer", sdp: body.sdp });
    } catch (e) {
      if (pc) { try { pc.close(); } catch (_) {} }
      pc = dc = null;
      show("error", "ブラウザ電話を開始できません：" + (e && e.message ? e.message : e));
    }
  }

  startBtn.addEventListener("click", start);
  btn.answer.addEventListener("click", () => send({ op: "answer" }));
  btn.decline.addEventListener("click", () => send({ op: "decline" }));
  btn.hangup.addEventListener("click", () => send({ op: "hangup" }));
  btn.mute.addEventListener("click", () => {
    muted = !muted;
    if (mic) mic.enabled = !muted && !held;
    btn.mute.setAttribute("aria-pressed", String(muted));
    btn.mute.textContent = muted ? "ミュート解除" : "ミュート";
  });
  btn.hold.addEventListener("click", () => {
    held = !held;
    if (mic) mic.enabled = !muted && !held;
    $("phone-audio").muted = held;
    send({ op: "hold", on: held });
    btn.hold.setAttribute("aria-pressed", String(held));
    btn.hold.textContent = held ? "保留解除" : "保留";
    stateEl.textContent = held ? "保留中" : "通話中";
  });
  document.addEventListener("keydown", (e) => {
    if (e.key === "F2" && phase === "ringing") { e.preventDefault(); send({ op: "answer" }); }
    else if (e.key === "F4" && phase === "ringing") { e.preventDefault(); send({ op: "decline" }); }
    else if (e.key === "F4" && phase === "connected") { e.preventDefault(); send({ op: "hangup" }); }
  });
  window.addEventListener("pagehide", () => { if (pc) pc.close(); });
  // Diagnostics for tests and support: the connection (getStats) and the phase.
  window.smartdeskPhone = { get pc() { return pc; }, get phase() { return phase; } };
  if (localStorage.getItem("smartdesk-phone") === "on") start();
})();
