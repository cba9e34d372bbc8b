// The review page's controls: one play/scrub bar for the output and the driving video (frame steps, loop),
// seeking from a click on the identity plot, a playhead on the plot, and keyboard shortcuts
// (space play/pause, arrows one frame or with Shift one second, A approve, R reject).
// Without this script the page still works: the videos keep their own controls until it takes over.
(function () {
  "use strict";
  var media = document.getElementById("review-media");
  var bar = document.getElementById("player");
  if (!media || !bar) { return; }
  var fps = parseFloat(media.getAttribute("data-fps")) || 25;
  var videos = Array.prototype.slice.call(media.querySelectorAll("video"));
  var main = document.getElementById("output-video") || videos[0];
  if (!main) { return; }
  var play = document.getElementById("play");
  var scrub = document.getElementById("scrub");
  var position = document.getElementById("position");
  var loop = document.getElementById("loop");
  var svg = document.querySelector("#identity-plot svg");

  videos.forEach(function (v) { v.controls = false; v.loop = false; });
  bar.hidden = false;

  function duration() { return isFinite(main.duration) ? main.duration : 0; }
  function frameOf(t) { return Math.floor(t * fps + 1e-6); }
  function playing() { return !main.paused && !main.ended; }

  function show() {
    var t = main.currentTime;
    scrub.value = String(t);
    position.textContent = t.toFixed(2) + " s \u00b7 frame " + frameOf(t);
    if (svg) {
      var line = svg.querySelector("line.playhead");
      var first = parseFloat(svg.getAttribute("data-first-frame"));
      var last = parseFloat(svg.getAttribute("data-last-frame"));
      var left = parseFloat(svg.getAttribute("data-left"));
      var width = parseFloat(svg.getAttribute("data-width"));
      var share = Math.min(Math.max((t * fps - first) / Math.max(last - first, 1), 0), 1);
      line.setAttribute("x1", String(left + share * width));
      line.setAttribute("x2", String(left + share * width));
    }
  }

  function seek(t) {
    var d = duration();
    var target = Math.max(0, d ? Math.min(t, d) : t);
    videos.forEach(function (v) {
      var limit = isFinite(v.duration) ? v.duration : target;
      v.currentTime = Math.min(target, limit);
    });
    show();
  }

  function seekFrame(frame) { seek((Math.max(frame, 0) + 0.5) / fps); }
  function pause() { videos.forEach(function (v) { v.pause(); }); }
  function start() {
    if (main.ended) { seek(0); }
    videos.forEach(function (v) { var p = v.play(); if (p && p.catch) { p.catch(function () {}); } });
  }
  function toggle() { if (playing()) { pause(); } else { start(); } }
  function step(frames) { pause(); seekFrame(frameOf(main.currentTime) + frames); }

  function ready() { scrub.max = String(duration()); show(); }
  main.addEventListener("loadedmetadata", ready);
  if (main.readyState >= 1) { ready(); }
  main.addEventListener("timeupdate", function () {
    show();
    videos.forEach(function (v) {  // keep the other video on the same frame
      if (v !== main && !v.paused && main.currentTime <= v.duration &&
          Math.abs(v.currentTime - main.currentTime) > 1.5 / fps) {
        v.currentTime = main.currentTime;
      }
    });
  });
  main.addEventListener("seeked", show);
  main.addEventListener("play", function () { play.textContent = "Pause"; });
  main.addEventListener("pause", function () { play.textContent = "Play"; });
  var loops = 0;
  main.addEventListener("ended", function () {
    if (loop.checked) {
      loops += 1;
      bar.setAttribute("data-loops", String(loops));  // how often it started over (shown to tests, harmless)
      seek(0);
      start();
    } else { pause(); play.textContent = "Play"; }
  });
  scrub.addEventListener("input", function () { seek(parseFloat(scrub.value)); });
  play.addEventListener("click", toggle);
  document.getElementById("prev-frame").addEventListener("click", function () { step(-1); });
  document.getElementById("next-frame").addEventListener("click", function () { step(1); });

  if (svg) {
    Array.prototype.forEach.call(svg.querySelectorAll("circle.pt"), function (point) {
      point.addEventListener("click", function () {
        pause();
        seekFrame(parseInt(point.getAttribute("data-frame"), 10));
      });
    });
  }

  function choose(verdict, event) {
    var radio = document.querySelector("input[name=verdict][value=" + verdict + "]");
    if (!radio) { return; }
    event.preventDefault();
    radio.checked = true;
    var reason = document.querySelector("textarea[name=reason]");
    if (reason) { reason.focus(); }
  }

  document.addEventListener("keydown", function (event) {
    if (event.ctrlKey || event.metaKey || event.altKey) { return; }
    var target = event.target;
    var tag = (target.tagName || "").toLowerCase();
    var typing = tag === "textarea" || tag === "select" ||
      (tag === "input" && ["range", "checkbox", "radio"].indexOf(target.type) < 0);
    if (typing) { return; }
    if (event.key === " ") {
      if (tag === "button") { return; }  // the focused button's own click answers the space bar
      event.preventDefault();
      toggle();
    } else if (event.key === "ArrowLeft" || event.key === "ArrowRight") {
      event.preventDefault();
      var n = event.shiftKey ? Math.round(fps) : 1;
      step(event.key === "ArrowLeft" ? -n : n);
    } else if (event.key === "a" || event.key === "A") {
      choose("approve", event);
    } else if (event.key === "r" || event.key === "R") {
      choose("reject", event);
    }
  });
})();
