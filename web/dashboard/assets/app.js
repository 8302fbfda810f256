// cafe-stream live dashboard: plain browser JS, no build step, no network beyond its own server.
// Events arrive over the WebSocket sink at /ws and are queued; one requestAnimationFrame loop applies them,
// updates the DOM where something changed and redraws the track canvases, so a burst of events costs one
// frame, not one layout per event. History is bounded per track and old tracks are dropped, so memory and
// drawing stay flat with many streams and tracks.
'use strict';
(() => {
  // Same order and colours as src/types.ts EXPRESSIONS and src/views/palette.ts.
  const EXPRESSIONS = ['surprise', 'fear', 'disgust', 'happiness', 'sadness', 'anger', 'neutral'];
  const COLORS = {
    surprise: '#f2a900', fear: '#8e44ad', disgust: '#2e8b57', happiness: '#e8434f',
    sadness: '#2f6fdf', anger: '#a0522d', neutral: '#7f8c8d',
  };
  const WINDOW_S = 30; // seconds of history drawn per track
  const MAX_POINTS = 1200; // per track, whatever the frame rate
  const MAX_TRACKS_PER_STREAM = 16; // oldest (ended first) are dropped beyond this
  const ENDED_TRACK_TTL_S = 20; // an ended track stays this long (stream time) after its end
  const MAX_SEGMENTS_SHOWN = 4;
  const DRAW_INTERVAL_MS = 33; // canvases redraw at most ~30 times a second
  const DRAW_BUDGET_MS = 8; // main-thread time per frame for canvas redraws; the rest wait for the next frame
  const HEALTH_POLL_MS = 2000;
  const SEEN_IDS_MAX = 50000; // de-duplication window across reconnects
  const BACKOFF = { initialMs: 500, maxMs: 10000, factor: 2 };

  const params = new URLSearchParams(location.search);
  const token = params.get('token');
  const streamsEl = document.getElementById('streams');
  const emptyEl = document.getElementById('empty');
  const connEl = document.getElementById('conn');
  const countsEl = document.getElementById('counts');

  /** streamId → stream state */
  const streams = new Map();
  const queue = [];
  const seen = new Set();
  let lastEventId;
  let eventsReceived = 0;
  let attempt = 0;
  let ws;

  document.getElementById('legend').innerHTML = EXPRESSIONS.map(
    (e) => `<span class="key"><span class="swatch" style="background:${COLORS[e]}"></span>${e}</span>`,
  ).join('');

  // ---------- connection ----------

  function wsUrl() {
    const u = new URL('/ws', location.href);
    u.protocol = location.protocol === 'https:' ? 'wss:' : 'ws:';
    if (token) u.searchParams.set('token', token);
    return u.toString();
  }

  function connect() {
    setConn('connecting', attempt === 0 ? 'connecting…' : `reconnecting (attempt ${attempt})…`);
    try {
      ws = new WebSocket(wsUrl());
    } catch {
      scheduleReconnect();
      return;
    }
    ws.onopen = () => {
      attempt = 0;
      setConn('open', 'connected');
      // Resume after the last event we hold, so a reconnect neither loses nor repeats (ids de-duplicate too).
      const sub = { op: 'subscribe' };
      if (lastEventId !== undefined) sub.since = lastEventId;
      ws.send(JSON.stringify(sub));
      pollHealth();
    };
    ws.onmessage = (msg) => {
      let data;
      try {
        data = JSON.parse(msg.data);
      } catch {
        return;
      }
      if (data && data.op === 'event' && data.event) queue.push(data.event);
      else if (data && Array.isArray(data.events)) for (const e of data.events) queue.push(e);
    };
    ws.onclose = () => {
      ws = undefined;
      setConn('closed', 'disconnected, retrying…');
      scheduleReconnect();
    };
    ws.onerror = () => {
      /* onclose follows and schedules the retry */
    };
  }

  function scheduleReconnect() {
    const base = Math.min(BACKOFF.maxMs, BACKOFF.initialMs * BACKOFF.factor ** attempt);
    attempt++;
    setTimeout(connect, base / 2 + Math.random() * (base / 2)); // jitter: many tabs don't reconnect in step
  }

  function setConn(state, text) {
    connEl.dataset.state = state;
    connEl.textContent = text;
  }

  // ---------- health: fps / skipped per stream ----------

  async function pollHealth() {
    try {
      const res = await fetch('/healthz', { cache: 'no-store' });
      if (res.ok || res.status === 503) applyHealth(await res.json());
    } catch {
      /* server down: the WebSocket's reconnect loop reports it */
    }
  }
  setInterval(pollHealth, HEALTH_POLL_MS);

  /** { streams: [{ id, state, reason, decoded, analysed, skipped (totals) }] } as src/http/server.ts sends it. */
  function applyHealth(h) {
    if (!h || !h.streams) return;
    const list = Array.isArray(h.streams)
      ? h.streams
      : Object.entries(h.streams).map(([id, v]) => ({ id, ...(v || {}) }));
    for (const s of list) {
      const id = s.streamId ?? s.id ?? s.name;
      if (typeof id !== 'string') continue;
      const st = streamOf(id);
      const state = typeof s.state === 'string' ? s.state : typeof s.online === 'boolean' ? (s.online ? 'online' : 'offline') : undefined;
      // health is polled, events are pushed: only let health set the state if no event said otherwise lately
      if (state && performance.now() - st.stateAt > HEALTH_POLL_MS * 1.5) setState(st, state, s.reason ?? s.lastError);
      // /healthz gives running totals (decoded, analysed, skipped frames): rates come from two polls
      const at = performance.now() / 1000;
      const prev = st.healthPrev;
      const rate = (key) => {
        const v = num(s[key]);
        if (v === undefined || !prev || prev[key] === undefined || at <= prev.at || v < prev[key]) return undefined;
        return (v - prev[key]) / (at - prev.at);
      };
      st.health = {
        fps: num(s.analysedFps) ?? rate('analysed') ?? st.health?.fps,
        decoded: num(s.decodedFps) ?? rate('decoded') ?? st.health?.decoded,
        skipped: num(s.skippedFps) ?? rate('skipped') ?? st.health?.skipped,
        faces: num(s.faces),
      };
      st.healthPrev = { at, analysed: num(s.analysed), decoded: num(s.decoded), skipped: num(s.skipped) };
      st.dirty = true;
    }
  }

  function num(v) {
    return typeof v === 'number' && Number.isFinite(v) ? v : undefined;
  }

  // ---------- state ----------

  function streamOf(id) {
    let s = streams.get(id);
    if (s) return s;
    const el = document.createElement('section');
    el.className = 'stream';
    el.dataset.stream = id;
    el.innerHTML =
      '<div class="stream-head"><h2></h2><span class="state" data-state="unknown">unknown</span>' +
      '<span class="figures"></span><span class="reason"></span></div><div class="tracks"><div class="no-tracks">no faces yet</div></div>';
    el.querySelector('h2').textContent = id;
    el.querySelector('h2').title = id;
    s = {
      id, el, tracks: new Map(), state: 'unknown', stateAt: 0, reason: '', info: undefined, health: undefined,
      time: undefined, timeAt: 0, now: undefined, dirty: true,
      stateEl: el.querySelector('.state'), figuresEl: el.querySelector('.figures'),
      reasonEl: el.querySelector('.reason'), tracksEl: el.querySelector('.tracks'), noTracksEl: el.querySelector('.no-tracks'),
    };
    streams.set(id, s);
    if (emptyEl.parentNode) emptyEl.remove();
    // keep stream cards in a stable order
    const after = [...streams.keys()].sort().indexOf(id);
    const next = [...streams.keys()].sort()[after + 1];
    streamsEl.insertBefore(el, next ? streams.get(next).el : null);
    return s;
  }

  function setState(s, state, reason) {
    s.state = state;
    s.stateAt = performance.now();
    s.reason = state === 'offline' && reason ? String(reason) : '';
    s.dirty = true;
  }

  function trackOf(s, trackId) {
    let t = s.tracks.get(trackId);
    if (t) return t;
    const el = document.createElement('div');
    el.className = 'track';
    el.dataset.track = trackId;
    el.dataset.stream = s.id;
    el.innerHTML =
      '<div><div class="track-id"></div><span class="label"></span><span class="conf"></span><div class="segments"></div></div><canvas></canvas>';
    el.querySelector('.track-id').textContent = trackId;
    t = {
      id: trackId, el, times: [], probs: EXPRESSIONS.map(() => []), labels: [],
      label: undefined, confidence: 0, segments: [], ended: undefined, dirty: true, visible: true,
      labelEl: el.querySelector('.label'), confEl: el.querySelector('.conf'), segEl: el.querySelector('.segments'),
      canvas: el.querySelector('canvas'),
    };
    t.ctx = t.canvas.getContext('2d');
    t.width = 0;
    t.height = 0;
    t.canvas._track = t;
    sizes.observe(t.canvas);
    visibility.observe(el);
    el._track = t;
    s.tracks.set(trackId, t);
    s.dirty = true; // its track count changed
    s.noTracksEl.remove();
    s.tracksEl.prepend(el); // newest first
    trimTracks(s);
    return t;
  }

  function dropTrack(s, t) {
    visibility.unobserve(t.el);
    sizes.unobserve(t.canvas);
    t.el.remove();
    s.tracks.delete(t.id);
    s.dirty = true;
    if (s.tracks.size === 0) s.tracksEl.append(s.noTracksEl);
  }

  function trimTracks(s) {
    if (s.tracks.size <= MAX_TRACKS_PER_STREAM) return;
    const byAge = [...s.tracks.values()].sort(
      (a, b) => (a.ended ? 0 : 1) - (b.ended ? 0 : 1) || lastTime(a) - lastTime(b),
    );
    for (const t of byAge.slice(0, s.tracks.size - MAX_TRACKS_PER_STREAM)) dropTrack(s, t);
  }

  function lastTime(t) {
    return t.times.length ? t.times[t.times.length - 1] : -Infinity;
  }

  const sizes = new ResizeObserver((entries) => {
    for (const e of entries) {
      const t = e.target._track;
      if (!t) continue;
      t.width = e.contentRect.width;
      t.height = e.contentRect.height;
      t.dirty = true;
    }
  });

  const visibility = new IntersectionObserver((entries) => {
    for (const e of entries) if (e.target._track) e.target._track.visible = e.isIntersecting;
  });

  function apply(e) {
    if (!e || typeof e.id !== 'string' || typeof e.streamId !== 'string') return;
    if (seen.has(e.id)) return;
    seen.add(e.id);
    if (seen.size > SEEN_IDS_MAX) seen.delete(seen.values().next().value);
    lastEventId = e.id;
    eventsReceived++;
    const s = streamOf(e.streamId);
    if (typeof e.time === 'number' && (s.time === undefined || e.time >= s.time)) {
      s.time = e.time;
      s.timeAt = performance.now();
    }
    switch (e.type) {
      case 'stream.start':
        s.info = e.stream;
        setState(s, 'online');
        break;
      case 'stream.online':
        setState(s, 'online');
        break;
      case 'stream.offline':
        setState(s, 'offline', e.reason);
        break;
      case 'stream.end':
        setState(s, 'ended');
        for (const t of s.tracks.values()) if (!t.ended) t.ended = e.time;
        break;
      case 'track.start':
        trackOf(s, e.trackId);
        break;
      case 'face.observation': {
        if (s.state !== 'online') setState(s, 'online'); // frames are flowing, whatever we missed
        const t = trackOf(s, e.trackId);
        t.times.push(e.time);
        EXPRESSIONS.forEach((x, k) => t.probs[k].push(e.probabilities?.[x] ?? 0));
        t.labels.push(e.label);
        if (t.times.length > MAX_POINTS * 1.25) {
          const n = t.times.length - MAX_POINTS; // trim in batches: cheap amortised
          t.times.splice(0, n);
          t.labels.splice(0, n);
          for (const p of t.probs) p.splice(0, n);
        }
        if (t.label !== e.label || t.confidence !== e.confidence) {
          t.label = e.label;
          t.confidence = e.confidence;
          t.textDirty = true;
        }
        t.dirty = true;
        break;
      }
      case 'face.segment': {
        const t = trackOf(s, e.trackId);
        t.segments.push(e);
        if (t.segments.length > MAX_SEGMENTS_SHOWN) t.segments.shift();
        t.textDirty = true;
        break;
      }
      case 'track.end': {
        const t = s.tracks.get(e.trackId);
        if (t) {
          t.ended = e.end;
          t.el.dataset.ended = 'true';
        }
        break;
      }
      default:
        break;
    }
  }

  // ---------- rendering ----------

  function streamNow(s) {
    if (s.time === undefined) return undefined;
    // between events, let wall-clock streams scroll on (capped, so a silent stream does not run away)
    const live = s.info ? s.info.clock === 'wall' : true;
    const ahead = live && s.state === 'online' ? Math.min((performance.now() - s.timeAt) / 1000, 3) : 0;
    const now = s.time + ahead;
    s.now = s.now === undefined || now > s.now || s.time < s.now - 10 ? now : s.now; // never jitter backwards
    return s.now;
  }

  function renderStreamText(s) {
    s.stateEl.dataset.state = s.state;
    s.stateEl.textContent = s.state;
    s.reasonEl.textContent = s.reason;
    const f = [];
    if (s.info && s.info.width) f.push(`${s.info.width}×${s.info.height}`);
    const h = s.health;
    if (h && h.fps !== undefined) f.push(`${h.fps.toFixed(1)} fps`);
    else if (s.info && s.info.fps) f.push(`${Number(s.info.fps).toFixed(1)} fps source`);
    if (h && h.skipped !== undefined) f.push(`${h.skipped.toFixed(1)} skipped/s`);
    f.push(`${s.tracks.size} track${s.tracks.size === 1 ? '' : 's'}`);
    s.figuresEl.textContent = f.join(' · ');
  }

  function renderTrackText(t) {
    if (t.label) {
      t.labelEl.textContent = t.label;
      t.labelEl.style.background = COLORS[t.label] || '#555';
      t.confEl.textContent = Number(t.confidence).toFixed(2);
    }
    t.segEl.textContent = t.segments.map((g) => `${g.label} ${(g.end - g.start).toFixed(1)}s`).join(' · ');
    t.segEl.title = t.segEl.textContent;
  }

  function drawTrack(t, now) {
    const c = t.canvas;
    const dpr = window.devicePixelRatio || 1;
    const w = t.width;
    const h = t.height;
    if (w === 0 || h === 0) return;
    if (c.width !== Math.round(w * dpr) || c.height !== Math.round(h * dpr)) {
      c.width = Math.round(w * dpr);
      c.height = Math.round(h * dpr);
    }
    const ctx = t.ctx;
    ctx.setTransform(dpr, 0, 0, dpr, 0, 0);
    ctx.clearRect(0, 0, w, h);
    const bandH = 8;
    const plotH = h - bandH - 3;
    const t0 = now - WINDOW_S;
    const x = (tt) => ((tt - t0) / WINDOW_S) * w;
    ctx.strokeStyle = '#eceff1';
    ctx.lineWidth = 1;
    ctx.beginPath();
    ctx.moveTo(0, plotH / 2 + 0.5);
    ctx.lineTo(w, plotH / 2 + 0.5);
    ctx.stroke();
    const times = t.times;
    let i0 = lowerBound(times, t0);
    if (i0 > 0) i0--; // one point before the window, so lines enter from the left edge
    if (i0 >= times.length) return;
    const gap = 2.5; // seconds without an observation: the face was not seen, don't join across
    ctx.lineWidth = 1.5;
    for (let k = 0; k < EXPRESSIONS.length; k++) {
      const p = t.probs[k];
      ctx.strokeStyle = COLORS[EXPRESSIONS[k]];
      ctx.beginPath();
      for (let i = i0; i < times.length; i++) {
        const px = x(times[i]);
        const py = 1 + (1 - p[i]) * (plotH - 2);
        if (i === i0 || times[i] - times[i - 1] > gap) ctx.moveTo(px, py);
        else ctx.lineTo(px, py);
      }
      ctx.stroke();
    }
    // smoothed label band: one rect per run of equal labels
    let runStart = i0;
    for (let i = i0 + 1; i <= times.length; i++) {
      if (i === times.length || t.labels[i] !== t.labels[runStart] || times[i] - times[i - 1] > gap) {
        const endT = i < times.length && times[i] - times[i - 1] <= gap ? times[i] : times[i - 1] + 0.1;
        ctx.fillStyle = COLORS[t.labels[runStart]] || '#999';
        const xa = Math.max(0, x(times[runStart]));
        ctx.fillRect(xa, h - bandH, Math.max(1, x(endT) - xa), bandH);
        runStart = i;
      }
    }
  }

  function lowerBound(a, v) {
    let lo = 0;
    let hi = a.length;
    while (lo < hi) {
      const mid = (lo + hi) >> 1;
      if (a[mid] < v) lo = mid + 1;
      else hi = mid;
    }
    return lo;
  }

  let lastDraw = 0;
  let drawMs = 0; // moving average of one frame's redraw cost (main thread)
  function frame(ts) {
    if (queue.length) {
      const batch = queue.splice(0, queue.length);
      for (const e of batch) apply(e);
    }
    if (ts - lastDraw >= DRAW_INTERVAL_MS) {
      lastDraw = ts;
      const started = performance.now();
      let tracks = 0;
      const stale = [];
      // DOM writes first, canvas work after, and no layout reads in between (sizes come from a
      // ResizeObserver): reading a size after a write would force a layout per track
      for (const s of streams.values()) {
        const now = streamNow(s);
        for (const t of [...s.tracks.values()]) {
          if (now !== undefined && t.ended !== undefined && now - t.ended > ENDED_TRACK_TTL_S) {
            dropTrack(s, t);
            continue;
          }
          tracks++;
          if (t.textDirty) {
            renderTrackText(t);
            t.textDirty = false;
          }
          if (!t.visible || now === undefined || t.width === 0) continue;
          // a live, online timeline scrolls, but is redrawn only once it has moved a whole pixel;
          // a still one only when data came in
          const scrolling = s.info?.clock !== 'media' && s.state === 'online' && !t.ended;
          const moved = scrolling && t.drawnAt !== undefined && ((now - t.drawnAt) / WINDOW_S) * t.width >= 1;
          if (t.dirty || moved || t.drawnAt === undefined) stale.push([t, now]);
        }
        if (s.dirty) {
          renderStreamText(s);
          s.dirty = false;
        }
      }
      // Redraw the longest-waiting canvases first, within a time budget: with many tracks each one updates
      // a little less often, but the page keeps its frame rate.
      stale.sort((a, b) => (a[0].drawnWall ?? 0) - (b[0].drawnWall ?? 0));
      for (const [t, now] of stale) {
        if (performance.now() - started > DRAW_BUDGET_MS) break;
        drawTrack(t, now);
        t.drawnAt = now;
        t.drawnWall = performance.now();
        t.dirty = false;
      }
      countsEl.textContent = `${streams.size} stream${streams.size === 1 ? '' : 's'} · ${tracks} tracks · ${eventsReceived} events`;
      drawMs = drawMs * 0.9 + (performance.now() - started) * 0.1;
    }
    requestAnimationFrame(frame);
  }

  window.cafeDashboard = {
    streams,
    stats: () => ({ drawMs: Math.round(drawMs * 100) / 100, streams: streams.size, events: eventsReceived, queued: queue.length, connected: ws?.readyState === 1 }),
    /** lets tests and demos feed events without a server (same path as WebSocket messages). */
    inject: (events) => queue.push(...events),
  };

  connect();
  requestAnimationFrame(frame);
})();
