// The console's own script (the pages work without it): the screening form's skip logic.
// A question not asked is hidden and its inputs disabled, so the browser does not send it.
(function () {
  "use strict";
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
  document.addEventListener("DOMContentLoaded", function () {
    document.querySelectorAll("form[data-skip-logic]").forEach(function (form) {
      form.addEventListener("change", function () { skipLogic(form); });
      skipLogic(form);
    });
  });
})();
