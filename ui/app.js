// The log explorer: discovery -> a container's (or a pod's, or a namespace's) lines, paged through
// GET /query's cursor, followed through GET /tail, all of it in the URL.

import { ApiError, AuthRequired, getJSON, setToken } from "./api.js";
import { renderLine, stripAnsi } from "./ansi.js";
import { download } from "./download.js";
import { refreshHealth } from "./health.js";
import { jsonFields } from "./json-fields.js";
import { readState, writeState, timeKey, timeRange, toLocalInput, fromLocalInput } from "./state.js";
import { Follower, SeenLines } from "./tail.js";
import { VirtualList } from "./virtual-list.js";

const FIRST_PAGE = 1000; // small, for the first lines soon
const PAGE = 5000;
const LOAD_AHEAD_PX = 2000; // load the next page this close to the loaded end
const HEALTH_SECONDS = 10;
const TIME_CH = 31;
const SINCE_MARGIN_SECONDS = 60; // a follow starts this long before the query, for clock skew // "2026-03-14T12:00:00.123456789Z "

const $ = (id) => document.getElementById(id);
const state = readState();
const view = {
  generation: 0, // bumped by every reload: answers to older requests are dropped
  cursor: null, // next_cursor of the last page, or null when the range is read to its end
  loading: false,
  follower: null,
  seen: new SeenLines(),
  unseen: 0,
  stick: true, // auto-scroll while following: on until the user scrolls up
  firstShown: false,
  scope: "container",
  cols: 200,
  sourceCh: 4,
  filter: null,
};

// --- the list ---

const list = new VirtualList($("viewport"), {
  renderRow,
  linesOf,
  onScroll: () => {
    view.stick = list.atEnd();
    if (view.stick) hideJump();
    maybeLoadMore();
  },
});

function rowPrefixCh() {
  return 2 + (state.timestamps === "1" ? TIME_CH : 0) + (view.scope === "container" ? 0 : sourceCh());
}

function sourceCh() {
  return view.sourceCh;
}

// The pod/container column fits the longest name loaded (up to 40 characters; longer ones are cut).
function fitSource(rows) {
  if (view.scope === "container") return;
  let widest = view.sourceCh;
  for (const row of rows) {
    const length = (view.scope === "namespace" ? row.pod.length + 1 : 0) + (row.container || "").length + 1;
    if (length > widest) widest = Math.min(41, length);
  }
  if (widest !== view.sourceCh) {
    view.sourceCh = widest;
    relayout();
  }
}

function linesOf(row) {
  if (row.lines === undefined) {
    const plain = stripAnsi(row.log);
    row.lines = plain.split("\n").map((part) => part.length);
  }
  let lines = 0;
  if (state.wrap === "1") {
    for (const length of row.lines) lines += Math.max(1, Math.ceil(length / view.cols));
  } else {
    lines = row.lines.length;
  }
  if (row.open) lines += row.fields.length;
  return lines;
}

function measure() {
  const probe = $("probe");
  const charWidth = probe.getBoundingClientRect().width / probe.textContent.length || 7.2;
  const width = $("viewport").clientWidth - 16 - rowPrefixCh() * charWidth;
  view.cols = Math.max(20, Math.floor(width / charWidth));
  const viewport = $("viewport");
  viewport.style.setProperty("--time-ch", state.timestamps === "1" ? TIME_CH : 0);
  viewport.style.setProperty("--source-ch", view.scope === "container" ? 0 : sourceCh());
  viewport.classList.toggle("wrap", state.wrap === "1");
}

function renderRow(row, index) {
  const element = document.createElement("div");
  element.className = "row";
  element.dataset.index = index;
  const line = document.createElement("div");
  line.className = "line";
  const toggle = document.createElement("span");
  toggle.className = "toggle";
  if (row.fields === undefined) row.fields = jsonFields(row.log);
  if (row.fields) {
    toggle.textContent = row.open ? "▾" : "▸";
    toggle.title = "show the JSON fields";
  }
  line.appendChild(toggle);
  if (state.timestamps === "1") {
    const time = document.createElement("span");
    time.className = "time";
    time.textContent = row.time;
    line.appendChild(time);
  }
  if (view.scope !== "container") {
    const source = document.createElement("span");
    source.className = "source";
    source.textContent = view.scope === "namespace" ? `${row.pod}/${row.container}` : row.container;
    source.title = source.textContent;
    line.appendChild(source);
  }
  const text = document.createElement("span");
  text.className = "text";
  renderLine(text, row.log, view.filter);
  line.appendChild(text);
  element.appendChild(line);
  if (row.open && row.fields) {
    const fields = document.createElement("div");
    fields.className = "fields";
    for (const [key, value] of row.fields) {
      const field = document.createElement("div");
      field.className = "field";
      const name = document.createElement("span");
      name.className = "key";
      name.textContent = key;
      const shown = document.createElement("span");
      shown.className = "value";
      shown.textContent = value;
      field.append(name, ": ", shown);
      fields.appendChild(field);
    }
    element.appendChild(fields);
  }
  return element;
}

$("viewport").addEventListener("click", (event) => {
  const toggle = event.target.closest(".toggle");
  if (!toggle) return;
  const index = Number(toggle.closest(".row").dataset.index);
  const row = list.rows[index];
  if (!row || !row.fields) return;
  row.open = !row.open;
  list.invalidate(index);
});

function relayout() {
  measure();
  list.invalidate(0);
}

new ResizeObserver(() => {
  const before = view.cols;
  measure();
  if (state.wrap === "1" && view.cols !== before) list.invalidate(0);
}).observe($("viewport"));

// --- status ---

function setStatus(text, isError = false) {
  $("status").textContent = text;
  $("status").classList.toggle("error", isError);
}

function describe() {
  const parts = [`${list.length.toLocaleString("en")} lines`];
  if (view.loading) parts.push("loading…");
  else if (view.cursor) parts.push(state.order === "newest" ? "older lines above: scroll up" : "more below: scroll down");
  else if (list.length) parts.push(state.order === "newest" ? "from the start of the range" : "to the end of the range");
  if (view.follower) parts.push(view.followState || "following");
  return parts.join(" · ");
}

function showStatus() {
  setStatus(describe());
}

function clearFieldErrors() {
  for (const name of ["contains", "regex"]) {
    $(name + "-error").textContent = "";
    $(name).removeAttribute("aria-invalid");
  }
}

function showError(error) {
  if (error instanceof AuthRequired) {
    askForToken(error.message);
    return;
  }
  if (error instanceof ApiError && (error.param === "regex" || error.param === "contains")) {
    $(error.param + "-error").textContent = error.detail || error.title;
    $(error.param).setAttribute("aria-invalid", "true");
    setStatus(`${error.title}: see the field`, true);
    return;
  }
  if (error.name === "AbortError") return;
  setStatus(error.message || String(error), true);
}

// --- the query ---

function scopeParams() {
  const params = { namespace: state.namespace };
  if (state.pod) params.pod_name = state.pod;
  if (state.pod && state.container) params.container_name = state.container;
  return params;
}

function filterParams() {
  return { contains: state.contains, regex: state.regex, stream: state.stream };
}

function queryParams() {
  return { ...scopeParams(), ...timeRange(state), ...filterParams() };
}

function highlightFilter() {
  let pattern = null;
  if (state.regex) {
    try {
      pattern = new RegExp(state.regex, "g");
    } catch {
      pattern = null; // RE2 syntax JavaScript lacks: the server filters, the page just does not highlight
    }
  }
  return state.contains || pattern ? { needle: state.contains, pattern } : null;
}

async function fetchPage(limit) {
  const params = { ...view.params, limit, direction: state.order === "newest" ? "backward" : "forward" };
  if (view.cursor) params.cursor = view.cursor;
  const page = await getJSON("/query", params);
  const rows = page.log_rows;
  if (state.order === "newest") rows.reverse(); // the page came newest first; the list reads down in time
  return { rows, cursor: page.next_cursor || null };
}

async function reload() {
  stopFollowing();
  const generation = ++view.generation;
  writeState(state);
  clearFieldErrors();
  view.scope = !state.pod ? "namespace" : state.container ? "container" : "pod";
  view.filter = highlightFilter();
  view.cursor = null;
  view.seen = new SeenLines();
  view.sourceCh = 4;
  view.stick = true;
  hideJump();
  measure();
  list.setRows([]);
  if (!state.namespace) {
    setStatus("Pick a namespace, then a pod (or all pods), then a container (or all of them).");
    return;
  }
  if (state.range === "custom" && !state.start) {
    setStatus("Give the start of the absolute range.");
    return;
  }
  view.queriedAt = Date.now();
  view.params = queryParams(); // fixed for the paging: a relative range does not slide under the cursor
  view.loading = true;
  showStatus();
  try {
    const { rows, cursor } = await fetchPage(FIRST_PAGE);
    if (generation !== view.generation) return;
    view.cursor = cursor;
    fitSource(rows);
    list.setRows(rows);
    if (state.order === "newest") list.scrollToEnd();
    if (!view.firstShown && rows.length) {
      view.firstShown = true;
      performance.mark("kil:first-lines");
    }
    performance.mark("kil:lines-shown");
    if (state.order === "newest") for (const row of rows) view.seen.observe(row);
    view.loading = false;
    showStatus();
    if (!rows.length) showEmpty();
    if (state.follow === "1") startFollowing();
    maybeLoadMore();
  } catch (error) {
    if (generation !== view.generation) return;
    view.loading = false;
    showError(error);
  }
}

function showEmpty() {
  setStatus(describe() + " · no lines in this range" + (state.contains || state.regex || state.stream ? " match the filters" : ""));
}

async function maybeLoadMore() {
  if (view.loading || !view.cursor) return;
  const viewport = $("viewport");
  const distance = state.order === "newest"
    ? viewport.scrollTop
    : viewport.scrollHeight - viewport.scrollTop - viewport.clientHeight;
  if (distance > LOAD_AHEAD_PX) return;
  const generation = view.generation;
  view.loading = true;
  showStatus();
  try {
    const { rows, cursor } = await fetchPage(PAGE);
    if (generation !== view.generation) return;
    view.cursor = cursor;
    fitSource(rows);
    if (state.order === "newest") list.prepend(rows);
    else list.append(rows);
    view.loading = false;
    showStatus();
    performance.mark("kil:page-shown");
    maybeLoadMore();
  } catch (error) {
    if (generation !== view.generation) return;
    view.loading = false;
    showError(error);
  }
}

// --- follow ---

function canFollow() {
  return Boolean(state.namespace && state.pod && state.range !== "custom");
}

function startFollowing() {
  if (!canFollow() || view.follower) return;
  if (state.order !== "newest") {
    // New lines go at the bottom, after every older one: the list must hold the range's end.
    state.order = "newest";
    $("order").value = "newest";
    state.follow = "1";
    reload();
    return;
  }
  state.follow = "1";
  writeState(state);
  // From the newest line shown; when that is older than the query itself, from just before the
  // query (it read up to the server's now), so that the tail need not re-read the whole range.
  const floor = new Date(view.queriedAt - SINCE_MARGIN_SECONDS * 1000).toISOString();
  if (!view.seen.time || timeKey(view.seen.time) < timeKey(floor)) view.seen.startAt(floor);
  view.follower = new Follower({
    params: { ...scopeParams(), ...filterParams() },
    seen: view.seen,
    onLines: (rows) => {
      const stick = view.stick;
      fitSource(rows);
      list.append(rows);
      if (stick) list.scrollToEnd();
      else showJump(rows.length);
      performance.mark("kil:tail-lines");
      showStatus();
    },
    onState: (name, detail) => {
      view.followState = {
        following: "following", reconnecting: "reconnecting…", paused: "paused",
        "store-error": `following; ${detail && detail.message}`, stopped: "follow stopped",
      }[name];
      if (name === "stopped") {
        view.follower = null;
        state.follow = "0";
        writeState(state);
        updateFollowButton();
        if (detail) showError(detail);
        return;
      }
      showStatus();
    },
  });
  view.follower.start();
  updateFollowButton();
}

function stopFollowing() {
  if (view.follower) {
    view.follower.stop();
    view.follower = null;
  }
  updateFollowButton();
}

function updateFollowButton() {
  const button = $("follow");
  button.disabled = !canFollow();
  button.title = canFollow() ? "" : "Follow needs a pod and a relative time range";
  button.textContent = view.follower ? "Pause" : state.follow === "1" ? "Follow" : "Follow";
  button.classList.toggle("active", Boolean(view.follower));
}

$("follow").addEventListener("click", () => {
  if (view.follower) {
    stopFollowing();
    state.follow = "0";
    writeState(state);
    showStatus();
  } else {
    startFollowing();
  }
});

function showJump(count) {
  view.unseen += count;
  $("jump").hidden = false;
  $("jump").textContent = `${view.unseen.toLocaleString("en")} new lines ↓`;
}

function hideJump() {
  view.unseen = 0;
  $("jump").hidden = true;
}

$("jump").addEventListener("click", () => {
  list.scrollToEnd();
  view.stick = true;
  hideJump();
});

// --- discovery ---

function discoveryRange() {
  const { start_time, end_time } = timeRange(state);
  return { start_time, end_time };
}

function fillDatalist(id, names) {
  const datalist = $(id);
  datalist.replaceChildren(...names.map((name) => {
    const option = document.createElement("option");
    option.value = name;
    return option;
  }));
}

async function loadNamespaces() {
  const { namespaces } = await getJSON("/namespaces", discoveryRange());
  fillDatalist("namespaces", namespaces);
  view.namespaces = namespaces;
}

async function loadPods() {
  if (!state.namespace) {
    fillDatalist("pods", []);
    return;
  }
  const { pods } = await getJSON("/pods", { namespace: state.namespace, ...discoveryRange() });
  fillDatalist("pods", pods);
}

async function loadContainers() {
  const select = $("container");
  const chosen = state.container;
  let containers = [];
  if (state.namespace && state.pod) {
    ({ containers } = await getJSON("/containers",
      { namespace: state.namespace, pod_name: state.pod, ...discoveryRange() }));
  }
  const options = [new Option("all containers", "")];
  for (const name of containers) options.push(new Option(name, name));
  if (chosen && !containers.includes(chosen)) options.push(new Option(chosen, chosen));
  select.replaceChildren(...options);
  select.value = chosen;
  select.disabled = !state.pod;
}

async function discover(...steps) {
  try {
    for (const step of steps) await step();
  } catch (error) {
    showError(error);
  }
}

// --- the controls ---

function showControls() {
  $("namespace").value = state.namespace;
  $("pod").value = state.pod;
  $("range").value = state.range;
  $("start").value = toLocalInput(state.start);
  $("end").value = toLocalInput(state.end);
  $("contains").value = state.contains;
  $("regex").value = state.regex;
  $("stream").value = state.stream;
  $("order").value = state.order;
  $("timestamps").checked = state.timestamps === "1";
  $("wrap").checked = state.wrap === "1";
  $("controls").classList.toggle("custom-range", state.range === "custom");
  updateFollowButton();
}

function on(id, event, handler) {
  $(id).addEventListener(event, handler);
}

on("controls", "submit", (event) => event.preventDefault());
on("namespace", "change", () => {
  state.namespace = $("namespace").value.trim();
  state.pod = "";
  state.container = "";
  $("pod").value = "";
  updateFollowButton();
  discover(loadPods, loadContainers);
  reload();
});
on("pod", "change", () => {
  state.pod = $("pod").value.trim();
  state.container = "";
  updateFollowButton();
  discover(loadContainers);
  reload();
});
on("container", "change", () => {
  state.container = $("container").value;
  reload();
});
on("range", "change", () => {
  state.range = $("range").value;
  if (state.range === "custom" && !state.start) {
    const { start_time } = timeRange({ range: "1h" });
    state.start = start_time;
    state.end = new Date().toISOString();
  }
  showControls();
  discover(loadNamespaces, loadPods, loadContainers);
  reload();
});
for (const id of ["start", "end"]) {
  on(id, "change", () => {
    state[id] = fromLocalInput($(id).value);
    reload();
  });
}
for (const id of ["contains", "regex"]) {
  let timer = 0;
  on(id, "input", () => {
    clearTimeout(timer);
    timer = setTimeout(() => {
      state[id] = $(id).value;
      reload();
    }, 400);
  });
  on(id, "change", () => {
    clearTimeout(timer);
    if (state[id] === $(id).value) return;
    state[id] = $(id).value;
    reload();
  });
}
on("stream", "change", () => {
  state.stream = $("stream").value;
  reload();
});
on("order", "change", () => {
  state.order = $("order").value;
  if (state.order === "oldest") state.follow = "0";
  reload();
});
on("timestamps", "change", () => {
  state.timestamps = $("timestamps").checked ? "1" : "0";
  writeState(state);
  relayout();
});
on("wrap", "change", () => {
  state.wrap = $("wrap").checked ? "1" : "0";
  writeState(state);
  relayout();
});

async function saveAs(format) {
  if (!state.namespace) return;
  const name = [state.namespace, state.pod, state.container].filter(Boolean).join("_");
  try {
    const rows = await download(queryParams(), {
      format,
      timestamps: state.timestamps === "1",
      filename: `${name}.${format === "ndjson" ? "ndjson" : "log"}`,
      onProgress: (count) => setStatus(`downloading: ${count.toLocaleString("en")} lines`),
    });
    setStatus(`downloaded ${rows.toLocaleString("en")} lines`);
  } catch (error) {
    showError(error);
  }
}

on("download-text", "click", () => saveAs("text"));
on("download-ndjson", "click", () => saveAs("ndjson"));

// --- the token ---

let tokenAsked = false;

function askForToken(problem) {
  const dialog = $("token-dialog");
  $("token-problem").textContent = tokenAsked ? "That token was refused." : "";
  if (!dialog.open) dialog.showModal();
  $("token").focus();
  setStatus(problem || "a query token is needed", true);
}

on("token-form", "submit", () => {
  tokenAsked = true;
  setToken($("token").value.trim());
  $("token").value = "";
  start();
});

// --- start ---

function start() {
  discover(loadNamespaces, loadPods, loadContainers);
  reload();
}

const healthElements = {
  redis: $("health-redis"), cassandra: $("health-cassandra"), queue: $("health-queue"),
  workers: $("health-workers"), lag: $("health-lag"),
};
refreshHealth(healthElements);
setInterval(() => refreshHealth(healthElements), HEALTH_SECONDS * 1000);
showControls();
start();

// For the browser tests and for a curious console: the list and the view, read-only use.
window.logExplorer = { list, view, state };
