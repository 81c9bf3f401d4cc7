// The console's own script (the pages work without it): the screening form's skip logic, and
// live lists that change only when their content does.
(function () {
  "use strict";
  // A question not asked is hidden and its inputs disabled, so the browser does not send it.
  function skipLogic(form) {
    var values = {};
    new FormData(form).forEach(function (value, name) { values[name] = value; });
    form.querySelectorAll("[data-shown-when]").forEach(function (fieldset) {
      var rules = JSON.parse(fieldset.getAttribute("data-shown-when"));
      var shown = rules.some(function (rule) { return values[rule[0]] === rule[1]; });
      fieldset.hidden = !shown;
      fieldset.querySelectorAll("input").forEach(function (input) {
        input.disabled = !shown;
        if (!shown) { input.checked = false; }
      });
    });
  }
  // A live list (data-live) is swapped only when its answer changed: an unchanged list keeps
  // the reader's place and a screen reader's quiet. (When it changes, htmx gives the focus back
  // to the element of the same id: each link in a live list has one.)
  var lastAnswer = new WeakMap();
  document.addEventListener("htmx:beforeSwap", function (event) {
    var target = event.detail.target;
    if (!target.hasAttribute("data-live") || !event.detail.shouldSwap) { return; }
    if (lastAnswer.get(target) === event.detail.serverResponse) {
      event.detail.shouldSwap = false;
    }
    lastAnswer.set(target, event.detail.serverResponse);
  });
  document.addEventListener("DOMContentLoaded", function () {
    document.querySelectorAll("form[data-skip-logic]").forEach(function (form) {
      form.addEventListener("change", function () { skipLogic(form); });
      skipLogic(form);
    });
  });
})();
