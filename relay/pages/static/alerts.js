// The staff queue's emergency alerts: the tab title counts unacknowledged emergencies ("(2) 紧急待确认 · Relay"),
// and a new P0 rings and shows a browser notification. The browser's permission is asked once, on a click
// (browsers refuse to ask otherwise, and a sound needs a gesture before it may play).
(function () {
  'use strict';
  var wordsEl = document.getElementById('words');
  var W = wordsEl ? JSON.parse(wordsEl.textContent) : {};
  var list = document.getElementById('queue');
  var button = document.getElementById('alerts-on');
  var state = document.getElementById('alerts-state');
  if (!list) { return; }
  var ASKED = 'relay-alerts-asked';
  var audio = null;

  function title(waiting) {
    document.title = (waiting > 0 ? '(' + waiting + ') ' + W.waiting_title : list.getAttribute('data-title')) +
      ' · ' + W.app;
  }

  function sound() {
    var Context = window.AudioContext || window.webkitAudioContext;
    if (!Context) { return null; }
    if (!audio) { audio = new Context(); }
    if (audio.state === 'suspended') { audio.resume().catch(function () {}); }
    return audio;
  }
  function ring() {
    var ctx = sound();
    document.documentElement.setAttribute('data-rang', String(Number(document.documentElement.getAttribute('data-rang') || 0) + 1));
    if (!ctx) { return; }
    // Two short tones, loud enough to hear across an office, short enough not to alarm a classroom.
    [0, 0.35].forEach(function (start) {
      var osc = ctx.createOscillator(), gain = ctx.createGain();
      osc.frequency.value = 880;
      gain.gain.value = 0.2;
      osc.connect(gain); gain.connect(ctx.destination);
      osc.start(ctx.currentTime + start); osc.stop(ctx.currentTime + start + 0.2);
    });
  }
  function notify(item) {
    if (!('Notification' in window) || Notification.permission !== 'granted') { return; }
    try {
      var note = new Notification(W.new_p0 + '：' + item.class_name + ' ' + item.category_words,
        { body: item.timer_words, tag: 'relay-' + item.id });
      note.onclick = function () { window.focus(); window.location.href = item.url; };
    } catch (e) { /* some browsers allow notifications only from a service worker: the sound still rang */ }
  }

  function showState() {
    if (!state) { return; }
    var perm = 'Notification' in window ? Notification.permission : 'denied';
    state.textContent = perm === 'granted' ? W.alerts_ready : (perm === 'denied' && localStorage.getItem(ASKED) ? W.alerts_sound_only : '');
  }
  if (button && 'Notification' in window && Notification.permission === 'default' && !localStorage.getItem(ASKED)) {
    button.hidden = false;
    button.addEventListener('click', function () {
      localStorage.setItem(ASKED, '1');
      sound();  // the click is the gesture that lets the page ring later
      button.hidden = true;
      Promise.resolve(Notification.requestPermission()).then(showState, showState);
    });
  }
  showState();
  // Any first tap or key on the page also lets it ring (a browser keeps audio mute until a gesture).
  ['pointerdown', 'keydown'].forEach(function (name) {
    document.addEventListener(name, function () { sound(); }, { once: true });
  });

  // The emergencies already on the page when it opened are not news; a P0 that appears later is.
  var seen = {};
  list.querySelectorAll('.item.P0').forEach(function (li) { seen[li.getAttribute('data-id')] = true; });
  title(Number(list.getAttribute('data-waiting') || 0));

  document.addEventListener('relay:queue', function (event) {
    var detail = event.detail || {};
    if (detail.body && typeof detail.body.emergencies_waiting === 'number') { title(detail.body.emergencies_waiting); }
    (detail.items || []).forEach(function (item) {
      if (item.urgency !== 'P0' || seen[item.id]) { return; }
      seen[item.id] = true;
      if (item.status === 'received') { ring(); notify(item); }
    });
  });
})();
