// A request's page: a canned reply fills the reply box (the staff member can still edit it).
(function () {
  'use strict';
  var canned = document.getElementById('canned');
  var box = document.getElementById('reply-text');
  if (canned && box) {
    canned.addEventListener('change', function () {
      if (canned.value) { box.value = canned.value; box.focus(); }
    });
  }
})();
