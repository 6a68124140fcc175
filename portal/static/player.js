// HLS playback with a resolution selector (hls.js where MSE exists, native HLS otherwise).
document.addEventListener("DOMContentLoaded", () => {
  const video = document.getElementById("player");
  const levels = document.getElementById("levels");
  if (!video) return;
  const src = video.dataset.src;
  if (window.Hls && window.Hls.isSupported()) {
    const hls = new window.Hls();
    hls.loadSource(src);
    hls.attachMedia(video);
    hls.on(window.Hls.Events.MANIFEST_PARSED, (_, data) => {
      data.levels.forEach((level, index) => {
        const option = document.createElement("option");
        option.value = String(index);
        option.textContent = `${Math.min(level.width, level.height)}p`;
        levels.appendChild(option);
      });
    });
    levels.addEventListener("change", () => { hls.currentLevel = Number(levels.value); });
  } else {
    video.src = src;
  }
});
