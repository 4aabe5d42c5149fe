// The service's public HTTP API, as the page calls it. The query token lives in this tab's
// sessionStorage only and travels as a bearer header, never in a URL.

const TOKEN_KEY = "kube-insight-logserver.query-token";

export class AuthRequired extends Error {}

export class ApiError extends Error {
  constructor(status, message, detail) {
    super(detail ? `${message}: ${detail}` : message);
    this.status = status;
    this.title = message;
    this.detail = detail;
    // "Invalid parameter 'regex'" -> "regex": the UI shows the message next to that field.
    const named = /parameter '([^']+)'/.exec(message || "");
    this.param = named ? named[1] : null;
  }
}

export function token() {
  return sessionStorage.getItem(TOKEN_KEY) || "";
}

export function setToken(value) {
  if (value) sessionStorage.setItem(TOKEN_KEY, value);
  else sessionStorage.removeItem(TOKEN_KEY);
}

// Leaves out the parameters that are not set (the API refuses an empty filter).
export function queryString(params) {
  const search = new URLSearchParams();
  for (const [name, value] of Object.entries(params)) {
    if (value !== undefined && value !== null && value !== "") search.set(name, String(value));
  }
  const text = search.toString();
  return text ? "?" + text : "";
}

export async function request(path, params = {}, { accept = "application/json", signal } = {}) {
  const headers = { Accept: accept };
  const bearer = token();
  if (bearer) headers.Authorization = "Bearer " + bearer;
  const response = await fetch(path + queryString(params), { headers, signal, cache: "no-store" });
  if (response.ok) return response;
  let body = { message: `${response.status} ${response.statusText}`, detail: "" };
  try {
    body = await response.json();
  } catch {
    // not the API's error document (a proxy's page, say): keep the status line
  }
  if (response.status === 401) throw new AuthRequired(body.detail || body.message);
  throw new ApiError(response.status, body.message, body.detail);
}

export async function getJSON(path, params, options) {
  return (await request(path, params, options)).json();
}

// Splits a streamed body into lines as they arrive; `onLine` gets each line without its "\n".
export async function readLines(response, onLine) {
  const reader = response.body.getReader();
  const decoder = new TextDecoder();
  let pending = "";
  for (;;) {
    const { value, done } = await reader.read();
    if (done) break;
    pending += decoder.decode(value, { stream: true });
    let newline;
    while ((newline = pending.indexOf("\n")) >= 0) {
      const line = pending.slice(0, newline);
      pending = pending.slice(newline + 1);
      if (onLine(line) === false) {
        await reader.cancel();
        return;
      }
    }
  }
  pending += decoder.decode();
  if (pending) onLine(pending);
}
