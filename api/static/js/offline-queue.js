// Work that must reach the server even if the page is offline now: kept in localStorage,
// so it also survives a reload, and drained in order when the socket is back.
export class OfflineQueue {
  constructor(name) {
    this.key = `memestream:queue:${name}`;
  }

  items() {
    try {
      return JSON.parse(localStorage.getItem(this.key) || "[]");
    } catch {
      return [];
    }
  }

  save(items) {
    localStorage.setItem(this.key, JSON.stringify(items));
  }

  // One entry per `id`: a newer vote on the same meme replaces the queued one.
  put(id, item) {
    const items = this.items().filter((i) => i.id !== id);
    items.push({ id, ...item });
    this.save(items);
  }

  remove(id) {
    this.save(this.items().filter((i) => i.id !== id));
  }

  get size() {
    return this.items().length;
  }
}
