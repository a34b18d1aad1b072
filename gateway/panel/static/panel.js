// The gate-house panel's script: sign-in, the live view (server-sent events) and the actions, each confirmed
// before it is sent. Every word comes from the gateway's catalogue (/api/texts); nothing is loaded from elsewhere.
"use strict";

const SYMBOL = { down: "▼", up: "▲", rising: "⇑", lowering: "⇓", stopped_mid: "■", fault: "⚠", manual: "⚠",
  efo_rising: "⇑", unknown: "?" };
let lang = localStorage.getItem("lang") || "zh-CN";
let T = {};
let csrf = null;
let source = null;
let pending = null;
let last = null;

const $ = (id) => document.getElementById(id);
const fill = (text, fields) => text.replace(/\{(\w+)\}/g, (_, k) => (k in fields ? fields[k] : ""));

function el(tag, attrs, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (k === "class") node.className = v;
    else if (k.startsWith("on")) node.addEventListener(k.slice(2), v);
    else node.setAttribute(k, v);
  }
  for (const c of children) if (c !== null && c !== undefined) node.append(c);
  return node;
}

async function loadTexts() {
  const r = await fetch(`/api/texts?lang=${encodeURIComponent(lang)}`);
  const body = await r.json();
  T = body.texts;
  document.documentElement.lang = body.lang;
  document.title = T.title;
  for (const node of document.querySelectorAll("[data-t]")) node.textContent = T[node.dataset.t];
  $("lang").textContent = lang === "zh-CN" ? "English" : "中文";
}

async function post(path, body) {
  const headers = { "Content-Type": "application/json" };
  if (csrf) headers["X-CSRF-Token"] = csrf;
  const r = await fetch(path, { method: "POST", headers, body: JSON.stringify({ ...body, lang }), credentials: "same-origin" });
  let data = {};
  try { data = await r.json(); } catch (e) { data = { ok: false }; }
  return { status: r.status, data };
}

function showLogin(message) {
  csrf = null;
  if (source) { source.close(); source = null; }
  $("main").hidden = true;
  $("logout").hidden = true;
  $("who").textContent = "";
  $("login").hidden = false;
  $("login-error").textContent = message || "";
  $("pin").value = "";
}

function showMain(who) {
  csrf = who.csrf;
  $("who").textContent = fill(T.signed_in_as, { name: who.name });
  $("login").hidden = true;
  $("main").hidden = false;
  $("logout").hidden = false;
  listen();
}

function listen() {
  if (source) source.close();
  source = new EventSource(`/api/events?lang=${encodeURIComponent(lang)}`);
  source.onmessage = (e) => { $("banner").hidden = true; last = JSON.parse(e.data); render(last); };
  source.addEventListener("expired", () => showLogin(T.expired));
  source.onerror = () => {
    $("banner").textContent = T.connection_lost;
    $("banner").hidden = false;
    for (const node of document.querySelectorAll(".lane, .alarm")) node.classList.add("stale");
    fetch("/api/session").then((r) => { if (r.status === 401) showLogin(T.expired); }).catch(() => {});
  };
}

function ask(text, action, extra) {
  pending = { action, ...extra };
  $("confirm-text").textContent = text;
  $("confirm").showModal();
}

async function act(body) {
  const { status, data } = await post("/api/action", body);
  if (status === 401) return showLogin(T.expired);
  const result = $("result");
  result.textContent = data.text || "";
  result.className = data.ok ? "done" : "refused";
  result.dataset.ok = String(Boolean(data.ok));
}

function laneCard(l, allowed) {
  const stale = l.stale;
  const card = el("div", { class: "lane" + (stale ? " stale" : ""), "data-lane": l.lane });
  card.append(el("div", { class: "state", "data-testid": "state" },
    `${l.name}: ${SYMBOL[l.state_key] || "?"} ${l.state_text}`,
    l.fire_lane ? el("span", { class: "muted" }, ` (${T.fire_lane})`) : null));
  if (stale) card.append(el("div", { class: "why" }, l.age_s === null ? T.no_data : fill(T.stale, { age: Math.round(l.age_s) })));
  if (l.fire_hold) card.append(el("div", { class: "hold", "data-testid": "fire-hold" }, "⚠ " + T.fire_hold));
  if (l.reasons.length) {
    card.append(el("div", { class: "why" }, T.inhibits + ":"));
    card.append(el("ul", { "data-testid": "inhibits" }, ...l.reasons.map((r) => el("li", {}, r))));
  } else {
    card.append(el("div", { class: "free" }, "✔ " + T.nothing_inhibits));
  }
  if (l.last) card.append(el("div", { class: "muted" }, `${T.last}: ${l.last}`));
  const row = el("div", { class: "row" });
  const button = (action, label, confirm) => {
    if (!allowed.includes(action)) return null;
    return el("button", { type: "button", class: "big", "data-action": action, onclick: () =>
      confirm ? ask(`${label} — ${l.name}? ${T.confirm_q}`, action, { lane: l.lane }) : act({ action, lane: l.lane }) }, label);
  };
  // Every motion command is confirmed (issue 10): a stray tap on STOP can leave a fire lane half raised; the
  // gate house's physical STOP button needs no screen.
  row.append(...[button("raise", "▲ " + T.raise, true), button("lower", "▼ " + T.lower, true),
    button("stop", "■ " + T.stop, true)].filter(Boolean));
  if (l.fire_hold) { const b = button("release", T.release, true); if (b) row.append(b); }
  card.append(row);
  return card;
}

function alarmCard(a, allowed) {
  const card = el("div", { class: `alarm ${a.cls}${a.acked ? " acked" : ""}`, "data-alarm": a.id });
  const state = [a.active ? "⚠ " + T.active : "✔ " + T.cleared,
    a.acked ? fill(T.acked_by, { by: a.acked_by || "" }) : T.not_acked].join(" · ");
  card.append(el("div", { class: "what" },
    el("strong", {}, `P${a.priority} ${a.cls_text}`), ` ${a.time} `, fill(T.at, { place: a.place }),
    el("div", { class: "muted" }, `${a.id} — ${state}`)));
  if (!a.acked && allowed.includes("ack")) {
    card.append(el("button", { type: "button", class: "big", "data-action": "ack",
      onclick: () => ask(`${T.ack}: ${a.cls_text} ${a.place}? ${T.confirm_q}`, "ack", { alarm_id: a.id }) }, T.ack));
  }
  return card;
}

function render(s) {
  const modeText = T["mode_" + s.mode] || s.mode;
  const mode = $("mode");
  mode.textContent = `${T.mode}: ${modeText}`;
  mode.dataset.mode = s.mode;
  mode.className = "pill" + (s.mode === "normal" ? "" : " bad");
  const link = $("link");
  const unsent = s.oldest_unsent_s === null ? T.all_sent : fill(T.unsent, { age: s.oldest_unsent_s });
  link.textContent = `${T.link}: ${s.link_up ? "✔ " + T.link_up : "✖ " + T.link_down} · ${unsent}`;
  link.className = "pill" + (s.link_up ? "" : " bad");
  const site = $("site-actions");
  site.replaceChildren();
  const key = s.lockdown ? "lockdown_off" : "lockdown_on";
  if (s.allowed.includes(key)) {
    site.append(el("button", { type: "button", class: "big danger", "data-action": key,
      onclick: () => ask(`${T[key]}? ${T.confirm_q}`, key, {}) }, T[key]));
  }
  $("lanes").replaceChildren(...s.lanes.map((l) => laneCard(l, s.allowed)));
  $("alarms").replaceChildren(...(s.alarms.length ? s.alarms.map((a) => alarmCard(a, s.allowed))
    : [el("p", { class: "muted" }, T.no_alarms)]));
}

async function start() {
  await loadTexts();
  const r = await fetch("/api/session");
  if (r.status === 200) showMain(await r.json());
  else showLogin("");
}

document.addEventListener("DOMContentLoaded", () => {
  $("login-form").addEventListener("submit", async (e) => {
    e.preventDefault();
    const button = $("login-form").querySelector("button[type=submit]");
    if (button.disabled) return;  // a second tap while the PIN is checked would count as a second attempt
    button.disabled = true;
    try {
      const { data } = await post("/api/login", { guard: $("guard").value.trim(), pin: $("pin").value });
      if (data.ok) showMain(data); else showLogin(data.text);
    } finally {
      button.disabled = false;
    }
  });
  $("logout").addEventListener("click", async () => { await post("/api/logout", {}); showLogin(""); });
  $("lang").addEventListener("click", async () => {
    lang = lang === "zh-CN" ? "en" : "zh-CN";
    localStorage.setItem("lang", lang);
    $("result").textContent = "";
    await loadTexts();
    if (csrf) { $("who").textContent = ""; const r = await fetch("/api/session"); if (r.ok) showMain(await r.json()); }
  });
  $("confirm-yes").addEventListener("click", () => { $("confirm").close(); if (pending) act(pending); pending = null; });
  $("confirm-no").addEventListener("click", () => { $("confirm").close(); pending = null; });
  start();
});
