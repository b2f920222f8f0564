// troupe playground: a chat streamed over the WebSocket API (/v1/ws, docs/websocket.md) and the
// server's memory plan with live KV usage from /metrics. Plain browser JavaScript, no build step.
"use strict";

const $ = (id) => document.getElementById(id);
const ui = {
  key: $("api-key"), conn: $("conn"), model: $("model"), messages: $("messages"), form: $("composer"),
  prompt: $("prompt"), send: $("send"), stop: $("stop"), clear: $("clear"),
  maxTokens: $("max-tokens"), temperature: $("temperature"), ignoreEos: $("ignore-eos"),
};

const history = [];   // [{role, content}] of finished turns, sent with every message
let ws = null;        // the open (or opening) WebSocket
let wsReady = null;   // Promise<WebSocket> resolved once open
let current = null;   // the generation in flight: {id, el, text, tSend, tFirst, tLast, tokens}
let seq = 0;

ui.key.value = localStorage.getItem("troupe.api_key") || "";
ui.key.addEventListener("change", () => {
  localStorage.setItem("troupe.api_key", ui.key.value);
  if (ws) ws.close();  // reconnect with the new key on the next send
  loadModel();
});

function authHeaders() {
  return ui.key.value ? { Authorization: "Bearer " + ui.key.value } : {};
}

function setConn(state, label) {
  ui.conn.dataset.state = state;
  ui.conn.textContent = label;
}

// -- WebSocket ------------------------------------------------------------------------------

function connect() {
  if (ws && wsReady && ws.readyState <= WebSocket.OPEN) return wsReady;
  const proto = location.protocol === "https:" ? "wss:" : "ws:";
  // Browsers cannot send Authorization on an upgrade: the server also takes ?api_key= on /v1/ws.
  const query = ui.key.value ? "?api_key=" + encodeURIComponent(ui.key.value) : "";
  const sock = new WebSocket(proto + "//" + location.host + "/v1/ws" + query);
  ws = sock;
  setConn("connecting", "connecting…");
  wsReady = new Promise((resolve, reject) => {
    sock.onopen = () => { setConn("open", "connected"); resolve(sock); };
    sock.onerror = () => reject(new Error("WebSocket connection failed (is the API key right?)"));
  });
  sock.onmessage = (ev) => onFrame(JSON.parse(ev.data));
  sock.onclose = () => {
    if (ws === sock) { ws = null; wsReady = null; }
    setConn("closed", "disconnected");
    if (current) finish("error", "connection closed");
  };
  return wsReady;
}

function onFrame(f) {
  if (!current || f.id !== current.id) {
    if (f.type === "error" && f.id === null) showError(f.error.message);
    return;
  }
  const now = performance.now();
  if (f.type === "token") {
    if (current.tFirst === null) current.tFirst = now;
    current.tLast = now;
    current.tokens += (f.token_ids || []).length;
    current.text += f.text;
    current.textEl.textContent = current.text;
    updateStats();
    scrollDown();
  } else if (f.type === "done") {
    if (f.usage) current.tokens = f.usage.completion_tokens;
    finish(f.finish_reason);
  } else if (f.type === "error") {
    finish("error", f.error.message);
  }
}

// -- chat -----------------------------------------------------------------------------------

function addMessage(role, text) {
  const hint = ui.messages.querySelector(".hint");
  if (hint) hint.remove();
  const el = document.createElement("div");
  el.className = "msg " + role;
  const t = document.createElement("span");
  t.className = "text";
  t.textContent = text;
  el.appendChild(t);
  ui.messages.appendChild(el);
  scrollDown();
  return el;
}

function scrollDown() { ui.messages.scrollTop = ui.messages.scrollHeight; }

function showError(message) { addMessage("error", message); }

function statsHtml(g) {
  const ttft = g.tFirst === null ? null : g.tFirst - g.tSend;
  // Decode speed: tokens after the first over the time since the first (the whole answer if one token).
  let tps = null;
  if (g.tokens > 1 && g.tLast > g.tFirst) tps = (g.tokens - 1) / ((g.tLast - g.tFirst) / 1000);
  else if (g.tokens > 0 && g.tLast > g.tSend) tps = g.tokens / ((g.tLast - g.tSend) / 1000);
  const s = g.stats;
  s.querySelector(".ttft").textContent = ttft === null ? "–" : ttft.toFixed(0) + " ms";
  s.querySelector(".tps").textContent = tps === null ? "–" : tps.toFixed(1);
  s.querySelector(".ntok").textContent = String(g.tokens);
}

function updateStats() { if (current) statsHtml(current); }

async function send() {
  const text = ui.prompt.value.trim();
  if (!text || current) return;
  ui.prompt.value = "";
  addMessage("user", text);
  history.push({ role: "user", content: text });

  const el = addMessage("assistant", "");
  el.dataset.state = "streaming";
  const stats = document.createElement("span");
  stats.className = "stats";
  stats.innerHTML = 'TTFT <b class="ttft">–</b> · <b class="tps">–</b> tokens/s · ' +
                    '<b class="ntok">0</b> tokens · <span class="finish">streaming</span>';
  el.appendChild(stats);
  current = { id: "g" + (++seq), el, textEl: el.querySelector(".text"), stats, text: "",
              tSend: performance.now(), tFirst: null, tLast: null, tokens: 0 };
  ui.send.disabled = true;
  ui.stop.disabled = false;

  const msg = { type: "generate", id: current.id, messages: history.slice(),
                max_tokens: Number(ui.maxTokens.value) || 128 };
  const temp = Number(ui.temperature.value);
  if (ui.temperature.value !== "" && !Number.isNaN(temp)) msg.temperature = temp;
  if (ui.ignoreEos.checked) msg.ignore_eos = true;
  try {
    const sock = await connect();
    current.tSend = performance.now();
    sock.send(JSON.stringify(msg));
  } catch (e) {
    finish("error", e.message);
  }
}

function stop() {
  if (current && ws && ws.readyState === WebSocket.OPEN) {
    ws.send(JSON.stringify({ type: "cancel", id: current.id }));
    ui.stop.disabled = true;
  }
}

function finish(reason, message) {
  const g = current;
  if (!g) return;
  current = null;
  g.tLast = g.tLast ?? performance.now();
  statsHtml(g);
  g.el.dataset.state = reason === "abort" ? "stopped" : reason === "error" ? "error" : "done";
  g.el.dataset.finish = reason;
  g.stats.querySelector(".finish").textContent =
    reason === "abort" ? "stopped" : reason === "error" ? "error: " + (message || "") : "finish: " + reason;
  if (g.text) history.push({ role: "assistant", content: g.text });
  else if (history.length && history[history.length - 1].role === "user" && reason === "error") history.pop();
  ui.send.disabled = false;
  ui.stop.disabled = true;
  ui.prompt.focus();
}

ui.form.addEventListener("submit", (e) => { e.preventDefault(); send(); });
ui.prompt.addEventListener("keydown", (e) => {
  if (e.key === "Enter" && !e.shiftKey) { e.preventDefault(); send(); }
});
ui.stop.addEventListener("click", stop);
ui.clear.addEventListener("click", () => {
  if (current) return;
  history.length = 0;
  ui.messages.replaceChildren();
});

// -- memory plan and KV usage from /metrics ------------------------------------------------

// Prometheus text -> {name: [{labels: {k: v}, value}]}.
function parseMetrics(text) {
  const out = {};
  for (const line of text.split("\n")) {
    if (!line || line[0] === "#") continue;
    const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{(.*)\})?\s+(\S+)/.exec(line);
    if (!m) continue;
    const labels = {};
    if (m[3]) for (const kv of m[3].matchAll(/([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"/g)) labels[kv[1]] = kv[2];
    (out[m[1]] = out[m[1]] || []).push({ labels, value: Number(m[4]) });
  }
  return out;
}

function first(metrics, name, rank) {
  const samples = metrics[name] || [];
  const s = rank === undefined ? samples[0] : samples.find((x) => x.labels.rank === rank) || samples[0];
  return s ? s.value : 0;
}

function fmtBytes(n) {
  if (!(n > 0)) return "0 B";
  const units = ["B", "KiB", "MiB", "GiB", "TiB"];
  let i = 0;
  while (n >= 1024 && i < units.length - 1) { n /= 1024; i++; }
  return n.toFixed(n >= 100 || i === 0 ? 0 : 1) + " " + units[i];
}

function renderMemory(m) {
  const ranks = (m["troupe:memory_weights_bytes"] || []).length;
  const rank = ranks > 1 ? "0" : undefined;
  const weights = first(m, "troupe:memory_weights_bytes", rank);
  const reserve = first(m, "troupe:memory_reserve_bytes", rank);
  const kv = first(m, "troupe:memory_kv_bytes", rank);
  const total = first(m, "troupe:kv_blocks_total");
  const used = first(m, "troupe:kv_blocks_used");
  const cached = first(m, "troupe:kv_blocks_cached");
  const usedB = total > 0 ? kv * used / total : 0;
  const cachedB = total > 0 ? kv * cached / total : 0;
  const freeB = Math.max(0, kv - usedB - cachedB);
  const parts = { weights, reserve, "kv-used": usedB, "kv-cached": cachedB, "kv-free": freeB };
  const sum = weights + reserve + kv;
  for (const [k, v] of Object.entries(parts)) {
    const seg = document.querySelector("#membar .seg-" + k);
    seg.style.width = sum > 0 ? (100 * v / sum).toFixed(3) + "%" : "0";
    seg.dataset.bytes = String(Math.round(v));
    seg.title = k + ": " + fmtBytes(v);
    $("mem-" + k).textContent = fmtBytes(v);
  }
  $("mem-blocks").textContent = used + " used · " + cached + " cached / " + total;
  $("mem-running").textContent = String(first(m, "troupe:num_requests_running"));
  $("mem-waiting").textContent = String(first(m, "troupe:num_requests_waiting"));
  $("mem-ranks").textContent = ranks > 1 ? "(rank 0 of " + ranks + ")" : "";
  $("mem-summary").textContent = fmtBytes(sum) + " planned · KV " +
    (total > 0 ? (100 * used / total).toFixed(1) : "0") + "% in use";
}

async function pollMetrics() {
  try {
    const r = await fetch("/metrics", { headers: authHeaders(), cache: "no-store" });
    if (!r.ok) throw new Error("/metrics answered " + r.status);
    renderMemory(parseMetrics(await r.text()));
  } catch (e) {
    $("mem-summary").textContent = "metrics unavailable: " + e.message;
  } finally {
    setTimeout(pollMetrics, 1000);
  }
}

async function loadModel() {
  try {
    const r = await fetch("/v1/models", { headers: authHeaders() });
    if (r.status === 401) { ui.model.textContent = "API key needed"; return; }
    const j = await r.json();
    ui.model.textContent = j.data && j.data[0] ? j.data[0].id : "";
  } catch (e) {
    ui.model.textContent = "";
  }
}

loadModel();
pollMetrics();
