/* weft report, part 1: the embedded data, helpers, view state, filters, and what each
   thing on the timeline is in words. Part 2 (view.js) draws and handles the user; part 3
   (page.js) fills the rest of the page and starts it.
   Array layouts (see src/report/model.rs):
     locs      [rip, insn, source]
     runs      [vcpu, start, steps, switched]
     accesses  [step, vcpu, kind 0 R / 1 W / 2 RMW, addr, size, value, loc, old]
     notes     [step, vcpu, text]            (marks, console, warnings)
     ends      [vcpu, step, reason]
   64-bit values above 2^53 arrive as hex strings. */

const D = JSON.parse(document.getElementById('weft-data').textContent);
const M = D.meta;
const NV = M.vcpus;
const STEPS = Math.max(1, M.steps);
const KIND = ['R', 'W', 'RMW'];
const $ = (id) => document.getElementById(id);

function hex(v) { return v == null ? '' : (typeof v === 'string' ? v : '0x' + v.toString(16)); }
function num(v) { return typeof v === 'string' ? Number(BigInt(v)) : v; }
function fmt(n) { return Number(n).toLocaleString('en-US'); }
function esc(s) {
  return String(s).replace(/[&<>"']/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' }[c]));
}
function shq(s) { return /^[\w@%+=:,./-]+$/.test(s) ? s : "'" + s.replace(/'/g, "'\\''") + "'"; }
function clamp(x, lo, hi) { return Math.max(lo, Math.min(hi, x)); }
/* First index i in [0, n) with key(i) >= x, for keys that never decrease. */
function lowerBound(n, key, x) {
  let lo = 0, hi = n;
  while (lo < hi) { const mid = (lo + hi) >> 1; if (key(mid) < x) lo = mid + 1; else hi = mid; }
  return lo;
}
function loc(i) { return i == null ? null : D.locs[i]; }
/* "file.c:35" out of "_start+0x12 (examples/x.c:35, inlined at ...)", else the symbol. */
function shortSrc(i) {
  const l = loc(i);
  if (!l) return '';
  const m = /\(([^,)]*)/.exec(l[2]);
  if (m) return m[1].replace(/^.*\//, '');
  return l[2] || hex(l[0]);
}
function firstLine(s, max) {
  const t = String(s).split('\n').find((x) => x.trim() !== '') || '';
  return t.length > max ? t.slice(0, max - 1) + '\u2026' : t;
}

/* ---- state ---- */
const S = {
  v0: 0, v1: STEPS,          /* visible steps [v0, v1) */
  hidden: new Set(),         /* vCPUs not shown */
  addr: null,                /* {lo, hi} */
  code: '',                  /* lower-case substring of a location */
  conflicts: false,
  sel: null,                 /* {t, i} */
};
const aborts = D.txs.map((t, i) => i).filter((i) => D.txs[i].outcome === 'abort');

/* ---- filters ---- */
function parseAddr(text) {
  const t = text.trim().toLowerCase();
  if (!t) return null;
  const p = (x) => { x = x.trim(); if (!/^(0x)?[0-9a-f]+$/.test(x)) return NaN; return parseInt(x.replace(/^0x/, ''), 16); };
  const parts = t.split(/\s*(?:-|\.\.)\s*/);
  const lo = p(parts[0]), hi = parts.length > 1 ? p(parts[1]) : lo;
  return isNaN(lo) || isNaN(hi) ? { bad: true } : { lo: Math.min(lo, hi), hi: Math.max(lo, hi) };
}
const codeCache = new Map();
function codeMatches(li) {
  if (!S.code) return true;
  if (li == null) return false;
  let m = codeCache.get(li);
  if (m === undefined) {
    const l = D.locs[li];
    m = (l[2] + ' ' + l[1] + ' ' + hex(l[0])).toLowerCase().includes(S.code);
    codeCache.set(li, m);
  }
  return m;
}
function addrMatches(addr, size) {
  if (!S.addr || S.addr.bad) return true;
  const a = num(addr);
  return a <= S.addr.hi && a + Math.max(1, size) - 1 >= S.addr.lo;
}
function accessShown(a) { return !S.hidden.has(a[1]) && addrMatches(a[3], a[4]) && codeMatches(a[6]); }
function sideShown(s) { return !S.hidden.has(s.vcpu) && addrMatches(s.addr, s.size) && codeMatches(s.loc); }
function arcShown(g) {
  if (!g.race && !S.conflicts) return false;
  if (S.hidden.has(g.a.vcpu) || S.hidden.has(g.b.vcpu)) return false;
  return sideShown(g.a) || sideShown(g.b);
}
function txShown(t) { return !S.hidden.has(t.vcpu) && (codeMatches(t.site) || codeMatches(t.at) || codeMatches(t.by_loc)); }
function filtering() { return !!((S.addr && !S.addr.bad) || S.code); }

/* ---- words for each thing ---- */
function locRows(li, label) {
  const l = loc(li);
  if (!l) return [];
  const rows = [[label || 'RIP', '<code>' + hex(l[0]) + '</code>  <code>' + esc(l[1]) + '</code>']];
  if (l[2]) rows.push(['source', esc(l[2])]);
  return rows;
}
function sideRows(s, label) {
  const arrow = s.kind.includes('W') ? '\u2190' : '\u2192';
  return [[label, '<b>step ' + s.step + '</b>, vcpu' + s.vcpu + ' ' + s.kind + ' <code>[' + hex(s.addr) + ']:' + s.size +
    '</code> ' + arrow + ' <code>' + hex(s.value) + '</code>']].concat(locRows(s.loc, ''));
}
/* {title, rows: [[key, html]], step, from, to, race} for an item of the timeline. */
function describe(t, i) {
  if (t === 'a') {
    const a = D.accesses[i];
    const what = a[2] === 2 ? 'RMW (locked)' : KIND[a[2]];
    const val = a[2] === 2 && a[7] != null ? hex(a[7]) + ' \u2192 ' + hex(a[5]) : hex(a[5]);
    return {
      title: 'vcpu' + a[1] + ' ' + what + ' [' + hex(a[3]) + ']:' + a[4] + (a[2] === 0 ? ' \u2192 ' : ' \u2190 ') + val,
      rows: [['step', a[0]], ['vCPU', a[1]]].concat(locRows(a[6]), [['address', '<code>' + hex(a[3]) + '</code>, ' + a[4] + ' bytes'],
        ['value', '<code>' + esc(val) + '</code>' + (a[2] === 0 ? ' (read)' : ' (written)')]]),
      step: a[0],
    };
  }
  if (t === 'r') {
    const r = D.runs[i];
    return {
      title: 'vcpu' + r[0] + ' ran steps ' + r[1] + '\u2013' + (r[1] + r[2] - 1) + ' (' + fmt(r[2]) + ' step' + (r[2] === 1 ? '' : 's') + ')',
      rows: [['then', r[3] ? 'switched away while it still had work (preempted, or it yielded or spun)' : 'its last run']],
      step: r[1], from: r[1], to: r[1] + r[2] - 1,
    };
  }
  if (t === 'x') {
    const x = D.txs[i];
    const rows = [['vCPU', x.vcpu], ['began', 'step ' + x.begin]].concat(locRows(x.site, 'XBEGIN'));
    if (x.outcome === 'commit') {
      rows.push(['committed', 'step ' + x.end + (x.read_lines != null ? ', ' + x.read_lines + ' lines read, ' + x.write_lines + ' written' : '')]);
      rows.push.apply(rows, locRows(x.at, 'XEND'));
    } else if (x.outcome === 'abort') {
      rows.push(['aborted', 'step ' + x.end + ', status <code>' + hex(x.status) + '</code>']);
      rows.push(['cause', esc(x.cause)]);
      rows.push.apply(rows, locRows(x.at, 'its access'));
      if (x.by != null) rows.push.apply(rows, [['aborted by', 'vcpu' + x.by]].concat(locRows(x.by_loc, 'at')));
    } else {
      rows.push(['end', 'still open when the trace ends']);
    }
    return { title: 'transaction on vcpu' + x.vcpu + ': ' + x.outcome + (x.cause_class ? ' (' + x.cause_class + ')' : ''), rows: rows, step: x.end, from: x.begin, to: x.end };
  }
  if (t === 'c') {
    const g = D.races[i];
    const times = g.count === 1 ? 'once' : fmt(g.count) + ' times, steps ' + g.first_step + '\u2013' + g.last_step;
    return {
      title: (g.race ? 'data race #' : 'ordered conflict #') + g.id + ' ' + g.classes.join('+') + ' (' + times + ')',
      rows: [['on', (g.object ? '<code>' + esc(g.object) + '</code> ' : '') + 'bytes ' + hex(g.addr_start) + '–' + hex(g.addr_end)]].concat(sideRows(g.a, 'first'), sideRows(g.b, 'then'), [['pairs', fmt(g.count) + ' between these two code locations on these bytes' + (g.count > 1 ? '; this is the first' : '')]]),
      step: g.b.step, from: g.a.step, to: g.b.step, race: g.id,
    };
  }
  if (t === 'm' || t === 'k' || t === 'n') {
    const n = (t === 'm' ? D.marks : t === 'k' ? D.console : D.warnings)[i];
    const what = t === 'm' ? 'mark' : t === 'k' ? 'console output' : 'warning';
    return { title: what + ' from vcpu' + n[1] + ' at step ' + n[0], rows: [[what, '<code style="white-space:pre-wrap">' + esc(n[2]) + '</code>']], step: n[0] };
  }
  if (t === 'e') {
    const e = D.ends[i];
    return { title: 'vcpu' + e[0] + ' ended at step ' + e[1], rows: [['how', esc(e[2])]], step: e[1] };
  }
  if (t === 'f') {
    const f = D.failure;
    const rows = [['verdict', '<b>' + esc(f.class) + '</b>: ' + esc(f.text)], ['step', f.step]];
    if (f.vcpu != null) rows.push(['vCPU', f.vcpu]);
    rows.push.apply(rows, locRows(f.loc));
    f.spinning.forEach((s) => rows.push.apply(rows, [['waiting', 'vcpu' + s[0]]].concat(locRows(s[1], 'at'))));
    if (f.regs.length) rows.push(['registers', '<code>' + esc(f.regs.join(' ')) + '</code>']);
    if (f.details) rows.push(['where', '<pre class="stacks">' + esc(f.details) + '</pre>']);
    return { title: 'failure: ' + f.class, rows: rows, step: f.step };
  }
  if (t === 'b') {
    /* i = [vcpu, first bucket, last bucket] */
    const [v, b0, b1] = i, B = D.buckets, bs = D.lod.bucket_steps;
    let run = 0, r = 0, w = 0, rmw = 0, tx = 0, ab = 0;
    for (let b = b0; b <= b1; b++) { run += B.run[v][b]; r += B.r[v][b]; w += B.w[v][b]; rmw += B.rmw[v][b]; tx += B.tx[v][b]; ab += B.ab[v][b]; }
    const from = b0 * bs, to = Math.min(STEPS, (b1 + 1) * bs) - 1;
    return {
      title: 'vcpu' + v + ', steps ' + from + '\u2013' + to + ' (summary)',
      rows: [['ran', fmt(run) + ' of ' + fmt(to - from + 1) + ' steps'], ['accesses', fmt(r) + ' reads, ' + fmt(w) + ' writes, ' + fmt(rmw) + ' RMWs'],
        ['transactions', fmt(tx) + ' begun, ' + fmt(ab) + ' aborted'], ['', '<span class="dim">zoom in for single events</span>']],
      step: from, from: from, to: to,
    };
  }
  return null;
}

/* The commands that take a person to a step. */
function commands(d) {
  const tr = shq(M.trace);
  let h = '<div class="cmd"><div>Replay to just before step ' + d.step + ': <code>weft replay ' + esc(tr) + ' --goto ' + d.step + '</code></div>' +
    '<div>In gdb: <code>weft replay --gdb ' + esc(tr) + '</code> then <code>monitor goto ' + d.step + '</code></div>' +
    '<div>The events around it: <code>' + (d.race ? 'weft inspect ' + esc(tr) + ' --race ' + d.race : 'weft inspect ' + esc(tr) + ' --goto ' + d.step) + '</code></div></div>';
  return h;
}
