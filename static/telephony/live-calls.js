/* Live calls: the calls list, a call's page and the dashboard's "Live calls" panel follow the
   organization's live events (/ws/o/<slug>/events/, "call.updated") without a reload.
   New calls appear at the top of the list's first page, rows change state, ended calls leave the
   live panel. Every value shown comes from the server's payload and is set as text, never as HTML.
   A call's page also fetches itself again after its call's events (call.updated, call.post_call) and
   swaps in the server's fresh sections marked data-call-refresh (facts, timeline, recording, transcript
   and summary); while its post-call section says data-pending it does so every few seconds too, so the
   recording, transcript and summary appear without a reload even if the live connection drops.
   Other scripts of the page (conversation.js) hear every message as a "jagcall:org-event" event on the
   document (detail: the message), and every fresh copy of a call's page as "jagcall:call-page-fetched"
   (detail: { document }), so the page keeps one connection and fetches itself once. */
(function () {
  "use strict";

  if (window.JagCallLiveCalls) { window.JagCallLiveCalls.scan(); return; }

  var MIN_DELAY = 1000;
  var MAX_DELAY = 30000;
  var PING_EVERY = 25000;
  var ENDED_LINGER = 6000; // how long an ended call stays in the live panel
  var FINAL_CLOSE_CODES = { 4401: "Sign in again to see live calls.", 4403: "Your role cannot see live calls.", 4404: "Live calls are not available here." };

  var REFRESH_SETTLE = 300; // a burst of events (recording, transcript, summary stored) makes one fetch
  var REFRESH_POLL = 5000; // while the post-call section is pending

  var conn = null; // { url, socket, timer, ping, delay, stopped }
  var refresh = { timer: null, poll: null, busy: false, again: false };

  function socketUrl(path) {
    if (/^wss?:\/\//.test(path)) return path;
    var scheme = window.location.protocol === "https:" ? "wss://" : "ws://";
    return scheme + window.location.host + (path.charAt(0) === "/" ? path : "/" + path);
  }

  function targets() {
    return {
      table: document.querySelector("[data-calls-table]"),
      panel: document.querySelector("[data-live-calls]"),
      page: document.querySelector("[data-call-page]")
    };
  }

  function eventsUrl(t) {
    if (t.table) return t.table.getAttribute("data-calls-table");
    if (t.panel) return t.panel.getAttribute("data-live-calls");
    if (t.page) return t.page.getAttribute("data-live-events-url");
    return null;
  }

  function setStatus(state, text) {
    document.querySelectorAll("[data-calls-live-status]").forEach(function (el) {
      el.setAttribute("data-state", state);
      el.textContent = text;
    });
  }

  function badge(call) {
    var span = document.createElement("span");
    span.className = "badge call-status";
    span.setAttribute("data-call-status", call.status);
    span.textContent = call.status_label;
    return span;
  }

  function duration(call) {
    return call.duration_seconds === null || call.duration_seconds === undefined ? "—" : call.duration_seconds + " s";
  }

  function formatWhen(iso) {
    var date = new Date(iso);
    if (isNaN(date.getTime())) return "";
    return date.toLocaleString([], { day: "numeric", month: "short", year: "numeric", hour: "2-digit", minute: "2-digit" });
  }

  function cell(tag, label, child) {
    var el = document.createElement(tag);
    el.setAttribute("data-label", label);
    if (typeof child === "string") el.textContent = child; else if (child) el.appendChild(child);
    return el;
  }

  function fillStatusCell(td, call) {
    while (td.firstChild) td.removeChild(td.firstChild);
    td.appendChild(badge(call));
    if (call.error_message) {
      var error = document.createElement("small");
      error.className = "muted";
      error.setAttribute("data-call-error", "");
      error.textContent = " " + call.error_message;
      td.appendChild(document.createTextNode(" "));
      td.appendChild(error);
    }
  }

  function newRow(call) {
    var tr = document.createElement("tr");
    tr.setAttribute("data-call-id", call.id);
    tr.className = "call-new";
    var link = document.createElement("a");
    link.href = call.url;
    var time = document.createElement("time");
    time.setAttribute("datetime", call.created_at);
    time.className = "nowrap";
    time.textContent = formatWhen(call.created_at);
    link.appendChild(time);
    var when = cell("th", "When", link);
    when.setAttribute("scope", "row");
    tr.appendChild(when);
    tr.appendChild(cell("td", "Direction", call.direction_label));
    tr.appendChild(cell("td", "Number", call.counterpart));
    tr.appendChild(cell("td", "Agent", call.agent || "—"));
    tr.appendChild(cell("td", "Status", null));
    var dur = cell("td", "Duration", duration(call));
    dur.setAttribute("data-call-duration", "");
    tr.appendChild(dur);
    return tr;
  }

  function updateTable(tbody, call) {
    var row = tbody.querySelector('tr[data-call-id="' + CSS.escape(call.id) + '"]');
    if (!row) {
      if (tbody.getAttribute("data-live-insert") !== "true") return;
      row = newRow(call);
      tbody.insertBefore(row, tbody.firstChild);
      var wrap = document.querySelector("[data-calls-table-wrap]");
      if (wrap) wrap.hidden = false;
      var empty = document.querySelector("[data-calls-empty]");
      if (empty) empty.remove();
    }
    row.setAttribute("data-status", call.status);
    fillStatusCell(row.querySelector('[data-label="Status"]'), call);
    var dur = row.querySelector("[data-call-duration]");
    if (dur) dur.textContent = duration(call);
  }

  function panelItem(call) {
    var li = document.createElement("li");
    li.setAttribute("data-call-id", call.id);
    var link = document.createElement("a");
    link.href = call.url;
    link.textContent = call.direction_label + " · " + call.counterpart;
    li.appendChild(link);
    li.appendChild(document.createTextNode(" "));
    li.appendChild(badge(call));
    if (call.agent) {
      var agent = document.createElement("span");
      agent.className = "muted small";
      agent.textContent = " " + call.agent;
      li.appendChild(agent);
    }
    return li;
  }

  function updatePanel(panel, call) {
    var list = panel.querySelector("[data-live-calls-list]");
    if (!list) return;
    var item = list.querySelector('li[data-call-id="' + CSS.escape(call.id) + '"]');
    if (!item && call.finished) return; // ended before we saw it: not live
    var fresh = panelItem(call);
    fresh.setAttribute("data-status", call.status);
    if (item) list.replaceChild(fresh, item); else list.insertBefore(fresh, list.firstChild);
    var empty = list.querySelector("[data-live-calls-empty]");
    if (empty) empty.remove();
    if (call.finished) {
      window.setTimeout(function () {
        if (fresh.isConnected) fresh.remove();
        if (!list.querySelector("li")) {
          var none = document.createElement("li");
          none.className = "live-empty";
          none.setAttribute("data-live-calls-empty", "");
          none.textContent = "No calls right now. Calls appear here while they ring and talk.";
          list.appendChild(none);
        }
      }, ENDED_LINGER);
    }
  }

  function updatePage(page, call) {
    if (page.getAttribute("data-call-page") !== call.id) return;
    var status = page.querySelector("[data-call-status]");
    if (status) status.replaceWith(badge(call));
    var dur = page.querySelector("[data-call-duration]");
    if (dur) dur.textContent = duration(call);
    var timeline = document.querySelector("[data-call-timeline]");
    if (timeline) {
      var li = document.createElement("li");
      li.textContent = new Date().toLocaleTimeString() + " — " + call.status_label;
      timeline.appendChild(li);
    }
  }

  // --- a call's page: its sections again from the server -------------------------------------
  function refreshSoon(delay) {
    window.clearTimeout(refresh.timer);
    refresh.timer = window.setTimeout(refreshSections, delay);
  }

  function pollWhilePending() {
    window.clearTimeout(refresh.poll);
    if (document.querySelector("[data-post-call][data-pending]")) {
      refresh.poll = window.setTimeout(refreshSections, REFRESH_POLL);
    }
  }

  function refreshSections() {
    if (!document.querySelector("[data-call-page]")) return;
    if (refresh.busy) { refresh.again = true; return; }
    refresh.busy = true;
    window.fetch(window.location.href, { credentials: "same-origin", headers: { Accept: "text/html" } })
      .then(function (response) {
        if (!response.ok) throw new Error("HTTP " + response.status);
        return response.text();
      })
      .then(function (html) {
        var fresh = new DOMParser().parseFromString(html, "text/html");
        document.dispatchEvent(new CustomEvent("jagcall:call-page-fetched", { detail: { document: fresh } }));
        document.querySelectorAll("[data-call-refresh][id]").forEach(function (section) {
          var replacement = fresh.getElementById(section.id);
          // An unchanged section stays as it is (a recording being played is not interrupted).
          if (replacement && !replacement.isEqualNode(section)) {
            section.replaceWith(document.importNode(replacement, true));
          }
        });
      })
      .catch(function () { /* the next event or poll tries again */ })
      .then(function () {
        refresh.busy = false;
        if (refresh.again) { refresh.again = false; refreshSoon(0); return; }
        pollWhilePending();
      });
  }

  function handle(message) {
    if (!message.payload || !message.payload.id) return;
    var t = targets();
    if (message.event === "call.post_call") {
      if (t.page && t.page.getAttribute("data-call-page") === message.payload.id) refreshSoon(REFRESH_SETTLE);
      return;
    }
    if (message.event !== "call.updated") return;
    if (t.table) updateTable(t.table, message.payload);
    if (t.panel) updatePanel(t.panel, message.payload);
    if (t.page) {
      updatePage(t.page, message.payload);
      if (t.page.getAttribute("data-call-page") === message.payload.id) refreshSoon(REFRESH_SETTLE);
    }
  }

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
    try { socket = new WebSocket(socketUrl(c.url)); } catch (e) { setStatus("off", "Live updates are unavailable."); return; }
    c.socket = socket;
    socket.addEventListener("message", function (evt) {
      var message;
      try { message = JSON.parse(evt.data); } catch (e) { return; }
      if (!message || typeof message.event !== "string") return;
      document.dispatchEvent(new CustomEvent("jagcall:org-event", { detail: message }));
      if (message.event === "subscribed") {
        c.delay = MIN_DELAY;
        setStatus("live", "Live");
        // What happened between the page's rendering (or the last connection) and now.
        if (document.querySelector("[data-call-page]")) refreshSoon(0);
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
      setStatus("reconnecting", "Reconnecting…");
      c.timer = window.setTimeout(function () { open(c); }, wait);
    });
  }

  function scan() {
    pollWhilePending();
    var url = eventsUrl(targets());
    if (conn && conn.url === url) return;
    stop();
    if (!url) return;
    if (!("WebSocket" in window)) { setStatus("off", "Live updates need a newer browser."); return; }
    conn = { url: url, socket: null, timer: null, ping: null, delay: MIN_DELAY, stopped: false };
    setStatus("connecting", "Connecting…");
    open(conn);
  }

  window.JagCallLiveCalls = { scan: scan };
  document.addEventListener("htmx:load", scan);
  document.addEventListener("htmx:afterSettle", scan);
  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", scan); else scan();
})();
