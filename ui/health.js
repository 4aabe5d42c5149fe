// The pipeline at a glance, from the open endpoints: GET /write (Redis and Cassandra) and
// GET /metrics (queue depth, workers, the oldest waiting batch).

const METRICS = {
  logserver_queue_depth: "depth",
  logserver_queue_workers: "workers",
  logserver_queue_failed_jobs: "failed",
  logserver_queue_oldest_batch_age_seconds: "lag",
};

export function parseMetrics(text) {
  const values = {};
  for (const line of text.split("\n")) {
    const [name, value] = line.split(" ");
    if (name in METRICS) values[METRICS[name]] = Number(value);
  }
  return values;
}

// GET /write's detail names each failing dependency: "redis: ...; cassandra: ...".
export function dependencyStatus(health) {
  const failing = {};
  for (const part of (health.detail || "").split("; ")) {
    const [name, ...rest] = part.split(": ");
    if (name) failing[name] = rest.join(": ");
  }
  return {
    redis: failing.redis === undefined ? { ok: true } : { ok: false, detail: failing.redis },
    cassandra: failing.cassandra === undefined ? { ok: true } : { ok: false, detail: failing.cassandra },
  };
}

function badge(element, ok, text, title) {
  element.textContent = text;
  element.classList.toggle("ok", ok === true);
  element.classList.toggle("bad", ok === false);
  element.title = title || "";
}

export async function refreshHealth(elements) {
  try {
    const response = await fetch("/write", { cache: "no-store", headers: { Accept: "application/json" } });
    const status = dependencyStatus(await response.json());
    badge(elements.redis, status.redis.ok, "Redis", status.redis.detail || "answering");
    badge(elements.cassandra, status.cassandra.ok, "Cassandra", status.cassandra.detail || "answering");
  } catch (error) {
    badge(elements.redis, false, "Redis", `health probe failed: ${error.message}`);
    badge(elements.cassandra, false, "Cassandra", `health probe failed: ${error.message}`);
  }
  try {
    const response = await fetch("/metrics", { cache: "no-store" });
    const values = parseMetrics(await response.text());
    const depth = values.depth ?? NaN;
    badge(elements.queue, Number.isNaN(depth) ? null : depth < 100, `queue ${Number.isNaN(depth) ? "?" : depth}`,
      "batches waiting for a worker (logserver_queue_depth)");
    const workers = values.workers ?? NaN;
    badge(elements.workers, Number.isNaN(workers) ? null : workers > 0, `workers ${Number.isNaN(workers) ? "?" : workers}`,
      "workers registered on the queue (logserver_queue_workers)");
    const lag = values.lag;
    badge(elements.lag, lag === undefined ? null : lag < 30, `lag ${lag === undefined ? "?" : formatSeconds(lag)}`,
      "how long the oldest waiting batch has waited (logserver_queue_oldest_batch_age_seconds)");
  } catch (error) {
    badge(elements.queue, false, "queue ?", `metrics failed: ${error.message}`);
  }
}

function formatSeconds(seconds) {
  if (seconds < 1) return "0 s";
  if (seconds < 120) return `${Math.round(seconds)} s`;
  return `${Math.round(seconds / 60)} min`;
}
