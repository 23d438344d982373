/* Billing: the overview follows the organization's live events (/ws/o/<slug>/events/) and shows itself
   again when the plan or the standing changes ("organization.plan_changed"), e.g. once Stripe confirms
   a payment made in Checkout. After (re)connecting it fetches a fresh copy and compares the state it
   carries (data-billing-state), so a change announced before the socket was open is not missed. */
(function () {
  "use strict";

  if (window.JagCallBilling) { window.JagCallBilling.scan(); return; }

  var MIN_DELAY = 1000;
  var MAX_DELAY = 30000;
  var PING_EVERY = 25000;
  var FINAL_CLOSE_CODES = { 4401: true, 4403: true, 4404: true };
  var conn = null;

  function marker() { return document.querySelector("[data-billing-page]"); }

  function socketUrl(path) {
    var scheme = window.location.protocol === "https:" ? "wss://" : "ws://";
    return scheme + window.location.host + (path.charAt(0) === "/" ? path : "/" + path);
  }

  function show(page) {
    // The overview's own URL (never a form's action: a page answered to a POST is not fetched again).
    window.location.assign(page.getAttribute("data-overview-url"));
  }

  function checkForChange() {
    var page = marker();
    if (!page) return;
    window.fetch(page.getAttribute("data-overview-url"), { credentials: "same-origin", headers: { Accept: "text/html" } })
      .then(function (response) { return response.ok ? response.text() : null; })
      .then(function (html) {
        if (!html || !page.isConnected) return;
        var fresh = new DOMParser().parseFromString(html, "text/html").querySelector("[data-billing-page]");
        if (fresh && fresh.getAttribute("data-billing-state") !== page.getAttribute("data-billing-state")) show(page);
      })
      .catch(function () { /* the next event tries again */ });
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
    try { socket = new WebSocket(socketUrl(c.url)); } catch (e) { return; }
    c.socket = socket;
    socket.addEventListener("message", function (evt) {
      var message;
      try { message = JSON.parse(evt.data); } catch (e) { return; }
      if (!message || typeof message.event !== "string" || c.stopped) return;
      if (message.event === "subscribed") {
        c.delay = MIN_DELAY;
        var page = marker();
        if (page) page.setAttribute("data-live-state", "live");
        checkForChange();
        return;
      }
      if (message.event === "organization.plan_changed") {
        var page = marker();
        if (page) show(page);
      }
    });
    socket.addEventListener("open", function () {
      window.clearInterval(c.ping);
      c.ping = window.setInterval(function () {
        if (socket.readyState === 1) socket.send(JSON.stringify({ type: "ping" }));
      }, PING_EVERY);
    });
    socket.addEventListener("close", function (evt) {
      window.clearInterval(c.ping);
      if (c.stopped || FINAL_CLOSE_CODES[evt.code]) return;
      var wait = Math.round(c.delay * (0.8 + Math.random() * 0.4));
      c.delay = Math.min(c.delay * 2, MAX_DELAY);
      c.timer = window.setTimeout(function () { open(c); }, wait);
    });
  }

  function scan() {
    var page = marker();
    var url = page ? page.getAttribute("data-live-events-url") : null;
    if (conn && conn.url === url && !conn.stopped) return;
    stop();
    if (!url || !("WebSocket" in window)) return;
    conn = { url: url, socket: null, timer: null, ping: null, delay: MIN_DELAY, stopped: false };
    open(conn);
  }

  window.JagCallBilling = { scan: scan };
  document.addEventListener("htmx:afterSettle", scan);
  document.addEventListener("htmx:historyRestore", scan);
  window.addEventListener("pagehide", stop);
  window.addEventListener("pageshow", function (evt) { if (evt.persisted) scan(); });
  scan();
})();
