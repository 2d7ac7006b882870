/* Failure first: a failed step explains itself.

   Enhances what canal.js renders on the run page (the page shows the same facts without it):
   - a finished log gets its error and warning lines highlighted (classes, never inline style);
   - a failed step's log is scrolled to its error line (the one its banner quotes), any other
     finished log to its end;
   - the log toolbar gets a search box: matches are highlighted, Enter / ↓ goes to the next,
     Shift+Enter / ↑ to the previous;
   - when a run fails while the page is open, the run banner is redrawn naming the failed step,
     with a link that opens its panel.
   Text is only ever written with textContent / text nodes. */
(function () {
  "use strict";

  var ERROR_RE = new RegExp([
    "Traceback \\(most recent call last\\)",
    "^\\s*(?:[A-Za-z_]\\w*\\.)*[A-Za-z_]\\w*(?:Error|Exception|Interrupt|Exit)(?::|\\s*$)",
    "(?:^|[\\s\\[|(])(?:ERROR|FATAL|CRITICAL|panic)(?:[\\s:\\]|)]|$)",
    "(?:^|[\\s\\[])(?:[Ee]rror|[Ff]atal):\\s",
    "command not found",
    "^(?:\\S*/)?(?:ba|da|z)?sh: .*(?:not found|No such file or directory|Permission denied)",
    "^\\s*Killed\\s*$",
    "Segmentation fault|core dumped|[Oo]ut of memory|OOMKilled|Cannot allocate memory|bad_alloc|npm ERR!"
  ].join("|"));
  var WARN_RE = /(?:^|[\s[|(])(?:WARNING|WARN)(?:[\s:\]|)]|$)|(?:^|[\s[])[Ww]arning:\s|\b\w+Warning\b/;
  var ANSI_RE = /\x1b\[[0-9;?]*[ -/]*[@-~]/g;
  var MAX_MATCHES = 5000;
  var SEARCH_DELAY_MS = 150;

  function text(tag, value, cls) {
    var node = document.createElement(tag);
    if (value !== undefined && value !== null) { node.textContent = String(value); }
    if (cls) { node.className = cls; }
    return node;
  }

  function visible(node) { return !!(node && node.offsetParent); }

  /* The log line the banner quotes: the last line containing it (its start, if it was cut). */
  function failureIndex(lines, failure) {
    var needle = (failure || "").replace(/…$/, "").trim().slice(0, 200);
    if (!needle) { return -1; }
    for (var i = lines.length - 1; i >= 0; i -= 1) {
      if (lines[i].replace(ANSI_RE, "").indexOf(needle) >= 0) { return i; }
    }
    return -1;
  }

  function appendMarked(span, line, query, marks) {
    var lower = line.toLowerCase();
    var at = 0;
    var found = lower.indexOf(query, at);
    while (found >= 0 && marks.length < MAX_MATCHES) {
      if (found > at) { span.appendChild(document.createTextNode(line.slice(at, found))); }
      var mark = text("mark", line.slice(found, found + query.length), "log-match");
      span.appendChild(mark);
      marks.push(mark);
      at = found + query.length;
      found = lower.indexOf(query, at);
    }
    if (at < line.length) { span.appendChild(document.createTextNode(line.slice(at))); }
  }

  /* Redraw the log: plain runs of lines stay one text node; error, warning, matching and
     the failure's own line become spans. */
  function render(state) {
    var pre = state.pre;
    var fragment = document.createDocumentFragment();
    var plain = [];
    var query = state.query.toLowerCase();
    state.marks = [];
    state.target = null;
    function flush() {
      if (plain.length) { fragment.appendChild(document.createTextNode(plain.join(""))); plain = []; }
    }
    if (state.prefix) { fragment.appendChild(state.prefix); }
    state.lines.forEach(function (line, i) {
      var newline = i < state.lines.length - 1 ? "\n" : "";
      var kind = ERROR_RE.test(line) ? "log-error" : (WARN_RE.test(line) ? "log-warning" : "");
      var isTarget = i === state.failureIndex;
      var matches = query && state.marks.length < MAX_MATCHES && line.toLowerCase().indexOf(query) >= 0;
      if (!kind && !isTarget && !matches) { plain.push(line + newline); return; }
      flush();
      var span = text("span", null, "log-line" + (kind ? " " + kind : "") + (isTarget ? " log-failure" : ""));
      if (matches) { appendMarked(span, line, query, state.marks); } else { span.textContent = line; }
      fragment.appendChild(span);
      if (isTarget) { state.target = span; }
      plain.push(newline);
    });
    flush();
    pre.replaceChildren(fragment);
    pre.setAttribute("data-log-enhanced", "1");
  }

  function scrollLog(state) {
    var pre = state.pre;
    if (!visible(pre)) { state.pendingScroll = true; return; }
    state.pendingScroll = false;
    if (state.target) {
      pre.scrollTop = Math.max(0, state.target.offsetTop - Math.floor(pre.clientHeight / 3));
    } else {
      pre.scrollTop = pre.scrollHeight;
    }
  }

  function showMatch(state, index) {
    var count = state.marks.length;
    state.marks.forEach(function (m) { m.classList.remove("current"); });
    state.current = count ? ((index % count) + count) % count : 0;
    if (state.status) {
      state.status.textContent = !state.query ? "" : (count === 0 ? "no matches" :
        (state.current + 1) + " / " + count + (count >= MAX_MATCHES ? "+" : ""));
    }
    if (!count) { return; }
    var mark = state.marks[state.current];
    mark.classList.add("current");
    state.pre.scrollTop = Math.max(0, mark.offsetTop - Math.floor(state.pre.clientHeight / 3));
  }

  function addSearch(state) {
    var section = state.pre.closest("[data-ptab-panel]") || state.pre.parentNode;
    var toolbar = section ? section.querySelector(".log-toolbar") : null;
    if (!toolbar || toolbar.querySelector("[data-log-search]")) { return; }
    var box = text("span", null, "log-search");
    var input = text("input", null, "log-search-input");
    input.type = "search";
    input.placeholder = "Search the log";
    input.setAttribute("aria-label", "Search the log");
    input.setAttribute("data-log-search", "");
    var prev = text("button", "↑", "btn btn-small");
    prev.type = "button";
    prev.setAttribute("aria-label", "Previous match");
    prev.setAttribute("data-log-prev", "");
    var next = text("button", "↓", "btn btn-small");
    next.type = "button";
    next.setAttribute("aria-label", "Next match");
    next.setAttribute("data-log-next", "");
    var status = text("span", "", "muted small");
    status.setAttribute("data-log-matches", "");
    status.setAttribute("aria-live", "polite");
    box.appendChild(input);
    box.appendChild(prev);
    box.appendChild(next);
    box.appendChild(status);
    toolbar.appendChild(box);
    state.status = status;
    var timer = null;
    function search() {
      timer = null;
      if (input.value === state.query) { return; }
      state.query = input.value;
      render(state);
      showMatch(state, 0);
    }
    input.addEventListener("input", function () {
      if (timer) { clearTimeout(timer); }
      timer = setTimeout(search, SEARCH_DELAY_MS);
    });
    input.addEventListener("keydown", function (event) {
      if (event.key !== "Enter") { return; }
      event.preventDefault();
      if (timer) { clearTimeout(timer); search(); return; }
      if (input.value !== state.query) { search(); return; }
      showMatch(state, state.current + (event.shiftKey ? -1 : 1));
    });
    prev.addEventListener("click", function () { showMatch(state, state.current - 1); });
    next.addEventListener("click", function () { showMatch(state, state.current + 1); });
  }

  /* A log canal.js finished loading: take its text, then redraw it enhanced. */
  function enhance(pre) {
    if (pre.classList.contains("muted")) { return; }  // "(the log is empty)" or an error
    var state = pre._failureState || {pre: pre, query: "", current: 0, marks: []};
    pre._failureState = state;
    var first = pre.firstChild;
    state.prefix = first && first.nodeType === 1 && first.classList.contains("muted") ? first : null;
    var all = pre.textContent;
    var body = state.prefix ? all.slice(state.prefix.textContent.length) : all;
    if (body.slice(-1) === "\n") { body = body.slice(0, -1); }
    state.lines = body.split("\n");
    var panel = pre.closest(".panel");
    var banner = panel ? panel.querySelector("[data-task-failure]") : null;
    var failed = panel && panel.getAttribute("data-task-state") === "FAILED";
    state.failureIndex = failed && banner ? failureIndex(state.lines, banner.getAttribute("data-failure-line")) : -1;
    render(state);
    addSearch(state);
    if (state.query) { showMatch(state, 0); } else { scrollLog(state); }
  }

  /* The run banner, as the server draws it (templates/runs/_failure_banner.html). */
  function drawRunBanner(failed) {
    var host = document.getElementById("run-error");
    if (!host || !failed) { return; }
    var banner = text("span", null, "failure-banner");
    banner.setAttribute("data-failure-banner", "");
    var strong = text("strong", "Step ");
    var link = text("a", failed.name);
    link.href = failed.url;
    link.setAttribute("data-open-task", failed.id);
    link.setAttribute("data-failed-task", "");
    strong.appendChild(link);
    strong.appendChild(document.createTextNode(" failed:"));
    banner.appendChild(strong);
    banner.appendChild(document.createTextNode(" "));
    var line = text("span", failed.error || "no error message", "failure-line");
    line.setAttribute("data-failure-text", "");
    banner.appendChild(line);
    if (failed.others) {
      banner.appendChild(text("span", " · " + (failed.more ? "more than " : "") + failed.others + " other step" +
        (failed.others === 1 ? "" : "s") + " failed too (see the task list)", "failure-others small"));
    }
    host.replaceChildren(banner);
    host.hidden = false;
  }

  document.addEventListener("DOMContentLoaded", function () {
    if (!document.getElementById("run-page")) { return; }
    new MutationObserver(function (records) {
      records.forEach(function (record) {
        var pre = record.target;
        if (pre.getAttribute("data-log-complete") === "1") { enhance(pre); }
      });
    }).observe(document.body, {subtree: true, attributes: true, attributeFilter: ["data-log-complete"]});
    // A log enhanced while its tab was hidden is scrolled when the tab is shown.
    document.addEventListener("click", function (event) {
      var tab = event.target.closest("[data-ptab=logs]");
      if (!tab) { return; }
      var panel = tab.closest(".panel") || document;
      Array.prototype.forEach.call(panel.querySelectorAll("pre[data-log-enhanced]"), function (pre) {
        if (pre._failureState && pre._failureState.pendingScroll) { scrollLog(pre._failureState); }
      });
    });
    document.addEventListener("canal:status", function (event) { drawRunBanner(event.detail.failed_task); });
  });
})();
