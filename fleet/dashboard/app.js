// Branchline NOC dashboard: plain JS, no dependencies, no network beyond this API.
// The token is asked once and kept in localStorage; every call sends it as a bearer
// token. Live updates come from /api/v1/events (Server-Sent Events) read with fetch,
// because EventSource cannot send an Authorization header.
"use strict";

const API = "/api/v1";
const TOKEN_KEY = "branchline.noc.token";
const HEALTH = {
  online: ["ONLINE", "\u2713"], offline: ["OFFLINE", "\u2715"], survivable: ["SURVIVABLE", "\u26A0"],
  alarms: ["ALARMS", "!"], unknown: ["UNKNOWN", "?"],
};
const state = { token: localStorage.getItem(TOKEN_KEY), me: null, sites: new Map(), summary: null, alarmsTicket: 0,
                stream: null, route: null };

// -- helpers ----------------------------------------------------------------------------

function h(tag, attrs, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === null || v === undefined || v === false) continue;
    if (k.startsWith("on")) el.addEventListener(k.slice(2), v);
    else if (k === "class") el.className = v;
    else el.setAttribute(k, v === true ? "" : v);
  }
  for (const c of children.flat()) if (c !== null && c !== undefined) el.append(c instanceof Node ? c : String(c));
  return el;
}
const svgNS = "http://www.w3.org/2000/svg";
function s(tag, attrs, ...children) {
  const el = document.createElementNS(svgNS, tag);
  for (const [k, v] of Object.entries(attrs || {})) el.setAttribute(k, v);
  for (const c of children) el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  return el;
}
const $ = (sel) => document.querySelector(sel);
function when(epoch) { return epoch ? new Date(epoch * 1000).toLocaleString() : "never"; }
function ago(epoch) {
  if (!epoch) return "never";
  const d = Math.max(0, Date.now() / 1000 - epoch);
  if (d < 90) return `${Math.round(d)} s ago`;
  if (d < 5400) return `${Math.round(d / 60)} min ago`;
  return `${Math.round(d / 3600)} h ago`;
}
function pct(x) { return x === null || x === undefined ? "\u2013" : `${Math.round(x * 100)} %`; }
function announce(text) { $("#announce").textContent = text; }
function showError(text) { const e = $("#error"); e.textContent = text || ""; e.hidden = !text; }

class ApiError extends Error { constructor(status, msg) { super(msg); this.status = status; } }

async function api(path, options = {}) {
  const res = await fetch(API + path, { ...options, headers: { ...(options.headers || {}),
    Authorization: `Bearer ${state.token}`, ...(options.body ? { "Content-Type": "application/json" } : {}) } });
  if (res.status === 401) { signOut("Your token was refused; sign in again."); throw new ApiError(401, "unauthorized"); }
  const body = res.headers.get("content-type")?.includes("json") ? await res.json() : await res.text();
  if (!res.ok) throw new ApiError(res.status, body.error || `HTTP ${res.status}`);
  return body;
}

// -- sign in ----------------------------------------------------------------------------

async function signIn(token) {
  state.token = token;
  const me = await api("/whoami");
  localStorage.setItem(TOKEN_KEY, token);
  state.me = me;
  $("#whoami").textContent = `${me.name} (${me.role})`;
  $("#logout").hidden = false;
  $("#nav").hidden = false;
  $("#login").hidden = true;
  connectStream();
  route();
}

function signOut(message) {
  localStorage.removeItem(TOKEN_KEY);
  state.token = null; state.me = null;
  if (state.stream) state.stream.abort();
  $("#whoami").textContent = ""; $("#logout").hidden = true; $("#nav").hidden = true;
  $("#view").replaceChildren();
  $("#login").hidden = false;
  showError(message || "");
  $("#token").focus();
}

const canOperate = () => state.me && (state.me.role === "operator" || state.me.role === "admin");

// -- live stream ------------------------------------------------------------------------

function setLive(on) {
  const el = $("#live");
  el.dataset.state = on ? "on" : "off";
  el.textContent = on ? "live" : "reconnecting\u2026";
}

async function connectStream() {
  if (state.stream) state.stream.abort();
  const ctrl = new AbortController();
  state.stream = ctrl;
  while (!ctrl.signal.aborted && state.token) {
    try {
      const res = await fetch(API + "/events", { headers: { Authorization: `Bearer ${state.token}` },
                                                 signal: ctrl.signal });
      if (res.status === 401) { signOut("Your token was refused; sign in again."); return; }
      if (!res.ok) throw new Error(`events: HTTP ${res.status}`);
      setLive(true);
      const reader = res.body.pipeThrough(new TextDecoderStream()).getReader();
      let buffer = "";
      for (;;) {
        const { value, done } = await reader.read();
        if (done) break;
        buffer += value;
        let cut;
        while ((cut = buffer.indexOf("\n\n")) >= 0) {
          const block = buffer.slice(0, cut); buffer = buffer.slice(cut + 2);
          let name = "message", data = "";
          for (const line of block.split("\n")) {
            if (line.startsWith("event:")) name = line.slice(6).trim();
            else if (line.startsWith("data:")) data += line.slice(5).trim();
          }
          if (data) onEvent(name, JSON.parse(data));
        }
      }
    } catch (err) {
      if (ctrl.signal.aborted) return;
    }
    setLive(false);
    await new Promise((r) => setTimeout(r, 2000));  // reconnect backoff
  }
}

function onEvent(name, data) {
  if (name === "sites") {
    state.sites = new Map(data.sites.map((site) => [site.id, site]));
    renderSummary(data.summary);
    if (state.route?.name === "grid") renderGrid();
  } else if (name === "site") {
    const before = state.sites.get(data.id);
    state.sites.set(data.id, data);
    if (before && before.health !== data.health) announce(`Site ${data.id} is now ${HEALTH[data.health][0].toLowerCase()}`);
    const tile = document.querySelector(`[data-site="${CSS.escape(data.id)}"]`);
    if (tile) tile.closest("li").replaceWith(siteTile(data));
    else if (state.route?.name === "grid") renderGrid();
    if (state.route?.name === "site" && state.route.id === data.id) renderSiteHeader(data);
  } else if (name === "summary") {
    renderSummary(data);
  } else if (name === "alarms") {
    if (state.route?.name === "alarms") loadAlarms();
    if (state.route?.name === "site") loadSiteAlarms(state.route.id);
  }
}

function renderSummary(sum) {
  state.summary = sum;
  $("#summary").textContent = `${sum.sites} sites \u00b7 ${sum.online} online \u00b7 ${sum.offline} offline \u00b7 ` +
    `${sum.survivable} survivable \u00b7 ${sum.active_alarms} active alarms`;
}

// -- routing ----------------------------------------------------------------------------

function route() {
  if (!state.token) return signOut();
  const hash = location.hash || "#/";
  const m = hash.match(/^#\/site\/(.+)$/);
  state.route = m ? { name: "site", id: decodeURIComponent(m[1]) } : hash === "#/alarms" ? { name: "alarms" }
    : hash === "#/rollouts" ? { name: "rollouts" } : { name: "grid" };
  const here = { alarms: "#/alarms", rollouts: "#/rollouts" }[state.route.name] || "#/";
  for (const a of document.querySelectorAll("#nav a"))
    a.toggleAttribute("aria-current", a.getAttribute("href") === here);
  if (a11yFocus) $("#main").focus();
  showError("");
  if (state.route.name === "grid") showGrid();
  else if (state.route.name === "alarms") showAlarms();
  else if (state.route.name === "rollouts") showRollouts();
  else showSite(state.route.id);
}
let a11yFocus = false;

// -- site grid --------------------------------------------------------------------------

function siteTile(site) {
  const [word, symbol] = HEALTH[site.health] || HEALTH.unknown;
  const label = site.health === "alarms" ? `${word} (${site.active_alarms})` : word;
  return h("li", {}, h("a", { class: `tile health-${site.health}`, href: `#/site/${encodeURIComponent(site.id)}`,
                             "data-site": site.id, "data-health": site.health,
                             "aria-label": `${site.id}: ${label}` },
    h("div", { class: "name" }, site.id),
    h("span", { class: "badge" }, `${symbol} ${label}`),
    h("div", { class: "meta" }, `v${site.version || "?"} \u00b7 ${site.mode}`),
    h("div", { class: "meta" }, `seen ${ago(site.last_seen)}`),
    site.drift ? h("div", { class: "meta" }, site.config_version == null
      ? `config v${site.desired_version} not applied yet`
      : `config drift: runs v${site.config_version}, desired v${site.desired_version}`) : null));
}

async function showGrid() {
  const view = $("#view");
  view.replaceChildren(h("h2", {}, "Sites"),
    h("div", { class: "toolbar" },
      h("div", {}, h("label", { for: "site-filter" }, "Filter sites"),
        h("input", { id: "site-filter", type: "search", placeholder: "id, health, version",
                     oninput: renderGrid }))),
    h("ul", { class: "grid", id: "grid", "aria-label": "Sites by health" }));
  const doc = await api("/sites");
  state.sites = new Map(doc.sites.map((site) => [site.id, site]));
  renderSummary(doc.summary);
  renderGrid();
}

function renderGrid() {
  const grid = $("#grid");
  if (!grid) return;
  const q = ($("#site-filter")?.value || "").toLowerCase();
  const sites = [...state.sites.values()].filter((x) => !q || `${x.id} ${x.health} ${x.version} ${x.region}`
    .toLowerCase().includes(q)).sort((a, b) => a.id.localeCompare(b.id));
  grid.replaceChildren(...sites.map(siteTile));
  if (!sites.length) grid.append(h("li", { class: "empty" }, "No sites."));
}

// -- alarms -----------------------------------------------------------------------------

function alarmTable(alarms, withSite) {
  if (!alarms.length) return h("p", { class: "empty" }, "No active alarms.");
  return h("table", {},
    h("thead", {}, h("tr", {}, withSite ? h("th", {}, "Site") : null, h("th", {}, "Severity"), h("th", {}, "Alarm"),
      h("th", {}, "Raised"), h("th", {}, "Count"), h("th", {}, "Acknowledged"))),
    h("tbody", {}, alarms.map((a) => h("tr", { "data-alarm": a.id },
      withSite ? h("td", {}, h("a", { href: `#/site/${encodeURIComponent(a.site_id)}` }, a.site_id)) : null,
      h("td", { class: `sev-${a.severity}` }, a.severity.toUpperCase()),
      h("td", {}, a.message || `${a.kind} ${a.subject}`),
      h("td", {}, when(a.raised_at)),
      h("td", {}, a.count),
      h("td", {}, a.acked_by ? `by ${a.acked_by}, ${when(a.acked_at)}`
        : h("button", { type: "button", disabled: !canOperate(),
                        title: canOperate() ? null : "needs the operator role",
                        "aria-label": `Acknowledge ${a.kind} ${a.subject} at ${a.site_id}`,
                        onclick: (ev) => ack(a, ev.currentTarget) }, "Acknowledge"))))));
}

async function ack(alarm, button) {
  button.disabled = true;
  try {
    const done = await api(`/alarms/${alarm.id}/ack`, { method: "POST" });
    button.replaceWith(`by ${done.acked_by}, ${when(done.acked_at)}`);
    announce(`Alarm ${alarm.kind} at ${alarm.site_id} acknowledged`);
  } catch (err) {
    button.disabled = false;
    showError(`Could not acknowledge: ${err.message}`);
  }
}

async function showAlarms() {
  $("#view").replaceChildren(h("h2", {}, "Active alarms"),
    h("div", { class: "toolbar" }, h("div", {}, h("label", { for: "severity" }, "Severity"),
      h("select", { id: "severity", onchange: loadAlarms }, h("option", { value: "" }, "all"),
        ["critical", "major", "minor", "info"].map((x) => h("option", { value: x }, x))))),
    h("div", { id: "alarms" }));
  await loadAlarms();
}

async function loadAlarms() {
  const sev = $("#severity")?.value;
  const ticket = ++state.alarmsTicket; // a slower, older answer must not overwrite a newer one
  const alarms = await api(`/alarms${sev ? `?severity=${sev}` : ""}`);
  if (ticket !== state.alarmsTicket) return;
  $("#alarms")?.replaceChildren(alarmTable(alarms, true));
}

// -- rollouts ---------------------------------------------------------------------------

async function showRollouts() {
  $("#view").replaceChildren(h("h2", {}, "Rollouts"), h("div", { id: "rollouts" }, "loading\u2026"));
  await loadRollouts();
  // campaigns move while an operator watches: read them again every 2 s on this page
  clearInterval(state.rolloutTimer);
  state.rolloutTimer = setInterval(() => {
    if (state.route?.name === "rollouts") loadRollouts().catch(() => {});
    else clearInterval(state.rolloutTimer);
  }, 2000);
}

async function loadRollouts() {
  const list = await api("/rollouts");
  if (state.route?.name !== "rollouts") return;
  if (!list.length) {
    $("#rollouts")?.replaceChildren(h("p", { class: "empty" }, "No rollout campaigns yet."));
    return;
  }
  const blocks = [];
  for (const summary of list) {
    const c = await api(`/rollouts/${summary.id}`);
    const counts = Object.entries(c.counts || {}).map(([k, v]) => `${v} ${k}`).join(", ");
    blocks.push(h("section", { class: "panel", "data-campaign": c.id },
      h("h3", {}, `${c.name} \u2014 ${String(c.state).toUpperCase()}`),
      h("p", {}, `${counts}${c.halt_reason ? ` \u00b7 halted: ${c.halt_reason}` : ""}`),
      h("table", {}, h("thead", {}, h("tr", {}, ["Site", "State", "Check", "Reason"].map((t) => h("th", {}, t)))),
        h("tbody", {}, (c.sites || []).map((s) => h("tr", { "data-site": s.site_id },
          h("td", {}, s.site_id), h("td", { class: `roll-${s.state}` }, String(s.state).toUpperCase()),
          h("td", {}, s.check || ""), h("td", {}, s.reason || "")))))));
  }
  $("#rollouts")?.replaceChildren(...blocks);
}

// -- site page --------------------------------------------------------------------------

function renderSiteHeader(site) {
  const head = $("#site-head");
  if (!head) return;
  const [word, symbol] = HEALTH[site.health] || HEALTH.unknown;
  head.replaceChildren(
    h("h2", {}, `Site ${site.id} `, h("span", { class: `badge health-${site.health}`, id: "site-health",
                                               "data-health": site.health }, `${symbol} ${word}`)),
    h("p", {}, `Status ${site.status} since ${when(site.status_at)} \u00b7 mode ${site.mode} \u00b7 version ` +
      `${site.version || "?"} \u00b7 last seen ${ago(site.last_seen)} \u00b7 region ${site.region || "\u2013"} ` +
      `\u00b7 type ${site.site_type || "\u2013"}`));
  head.className = `health-${site.health}`;
}

async function showSite(id) {
  const tz = Intl.DateTimeFormat().resolvedOptions().timeZone || "UTC";
  const enc = encodeURIComponent(id);
  $("#view").replaceChildren(h("p", {}, h("a", { href: "#/" }, "\u2190 All sites")), h("div", { id: "site-head" }),
    h("div", { class: "panels" },
      h("section", { class: "panel", "aria-labelledby": "q-h" }, h("h3", { id: "q-h" }, "Queues"), h("div", { id: "queues" })),
      h("section", { class: "panel", "aria-labelledby": "t-h" }, h("h3", { id: "t-h" }, "Trunks"), h("div", { id: "trunks" })),
      h("section", { class: "panel", "aria-labelledby": "a-h" }, h("h3", { id: "a-h" }, "Agents"), h("div", { id: "agents" })),
      h("section", { class: "panel", "aria-labelledby": "sl-h" }, h("h3", { id: "sl-h" }, "Service level today"),
        h("div", { id: "chart-sl" })),
      h("section", { class: "panel", "aria-labelledby": "cv-h" }, h("h3", { id: "cv-h" }, "Call volume today"),
        h("div", { id: "chart-volume" }))),
    h("section", { class: "panel", "aria-labelledby": "al-h" }, h("h3", { id: "al-h" }, "Active alarms"),
      h("div", { id: "site-alarms" })),
    h("section", { class: "panel", "aria-labelledby": "cfg-h" }, h("h3", { id: "cfg-h" }, "Configuration"),
      h("div", { id: "drift" }), h("div", { id: "versions" }), h("pre", { class: "diff", id: "diff", hidden: true })));
  let detail;
  try { detail = await api(`/sites/${enc}`); } catch (err) {
    $("#site-head").replaceChildren(h("h2", {}, `Site ${id}`), h("p", { class: "error" }, err.message)); return;
  }
  renderSiteHeader(detail.site);
  const m = detail.metrics;
  const queues = Object.entries(m?.queues || {});
  $("#queues").replaceChildren(queues.length ? h("table", {},
    h("thead", {}, h("tr", {}, ["Queue", "Waiting", "Longest wait", "Service level", "ASA"].map((x) => h("th", {}, x)))),
    h("tbody", {}, queues.map(([name, q]) => h("tr", {}, h("td", {}, name), h("td", {}, q.waiting ?? "\u2013"),
      h("td", {}, q.longest_wait_s != null ? `${Math.round(q.longest_wait_s)} s` : "\u2013"),
      h("td", {}, pct(q.service_level)), h("td", {}, q.asa_s != null ? `${Math.round(q.asa_s)} s` : "\u2013")))))
    : h("p", { class: "empty" }, m ? "No queues reported." : "No metrics yet."));
  const trunks = Object.entries(m?.trunks || {});
  $("#trunks").replaceChildren(trunks.length ? h("ul", {}, trunks.map(([name, up]) =>
    h("li", {}, `${name}: `, h("span", { class: up ? "up" : "down" }, up ? "\u2713 up" : "\u2715 down"))))
    : h("p", { class: "empty" }, "No trunks reported."));
  const agents = Object.entries(detail.agents);
  $("#agents").replaceChildren(agents.length ? h("table", {}, h("tbody", {}, agents.map(([st, n]) =>
    h("tr", {}, h("th", {}, st.replace("_", " ")), h("td", {}, n))))) : h("p", { class: "empty" }, "No agents reported."));
  $("#site-alarms").replaceChildren(alarmTable(detail.alarms, false));
  const day = await api(`/sites/${enc}/intervals?tz=${encodeURIComponent(tz)}`);
  $("#chart-sl").replaceChildren(lineChart(day, "service_level", `Service level per interval (${tz})`));
  $("#chart-volume").replaceChildren(barChart(day, "offered", `Calls offered per interval (${tz})`));
  await loadConfig(id);
}

async function loadSiteAlarms(id) {
  const alarms = await api(`/alarms?site_id=${encodeURIComponent(id)}`);
  $("#site-alarms")?.replaceChildren(alarmTable(alarms, false));
}

async function loadConfig(id) {
  const enc = encodeURIComponent(id);
  const [drift, versions] = await Promise.all([api(`/sites/${enc}/drift`), api(`/sites/${enc}/configs`)]);
  $("#drift").replaceChildren(h("p", {}, drift.desired_version == null ? "No desired config yet." :
    drift.drift ? `\u26A0 Drift: the site runs v${drift.reported_version ?? "?"}, desired is v${drift.desired_version}.`
      : `\u2713 In sync: the site runs v${drift.reported_version}.`,
    drift.rejected_version ? ` Rejected v${drift.rejected_version}: ${drift.rejection}` : ""),
    drift.diff ? h("pre", { class: "diff", "aria-label": "reported to desired diff" }, drift.diff) : "");
  $("#versions").replaceChildren(versions.length ? h("table", {},
    h("thead", {}, h("tr", {}, ["Version", "Author", "Reason", "Created", "Published", ""].map((x) => h("th", {}, x)))),
    h("tbody", {}, versions.map((v) => h("tr", {}, h("td", {}, `v${v.version}`), h("td", {}, v.author),
      h("td", {}, v.reason), h("td", {}, when(v.created_at)), h("td", {}, v.published_at ? "yes" : "no"),
      h("td", {}, v.version > 1 ? h("button", { type: "button", onclick: () => showDiff(id, v.version - 1, v.version) },
        `Diff v${v.version - 1}\u2192v${v.version}`) : "")))))
    : h("p", { class: "empty" }, "No config versions."));
}

async function showDiff(id, from, to) {
  const d = await api(`/sites/${encodeURIComponent(id)}/configs/diff?from_version=${from}&to_version=${to}`);
  const pre = $("#diff");
  pre.hidden = false;
  pre.textContent = d.diff || `v${from} and v${to} are identical.`;
}

// -- charts (inline SVG) ----------------------------------------------------------------

const W = 480, H = 160, PAD = 28;
function frame(label) {
  return s("svg", { class: "chart", viewBox: `0 0 ${W} ${H}`, role: "img", "aria-label": label },
    s("title", {}, label), s("line", { class: "axis", x1: PAD, y1: H - PAD, x2: W - 6, y2: H - PAD }),
    ...[0, 6, 12, 18, 24].map((hr) => s("text", { x: PAD + (W - PAD - 6) * hr / 24 - (hr === 24 ? 30 : hr ? 14 : 0),
                                                  y: H - 8 }, `${String(hr).padStart(2, "0")}:00`)));
}
function xOf(day, t) { return PAD + (W - PAD - 6) * (t - day.day_start) / (day.day_end - day.day_start); }

function barChart(day, key, label) {
  if (!day.intervals.length) return h("p", { class: "empty" }, "No interval data for today yet.");
  const max = Math.max(1, ...day.intervals.map((i) => i[key]));
  const svg = frame(`${label}; peak ${max}`);
  svg.append(s("text", { x: 2, y: 14 }, String(max)));
  for (const i of day.intervals) {
    const x = xOf(day, i.start), w = Math.max(1, xOf(day, i.end) - x - 1), y = (H - PAD) - (H - PAD - 16) * i[key] / max;
    svg.append(s("rect", { class: "bar-rect", x, y, width: w, height: H - PAD - y },
      s("title", {}, `${new Date(i.start * 1000).toLocaleTimeString()}: ${i[key]} calls`)));
  }
  return svg;
}

function lineChart(day, key, label) {
  const pts = day.intervals.filter((i) => i[key] !== null);
  if (!pts.length) return h("p", { class: "empty" }, "No service level data for today yet.");
  const svg = frame(`${label}; latest ${pct(pts[pts.length - 1][key])}`);
  const yOf = (v) => (H - PAD) - (H - PAD - 16) * v;
  svg.append(s("text", { x: 2, y: 14 }, "100%"), s("line", { class: "target", x1: PAD, x2: W - 6, y1: yOf(0.8), y2: yOf(0.8) }),
    s("text", { x: W - 70, y: yOf(0.8) - 4 }, "target 80%"));
  const coords = pts.map((i) => [xOf(day, (i.start + i.end) / 2), yOf(i[key])]);
  svg.append(s("polyline", { class: "line", points: coords.map((c) => c.join(",")).join(" ") }));
  pts.forEach((i, n) => svg.append(s("circle", { class: "dot", cx: coords[n][0], cy: coords[n][1], r: 3 },
    s("title", {}, `${new Date(i.start * 1000).toLocaleTimeString()}: ${pct(i[key])}`))));
  return svg;
}

// -- start ------------------------------------------------------------------------------

window.addEventListener("hashchange", () => { a11yFocus = true; route(); });
document.addEventListener("DOMContentLoaded", () => {
  $("#login-form").addEventListener("submit", async (ev) => {
    ev.preventDefault();
    try { await signIn($("#token").value.trim()); $("#token").value = ""; }
    catch (err) { if (err.status !== 401) showError(err.message); }
  });
  $("#logout").addEventListener("click", () => signOut());
  if (state.token) signIn(state.token).catch(() => {});
  else signOut();
});
