// Scrub previews: the sprite sheet's WebVTT track (cues of "sprite.jpg#xywh=x,y,w,h") becomes a
// bar under the player; pointing at it shows that moment's thumbnail, clicking seeks there.
function parseTime(text) {
  const [h, m, s] = text.trim().split(":");
  return Number(h) * 3600 + Number(m) * 60 + Number(s);
}

function parseCues(vtt, base) {
  const cues = [];
  for (const block of vtt.split(/\r?\n\r?\n/)) {
    const lines = block.trim().split(/\r?\n/);
    const timing = lines.findIndex((line) => line.includes("-->"));
    if (timing < 0 || !lines[timing + 1]) continue;
    const [start, end] = lines[timing].split("-->").map(parseTime);
    const [file, fragment] = lines[timing + 1].trim().split("#xywh=");
    const [x, y, w, h] = (fragment || "").split(",").map(Number);
    if ([x, y, w, h].some(Number.isNaN)) continue;
    cues.push({ start, end, url: new URL(file, base).href, x, y, w, h });
  }
  return cues;
}

document.addEventListener("DOMContentLoaded", async () => {
  const video = document.getElementById("player");
  const track = video && video.querySelector("track[label=thumbnails]");
  if (!track) return;
  const response = await fetch(track.src, { credentials: "same-origin" });
  if (!response.ok) return;
  const cues = parseCues(await response.text(), new URL(track.src, window.location.href));
  if (!cues.length) return;
  const duration = cues[cues.length - 1].end;

  const bar = document.createElement("div");
  bar.className = "scrub";
  bar.setAttribute("aria-label", "Scrub previews");
  const thumb = document.createElement("div");
  thumb.className = "scrub-thumb";
  thumb.hidden = true;
  bar.appendChild(thumb);
  video.insertAdjacentElement("afterend", bar);

  const at = (event) => {
    const box = bar.getBoundingClientRect();
    const share = Math.min(Math.max((event.clientX - box.left) / box.width, 0), 1);
    return { seconds: share * duration, left: event.clientX - box.left };
  };
  bar.addEventListener("mousemove", (event) => {
    const { seconds, left } = at(event);
    const cue = cues.find((c) => seconds >= c.start && seconds < c.end) || cues[cues.length - 1];
    thumb.style.width = `${cue.w}px`;
    thumb.style.height = `${cue.h}px`;
    thumb.style.backgroundImage = `url("${cue.url}")`;
    thumb.style.backgroundPosition = `-${cue.x}px -${cue.y}px`;
    thumb.style.left = `${Math.max(0, left - cue.w / 2)}px`;
    thumb.dataset.seconds = seconds.toFixed(1);
    thumb.hidden = false;
  });
  bar.addEventListener("mouseleave", () => { thumb.hidden = true; });
  bar.addEventListener("click", (event) => { video.currentTime = at(event).seconds; });
});
