/* Recurring-run trigger fields: show cron or interval inputs, and refresh the
   "next 5 fire times" preview from the schedules:preview endpoint as fields change.
   Values are set with textContent only. */
(function () {
  "use strict";
  var FIELDS = ["trigger_type", "cron", "interval_value", "interval_unit", "start_time", "end_time",
                "timezone", "max_concurrency"];

  function init(box) {
    var prefix = box.getAttribute("data-prefix");
    var p = prefix ? prefix + "-" : "";
    var url = box.getAttribute("data-preview-url");
    var list = box.querySelector("[data-trigger-preview]");
    var error = box.querySelector("[data-trigger-preview-error]");
    var timer = null;
    var seq = 0;

    function inputs(name) { return box.querySelectorAll('[name="' + p + name + '"]'); }
    function value(name) {
      var els = inputs(name);
      for (var i = 0; i < els.length; i++) {
        var el = els[i];
        if (el.type === "radio" || el.type === "checkbox") { if (el.checked) { return el.value; } }
        else { return el.value; }
      }
      return "";
    }
    function toggle() {
      var kind = value("trigger_type");
      box.querySelectorAll("[data-trigger-show]").forEach(function (el) {
        el.hidden = el.getAttribute("data-trigger-show") !== kind;
      });
    }
    function render(data) {
      list.textContent = "";
      (data.times || []).forEach(function (t) {
        var li = document.createElement("li");
        var time = document.createElement("time");
        time.dateTime = t.iso;
        time.textContent = t.text;
        li.appendChild(time);
        list.appendChild(li);
      });
      if (!data.times || !data.times.length) {
        var none = document.createElement("li");
        none.className = "muted";
        none.textContent = "none";
        list.appendChild(none);
      }
      error.hidden = !data.error;
      error.textContent = data.error || "";
    }
    function load() {
      var params = new URLSearchParams();
      FIELDS.forEach(function (name) { params.set(name, value(name)); });
      var mine = ++seq;
      fetch(url + "?" + params.toString(), { credentials: "same-origin", headers: { Accept: "application/json" } })
        .then(function (r) { return r.json(); })
        .then(function (data) { if (mine === seq) { render(data); } })
        .catch(function () { /* keep the last preview */ });
    }
    function changed() {
      toggle();
      clearTimeout(timer);
      timer = setTimeout(load, 250);
    }
    FIELDS.forEach(function (name) {
      inputs(name).forEach(function (el) {
        el.addEventListener("change", changed);
        el.addEventListener("input", changed);
      });
    });
    toggle();
  }

  function start() { document.querySelectorAll("[data-trigger-fields]").forEach(init); }
  if (document.readyState === "loading") { document.addEventListener("DOMContentLoaded", start); } else { start(); }
})();
