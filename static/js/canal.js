/* Canal's progressive enhancement. Every page works without it; with it you get tabs,
   the DAG node panel, bulk selection, and live updates of running runs (polling).

   Data is always written with textContent. Server-rendered fragments (the task panel,
   the task table, the redrawn SVG) are parsed with DOMParser, which never runs scripts,
   and imported node by node; the server escaped every user string in them. */
(function () {
  "use strict";

  var POLL_MS = 2000;
  var LOG_POLL_MS = 1000;
  var LOG_TAIL = 262144;

  function $(sel, root) { return (root || document).querySelector(sel); }
  function $all(sel, root) { return Array.prototype.slice.call((root || document).querySelectorAll(sel)); }

  function el(tag, text, cls) {
    var node = document.createElement(tag);
    if (text !== undefined && text !== null) { node.textContent = String(text); }
    if (cls) { node.className = cls; }
    return node;
  }

  function readJson(id) {
    var node = document.getElementById(id);
    if (!node) { return null; }
    try { return JSON.parse(node.textContent); } catch (e) { return null; }
  }

  function fetchText(url, fragment) {
    var headers = {"Accept": fragment ? "text/html" : "application/json"};
    if (fragment) { headers["X-Canal-Fragment"] = "1"; }
    return fetch(url, {headers: headers, credentials: "same-origin", cache: "no-store"}).then(function (r) {
      if (!r.ok) { throw new Error("HTTP " + r.status); }
      return r.text();
    });
  }

  /* Replace a container's children with a server-rendered HTML fragment (no script runs). */
  function swapFragment(container, html) {
    var doc = new DOMParser().parseFromString(html, "text/html");
    var nodes = Array.prototype.slice.call(doc.body.childNodes).map(function (n) {
      return document.importNode(n, true);
    });
    container.replaceChildren.apply(container, nodes);
  }

  /* ---------- tabs ---------- */
  function initTabs(root) {
    $all("[data-tabs]", root).forEach(function (bar) {
      var tabs = $all("[data-tab]", bar);
      function show(tab, push) {
        tabs.forEach(function (t) {
          t.classList.toggle("active", t === tab);
          t.setAttribute("aria-selected", t === tab ? "true" : "false");
          t.tabIndex = t === tab ? 0 : -1;  // one tab stop; arrow keys move within (dag.js)
        });
        $all("[data-tab-panel]").forEach(function (panel) {
          panel.hidden = panel.getAttribute("data-tab-panel") !== tab.getAttribute("data-tab");
        });
        if (push && history.replaceState) { history.replaceState(null, "", location.pathname + location.search + "#" + tab.getAttribute("data-tab")); }
        document.dispatchEvent(new CustomEvent("canal:tab", {detail: tab.getAttribute("data-tab")}));
      }
      bar.setAttribute("role", "tablist");
      tabs.forEach(function (tab) {
        var name = tab.getAttribute("data-tab");
        var panel = $("[data-tab-panel='" + name + "']");
        tab.setAttribute("role", "tab");
        tab.id = tab.id || "tab-" + name;
        if (panel) {
          panel.id = panel.id || "tabpanel-" + name;
          panel.setAttribute("role", "tabpanel");
          panel.setAttribute("aria-labelledby", tab.id);
          tab.setAttribute("aria-controls", panel.id);
        }
        tab.addEventListener("click", function () { show(tab, true); });
      });
      // Without JavaScript every panel is shown, one under the other, and the bar is
      // hidden (its buttons would do nothing); here the bar appears and one panel shows.
      var wanted = location.hash.replace("#", "");
      var initial = tabs.filter(function (t) { return t.getAttribute("data-tab") === wanted; })[0] ||
        tabs.filter(function (t) { return t.classList.contains("active"); })[0] || tabs[0];
      if (initial) { show(initial, false); }
      bar.hidden = false;
      bar._canalShow = function (name) {
        tabs.forEach(function (t) { if (t.getAttribute("data-tab") === name) { show(t, true); } });
      };
    });
  }

  function showTab(name) {
    var bar = $("[data-tabs]");
    if (bar && bar._canalShow) { bar._canalShow(name); }
  }

  /* ---------- forms: autosubmit selects, confirmations, run type ---------- */
  function initForms() {
    $all("select[data-autosubmit]").forEach(function (select) {
      select.addEventListener("change", function () {
        if (select.name === "pipeline") {
          var version = $("#pick-version");
          if (version) { version.disabled = true; }
        }
        select.form.submit();
      });
    });
    document.addEventListener("submit", function (event) {
      var form = event.target;
      var submitter = event.submitter;
      var message = (submitter && submitter.getAttribute("data-confirm")) || form.getAttribute("data-confirm");
      if (message && !window.confirm(message)) { event.preventDefault(); }
    });
    $all("input[name=run_type]").forEach(function (radio) {
      radio.addEventListener("change", function () {
        $all("[data-show-when-recurring]").forEach(function (box) {
          box.hidden = $("input[name=run_type]:checked").value !== "recurring";
        });
      });
    });
  }

  /* ---------- bulk selection on run tables ---------- */
  function initBulk() {
    $all("form[data-bulk]").forEach(function (form) {
      var boxes = $all("input[name=run], input[data-bulk-item]", form);
      var all = $("[data-select-all]", form);
      var count = $("[data-selected-count]", form);
      function update() {
        var n = boxes.filter(function (b) { return b.checked; }).length;
        if (count) { count.textContent = n + " selected"; }
        $all("button[data-needs]", form).forEach(function (button) {
          var needs = parseInt(button.getAttribute("data-needs"), 10);
          var max = parseInt(button.getAttribute("data-max") || "0", 10);
          button.disabled = n < needs || (max > 0 && n > max);
        });
        if (all) { all.checked = n > 0 && n === boxes.length; all.indeterminate = n > 0 && n < boxes.length; }
      }
      boxes.forEach(function (b) { b.addEventListener("change", update); });
      if (all) {
        all.addEventListener("change", function () {
          boxes.forEach(function (b) { b.checked = all.checked; });
          update();
        });
      }
      update();
    });
  }

  /* ---------- static DAG (pipeline page): node details from JSON ---------- */
  function renderValue(value) {
    if (value === null || value === undefined) { return el("span", "—", "muted"); }
    if (typeof value === "string") {
      return value.indexOf("\n") >= 0 ? el("pre", value, "code small") : el("span", value);
    }
    if (Array.isArray(value) && value.every(function (v) { return typeof v === "string"; })) {
      var list = el("ul", null, "detail-lines");
      value.forEach(function (v) { list.appendChild(el("li", v)); });
      return list;
    }
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

  function initStaticDag() {
    var canvas = document.getElementById("dag-canvas");
    var nodes = readJson("dag-nodes");
    var ids = readJson("dag-element-ids");
    if (!canvas || !nodes || !ids || $("#run-page")) { return; }
    var panel = document.getElementById("node-panel");
    var title = document.getElementById("node-panel-title");
    var body = document.getElementById("node-panel-body");
    canvas.addEventListener("click", function (event) {
      var target = event.target.closest("g.node, g.cluster");
      if (!target || !ids[target.id]) { return; }
      var key = ids[target.id];
      $all(".selected", canvas).forEach(function (n) { n.classList.remove("selected"); });
      target.classList.add("selected");
      var info = nodes[key] || {label: key, detail: {}};
      title.textContent = info.label;
      renderDetail(body, info);
      panel.hidden = false;
    });
    var close = panel && $("[data-close-panel]", panel);
    if (close) { close.addEventListener("click", function () { panel.hidden = true; }); }
  }

  /* ---------- log viewer ---------- */
  var logGeneration = 0;

  function startLogs(root) {
    logGeneration += 1;
    var generation = logGeneration;
    $all("pre[data-log-url]", root).forEach(function (pre) {
      var url = pre.getAttribute("data-log-url");
      var status = $("[data-log-status]", root);
      var select = $("[data-log-attempt]", root);
      var download = $("[data-log-download]", root);
      var attempt = pre.getAttribute("data-log-attempt-current") || "";
      var offset = -LOG_TAIL;
      var first = true;
      var timer = null;

      function setStatus(text) { if (status) { status.textContent = text; } }

      function tick() {
        if (generation !== logGeneration) { return; }
        var query = "?offset=" + encodeURIComponent(offset) + (attempt ? "&attempt=" + encodeURIComponent(attempt) : "");
        fetchText(url + query, false).then(function (text) {
          if (generation !== logGeneration) { return; }
          var data = JSON.parse(text);
          if (first) {
            pre.textContent = "";
            if (data.offset > 0) { pre.appendChild(el("span", "… (earlier output: download the log)\n", "muted")); }
            first = false;
          }
          if (data.error) {
            pre.textContent = data.error;
          } else if (data.text) {
            var nearBottom = pre.scrollTop + pre.clientHeight >= pre.scrollHeight - 24;
            pre.appendChild(document.createTextNode(data.text));
            if (nearBottom) { pre.scrollTop = pre.scrollHeight; }
          }
          if (typeof data.next_offset === "number") { offset = data.next_offset; }
          if (!data.at_end) { timer = setTimeout(tick, 50); return; }
          if (data.active) {
            setStatus("tailing…");
            timer = setTimeout(tick, LOG_POLL_MS);
          } else {
            setStatus(pre.textContent ? "" : "");
            if (!pre.textContent) { pre.textContent = "(the log is empty)"; pre.classList.add("muted"); }
            pre.setAttribute("data-log-complete", "1");
          }
        }).catch(function () {
          if (generation !== logGeneration) { return; }
          setStatus("could not load the log; retrying…");
          timer = setTimeout(tick, LOG_POLL_MS * 3);
        });
      }

      if (select) {
        select.addEventListener("change", function () {
          attempt = select.value;
          offset = -LOG_TAIL;
          first = true;
          pre.removeAttribute("data-log-complete");
          pre.classList.remove("muted");
          if (download) { download.href = download.href.replace(/attempt=\d*/, "attempt=" + encodeURIComponent(attempt)); }
          if (timer) { clearTimeout(timer); }
          tick();
        });
      }
      tick();
    });
  }

  /* ---------- panel tabs (Input/Output, Visualizations, Details, Logs) ---------- */
  var currentPtab = "io";

  function initPanelTabs(root) {
    $all("[data-ptabs]", root).forEach(function (bar) {
      var buttons = $all("[data-ptab]", bar);
      var names = buttons.map(function (b) { return b.getAttribute("data-ptab"); });
      function show(name) {
        buttons.forEach(function (b) {
          var on = b.getAttribute("data-ptab") === name;
          b.classList.toggle("active", on);
          b.setAttribute("aria-selected", on ? "true" : "false");
          b.tabIndex = on ? 0 : -1;
        });
        $all("[data-ptab-panel]", root).forEach(function (panel) {
          panel.hidden = panel.getAttribute("data-ptab-panel") !== name;
        });
      }
      bar.setAttribute("role", "tablist");
      bar.setAttribute("aria-label", "Task details");
      buttons.forEach(function (b) {
        var name = b.getAttribute("data-ptab");
        var section = $("[data-ptab-panel='" + name + "']", root);
        b.setAttribute("role", "tab");
        b.id = "ptab-" + name;
        if (section) {
          section.id = "ptab-panel-" + name;
          section.setAttribute("role", "tabpanel");
          section.setAttribute("aria-labelledby", b.id);
          b.setAttribute("aria-controls", section.id);
        }
        b.addEventListener("click", function () { currentPtab = b.getAttribute("data-ptab"); show(currentPtab); });
      });
      bar.hidden = false;
      var initial = bar.getAttribute("data-ptab-initial");  // e.g. a failed step opens on its log
      show(initial && names.indexOf(initial) >= 0 ? initial : (names.indexOf(currentPtab) >= 0 ? currentPtab : names[0]));
    });
  }

  /* ---------- run page: node panel, live updates ---------- */
  function initRunPage() {
    var page = document.getElementById("run-page");
    if (!page) { return; }
    var canvas = document.getElementById("dag-canvas");
    var panel = document.getElementById("node-panel");
    var body = document.getElementById("node-panel-body");
    var ids = readJson("dag-element-ids") || {};
    var statusUrl = page.getAttribute("data-status-url");
    var graphUrl = page.getAttribute("data-graph-url");
    var panelUrl = page.getAttribute("data-panel-url");
    var tasksUrl = page.getAttribute("data-tasks-url");
    var active = page.getAttribute("data-active") === "1";
    var signature = canvas ? canvas.getAttribute("data-signature") : "";
    var panelQuery = "";
    var panelNode = page.getAttribute("data-selected-node") || "";
    var nodeStates = {};
    var lastStatus = null;

    function elementFor(key) {
      var found = null;
      Object.keys(ids).forEach(function (id) { if (ids[id] === key) { found = id; } });
      return found ? document.getElementById(found) : null;
    }

    /* Tag each drawn node with its state (class state-X, data-state), whatever dot emits. */
    function decorate(states) {
      if (!canvas) { return; }
      Object.keys(ids).forEach(function (id) {
        var g = document.getElementById(id);
        if (!g) { return; }
        var state = states[ids[id]] || "none";
        Array.prototype.slice.call(g.classList).forEach(function (c) {
          if (c.indexOf("state-") === 0) { g.classList.remove(c); }
        });
        g.classList.add("state-" + state);
        g.setAttribute("data-state", state);
        g.setAttribute("data-node", ids[id]);
      });
    }
    decorate(readJson("dag-states") || {});

    function markSelected() {
      if (!canvas) { return; }
      $all(".selected", canvas).forEach(function (n) { n.classList.remove("selected"); });
      var node = panelNode ? elementFor(panelNode) : null;
      if (node) { node.classList.add("selected"); }
    }

    function loadPanel(query, keepScroll) {
      panelQuery = query;
      var params = new URLSearchParams(query);
      if (params.get("node")) { panelNode = params.get("node"); }
      markSelected();
      var scroll = panel.scrollTop;
      return fetchText(panelUrl + "?" + query, true).then(function (html) {
        swapFragment(body, html);
        panel.hidden = false;
        if (keepScroll) { panel.scrollTop = scroll; }
        var inner = $(".panel", body);
        if (inner && inner.getAttribute("data-node-id")) { panelNode = inner.getAttribute("data-node-id"); markSelected(); }
        initPanelTabs(body);
        startLogs(body);
        if (history.replaceState) { history.replaceState(null, "", location.pathname + "?" + query + "#graph"); }
      }).catch(function (err) {
        body.textContent = "";
        body.appendChild(el("p", "Could not load this task: " + err.message, "form-error"));
        panel.hidden = false;
      });
    }

    if (canvas) {
      canvas.addEventListener("click", function (event) {
        var target = event.target.closest("g.node, g.cluster");
        if (!target || !ids[target.id]) { return; }
        panelNode = ids[target.id];
        loadPanel("node=" + encodeURIComponent(panelNode));
      });
    }
    body.addEventListener("click", function (event) {
      var link = event.target.closest("a[data-panel-query]");
      if (!link) { return; }
      event.preventDefault();
      loadPanel(link.getAttribute("data-panel-query"));
    });
    document.addEventListener("click", function (event) {
      var link = event.target.closest("a[data-open-task]");
      if (!link) { return; }
      event.preventDefault();
      showTab("graph");
      loadPanel("task=" + encodeURIComponent(link.getAttribute("data-open-task")));
    });
    var close = $("[data-close-panel]", panel);
    if (close) {
      close.addEventListener("click", function () {
        panel.hidden = true;
        panelQuery = "";
        panelNode = "";
        logGeneration += 1;
        markSelected();
        if (history.replaceState) { history.replaceState(null, "", location.pathname + "#graph"); }
      });
    }
    // A panel rendered by the server (?node= or ?task=) gets its log viewer too.
    if (!panel.hidden) {
      var params = new URLSearchParams(location.search);
      panelQuery = params.get("task") ? "task=" + encodeURIComponent(params.get("task")) : (params.get("node") ? "node=" + encodeURIComponent(params.get("node")) : "");
      markSelected();
      initPanelTabs(body);
      startLogs(body);
    }

    function renderState(state) {
      var host = document.getElementById("run-state");
      if (!host) { return; }
      var icons = {PENDING: "○", RUNNING: "◔", SUCCEEDED: "✓", SKIPPED: "↷", FAILED: "✗", CANCELING: "◌", CANCELED: "⊘", PAUSED: "⏸"};
      var labels = {PENDING: "Pending", RUNNING: "Running", SUCCEEDED: "Succeeded", SKIPPED: "Skipped", FAILED: "Failed", CANCELING: "Canceling", CANCELED: "Canceled", PAUSED: "Paused"};
      var badge = el("span", null, "status state-" + state);
      badge.setAttribute("data-state", state);
      badge.appendChild(el("span", icons[state] || "?", "ico"));
      badge.appendChild(document.createTextNode(labels[state] || state));
      host.replaceChildren(badge);
    }

    function redraw() {
      return fetchText(graphUrl, false).then(function (text) {
        var data = JSON.parse(text);
        var doc = new DOMParser().parseFromString(data.svg, "image/svg+xml");
        if (doc.getElementsByTagName("parsererror").length) { return; }
        var svg = document.importNode(doc.documentElement, true);
        var old = canvas.querySelector("svg");
        if (old) { canvas.replaceChild(svg, old); } else { canvas.replaceChildren(svg); }
        ids = data.element_ids || {};
        decorate(data.states || {});
        signature = data.signature;
        canvas.setAttribute("data-signature", signature);
        markSelected();
      });
    }

    function refreshTasks() {
      var host = document.getElementById("task-table");
      if (!host) { return; }
      fetchText(tasksUrl + location.search, true).then(function (html) { swapFragment(host, html); }).catch(function () {});
    }

    function openTask() {
      var inner = panel.hidden ? null : $(".panel", body);
      return inner ? inner.getAttribute("data-task-id") : null;
    }

    function panelNeedsRefresh(status) {
      if (panel.hidden || !panelQuery) { return false; }
      var inner = $(".panel", body);
      if (!inner) { return false; }
      var taskState = inner.getAttribute("data-task-state");
      var node = inner.getAttribute("data-node-id");
      if (status.task_state && taskState && status.task_state !== taskState) { return true; }
      if (node && (status.nodes[node] || "") !== (nodeStates[node] || "")) { return true; }
      if (node && (status.badges[node] || "") !== ((lastStatus && lastStatus.badges[node]) || "")) { return true; }
      if (!node && taskState && status.terminal) { return true; }
      return false;
    }

    function poll() {
      var task = openTask();
      fetchText(statusUrl + (task ? "?task=" + encodeURIComponent(task) : ""), false).then(function (text) {
        var status = JSON.parse(text);
        renderState(status.state);
        var duration = document.getElementById("run-duration");
        if (duration) { duration.textContent = status.duration; }
        var started = document.getElementById("run-started");
        if (started) { started.textContent = status.started; }
        var error = document.getElementById("run-error");
        if (error) { error.textContent = status.error || ""; error.hidden = !status.error; }
        document.dispatchEvent(new CustomEvent("canal:status", {detail: status}));
        var work = [];
        if (canvas && status.signature !== signature) { work.push(redraw()); refreshTasks(); }
        if (panelNeedsRefresh(status)) { work.push(loadPanel(panelQuery, true)); }
        nodeStates = status.nodes;
        lastStatus = status;
        Promise.all(work).catch(function () {}).then(function () {
          if (status.terminal) {
            active = false;
            var live = document.getElementById("live-indicator");
            if (live) { live.hidden = true; }
            var terminate = document.getElementById("btn-terminate");
            if (terminate) { terminate.closest("form").hidden = true; }
            $all("form[data-when=finished]").forEach(function (f) { f.hidden = false; });
            $all("form[data-when=retryable]").forEach(function (f) {
              f.hidden = status.state !== "FAILED" && status.state !== "CANCELED";
            });
            page.setAttribute("data-finished", "1");
            return;
          }
          setTimeout(poll, POLL_MS);
        });
      }).catch(function () {
        setTimeout(poll, POLL_MS * 3);
      });
    }
    if (active) { setTimeout(poll, POLL_MS); } else { page.setAttribute("data-finished", "1"); }
  }

  /* ---------- DAG zoom: fit the drawing to the canvas, or show it at 100% ---------- */
  function initZoom() {
    var bar = $("[data-zoom]");
    var canvas = document.getElementById("dag-canvas");
    if (!bar || !canvas) { return; }
    bar.hidden = false;
    $all("[data-zoom-mode]", bar).forEach(function (button) {
      button.addEventListener("click", function () {
        var actual = button.getAttribute("data-zoom-mode") === "actual";
        canvas.classList.toggle("actual-size", actual);
        $all("[data-zoom-mode]", bar).forEach(function (b) { b.setAttribute("aria-pressed", b === button ? "true" : "false"); });
      });
    });
  }

  document.addEventListener("DOMContentLoaded", function () {
    initZoom();
    initTabs(document);
    initForms();
    initBulk();
    initStaticDag();
    initRunPage();
  });
  window.Canal = {el: el, renderDetail: renderDetail, swapFragment: swapFragment};
})();
