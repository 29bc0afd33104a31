// The feed WebSocket: reconnects with exponential backoff and jitter, resumes from the last
// event id it saw (events, heartbeats and pongs all carry one), resubscribes its channels,
// and turns request frames into promises resolved by the matching `ref`.
export class FeedSocket extends EventTarget {
  constructor({ channels = ["new"], userId, url } = {}) {
    super();
    this.url = url || `${location.protocol === "https:" ? "wss" : "ws"}://${location.host}/api/feed/ws`;
    this.channels = new Set(channels);
    this.userId = userId;
    this.lastEventId = sessionStorage.getItem("memestream:last-event-id") || null;
    this.pending = new Map();
    this.n = 0;
    this.attempt = 0;
    this.ws = null;
    this.online = false;
    this.closed = false;
    window.addEventListener("online", () => this.connectSoon(0));
    window.addEventListener("offline", () => this.ws?.close());
  }

  start() {
    this.connect();
    return this;
  }

  connect() {
    if (this.closed || (this.ws && this.ws.readyState <= WebSocket.OPEN)) return;
    if (navigator.onLine === false) return; // the "online" event reconnects
    const ws = new WebSocket(this.url);
    this.ws = ws;
    ws.onopen = () => {
      this.attempt = 0;
      this.online = true;
      this.send({ type: "hello", user_id: this.userId });
      if (this.channels.size) {
        this.send({
          type: "subscribe",
          channels: [...this.channels],
          last_event_id: this.lastEventId ?? undefined,
        });
      }
      this.emit("open", {});
      clearInterval(this.pinger);
      this.pinger = setInterval(() => this.request({ type: "ping", ts: Date.now() }, 10000)
        .catch(() => ws.close()), 15000);
    };
    ws.onmessage = (e) => this.receive(JSON.parse(e.data));
    ws.onclose = (e) => {
      clearInterval(this.pinger);
      if (this.ws === ws) this.ws = null;
      const wasOnline = this.online;
      this.online = false;
      for (const [, p] of this.pending) p.reject(new Error("disconnected"));
      this.pending.clear();
      if (wasOnline) this.emit("close", { code: e.code, reason: e.reason });
      this.connectSoon();
    };
  }

  connectSoon(delay) {
    clearTimeout(this.timer);
    const backoff = Math.min(10000, 500 * 2 ** this.attempt++);
    const wait = delay ?? backoff / 2 + Math.random() * (backoff / 2);
    this.timer = setTimeout(() => this.connect(), wait);
  }

  remember(id) {
    if (!id) return;
    this.lastEventId = id;
    sessionStorage.setItem("memestream:last-event-id", id);
  }

  receive(frame) {
    if (frame.cursor && ["heartbeat", "pong", "subscribed"].includes(frame.type)) {
      // A pong's cursor covers events queued before it; subscribed's only when nothing replays.
      if (frame.type !== "subscribed" || frame.replayed === 0) this.remember(frame.cursor);
    }
    if (frame.type === "event") this.remember(frame.id);
    if (frame.type === "reload") this.remember(frame.cursor);
    const waiter = frame.ref && this.pending.get(frame.ref);
    if (waiter) {
      this.pending.delete(frame.ref);
      waiter.resolve(frame);
    }
    this.emit(frame.type, frame);
  }

  emit(type, detail) {
    this.dispatchEvent(new CustomEvent(type, { detail }));
  }

  send(frame) {
    if (!this.ws || this.ws.readyState !== WebSocket.OPEN) return false;
    this.ws.send(JSON.stringify(frame));
    return true;
  }

  request(frame, timeoutMs = 8000) {
    const ref = `r${++this.n}`;
    return new Promise((resolve, reject) => {
      if (!this.send({ ...frame, ref })) return reject(new Error("offline"));
      this.pending.set(ref, { resolve, reject });
      setTimeout(() => {
        if (this.pending.delete(ref)) reject(new Error("timeout"));
      }, timeoutMs);
    });
  }

  subscribe(channels) {
    const fresh = channels.filter((c) => !this.channels.has(c));
    fresh.forEach((c) => this.channels.add(c));
    if (fresh.length) this.send({ type: "subscribe", channels: fresh });
  }

  unsubscribe(channels) {
    const known = channels.filter((c) => this.channels.delete(c));
    if (known.length) this.send({ type: "unsubscribe", channels: known });
  }

  reconnect() {
    this.attempt = 0;
    if (this.ws) this.ws.close();
    else this.connectSoon(0);
  }
}
