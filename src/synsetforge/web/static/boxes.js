// The draw page of a box task: drag a box with a mouse, a pen or a finger (pointer events; the canvas has
// touch-action: none so a finger draws instead of scrolling), adjust it by dragging an edge, a corner or
// the inside, or nudge the selected edge with the arrow keys (Shift: 10 px). Coordinates are pixels of the
// image as served (inclusive corners, like the form fields x1 y1 x2 y2); the page works without this
// script through the number fields.
(function () {
  "use strict";
  var form = document.getElementById("draw");
  var svg = document.getElementById("canvas");
  if (!form || !svg) { return; }
  var SVGNS = "http://www.w3.org/2000/svg";
  var W = parseInt(form.getAttribute("data-width"), 10);
  var H = parseInt(form.getAttribute("data-height"), 10);
  var layer = document.getElementById("drawn");
  var state = document.getElementById("state");
  var send = document.getElementById("send");
  var fields = ["x1", "y1", "x2", "y2"].map(function (n) { return document.getElementById(n); });
  var edgeButtons = Array.prototype.slice.call(form.querySelectorAll("button.edge"));
  var EDGES = ["left", "top", "right", "bottom", "all"];
  var NAMES = { left: "left edge", top: "top edge", right: "right edge", bottom: "bottom edge", all: "whole box" };
  var MIN = 2;             // smallest width and height in pixels (x2 - x1), as the service requires
  var box = null;          // {x1, y1, x2, y2}: inclusive pixel corners, x1 < x2 and y1 < y2
  var selected = "all";    // what the arrow keys move
  var drag = null;         // the gesture in progress
  var sent = false;

  function clamp(v, lo, hi) { return Math.max(lo, Math.min(hi, v)); }
  function ctm() { return svg.getScreenCTM(); }
  function toImage(e) {   // client (CSS px) -> image px, whatever the scaling and letterboxing
    var pt = svg.createSVGPoint();
    pt.x = e.clientX; pt.y = e.clientY;
    var p = pt.matrixTransform(ctm().inverse());
    return { x: p.x, y: p.y };
  }
  function perScreenPx() { var m = ctm(); return m && m.a ? 1 / m.a : 1; }

  function fromEdges(l, t, r, b) {  // continuous edges -> inclusive integer corners inside the image
    var x1 = clamp(Math.round(Math.min(l, r)), 0, W - 1 - MIN);
    var y1 = clamp(Math.round(Math.min(t, b)), 0, H - 1 - MIN);
    var x2 = clamp(Math.round(Math.max(l, r)) - 1, x1 + MIN, W - 1);
    var y2 = clamp(Math.round(Math.max(t, b)) - 1, y1 + MIN, H - 1);
    return { x1: x1, y1: y1, x2: x2, y2: y2 };
  }

  function el(name, attrs) {
    var node = document.createElementNS(SVGNS, name);
    Object.keys(attrs).forEach(function (k) { node.setAttribute(k, String(attrs[k])); });
    return node;
  }
  function render() {
    while (layer.firstChild) { layer.removeChild(layer.firstChild); }
    fields.forEach(function (f, i) { if (document.activeElement !== f) { f.value = box ? [box.x1, box.y1, box.x2, box.y2][i] : ""; } });
    send.disabled = !box;
    edgeButtons.forEach(function (b) {
      var on = b.getAttribute("data-edge") === selected;
      b.setAttribute("aria-pressed", on ? "true" : "false");
      b.disabled = !box;
    });
    if (!box) { state.textContent = "no box drawn yet"; form.removeAttribute("data-box"); return; }
    var l = box.x1, t = box.y1, r = box.x2 + 1, b = box.y2 + 1, s = perScreenPx();
    layer.appendChild(el("rect", { "class": "current", x: l, y: t, width: r - l, height: b - t, "vector-effect": "non-scaling-stroke" }));
    var lines = { left: [l, t, l, b], top: [l, t, r, t], right: [r, t, r, b], bottom: [l, b, r, b] };
    if (selected !== "all") {
      var q = lines[selected];
      layer.appendChild(el("line", { "class": "selected-edge", x1: q[0], y1: q[1], x2: q[2], y2: q[3], "vector-effect": "non-scaling-stroke" }));
    }
    var k = 9 * s, xs = [l, (l + r) / 2, r], ys = [t, (t + b) / 2, b];
    xs.forEach(function (x, i) {
      ys.forEach(function (y, j) {
        if (i === 1 && j === 1) { return; }
        layer.appendChild(el("rect", { "class": "handle", x: x - k / 2, y: y - k / 2, width: k, height: k, "vector-effect": "non-scaling-stroke" }));
      });
    });
    form.setAttribute("data-box", [box.x1, box.y1, box.x2, box.y2].join(","));
    state.textContent = "box: left " + box.x1 + ", top " + box.y1 + ", right " + box.x2 + ", bottom " + box.y2 +
      " · arrows move the " + NAMES[selected];
  }

  // -- pointer gestures ---------------------------------------------------------------------------
  function grabAt(p, touch) {  // which parts of the current box a press at p takes hold of
    if (!box) { return null; }
    var tol = (touch ? 22 : 10) * perScreenPx();
    var l = box.x1, t = box.y1, r = box.x2 + 1, b = box.y2 + 1;
    var inY = p.y >= t - tol && p.y <= b + tol, inX = p.x >= l - tol && p.x <= r + tol;
    var g = { left: false, top: false, right: false, bottom: false };
    if (inY && Math.abs(p.x - l) <= tol) { g.left = true; }
    if (inY && Math.abs(p.x - r) <= tol) { g.right = true; }
    if (g.left && g.right) { if (Math.abs(p.x - l) < Math.abs(p.x - r)) { g.right = false; } else { g.left = false; } }
    if (inX && Math.abs(p.y - t) <= tol) { g.top = true; }
    if (inX && Math.abs(p.y - b) <= tol) { g.bottom = true; }
    if (g.top && g.bottom) { if (Math.abs(p.y - t) < Math.abs(p.y - b)) { g.bottom = false; } else { g.top = false; } }
    if (g.left || g.right || g.top || g.bottom) { return g; }
    if (p.x > l && p.x < r && p.y > t && p.y < b) { return "move"; }
    return null;
  }
  svg.addEventListener("pointerdown", function (e) {
    if (!e.isPrimary || (e.pointerType === "mouse" && e.button !== 0) || drag) { return; }
    var touch = e.pointerType === "touch" || e.pointerType === "pen";
    form.setAttribute("data-pointer", e.pointerType || "mouse");  // which input drew it (tests read this)
    var p = toImage(e);
    var g = grabAt(p, touch);
    var before = box && { x1: box.x1, y1: box.y1, x2: box.x2, y2: box.y2 };
    if (g === "move") {
      drag = { kind: "move", start: p, before: before };
    } else if (g) {
      drag = { kind: "edges", grab: g, before: before };
      var only = ["left", "top", "right", "bottom"].filter(function (n) { return g[n]; });
      if (only.length === 1) { selected = only[0]; }
    } else {
      drag = { kind: "new", start: { x: clamp(p.x, 0, W), y: clamp(p.y, 0, H) }, before: before, moved: false };
    }
    drag.id = e.pointerId;
    try { svg.setPointerCapture(e.pointerId); } catch (err) { /* synthetic events may have no capture */ }
    svg.focus({ preventScroll: true });
    e.preventDefault();
  });
  svg.addEventListener("pointermove", function (e) {
    if (!drag || e.pointerId !== drag.id) { return; }
    var p = toImage(e), b0 = drag.before;
    if (drag.kind === "new") {
      var q = { x: clamp(p.x, 0, W), y: clamp(p.y, 0, H) };
      if (Math.abs(q.x - drag.start.x) / perScreenPx() < 3 && Math.abs(q.y - drag.start.y) / perScreenPx() < 3 && !drag.moved) { return; }
      drag.moved = true;
      box = fromEdges(drag.start.x, drag.start.y, q.x, q.y);
    } else if (drag.kind === "move") {
      var w = b0.x2 - b0.x1, h = b0.y2 - b0.y1;
      var x1 = clamp(Math.round(b0.x1 + p.x - drag.start.x), 0, W - 1 - w);
      var y1 = clamp(Math.round(b0.y1 + p.y - drag.start.y), 0, H - 1 - h);
      box = { x1: x1, y1: y1, x2: x1 + w, y2: y1 + h };
    } else {
      var l = b0.x1, t = b0.y1, r = b0.x2 + 1, b = b0.y2 + 1, g = drag.grab;
      if (g.left) { l = p.x; }
      if (g.right) { r = p.x; }
      if (g.top) { t = p.y; }
      if (g.bottom) { b = p.y; }
      box = fromEdges(clamp(l, 0, W), clamp(t, 0, H), clamp(r, 0, W), clamp(b, 0, H));
    }
    render();
    e.preventDefault();
  });
  function finish(e) {
    if (!drag || e.pointerId !== drag.id) { return; }
    if (drag.kind === "new" && drag.moved) { selected = "all"; }
    drag = null;
    render();
  }
  svg.addEventListener("pointerup", finish);
  svg.addEventListener("pointercancel", function (e) {
    if (drag && e.pointerId === drag.id) { box = drag.before; }
    finish(e);
  });

  // -- keyboard -----------------------------------------------------------------------------------
  function select(name) { selected = name; render(); }
  function nudge(dx, dy) {
    if (!box) { return; }
    var b = { x1: box.x1, y1: box.y1, x2: box.x2, y2: box.y2 };
    if (selected === "all") {
      var w = b.x2 - b.x1, h = b.y2 - b.y1;
      b.x1 = clamp(b.x1 + dx, 0, W - 1 - w); b.x2 = b.x1 + w;
      b.y1 = clamp(b.y1 + dy, 0, H - 1 - h); b.y2 = b.y1 + h;
    } else if (selected === "left") { b.x1 = clamp(b.x1 + dx, 0, b.x2 - MIN); }
    else if (selected === "right") { b.x2 = clamp(b.x2 + dx, b.x1 + MIN, W - 1); }
    else if (selected === "top") { b.y1 = clamp(b.y1 + dy, 0, b.y2 - MIN); }
    else if (selected === "bottom") { b.y2 = clamp(b.y2 + dy, b.y1 + MIN, H - 1); }
    box = b;
    render();
  }
  function startBox() {  // a box in the middle for keyboard-only drawing, then adjusted edge by edge
    box = fromEdges(W / 4, H / 4, (3 * W) / 4, (3 * H) / 4);
    selected = "left";
    render();
  }
  function submit() {
    if (sent || !box) { return; }
    if (form.requestSubmit) { form.requestSubmit(); } else { sent = true; HTMLFormElement.prototype.submit.call(form); }
  }
  edgeButtons.forEach(function (b) {
    b.addEventListener("click", function () { select(b.getAttribute("data-edge")); });
  });
  document.getElementById("redraw").addEventListener("click", function () { box = null; selected = "all"; render(); svg.focus(); });
  fields.forEach(function (f) {
    f.addEventListener("change", function () {
      var v = fields.map(function (g) { return Number(g.value); });
      if (fields.every(function (g) { return g.value !== ""; }) && v.every(isFinite) && v[0] < v[2] && v[1] < v[3]) {
        box = { x1: clamp(Math.round(v[0]), 0, W - 1 - MIN), y1: clamp(Math.round(v[1]), 0, H - 1 - MIN), x2: 0, y2: 0 };
        box.x2 = clamp(Math.round(v[2]), box.x1 + MIN, W - 1);
        box.y2 = clamp(Math.round(v[3]), box.y1 + MIN, H - 1);
        render();
      }
    });
  });
  form.addEventListener("submit", function (e) { if (sent || !box) { e.preventDefault(); return; } sent = true; });
  document.addEventListener("keydown", function (e) {
    if (e.altKey || e.ctrlKey || e.metaKey) { return; }
    var tag = e.target && e.target.tagName;
    if (tag === "INPUT" || tag === "TEXTAREA") { return; }  // number fields keep their own arrows
    var k = e.key, step = e.shiftKey ? 10 : 1;
    if (k === "ArrowLeft") { nudge(-step, 0); }
    else if (k === "ArrowRight") { nudge(step, 0); }
    else if (k === "ArrowUp") { nudge(0, -step); }
    else if (k === "ArrowDown") { nudge(0, step); }
    else if (k === "e" || k === "E") {
      if (!box) { return; }
      var i = EDGES.indexOf(selected);
      select(EDGES[(i + (k === "E" || e.shiftKey ? EDGES.length - 1 : 1)) % EDGES.length]);
    }
    else if (k === "n") { startBox(); }
    else if (k === "r") { box = null; selected = "all"; render(); }
    else if (k === "Enter") { if (tag === "BUTTON" || tag === "A") { return; } submit(); }
    else { return; }
    e.preventDefault();
  });
  window.addEventListener("resize", render);

  // -- countdown ----------------------------------------------------------------------------------
  var left = document.getElementById("left");
  var total = parseInt(form.getAttribute("data-seconds") || "0", 10);
  var start = Date.now();
  function tick() {
    var s = Math.max(0, total - Math.floor((Date.now() - start) / 1000));
    left.textContent = s > 0 ? Math.floor(s / 60) + ":" + String(s % 60).padStart(2, "0") + " left"
      : "time is up: reload for a new task";
  }
  tick();
  window.setInterval(tick, 1000);
  render();
}());
