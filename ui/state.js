// The whole view in the URL's query string, so that a link opens the same view.

export const RANGES = { "5m": 300, "1h": 3600, "24h": 86400, "7d": 7 * 86400 };

const DEFAULTS = {
  namespace: "", pod: "", container: "", range: "1h", start: "", end: "",
  contains: "", regex: "", stream: "", order: "newest", timestamps: "0", wrap: "0", follow: "0",
};

export function readState(search = window.location.search) {
  const params = new URLSearchParams(search);
  const state = { ...DEFAULTS };
  for (const name of Object.keys(DEFAULTS)) {
    if (params.has(name)) state[name] = params.get(name);
  }
  if (state.range !== "custom" && !(state.range in RANGES)) state.range = DEFAULTS.range;
  if (state.order !== "oldest") state.order = "newest";
  return state;
}

export function writeState(state) {
  const params = new URLSearchParams();
  for (const [name, value] of Object.entries(state)) {
    if (name in DEFAULTS && value !== DEFAULTS[name] && value !== "") params.set(name, value);
  }
  const text = params.toString();
  const url = window.location.pathname + (text ? "?" + text : "");
  if (url !== window.location.pathname + window.location.search) window.history.replaceState(null, "", url);
}

// The API's start_time / end_time for the state's range; a relative range ends at the server's now.
export function timeRange(state, now = Date.now()) {
  if (state.range === "custom") {
    return { start_time: state.start, end_time: state.end || undefined };
  }
  return { start_time: new Date(now - RANGES[state.range] * 1000).toISOString() };
}

// RFC 3339 from the API (UTC, nanoseconds, trailing zeros trimmed) -> a key that sorts as time does.
export function timeKey(time) {
  const dot = time.indexOf(".");
  if (dot < 0) return time.slice(0, 19) + ".000000000";
  return time.slice(0, 19) + "." + time.slice(dot + 1, time.length - 1).padEnd(9, "0");
}

// <input type="datetime-local"> works in local time; the URL and the API in UTC.
export function toLocalInput(iso) {
  if (!iso) return "";
  const date = new Date(iso);
  if (Number.isNaN(date.getTime())) return "";
  const local = new Date(date.getTime() - date.getTimezoneOffset() * 60000);
  return local.toISOString().slice(0, 19);
}

export function fromLocalInput(value) {
  if (!value) return "";
  const date = new Date(value);
  return Number.isNaN(date.getTime()) ? "" : date.toISOString();
}
