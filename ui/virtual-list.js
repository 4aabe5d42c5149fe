// A list that keeps only the rows in view (and a few around them) in the DOM, so that 100,000
// loaded lines scroll as smoothly as 100. Rows may differ in height (wrapped lines, expanded JSON):
// each row's height is computed, not measured, from `linesOf(row)` and the line height, and
// kept in a prefix-sum array that a binary search turns into the rows at a scroll position.

const OVERSCAN_PX = 600;

export class VirtualList {
  constructor(viewport, { renderRow, linesOf, onScroll }) {
    this.viewport = viewport;
    this.renderRow = renderRow;
    this.linesOf = linesOf;
    this.onScroll = onScroll || (() => {});
    this.rows = [];
    this.offsets = new Float64Array(1); // offsets[i]: top of row i; offsets[rows.length]: total height
    this.valid = 0; // offsets[0..valid] are up to date
    this.rendered = new Map(); // row index -> element
    this.lineHeight = 18;
    this.spacer = document.createElement("div");
    this.spacer.className = "spacer";
    this.layer = document.createElement("div");
    this.layer.className = "rows";
    viewport.append(this.spacer, this.layer);
    this.frame = 0;
    viewport.addEventListener("scroll", () => {
      this.schedule();
      this.onScroll();
    }, { passive: true });
    new ResizeObserver(() => this.schedule()).observe(viewport);
  }

  get length() {
    return this.rows.length;
  }

  setLineHeight(px) {
    this.lineHeight = px;
    this.invalidate(0);
  }

  // Heights from row `from` on are to be computed again (a toggle, an expanded row, new rows).
  invalidate(from = 0) {
    this.valid = Math.min(this.valid, from);
    this.clearRendered(from);
    this.schedule();
  }

  clearRendered(from = 0) {
    for (const [index, element] of this.rendered) {
      if (index >= from) {
        element.remove();
        this.rendered.delete(index);
      }
    }
  }

  setRows(rows) {
    this.rows = rows;
    this.valid = 0;
    this.clearRendered(0);
    this.viewport.scrollTop = 0;
    this.update();
  }

  append(rows) {
    if (!rows.length) return;
    const from = this.rows.length;
    for (const row of rows) this.rows.push(row);
    this.invalidate(from);
  }

  // Older rows on top: the rows in view stay where they are on screen.
  prepend(rows) {
    if (!rows.length) return;
    const anchor = this.viewport.scrollTop;
    const before = this.totalHeight();
    this.rows = rows.concat(this.rows);
    this.valid = 0;
    this.clearRendered(0);
    this.viewport.scrollTop = anchor + (this.totalHeight() - before);
    this.update();
  }

  totalHeight() {
    this.ensureOffsets();
    return this.offsets[this.rows.length];
  }

  ensureOffsets() {
    const n = this.rows.length;
    if (this.offsets.length < n + 1) {
      const grown = new Float64Array(Math.max(n + 1, this.offsets.length * 2));
      grown.set(this.offsets.subarray(0, this.valid + 1));
      this.offsets = grown;
    }
    if (this.valid >= n) return;
    const offsets = this.offsets;
    const height = this.lineHeight;
    for (let i = this.valid; i < n; i++) offsets[i + 1] = offsets[i] + this.linesOf(this.rows[i]) * height;
    this.valid = n;
  }

  heightOf(index) {
    this.ensureOffsets();
    return this.offsets[index + 1] - this.offsets[index];
  }

  // The first row whose bottom is below `y`.
  indexAt(y) {
    this.ensureOffsets();
    let low = 0;
    let high = this.rows.length - 1;
    while (low < high) {
      const mid = (low + high) >> 1;
      if (this.offsets[mid + 1] <= y) low = mid + 1;
      else high = mid;
    }
    return Math.max(0, low);
  }

  atEnd(slack = 4) {
    const v = this.viewport;
    return v.scrollTop + v.clientHeight >= v.scrollHeight - slack - this.lineHeight;
  }

  scrollToEnd() {
    this.spacer.style.height = this.totalHeight() + "px";
    this.viewport.scrollTop = this.viewport.scrollHeight;
    this.update();
  }

  // The rows whose tops lie in [top, bottom) of the scroll area, as indexes.
  visibleRange() {
    const top = this.viewport.scrollTop;
    return [this.indexAt(top), this.indexAt(top + this.viewport.clientHeight)];
  }

  schedule() {
    if (this.frame) return;
    this.frame = requestAnimationFrame(() => {
      this.frame = 0;
      this.update();
    });
  }

  update() {
    const n = this.rows.length;
    this.spacer.style.height = this.totalHeight() + "px";
    if (n === 0) {
      this.clearRendered(0);
      return;
    }
    const top = this.viewport.scrollTop;
    const first = this.indexAt(Math.max(0, top - OVERSCAN_PX));
    const last = this.indexAt(top + this.viewport.clientHeight + OVERSCAN_PX);
    for (const [index, element] of this.rendered) {
      if (index < first || index > last) {
        element.remove();
        this.rendered.delete(index);
      }
    }
    const fragment = document.createDocumentFragment();
    for (let index = first; index <= last; index++) {
      if (this.rendered.has(index)) continue;
      const element = this.renderRow(this.rows[index], index);
      element.style.transform = `translateY(${this.offsets[index]}px)`;
      element.style.height = this.heightOf(index) + "px";
      this.rendered.set(index, element);
      fragment.appendChild(element);
    }
    this.layer.appendChild(fragment);
  }
}
