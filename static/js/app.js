/* JagCall portal behaviour: live activity over a websocket, menus that close
   when you click elsewhere, and focus that follows page changes. */
(function () {
  "use strict";

  // --- live activity ------------------------------------------------------------

  var MAX_ITEMS = 50;
  var MIN_DELAY = 1000;
  var MAX_DELAY = 30000;
  var PING_EVERY = 25000;
  // The server closes with these when the visitor may not listen; retrying won't help.
  var FINAL_CLOSE_CODES = { 4401: "Sign in again to see live activity.", 4403: "Your role cannot see live activity.", 4404: "Live activity is not available for this organization." };

  var current = null; // { element, socket, timer, ping, delay, stopped }

  function socketUrl(path) {
    var scheme = window.location.protocol === "https:" ? "wss://" : "ws://";
    if (/^wss?:\/\//.test(path)) return path;
    return scheme + window.location.host + (path.charAt(0) === "/" ? path : "/" + path);
  }

  function statusElement(list) {
    var panel = list.closest("[data-live-panel]");
    return panel ? panel.querySelector("[data-live-status]") : null;
  }

  function setStatus(list, state, text) {
    list.setAttribute("data-live-state", state);
    var status = statusElement(list);
    if (status) {
      status.setAttribute("data-state", state);
      status.textContent = text;
    }
  }

  function describe(event, payload) {
    payload = payload || {};
    var subject = payload.email || payload.name || "";
    var details = [];
    if (!subject) {
      Object.keys(payload).forEach(function (key) {
        var value = payload[key];
        if (value !== null && typeof value !== "object") details.push(key + ": " + value);
      });
      subject = details.join(", ");
    }
    var text = event + (subject ? ": " + subject : "");
    if (payload.role && (payload.email || payload.name)) text += " (" + payload.role + ")";
    return text;
  }

  function formatTime(iso) {
    if (!iso) return "";
    var date = new Date(iso);
    if (isNaN(date.getTime())) return "";
    return date.toLocaleString([], { dateStyle: "medium", timeStyle: "short" });
  }

  function addEvent(list, message) {
    var empty = list.querySelector(".live-empty");
    if (empty) empty.remove();
    var item = document.createElement("li");
    var text = document.createElement("span");
    text.className = "live-text";
    text.textContent = describe(message.event, message.payload);
    item.appendChild(text);
    var when = formatTime(message.at);
    if (when) {
      var time = document.createElement("time");
      time.setAttribute("datetime", message.at);
      time.textContent = when;
      item.appendChild(document.createTextNode(" "));
      item.appendChild(time);
    }
    list.insertBefore(item, list.firstChild);
    while (list.children.length > MAX_ITEMS) list.removeChild(list.lastChild);
  }

  function stop(conn) {
    if (!conn) return;
    conn.stopped = true;
    window.clearTimeout(conn.timer);
    window.clearInterval(conn.ping);
    if (conn.socket && conn.socket.readyState <= 1) {
      try { conn.socket.close(1000); } catch (e) { /* already closing */ }
    }
  }

  function open(conn) {
    if (conn.stopped) return;
    var list = conn.element;
    var socket;
    try {
      socket = new WebSocket(socketUrl(list.getAttribute("data-live-events")));
    } catch (e) {
      setStatus(list, "off", "Live updates are unavailable in this browser.");
      return;
    }
    conn.socket = socket;

    socket.addEventListener("message", function (evt) {
      if (conn.stopped || !list.isConnected) { stop(conn); return; }
      var message;
      try { message = JSON.parse(evt.data); } catch (e) { return; }
      if (!message || typeof message.event !== "string") return;
      if (message.event === "subscribed") {
        conn.delay = MIN_DELAY;
        setStatus(list, "live", "Live");
        return;
      }
      if (message.event === "pong") return;
      addEvent(list, message);
    });

    socket.addEventListener("open", function () {
      window.clearInterval(conn.ping);
      conn.ping = window.setInterval(function () {
        if (socket.readyState === 1) socket.send(JSON.stringify({ type: "ping" }));
      }, PING_EVERY);
    });

    socket.addEventListener("close", function (evt) {
      window.clearInterval(conn.ping);
      if (conn.stopped || !list.isConnected) return;
      if (FINAL_CLOSE_CODES[evt.code]) {
        setStatus(list, "off", FINAL_CLOSE_CODES[evt.code]);
        return;
      }
      var wait = conn.delay;
      conn.delay = Math.min(conn.delay * 2, MAX_DELAY);
      // A little jitter so many open tabs don't all reconnect at once.
      wait = Math.round(wait * (0.8 + Math.random() * 0.4));
      setStatus(list, "reconnecting", "Reconnecting…");
      conn.timer = window.setTimeout(function () { open(conn); }, wait);
    });
  }

  function connectLiveEvents() {
    var list = document.querySelector("[data-live-events]");
    if (current && (current.element === list) && !current.stopped) return;
    stop(current);
    current = null;
    if (!list || !("WebSocket" in window)) {
      if (list) setStatus(list, "off", "Live updates need a newer browser.");
      return;
    }
    current = { element: list, socket: null, timer: null, ping: null, delay: MIN_DELAY, stopped: false };
    setStatus(list, "connecting", "Connecting…");
    open(current);
  }

  // --- menus ----------------------------------------------------------------------

  function closeMenus(except) {
    document.querySelectorAll("details.dropdown[open]").forEach(function (menu) {
      if (menu !== except) menu.removeAttribute("open");
    });
  }

  document.addEventListener("click", function (evt) {
    var inside = evt.target.closest ? evt.target.closest("details.dropdown") : null;
    closeMenus(inside);
  });

  document.addEventListener("keydown", function (evt) {
    if (evt.key !== "Escape") return;
    var menu = document.activeElement && document.activeElement.closest
      ? document.activeElement.closest("details.dropdown[open]")
      : null;
    if (menu) {
      menu.removeAttribute("open");
      var summary = menu.querySelector("summary");
      if (summary) summary.focus();
    } else {
      closeMenus(null);
    }
  });

  // --- forms in flight -------------------------------------------------------------

  // While a form is being sent, its submit button shows a spinner and can't be pressed twice.
  document.addEventListener("htmx:beforeSend", function (evt) {
    var form = evt.detail && evt.detail.elt;
    if (!form || form.tagName !== "FORM") return;
    form.querySelectorAll("button[type=submit]").forEach(function (button) {
      button.setAttribute("aria-busy", "true");
      button.disabled = true;
    });
  });

  document.addEventListener("htmx:afterRequest", function (evt) {
    var form = evt.detail && evt.detail.elt;
    if (!form || form.tagName !== "FORM" || !form.isConnected) return;
    form.querySelectorAll("button[type=submit][aria-busy]").forEach(function (button) {
      button.removeAttribute("aria-busy");
      button.disabled = false;
    });
  });

  // --- focus after page changes --------------------------------------------------

  function focusAfterChange(isNewPage) {
    var summary = document.querySelector("[data-error-summary]");
    if (summary) {
      summary.focus();
      return;
    }
    if (!isNewPage) return;
    var auto = document.querySelector("main [autofocus]");
    if (auto) { auto.focus(); return; }
    var main = document.getElementById("main");
    if (main) main.focus({ preventScroll: true });
  }

  function pageReady() {
    connectLiveEvents();
  }

  document.addEventListener("DOMContentLoaded", function () {
    pageReady();
    focusAfterChange(false);
  });

  // Pages fetched by htmx replace the body's content: close menus, reconnect and move focus. A panel
  // that refreshes itself (the dashboard's live calls, a call's post-call steps) settles too; a menu
  // the person just opened must stay open then.
  document.addEventListener("htmx:afterSettle", function (evt) {
    var boosted = !!(evt.detail && evt.detail.boosted);
    if (boosted) closeMenus(null);
    pageReady();
    if (boosted) focusAfterChange(true);
  });

  document.addEventListener("htmx:historyRestore", function () {
    pageReady();
  });

  window.addEventListener("pagehide", function () { stop(current); current = null; });
  window.addEventListener("pageshow", function (evt) { if (evt.persisted) pageReady(); });
})();
