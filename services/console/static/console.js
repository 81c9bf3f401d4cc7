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
  // A live list (data-live) is swapped only when its answer differs from the last one. When it
  // is, htmx gives the focus back to the element of the same id (each link in a live list has
  // one), so a refresh never takes the keyboard's place away.
  var lastAnswer = new WeakMap();
  document.addEventListener("htmx:beforeSwap", function (event) {
    var target = event.detail.target;
    if (!target.hasAttribute("data-live") || !event.detail.shouldSwap) { return; }
    if (lastAnswer.get(target) === event.detail.serverResponse) {
      event.detail.shouldSwap = false;
    }
    lastAnswer.set(target, event.detail.serverResponse);
  });
  // The list itself is not a live region (a screen reader would read all of it at every
  // refresh, its times change each time): its status line (data-status, role=status) takes the
  // list's summary (data-summary), and only a summary that changed is written, and so spoken.
  document.addEventListener("htmx:afterSwap", function (event) {
    var target = event.detail.target;
    var status = document.getElementById(target.getAttribute("data-status") || "");
    var summary = target.querySelector("[data-summary]");
    if (!status || !summary) { return; }
    var text = summary.getAttribute("data-summary");
    if (status.textContent !== text) { status.textContent = text; }
  });
  // The reader's time zone, for the dates the pages show (without the script: UTC). It is
  // read by the next page (the first one after it changed still shows the one before).
  try {
    var zone = Intl.DateTimeFormat().resolvedOptions().timeZone;
    var cookie = "triage_console_tz=" + encodeURIComponent(zone || "UTC");
    if (zone && document.cookie.split("; ").indexOf(cookie) < 0) {
      document.cookie = cookie + "; path=/; max-age=31536000; samesite=strict" +
        (location.protocol === "https:" ? "; secure" : "");
    }
  } catch (ignored) { /* an old browser: UTC */ }
  document.addEventListener("DOMContentLoaded", function () {
    document.querySelectorAll("form[data-skip-logic]").forEach(function (form) {
      form.addEventListener("change", function () { skipLogic(form); });
      skipLogic(form);
    });
  });
})();
