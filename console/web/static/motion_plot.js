// The review page's motion plot: a click on a point seeks the output and the driving video to its frame.
// A file, not inline: the console's content security policy runs scripts from itself only.
document.addEventListener("DOMContentLoaded", () => {
  const plot = document.getElementById("motion-plot");
  if (!plot) return;
  const fps = parseFloat(plot.dataset.fps) || 25;
  plot.addEventListener("click", (event) => {
    const point = event.target.closest("[data-frame]");
    if (!point) return;
    const frame = parseInt(point.dataset.frame, 10);
    const time = (frame + 0.5) / fps; // the middle of the frame, so rounding lands on it
    for (const id of ["output-video", "driving-video"]) {
      const video = document.getElementById(id);
      if (video) {
        video.pause();
        video.currentTime = time;
      }
    }
    plot.dataset.seekedFrame = String(frame);
  });
});
