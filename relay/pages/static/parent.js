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

  // Detail: status, who was told and who has it, the answer; refreshed while the request is open ---------
  function fill(text, values) {
    return text.replace(/\{(\w+)\}/g, function (_, key) { return values[key] === undefined ? '' : values[key]; });
  }
  function hhmm(iso) { return iso ? iso.slice(11, 16) : ''; }
  function telOf(phone) { return 'tel:' + phone.replace(/[^\d+]/g, ''); }

  function detail(id) {
    var timer = null;
    var path = '/v1/requests/' + encodeURIComponent(id);
    function byId(name) { return document.getElementById(name); }

    function toldLine(r) {
      var told = (r.told || []).map(function (p) { return (p.role_text ? p.role_text + ' ' : '') + p.name; });
      return told.length ? W.p_told + '：' + told.join('、') : '';
    }
    function banner(r) {
      var box = byId('urgent');
      // The call to action is for an emergency still open; once closed, the progress lines keep who was told.
      box.hidden = r.urgency !== 'P0' || r.status === 'resolved';
      if (box.hidden) { return; }
      byId('u-told').textContent = toldLine(r);
      byId('u-phone').hidden = !r.school_phone;
      if (r.school_phone) {
        var link = byId('u-phone-link');
        link.textContent = r.school_phone;
        link.href = telOf(r.school_phone);
      }
    }
    function progress(r) {
      var list = byId('d-progress');
      list.replaceChildren();
      function line(text) { list.append(el('li', 'done', '✓ ' + text)); }
      if (r.status === 'resolved' && toldLine(r)) { line(toldLine(r)); }
      if (r.acknowledged) {
        var who = r.acknowledged.role_text ? r.acknowledged.name + '（' + r.acknowledged.role_text + '）' : r.acknowledged.name;
        line(fill(W.p_acked_by, { who: who, at: hhmm(r.acknowledged.at) }));
      }
      if (r.on_site) { line(fill(W.p_on_site, { who: r.on_site.name, at: hhmm(r.on_site.at) })); }
      list.hidden = !list.children.length;
    }
    function show(r) {
      var open = r.status !== 'resolved';
      banner(r);
      var status = byId('d-status');
      status.textContent = r.urgency === 'P0' && r.status === 'received' ? W.p_received_urgent : statusLine(r);
      status.className = 'status-line s-' + r.status;
      progress(r);
      // The expected answer matters only while nobody has answered: a passed due time goes with the answer.
      byId('d-eta').textContent = (r.status === 'received' || r.status === 'acknowledged') ? r.eta_text : '';
      byId('d-hours').hidden = !r.after_hours_text;
      byId('d-hours').textContent = r.after_hours_text || '';
      byId('d-closing').hidden = !(r.closing_message || r.outcome);
      byId('d-outcome').textContent = r.outcome ? fill(W.p_outcome, { outcome: r.outcome.text }) : '';
      byId('d-outcome').hidden = !r.outcome;
      byId('d-closing-text').textContent = r.closing_message || '';
      byId('d-closing-text').hidden = !r.closing_message;
      byId('d-text').textContent = r.text;
      var replies = byId('d-replies');
      replies.replaceChildren();
      var shown = r.replies.filter(function (reply) { return !reply.closing; });
      if (!shown.length) { replies.append(el('li', 'muted', W.no_replies)); }
      byId('d-replies-box').hidden = !open && !shown.length;
      shown.forEach(function (reply) {
        var li = el('li', 'reply');
        li.append(el('time', '', clock(reply.at)), ' ', el('span', '', reply.text));
        replies.append(li);
      });
      byId('urgent-box').hidden = !open || r.urgency === 'P0';
      byId('follow-up').hidden = !open;
      byId('d-closed-note').hidden = open;
      var timeline = byId('d-timeline');
      timeline.replaceChildren();
      (r.timeline || []).forEach(function (entry) {
        var li = el('li', 'k-' + entry.kind);
        li.append(el('time', '', clock(entry.at)), ' ', el('strong', '', W['k_' + entry.kind] || entry.kind));
        if (entry.text) { li.append(el('span', 'detail', entry.text)); }
        timeline.append(li);
      });
      if (!open && timer) { clearInterval(timer); timer = null; }
    }
    function load() {
      if (document.hidden) { return; }
      api(path).then(show).catch(function (e) { say(e.message); });
    }

    var followKey = newKey();  // one per message: a retry after a lost answer is the same follow-up
    byId('follow-up').addEventListener('submit', function (event) {
      event.preventDefault();
      var box = byId('fu-text');
      var send = byId('fu-send');
      if (!box.value.trim()) { say(W.need_text); box.focus(); return; }
      say('');
      send.disabled = true;
      api(path + '/follow-up', {
        method: 'POST', body: JSON.stringify({ text: box.value }),
        headers: { 'Content-Type': 'application/json', 'Idempotency-Key': followKey }
      }).then(function (r) {
        box.value = '';
        followKey = newKey();
        byId('fu-done').textContent = W.p_follow_up_sent;
        show(r);
      }).catch(function (e) { say(e.message); }).then(function () { send.disabled = false; });
    });
    byId('mark-urgent').addEventListener('click', function () { byId('urgent-ask').hidden = false; });
    byId('urgent-no').addEventListener('click', function () { byId('urgent-ask').hidden = true; });
    byId('urgent-yes').addEventListener('click', function () {
      byId('urgent-yes').disabled = true;
      api(path + '/urgent', { method: 'POST' }).then(function (r) {
        byId('urgent-ask').hidden = true;
        say('');
        byId('fu-done').textContent = W.p_marked;
        show(r);
      }).catch(function (e) { say(e.message); }).then(function () { byId('urgent-yes').disabled = false; });
    });
    load();
    timer = setInterval(load, 3000);
  }

  if (!token()) { askForToken(); return; }
  var detailEl = document.getElementById('detail');
  if (detailEl) { detail(detailEl.getAttribute('data-request')); } else { home(); }
})();
