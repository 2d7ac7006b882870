/* Keyboard access to the DAG and to tabs (loaded after canal.js on every page).

   DAG: on the run page every drawn node is an SVG link (?node=...#graph), so it is a tab
   stop and works without JavaScript; on the pipeline page nodes get tabindex=0 here.
   Enter or Space opens the node's panel (canal.js's click handler does the loading);
   the arrow keys move to the nearest node in that direction, Home/End to the first/last.
   When a panel was opened from the keyboard, focus moves into it; Escape closes it and
   returns focus to the node.

   Tabs ([role=tablist], set up by canal.js): Left/Right (and Up/Down), Home and End move
   to and select another tab (automatic activation, the WAI-ARIA tabs pattern). */
(function () {
  "use strict";

  function $all(sel, root) { return Array.prototype.slice.call((root || document).querySelectorAll(sel)); }

  /* ---------- tabs ---------- */
  var TAB_KEYS = {ArrowRight: 1, ArrowDown: 1, ArrowLeft: -1, ArrowUp: -1};

  document.addEventListener("keydown", function (event) {
    var tab = event.target.closest && event.target.closest("[role=tab]");
    if (!tab || event.altKey || event.ctrlKey || event.metaKey) { return; }
    var list = tab.closest("[role=tablist]");
    if (!list) { return; }
    var tabs = $all("[role=tab]", list).filter(function (t) { return !t.hidden; });
    var at = tabs.indexOf(tab);
    var next = null;
    if (event.key in TAB_KEYS) {
      next = tabs[(at + TAB_KEYS[event.key] + tabs.length) % tabs.length];
    } else if (event.key === "Home") {
      next = tabs[0];
    } else if (event.key === "End") {
      next = tabs[tabs.length - 1];
    }
    if (!next) { return; }
    event.preventDefault();
    next.focus();
    next.click();
  });

  /* ---------- the DAG ---------- */
  function initDag() {
    var canvas = document.getElementById("dag-canvas");
    if (!canvas) { return; }
    var panel = document.getElementById("node-panel");
    var body = document.getElementById("node-panel-body");
    var openedByKey = false;
    var lastNode = null;

    function nodeOf(target) {
      return target && target.closest ? target.closest("g.node, g.cluster") : null;
    }

    /* A node's link, if it has one (dot also wraps a tooltip in an <a> without href). */
    var XLINK = "http://www.w3.org/1999/xlink";
    function linkOf(g) {
      return $all("a", g).filter(function (a) {
        return a.hasAttribute("href") || a.hasAttributeNS(XLINK, "href");
      })[0] || null;
    }

    /* The element that takes focus for a drawn node: its link, or the group itself. */
    function focusable(g) {
      return linkOf(g) || g;
    }

    /* Nodes drawn without a link (the pipeline page) become focusable buttons. */
    function enhance() {
      $all("g.node, g.cluster", canvas).forEach(function (g) {
        var link = linkOf(g);
        if (link) {  // its tooltip (name — state) is its accessible name, said explicitly
          var title = link.getAttributeNS(XLINK, "title") || link.getAttribute("title");
          if (title) { link.setAttribute("aria-label", title); }
          return;
        }
        if (!g.id) { return; }
        g.setAttribute("tabindex", "0");
        g.setAttribute("role", "button");
        var texts = $all("text", g).map(function (t) { return t.textContent; });
        g.setAttribute("aria-label", texts.join(" "));
      });
    }
    enhance();
    // The run page swaps in a redrawn SVG while the run is live.
    // A redraw replaces the focused node: focus its successor (same id), not the page.
    var focusedId = "";
    canvas.addEventListener("focusin", function (event) {
      var g = nodeOf(event.target);
      focusedId = g ? g.id : "";
    });
    new MutationObserver(function () {
      enhance();
      if (lastNode && !canvas.contains(lastNode) && lastNode.id) {
        var again = document.getElementById(lastNode.id);
        if (again) { lastNode = again; }
      }
      var active = document.activeElement;
      if (focusedId && (!active || active === document.body)) {
        var node = document.getElementById(focusedId);
        if (node && canvas.contains(node)) { focusable(node).focus(); }
      }
    }).observe(canvas, {childList: true});
    canvas.addEventListener("focusout", function (event) {
      // Leaving the DAG for elsewhere (not a redraw, which removes the node first).
      if (event.relatedTarget && !canvas.contains(event.relatedTarget)) { focusedId = ""; }
    });

    function nodes() {
      return $all("g.node, g.cluster", canvas).filter(function (g) { return g.id; });
    }

    /* Where a node is: its box's centre; a group's is its label (drawn at its top). */
    function position(g) {
      var box = g.classList.contains("cluster") && g.querySelector("text") ? g.querySelector("text") : g;
      var r = box.getBoundingClientRect();
      return {x: r.left + r.width / 2, y: r.top + r.height / 2};
    }

    function nearest(from, key) {
      var here = position(from);
      var best = null;
      var bestScore = Infinity;
      nodes().forEach(function (g) {
        if (g === from) { return; }
        var p = position(g);
        var dx = p.x - here.x;
        var dy = p.y - here.y;
        var along = {ArrowDown: dy, ArrowUp: -dy, ArrowRight: dx, ArrowLeft: -dx}[key];
        var across = key === "ArrowDown" || key === "ArrowUp" ? Math.abs(dx) : Math.abs(dy);
        if (along <= 1) { return; }
        var score = along + 2 * across;
        if (score < bestScore) { bestScore = score; best = g; }
      });
      return best;
    }

    canvas.addEventListener("keydown", function (event) {
      var g = nodeOf(event.target);
      if (!g || event.altKey || event.ctrlKey || event.metaKey) { return; }
      var target = null;
      if (event.key === "Enter" || event.key === " ") {
        event.preventDefault();
        openedByKey = true;
        lastNode = g;
        focusable(g).dispatchEvent(new MouseEvent("click", {bubbles: true, cancelable: true}));
        return;
      }
      if (event.key === "Home" || event.key === "End") {
        var all = nodes();
        target = event.key === "Home" ? all[0] : all[all.length - 1];
      } else if (/^Arrow/.test(event.key)) {
        target = nearest(g, event.key);
      }
      if (target) {
        event.preventDefault();
        focusable(target).focus();
      }
    });

    // canal.js opens the panel on click; with JavaScript the link must not also navigate.
    canvas.addEventListener("click", function (event) {
      var link = event.target.closest && event.target.closest("a");
      if (!link || event.ctrlKey || event.metaKey || event.shiftKey || event.button !== 0) { return; }
      if (nodeOf(link)) { event.preventDefault(); lastNode = nodeOf(link); }
    });

    if (!panel || !body) { return; }
    panel.setAttribute("tabindex", "-1");
    function focusPanel() {
      if (!openedByKey || panel.hidden) { return; }
      openedByKey = false;
      var target = body.querySelector("[role=tab][aria-selected=true]") || panel;
      target.focus();
    }
    // The run page fills the panel asynchronously; the pipeline page at once.
    new MutationObserver(focusPanel).observe(body, {childList: true});
    new MutationObserver(focusPanel).observe(panel, {attributes: true, attributeFilter: ["hidden"]});
    panel.addEventListener("keydown", function (event) {
      if (event.key !== "Escape") { return; }
      var close = panel.querySelector("[data-close-panel]");
      if (close) { close.click(); }
      if (lastNode) {
        var again = lastNode.id ? document.getElementById(lastNode.id) : lastNode;
        if (again) { focusable(again).focus(); }
      }
    });
  }

  document.addEventListener("DOMContentLoaded", initDag);
})();
