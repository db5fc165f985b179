// The imctl chat page: plain JavaScript over the documented protocol (docs/PROTOCOL.md).
// Every body, name and error is put in the page as text (textContent), never as markup.
"use strict";

(() => {
  const HISTORY = 50;          // messages shown when a conversation opens
  const MAX_ROOMS = 50;        // rooms followed at once (the server allows 1,000 subscriptions)
  const ROOM = /^[a-z0-9][a-z0-9_.-]{0,63}$/;
  const USER = /^[a-z0-9][a-z0-9_.-]{0,31}$/;
  const $ = (id) => document.getElementById(id);
  const utf8 = new TextEncoder();

  /** name ("general" or "@bob") → { name, direct, messages: Map seq → msg, lastSeq, unread, ready, loaded, summarySeq, item } */
  const convs = new Map();
  const outbox = new Map();    // client id → { cid, to, body, el }: sent, not yet acknowledged, in order
  const pendingBySeq = new Map(); // "room#seq" → element of an acked send whose msg has not arrived
  let token = null, me = null, open = null;
  let ws = null, online = false, attempt = 0, retryTimer = null, resendTimer = null, resendDelay = 50;
  let dmAfterID = 0, maxBytes = null, sessionOver = false;
  const prefix = Array.from(crypto.getRandomValues(new Uint8Array(6)), (b) => b.toString(16).padStart(2, "0")).join("");
  let counter = 0;

  // ---- sign-in ----------------------------------------------------------------------------------

  async function api(method, path, body) {
    const headers = { "content-type": "application/json" };
    if (token) headers.authorization = "Bearer " + token;
    const response = await fetch(path, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
    let json = null;
    try { json = await response.json(); } catch { /* 204 or not JSON */ }
    return { response, json };
  }

  function errorText(response, json) {
    const message = json && json.error && json.error.message;
    if (response.status === 429) return (message || "Too many attempts") + ` (try again in ${response.headers.get("retry-after") || "a few"} s)`;
    return message || `${response.status} ${response.statusText}`;
  }

  async function signIn(event) {
    event.preventDefault();
    const user = $("login-user").value.trim(), password = $("login-password").value;
    const request = { user, password };
    const otp = $("login-otp").value.trim();
    if (!$("login-otp-label").hidden && otp) request.otp = otp;
    $("login-submit").disabled = true;
    $("login-error").textContent = "";
    try {
      const { response, json } = await api("POST", "/v1/login", request);
      if (response.status === 401 && response.headers.get("x-imctl-otp") === "required" && !request.otp) {
        $("login-otp-label").hidden = false;
        $("login-otp").focus();
        $("login-error").textContent = "Enter the code from your authenticator app.";
        return;
      }
      if (!response.ok) { $("login-error").textContent = errorText(response, json); return; }
      localStorage.setItem("imctl.token", json.token);
      token = json.token;
      $("login-password").value = "";
      $("login-otp").value = "";
      await start();
    } catch (e) {
      $("login-error").textContent = "The server cannot be reached: " + e.message;
    } finally {
      $("login-submit").disabled = false;
    }
  }

  function showLogin(message) {
    $("chat").hidden = true;
    $("login").hidden = false;
    $("login-otp-label").hidden = true;
    $("login-error").textContent = message || "";
    $("login-user").focus();
  }

  async function signOut() {
    if (token) { try { await api("POST", "/v1/logout"); } catch { /* offline: the token expires anyway */ } }
    endSession("");
  }

  function endSession(message) {
    sessionOver = true;
    localStorage.removeItem("imctl.token");
    token = null;
    online = false;
    clearTimeout(retryTimer);
    if (ws) { const old = ws; ws = null; old.close(1000); }
    showLogin(message);
  }

  async function start() {
    token = token || localStorage.getItem("imctl.token");
    if (!token) { showLogin(); return; }
    let who;
    try {
      who = await api("GET", "/v1/me");
    } catch (e) {
      setState("offline", "server unreachable");
      retryTimer = setTimeout(start, 2000);
      return;
    }
    if (who.response.status === 401) { endSession("Your session has ended; sign in again."); return; }
    if (!who.response.ok) { setState("offline", errorText(who.response, who.json)); retryTimer = setTimeout(start, 2000); return; }
    me = who.json.name;
    sessionOver = false;
    convs.clear(); outbox.clear(); pendingBySeq.clear();
    open = null;
    $("rooms").replaceChildren(); $("directs").replaceChildren(); $("messages").replaceChildren();
    $("title").textContent = "Open a room";
    $("body").disabled = true;
    $("send").disabled = true;
    $("me").textContent = me;
    $("login").hidden = true;
    $("chat").hidden = false;

    let summaries = [];
    try {
      const list = await api("GET", "/v1/conversations?limit=200");
      if (list.response.ok) summaries = list.json.conversations;
    } catch { /* the socket's reconnect loop reports the server's state */ }
    dmAfterID = summaries.reduce((max, c) => Math.max(max, c.id), 0);
    let rooms = 0;
    for (const c of summaries) {
      if (!c.room.startsWith("@") && rooms++ >= MAX_ROOMS) continue;
      conversation(c.room).summarySeq = c.seq;
    }
    for (const name of joined()) conversation(name);
    const last = localStorage.getItem(`imctl.open.${me}`);
    const first = (last && convs.has(last)) ? last : [...convs.keys()][0];
    if (first) openConversation(first);
    connect();
  }

  // ---- conversations ----------------------------------------------------------------------------

  function joined() {
    try { return JSON.parse(localStorage.getItem(`imctl.joined.${me}`) || "[]"); } catch { return []; }
  }

  function remember(name) {
    const names = joined().filter((n) => n !== name);
    names.unshift(name);
    localStorage.setItem(`imctl.joined.${me}`, JSON.stringify(names.slice(0, MAX_ROOMS)));
  }

  function conversation(name) {
    let conv = convs.get(name);
    if (conv) return conv;
    const direct = name.startsWith("@");
    conv = { name, direct, messages: new Map(), lastSeq: 0, unread: 0, ready: direct, loaded: false, summarySeq: 0, item: null };
    const li = document.createElement("li");
    li.dataset.conv = name;
    const label = document.createElement("span");
    label.className = "name";
    label.textContent = name;
    const unread = document.createElement("span");
    unread.className = "unread";
    unread.hidden = true;
    li.append(label, unread);
    li.addEventListener("click", () => openConversation(name));
    conv.item = li;
    $(direct ? "directs" : "rooms").append(li);
    convs.set(name, conv);
    if (!direct && online) subscribe(conv);
    return conv;
  }

  function openByName(event) {
    event.preventDefault();
    const name = $("open-name").value.trim().toLowerCase();
    const valid = name.startsWith("@") ? USER.test(name.slice(1)) : ROOM.test(name);
    if (!valid) {
      $("open-error").textContent = "A room is a-z, 0-9, _ . - (up to 64); a person is @name.";
      return;
    }
    if (name === "@" + me) { $("open-error").textContent = "That is you."; return; }
    $("open-error").textContent = "";
    $("open-name").value = "";
    remember(name);
    conversation(name);
    openConversation(name);
  }

  function openConversation(name) {
    const conv = conversation(name);
    if (open) open.item.classList.remove("open");
    open = conv;
    conv.item.classList.add("open");
    conv.unread = 0;
    showUnread(conv);
    localStorage.setItem(`imctl.open.${me}`, name);
    $("title").textContent = name;
    $("body").disabled = false;
    $("send").disabled = false;
    render();
    if (conv.direct && !conv.loaded) loadDirect(conv);
    $("body").focus();
  }

  /** The recent history of a direct conversation: @* only brings what is new since the page started. */
  async function loadDirect(conv) {
    conv.loaded = true;
    try {
      const { response, json } = await api("GET", `/v1/history?to=${encodeURIComponent(conv.name)}&last=${HISTORY}`);
      if (!response.ok) { conv.loaded = false; return; }
      for (const m of json.messages) add(conv, m, false);
    } catch { conv.loaded = false; }
  }

  function showUnread(conv) {
    const badge = conv.item.querySelector(".unread");
    badge.hidden = conv.unread === 0;
    badge.textContent = String(conv.unread);
  }

  // ---- messages ---------------------------------------------------------------------------------

  function add(conv, m, live) {
    if (conv.messages.has(m.seq)) return;            // a resume or a history page overlapping the live feed
    conv.messages.set(m.seq, m);
    if (!conv.direct) conv.lastSeq = Math.max(conv.lastSeq, m.seq);
    const pending = pendingBySeq.get(`${conv.name}#${m.seq}`);
    if (pending) { pendingBySeq.delete(`${conv.name}#${m.seq}`); pending.remove(); }
    if (conv === open) {
      const list = $("messages");
      const near = list.scrollHeight - list.scrollTop - list.clientHeight < 40;
      const shown = list.querySelectorAll(".msg:not(.pending):not(.failed)");
      const lastShown = shown.length ? Number(shown[shown.length - 1].dataset.seq) : 0;
      if (m.seq > lastShown) {
        const firstPending = list.querySelector(".msg.pending, .msg.failed");
        list.insertBefore(element(m), firstPending);
      } else {
        render();
      }
      if (near || m.from === me) list.scrollTop = list.scrollHeight;
    } else if (live && conv.ready && m.from !== me) {
      conv.unread += 1;
      showUnread(conv);
    }
  }

  function element(m) {
    const li = document.createElement("li");
    li.className = "msg" + (m.from === me ? " mine" : "");
    li.dataset.seq = String(m.seq);
    const ts = document.createElement("time");
    ts.className = "ts";
    ts.dateTime = m.ts;
    ts.title = m.ts;
    ts.textContent = new Date(m.ts).toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" });
    const from = document.createElement("span");
    from.className = "from";
    from.textContent = m.from;
    const body = document.createElement("span");
    body.className = "body";
    body.textContent = m.body;                         // text, never markup
    li.append(ts, from, body);
    return li;
  }

  function render() {
    const list = $("messages");
    list.replaceChildren();
    if (!open) return;
    const seqs = [...open.messages.keys()].sort((a, b) => a - b);
    list.replaceChildren(...seqs.map((s) => element(open.messages.get(s))));
    for (const item of outbox.values()) if (item.to === open.name) list.append(item.el);
    for (const [key, el] of pendingBySeq) if (key.startsWith(open.name + "#")) list.append(el);
    list.scrollTop = list.scrollHeight;
  }

  function sendFromComposer(event) {
    event.preventDefault();
    const body = $("body").value;
    if (!open || body.trim() === "") return;
    if (maxBytes && utf8.encode(body).length > maxBytes) {
      $("open-error").textContent = `A message is at most ${maxBytes} bytes.`;
      return;
    }
    $("body").value = "";
    const cid = `${prefix}-${++counter}`;
    const el = element({ seq: 0, from: me, ts: new Date().toISOString(), body });
    el.classList.add("pending");
    el.title = "sending…";
    const item = { cid, to: open.name, body, el };
    outbox.set(cid, item);
    $("messages").append(el);
    $("messages").scrollTop = $("messages").scrollHeight;
    if (online && !resendTimer) transmit(item);
  }

  function transmit(item) {
    ws.send(JSON.stringify({ op: "send", id: item.cid, to: item.to, body: item.body }));
  }

  function acked(ack) {
    const item = outbox.get(ack.cid);
    if (!item) return;
    outbox.delete(ack.cid);
    resendDelay = 50;
    const conv = conversation(ack.room);
    if (conv.messages.has(ack.seq)) { item.el.remove(); return; }
    // Keep the line until the message itself arrives from the subscription (it follows the ack).
    item.el.dataset.seq = String(ack.seq);
    pendingBySeq.set(`${ack.room}#${ack.seq}`, item.el);
  }

  function refused(frame) {
    const item = outbox.get(frame.id);
    if (!item) return;
    if (frame.code === "rate_limited" || frame.code === "unavailable") {
      // A refused send holds back the later ones: resend them all, in order, after a pause.
      if (!resendTimer) {
        resendTimer = setTimeout(() => { resendTimer = null; if (online) for (const i of outbox.values()) transmit(i); }, resendDelay);
        resendDelay = Math.min(resendDelay * 2, 5000);
      }
      return;
    }
    outbox.delete(frame.id);
    item.el.classList.remove("pending");
    item.el.classList.add("failed");
    const note = document.createElement("span");
    note.className = "note";
    note.textContent = `not sent: ${frame.message || frame.code}`;
    item.el.append(note);
  }

  // ---- the connection ---------------------------------------------------------------------------

  function setState(name, detail) {
    const el = $("state");
    el.dataset.state = name;
    el.textContent = detail ? `${name} (${detail})` : name;
  }

  function subscribe(conv) {
    const frame = { op: "sub", to: conv.name };
    if (conv.lastSeq > 0) frame.after = conv.lastSeq;     // resume: nothing lost, nothing doubled
    else frame.history = HISTORY;
    ws.send(JSON.stringify(frame));
  }

  function connect() {
    clearTimeout(retryTimer);
    if (!token || sessionOver) return;
    setState("connecting");
    const socket = new WebSocket(`${location.protocol === "https:" ? "wss:" : "ws:"}//${location.host}/v1/ws`);
    ws = socket;
    socket.onopen = () => socket.send(JSON.stringify({ op: "auth", token }));
    socket.onmessage = (event) => {
      if (ws !== socket) return;
      let frame;
      try { frame = JSON.parse(event.data); } catch { return; }
      handle(frame);
    };
    socket.onclose = (event) => {
      if (ws !== socket) return;
      ws = null;
      online = false;
      if (sessionOver) return;
      const delay = Math.min(10000, 250 * 2 ** attempt) * (0.5 + Math.random() / 2);
      attempt = Math.min(attempt + 1, 8);
      setState("offline", `${event.code || "closed"}, retrying in ${Math.max(1, Math.round(delay / 1000))} s`);
      retryTimer = setTimeout(connect, delay);
    };
  }

  function handle(frame) {
    switch (frame.op) {
    case "authed":
      online = true;
      attempt = 0;
      maxBytes = frame.max_message_bytes || null;
      setState("online");
      // Every direct conversation, from the last message id seen (at first, the newest at sign-in).
      ws.send(JSON.stringify({ op: "sub", to: "@*", after_id: dmAfterID }));
      for (const conv of convs.values()) if (!conv.direct) subscribe(conv);
      // What was not acknowledged goes again with the same ids: the server keeps one of each.
      for (const item of outbox.values()) transmit(item);
      break;
    case "msg": {
      const conv = conversation(frame.room);
      if (conv.direct) dmAfterID = Math.max(dmAfterID, frame.id);
      add(conv, frame, true);
      break;
    }
    case "subscribed":
      if (frame.to === "@*") { dmAfterID = Math.max(dmAfterID, frame.seq || 0); break; }
      if (convs.has(frame.to)) {
        const conv = convs.get(frame.to);
        conv.lastSeq = Math.max(conv.lastSeq, frame.seq || 0);
        conv.ready = true;
      }
      break;
    case "ack":
      acked(frame);
      break;
    case "error":
      if (frame.code === "unauthorized") { endSession("Your session has ended; sign in again."); break; }
      if (frame.id) { refused(frame); break; }
      $("open-error").textContent = frame.message || frame.code;
      break;
    }
  }

  // ---- wiring -----------------------------------------------------------------------------------

  document.addEventListener("DOMContentLoaded", () => {
    $("login-form").addEventListener("submit", signIn);
    $("open-form").addEventListener("submit", openByName);
    $("composer").addEventListener("submit", sendFromComposer);
    $("logout").addEventListener("click", signOut);
    $("body").addEventListener("keydown", (event) => {
      if (event.key === "Enter" && !event.shiftKey && !event.isComposing) sendFromComposer(event);
    });
    window.addEventListener("online", () => { if (!ws && token && !sessionOver) connect(); });
    start();
  });
})();
