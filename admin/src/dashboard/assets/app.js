// Ocelot's dashboard: a read-only view of builds, a build's stages and live log, and the
// workers. No framework: the DOM is built with createElement and textContent only (a log line
// is never parsed as HTML).
"use strict";

const FINAL = new Set(["passed", "failed", "errored", "cancelled", "timed_out", "skipped"]);
const STATES = ["", "queued", "running", "passed", "failed", "errored", "cancelled", "timed_out", "skipped"];
let cleanup = [];

function el(tag, attrs, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs || {})) {
    if (key === "class") node.className = value;
    else if (key === "text") node.textContent = value;
    else if (key.startsWith("on")) node.addEventListener(key.slice(2), value);
    else node.setAttribute(key, value);
  }
  for (const child of children) {
    if (child == null) continue;
    node.append(typeof child === "string" ? document.createTextNode(child) : child);
  }
  return node;
}

function main() { return document.getElementById("main"); }

function show(...nodes) {
  const target = main();
  target.replaceChildren(...nodes);
}

class Unauthorized extends Error {}

async function api(path, options) {
  const response = await fetch(path, Object.assign({ credentials: "same-origin" }, options || {}));
  if (response.status === 401) throw new Unauthorized((await response.json()).error);
  if (!response.ok) {
    let message = response.statusText;
    try { message = (await response.json()).error || message; } catch (_) { /* not JSON */ }
    throw new Error(message);
  }
  return response.status === 204 ? null : response.json();
}

function stateBadge(state, id) {
  const badge = el("span", { class: "state " + state, text: state.replace("_", " ") });
  if (id) badge.id = id;
  badge.dataset.state = state;
  return badge;
}

function duration(ms) {
  if (!ms || ms < 0) return "";
  const seconds = Math.round(ms / 1000);
  if (seconds < 60) return seconds + "s";
  const minutes = Math.floor(seconds / 60);
  if (minutes < 60) return minutes + "m " + (seconds % 60) + "s";
  return Math.floor(minutes / 60) + "h " + (minutes % 60) + "m";
}

function buildDuration(build) {
  if (!build.started_at_ms) return "";
  const end = build.finished_at_ms || Date.now();
  return duration(end - build.started_at_ms);
}

function ago(ms) {
  if (!ms) return "";
  const seconds = Math.max(0, Math.round((Date.now() - ms) / 1000));
  if (seconds < 60) return seconds + "s ago";
  if (seconds < 3600) return Math.floor(seconds / 60) + "m ago";
  if (seconds < 86400) return Math.floor(seconds / 3600) + "h ago";
  return new Date(ms).toISOString().slice(0, 16).replace("T", " ");
}

// ---- ANSI colours (SGR) -------------------------------------------------------------------
const CSI = /\x1b\[([0-9;]*)([A-Za-z])/g;

function appendAnsi(parent, text) {
  let style = { bold: false, fg: null, bg: null };
  let last = 0;
  const push = (piece) => {
    if (!piece) return;
    const classes = [];
    if (style.bold) classes.push("ansi-bold");
    if (style.fg !== null) classes.push("ansi-fg-" + style.fg);
    if (style.bg !== null) classes.push("ansi-bg-" + style.bg);
    parent.append(classes.length ? el("span", { class: classes.join(" "), text: piece }) : document.createTextNode(piece));
  };
  for (const match of text.matchAll(CSI)) {
    push(text.slice(last, match.index));
    last = match.index + match[0].length;
    if (match[2] !== "m") continue;
    const codes = match[1] === "" ? [0] : match[1].split(";").map(Number);
    for (let i = 0; i < codes.length; i++) {
      const code = codes[i];
      if (code === 0) style = { bold: false, fg: null, bg: null };
      else if (code === 1) style.bold = true;
      else if (code === 22) style.bold = false;
      else if (code >= 30 && code <= 37) style.fg = code - 30;
      else if (code >= 90 && code <= 97) style.fg = code - 90 + 8;
      else if (code === 39) style.fg = null;
      else if (code >= 40 && code <= 47) style.bg = code - 40;
      else if (code === 49) style.bg = null;
      else if ((code === 38 || code === 48) && codes[i + 1] === 5) i += 2;
      else if ((code === 38 || code === 48) && codes[i + 1] === 2) i += 4;
    }
  }
  push(text.slice(last).replace(/\x1b/g, ""));
}

// ---- sign-in --------------------------------------------------------------------------------
function loginForm(next, message) {
  const input = el("input", { type: "password", id: "token", autocomplete: "off", placeholder: "ocelot_…" });
  const error = el("p", { class: "error", text: message || "" });
  const form = el("form", { class: "login" },
    el("h1", { text: "Sign in" }),
    el("p", { class: "muted", text: "Paste an API token (a read token is enough: ocelot token create NAME --scope read), or open the link `ocelot open BUILD` prints." }),
    input, el("button", { type: "submit", text: "Sign in" }), error);
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    try {
      await api("api/login", { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify({ token: input.value }) });
      location.hash = "#" + next;
      route();
    } catch (failure) {
      error.textContent = failure.message;
    }
  });
  show(form);
  input.focus();
}

async function signedIn() {
  const who = document.getElementById("who");
  const me = await api("api/me");
  const out = el("button", { text: "Sign out", onclick: async () => { await api("api/logout", { method: "POST" }); route(); } });
  who.replaceChildren("token " + me.name + " (" + me.scope + ")", out);
}

// ---- builds -------------------------------------------------------------------------------
function buildsPage(params) {
  const repo = el("input", { placeholder: "repo", value: params.get("repo") || "" });
  const state = el("select", {}, ...STATES.map((name) => el("option", { value: name, text: name || "any state" })));
  state.value = params.get("state") || "";
  const table = el("table", { id: "builds" });
  const status = el("p", { class: "muted" });
  const apply = () => { location.hash = "#/?" + new URLSearchParams({ repo: repo.value, state: state.value }); };
  repo.addEventListener("change", apply);
  state.addEventListener("change", apply);
  show(el("h1", { text: "Builds" }), el("div", { class: "filters" }, repo, state), table, status);
  const refresh = async () => {
    try {
      const query = new URLSearchParams({ repo: repo.value, state: state.value, limit: "100" });
      const { builds } = await api("api/builds?" + query);
      const head = el("tr", {}, ...["", "#", "repo", "branch", "commit", "trigger", "duration", "queued", ""].map((t) => el("th", { text: t })));
      const rows = builds.map((b) => el("tr", {},
        el("td", {}, stateBadge(b.state)),
        el("td", {}, el("a", { href: "#/builds/" + b.id, text: String(b.id) })),
        el("td", { text: b.repo }),
        el("td", { text: b.branch || b.git_tag }),
        el("td", { class: "mono", text: b.commit.slice(0, 10) }),
        el("td", { text: b.trigger }),
        el("td", { text: buildDuration(b) }),
        el("td", { text: ago(b.queued_at_ms) }),
        el("td", { class: "muted", text: b.pending_reason || b.reason || "" })));
      table.replaceChildren(head, ...rows);
      status.textContent = builds.length ? "" : "No builds yet.";
    } catch (failure) {
      if (failure instanceof Unauthorized) return loginForm("/", failure.message);
      status.textContent = failure.message;
    }
  };
  refresh();
  const timer = setInterval(refresh, 3000);
  cleanup.push(() => clearInterval(timer));
}

// ---- one build ----------------------------------------------------------------------------
function buildPage(id) {
  const title = el("h1", { text: "Build " + id });
  const facts = el("dl", { class: "facts" });
  const waiting = el("div", { class: "waiting", id: "waiting", hidden: "" });
  const stages = el("div", { class: "stages", id: "stages" });
  const log = el("div", { id: "log" });
  const more = el("button", { class: "more", text: "Load the next page of the log", hidden: "" });
  const status = el("p", { class: "muted", id: "live-status" });
  show(title, facts, waiting, el("h2", { text: "Stages" }), stages, el("h2", { text: "Log" }), log, more, status);

  let last = { attempt: 0, seq: 0 };
  let source = null;
  let finished = false;
  let retry = null;
  const closeLive = () => { if (source) source.close(); source = null; if (retry) clearTimeout(retry); };
  cleanup.push(closeLive);

  const renderDetail = (detail) => {
    const b = detail.build;
    const rows = [["state", stateBadge(b.state, "build-state")], ["repo", b.repo], ["branch", b.branch || b.git_tag],
      ["commit", el("code", { text: b.commit })], ["trigger", b.trigger], ["attempt", String(b.attempt)],
      ["worker", b.worker], ["duration", buildDuration(b)], ["reason", b.reason]];
    facts.replaceChildren(...rows.filter(([, v]) => v).flatMap(([k, v]) => [el("dt", { text: k }), el("dd", {}, v)]));
    title.textContent = "Build " + b.id + " · " + b.repo + " #" + b.number;
    if (detail.pending_reason) { waiting.hidden = false; waiting.textContent = "Waiting: " + detail.pending_reason; }
    else waiting.hidden = true;
    stages.replaceChildren(...detail.stages.map((s) => el("span", { class: "stage" }, stateBadge(s.state), " " + s.name,
      s.finished_at_ms && s.started_at_ms ? el("span", { class: "muted", text: " " + duration(s.finished_at_ms - s.started_at_ms) }) : null)));
    return b;
  };

  const refreshDetail = async () => {
    try {
      const b = renderDetail(await api("api/builds/" + id));
      if (FINAL.has(b.state)) finished = true;
      return b;
    } catch (failure) {
      if (failure instanceof Unauthorized) { closeLive(); loginForm("/builds/" + id, failure.message); }
      else status.textContent = failure.message;
      return null;
    }
  };

  const newer = (event) => event.attempt > last.attempt || (event.attempt === last.attempt && event.last_seq > last.seq);

  const append = (event) => {
    if (!newer(event)) return;
    // a later attempt replaces what an earlier one printed (attempt 0: nothing printed yet)
    if (last.attempt > 0 && event.attempt > last.attempt) {
      log.replaceChildren(el("div", { class: "marker", text: "— attempt " + event.attempt + " (the earlier attempt was handed back or lost) —" }));
    }
    last = { attempt: event.attempt, seq: event.last_seq };
    switch (event.kind) {
      case "lines":
        for (const text of event.lines) {
          const line = el("div", { class: "line " + event.stream });
          appendAnsi(line, text);
          log.append(line);
        }
        break;
      case "stage_started":
        log.append(el("div", { class: "marker", text: "▶ " + event.name }));
        break;
      case "stage_finished":
        log.append(el("div", { class: "marker", text: "■ " + event.name + ": " + event.state + (event.exit_code != null ? " (exit " + event.exit_code + ")" : "") + " in " + duration(event.duration_ms) }));
        break;
      case "attempt_started":
        log.append(el("div", { class: "marker", text: "attempt " + event.attempt + " on " + event.worker + " at " + event.commit.slice(0, 10) }));
        break;
      case "result":
        log.append(el("div", { class: "result", id: "result", text: "Build " + event.state.replace("_", " ") + (event.reason ? ": " + event.reason : "") + " in " + duration(event.duration_ms) }));
        break;
    }
  };

  const follow = () => {
    closeLive();
    if (finished) return;
    status.textContent = "following live…";
    source = new EventSource("api/builds/" + id + "/events?after=" + last.attempt + ":" + last.seq);
    source.onmessage = (message) => {
      const event = JSON.parse(message.data);
      append(event);
      if (event.kind === "result") { finished = true; closeLive(); status.textContent = ""; refreshDetail(); }
      else if (event.kind === "stage_started" || event.kind === "stage_finished" || event.kind === "attempt_started") refreshDetail();
    };
    source.addEventListener("failure", (message) => { status.textContent = "the live log broke off (" + JSON.parse(message.data).error + "); reconnecting…"; });
    source.onerror = () => {
      if (finished) return;
      status.textContent = "connection lost; reconnecting…";
      // the browser reconnects by itself (with Last-Event-ID) unless the server refused
      if (source && source.readyState === EventSource.CLOSED) retry = setTimeout(follow, 3000);
    };
  };

  const nextPage = async () => {
    more.hidden = true;
    try {
      const page = await api("api/builds/" + id + "/log?after=" + last.seq);
      if (last.seq === 0) last.attempt = page.attempt;
      for (const event of page.events) append(event);
      if (page.more) { more.hidden = false; return; }
      follow();
    } catch (failure) {
      if (failure instanceof Unauthorized) return loginForm("/builds/" + id, failure.message);
      status.textContent = failure.message;
    }
  };
  more.addEventListener("click", nextPage);

  (async () => {
    const b = await refreshDetail();
    if (!b) return;
    last = { attempt: b.attempt, seq: 0 };
    await nextPage();
  })();
  const timer = setInterval(() => { if (!finished) refreshDetail(); }, 2000);
  cleanup.push(() => clearInterval(timer));
}

// ---- workers ------------------------------------------------------------------------------
function workersPage() {
  const table = el("table", { id: "workers" });
  const queued = el("table", { id: "queued" });
  const status = el("p", { class: "muted" });
  show(el("h1", { text: "Workers" }), table, el("h2", { text: "Queued builds and why they wait" }), queued, status);
  const refresh = async () => {
    try {
      const [{ workers }, { builds }] = await Promise.all([api("api/workers"), api("api/builds?state=queued&limit=100")]);
      table.replaceChildren(el("tr", {}, ...["worker", "tags", "slots in use", "executor", "host", "version", "seen", "paused"].map((t) => el("th", { text: t }))),
        ...workers.map((w) => el("tr", {}, el("td", { text: w.id }), el("td", { text: w.tags.join(", ") }),
          el("td", { text: w.running + " of " + w.capacity }), el("td", { text: w.executor }), el("td", { text: w.host }),
          el("td", { text: w.version }), el("td", { text: ago(w.seen_at_ms) }), el("td", { class: w.paused ? "error" : "", text: w.paused || "" }))));
      queued.replaceChildren(el("tr", {}, ...["#", "repo", "branch", "queued", "why it waits"].map((t) => el("th", { text: t }))),
        ...builds.map((b) => el("tr", {}, el("td", {}, el("a", { href: "#/builds/" + b.id, text: String(b.id) })), el("td", { text: b.repo }),
          el("td", { text: b.branch }), el("td", { text: ago(b.queued_at_ms) }), el("td", { text: b.pending_reason || "" }))));
      status.textContent = workers.length ? "" : "No live worker.";
    } catch (failure) {
      if (failure instanceof Unauthorized) return loginForm("/workers", failure.message);
      status.textContent = failure.message;
    }
  };
  refresh();
  const timer = setInterval(refresh, 3000);
  cleanup.push(() => clearInterval(timer));
}

// ---- routing --------------------------------------------------------------------------------
function parseHash() {
  const hash = location.hash.replace(/^#/, "") || "/";
  const [path, query] = hash.split("?");
  return { path: path || "/", params: new URLSearchParams(query || "") };
}

async function route() {
  for (const stop of cleanup) stop();
  cleanup = [];
  const { path, params } = parseHash();
  // a sign-in link (`ocelot open`): the token is in the fragment, never sent in a URL
  const token = params.get("token");
  if (token) {
    params.delete("token");
    const rest = params.toString();
    history.replaceState(null, "", "#" + path + (rest ? "?" + rest : ""));
    try {
      await api("api/login", { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify({ token }) });
    } catch (failure) {
      return loginForm(path, failure.message);
    }
  }
  try {
    await signedIn();
  } catch (failure) {
    document.getElementById("who").replaceChildren();
    return loginForm(path, failure instanceof Unauthorized ? "" : failure.message);
  }
  const build = path.match(/^\/builds\/(\d+)$/);
  if (build) return buildPage(build[1]);
  if (path === "/workers") return workersPage();
  return buildsPage(params);
}

window.addEventListener("hashchange", route);
route();
