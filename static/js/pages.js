/* KFP's hash routes. kfp.Client (and KFP's own UI) print links such as
   http://host/#/runs/details/<id>: KFP's frontend routes on the URL fragment. A fragment
   never reaches the server, so Canal cannot redirect it there: this script maps it to
   Canal's page and replaces the location. With JavaScript off the link opens the page
   the server chose for "/" (the runs list, or the login page and then the runs list).

   It is loaded on every page (from the head, so it acts before the page draws): "/"
   redirects to the runs list, and a signed-out visitor is redirected to the login page,
   and browsers keep the fragment across both redirects. On the login page the mapped
   page becomes where the login form goes next; elsewhere it is opened at once.
   Only fragments starting with "#/" are KFP routes (Canal's own anchors never do). */
(function () {
  "use strict";

  var ID = /^[A-Za-z0-9][A-Za-z0-9._:-]{0,199}$/;  // never "..", never a path or a host

  function seg(value) { return ID.test(value) ? encodeURIComponent(value) : null; }

  function compare(query) {
    var params = new URLSearchParams(query);
    var ids = (params.get("runlist") || "").split(",").map(function (v) { return v.trim(); });
    var out = new URLSearchParams();
    ids.forEach(function (id) { if (ID.test(id)) { out.append("run", id); } });
    return "/runs/compare/" + (out.toString() ? "?" + out.toString() : "");
  }

  // KFP frontend route (frontend/src/components/Router.tsx) -> Canal page.
  function canalPath(hash) {
    if (!hash || hash.indexOf("#/") !== 0) { return null; }
    var route = hash.slice(1);
    var q = route.indexOf("?");
    var query = q >= 0 ? route.slice(q + 1) : "";
    var parts = (q >= 0 ? route.slice(0, q) : route).split("/").filter(Boolean);
    var a = parts[0], b = parts[1], id = parts[2] !== undefined ? seg(parts[2]) : null;
    var lists = {
      runs: "/runs/",
      pipelines: "/pipelines/",
      experiments: "/experiments/",
      recurringruns: "/recurring-runs/",
      executions: "/executions/",
      artifacts: "/artifacts/"
    };
    if (parts.length === 1) {
      if (a === "compare") { return compare(query); }
      return Object.prototype.hasOwnProperty.call(lists, a) ? lists[a] : null;
    }
    if (a === "archive" && parts.length === 2) {
      if (b === "runs") { return "/runs/?view=archived"; }
      if (b === "experiments") { return "/experiments/?view=archived"; }
      return null;
    }
    if (b !== "details" || !id) {
      if (a === "runs" && b === "new") { return "/runs/new/"; }
      return null;
    }
    if (a === "runs" && parts.length === 3) { return "/runs/" + id + "/"; }
    if (a === "experiments" && parts.length === 3) { return "/experiments/" + id + "/"; }
    if (a === "recurringrun" && parts.length === 3) { return "/recurring-runs/" + id + "/"; }
    if (a === "executions" && parts.length === 3) { return "/executions/" + id + "/"; }
    if (a === "artifacts" && parts.length === 3) { return "/artifacts/" + id + "/"; }
    if (a === "pipelines") {
      if (parts.length === 3) { return "/pipelines/" + id + "/"; }
      if (parts.length === 5 && parts[3] === "version" && seg(parts[4])) {
        return "/pipelines/" + id + "/?version=" + seg(parts[4]);
      }
    }
    return null;
  }

  var target = canalPath(window.location.hash);
  if (!target) { return; }
  if (window.location.pathname === "/login/") {
    // Signed out: sign in first, then go to the mapped page (the form's "next").
    var setNext = function () {
      var next = document.querySelector('form input[name="next"]');
      if (next) { next.value = target; }
    };
    window.history.replaceState(null, "", "/login/?next=" + encodeURIComponent(target));
    if (document.readyState === "loading") {
      document.addEventListener("DOMContentLoaded", setNext);
    } else {
      setNext();
    }
    return;
  }
  window.location.replace(target);
})();
