// Resumable upload: parts go straight to the object store through presigned URLs, several at
// once. The upload id is kept in localStorage under the file's name, size and mtime, and the
// portal answers which parts the store already holds, so a reload or a lost connection resumes
// instead of starting over. Each part carries its SHA-256 (x-amz-checksum-sha256) when the
// browser can compute it (WebCrypto, secure contexts only): the store checks it on arrival and
// refuses a part whose bytes changed on the way; the part is then sent again.
"use strict";

const IN_FLIGHT = 4;
const URL_BATCH = 100;

function csrfHeaders() {
  const meta = document.querySelector('meta[name="csrf-token"]');
  return meta ? { "x-csrftoken": meta.content } : {};
}

async function api(method, path, body) {
  const response = await fetch(path, {
    method,
    credentials: "same-origin",
    headers: { "content-type": "application/json", accept: "application/json", ...csrfHeaders() },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const data = response.status === 204 ? null : await response.json().catch(() => null);
  if (!response.ok) {
    const error = new Error((data && data.detail) || response.statusText);
    error.status = response.status;
    error.data = data;
    throw error;
  }
  return data;
}

// S3's form of a part's SHA-256 (base64 of the digest), or null where WebCrypto is missing
async function partChecksum(blob) {
  if (!(window.crypto && crypto.subtle)) return null;
  const digest = new Uint8Array(await crypto.subtle.digest("SHA-256", await blob.arrayBuffer()));
  let binary = "";
  for (const byte of digest) binary += String.fromCharCode(byte);
  return btoa(binary);
}

function putPart(url, blob, checksum, onProgress) {
  return new Promise((resolve, reject) => {
    const xhr = new XMLHttpRequest();
    xhr.open("PUT", url);
    if (checksum) xhr.setRequestHeader("x-amz-checksum-sha256", checksum);
    xhr.upload.onprogress = (event) => onProgress(event.loaded);
    xhr.onload = () => {
      if (xhr.status >= 200 && xhr.status < 300) resolve();
      else {
        const damaged = xhr.responseText.includes("ChecksumMismatch");
        const error = new Error(damaged ? "a part arrived damaged" : `part refused (${xhr.status})`);
        reject(Object.assign(error, { status: xhr.status, damaged }));
      }
    };
    xhr.onerror = () => reject(new Error("connection lost"));
    xhr.ontimeout = () => reject(new Error("timed out"));
    xhr.send(blob);
  });
}

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

function online() {
  if (navigator.onLine) return Promise.resolve();
  return new Promise((resolve) => window.addEventListener("online", resolve, { once: true }));
}

class Upload {
  constructor(file, profile, ui) {
    this.file = file;
    this.profile = profile;
    this.ui = ui;
    this.storageKey = `vidflow-upload:${file.name}:${file.size}:${file.lastModified}`;
    this.urls = new Map();
    this.inflight = new Map();
    this.done = 0;
  }

  async open() {
    const saved = localStorage.getItem(this.storageKey);
    if (saved) {
      try {
        const state = await api("GET", `/api/uploads/${saved}`);
        if (state.status === "open" || state.status === "composed") return state;
      } catch (error) {
        if (error.status !== 404) throw error;
      }
      localStorage.removeItem(this.storageKey);
    }
    const created = await api("POST", "/api/uploads", {
      filename: this.file.name, size: this.file.size, profile: this.profile,
    });
    localStorage.setItem(this.storageKey, created.upload_id);
    return api("GET", `/api/uploads/${created.upload_id}`);
  }

  async urlFor(number, pending) {
    if (!this.urls.has(number)) {
      const wanted = [number, ...pending.filter((n) => !this.urls.has(n))].slice(0, URL_BATCH);
      const answer = await api("POST", `/api/uploads/${this.id}/parts`, { numbers: wanted });
      for (const part of answer.urls) this.urls.set(part.number, part.url);
    }
    return this.urls.get(number);
  }

  progress() {
    let sent = this.done;
    for (const loaded of this.inflight.values()) sent += loaded;
    this.ui.progress(Math.min(100, (100 * sent) / this.file.size));
  }

  async sendPart(number, pending) {
    const start = (number - 1) * this.partSize;
    const blob = this.file.slice(start, Math.min(start + this.partSize, this.file.size));
    const checksum = await partChecksum(blob);
    for (let attempt = 0; ; attempt += 1) {
      await online();
      try {
        const url = await this.urlFor(number, pending);
        const onProgress = (loaded) => { this.inflight.set(number, loaded); this.progress(); };
        await putPart(url, blob, checksum, onProgress);
        this.inflight.delete(number);
        this.done += blob.size;
        this.progress();
        return;
      } catch (error) {
        this.inflight.delete(number);
        if (error.status === 403) this.urls.delete(number); // an expired URL: ask again
        const retried = error.status === 403 || (error.damaged && attempt < 3);
        if (error.status && error.status < 500 && !retried) throw error;
        this.ui.status(`${error.message}: retrying part ${number}…`);
        await sleep(Math.min(30_000, 1000 * 2 ** attempt));
      }
    }
  }

  async sendAll(numbers) {
    const pending = [...numbers];
    const worker = async () => {
      while (pending.length) await this.sendPart(pending.shift(), pending);
    };
    await Promise.all(Array.from({ length: IN_FLIGHT }, worker));
  }

  async run() {
    const state = await this.open();
    this.id = state.upload_id;
    this.partSize = state.part_size;
    this.done = state.stored_bytes;
    const stored = new Set(state.stored);
    const missing = [];
    for (let n = 1; n <= state.parts; n += 1) if (!stored.has(n)) missing.push(n);
    if (stored.size) this.ui.status(`resuming: ${stored.size} of ${state.parts} parts already stored`);
    this.progress();
    if (state.status === "open") await this.sendAll(missing); // "composed": only announce left
    for (let attempt = 0; ; attempt += 1) {
      try {
        this.ui.status("checking and announcing…");
        const finished = await api("POST", `/api/uploads/${this.id}/complete`);
        localStorage.removeItem(this.storageKey);
        return finished;
      } catch (error) {
        const parts = error.status === 409 && error.data && error.data.extra && error.data.extra.parts;
        if (!parts || attempt > 2) throw error;
        await this.sendAll(parts); // a part went missing or short: send it again
      }
    }
  }
}

document.addEventListener("DOMContentLoaded", () => {
  const form = document.getElementById("upload-form");
  if (!form) return;
  const box = document.getElementById("upload-progress");
  const bar = document.getElementById("upload-bar");
  const percent = document.getElementById("upload-percent");
  const status = document.getElementById("upload-status");
  const button = document.getElementById("upload-start");
  const maxBytes = Number(form.dataset.maxBytes);
  const ui = {
    progress(value) { bar.value = value; percent.textContent = `${value.toFixed(1)}%`; },
    status(text) { status.textContent = text; },
  };
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const file = document.getElementById("upload-file").files[0];
    if (!file) return;
    box.hidden = false;
    if (file.size > maxBytes) {
      ui.status(`${file.name} is larger than the ${maxBytes}-byte limit.`);
      return;
    }
    button.disabled = true;
    ui.status(`uploading ${file.name}…`);
    try {
      const profile = document.getElementById("upload-profile").value;
      const finished = await new Upload(file, profile, ui).run();
      ui.progress(100);
      status.textContent = "";
      const link = document.createElement("a");
      link.href = `/videos/${finished.video_id}`;
      link.id = "upload-video";
      link.dataset.videoId = finished.video_id;
      link.textContent = `${file.name}: uploaded, follow it here`;
      status.appendChild(link);
    } catch (error) {
      ui.status(`upload failed: ${error.message}`);
    } finally {
      button.disabled = false;
    }
  });
});
