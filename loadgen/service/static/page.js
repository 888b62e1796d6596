// The loadgen service's page: a form that queues sweeps, the list of sweeps, and one sweep
// watched live. Server data goes in with textContent only (a sweep's error can hold anything).
"use strict";

const LIST_EVERY_MS = 3000;
const WATCH_EVERY_MS = 1000;
const FINISHED = new Set(["succeeded", "failed", "cancelled"]);
const CANCELLABLE = new Set(["queued", "running"]);

const state = { watched: null, pinned: false, source: null, timer: null };

const $ = (id) => document.getElementById(id);

/** A new element with properties and children (strings become text nodes). */
function el(tag, props = {}, ...children) {
  const node = Object.assign(document.createElement(tag), props);
  node.append(...children.filter((child) => child !== null && child !== undefined));
  return node;
}

/** One API call: {status, data} (data: parsed JSON, or null). A 401 shows the sign-in form. */
async function api(method, path, body) {
  const init = { method, credentials: "same-origin", headers: {} };
  if (body !== undefined) {
    init.body = JSON.stringify(body);
    init.headers["Content-Type"] = "application/json";
  }
  const response = await fetch(path, init);
  const text = await response.text();
  let data = null;
  try {
    data = text ? JSON.parse(text) : null;
  } catch (error) {
    data = { title: `HTTP ${response.status}`, detail: text.slice(0, 300) };
  }
  if (response.status === 401 && path !== "/v1/session") showLogin();
  return { status: response.status, data };
}

function show(id, visible) {
  $(id).hidden = !visible;
}

function sweepPath(id, rest = "") {
  return `/v1/sweeps/${encodeURIComponent(id)}${rest}`;
}

// --- sign in ---------------------------------------------------------------------------------

function showLogin() {
  stopWatching();
  show("loading", false);
  show("app", false);
  show("login", true);
  $("token").focus();
}

async function signIn(event) {
  event.preventDefault();
  const reply = await api("POST", "/v1/session", { token: $("token").value });
  if (reply.status === 204) {
    window.location.reload();
    return;
  }
  const why = reply.data && reply.data.detail ? reply.data.detail : `HTTP ${reply.status}`;
  $("login-error").textContent = `Not signed in: ${why}`;
  show("login-error", true);
}

async function signOut() {
  await api("DELETE", "/v1/session");
  window.location.reload();
}

// --- the form --------------------------------------------------------------------------------

/** Whether an allow-list entry lets in URLs beyond itself: a host pattern or a bare origin. */
function isOpenEntry(entry) {
  if (!entry.includes("://")) return true;
  try {
    const url = new URL(entry);
    return url.port === "" && (url.pathname === "/" || url.pathname === "");
  } catch (error) {
    return true;
  }
}

function fillTargets(allowed) {
  const select = $("target-select");
  select.replaceChildren();
  for (const entry of allowed.filter((entry) => entry.includes("://"))) {
    select.append(el("option", { value: entry, textContent: entry }));
  }
  if (allowed.some(isOpenEntry)) {
    select.append(el("option", { value: "", textContent: "Other URL…" }));
  }
  select.addEventListener("change", targetChanged);
  targetChanged();
  if (allowed.length === 0) {
    $("start").disabled = true;
    $("limits").textContent = "This service allows no targets (set --allowed-targets).";
  }
}

function targetChanged() {
  const other = $("target-select").value === "";
  show("target-url-field", other);
  $("target-url").required = other;
}

function showLimits(info) {
  const parts = [];
  if (info.allowed_targets.length) {
    parts.push(`Load may go to: ${info.allowed_targets.join(", ")}.`);
  }
  if (info.max_rate_rps !== null) parts.push(`Rates up to ${info.max_rate_rps} req/s.`);
  parts.push(`Up to ${info.queue_size} sweeps may wait in the queue.`);
  $("limits").textContent = parts.join(" ");
}

/** The sweep file the form describes (as a sweep file's JSON). */
function sweepDocument() {
  const target = { base_url: $("target-select").value || $("target-url").value.trim() };
  const model = $("model").value.trim();
  if (model) target.model = model;
  return {
    target,
    load: {
      rates_rps: $("rates").value.trim(),
      num_requests: Number($("num-requests").value),
      trim: Number($("trim").value),
    },
    workload: { dataset: $("workload").value },
  };
}

async function submitSweep(event) {
  event.preventDefault();
  show("submit-error", false);
  show("submit-ok", false);
  $("start").disabled = true;
  try {
    const reply = await api("POST", "/v1/sweeps", sweepDocument());
    if (reply.status === 202) {
      $("submit-ok").textContent = `Queued sweep ${reply.data.id}.`;
      show("submit-ok", true);
      watch(reply.data.id, true);
      await refreshList();
    } else {
      showProblem(reply);
    }
  } finally {
    $("start").disabled = false;
  }
}

function showProblem(reply) {
  const problem = reply.data || {};
  $("submit-error-title").textContent = `${problem.title || "Refused"}:`;
  $("submit-error-detail").textContent = problem.detail || `HTTP ${reply.status}`;
  const errors = Array.isArray(problem.errors) ? problem.errors : [];
  $("submit-error-list").replaceChildren(...errors.map((error) => el("li", {}, String(error))));
  show("submit-error", true);
}

// --- the list of sweeps ----------------------------------------------------------------------

function shortTime(iso) {
  const date = new Date(iso);
  return Number.isNaN(date.getTime()) ? String(iso) : date.toLocaleString();
}

function badge(status) {
  return el("span", { className: `badge ${status}`, textContent: status });
}

function resultLinks(id, status) {
  if (status === "queued") return [];
  const report = el("a", { href: sweepPath(id, "/report.html"), target: "_blank",
    rel: "noopener", className: "report", textContent: "report" });
  const json = el("a", { href: sweepPath(id, "/summary.json"), textContent: "summary.json" });
  const csv = el("a", { href: sweepPath(id, "/summary.csv"), textContent: "summary.csv" });
  return [report, " · ", json, " · ", csv];
}

function sweepRow(sweep) {
  const pick = el("button", { type: "button", className: "quiet mono", textContent: sweep.id,
    title: "Watch this sweep" });
  pick.addEventListener("click", () => watch(sweep.id, true));
  const actions = el("td", { className: "actions" });
  if (CANCELLABLE.has(sweep.status)) {
    const cancel = el("button", { type: "button", className: "cancel", textContent: "Cancel" });
    cancel.addEventListener("click", () => cancelSweep(sweep.id));
    actions.append(cancel);
  }
  const row = el("tr", {}, el("td", {}, pick), el("td", {}, badge(sweep.status)),
    el("td", {}, shortTime(sweep.created)), el("td", {}, ...resultLinks(sweep.id, sweep.status)),
    actions);
  row.dataset.id = sweep.id;
  row.dataset.status = sweep.status;
  if (sweep.id === state.watched) row.className = "watched";
  return row;
}

async function refreshList() {
  let reply;
  try {
    reply = await api("GET", "/v1/sweeps?limit=100");
  } catch (error) {
    $("fatal").textContent = "The service does not answer; trying again…";
    show("fatal", true);
    return;
  }
  show("fatal", false);
  if (reply.status !== 200) return;
  const sweeps = reply.data.sweeps;
  $("sweeps").tBodies[0].replaceChildren(...sweeps.map(sweepRow));
  show("sweeps-empty", sweeps.length === 0);
  show("sweeps", sweeps.length > 0);
  $("queue-count").textContent = `(${reply.data.total})`;
  if (!state.pinned) {
    const running = sweeps.find((sweep) => !FINISHED.has(sweep.status) && sweep.status !== "queued");
    const chosen = running || sweeps[0];
    if (chosen && chosen.id !== state.watched) watch(chosen.id, false);
  }
}

async function cancelSweep(id) {
  const reply = await api("POST", sweepPath(id, "/cancel"));
  if (reply.status !== 202 && reply.data) showProblem(reply);
  await refreshList();
  if (id === state.watched) await refreshWatched();
}

// --- the watched sweep -----------------------------------------------------------------------

function stopWatching() {
  if (state.source) state.source.close();
  if (state.timer) clearInterval(state.timer);
  state.source = null;
  state.timer = null;
}

/** Follow sweep `id`: its events trigger a fresh read; a timer catches counts within a step. */
function watch(id, pinned) {
  stopWatching();
  state.watched = id;
  state.pinned = state.pinned || pinned;
  for (const row of $("sweeps").tBodies[0].rows) {
    row.className = row.dataset.id === id ? "watched" : "";
  }
  const source = new EventSource(sweepPath(id, "/events"));
  for (const name of ["status", "step_start", "step_end"]) {
    source.addEventListener(name, () => refreshWatched());
  }
  state.source = source;
  state.timer = setInterval(refreshWatched, WATCH_EVERY_MS);
  refreshWatched();
}

async function refreshWatched() {
  const id = state.watched;
  let reply;
  try {
    reply = await api("GET", sweepPath(id));
  } catch (error) {
    return; // the list says the service is gone; the next tick tries again
  }
  if (id !== state.watched || reply.status !== 200) return;
  showSweep(reply.data);
  if (FINISHED.has(reply.data.status)) {
    stopWatching();
    refreshList();
  }
}

function describeConfig(config) {
  const target = config.target || {};
  const load = config.load || {};
  const rates = (load.rates_rps || []).join(", ");
  const parts = [target.base_url, target.model || "first model",
    (config.workload || {}).dataset, `rates ${rates} req/s`,
    `${load.num_requests} requests per step, trim ${load.trim}`];
  return parts.filter(Boolean).join(" · ");
}

function showSweep(sweep) {
  show("watch", true);
  $("watch-id").textContent = sweep.id;
  $("watch-status").replaceWith(Object.assign(badge(sweep.status), { id: "watch-status" }));
  $("watch-config").textContent = describeConfig(sweep.config || {});
  $("watch-error").textContent = sweep.error || "";
  show("watch-error", Boolean(sweep.error));
  showProgress(sweep);
  const rows = sweep.steps.map(stepRow);
  $("steps").tBodies[0].replaceChildren(...rows);
  show("steps", rows.length > 0);
  show("steps-empty", rows.length === 0);
  $("watch-links").replaceChildren(...(rows.length ? resultLinks(sweep.id, sweep.status) : []));
}

function showProgress(sweep) {
  const progress = sweep.progress;
  show("progress", Boolean(progress) && !FINISHED.has(sweep.status));
  if (!progress) return;
  const steps = ((sweep.config || {}).load || {}).rates_rps || [];
  const of = steps.length ? ` of ${steps.length}` : "";
  $("progress-text").textContent = `Step ${progress.step + 1}${of} at ${rate(progress.rate_rps)}` +
    ` req/s: sent ${progress.sent} / ${progress.planned}, done ${progress.done},` +
    ` errors ${progress.errors}`;
  $("progress-bar").max = Math.max(progress.planned, 1);
  $("progress-bar").value = progress.done;
}

// --- the step table --------------------------------------------------------------------------

function rate(value) {
  if (value === null || value === undefined) return "inf";
  return typeof value === "number" ? String(Number(value.toPrecision(4))) : String(value);
}

function fixed(value, digits, scale = 1) {
  return typeof value === "number" && Number.isFinite(value) ? (value * scale).toFixed(digits) : "–";
}

function stat(distribution, name, scale, digits) {
  return fixed(distribution ? distribution[name] : null, digits, scale);
}

function stepRow(step) {
  const cells = [
    rate(step.target_rate_rps),
    fixed(step.achieved_rate_rps, 2),
    String(step.num_kept),
    String(step.num_errors),
    fixed(step.sequence_throughput_rps, 2),
    fixed(step.output_token_throughput_tps, 1),
    stat(step.ttft_s, "p50", 1000, 1),
    stat(step.ttft_s, "p99", 1000, 1),
    stat(step.tpot_s, "p50", 1000, 2),
    stat(step.per_token_latency_s, "p50", 1000, 2),
    stat(step.e2e_s, "p50", 1, 3),
  ];
  const row = el("tr", {}, ...cells.map((cell) => el("td", {}, cell)));
  if (step.num_errors > 0) {
    const kinds = Object.entries(step.errors_by_kind || {}).map(([kind, n]) => `${kind}: ${n}`);
    Object.assign(row.cells[3], { className: "bad", title: kinds.join(", ") });
  }
  if (step.invalid) {
    row.className = "invalid";
    row.title = `invalid step: ${step.invalid}`;
  }
  return row;
}

// --- start -----------------------------------------------------------------------------------

function showMain(info) {
  $("version").textContent = `v${info.version}`;
  if (info.grafana_url) {
    $("grafana").href = info.grafana_url;
    show("grafana", true);
  }
  fillTargets(info.allowed_targets);
  showLimits(info);
  show("loading", false);
  show("login", false);
  show("app", true);
  refreshList();
  setInterval(refreshList, LIST_EVERY_MS);
}

async function start() {
  $("login-form").addEventListener("submit", signIn);
  $("sweep-form").addEventListener("submit", submitSweep);
  $("sign-out").addEventListener("click", signOut);
  try {
    const session = (await api("GET", "/v1/session")).data || {};
    if (session.login_required && !session.signed_in) {
      showLogin();
      return;
    }
    show("sign-out", Boolean(session.login_required));
    const info = await api("GET", "/v1/service");
    if (info.status === 200) showMain(info.data);
  } catch (error) {
    show("loading", false);
    $("fatal").textContent = `The service does not answer: ${error}`;
    show("fatal", true);
  }
}

document.addEventListener("DOMContentLoaded", start);
