// The video page's player. HLS by default (hls.js where MediaSource exists, the browser's own HLS
// otherwise). A video whose DASH manifest exists also offers DASH (dash.js): the "Player" choice
// appears, and `?player=dash` starts with it. Videos made before manifests existed have none: the
// choice stays hidden and HLS plays, also when `?player=dash` asks otherwise.
// Both ladders are byte ranges of one fragmented MP4 per rung, fetched through the portal's proxy.

function label(width, height) {
  return `${Math.min(width, height)}p`;
}

function showLevels(select, labels) {
  select.replaceChildren(new Option("auto", "-1"));
  labels.forEach((text, index) => select.appendChild(new Option(text, String(index))));
}

function failed(video, kind, detail) {
  // the page shows the element's own error state; the detail is for the console and the tests
  video.dataset.playerError = `${kind}: ${detail}`;
  console.error(`${kind} playback failed`, detail);
}

function playHls(video, src, levels) {
  if (!(window.Hls && window.Hls.isSupported())) {
    video.src = src;
    return { kind: "hls", choose() {}, stop() { video.removeAttribute("src"); video.load(); } };
  }
  const hls = new window.Hls();
  hls.on(window.Hls.Events.MANIFEST_PARSED, (_, data) => {
    showLevels(levels, data.levels.map((level) => label(level.width, level.height)));
  });
  hls.on(window.Hls.Events.ERROR, (_, data) => {
    if (data.fatal) failed(video, "hls", data.details);
  });
  hls.loadSource(src);
  hls.attachMedia(video);
  return {
    kind: "hls",
    choose(index) { hls.currentLevel = index; },
    stop() { hls.destroy(); },
  };
}

function playDash(video, src, levels) {
  const dashjs = window.dashjs;
  const player = dashjs.MediaPlayer().create();
  const events = dashjs.MediaPlayer.events;
  player.on(events.STREAM_INITIALIZED, () => {
    const rungs = player.getRepresentationsByType("video");
    showLevels(levels, rungs.map((rung) => label(rung.width, rung.height)));
  });
  player.on(events.ERROR, (event) => {
    const error = event.error || {};
    failed(video, "dash", `${error.code || ""} ${error.message || ""}`.trim());
  });
  player.initialize(video, src, false);
  return {
    kind: "dash",
    choose(index) {
      const auto = index < 0;
      player.updateSettings({ streaming: { abr: { autoSwitchBitrate: { video: auto } } } });
      if (!auto) player.setRepresentationForTypeByIndex("video", index);
    },
    stop() { player.destroy(); },
  };
}

async function exists(url) {
  try {
    const response = await fetch(url, { credentials: "same-origin" });
    return response.ok;
  } catch {
    return false;
  }
}

document.addEventListener("DOMContentLoaded", async () => {
  const video = document.getElementById("player");
  if (!video) return;
  const levels = document.getElementById("levels");
  const choice = document.getElementById("player-choice");
  const kind = document.getElementById("player-kind");
  const dash = video.dataset.dash;
  const wantsDash = new URLSearchParams(window.location.search).get("player") === "dash";
  const canDash = Boolean(dash && window.dashjs && window.dashjs.MediaPlayer);

  let current = null;
  const start = (which) => {
    if (current) current.stop();
    delete video.dataset.playerError;
    current = which === "dash" ? playDash(video, dash, levels) : playHls(video, video.dataset.src, levels);
    video.dataset.player = current.kind;
    kind.value = current.kind;
  };

  levels.addEventListener("change", () => current && current.choose(Number(levels.value)));
  kind.addEventListener("change", () => {
    const at = video.currentTime;
    const playing = !video.paused;
    start(kind.value);
    video.addEventListener("loadedmetadata", () => {
      video.currentTime = at;
      if (playing) video.play().catch(() => {}); // a browser may refuse to resume by itself
    }, { once: true });
    const url = new URL(window.location.href);
    if (kind.value === "dash") url.searchParams.set("player", "dash");
    else url.searchParams.delete("player");
    window.history.replaceState(null, "", url);
  });

  const offered = canDash ? exists(dash) : Promise.resolve(false);
  if (!wantsDash) start("hls"); // HLS starts without waiting for the answer
  const hasDash = await offered;
  if (wantsDash) start(hasDash ? "dash" : "hls");
  choice.hidden = !hasDash;
});
