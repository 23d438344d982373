/* A knowledge base's page: uploads and live processing.

   Files dropped on the zone (or chosen with its picker) are uploaded one request each, with the page's
   CSRF token, showing each file's upload progress and, when refused, the server's message under it.
   The documents table follows the organization's live events (/ws/o/<slug>/events/, "knowledge.document"):
   each row's status, progress bar ("Reading pages…", "Embedding chunk 40 of 120"), pages, chunks and
   error change in place, without a reload. Every value shown comes from the server and is set as text;
   the one piece of HTML used is a new row the server rendered in its answer to an upload. */
(function () {
  "use strict";

  if (window.JagCallKnowledge) { window.JagCallKnowledge.scan(); return; }

  var MIN_DELAY = 1000;
  var MAX_DELAY = 30000;
  var PING_EVERY = 25000;
  var RESYNC_SETTLE = 300;
  var FINAL_CLOSE_CODES = {
    4401: "Sign in again to see live progress.",
    4403: "Your role cannot see live progress.",
    4404: "Live progress is not available here."
  };
  var STATUS_TEXT = {
    413: "This file is too large.",
    415: "This file is neither a PDF nor a text file.",
    409: "This file is already here."
  };

  var conn = null; // { url, socket, timer, ping, delay, stopped }
  var latest = {}; // document id -> the newest payload heard
  var resyncTimer = null;

  function socketUrl(path) {
    if (/^wss?:\/\//.test(path)) return path;
    var scheme = window.location.protocol === "https:" ? "wss://" : "ws://";
    return scheme + window.location.host + (path.charAt(0) === "/" ? path : "/" + path);
  }

  function table() { return document.querySelector("[data-documents]"); }

  function setStatus(state, text) {
    document.querySelectorAll("[data-knowledge-live-status]").forEach(function (el) {
      el.setAttribute("data-state", state);
      el.textContent = text;
    });
  }

  function progressLabel(p) {
    if (p.status === "ready") return "Ready";
    if (p.status === "failed") return "Failed";
    if (p.status === "queued") return "Waiting to be processed…";
    if (p.chunks_total) return "Embedding chunk " + p.chunks_done + " of " + p.chunks_total;
    return "Reading pages…";
  }

  function emptyRow(tbody) {
    var empty = tbody.querySelector("[data-documents-empty]");
    var any = tbody.querySelector("tr[data-document-id]");
    if (empty) empty.hidden = !!any;
  }

  function applyPayload(row, p) {
    row.setAttribute("data-status", p.status);
    var badge = row.querySelector("[data-doc-status]");
    if (badge) { badge.setAttribute("data-doc-status", p.status); badge.textContent = p.status_label; }
    var bar = row.querySelector("[data-doc-progress]");
    if (bar) { bar.value = p.progress; bar.textContent = p.progress + "%"; bar.hidden = p.status === "failed"; }
    var label = row.querySelector("[data-doc-label]");
    if (label) label.textContent = progressLabel(p);
    var error = row.querySelector("[data-doc-error]");
    if (error) { error.textContent = p.error_message || ""; error.hidden = !p.error_message; }
    var retry = row.querySelector("[data-doc-retry]");
    if (retry) retry.hidden = p.status !== "failed";
    var pages = row.querySelector("[data-doc-pages]");
    if (pages) pages.textContent = p.pages_total ? String(p.pages_total) : "—";
    var chunks = row.querySelector("[data-doc-chunks]");
    if (chunks) chunks.textContent = p.chunks_total ? String(p.chunks_total) : "—";
  }

  function rowOf(tbody, id) {
    return tbody.querySelector('tr[data-document-id="' + CSS.escape(id) + '"]');
  }

  function handle(message) {
    if (message.event !== "knowledge.document" || !message.payload || !message.payload.id) return;
    var p = message.payload;
    var tbody = table();
    if (!tbody) return;
    latest[p.id] = p;
    var row = rowOf(tbody, p.id);
    if (p.status === "deleted") {
      if (row) row.remove();
      emptyRow(tbody);
      return;
    }
    if (row) { applyPayload(row, p); return; }
    // A document of this knowledge base added elsewhere (another tab, a colleague, the API): fetch the rows.
    if (p.knowledge_base === tbody.getAttribute("data-knowledge-base")) resyncSoon();
  }

  function resyncSoon() {
    window.clearTimeout(resyncTimer);
    resyncTimer = window.setTimeout(resync, RESYNC_SETTLE);
  }

  function resync() {
    if (!table()) return;
    window.fetch(window.location.pathname, { credentials: "same-origin", headers: { Accept: "text/html" } })
      .then(function (response) {
        if (!response.ok) throw new Error("HTTP " + response.status);
        return response.text();
      })
      .then(function (html) {
        var tbody = table();
        var fresh = new DOMParser().parseFromString(html, "text/html").querySelector("[data-documents]");
        if (!tbody || !fresh) return;
        tbody.replaceChildren.apply(tbody, Array.prototype.map.call(fresh.childNodes, function (node) {
          return document.importNode(node, true);
        }));
        tbody.querySelectorAll("tr[data-document-id]").forEach(function (row) {
          var p = latest[row.getAttribute("data-document-id")];
          if (p && p.status !== "deleted") applyPayload(row, p);
        });
        emptyRow(tbody);
      })
      .catch(function () { /* the next event tries again */ });
  }

  // --- uploads -------------------------------------------------------------------------------
  function csrfToken(form) {
    var input = form.querySelector("input[name=csrfmiddlewaretoken]");
    return input ? input.value : "";
  }

  function uploadItem(list, file) {
    var li = document.createElement("li");
    li.setAttribute("data-upload", file.name);
    li.setAttribute("data-state", "uploading");
    var name = document.createElement("span");
    name.className = "upload-name";
    name.textContent = file.name;
    var bar = document.createElement("progress");
    bar.max = 100;
    bar.value = 0;
    bar.setAttribute("aria-label", "Upload of " + file.name);
    var message = document.createElement("p");
    message.className = "upload-message small";
    message.setAttribute("data-upload-message", "");
    message.textContent = "Uploading…";
    li.appendChild(name);
    li.appendChild(bar);
    li.appendChild(message);
    list.insertBefore(li, list.firstChild);
    return { li: li, bar: bar, message: message };
  }

  function refused(item, text) {
    item.li.setAttribute("data-state", "refused");
    item.bar.hidden = true;
    item.message.setAttribute("role", "alert");
    item.message.textContent = text;
  }

  function added(item, body) {
    item.li.setAttribute("data-state", "done");
    item.bar.value = 100;
    item.message.textContent = "Uploaded; it is processed in the background (progress in the table below).";
    var usage = document.querySelector("[data-storage-usage]");
    if (usage && body.storage) usage.textContent = body.storage;
    var tbody = table();
    if (!tbody || !body.document || rowOf(tbody, body.document.id)) return;
    var holder = document.createElement("tbody");
    holder.innerHTML = body.row;
    var row = holder.querySelector("tr[data-document-id]");
    if (!row) { resyncSoon(); return; }
    tbody.insertBefore(row, tbody.firstChild);
    var heard = latest[body.document.id];
    if (heard) applyPayload(row, heard); // an event that came before the answer
    emptyRow(tbody);
  }

  function upload(form, list, file) {
    var item = uploadItem(list, file);
    var data = new FormData();
    data.append("file", file, file.name);
    var xhr = new XMLHttpRequest(); // fetch() cannot report an upload's progress
    xhr.open("POST", form.action);
    xhr.setRequestHeader("X-CSRFToken", csrfToken(form));
    xhr.setRequestHeader("Accept", "application/json");
    xhr.upload.addEventListener("progress", function (evt) {
      if (evt.lengthComputable) {
        item.bar.value = Math.round((100 * evt.loaded) / evt.total);
        item.message.textContent = "Uploading… " + item.bar.value + "%";
      }
    });
    xhr.addEventListener("load", function () {
      var body = null;
      try { body = JSON.parse(xhr.responseText); } catch (e) { body = null; }
      if (xhr.status === 201 && body) { added(item, body); return; }
      var text = body && body.error && body.error.message;
      refused(item, text || STATUS_TEXT[xhr.status] || "The upload failed (" + xhr.status + "). Try again.");
    });
    xhr.addEventListener("error", function () {
      refused(item, "The upload was interrupted. Check your connection and try again.");
    });
    xhr.send(data);
  }

  function uploadAll(form, files) {
    var list = document.querySelector("[data-upload-list]");
    Array.prototype.forEach.call(files, function (file) { upload(form, list, file); });
  }

  function wireUploads() {
    var form = document.querySelector("[data-upload-form]");
    if (!form || form.hasAttribute("data-wired")) return;
    form.setAttribute("data-wired", "");
    var input = form.querySelector("input[type=file]");
    var zone = form.querySelector("[data-drop-zone]");
    var submit = form.querySelector("[data-upload-submit]");
    if (submit) submit.hidden = true;
    input.addEventListener("change", function () {
      if (input.files && input.files.length) uploadAll(form, input.files);
      input.value = "";
    });
    form.addEventListener("submit", function (evt) {
      evt.preventDefault();
      if (input.files && input.files.length) uploadAll(form, input.files);
      input.value = "";
    });
    ["dragenter", "dragover"].forEach(function (name) {
      zone.addEventListener(name, function (evt) {
        evt.preventDefault();
        zone.setAttribute("data-dragging", "");
      });
    });
    ["dragleave", "dragend"].forEach(function (name) {
      zone.addEventListener(name, function () { zone.removeAttribute("data-dragging"); });
    });
    zone.addEventListener("drop", function (evt) {
      evt.preventDefault();
      zone.removeAttribute("data-dragging");
      if (evt.dataTransfer && evt.dataTransfer.files.length) uploadAll(form, evt.dataTransfer.files);
    });
  }

  // --- the live connection ---------------------------------------------------------------------
  function stop() {
    if (!conn) return;
    conn.stopped = true;
    window.clearTimeout(conn.timer);
    window.clearInterval(conn.ping);
    if (conn.socket && conn.socket.readyState <= 1) {
      try { conn.socket.close(1000); } catch (e) { /* already closing */ }
    }
    conn = null;
  }

  function open(c) {
    if (c.stopped) return;
    var socket;
    try {
      socket = new WebSocket(socketUrl(c.url));
    } catch (e) {
      setStatus("off", "Live progress is unavailable.");
      return;
    }
    c.socket = socket;
    socket.addEventListener("message", function (evt) {
      var message;
      try { message = JSON.parse(evt.data); } catch (e) { return; }
      if (!message || typeof message.event !== "string") return;
      if (message.event === "subscribed") {
        var first = c.delay === MIN_DELAY && !c.reconnected;
        c.delay = MIN_DELAY;
        setStatus("live", "Live");
        if (!first) resyncSoon(); // what changed while the connection was down
        return;
      }
      handle(message);
    });
    socket.addEventListener("open", function () {
      window.clearInterval(c.ping);
      c.ping = window.setInterval(function () {
        if (socket.readyState === 1) socket.send(JSON.stringify({ type: "ping" }));
      }, PING_EVERY);
    });
    socket.addEventListener("close", function (evt) {
      window.clearInterval(c.ping);
      if (c.stopped) return;
      if (FINAL_CLOSE_CODES[evt.code]) { setStatus("off", FINAL_CLOSE_CODES[evt.code]); return; }
      var wait = Math.round(c.delay * (0.8 + Math.random() * 0.4));
      c.delay = Math.min(c.delay * 2, MAX_DELAY);
      c.reconnected = true;
      setStatus("reconnecting", "Reconnecting…");
      c.timer = window.setTimeout(function () { open(c); }, wait);
    });
  }

  function scan() {
    wireUploads();
    var tbody = table();
    var url = tbody ? tbody.getAttribute("data-documents") : null;
    if (conn && conn.url === url) return;
    stop();
    latest = {};
    if (!url) return;
    if (!("WebSocket" in window)) { setStatus("off", "Live progress needs a newer browser."); return; }
    conn = { url: url, socket: null, timer: null, ping: null, delay: MIN_DELAY, stopped: false, reconnected: false };
    setStatus("connecting", "Connecting…");
    open(conn);
  }

  window.JagCallKnowledge = { scan: scan };
  document.addEventListener("htmx:load", scan);
  document.addEventListener("htmx:afterSettle", scan);
  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", scan); else scan();
})();
