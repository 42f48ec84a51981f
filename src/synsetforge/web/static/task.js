// Keyboard shortcuts, the live progress line and the countdown of a task page. The page works without it.
(function () {
  "use strict";
  var form = document.getElementById("task");
  if (!form) { return; }
  var tiles = Array.prototype.slice.call(form.querySelectorAll(".tile"));
  var boxes = tiles.map(function (t) { return t.querySelector("input"); });
  var ticked = document.getElementById("ticked");
  var left = document.getElementById("left");
  var focus = 0;
  var sent = false;

  function update() {
    var n = 0;
    boxes.forEach(function (b, i) { tiles[i].classList.toggle("on", b.checked); if (b.checked) { n += 1; } });
    ticked.textContent = String(n);
  }
  function columns() {
    if (tiles.length < 2) { return 1; }
    var top = tiles[0].offsetTop, c = 0;
    for (var i = 0; i < tiles.length && tiles[i].offsetTop === top; i += 1) { c += 1; }
    return Math.max(c, 1);
  }
  function mark(i) { tiles.forEach(function (t, j) { t.classList.toggle("cursor", j === i); }); }
  function setFocus(i) {
    if (!tiles.length) { return; }
    focus = Math.max(0, Math.min(tiles.length - 1, i));
    boxes[focus].focus();
    mark(focus);
  }
  function toggle(i) { boxes[i].checked = !boxes[i].checked; update(); }
  function submit() {
    if (sent) { return; }
    if (form.requestSubmit) { form.requestSubmit(); } else { sent = true; HTMLFormElement.prototype.submit.call(form); }
  }

  boxes.forEach(function (b, i) {
    b.addEventListener("change", update);
    b.addEventListener("focus", function () { focus = i; mark(i); });
  });
  form.addEventListener("submit", function (e) { if (sent) { e.preventDefault(); } sent = true; });
  document.addEventListener("keydown", function (e) {
    if (e.altKey || e.ctrlKey || e.metaKey || !tiles.length) { return; }
    var k = e.key;
    if (k === "ArrowRight" || k === "l") { setFocus(focus + 1); }
    else if (k === "ArrowLeft" || k === "h") { setFocus(focus - 1); }
    else if (k === "ArrowDown" || k === "j") { setFocus(focus + columns()); }
    else if (k === "ArrowUp" || k === "k") { setFocus(focus - columns()); }
    else if (k === "x") { toggle(focus); setFocus(focus); }
    else if (k === " ") {
      if (document.activeElement === boxes[focus]) { return; } // the checkbox toggles itself
      toggle(focus); setFocus(focus);
    }
    else if (/^[1-9]$/.test(k)) { var i = Number(k) - 1; if (i < boxes.length) { toggle(i); setFocus(i); } }
    else if (k === "Enter") { submit(); }
    else { return; }
    e.preventDefault();
  });

  var total = parseInt(form.getAttribute("data-seconds") || "0", 10);
  var start = Date.now();
  function tick() {
    var s = Math.max(0, total - Math.floor((Date.now() - start) / 1000));
    left.textContent = s > 0 ? Math.floor(s / 60) + ":" + String(s % 60).padStart(2, "0") + " left"
      : "time is up: reload for a new task";
  }
  tick();
  window.setInterval(tick, 1000);
  update();
}());
