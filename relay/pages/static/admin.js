// The leave form: the stand-in follows the person chosen, defaulting to their configured backup (never themselves).
(function () {
  'use strict';
  var staff = document.getElementById('leave-staff');
  var backup = document.getElementById('leave-backup');
  if (!staff || !backup) { return; }
  function follow() {
    var chosen = staff.options[staff.selectedIndex];
    var wanted = chosen ? chosen.getAttribute('data-backup') || '' : '';
    Array.prototype.forEach.call(backup.options, function (option) {
      option.disabled = chosen ? option.value === chosen.value : false;  // nobody stands in for themselves
    });
    backup.value = wanted;
  }
  staff.addEventListener('change', follow);
  follow();
})();
