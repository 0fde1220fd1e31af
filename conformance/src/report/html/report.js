
(function () {
  'use strict';
  var data = JSON.parse(document.getElementById('data').textContent);
  var main = document.getElementById('main');
  var panel = document.getElementById('panel');
  var body = document.getElementById('panel-body');
  var rows = {};
  Array.prototype.forEach.call(document.querySelectorAll('tr.case'), function (tr) {
    rows[tr.getAttribute('data-case')] = tr;
  });
  var selected = null;

  function el(tag, cls, text) {
    var e = document.createElement(tag);
    if (cls) e.className = cls;
    if (text !== undefined && text !== null) e.textContent = text;
    return e;
  }
  function fragment(c, i) {
    return '#cell=' + encodeURIComponent(c) + '/' + encodeURIComponent(i);
  }
  function link(text, href) {
    var a = el('a', null, text);
    a.href = href;
    return a;
  }
  function section(title, parent) {
    var s = el('section');
    s.appendChild(el('h3', null, title));
    parent.appendChild(s);
    return s;
  }
  function pre(text, cls) {
    return el('pre', cls, text);
  }
  function diffPre(text) {
    var p = el('pre', 'diff');
    text.split('\n').forEach(function (line, n, all) {
      if (n === all.length - 1 && line === '') return;
      var cls = line.indexOf('+++') === 0 || line.indexOf('---') === 0 ? 'file'
        : line.charAt(0) === '+' ? 'add' : line.charAt(0) === '-' ? 'del'
        : line.indexOf('@@') === 0 ? 'hunk' : null;
      p.appendChild(el('span', cls, line || ' '));
    });
    return p;
  }
  function kib(n) {
    return n < 1024 ? n + ' bytes' : (n / 1024).toFixed(1) + ' KiB';
  }
  function unselect() {
    if (selected) {
      selected.cell.classList.remove('sel');
      selected.row.classList.remove('selrow');
      selected = null;
    }
  }
  function close() {
    unselect();
    panel.hidden = true;
  }
  function select(c) {
    unselect();
    var row = rows[c.case];
    var col = data.impls.indexOf(c.impl);
    if (!row || col < 0) return;
    var cell = row.cells[3 + col];
    if (!cell) return;
    cell.classList.add('sel');
    row.classList.add('selrow');
    selected = {cell: cell, row: row};
    // Keep the cell in view above the panel, below the sticky column headers.
    var m = main.getBoundingClientRect(), r = cell.getBoundingClientRect();
    var head = document.querySelector('.matrix thead').getBoundingClientRect().height;
    if (r.top < m.top + head || r.bottom > m.bottom) {
      main.scrollTop += r.top - m.top - Math.max(head + 8, m.height / 2 - r.height);
    }
    if (r.left < m.left || r.right > m.right) main.scrollLeft += r.left - m.left - m.width / 2;
  }
  function showHistory(c, parent) {
    var s = section('Raw history', parent);
    if (c.history_path) {
      var p = el('p', 'note');
      p.appendChild(document.createTextNode('file: '));
      if (location.protocol === 'file:' && c.history_path.charAt(0) === '/') {
        p.appendChild(link(c.history_path, 'file://' + encodeURI(c.history_path)));
      } else {
        p.appendChild(document.createTextNode(c.history_path));
      }
      s.appendChild(p);
    }
    if (c.history_error) {
      s.appendChild(el('p', 'note', 'could not be read when the report was written: ' + c.history_error));
      return;
    }
    if (c.h === undefined) {
      s.appendChild(el('p', 'note', 'none recorded'));
      return;
    }
    var d = el('details');
    var label = 'show (' + kib(c.history_bytes) + (c.history_truncated ? ', truncated to the first 64 KiB' : '') + ')';
    d.appendChild(el('summary', null, label));
    d.addEventListener('toggle', function () {
      if (!d.open || d.querySelector('pre')) return;
      var raw = JSON.parse(document.getElementById('h-' + c.h).textContent);
      var text = typeof raw === 'string' ? raw : JSON.stringify(raw, null, 2);
      if (c.history_truncated) text += '\n… truncated: the file has ' + kib(c.history_bytes) + '.';
      d.appendChild(pre(text));
    });
    s.appendChild(d);
  }
  function show(key) {
    var c = data.cells[key];
    body.textContent = '';
    panel.hidden = false;
    panel.scrollTop = 0;
    if (!c) {
      unselect();
      body.appendChild(el('h2', null, 'No cell ' + key));
      body.appendChild(el('p', 'note', 'This run has no result for that case and implementation.'));
      return;
    }
    var cs = data.cases[c.case] || {};
    var h = el('h2');
    h.appendChild(el('span', 'badge v-' + c.kind, c.kind));
    h.appendChild(document.createTextNode(c.case + ' on ' + c.impl));
    body.appendChild(h);
    if (cs.claim) body.appendChild(el('p', 'claimtext', cs.claim));
    var nav = el('div', 'nav');
    var col = data.impls.indexOf(c.impl);
    if (col > 0) nav.appendChild(link('◀ ' + data.impls[col - 1], fragment(c.case, data.impls[col - 1])));
    if (col >= 0 && col + 1 < data.impls.length) nav.appendChild(link(data.impls[col + 1] + ' ▶', fragment(c.case, data.impls[col + 1])));
    if (c.impl !== data.oracle && data.cells[c.case + '/' + data.oracle]) nav.appendChild(link('the oracle (' + data.oracle + ')', fragment(c.case, data.oracle)));
    body.appendChild(nav);

    var dl = el('dl', 'facts');
    function fact(k, v) {
      if (v === undefined || v === null || v === '') return;
      dl.appendChild(el('dt', null, k));
      dl.appendChild(el('dd', null, v));
    }
    fact('status', c.status);
    fact('verdict', c.verdict);
    fact('reason', c.reason);
    fact('expected entry', c.expected ? c.expected.status + ': ' + c.expected.reason : 'none (expected to pass)');
    fact('unstable', c.unstable);
    fact('driver fault', c.fault);
    fact('duration', c.duration_ms + ' ms');
    fact('area', cs.area);
    fact('kind', cs.quirk ? 'CPython quirk: records what CPython happens to do' : 'contract: what every Pool must do');
    fact('tags', (cs.tags || []).join(', '));
    fact('case file', cs.file);
    var cols = el('div', 'cols');
    var left = el('div'), right = el('div');
    cols.appendChild(left);
    cols.appendChild(right);
    body.appendChild(cols);
    left.appendChild(dl);
    var s = section('Diff against the oracle (' + data.oracle + ')', left);
    if (c.diff !== undefined) s.appendChild(diffPre(data.texts[c.diff])); else s.appendChild(el('p', 'note', c.diff_note || ''));
    if (c.fault_detail) section('Driver fault', left).appendChild(pre(c.fault_detail));
    if (cs.cite && cs.cite.length) {
      var ul = el('ul', 'cite');
      cs.cite.forEach(function (x) { ul.appendChild(el('li', null, x)); });
      section('Citations', left).appendChild(ul);
    }
    s = section('Observation', right);
    if (c.observation !== undefined) s.appendChild(pre(data.texts[c.observation])); else s.appendChild(el('p', 'note', 'none recorded'));
    if (cs.expect) section("The case's expectations", right).appendChild(pre(cs.expect));
    showHistory(c, right);
    select(c);
  }
  function fromHash() {
    var h = location.hash.replace(/^#/, '');
    if (h.indexOf('cell=') !== 0) { close(); return; }
    var key = h.slice(5);
    try { key = decodeURIComponent(key); } catch (e) { /* keep it as written */ }
    show(key);
  }
  function dismiss() {
    close();
    try {
      history.pushState(null, '', location.pathname + location.search);
    } catch (e) {
      var x = window.scrollX, y = window.scrollY;
      location.hash = '';
      window.scrollTo(x, y);
    }
  }
  window.addEventListener('hashchange', fromHash);
  window.addEventListener('popstate', fromHash);
  document.getElementById('close').addEventListener('click', dismiss);
  document.addEventListener('keydown', function (e) {
    if (e.key === 'Escape' && !panel.hidden) dismiss();
  });
  Array.prototype.forEach.call(document.querySelectorAll('tr.group'), function (tr) {
    tr.addEventListener('click', function () { tr.parentNode.classList.toggle('collapsed'); });
  });
  var filter = document.getElementById('filter');
  var notable = document.getElementById('notable');
  function applyFilter() {
    var words = filter.value.toLowerCase().split(/\s+/).filter(Boolean);
    Object.keys(rows).forEach(function (id) {
      var tr = rows[id];
      var text = (id + ' ' + ((data.cases[id] || {}).claim || '')).toLowerCase();
      var hide = (notable.checked && tr.classList.contains('allpass')) ||
        words.some(function (w) { return text.indexOf(w) < 0; });
      tr.classList.toggle('hidden', hide);
    });
  }
  filter.addEventListener('input', applyFilter);
  notable.addEventListener('change', applyFilter);
  applyFilter();
  fromHash();
})();
