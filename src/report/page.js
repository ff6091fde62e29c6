/* weft report, part 3: the header, the lists that jump to races, aborts and marks, the TM
   table, the vCPU filter, links to a moment (#race=N ...), and the start of the page. */

/* ---- header, lists, tables ---- */
function header() {
  $('h-guest').textContent = M.guest;
  const v = D.verdict, b = $('h-verdict');
  b.textContent = !v ? 'incomplete trace' : v.pass ? 'pass' : 'FAIL \u00b7 ' + v.class;
  b.className = 'verdict ' + (!v ? 'unknown' : v.pass ? 'pass' : 'fail');
  const bits = ['trace <code>' + esc(M.trace) + '</code>', M.vcpus + ' vCPUs', fmt(M.steps) + ' steps', fmt(M.switches) + ' context switches',
    fmt(M.accesses) + ' shared accesses', fmt(M.races) + ' data race' + (M.races === 1 ? '' : 's'), fmt(M.transactions) + ' transactions',
    'strategy <code>' + esc(M.strategy) + '</code>', 'recorded by weft ' + esc(M.weft_version)];
  let h = bits.join(' \u00b7 ');
  if (v && !v.pass) h += '<br><b>' + esc(v.text) + '</b>';
  if (M.reader_warning) h += '<br>warning: ' + esc(M.reader_warning);
  $('h-meta').innerHTML = h;
  const note = $('lod-note');
  note.textContent = D.lod.note;
  note.className = 'note' + (D.lod.full ? '' : ' summarised');
  document.title = 'weft report: ' + M.guest + ' (' + (v ? v.class : 'incomplete') + ')';
}

function li(list, t, i, html) {
  const x = document.createElement('li');
  x.setAttribute('data-t', t);
  x.setAttribute('data-i', i);
  x.innerHTML = html;
  x.onclick = () => { select(t, i, true); history.replaceState(null, '', anchor(t, i)); };
  list.appendChild(x);
}
function anchor(t, i) {
  if (t === 'c') return '#race=' + D.races[i].id;
  if (t === 'x' && aborts.indexOf(i) >= 0) return '#abort=' + (aborts.indexOf(i) + 1);
  const d = describe(t, i);
  return '#step=' + (d ? d.step : 0);
}
function none(list, text) { const x = document.createElement('li'); x.className = 'none'; x.textContent = text; list.appendChild(x); }
function lists() {
  const F = D.failure;
  if (F) {
    const d = document.createElement('div');
    d.className = 'fail-item';
    d.innerHTML = '<b>\u2716 ' + esc(F.class) + '</b> at step ' + F.step + (F.vcpu != null ? ' on vcpu' + F.vcpu : '') + ': ' + esc(F.text);
    d.onclick = () => { select('f', 0, true); history.replaceState(null, '', '#failure'); };
    $('l-failure').appendChild(d);
  }
  const LIMIT = 1000;
  const races = D.races.map((g, i) => i).filter((i) => D.races[i].race);
  $('n-races').textContent = '(' + fmt(M.races) + ')';
  races.slice(0, LIMIT).forEach((i) => {
    const g = D.races[i];
    li($('l-races'), 'c', i, '<span class="cls">' + esc(g.classes.join('+')) + ' #' + g.id + '</span>' + (g.count > 1 ? ' \u00d7' + fmt(g.count) : '') +
      ' <span class="st">steps ' + g.a.step + '\u2192' + g.b.step + '</span> vcpu' + g.a.vcpu + ' ' + g.a.kind + ' \u2192 vcpu' + g.b.vcpu + ' ' + g.b.kind +
      ' <code>' + hex(g.a.addr) + '</code> <span class="src">' + esc(shortSrc(g.a.loc)) + (shortSrc(g.b.loc) !== shortSrc(g.a.loc) ? ' / ' + esc(shortSrc(g.b.loc)) : '') + '</span>');
  });
  if (!races.length) none($('l-races'), 'none: every conflicting pair is ordered by happens-before');
  const total = D.lod.total.aborts;
  $('n-aborts').textContent = '(' + fmt(total) + (aborts.length < total ? '; ' + fmt(Math.min(aborts.length, LIMIT)) + ' listed' : '') + ')';
  aborts.slice(0, LIMIT).forEach((i) => {
    const x = D.txs[i];
    li($('l-aborts'), 'x', i, '<span class="st">step ' + x.end + '</span> vcpu' + x.vcpu + ' <span class="cls abort">' + esc(x.cause_class) + '</span> ' +
      esc(x.cause) + ' <span class="src">' + esc(shortSrc(x.at)) + '</span>');
  });
  if (!total) none($('l-aborts'), M.transactions ? 'none: every transaction committed' : 'no transactions in this trace');
  $('n-marks').textContent = '(' + fmt(D.lod.total.marks) + ')';
  D.marks.slice(0, LIMIT).forEach((m, i) => li($('l-marks'), 'm', i, '<span class="st">step ' + m[0] + '</span> vcpu' + m[1] + ' ' + esc(firstLine(m[2], 120))));
  if (!D.marks.length) none($('l-marks'), 'none (the guest can put one with the MARK hypercall)');
  $('n-console').textContent = '(' + fmt(D.lod.total.console) + ' bytes)';
  D.console.slice(0, LIMIT).forEach((n, i) => li($('l-console'), 'k', i, '<span class="st">' + n[0] + ' vcpu' + n[1] + '</span> ' + esc(n[2].replace(/\n$/, ''))));
  if (!D.console.length) none($('l-console'), 'no console output');
  tmTable();
  if (D.warnings.length) {
    $('warnings').innerHTML = '<h2>Warnings</h2>' + D.warnings.map((w) => '<div>step ' + w[0] + ' vcpu' + w[1] + ': ' + esc(w[2]) + '</div>').join('');
  }
}
function tmTable() {
  const sites = D.tm.sites || [];
  if (!sites.length) { $('tm-sites').innerHTML = '<p class="hint">No transactions in this trace.</p>'; return; }
  let h = '<table class="tm"><tr><th>XBEGIN</th><th>started</th><th>committed</th><th>aborted</th><th>after an abort</th></tr>';
  for (const s of sites) {
    const causes = Object.keys(s.causes).map((k) => esc(k) + ' \u00d7' + s.causes[k]).join(', ');
    h += '<tr><td><code>' + hex(s.xbegin.rip) + '</code> ' + esc(s.xbegin.source) + '</td><td>' + fmt(s.started) + '</td><td>' + fmt(s.committed) +
      '</td><td>' + fmt(s.aborted) + (causes ? '<br><span class="src">' + causes + '</span>' : '') + '</td><td>retried ' + fmt(s.retried) + ', fallback ' + fmt(s.fallback) + '</td></tr>';
  }
  $('tm-sites').innerHTML = h + '</table><p class="hint">The same as <code>weft tm ' + esc(shq(M.trace)) + '</code>.</p>';
}
function vcpuFilter() {
  const box = $('f-vcpus');
  if (NV < 2) return;
  box.appendChild(document.createTextNode('vCPUs'));
  for (let v = 0; v < NV; v++) {
    const l = document.createElement('label'), c = document.createElement('input');
    c.type = 'checkbox'; c.checked = true;
    c.onchange = () => { if (c.checked) S.hidden.delete(v); else S.hidden.add(v); schedule(); };
    l.appendChild(c); l.appendChild(document.createTextNode(String(v)));
    box.appendChild(l);
  }
}

/* #step=N, #race=N, #abort=N, #failure: a link to a moment. */
function fromHash() {
  const m = /^#(step|race|abort|failure)(?:=(\d+))?$/.exec(location.hash);
  if (!m) return false;
  const n = Number(m[2] || 0);
  if (m[1] === 'race') { const i = D.races.findIndex((g) => g.id === n); if (i >= 0) { select('c', i, true); return true; } }
  if (m[1] === 'abort' && n >= 1 && n <= aborts.length) { select('x', aborts[n - 1], true); return true; }
  if (m[1] === 'failure' && D.failure) { select('f', 0, true); return true; }
  if (m[1] === 'step') {
    focus(n, n);
    const i = lowerBound(NA, (k) => D.accesses[k][0], n);
    if (i < NA && D.accesses[i][0] === n) select('a', i, false); else schedule();
    return true;
  }
  return false;
}
window.addEventListener('hashchange', () => { if (fromHash()) render(); });

if (D.version !== 1) window.weftRecordError('report data version ' + D.version + '; this page reads version 1');
header();
vcpuFilter();
lists();
fit();
if (!fromHash()) {
  const first = D.races.findIndex((g) => g.race);
  if (first >= 0) select('c', first, false); else if (D.failure) select('f', 0, false);
}
render();
