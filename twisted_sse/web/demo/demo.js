// The twisted-sse demo page: no library, no inline script (it runs under a strict CSP),
// every text put on the page with textContent.
"use strict";

const byId = (id) => document.getElementById(id);
let source = null;
let reconnects = 0;
let listened = new Set();
let wasOpen = false;

function words(text) {
  return text.split(/[\s,]+/).filter(Boolean);
}

function row(cells, className) {
  const tr = document.createElement("tr");
  if (className) tr.className = className;
  for (const [text, cls] of cells) {
    const td = document.createElement("td");
    td.textContent = text;
    if (cls) td.className = cls;
    tr.appendChild(td);
  }
  byId("event-rows").prepend(tr);
}

function note(text) {
  row([[new Date().toLocaleTimeString(), ""], ["", ""], ["", ""], [text, "data"]], "note");
}

function setStatus(text) {
  byId("status").textContent = text;
}

function received(event) {
  if (event.lastEventId) byId("last-id").textContent = event.lastEventId;
  row([[new Date().toLocaleTimeString(), ""], [event.lastEventId || "", "id"], [event.type, "type"],
       [event.data, "data"]], event.type === "sse-lost" ? "lost" : "");
}

function listen(type) {
  if (source && !listened.has(type)) {
    source.addEventListener(type, received);
    listened.add(type);
  }
}

function subscribe(channels, types) {
  if (source) source.close();
  if (channels.length === 0) {
    setStatus("name a channel");
    return;
  }
  const query = channels.map((c) => "channel=" + encodeURIComponent(c)).join("&");
  source = new EventSource("events?" + query);
  listened = new Set();
  wasOpen = false;
  for (const type of ["message", "sse-lost", ...types]) listen(type);
  setStatus("connecting to " + channels.join(", "));
  source.onopen = () => {
    if (wasOpen) {
      const last = byId("last-id").textContent;
      note("reconnected" + (last !== "none" ? ", resuming after " + last : ""));
    }
    wasOpen = true;
    setStatus("open: " + channels.join(", "));
  };
  source.onerror = () => {
    if (source.readyState === EventSource.CLOSED) {
      setStatus("closed");
      return;
    }
    reconnects += 1;
    byId("reconnects").textContent = String(reconnects);
    setStatus("reconnecting...");
  };
  const url = new URL(window.location.href);
  url.search = query;
  window.history.replaceState(null, "", url);
}

async function publish(event) {
  event.preventDefault();
  const channel = byId("publish-channel").value.trim();
  const type = byId("publish-type").value.trim();
  const result = byId("publish-result");
  result.className = "";
  result.textContent = "publishing...";
  if (type) listen(type);
  const url = "events/" + encodeURIComponent(channel) + (type ? "?event=" + encodeURIComponent(type) : "");
  try {
    const response = await fetch(url, {
      method: "POST",
      headers: {"Authorization": "Bearer " + byId("token").value, "Content-Type": "text/plain; charset=utf-8"},
      body: byId("publish-data").value,
    });
    const text = await response.text();
    if (response.ok) {
      result.textContent = "published, id " + JSON.parse(text).id;
    } else {
      result.className = "error";
      result.textContent = response.status + ": " + text.trim();
    }
  } catch (error) {
    result.className = "error";
    result.textContent = "failed: " + error;
  }
}

document.addEventListener("DOMContentLoaded", () => {
  const params = new URLSearchParams(window.location.search);
  const channels = params.getAll("channel");
  byId("channels").value = channels.join(" ");
  byId("publish-channel").value = channels[0] || "news";
  byId("subscribe").addEventListener("submit", (event) => {
    event.preventDefault();
    subscribe(words(byId("channels").value), words(byId("types").value));
  });
  byId("close").addEventListener("click", () => {
    if (source) source.close();
    setStatus("closed");
  });
  byId("publish").addEventListener("submit", publish);
  if (channels.length) subscribe(channels, []);
});
