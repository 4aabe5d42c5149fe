// A log line that is a JSON object -> its fields, for the expanded view of the line.

export function jsonFields(text) {
  const trimmed = text.trim();
  if (trimmed.length < 2 || trimmed[0] !== "{" || trimmed[trimmed.length - 1] !== "}") return null;
  let value;
  try {
    value = JSON.parse(trimmed);
  } catch {
    return null;
  }
  if (value === null || typeof value !== "object" || Array.isArray(value)) return null;
  const fields = [];
  for (const [key, field] of Object.entries(value)) {
    fields.push([key, typeof field === "string" ? field : JSON.stringify(field)]);
  }
  return fields.length ? fields : null;
}
