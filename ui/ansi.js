// ANSI SGR colour codes -> styled spans, with the filter's matches highlighted on top.
// Other escape sequences (cursor moves, erases, OSC titles) are dropped, never shown.

// CSI (ESC [ params final), OSC (ESC ] ... BEL or ESC \), or a lone two-character escape.
const ESCAPES = /\x1b(?:\[([0-9;:?]*)([@-~])|\][^\x07\x1b]*(?:\x07|\x1b\\)?|[@-Z\\-_]?)/g;
const PALETTE_6 = [0, 95, 135, 175, 215, 255];

function paletteColor(n) {
  if (n < 16) return null; // the 16 basic colours are classes (style.css), so themes can change them
  if (n < 232) {
    const i = n - 16;
    return `rgb(${PALETTE_6[Math.floor(i / 36)]},${PALETTE_6[Math.floor(i / 6) % 6]},${PALETTE_6[i % 6]})`;
  }
  const grey = 8 + (n - 232) * 10;
  return `rgb(${grey},${grey},${grey})`;
}

function applySgr(style, codes) {
  const next = { ...style };
  for (let i = 0; i < codes.length; i++) {
    const code = codes[i];
    if (code === 0) Object.keys(next).forEach((key) => delete next[key]);
    else if (code === 1) next.bold = true;
    else if (code === 2) next.dim = true;
    else if (code === 3) next.italic = true;
    else if (code === 4) next.underline = true;
    else if (code === 7) next.inverse = true;
    else if (code === 22) { delete next.bold; delete next.dim; }
    else if (code === 23) delete next.italic;
    else if (code === 24) delete next.underline;
    else if (code === 27) delete next.inverse;
    else if (code >= 30 && code <= 37) { next.fg = code - 30; delete next.fgRgb; }
    else if (code >= 90 && code <= 97) { next.fg = code - 90 + 8; delete next.fgRgb; }
    else if (code === 39) { delete next.fg; delete next.fgRgb; }
    else if (code >= 40 && code <= 47) { next.bg = code - 40; delete next.bgRgb; }
    else if (code >= 100 && code <= 107) { next.bg = code - 100 + 8; delete next.bgRgb; }
    else if (code === 49) { delete next.bg; delete next.bgRgb; }
    else if (code === 38 || code === 48) {
      const layer = code === 38 ? "fg" : "bg";
      let color = null;
      if (codes[i + 1] === 5) {
        const n = codes[i + 2];
        color = n < 16 ? n : paletteColor(n);
        i += 2;
      } else if (codes[i + 1] === 2) {
        color = `rgb(${codes[i + 2] | 0},${codes[i + 3] | 0},${codes[i + 4] | 0})`;
        i += 4;
      }
      delete next[layer];
      delete next[layer + "Rgb"];
      if (typeof color === "number") next[layer] = color;
      else if (color) next[layer + "Rgb"] = color;
    }
  }
  return next;
}

// text -> { plain, segments: [{ start, end, style }] } over `plain`, the text without escapes.
export function parseAnsi(text) {
  if (text.indexOf("\x1b") < 0) return { plain: text, segments: [{ start: 0, end: text.length, style: null }] };
  const segments = [];
  let plain = "";
  let style = {};
  let last = 0;
  ESCAPES.lastIndex = 0;
  for (let match; (match = ESCAPES.exec(text)) !== null;) {
    if (match.index > last) {
      segments.push({ start: plain.length, end: plain.length + match.index - last, style });
      plain += text.slice(last, match.index);
    }
    last = ESCAPES.lastIndex;
    if (match[2] === "m") {
      const codes = (match[1] || "0").split(/[;:]/).map((part) => (part === "" ? 0 : Number(part)));
      style = applySgr(style, codes);
    }
    if (match[0].length === 0) ESCAPES.lastIndex++;
  }
  if (last < text.length) {
    segments.push({ start: plain.length, end: plain.length + text.length - last, style });
    plain += text.slice(last);
  }
  return { plain, segments };
}

// The text without escape sequences (what wraps, what a filter highlights).
export function stripAnsi(text) {
  return text.indexOf("\x1b") < 0 ? text : parseAnsi(text).plain;
}

// [start, end) ranges of `plain` that the filter matched, sorted and merged.
export function matchRanges(plain, { needle, pattern }) {
  const ranges = [];
  if (needle) {
    for (let at = plain.indexOf(needle); at >= 0; at = plain.indexOf(needle, at + needle.length)) {
      ranges.push([at, at + needle.length]);
    }
  }
  if (pattern) {
    pattern.lastIndex = 0;
    for (let match; (match = pattern.exec(plain)) !== null;) {
      if (match[0].length === 0) {
        pattern.lastIndex++;
        continue;
      }
      ranges.push([match.index, match.index + match[0].length]);
    }
  }
  if (ranges.length < 2) return ranges;
  ranges.sort((a, b) => a[0] - b[0]);
  const merged = [ranges[0]];
  for (const range of ranges.slice(1)) {
    const top = merged[merged.length - 1];
    if (range[0] <= top[1]) top[1] = Math.max(top[1], range[1]);
    else merged.push(range);
  }
  return merged;
}

function styled(text, style) {
  if (!style || Object.keys(style).length === 0) return document.createTextNode(text);
  const span = document.createElement("span");
  span.textContent = text;
  let fg = style.fg;
  let bg = style.bg;
  if (style.inverse) [fg, bg] = [bg === undefined ? "inv-fg" : bg, fg === undefined ? "inv-bg" : fg];
  if (typeof fg === "number") span.classList.add("fg" + fg);
  else if (fg) span.classList.add(fg);
  if (typeof bg === "number") span.classList.add("bg" + bg);
  else if (bg) span.classList.add(bg);
  // CSSOM assignments, which the Content-Security-Policy allows (style attributes it would not).
  if (style.fgRgb) span.style.color = style.fgRgb;
  if (style.bgRgb) span.style.backgroundColor = style.bgRgb;
  if (style.bold) span.classList.add("bold");
  if (style.dim) span.classList.add("dim");
  if (style.italic) span.classList.add("italic");
  if (style.underline) span.classList.add("underline");
  return span;
}

// Fills `element` with the line: colours from its escapes, <mark> around the filter's matches.
export function renderLine(element, text, filter) {
  const { plain, segments } = parseAnsi(text);
  const ranges = filter ? matchRanges(plain, filter) : [];
  let r = 0;
  for (const segment of segments) {
    let at = segment.start;
    while (at < segment.end) {
      while (r < ranges.length && ranges[r][1] <= at) r++;
      const range = ranges[r];
      if (range && range[0] <= at) {
        const end = Math.min(segment.end, range[1]);
        const mark = document.createElement("mark");
        mark.appendChild(styled(plain.slice(at, end), segment.style));
        element.appendChild(mark);
        at = end;
      } else {
        const end = Math.min(segment.end, range ? range[0] : segment.end);
        element.appendChild(styled(plain.slice(at, end), segment.style));
        at = end;
      }
    }
  }
}
