// Undo/redo over immutable snapshots of the editor state. Consecutive edits with the same
// `coalesce` key (typing in one box) within a moment become one step.
export class UndoStack {
  constructor(limit = 200) {
    this.past = [];
    this.future = [];
    this.limit = limit;
    this.lastKey = null;
    this.lastAt = 0;
  }

  record(before, coalesce = null) {
    const now = performance.now();
    if (coalesce && coalesce === this.lastKey && now - this.lastAt < 1000) {
      this.lastAt = now;
      return;
    }
    this.past.push(structuredClone(before));
    if (this.past.length > this.limit) this.past.shift();
    this.future = [];
    this.lastKey = coalesce;
    this.lastAt = now;
  }

  undo(current) {
    if (!this.past.length) return null;
    this.future.push(structuredClone(current));
    this.lastKey = null;
    return this.past.pop();
  }

  redo(current) {
    if (!this.future.length) return null;
    this.past.push(structuredClone(current));
    this.lastKey = null;
    return this.future.pop();
  }
}
