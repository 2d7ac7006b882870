/* Flash messages: every one gets a close button; success and info ones fade away after
   a few seconds (errors and warnings stay until closed). Pages work without this. */
(function () {
  "use strict";
  var FADE_AFTER_MS = 5000;
  var FADE_MS = 600;

  function remove(msg) {
    var list = msg.parentNode;
    msg.remove();
    if (list && !list.querySelector(".msg")) { list.remove(); }
  }

  function fade(msg) {
    msg.classList.add("fading");
    window.setTimeout(function () { remove(msg); }, FADE_MS);
  }

  function enhance(msg) {
    if (msg.querySelector(".msg-close")) { return; }
    var text = document.createElement("span");
    text.className = "msg-text";
    while (msg.firstChild) { text.appendChild(msg.firstChild); }
    msg.appendChild(text);
    var close = document.createElement("button");
    close.type = "button";
    close.className = "msg-close";
    close.setAttribute("aria-label", "Dismiss this message");
    close.textContent = "×";
    close.addEventListener("click", function () { remove(msg); });
    msg.appendChild(close);
    if (msg.classList.contains("msg-success") || msg.classList.contains("msg-info")) {
      var timer = window.setTimeout(function () { fade(msg); }, FADE_AFTER_MS);
      // Someone reading it (pointer over it, or focus in it) keeps it up.
      msg.addEventListener("mouseenter", function () { window.clearTimeout(timer); });
      msg.addEventListener("focusin", function () { window.clearTimeout(timer); });
    }
  }

  function init() {
    document.querySelectorAll(".messages .msg").forEach(enhance);
  }

  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", init);
  } else {
    init();
  }
})();
