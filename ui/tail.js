// Follow: GET /tail read as a streamed fetch() of text/event-stream, parsed here, so that the
// bearer header can go along (EventSource cannot send one). A dropped connection, or the end
// the server sends after TAIL_MAX_SECONDS, reconnects with since= the newest line seen; the
// lines at exactly that time are sent again by the server and skipped here, so none shows twice.

import { ApiError, AuthRequired, request } from "./api.js";
import { timeKey } from "./state.js";

const SILENCE_SECONDS = 35; // the server sends a heartbeat every 10 s: longer quiet is a dead link
const MAX_BACKOFF_SECONDS = 15;

export function lineIdentity(row) {
  return `${row.pod || ""}\u0000${row.container || ""}\u0000${row.log}`;
}

// Which lines were seen at the newest time so far, to skip them when they come again.
export class SeenLines {
  constructor() {
    this.time = null; // the newest row's time, as the API wrote it
    this.key = "";
    this.counts = new Map(); // identity -> how many at that time
  }

  observe(row) {
    const key = timeKey(row.time);
    if (key > this.key) {
      this.time = row.time;
      this.key = key;
      this.counts = new Map();
    }
    if (key === this.key) {
      const identity = lineIdentity(row);
      this.counts.set(identity, (this.counts.get(identity) || 0) + 1);
    }
  }

  // No line seen yet: start at `time` (RFC 3339).
  startAt(time) {
    this.time = time;
    this.key = timeKey(time);
    this.counts = new Map();
  }

  // A copy of the counts, spent as the server sends the newest time's lines again.
  replay() {
    return { key: this.key, counts: new Map(this.counts) };
  }
}

export class Follower {
  constructor({ params, seen, onLines, onState }) {
    this.params = params; // namespace, pod_name, container_name?, filters
    this.seen = seen;
    this.onLines = onLines;
    this.onState = onState;
    this.controller = null;
    this.running = false;
    this.failures = 0;
  }

  start() {
    if (this.running) return;
    this.running = true;
    this.loop();
  }

  stop() {
    this.running = false;
    if (this.controller) this.controller.abort();
    this.onState("paused");
  }

  async loop() {
    while (this.running) {
      const controller = new AbortController();
      this.controller = controller;
      let watchdog = 0;
      const feed = () => {
        clearTimeout(watchdog);
        watchdog = setTimeout(() => controller.abort(), SILENCE_SECONDS * 1000);
      };
      try {
        feed();
        const since = this.seen.time;
        const response = await request("/tail", { ...this.params, since: since || undefined },
          { accept: "text/event-stream", signal: controller.signal });
        this.failures = 0;
        this.onState("following");
        await this.read(response, feed);
      } catch (error) {
        if (!this.running) break;
        if (error instanceof AuthRequired || (error instanceof ApiError && error.status < 500 && error.status !== 429)) {
          this.running = false;
          this.onState("stopped", error);
          break;
        }
        this.failures += 1;
      } finally {
        clearTimeout(watchdog);
      }
      if (!this.running) break;
      const delay = Math.min(MAX_BACKOFF_SECONDS, this.failures ? 2 ** (this.failures - 1) : 0);
      this.onState("reconnecting");
      await new Promise((resolve) => setTimeout(resolve, delay * 1000));
    }
  }

  async read(response, feed) {
    const replay = this.seen.replay();
    const reader = response.body.getReader();
    const decoder = new TextDecoder();
    let pending = "";
    for (;;) {
      const { value, done } = await reader.read();
      if (done) return;
      feed();
      pending += decoder.decode(value, { stream: true });
      const events = pending.split("\n\n");
      pending = events.pop();
      const rows = [];
      for (const block of events) {
        let kind = "message";
        let data = "";
        for (const line of block.split("\n")) {
          if (line.startsWith("event:")) kind = line.slice(6).trim();
          else if (line.startsWith("data:")) data += line.slice(5).trimStart();
        }
        if (kind === "line") {
          const row = JSON.parse(data);
          if (timeKey(row.time) === replay.key) {
            const identity = lineIdentity(row);
            const left = replay.counts.get(identity) || 0;
            if (left > 0) {
              replay.counts.set(identity, left - 1);
              continue;
            }
          }
          this.seen.observe(row);
          rows.push(row);
        } else if (kind === "error") {
          this.onState("store-error", JSON.parse(data));
        } else if (kind === "end") {
          await reader.cancel();
          if (rows.length) this.onLines(rows);
          return; // TAIL_MAX_SECONDS: reconnect from the newest line
        }
      }
      if (rows.length) this.onLines(rows);
    }
  }
}
