// Download what the filters select: GET /query as NDJSON, page after page through the cursor its
// last line names, saved as NDJSON or as text (kubectl's layout).

import { readLines, request } from "./api.js";

export function textLine(row, timestamps) {
  const source = row.pod ? `[${row.pod}/${row.container}] ` : row.container ? `[${row.container}] ` : "";
  return `${source}${timestamps ? row.time + " " : ""}${row.log}\n`;
}

export async function download(params, { format, timestamps, filename, onProgress }) {
  const parts = [];
  let cursor;
  let rows = 0;
  do {
    const response = await request("/query", { ...params, direction: "forward", cursor },
      { accept: "application/x-ndjson" });
    cursor = undefined;
    let chunk = [];
    await readLines(response, (line) => {
      if (!line) return;
      const object = JSON.parse(line);
      if (object.error) throw new Error(`${object.error.message}: ${object.error.detail}`);
      if ("log" in object) {
        chunk.push(format === "ndjson" ? line + "\n" : textLine(object, timestamps));
        rows += 1;
        if (chunk.length >= 5000) {
          parts.push(chunk.join(""));
          chunk = [];
          onProgress(rows);
        }
      } else if (object.next_cursor) {
        cursor = object.next_cursor;
      }
    });
    if (chunk.length) parts.push(chunk.join(""));
    onProgress(rows);
  } while (cursor);
  const type = format === "ndjson" ? "application/x-ndjson" : "text/plain";
  const url = URL.createObjectURL(new Blob(parts, { type }));
  const link = document.createElement("a");
  link.href = url;
  link.download = filename;
  document.body.appendChild(link);
  link.click();
  link.remove();
  setTimeout(() => URL.revokeObjectURL(url), 60000);
  return rows;
}
