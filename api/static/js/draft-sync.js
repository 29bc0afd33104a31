// A shared draft on a CRDT: the editor's state mirrored into a Y.Doc, synced over the feed
// socket with the server's pycrdt copy (api/feed/drafts.py). Captions are Y.Text, so two
// people typing into one caption at once both keep their letters and end with the same text;
// every other field (template, boxes, filter, rotation, crop) is a Y.Map entry. Who edits
// which box travels as Yjs awareness, relayed by the server and never stored.
import * as Y from "yjs";
import {
  Awareness, applyAwarenessUpdate, encodeAwarenessUpdate, removeAwarenessStates,
} from "y-protocols/awareness.js";

const REMOTE = "remote";
const LOCAL = "local";
const FIELDS = ["templateId", "filter", "amount", "rotation", "crop"];
const COLORS = ["#e6194b", "#3cb44b", "#4363d8", "#f58231", "#911eb4", "#008080", "#9a6324"];

const toB64 = (bytes) => {
  let s = "";
  for (let i = 0; i < bytes.length; i += 0x8000) s += String.fromCharCode(...bytes.subarray(i, i + 0x8000));
  return btoa(s);
};
const fromB64 = (s) => Uint8Array.from(atob(s), (c) => c.charCodeAt(0));
const same = (a, b) => JSON.stringify(a ?? null) === JSON.stringify(b ?? null);

// The smallest splice turning `from` into `to`: what one keystroke or paste changed.
function splice(ytext, to) {
  const from = ytext.toString();
  if (from === to) return;
  let start = 0;
  while (start < from.length && start < to.length && from[start] === to[start]) start++;
  let end = 0;
  while (end < from.length - start && end < to.length - start
    && from[from.length - 1 - end] === to[to.length - 1 - end]) end++;
  if (from.length - start - end) ytext.delete(start, from.length - start - end);
  if (to.length - start - end) ytext.insert(start, to.slice(start, to.length - end));
}

function boxMap(box) {
  const m = new Y.Map();
  for (const [k, v] of Object.entries(box)) if (k !== "text") m.set(k, v);
  m.set("text", new Y.Text(box.text || ""));
  return m;
}

export class SharedDraft {
  constructor(socket, id, { name, onRemote, onPeers }) {
    this.socket = socket;
    this.id = id;
    this.onRemote = onRemote;
    this.onPeers = onPeers;
    this.storeKey = `memestream:ydraft:${id}`;
    this.doc = new Y.Doc();
    this.root = this.doc.getMap("draft");
    const kept = localStorage.getItem(this.storeKey); // edits made offline survive a reload
    if (kept) Y.applyUpdate(this.doc, fromB64(kept), LOCAL);
    this.awareness = new Awareness(this.doc);
    this.awareness.setLocalState({ user: { name, color: COLORS[this.doc.clientID % COLORS.length] }, box: null });
    this.doc.on("update", (update, origin) => {
      this.keepSoon();
      if (origin === REMOTE) this.onRemote(this.toState());
      else this.send(update);
    });
    this.awareness.on("update", ({ added, updated, removed }, origin) => {
      if (origin !== REMOTE) this.sendAwareness([...added, ...updated, ...removed]);
      else if (added.length) this.sendAwareness([this.doc.clientID]); // newcomers learn of us
      this.onPeers(this.peers());
    });
    this.onDraft = (e) => {
      const f = e.detail;
      if (f.draft !== this.id || f.snapshot || !f.update) return;
      Y.applyUpdate(this.doc, fromB64(f.update), REMOTE);
      // Room messages are at most once: an update that waits on one we never got means we
      // missed it, and a sync with the server's merged state fills the gap.
      if (this.doc.store.pendingStructs || this.doc.store.pendingDs) this.resyncSoon();
    };
    this.onAwareness = (e) => {
      if (e.detail.draft === this.id) applyAwarenessUpdate(this.awareness, fromB64(e.detail.update), REMOTE);
    };
    socket.addEventListener("draft", this.onDraft);
    socket.addEventListener("awareness", this.onAwareness);
    window.addEventListener("pagehide", () =>
      removeAwarenessStates(this.awareness, [this.doc.clientID], LOCAL));
  }

  // Sync: the server answers what we lack and its state vector; we send what it lacks.
  // Run on every (re)connect, so edits made offline reach the others then.
  async join() {
    const frame = await this.socket.request({
      type: "draft.join", draft: this.id, sv: toB64(Y.encodeStateVector(this.doc)),
    });
    if (frame.type !== "draft") throw new Error(frame.error || "draft unavailable");
    Y.applyUpdate(this.doc, fromB64(frame.update), REMOTE);
    const missing = Y.encodeStateAsUpdate(this.doc, fromB64(frame.sv));
    if (missing.length > 2) this.send(missing); // 2 bytes: the empty update
    this.sendAwareness([this.doc.clientID]);
    return frame;
  }

  get empty() {
    return !this.root.get("templateId");
  }

  send(update) {
    if (!this.socket.online) return; // the next join sends it
    this.socket.request({ type: "draft.update", draft: this.id, update: toB64(update) })
      .then((ack) => { if (!ack.ok && ack.retry) this.resyncSoon(); }) // e.g. Redis failing over
      .catch(() => {}); // lost with the connection: the next join's sync sends it again
  }

  resyncSoon(ms = 1000) {
    if (this.resyncTimer) return;
    this.resyncTimer = setTimeout(() => {
      this.resyncTimer = null;
      if (this.socket.online) this.join().catch(() => this.resyncSoon(Math.min(ms * 2, 10000)));
    }, ms);
  }

  sendAwareness(clients) {
    if (!this.socket.online) return;
    this.socket.send({
      type: "draft.awareness", draft: this.id, update: toB64(encodeAwarenessUpdate(this.awareness, clients)),
    });
  }

  keepSoon() {
    clearTimeout(this.keepTimer);
    this.keepTimer = setTimeout(() =>
      localStorage.setItem(this.storeKey, toB64(Y.encodeStateAsUpdate(this.doc))), 200);
  }

  // The editor's state into the doc, as the fewest changes (a caption edit is a splice).
  setState(state) {
    this.doc.transact(() => {
      const retemplate = this.root.get("templateId") !== state.templateId;
      for (const k of FIELDS) if (!same(this.root.get(k), state[k])) this.root.set(k, state[k] ?? null);
      let boxes = this.root.get("boxes");
      if (retemplate || !boxes || boxes.length !== state.boxes.length) {
        boxes = new Y.Array();
        boxes.push(state.boxes.map(boxMap));
        this.root.set("boxes", boxes);
        return;
      }
      state.boxes.forEach((box, i) => {
        const m = boxes.get(i);
        for (const [k, v] of Object.entries(box)) {
          if (k === "text") splice(m.get("text"), v || "");
          else if (!same(m.get(k), v)) m.set(k, v);
        }
      });
    }, LOCAL);
  }

  toState() {
    const state = { boxes: [] };
    for (const k of FIELDS) state[k] = this.root.get(k) ?? null;
    state.filter ??= "none";
    state.amount ??= 0.6;
    state.rotation ??= 0;
    for (const m of this.root.get("boxes")?.toArray() || []) {
      const box = {};
      for (const [k, v] of m.entries()) box[k] = k === "text" ? v.toString() : v;
      state.boxes.push(box);
    }
    return state;
  }

  // Which box this editor is in (null: none), for the others' outlines.
  focus(box) {
    if (this.awareness.getLocalState()?.box !== box) this.awareness.setLocalStateField("box", box);
  }

  peers() {
    return [...this.awareness.getStates()]
      .filter(([client, s]) => client !== this.doc.clientID && s.user)
      .map(([client, s]) => ({ client, ...s.user, box: s.box ?? null }));
  }
}
