// The live feed page: new memes as they render, votes (optimistic, reconciled with the
// server's acks and vote-count events, queued while offline), the trending board.
import { api, deviceId, mountAccount } from "./api.js";
import { FeedSocket } from "./feed-socket.js";
import { notify } from "./notify.js";
import { OfflineQueue } from "./offline-queue.js";

const list = document.getElementById("feed-list");
const board = document.getElementById("trending");
const connection = document.getElementById("connection");
const queuedBadge = document.getElementById("queued");
const cardTemplate = document.getElementById("card");
const votesQueue = new OfflineQueue("votes");
const cards = new Map(); // meme id -> {el, votes, mine, pending}
const MAX_CARDS = 100;

const socket = new FeedSocket({ channels: ["new", "votes", "trending"], userId: deviceId() });
window.memestream = { socket, cards }; // for debugging and the browser tests

// The socket authenticates with the session cookie when it connects: reconnect on sign-in.
mountAccount(document.getElementById("account"), (_, initial) => initial || socket.reconnect());

function setConnection(text, state) {
  connection.textContent = text;
  connection.dataset.state = state;
}

function showQueued() {
  const n = votesQueue.size;
  queuedBadge.hidden = n === 0;
  queuedBadge.textContent = `${n} vote${n === 1 ? "" : "s"} waiting to sync`;
}

// Progressive image: the thumbnail first (small, quick), then the medium size over it.
function loadImage(img, memeId) {
  img.src = `/api/meme/${memeId}/image?size=thumb`;
  img.classList.add("blurred");
  const better = new Image();
  better.onload = () => {
    img.src = better.src;
    img.classList.remove("blurred");
  };
  better.src = `/api/meme/${memeId}/image?size=medium`;
}

function addCard(data, { live = true } = {}) {
  if (cards.has(data.meme_id)) return cards.get(data.meme_id);
  document.getElementById("empty").hidden = true;
  const el = cardTemplate.content.firstElementChild.cloneNode(true);
  el.dataset.memeId = data.meme_id;
  el.querySelector(".template").textContent = data.template_id || "";
  const card = { el, votes: data.votes ?? 0, mine: 0, pending: null };
  cards.set(data.meme_id, card);
  if (data.kind === "failed") {
    el.classList.add("failed");
    el.querySelector(".frame").textContent = "render failed";
  } else {
    loadImage(el.querySelector("img"), data.meme_id);
  }
  el.querySelector(".up").addEventListener("click", () => vote(data.meme_id, 1));
  el.querySelector(".down").addEventListener("click", () => vote(data.meme_id, -1));
  list.prepend(el);
  if (live) el.classList.add("fresh");
  while (list.children.length > MAX_CARDS) {
    const last = list.lastElementChild;
    cards.delete(last.dataset.memeId);
    socket.unsubscribe([`meme:${last.dataset.memeId}`]);
    last.remove();
  }
  socket.subscribe([`meme:${data.meme_id}`]); // presence: how many are looking at it
  renderVotes(card);
  return card;
}

function renderVotes(card) {
  card.el.querySelector(".count").textContent = String(card.votes);
  card.el.querySelector(".up").classList.toggle("active", card.mine === 1);
  card.el.querySelector(".down").classList.toggle("active", card.mine === -1);
  const sync = card.el.querySelector(".sync");
  sync.textContent = card.pending ? (card.pending.queued ? "queued" : "…") : "";
  card.el.dataset.sync = card.pending ? (card.pending.queued ? "queued" : "sending") : "synced";
}

// Optimistic: the count moves now; the ack (or a later vote-count event) sets the truth.
function vote(memeId, direction) {
  const card = cards.get(memeId);
  if (!card) return;
  const value = card.mine === direction ? 0 : direction;
  card.votes += value - card.mine;
  const before = { mine: card.mine };
  card.mine = value;
  const voteId = crypto.randomUUID();
  card.pending = { value, voteId, before, queued: false };
  renderVotes(card);
  send({ id: memeId, meme_id: memeId, value, vote_id: voteId });
}

async function send(item) {
  const card = cards.get(item.meme_id);
  if (!socket.online) {
    votesQueue.put(item.id, item);
    if (card?.pending) card.pending.queued = true;
    if (card) renderVotes(card);
    showQueued();
    notify("Offline: your vote is queued and syncs when you are back", { kind: "warn" });
    return;
  }
  votesQueue.put(item.id, item); // until acknowledged, so a reload cannot lose it
  showQueued();
  let ack;
  try {
    ack = await socket.request({ type: "vote", meme_id: item.meme_id, value: item.value,
                                 vote_id: item.vote_id });
  } catch {
    if (card?.pending) card.pending.queued = true;
    if (card) renderVotes(card);
    return; // stays queued; flushed on reconnect
  }
  if (!ack.ok && ack.retry) { // stays queued
    if (ack.retry_after) { // rate-limited: the server says when
      notify(`Too many votes: retrying in ${ack.retry_after} s`, { kind: "warn" });
      setTimeout(() => send(item), ack.retry_after * 1000);
    }
    return;
  }
  votesQueue.remove(item.id);
  showQueued();
  if (!card) return;
  if (card.pending?.voteId === item.vote_id) card.pending = null;
  if (ack.ok) {
    if (typeof ack.score === "number") card.votes = ack.score;
    card.mine = ack.value;
  } else {
    card.votes -= card.mine;
    card.mine = 0;
    notify(ack.error === "login-required" ? "Sign in to vote" : `Vote refused: ${ack.error}`,
           { kind: "error" });
  }
  renderVotes(card);
}

async function flushQueue() {
  const items = votesQueue.items();
  for (const item of items) await send(item);
  if (items.length) notify(`${items.length} queued vote${items.length > 1 ? "s" : ""} synced`);
}

function onEvent(data) {
  switch (data.kind) {
    case "rendered":
    case "failed": {
      const card = addCard(data);
      if (data.kind === "rendered") notify(`New meme: ${data.template_id}`, { ms: 2000 });
      return card;
    }
    case "votes": {
      const card = cards.get(data.meme_id);
      if (card && !card.pending && typeof data.votes === "number") {
        card.votes = data.votes;
        renderVotes(card);
      }
      return card;
    }
    case "deleted":
      cards.get(data.meme_id)?.el.remove();
      cards.delete(data.meme_id);
      return null;
    case "trending":
      loadTrending();
      return null;
    default:
      return null;
  }
}

let trendingTimer = null;
function loadTrending() {
  clearTimeout(trendingTimer);
  trendingTimer = setTimeout(async () => {
    try {
      const page = await api("/api/meme/trending?window=24h&limit=10");
      board.replaceChildren(...page.items.map((item) => {
        const li = document.createElement("li");
        li.dataset.memeId = item.meme_id;
        li.innerHTML = `<img alt="" loading="lazy" width="48" height="48">
          <span class="score"></span><code class="id"></code>`;
        li.querySelector(".id").textContent = item.meme_id.slice(-6);
        const img = li.querySelector("img");
        img.onerror = () => img.classList.add("missing");
        img.src = `/api/meme/${item.meme_id}/image?size=thumb`;
        li.querySelector(".score").textContent = item.score.toFixed(1);
        return li;
      }));
    } catch {
      /* the board is a nicety: keep the last one */
    }
  }, 300);
}

socket.addEventListener("open", () => {
  setConnection("live", "live");
  flushQueue();
});
socket.addEventListener("close", () => {
  setConnection("reconnecting…", "down");
  notify("Connection lost, reconnecting", { kind: "warn" });
});
socket.addEventListener("event", (e) => onEvent(e.detail.data));
socket.addEventListener("reload", () => {
  notify("You were away too long: refreshing the board", { kind: "warn" });
  loadTrending();
});
socket.addEventListener("presence", (e) => {
  const card = cards.get(e.detail.room.slice("meme:".length));
  if (card) card.el.querySelector(".viewers").textContent = `👀 ${e.detail.count}`;
});
window.addEventListener("offline", () => setConnection("offline", "down"));

showQueued();
loadTrending();
socket.start();
