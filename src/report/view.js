/* weft report, part 2: the timeline (SVG, redrawn for each view), the lists, the details
   panel and the user's zoom, pan, filters and links. Only what is in view is drawn; where
   there are too many single events for the view, per-bucket summaries stand in. */

const svg = $('tl'), tip = $('tip');
const G = { left: 104, right: 18, top: 46 };
const LH = clamp(Math.floor(330 / Math.max(1, NV)), 24, 96);
const CH = D.console.length ? 30 : 0;
const MAX_TICKS = 6000, MAX_RUNS = 5000, MAX_SPANS = 3000, MAX_LABELS = 400;
const NA = D.accesses.length, NR = D.runs.length;
const runTotals = D.buckets.run.map((row) => row.reduce((a, b) => a + b, 0));
let W = 1200;
const laneTop = new Map();

function plotW() { return Math.max(50, W - G.left - G.right); }
function X(step) { return G.left + (step - S.v0) / (S.v1 - S.v0) * plotW(); }
function stepAt(x) { return S.v0 + (x - G.left) / plotW() * (S.v1 - S.v0); }
function yc(v) { return laneTop.get(v) + LH * 0.40; }
const RB = Math.max(6, LH * 0.14), TK = Math.max(5, LH * 0.16);
function spanY(v) { return laneTop.get(v) + LH * 0.66; }
const SH = Math.max(5, LH * 0.17);
function f1(x) { return Math.round(x * 10) / 10; }
function attrs(o) { return Object.keys(o).map((k) => k + '="' + (typeof o[k] === 'string' ? esc(o[k]) : o[k]) + '"').join(' '); }
function el(name, o, body) { return '<' + name + ' ' + attrs(o) + (body == null ? '/>' : '>' + body + '</' + name + '>'); }
function isSel(t, i) { return S.sel && S.sel.t === t && S.sel.i === i; }
/* Greedy label placement: a label that would overlap one already placed moves up to
   `tries` rows up or down, else it is left out (hovering still tells). */
function placer() {
  const boxes = [];
  return function (x, y, text, anchorEnd, tries) {
    const w = text.length * 6.4 + 4, h = 12;
    const x0 = anchorEnd ? x - w : x;
    for (let k = 0; k <= (tries || 0) * 2; k++) {
      const dy = (k % 2 ? -1 : 1) * Math.ceil(k / 2) * h;
      const b = [x0, y + dy - h + 2, x0 + w, y + dy + 2];
      if (!boxes.some((o) => b[0] < o[2] && o[0] < b[2] && b[1] < o[3] && o[1] < b[3])) { boxes.push(b); return y + dy; }
    }
    return null;
  };
}

/* Whether steps [from, to] lie inside one detail window (summarised reports). */
function covered(from, to) {
  const w = D.lod.windows;
  const k = lowerBound(w.length, (i) => w[i].to, from);
  return k < w.length && w[k].from <= from && w[k].to >= to;
}

function niceTick(span, px) {
  const target = span / Math.max(1, px / 90);
  const p = Math.pow(10, Math.floor(Math.log10(Math.max(1, target))));
  for (const m of [1, 2, 5, 10]) if (p * m >= target) return Math.max(1, p * m);
  return Math.max(1, p * 10);
}

function render() {
  dirty = false;
  W = Math.max(600, svg.clientWidth || 1200);
  const lanes = [];
  for (let v = 0; v < NV; v++) if (!S.hidden.has(v)) lanes.push(v);
  laneTop.clear();
  lanes.forEach((v, k) => laneTop.set(v, G.top + k * LH));
  const bottom = G.top + lanes.length * LH;
  const H = bottom + CH + 8;
  const pxStep = plotW() / (S.v1 - S.v0);
  const lo = Math.floor(S.v0), hi = Math.ceil(S.v1);
  const out = [], stat = { lanes: 0, arcs: 0, conflictArcs: 0, spans: 0, failure: 0, accesses: 0 };

  out.push('<defs><clipPath id="plot"><rect x="' + G.left + '" y="0" width="' + plotW() + '" height="' + H + '"/></clipPath>' +
    '<marker id="ah-race" viewBox="0 0 10 10" refX="9" refY="5" markerWidth="7" markerHeight="7" orient="auto-start-reverse"><path d="M0,0L10,5L0,10z" fill="#c92a2a"/></marker>' +
    '<marker id="ah-conf" viewBox="0 0 10 10" refX="9" refY="5" markerWidth="6" markerHeight="6" orient="auto-start-reverse"><path d="M0,0L10,5L0,10z" fill="#868e96"/></marker>' +
    '<marker id="ah-abort" viewBox="0 0 10 10" refX="9" refY="5" markerWidth="6" markerHeight="6" orient="auto-start-reverse"><path d="M0,0L10,5L0,10z" fill="#e03131"/></marker></defs>');

  /* Lanes: background, name, how much it ran. */
  lanes.forEach((v, k) => {
    const y = laneTop.get(v);
    stat.lanes++;
    out.push('<g class="lane" data-vcpu="' + v + '">' +
      el('rect', { x: 0, y: y, width: W, height: LH, fill: k % 2 ? '#f4f6f9' : '#fbfcfd' }) +
      el('line', { x1: G.left, x2: W - G.right, y1: f1(yc(v)), y2: f1(yc(v)), stroke: '#ced4da', 'stroke-width': 1 }) +
      el('text', { class: 'lane-label', x: 10, y: f1(yc(v) + 4) }, 'vcpu' + v) +
      (LH >= 40 ? el('text', { class: 'lane-sub', x: 10, y: f1(yc(v) + 17) }, fmt(runTotals[v] || 0) + ' steps') : '') + '</g>');
  });
  out.push('<g clip-path="url(#plot)">');

  /* Detail windows of a summarised report. */
  if (!D.lod.full) {
    for (const w of D.lod.windows) {
      if (w.to + 1 < S.v0 || w.from > S.v1) continue;
      const x0 = Math.max(G.left - 2, X(w.from)), x1 = Math.min(W, X(w.to + 1));
      out.push(el('rect', { class: 'lod-window', x: f1(x0), y: 4, width: f1(Math.max(1, x1 - x0)), height: bottom - 4, fill: '#ffe066', opacity: 0.22 }));
    }
  }

  /* Runs, or the buckets' occupancy where runs are too many or not kept. */
  const rLo = lowerBound(NR, (i) => D.runs[i][1] + D.runs[i][2], lo + 1);
  const rHi = lowerBound(NR, (i) => D.runs[i][1], hi);
  const detailRuns = rHi - rLo <= MAX_RUNS;
  const aLo = lowerBound(NA, (i) => D.accesses[i][0], lo);
  const aHi = lowerBound(NA, (i) => D.accesses[i][0], hi);
  const detailTicks = aHi - aLo <= MAX_TICKS;
  const vis = [];
  for (let i = 0; i < D.txs.length; i++) { const t = D.txs[i]; if (t.begin <= hi && t.end >= lo) vis.push(i); }
  /* Single spans only where they can be told apart; else per-bucket counts. */
  const detailSpans = vis.length <= Math.min(MAX_SPANS, plotW() / 3);
  drawBuckets(out, lanes, detailRuns, detailTicks, detailSpans);
  if (detailRuns) {
    const open = new Map();
    const flush = (v) => { const c = open.get(v); if (c) out.push(el('rect', { x: f1(c.x0), y: f1(yc(v) - RB / 2), width: f1(Math.max(1, c.x1 - c.x0)), height: f1(RB), rx: 2, fill: '#8ea4c4', 'data-t': 'r', 'data-i': c.i })); open.delete(v); };
    for (let i = rLo; i < rHi; i++) {
      const r = D.runs[i];
      if (S.hidden.has(r[0])) continue;
      const x0 = X(r[1]), x1 = X(r[1] + r[2]);
      const c = open.get(r[0]);
      if (c && x0 <= c.x1 + 0.75) c.x1 = x1; else { flush(r[0]); open.set(r[0], { x0: x0, x1: x1, i: i }); }
    }
    for (const v of Array.from(open.keys())) flush(v);
    if (rHi - rLo <= Math.min(800, plotW() / 12)) {
      for (let i = rLo; i < rHi; i++) {
        const r = D.runs[i];
        if (!r[3] || S.hidden.has(r[0])) continue;
        const x = X(r[1] + r[2]), y = yc(r[0]);
        out.push(el('path', { class: 'switch', d: 'M' + f1(x) + ',' + f1(y - RB / 2 - 2) + 'l6,' + f1(RB / 2 + 2) + 'l-6,' + f1(RB / 2 + 2) + 'z', fill: '#343a40', 'data-t': 'r', 'data-i': i }));
      }
    }
  }

  /* Transactions. */
  if (detailSpans) {
    for (const i of vis) {
      const t = D.txs[i];
      if (!txShown(t)) continue;
      const x0 = X(t.begin), x1 = Math.max(x0 + 3, X(t.end + 1)), y = spanY(t.vcpu);
      const colour = t.outcome === 'commit' ? ['#d3f9d8', '#2b8a3e'] : t.outcome === 'abort' ? ['#ffe3e3', '#e03131'] : ['#f1f3f5', '#868e96'];
      stat.spans++;
      out.push(el('rect', { class: 'tx-span ' + t.outcome + (isSel('x', i) ? ' sel' : ''), x: f1(x0), y: f1(y), width: f1(x1 - x0), height: f1(SH), rx: 2,
        fill: colour[0], stroke: colour[1], 'stroke-width': 1, 'stroke-dasharray': t.outcome === 'open' ? '3 2' : 'none', 'data-t': 'x', 'data-i': i }));
      const ex = x1 - 1, ey = y + SH / 2, s = Math.min(4, SH / 2);
      if (t.outcome === 'commit') out.push(el('path', { d: 'M' + f1(ex - s - 1) + ',' + f1(ey) + 'l' + f1(s * 0.6) + ',' + f1(s * 0.8) + 'l' + f1(s * 1.2) + ',' + f1(-s * 1.6), stroke: '#2b8a3e', 'stroke-width': 1.6, fill: 'none' }));
      if (t.outcome === 'abort') {
        out.push(el('path', { d: 'M' + f1(ex - s * 1.6) + ',' + f1(ey - s) + 'l' + f1(s * 1.6) + ',' + f1(s * 2) + 'm0,' + f1(-s * 2) + 'l' + f1(-s * 1.6) + ',' + f1(s * 2), stroke: '#e03131', 'stroke-width': 1.6 }));
        if (t.by != null && laneTop.has(t.by) && vis.length <= 300) {
          const bx = X(t.end + 0.5), by = yc(t.by);
          out.push(el('path', { class: 'abort-by', d: 'M' + f1(bx) + ',' + f1(by) + 'L' + f1(ex) + ',' + f1(by < y ? y : y + SH), stroke: '#e03131', 'stroke-width': 1.2, 'stroke-dasharray': '2 2', fill: 'none', 'marker-end': 'url(#ah-abort)' }));
        }
      }
      if (x1 - x0 > 56 && t.outcome !== 'commit') out.push(el('text', { class: 'span-label', x: f1(x0 + 3), y: f1(y + SH - 2) }, esc(t.outcome === 'abort' ? 'abort: ' + t.cause_class : 'open')));
    }
  }

  /* Accesses. */
  if (detailTicks) {
    const w = clamp(pxStep * 0.7, 1.5, 6);
    for (let i = aLo; i < aHi; i++) {
      const a = D.accesses[i];
      if (!accessShown(a)) continue;
      stat.accesses++;
      const x = X(a[0] + 0.5), y = yc(a[1]);
      out.push(el('rect', { class: 'acc ' + ['r', 'w', 'rmw'][a[2]] + (isSel('a', i) ? ' sel' : ''), x: f1(x - w / 2), y: f1(y - TK), width: f1(w), height: f1(2 * TK),
        fill: ['#1c7ed6', '#e8590c', '#7048e8'][a[2]], 'data-t': 'a', 'data-i': i }));
    }
  }

  /* Marks and vCPU ends. */
  const place = placer();
  const labels = D.marks.filter((m) => m[0] >= lo && m[0] <= hi).length <= MAX_LABELS;
  D.marks.forEach((m, i) => {
    if (m[0] < lo || m[0] > hi || S.hidden.has(m[1])) return;
    const x = X(m[0] + 0.5), y = yc(m[1]) - TK - 5;
    out.push(el('path', { class: 'mark' + (isSel('m', i) ? ' sel' : ''), d: 'M' + f1(x) + ',' + f1(y - 4) + 'l4,4l-4,4l-4,-4z', fill: '#f08c00', 'data-t': 'm', 'data-i': i }));
    const text = firstLine(m[2], 48), ly = labels && LH >= 40 ? place(x + 6, y + 3.5, text, false, 0) : null;
    if (ly != null) out.push(el('text', { class: 'mark-label', x: f1(x + 6), y: f1(ly), 'data-t': 'm', 'data-i': i }, esc(text)));
  });
  D.ends.forEach((e, i) => {
    if (e[1] < lo || e[1] > hi || S.hidden.has(e[0])) return;
    const x = X(e[1] + 1), y = yc(e[0]);
    out.push(el('rect', { class: 'vcpu-end', x: f1(x - 1), y: f1(y - TK - 2), width: 3, height: f1(2 * TK + 4), fill: '#495057', 'data-t': 'e', 'data-i': i }));
  });

  /* Arcs: one per race group (and, if asked, per ordered conflict group). */
  const seen = new Map();
  D.races.forEach((g, i) => {
    if (!arcShown(g)) return;
    const x1 = X(g.a.step + 0.5), y1 = yc(g.a.vcpu), x2 = X(g.b.step + 0.5), y2 = yc(g.b.vcpu);
    if (Math.max(x1, x2) < G.left - 40 || Math.min(x1, x2) > W - G.right + 40) return;
    const key = Math.round(x1) + ',' + Math.round(x2);
    const k = seen.get(key) || 0;
    seen.set(key, k + 1);
    const dx = x2 - x1, dy = y2 - y1, len = Math.max(1, Math.hypot(dx, dy));
    let nx = -dy / len, ny = dx / len;
    if (nx < 0 || (nx === 0 && ny > 0)) { nx = -nx; ny = -ny; }
    const bulge = clamp(len * 0.22, 16, 70) + Math.min(k, 3) * 14;
    const mx = (x1 + x2) / 2 + nx * bulge, my = (y1 + y2) / 2 + ny * bulge;
    const cls = g.race ? 'race' : 'conflict';
    if (g.race) stat.arcs++; else stat.conflictArcs++;
    out.push('<g class="arc-group" data-t="c" data-i="' + i + '">' +
      el('path', { class: 'arc ' + cls + (isSel('c', i) ? ' sel' : ''), d: 'M' + f1(x1) + ',' + f1(y1) + 'Q' + f1(2 * mx - (x1 + x2) / 2) + ',' + f1(2 * my - (y1 + y2) / 2) + ' ' + f1(x2) + ',' + f1(y2),
        fill: 'none', stroke: g.race ? '#c92a2a' : '#868e96', 'stroke-width': isSel('c', i) ? 4 : g.race ? 2.2 : 1.2, 'stroke-dasharray': g.race ? 'none' : '4 3', 'marker-end': g.race ? 'url(#ah-race)' : 'url(#ah-conf)' }) +
      el('circle', { cx: f1(x1), cy: f1(y1), r: 3.5, fill: '#fff', stroke: g.race ? '#c92a2a' : '#868e96', 'stroke-width': 1.5 }) +
      arcLabel(place, g, mx, my) + '</g>');
  });

  /* The failure. */
  const F = D.failure;
  if (F) {
    const x = X(F.step + 0.5);
    if (x >= G.left - 1 && x <= W - G.right + 1) {
      stat.failure = 1;
      let g = el('line', { x1: f1(x), x2: f1(x), y1: G.top - 4, y2: bottom + CH, stroke: '#c92a2a', 'stroke-width': 2 });
      const pins = F.vcpu != null ? [F.vcpu] : F.spinning.map((s) => s[0]);
      for (const v of pins) {
        if (!laneTop.has(v)) continue;
        g += el('circle', { cx: f1(x), cy: f1(yc(v)), r: 9, fill: '#c92a2a', stroke: '#fff', 'stroke-width': 2 }) +
          el('text', { x: f1(x), y: f1(yc(v) + 4.5), 'text-anchor': 'middle', fill: '#fff', 'font-weight': 700, 'font-size': 13 }, '!');
      }
      const right = x > W - 260;
      g += el('text', { class: 'fail-label', x: f1(right ? x - 6 : x + 6), y: 14, 'text-anchor': right ? 'end' : 'start' },
        esc('\u2716 ' + F.class + (F.vcpu != null ? ' on vcpu' + F.vcpu : '') + ' at step ' + F.step)) +
        el('line', { x1: f1(x), x2: f1(x), y1: 4, y2: G.top - 4, stroke: '#c92a2a', 'stroke-width': 2, 'stroke-dasharray': '2 2' });
      out.push('<g id="failure-marker" class="failure" data-t="f" data-i="0">' + g + '</g>');
    }
  }

  /* Console output at the step it was written. */
  if (CH) {
    const y = bottom + 4;
    const notes = [];
    D.console.forEach((n, i) => { if (n[0] >= lo && n[0] <= hi && !S.hidden.has(n[1])) notes.push(i); });
    notes.forEach((i, k) => {
      const n = D.console[i], x = X(n[0] + 0.5);
      const nextX = k + 1 < notes.length ? X(D.console[notes[k + 1]][0] + 0.5) : W - G.right;
      const prevX = k > 0 ? X(D.console[notes[k - 1]][0] + 0.5) + 40 : G.left;
      out.push(el('rect', { class: 'console-tick', x: f1(x - 1), y: y, width: 2, height: CH - 10, fill: '#495057', 'data-t': 'k', 'data-i': i }));
      /* Text to the right of its tick, or to the left where the right has no room. */
      const right = Math.floor((nextX - x - 10) / 6.6), left = Math.floor((x - prevX - 10) / 6.6);
      const end = right < 24 && left > right, room = Math.min(90, end ? left : right);
      if (notes.length <= MAX_LABELS && room >= 10) {
        out.push(el('text', { class: 'console-label', x: f1(end ? x - 4 : x + 4), y: y + 13, 'text-anchor': end ? 'end' : 'start', 'data-t': 'k', 'data-i': i },
          esc('vcpu' + n[1] + ': ' + firstLine(n[2], room))));
      }
    });
  }
  out.push('</g>');
  if (CH) out.push(el('text', { class: 'lane-sub', x: 10, y: bottom + 17 }, 'console'));

  /* Step axis. */
  const tick = niceTick(S.v1 - S.v0, plotW());
  let axis = el('line', { x1: G.left, x2: W - G.right, y1: G.top - 2, y2: G.top - 2, stroke: '#adb5bd' });
  for (let s = Math.ceil(Math.max(0, S.v0) / tick) * tick; s <= Math.min(STEPS, S.v1); s += tick) {
    const x = X(s);
    axis += el('line', { x1: f1(x), x2: f1(x), y1: G.top - 6, y2: G.top - 2, stroke: '#adb5bd' }) + el('text', { x: f1(x), y: G.top - 10, 'text-anchor': 'middle' }, fmt(s));
  }
  out.push('<g class="axis">' + axis + el('text', { x: 10, y: G.top - 10 }, 'step') + '</g>');

  svg.setAttribute('viewBox', '0 0 ' + W + ' ' + H);
  svg.setAttribute('height', H);
  svg.innerHTML = out.join('');
  $('v-range').textContent = 'steps ' + fmt(Math.max(0, Math.floor(S.v0))) + '\u2013' + fmt(Math.min(STEPS, Math.ceil(S.v1))) + ' of ' + fmt(STEPS);
  const hints = [];
  if (!detailTicks || !detailRuns) hints.push('Too many events for this view: per-bucket summaries shown (bar shade = how much of the time the vCPU ran; columns = reads, writes, RMWs). Zoom in for single events.');
  else if (!D.lod.full) hints.push('Single events are kept only in the shaded detail windows; elsewhere, per-bucket summaries.');
  if (filtering() && !detailTicks) hints.push('Filters apply to single events.');
  if (S.addr && S.addr.bad) hints.push('The address filter is not a hex address or range.');
  $('v-hint').textContent = hints.join(' ');
  status(stat);
}

function arcLabel(place, g, mx, my) {
  const text = g.classes.join('+') + ' #' + g.id + (g.count > 1 ? ' \u00d7' + fmt(g.count) : '');
  const y = place(mx + 3, my + 4, text, false, 2);
  return y == null ? '' : el('text', { class: 'arc-label' + (g.race ? '' : ' conflict'), x: f1(mx + 3), y: f1(y) }, esc(text));
}

/* Per-bucket summaries: wherever single events are not drawn. */
function drawBuckets(out, lanes, detailRuns, detailTicks, detailSpans) {
  const B = D.buckets, bs = D.lod.bucket_steps;
  if (!B.n || (D.lod.full && detailRuns && detailTicks && detailSpans)) return;
  const per = Math.max(1, Math.ceil((NV > 16 ? 4 : 3) / (bs * plotW() / (S.v1 - S.v0))));
  const first = Math.max(0, Math.floor(Math.floor(S.v0 / bs) / per) * per);
  const last = Math.min(B.n - 1, Math.ceil(S.v1 / bs));
  let most = 1;
  const cols = [];
  for (let b0 = first; b0 <= last; b0 += per) {
    const b1 = Math.min(B.n - 1, b0 + per - 1);
    const from = b0 * bs, to = Math.min(STEPS, (b1 + 1) * bs) - 1;
    const inWindow = !D.lod.full && covered(from, to);
    for (const v of lanes) {
      let run = 0, r = 0, w = 0, m = 0, tx = 0, ab = 0;
      for (let b = b0; b <= b1; b++) { run += B.run[v][b]; r += B.r[v][b]; w += B.w[v][b]; m += B.rmw[v][b]; tx += B.tx[v][b]; ab += B.ab[v][b]; }
      most = Math.max(most, r + w + m);
      cols.push({ v, b0, b1, from, to, run, r, w, m, tx, ab, inWindow });
    }
  }
  const logMost = Math.log1p(most);
  for (const c of cols) {
    const x0 = X(c.from), x1 = X(c.to + 1), wd = Math.max(1, x1 - x0 - 0.5), y = yc(c.v), id = c.v + ',' + c.b0 + ',' + c.b1;
    if (c.run > 0 && !(detailRuns && c.inWindow)) {
      const share = c.run / Math.max(1, c.to - c.from + 1);
      out.push(el('rect', { class: 'bucket-run', x: f1(x0), y: f1(y - RB / 2), width: f1(wd), height: f1(RB), fill: '#8ea4c4', opacity: Math.round((0.15 + 0.85 * Math.min(1, share)) * 100) / 100, 'data-t': 'b', 'data-b': id }));
    }
    const n = c.r + c.w + c.m;
    if (n > 0 && !(detailTicks && c.inWindow)) {
      const h = 2 * TK * Math.log1p(n) / logMost;
      let yy = y + TK;
      for (const [k, colour] of [[c.r, '#1c7ed6'], [c.w, '#e8590c'], [c.m, '#7048e8']]) {
        if (!k) continue;
        const hk = Math.max(0.8, h * k / n);
        yy -= hk;
        out.push(el('rect', { class: 'bucket-acc', x: f1(x0), y: f1(yy), width: f1(wd), height: f1(hk), fill: colour, 'data-t': 'b', 'data-b': id }));
      }
    }
    if ((c.tx > 0 || c.ab > 0) && !(detailSpans && c.inWindow)) {
      const sy = spanY(c.v);
      if (c.tx > c.ab) out.push(el('rect', { class: 'bucket-tx', x: f1(x0), y: f1(sy), width: f1(wd), height: f1(SH), fill: '#b2f2bb', 'data-t': 'b', 'data-b': id }));
      if (c.ab > 0) out.push(el('rect', { class: 'bucket-abort', x: f1(x0), y: f1(sy + SH * 0.5), width: f1(wd), height: f1(SH * 0.5), fill: '#ffa8a8', 'data-t': 'b', 'data-b': id }));
    }
  }
}

function status(stat) {
  const st = $('weft-status');
  st.setAttribute('data-state', 'ready');
  st.setAttribute('data-lanes', stat.lanes);
  st.setAttribute('data-arcs', stat.arcs);
  st.setAttribute('data-conflict-arcs', stat.conflictArcs);
  st.setAttribute('data-spans', stat.spans);
  st.setAttribute('data-accesses', stat.accesses);
  st.setAttribute('data-failure', stat.failure);
  st.setAttribute('data-summarised', D.lod.full ? 0 : 1);
  st.setAttribute('data-view', Math.floor(S.v0) + '-' + Math.ceil(S.v1));
  st.setAttribute('data-selected', S.sel ? S.sel.t + ':' + (Array.isArray(S.sel.i) ? S.sel.i.join(',') : S.sel.i) : '');
  st.setAttribute('data-errors', (window.weftErrors || []).length);
}

/* Redraw once, at the next frame or after 40 ms, whichever comes first (a page that draws
   no frames, e.g. headless, still redraws), unless a direct render() came first. */
let pending = false, dirty = false;
function schedule() {
  dirty = true;
  if (pending) return;
  pending = true;
  const run = () => { if (!pending) return; pending = false; if (dirty) render(); };
  requestAnimationFrame(run);
  setTimeout(run, 40);
}

/* ---- view motions ---- */
function setView(v0, v1) {
  const pad = Math.max(0.5, STEPS * 0.01);
  let span = clamp(v1 - v0, Math.min(8, STEPS + 2 * pad), STEPS + 2 * pad);
  v0 = clamp(v0, -pad, STEPS + pad - span);
  S.v0 = v0; S.v1 = v0 + span;
}
function fit() { const pad = Math.max(0.5, STEPS * 0.01); setView(-pad, STEPS + pad); }
function zoomAt(step, factor) { setView(step - (step - S.v0) * factor, step + (S.v1 - step) * factor); schedule(); }
function pan(fraction) { const d = (S.v1 - S.v0) * fraction; setView(S.v0 + d, S.v1 + d); schedule(); }
function focus(from, to) {
  const span = Math.max(24, (to - from + 1) * 2.4), mid = (from + to + 1) / 2;
  setView(mid - span / 2, mid + span / 2);
}

/* ---- selection and details ---- */
function select(t, i, move) {
  S.sel = { t: t, i: i };
  const d = describe(t, i);
  if (!d) return;
  if (move) focus(d.from != null ? d.from : d.step, d.to != null ? d.to : d.step);
  let h = '<div class="d-title">' + esc(d.title) + '</div><table>';
  for (const r of d.rows) h += '<tr><td>' + esc(r[0]) + '</td><td>' + r[1] + '</td></tr>';
  h += '</table>' + commands(d);
  $('d-body').innerHTML = h;
  document.querySelectorAll('.list li.on').forEach((li) => li.classList.remove('on'));
  const li = document.querySelector('.list li[data-t="' + t + '"][data-i="' + i + '"]');
  if (li) li.classList.add('on');
  schedule();
}

function hoverTarget(e) {
  const n = e.target.closest ? e.target.closest('[data-t]') : null;
  if (!n) return null;
  const t = n.getAttribute('data-t');
  if (t === 'b') return { t: t, i: n.getAttribute('data-b').split(',').map(Number) };
  return { t: t, i: Number(n.getAttribute('data-i')) };
}
svg.addEventListener('mousemove', (e) => {
  if (drag) return;
  const h = hoverTarget(e);
  if (!h) { tip.hidden = true; return; }
  const d = describe(h.t, h.i);
  if (!d) return;
  let s = '<b>' + esc(d.title) + '</b>';
  for (const r of d.rows.slice(0, 7)) s += '<br><span class="dim">' + esc(r[0]) + '</span> ' + r[1];
  tip.innerHTML = s;
  tip.hidden = false;
  const box = $('timeline').getBoundingClientRect();
  const x = e.clientX - box.left + 14, y = e.clientY - box.top + 14;
  tip.style.left = Math.min(x, box.width - tip.offsetWidth - 8) + 'px';
  tip.style.top = y + 'px';
});
svg.addEventListener('mouseleave', () => { tip.hidden = true; });
svg.addEventListener('wheel', (e) => {
  e.preventDefault();
  const box = svg.getBoundingClientRect();
  zoomAt(stepAt((e.clientX - box.left) * W / box.width), Math.exp(clamp(e.deltaY, -200, 200) * 0.002));
}, { passive: false });
let drag = null;
svg.addEventListener('mousedown', (e) => {
  if (e.button !== 0) return;
  drag = { x: e.clientX, v0: S.v0, v1: S.v1, moved: false, target: hoverTarget(e) };
  e.preventDefault();
});
window.addEventListener('mousemove', (e) => {
  if (!drag) return;
  const dx = e.clientX - drag.x;
  if (Math.abs(dx) > 3) { drag.moved = true; svg.classList.add('dragging'); tip.hidden = true; }
  if (drag.moved) {
    const box = svg.getBoundingClientRect();
    const d = -dx * W / box.width / plotW() * (drag.v1 - drag.v0);
    setView(drag.v0 + d, drag.v1 + d);
    schedule();
  }
});
window.addEventListener('mouseup', () => {
  if (drag && !drag.moved && drag.target) select(drag.target.t, drag.target.i, false);
  drag = null;
  svg.classList.remove('dragging');
});
document.addEventListener('keydown', (e) => {
  if (e.target.tagName === 'INPUT' || e.ctrlKey || e.metaKey || e.altKey) return;
  const mid = (S.v0 + S.v1) / 2;
  if (e.key === '+' || e.key === '=') zoomAt(mid, 0.7);
  else if (e.key === '-') zoomAt(mid, 1 / 0.7);
  else if (e.key === '0') { fit(); schedule(); }
  else if (e.key === 'ArrowLeft') pan(-0.2);
  else if (e.key === 'ArrowRight') pan(0.2);
  else return;
  e.preventDefault();
});
window.addEventListener('resize', schedule);
$('b-in').onclick = () => zoomAt((S.v0 + S.v1) / 2, 0.6);
$('b-out').onclick = () => zoomAt((S.v0 + S.v1) / 2, 1 / 0.6);
$('b-fit').onclick = () => { fit(); schedule(); };
$('b-left').onclick = () => pan(-0.3);
$('b-right').onclick = () => pan(0.3);
$('f-addr').oninput = (e) => { S.addr = parseAddr(e.target.value); schedule(); };
$('f-code').oninput = (e) => { S.code = e.target.value.trim().toLowerCase(); codeCache.clear(); schedule(); };
$('f-conf').onchange = (e) => { S.conflicts = e.target.checked; schedule(); };
