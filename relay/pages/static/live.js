// Staff pages: live countdowns, and the queue refreshed on every server-sent event.
// Data is put in the page with textContent only, never as HTML.
(function () {
  'use strict';
  var wordsEl = document.getElementById('words');
  var W = wordsEl ? JSON.parse(wordsEl.textContent) : {};
  var csrfMeta = document.querySelector('meta[name="csrf"]');
  var csrf = csrfMeta ? csrfMeta.getAttribute('content') : '';
  var list = document.getElementById('queue');
  var state = document.getElementById('live-state');

  function two(n) { return (n < 10 ? '0' : '') + n; }
  function span(ms) {
    var s = Math.floor(ms / 1000), h = Math.floor(s / 3600), m = Math.floor((s % 3600) / 60);
    return h > 0 ? h + W.u_h + two(m) + W.u_m : m + W.u_m + two(s % 60) + W.u_s;
  }
  // Plain words: "1分36秒", "24秒", "2小时5分" (two units at most, none zero-padded; as relay/pages/views.py).
  function plain(ms) {
    var t = Math.max(0, Math.floor(ms / 1000));
    var parts = [[Math.floor(t / 86400), W.u_d], [Math.floor((t % 86400) / 3600), W.u_h],
      [Math.floor((t % 3600) / 60), W.u_m], [t % 60, W.u_s]];
    while (parts.length > 1 && parts[0][0] === 0) { parts.shift(); }
    return parts.slice(0, 2).filter(function (p, i, all) { return p[0] || all.length === 1; })
      .map(function (p) { return p[0] + p[1]; }).join('');
  }
  function tick() {
    var now = Date.now();
    document.querySelectorAll('.countdown[data-due]').forEach(function (el) {
      var due = Date.parse(el.getAttribute('data-due'));
      if (isNaN(due)) { return; }
      var holder = el.closest('.item, #request');
      var need = el.getAttribute('data-need');
      if (need) {  // the queue's rows: "1分36秒内需确认" / "已超时24秒"
        el.textContent = due < now ? W.t_late.replace('{span}', plain(now - due))
          : W['t_' + need + '_in'].replace('{span}', plain(due - now));
        if (holder && due < now) { holder.classList.add('overdue'); }
        return;
      }
      if (due < now) {
        el.textContent = W.overdue + ' ' + span(now - due);
        if (holder) { holder.classList.add('overdue'); }
      } else {
        el.textContent = W.due + ' · ' + W.left + ' ' + span(due - now);
      }
    });
  }

  function el(tag, cls, text) {
    var node = document.createElement(tag);
    if (cls) { node.className = cls; }
    if (text !== undefined && text !== null) { node.textContent = String(text); }
    return node;
  }
  function head(item) {
    var row = el('span', 'row1');
    row.append(el('span', 'badge ' + item.urgency, item.urgency_words), el('span', 'cat', item.category_words),
      el('span', 'status s-' + item.status, item.status_words));
    var cd = el('span', 'countdown', W.due + ' ' + item.due_clock);
    if (item.due) { cd.setAttribute('data-due', item.due); }
    row.append(cd);
    return row;
  }
  function shell(item, extra) {
    var li = el('li', 'item ' + item.urgency + (item.overdue ? ' overdue' : '') + (extra || ''));
    li.setAttribute('data-id', item.id);
    return li;
  }
  function queueRow(item) {
    var li = shell(item);
    var a = el('a', 'item-link');
    a.href = item.url;
    var row2 = el('span', 'row2');
    row2.append(el('span', 'who', item.class_name + ' · ' + item.student_name),
      el('span', 'owner', W.owner + '：' + item.owner_words));
    var top = head(item);
    var cd = top.querySelector('.countdown');
    cd.setAttribute('data-need', item.need);
    cd.textContent = item.timer_words;
    a.append(top, row2, el('span', 'snippet', item.text));
    li.append(a);
    if (item.row_ack && csrf) {  // P0/P1 not yet acknowledged: one tap from the row, back to this queue
      var form = action(item, 'ack', W.row_ack, 'act-row-ack');
      form.action = '/staff/requests/' + encodeURIComponent(item.id) + '/ack';
      form.className = 'row-ack';
      var back = el('input');
      back.type = 'hidden'; back.name = 'back'; back.value = list.getAttribute('data-back') || '/staff';
      form.append(back);
      li.append(form);
    }
    return li;
  }
  function action(item, name, label, cls) {
    var form = el('form');
    form.method = 'post';
    form.action = '/nurse/requests/' + encodeURIComponent(item.id) + '/' + name;
    var hidden = el('input');
    hidden.type = 'hidden'; hidden.name = 'csrf'; hidden.value = csrf;
    var button = el('button', cls, label);
    button.type = 'submit';
    form.append(hidden, button);
    return form;
  }
  function nurseCard(item) {
    var li = shell(item, ' nurse-card');
    var top = head(item);
    var row1 = el('div', 'row1');
    row1.append.apply(row1, Array.prototype.slice.call(top.childNodes));
    var contact = el('p', 'contact', W.guardian + '：');
    contact.append(el('span', 'guardian-name', item.guardian_name));
    if (item.guardian_phone) {
      var tel = el('a', 'phone', item.guardian_phone);
      tel.href = 'tel:' + item.guardian_phone;
      contact.append(' ', tel);
    }
    var meta = el('p', 'muted', W.owner + '：' + item.owner_words + ' · ' + W.received_at + ' ' + item.received_clock + ' · ');
    var open = el('a', '', W.open_request);
    open.href = item.url;
    meta.append(open);
    var checks = el('ul', 'checks');
    (item.checks || []).forEach(function (check) { checks.append(el('li', '', check)); });
    var buttons = el('div', 'buttons');
    if (item.status === 'received') { buttons.append(action(item, 'ack', W.ack_one_tap, 'act-ack')); }
    if (!item.on_site) { buttons.append(action(item, 'arrived', W.arrived, 'act-arrived')); }
    var close = el('a', 'button act-handled', W.handled);
    close.href = item.close_url;
    buttons.append(close);
    li.append(row1, el('p', 'who big', item.class_name + ' · ' + item.student_name), el('p', 'snippet', item.text),
      contact, meta);
    if (checks.children.length) { li.append(checks); }
    li.append(buttons);
    return li;
  }

  var shown = '';
  function render(items) {
    var make = list.getAttribute('data-kind') === 'nurse' ? nurseCard : queueRow;
    list.replaceChildren.apply(list, items.map(make));
    var empty = document.getElementById('queue-empty');
    if (empty) { empty.hidden = items.length > 0; }
    var ids = items.map(function (i) { return i.id + i.status; }).join();
    if (shown && ids !== shown && state) { state.textContent = W.updated; }
    shown = ids;
    tick();
    // alerts.js (the queue's tab title, sound and notification) listens for this.
    document.dispatchEvent(new CustomEvent('relay:queue', { detail: { items: items, body: lastBody } }));
  }
  var lastBody = null;
  function refresh() {
    if (!list) { return; }
    fetch(list.getAttribute('data-feed'), { credentials: 'same-origin', headers: { Accept: 'application/json' } })
      .then(function (res) { return res.ok ? res.json() : null; })
      .then(function (body) { if (body) { lastBody = body; render(body.items); } })
      .catch(function () {});
  }

  if (list) {
    shown = Array.prototype.map.call(list.querySelectorAll('.item'), function (li) {
      var status = li.querySelector('.status');
      return li.getAttribute('data-id') + (status ? status.className.replace(/^.*s-/, '') : '');
    }).join();
  }
  tick();
  setInterval(tick, 1000);
  if (window.EventSource) {
    var source = new EventSource('/staff/events');
    source.addEventListener('ready', function () {
      document.documentElement.setAttribute('data-live', 'ready');  // tests wait for this
      if (state) { state.textContent = W.live; state.classList.remove('lost'); }
      refresh();  // catch up on anything missed while (re)connecting
    });
    source.addEventListener('change', function (event) {
      var data = JSON.parse(event.data);
      refresh();
      var request = document.getElementById('request');
      var changed = document.getElementById('changed');
      if (request && changed && data.id === request.getAttribute('data-id')) { changed.hidden = false; }
    });
    source.onerror = function () {
      document.documentElement.setAttribute('data-live', 'lost');
      if (state) { state.textContent = W.live_lost; state.classList.add('lost'); }
    };
  }
})();
