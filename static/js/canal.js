/* Canal's progressive enhancement: tabs, the DAG node panel, and live refresh.
   Every value shown is set with textContent, never innerHTML, so user strings stay inert. */
(function () {
  "use strict";

  function initTabs(root) {
    root.querySelectorAll("[data-tabs]").forEach(function (bar) {
      var tabs = bar.querySelectorAll("[data-tab]");
      tabs.forEach(function (tab) {
        tab.addEventListener("click", function () {
          tabs.forEach(function (t) { t.classList.toggle("active", t === tab); });
          document.querySelectorAll("[data-tab-panel]").forEach(function (panel) {
            panel.hidden = panel.getAttribute("data-tab-panel") !== tab.getAttribute("data-tab");
          });
          if (history.replaceState) { history.replaceState(null, "", "#" + tab.getAttribute("data-tab")); }
        });
      });
      var wanted = location.hash.replace("#", "");
      tabs.forEach(function (t) { if (t.getAttribute("data-tab") === wanted) { t.click(); } });
    });
  }

  function el(tag, text, cls) {
    var node = document.createElement(tag);
    if (text !== undefined && text !== null) { node.textContent = String(text); }
    if (cls) { node.className = cls; }
    return node;
  }

  function renderValue(value) {
    if (value === null || value === undefined) { return el("span", "—", "muted"); }
    if (typeof value === "string") { return el("span", value); }
    return el("pre", JSON.stringify(value, null, 2), "code small");
  }

  function renderDetail(body, info) {
    body.textContent = "";
    var dl = el("dl", null, "kv");
    function row(key, value) {
      if (value === undefined || value === null || value === "" ||
          (Array.isArray(value) && value.length === 0) ||
          (typeof value === "object" && !Array.isArray(value) && Object.keys(value).length === 0)) { return; }
      dl.appendChild(el("dt", key));
      var dd = el("dd");
      dd.appendChild(renderValue(value));
      dl.appendChild(dd);
    }
    row("Kind", info.kind);
    row("Component", info.component);
    var detail = info.detail || {};
    Object.keys(detail).forEach(function (key) { row(key, detail[key]); });
    body.appendChild(dl);
  }

  function initDag(root) {
    var canvas = root.getElementById ? root.getElementById("dag-canvas") : null;
    var nodesScript = document.getElementById("dag-nodes");
    var idsScript = document.getElementById("dag-element-ids");
    if (!canvas || !nodesScript || !idsScript) { return; }
    var nodes = JSON.parse(nodesScript.textContent);
    var ids = JSON.parse(idsScript.textContent);
    var panel = document.getElementById("node-panel");
    var title = document.getElementById("node-panel-title");
    var body = document.getElementById("node-panel-body");
    canvas.addEventListener("click", function (event) {
      var target = event.target.closest("g.node, g.cluster");
      if (!target || !ids[target.id]) { return; }
      var key = ids[target.id];
      canvas.querySelectorAll(".selected").forEach(function (n) { n.classList.remove("selected"); });
      target.classList.add("selected");
      var info = nodes[key] || {label: key, detail: {}};
      title.textContent = info.label;
      renderDetail(body, info);
      panel.hidden = false;
      document.dispatchEvent(new CustomEvent("canal:node-selected", {detail: {key: key, info: info}}));
    });
    panel.querySelector("[data-close-panel]").addEventListener("click", function () { panel.hidden = true; });
  }

  document.addEventListener("DOMContentLoaded", function () {
    initTabs(document);
    initDag(document);
  });
  window.Canal = {el: el, renderDetail: renderDetail, initDag: initDag};
})();
