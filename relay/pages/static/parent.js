// The parent's H5 page: the mini-program's calls to the public API, with the parent's bearer token
// kept in localStorage. Everything the API returns is shown with textContent, never as HTML.
(function () {
  'use strict';
  var W = JSON.parse(document.getElementById('words').textContent);
  var KEY = 'relay-parent-token';
  var problem = document.getElementById('problem');

  var query = new URLSearchParams(location.search);
  if (query.get('token')) {  // the school's link carries it once; it must not stay in the address bar
    localStorage.setItem(KEY, query.get('token'));
    query.delete('token');
    history.replaceState(null, '', location.pathname + (query.toString() ? '?' + query : ''));
  }
  function token() { return localStorage.getItem(KEY) || ''; }

  function el(tag, cls, text) {
    var node = document.createElement(tag);
    if (cls) { node.className = cls; }
    if (text !== undefined && text !== null) { node.textContent = String(text); }
    return node;
  }
  function say(message) { problem.textContent = message; problem.hidden = !message; }
  function clock(iso) { return iso ? iso.slice(5, 16).replace('T', ' ') : ''; }
  function newKey() {
    var bytes = new Uint8Array(16);
    crypto.getRandomValues(bytes);
    return Array.prototype.map.call(bytes, function (b) { return (b < 16 ? '0' : '') + b.toString(16); }).join('');
  }

  function askForToken() {
    var box = document.getElementById('token-box');
    box.hidden = false;
    document.getElementById('token').focus();
  }
  document.getElementById('token-save').addEventListener('click', function () {
    var value = document.getElementById('token').value.trim();
    if (value) { localStorage.setItem(KEY, value); location.reload(); }
  });

  function api(path, options) {
    options = options || {};
    var headers = Object.assign({ Accept: 'application/json', Authorization: 'Bearer ' + token() },
      options.headers || {});
    return fetch(path, Object.assign({}, options, { headers: headers })).then(function (res) {
      return res.json().catch(function () { return {}; }).then(function (body) {
        if (res.status === 401) { askForToken(); }
        if (!res.ok) {
          var error = new Error((body.error && body.error.message) || String(res.status));
          error.status = res.status;
          throw error;
        }
        return body;
      });
    });
  }

  function statusLine(r) {
    var owner = r.owner_name || r.owner;
    return (W['p_' + r.status] || r.status).replace('{owner}', owner);
  }

  // Home: the form and my requests -----------------------------------------------------------
  function home() {
    var child = document.getElementById('child');
    var text = document.getElementById('text');
    var send = document.getElementById('send');
    var hint = '';
    var idempotencyKey = newKey();  // one per message: a retry after a lost answer is the same request
    document.querySelectorAll('button.hint').forEach(function (button) {
      button.addEventListener('click', function () {
        var on = button.getAttribute('aria-pressed') !== 'true';
        document.querySelectorAll('button.hint').forEach(function (b) { b.setAttribute('aria-pressed', 'false'); });
        button.setAttribute('aria-pressed', on ? 'true' : 'false');
        hint = on ? button.getAttribute('data-hint') : '';
      });
    });
    api('/v1/me').then(function (me) {
      me.children.forEach(function (c) {
        var option = el('option', '', c.name + ' · ' + c.class_name);
        option.value = c.id;
        child.append(option);
      });
    }).catch(function (e) { say(e.message); });
    api('/v1/requests').then(function (body) {
      var mine = document.getElementById('mine');
      document.getElementById('mine-empty').hidden = body.requests.length > 0;
      body.requests.forEach(function (r) {
        var li = el('li', 'item ' + r.urgency);
        var a = el('a', 'item-link');
        a.href = '/p/r/' + encodeURIComponent(r.id);
        var row = el('span', 'row1');
        row.append(el('span', 'cat', W['c_' + r.category] || r.category), el('span', 'status s-' + r.status, statusLine(r)),
          el('span', 'when', clock(r.created_at)));
        a.append(row, el('span', 'snippet', r.text));
        li.append(a);
        mine.append(li);
      });
    }).catch(function (e) { say(e.message); });
    send.addEventListener('click', function () {
      if (!child.value) { say(W.need_child); return; }
      if (!text.value.trim()) { say(W.need_text); text.focus(); return; }
      say('');
      send.disabled = true;
      var body = { student_id: child.value, text: text.value };
      if (hint) { body.category_hint = hint; }
      api('/v1/requests', {
        method: 'POST', body: JSON.stringify(body),
        headers: { 'Content-Type': 'application/json', 'Idempotency-Key': idempotencyKey }
      }).then(function (r) {
        location.href = '/p/r/' + encodeURIComponent(r.id);
      }).catch(function (e) { say(e.message); send.disabled = false; });
    });
  }

  // Detail: status, owner, expected answer, replies; refreshed while the request is open ---------
  function detail(id) {
    var timer = null;
    function show(r) {
      document.getElementById('d-status').textContent = statusLine(r);
      document.getElementById('d-status').className = 'status-line s-' + r.status;
      document.getElementById('d-eta').textContent = r.status === 'resolved' ? '' : W.expect + '：' + r.eta_text;
      document.getElementById('d-text').textContent = r.text;
      var replies = document.getElementById('d-replies');
      replies.replaceChildren();
      if (!r.replies.length) { replies.append(el('li', 'muted', W.no_replies)); }
      r.replies.forEach(function (reply) {
        var li = el('li', 'reply');
        li.append(el('time', '', clock(reply.at)), ' ', el('span', '', reply.text));
        replies.append(li);
      });
      var timeline = document.getElementById('d-timeline');
      timeline.replaceChildren();
      (r.timeline || []).forEach(function (entry) {
        var li = el('li', 'k-' + entry.kind);
        li.append(el('time', '', clock(entry.at)), ' ', el('strong', '', W['k_' + entry.kind] || entry.kind));
        if (entry.text) { li.append(el('span', 'detail', entry.text)); }
        timeline.append(li);
      });
      if (r.status === 'resolved' && timer) { clearInterval(timer); }
    }
    function load() {
      if (document.hidden) { return; }
      api('/v1/requests/' + encodeURIComponent(id)).then(show).catch(function (e) { say(e.message); });
    }
    load();
    timer = setInterval(load, 3000);
  }

  if (!token()) { askForToken(); return; }
  var detailEl = document.getElementById('detail');
  if (detailEl) { detail(detailEl.getAttribute('data-request')); } else { home(); }
})();
