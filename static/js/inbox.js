/* Messages: the inbox and an open thread follow the organization's live events (/ws/o/<slug>/events/)
   without a reload, and the composer counts characters, segments and the encoding as the person types.

   Live events (messaging/services/events.py shapes them; payload {message, conversation}):
   - "message.received", "message.sent": the inbox row moves to the top with its preview, time and unread
     count (a new conversation gets a row on the first page of an unfiltered inbox); the open thread
     appends the message (and, for a received one, tells the server it was read while the page is seen).
   - "message.status_changed": the message's status, timeline and error change in place.
   - "subscription.changed": the inbox rows of the pair show it; the open thread of the pair fetches its
     sections again (the opt-out, its history and review).
   - "conversation.read", "conversation.taken_over", "conversation.released" (messaging/services/
     conversations.py): unread counts and the agent's state follow what other members do.
   The navigation's unread badge follows the same events. After (re)connecting, the page fetches itself
   and swaps in its fresh sections (marked data-live-refresh), so nothing sent meanwhile is missed.

   [!!] Every text shown (a message, a name, a number) is set as text (textContent), never as HTML.

   The segment count follows the rules of messaging/segments.py exactly (tests/browser/test_inbox.py
   compares both on tricky texts): GSM-7 when every character is in the GSM 03.38 basic or extension
   table (an extension character takes two septets), 160 septets in one segment, else 153 a segment,
   an extension character never split; any other character makes the whole text UCS-2, 70 UTF-16 units
   in one segment, else 67 a segment, a surrogate pair never split. Characters are counted as code points,
   as Python counts them. */
(function () {
  "use strict";

  if (window.JagCallInbox) { window.JagCallInbox.scan(); return; }

  // --- segments (messaging/segments.py) ------------------------------------------------------------

  var GSM7_BASIC = new Set(Array.from(
    "@\u00a3$\u00a5\u00e8\u00e9\u00f9\u00ec\u00f2\u00c7\u000a\u00d8\u00f8\u000d\u00c5\u00e5\u0394_\u03a6\u0393\u039b\u03a9\u03a0\u03a8\u03a3\u0398\u039e\u001b\u00c6\u00e6\u00df\u00c9 !\"#\u00a4%&'()*+,-./0123456789:;<=>?" +
    "\u00a1ABCDEFGHIJKLMNOPQRSTUVWXYZ\u00c4\u00d6\u00d1\u00dc\u00a7\u00bfabcdefghijklmnopqrstuvwxyz\u00e4\u00f6\u00f1\u00fc\u00e0"
  ));
  var GSM7_EXTENDED = new Set(Array.from("\u000c^{}\\[~]|\u20ac"));

  function isGsm7(ch) { return GSM7_BASIC.has(ch) || GSM7_EXTENDED.has(ch); }

  function split(units, single, multi) {
    var total = 0, i;
    for (i = 0; i < units.length; i++) total += units[i];
    if (total <= single) return [1, single - total];
    var segments = 1, used = 0;
    for (i = 0; i < units.length; i++) {
      if (used + units[i] > multi) { segments += 1; used = 0; }
      used += units[i];
    }
    return [segments, multi - used];
  }

  function countSegments(text) {
    var chars = Array.from(text || "");
    var result;
    if (chars.every(isGsm7)) {
      result = split(chars.map(function (ch) { return GSM7_EXTENDED.has(ch) ? 2 : 1; }), 160, 153);
      return { encoding: "GSM-7", segments: result[0], characters: chars.length, remaining: result[1] };
    }
    result = split(chars.map(function (ch) { return ch.codePointAt(0) > 0xffff ? 2 : 1; }), 70, 67);
    return { encoding: "UCS-2", segments: result[0], characters: chars.length, remaining: result[1] };
  }

  function outsideGsm7(text, limit) {
    var seen = [];
    Array.from(text || "").forEach(function (ch) {
      if (!isGsm7(ch) && seen.indexOf(ch) === -1 && seen.length < limit) seen.push(ch);
    });
    return seen;
  }

  // --- the composer ---------------------------------------------------------------------------------

  function setText(root, selector, text) {
    var node = root.querySelector(selector);
    if (node) node.textContent = String(text);
    return node;
  }

  function showCount(counter, text) {
    var count = countSegments(text);
    var max = parseInt(counter.getAttribute("data-max-body"), 10) || 1600;
    counter.setAttribute("data-encoding", count.encoding);
    counter.setAttribute("data-segments", String(count.segments));
    counter.setAttribute("data-characters", String(count.characters));
    setText(counter, "[data-segment-characters]", count.characters);
    setText(counter, "[data-segment-segments]", count.segments);
    setText(counter, "[data-segment-unit]", count.segments === 1 ? "segment" : "segments");
    var encoding = setText(counter, "[data-segment-encoding]", count.encoding);
    if (encoding) encoding.setAttribute("data-segment-encoding", count.encoding);
    setText(counter, "[data-segment-remaining]", count.remaining);
    var reason = counter.querySelector("[data-segment-reason]");
    if (reason) {
      var odd = count.encoding === "UCS-2" ? outsideGsm7(text, 3) : [];
      reason.hidden = !odd.length;
      reason.textContent = odd.length
        ? "UCS-2 because of " + odd.map(function (ch) { return "\u201c" + ch + "\u201d"; }).join(", ") +
          ": a text with any such character fits 70 characters a segment instead of 160."
        : "";
    }
    var over = counter.querySelector("[data-segment-over]");
    if (over) over.hidden = count.characters <= max;
  }

  function bindComposer(form) {
    if (form.hasAttribute("data-composer-bound")) return;
    form.setAttribute("data-composer-bound", "");
    var input = form.querySelector("[data-segment-input]");
    var counter = form.querySelector("[data-segment-counter]");
    if (input && counter) {
      var update = function () { showCount(counter, input.value); };
      input.addEventListener("input", update);
      update();
    }
    var select = form.querySelector("select[name='from_number']");
    var warning = form.querySelector("[data-a2p-warning]");
    var table = document.getElementById(form.getAttribute("data-a2p-numbers") || "");
    if (select && warning && table) {
      var warned = {}; // number id -> its A2P 10DLC state, for the US long codes not verified
      try { warned = JSON.parse(table.textContent) || {}; } catch (e) { warned = {}; }
      var toggle = function () {
        var state = Object.prototype.hasOwnProperty.call(warned, select.value) ? warned[select.value] : null;
        warning.hidden = state === null;
        setText(warning, "[data-a2p-status]", state === null ? "" : String(state).toLowerCase());
      };
      select.addEventListener("change", toggle);
      toggle();
    }
  }

  // --- shared helpers -------------------------------------------------------------------------------

  var MIN_DELAY = 1000;
  var MAX_DELAY = 30000;
  var PING_EVERY = 25000;
  var READ_SETTLE = 400;
  var PREVIEW_CHARS = 120;
  var FINAL_CLOSE_CODES = {
    4401: "Sign in again to see new messages.",
    4403: "Your role cannot see new messages.",
    4404: "Live messages are not available here."
  };

  var conn = null; // { url, socket, timer, ping, delay, stopped }
  // seen: live events handled so far. A page fetched before one of them is older than what it changed.
  var refresh = { busy: false, again: false, seen: 0 };
  var read = { timer: null, pending: false };
  var scrolled = new WeakSet();

  function labels() {
    var node = document.getElementById("inbox-labels");
    var fallback = { status: {}, sender_kinds: {}, outbound_prefix: "Sent: ", no_text: "" };
    if (!node) return fallback;
    try { return JSON.parse(node.textContent) || fallback; } catch (e) { return fallback; }
  }

  function el(tag, className, text) {
    var node = document.createElement(tag);
    if (className) node.className = className;
    if (text !== undefined && text !== null) node.textContent = String(text);
    return node;
  }

  function formatWhen(iso, timeOnly) {
    var date = new Date(iso);
    if (isNaN(date.getTime())) return "";
    if (timeOnly) return date.toLocaleTimeString([], { hour: "2-digit", minute: "2-digit", second: "2-digit" });
    return date.toLocaleString([], { day: "numeric", month: "short", year: "numeric", hour: "2-digit", minute: "2-digit" });
  }

  function timeElement(iso, timeOnly, className) {
    var node = el("time", className || null, formatWhen(iso, timeOnly));
    node.setAttribute("datetime", iso || "");
    node.setAttribute("data-local-time", timeOnly ? "time" : "");
    node.setAttribute("data-localized", "");
    return node;
  }

  // Times rendered by the server (UTC) shown in the reader's own time zone, as the live ones are.
  function localizeTimes(root) {
    root.querySelectorAll("time[data-local-time]:not([data-localized])").forEach(function (node) {
      var text = formatWhen(node.getAttribute("datetime"), node.getAttribute("data-local-time") === "time");
      if (text) node.textContent = text;
      node.setAttribute("data-localized", "");
    });
  }

  function targets() {
    return {
      inbox: document.querySelector("[data-inbox-page]"),
      thread: document.querySelector("[data-thread-page]")
    };
  }

  function eventsUrl(t) {
    var root = t.inbox || t.thread;
    return root ? root.getAttribute("data-live-events-url") : null;
  }

  function setLiveStatus(state, text) {
    if (conn) conn.status = [state, text]; // shown again on a page that replaces the body (htmx)
    document.querySelectorAll("[data-inbox-live-status]").forEach(function (node) {
      node.setAttribute("data-state", state);
      node.textContent = text;
    });
  }

  // --- the navigation's unread badge ------------------------------------------------------------------

  function setBadge(total) {
    document.querySelectorAll("[data-unread-total]").forEach(function (badge) {
      total = Math.max(0, total);
      badge.setAttribute("data-unread-total", String(total));
      badge.hidden = total === 0;
      if (badge.firstChild && badge.firstChild.nodeType === 3) badge.firstChild.nodeValue = String(total);
    });
  }

  function addToBadge(delta) {
    var badge = document.querySelector("[data-unread-total]");
    if (!badge || !delta) return;
    setBadge((parseInt(badge.getAttribute("data-unread-total"), 10) || 0) + delta);
  }

  // --- the inbox ------------------------------------------------------------------------------------

  function preview(message) {
    var text = (message.body || "").split(/\s+/).filter(Boolean).join(" ");
    if (!text) return message.media_urls && message.media_urls.length ? labels().no_text : "";
    var chars = Array.from(text);
    return chars.length <= PREVIEW_CHARS ? text : chars.slice(0, PREVIEW_CHARS - 1).join("") + "\u2026";
  }

  function countBadge(className, attribute, count, hiddenText) {
    var badge = el("span", "badge " + className);
    badge.setAttribute(attribute, "");
    badge.appendChild(document.createTextNode(String(count)));
    badge.appendChild(el("span", "visually-hidden", hiddenText));
    return badge;
  }

  function tag(className, attribute, text) {
    var badge = el("span", "badge " + className, text);
    badge.setAttribute(attribute, "");
    badge.hidden = true;
    return badge;
  }

  function newInboxRow(conversation, urlTemplate) {
    var contact = conversation.contact || {};
    var li = el("li");
    li.setAttribute("data-conversation-id", conversation.id);
    li.setAttribute("data-our-number", conversation.phone_number || "");
    li.setAttribute("data-contact-phone", contact.phone || "");
    li.setAttribute("data-unread", "0");
    var link = el("a", "inbox-row");
    link.href = urlTemplate.replace("00000000-0000-0000-0000-000000000000", conversation.id);
    var who = el("span", "inbox-who");
    who.appendChild(el("span", null, contact.name || contact.phone || "")).setAttribute("data-inbox-name", "");
    if (contact.name) {
      who.appendChild(document.createTextNode(" "));
      who.appendChild(el("span", "muted small", contact.phone || "")).setAttribute("data-inbox-phone", "");
    }
    link.appendChild(who);
    var meta = el("span", "inbox-meta small");
    var time = timeElement(conversation.last_message_at, false);
    time.setAttribute("data-inbox-time", "");
    meta.appendChild(time);
    link.appendChild(meta);
    link.appendChild(el("span", "inbox-preview")).setAttribute("data-inbox-preview", "");
    var tags = el("span", "inbox-tags");
    var unread = countBadge("unread-count", "data-inbox-unread", 0, " unread");
    unread.hidden = true;
    tags.appendChild(unread);
    tags.appendChild(tag("badge-review", "data-inbox-review", "Opt-out to review"));
    tags.appendChild(tag("badge-opted-out", "data-inbox-opted-out", "Opted out"));
    tags.appendChild(tag("badge-paused", "data-inbox-paused", "Taken over"));
    link.appendChild(tags);
    link.appendChild(el("span", "small muted", "To / from " + (conversation.phone_number || ""))).setAttribute("data-inbox-our-number", "");
    li.appendChild(link);
    return li;
  }

  function setUnread(row, count) {
    row.setAttribute("data-unread", String(count));
    var badge = row.querySelector("[data-inbox-unread]");
    if (!badge) return;
    badge.hidden = !count;
    if (badge.firstChild && badge.firstChild.nodeType === 3) badge.firstChild.nodeValue = String(count);
  }

  function setPreview(row, message) {
    var node = row.querySelector("[data-inbox-preview]");
    if (!node) return;
    while (node.firstChild) node.removeChild(node.firstChild);
    if (message.direction === "outbound") node.appendChild(el("span", "muted", labels().outbound_prefix));
    node.appendChild(document.createTextNode(preview(message)));
  }

  function setWhen(row, iso) {
    row.setAttribute("data-last-at", iso || "");
    var time = row.querySelector("[data-inbox-time]");
    if (!time) return;
    time.setAttribute("datetime", iso || "");
    time.textContent = formatWhen(iso, false);
  }

  function inboxRow(list, id) {
    return list.querySelector('li[data-conversation-id="' + CSS.escape(id) + '"]');
  }

  function flash(node, className) {
    node.classList.remove(className);
    void node.offsetWidth; // restart the animation
    node.classList.add(className);
  }

  function inboxMessage(t, event, payload) {
    var list = document.querySelector("[data-inbox-list]");
    var conversation = payload.conversation;
    if (!list || !conversation || !conversation.id) return;
    var live = list.getAttribute("data-live-insert") === "true";
    var row = inboxRow(list, conversation.id);
    if (!row) {
      if (!live || event === "message.status_changed") return;
      row = newInboxRow(conversation, t.inbox.getAttribute("data-thread-url-template"));
      list.hidden = false;
      var empty = document.querySelector("[data-inbox-empty]");
      if (empty) empty.remove();
    }
    setUnread(row, conversation.unread_count || 0);
    row.querySelector("[data-inbox-paused]").hidden = !conversation.agent_paused;
    if (event === "message.status_changed" || !payload.message) return;
    setPreview(row, payload.message);
    setWhen(row, conversation.last_message_at);
    if (!row.parentNode || (live && list.firstElementChild !== row)) list.insertBefore(row, list.firstElementChild);
    flash(row, "inbox-new");
  }

  function inboxConversation(payload) {
    var list = document.querySelector("[data-inbox-list]");
    var conversation = payload.conversation;
    if (!list || !conversation || !conversation.id) return;
    var row = inboxRow(list, conversation.id);
    if (!row) return;
    setUnread(row, conversation.unread_count || 0);
    row.querySelector("[data-inbox-paused]").hidden = !conversation.agent_paused;
  }

  function inboxSubscription(payload) {
    var list = document.querySelector("[data-inbox-list]");
    if (!list) return;
    list.querySelectorAll("li[data-conversation-id]").forEach(function (row) {
      if (row.getAttribute("data-our-number") !== payload.sender || row.getAttribute("data-contact-phone") !== payload.recipient) return;
      var review = !payload.subscribed && !!payload.flagged_for_review;
      row.querySelector("[data-inbox-review]").hidden = !review;
      row.querySelector("[data-inbox-opted-out]").hidden = payload.subscribed || review;
    });
  }

  // --- the open thread ------------------------------------------------------------------------------

  function senderName(message, t) {
    var kinds = labels().sender_kinds;
    if (message.sender_type === "contact") return t.thread.getAttribute("data-contact-name") || message.sender || "";
    if (message.sender_type === "system") return "JagCall";
    return message.sender || kinds[message.sender_type] || "";
  }

  function isFailed(status) { return status === "failed" || status === "undelivered"; }

  function timelineItem(status, errorCode, iso) {
    var li = el("li");
    li.appendChild(timeElement(iso, true));
    var text = " \u2014 " + (labels().status[status] || status);
    if (errorCode) text += " (error " + errorCode + ")";
    li.appendChild(document.createTextNode(text));
    return li;
  }

  function showError(item, message) {
    var error = item.querySelector("[data-message-error]");
    if (!error) return;
    var shown = isFailed(message.status) && !!message.error_code;
    error.hidden = !shown;
    error.textContent = shown ? "Twilio error " + message.error_code + ": " + (message.error || "") : "";
  }

  function safeUrl(url) {
    return /^https?:\/\//i.test(String(url || ""));
  }

  function messageItem(message, t, at) {
    var li = el("li", "message-new");
    li.setAttribute("data-message-id", message.id);
    li.setAttribute("data-direction", message.direction);
    li.setAttribute("data-sender-type", message.sender_type);
    var head = el("p", "message-head");
    head.appendChild(el("strong", null, senderName(message, t))).setAttribute("data-message-sender", "");
    head.appendChild(document.createTextNode(" "));
    head.appendChild(el("span", "badge", labels().sender_kinds[message.sender_type] || message.sender_type)).setAttribute("data-message-kind", "");
    head.appendChild(document.createTextNode(" "));
    head.appendChild(el("span", "muted", message.direction === "inbound" ? "Received" : "Sent"));
    head.appendChild(document.createTextNode(" "));
    head.appendChild(timeElement(message.created_at, false, "muted"));
    li.appendChild(head);
    li.appendChild(el("p", "message-body", message.body || "")).setAttribute("data-message-body", "");
    var media = (message.media_urls || []).filter(safeUrl);
    if (media.length) {
      var p = el("p", "message-media", "Media: ");
      media.forEach(function (url, index) {
        if (index) p.appendChild(document.createTextNode(", "));
        var link = el("a", null, "attachment " + (index + 1));
        link.href = url;
        link.rel = "noopener noreferrer";
        link.target = "_blank";
        p.appendChild(link);
      });
      li.appendChild(p);
    }
    var foot = el("div", "message-foot");
    var details = el("details");
    var summary = el("summary");
    var status = el("span", "badge message-status", labels().status[message.status] || message.status);
    status.setAttribute("data-message-status", message.status);
    summary.appendChild(status);
    summary.appendChild(document.createTextNode(" "));
    var segments = message.segments || 1;
    summary.appendChild(el("span", "muted", segments + (segments === 1 ? " segment, " : " segments, ") + (message.encoding || "")));
    details.appendChild(summary);
    var timeline = el("ol", "message-timeline");
    timeline.setAttribute("data-message-timeline", "");
    timeline.appendChild(timelineItem(message.status, message.error_code, at || message.created_at));
    details.appendChild(timeline);
    foot.appendChild(details);
    var error = el("p", "message-error");
    error.setAttribute("data-message-error", "");
    foot.appendChild(error);
    li.appendChild(foot);
    showError(li, message);
    return li;
  }

  function updateStatus(item, message, at) {
    var badge = item.querySelector("[data-message-status]");
    if (badge && badge.getAttribute("data-message-status") !== message.status) {
      badge.setAttribute("data-message-status", message.status);
      badge.textContent = labels().status[message.status] || message.status;
      var timeline = item.querySelector("[data-message-timeline]");
      if (timeline) timeline.appendChild(timelineItem(message.status, message.error_code, at));
    }
    showError(item, message);
  }

  function nearBottom(list) {
    return list.scrollHeight - list.scrollTop - list.clientHeight < 80;
  }

  function threadMessage(t, event, payload, at) {
    var message = payload.message;
    if (!message || message.conversation !== t.thread.getAttribute("data-thread-page")) return;
    var list = document.querySelector("[data-thread-messages]");
    if (!list) return;
    var item = list.querySelector('li[data-message-id="' + CSS.escape(message.id) + '"]');
    if (item) { updateStatus(item, message, at); return; }
    if (list.getAttribute("data-live-append") !== "true" || event === "message.status_changed") return;
    var follow = nearBottom(list);
    list.appendChild(messageItem(message, t, at));
    var empty = document.querySelector("[data-thread-empty]");
    if (empty) empty.remove();
    if (follow || message.direction === "outbound") list.scrollTop = list.scrollHeight;
    if (message.direction === "inbound") markReadSoon();
  }

  // The open thread was read: once the page is seen, tell the server (its unread count goes back to 0).
  function markReadSoon() {
    read.pending = true;
    if (document.visibilityState !== "visible") return;
    window.clearTimeout(read.timer);
    read.timer = window.setTimeout(markRead, READ_SETTLE);
  }

  function markRead() {
    var t = targets();
    if (!t.thread || !read.pending) return;
    read.pending = false;
    window.fetch(t.thread.getAttribute("data-read-url"), {
      method: "POST",
      credentials: "same-origin",
      headers: { "X-CSRFToken": t.thread.getAttribute("data-csrf") || "" }
    }).catch(function () { read.pending = true; });
  }

  document.addEventListener("visibilitychange", function () {
    if (document.visibilityState === "visible" && read.pending) markReadSoon();
  });

  // --- the page again from the server -----------------------------------------------------------------

  function refreshSections() {
    if (!targets().inbox && !targets().thread) return;
    if (refresh.busy) { refresh.again = true; return; }
    refresh.busy = true;
    var seenAtStart = refresh.seen;
    window.fetch(window.location.href, { credentials: "same-origin", headers: { Accept: "text/html" } })
      .then(function (response) {
        if (!response.ok) throw new Error("HTTP " + response.status);
        return response.text();
      })
      .then(function (html) {
        // [!!] An event arrived while the page was fetched (a text appended live): this copy may not have
        // it, and swapping it in would take it away. Fetch again instead.
        if (refresh.seen !== seenAtStart) { refresh.again = true; return; }
        var fresh = new DOMParser().parseFromString(html, "text/html");
        localizeTimes(fresh);
        document.querySelectorAll("[data-live-refresh][id]").forEach(function (section) {
          var replacement = fresh.getElementById(section.id);
          if (!replacement || replacement.isEqualNode(section)) return;
          var list = section.querySelector("[data-thread-messages]");
          var follow = list ? nearBottom(list) : false;
          var copy = document.importNode(replacement, true);
          section.replaceWith(copy);
          var newList = copy.querySelector("[data-thread-messages]");
          if (newList && follow) newList.scrollTop = newList.scrollHeight;
        });
        var badge = fresh.querySelector("[data-unread-total]");
        if (badge) setBadge(parseInt(badge.getAttribute("data-unread-total"), 10) || 0);
      })
      .catch(function () { /* the next event or connection tries again */ })
      .then(function () {
        refresh.busy = false;
        if (refresh.again) { refresh.again = false; refreshSections(); }
      });
  }

  // --- events -----------------------------------------------------------------------------------------

  function handle(message) {
    refresh.seen += 1;
    var t = targets();
    var payload = message.payload || {};
    switch (message.event) {
      case "message.received":
      case "message.sent":
      case "message.status_changed":
        if (message.event === "message.received") addToBadge(1);
        if (t.inbox) inboxMessage(t, message.event, payload);
        if (t.thread) threadMessage(t, message.event, payload, message.at);
        break;
      case "conversation.read":
        if (typeof payload.unread_total === "number") setBadge(payload.unread_total); else addToBadge(-(payload.read || 0));
        if (t.inbox) inboxConversation(payload);
        break;
      case "conversation.taken_over":
      case "conversation.released":
        if (t.inbox) inboxConversation(payload);
        if (t.thread && payload.conversation && payload.conversation.id === t.thread.getAttribute("data-thread-page")) refreshSections();
        break;
      case "subscription.changed":
        if (t.inbox) inboxSubscription(payload);
        if (t.thread && payload.sender === t.thread.getAttribute("data-our-number") &&
            payload.recipient === t.thread.getAttribute("data-contact-phone")) refreshSections();
        break;
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

  function socketUrl(path) {
    if (/^wss?:\/\//.test(path)) return path;
    var scheme = window.location.protocol === "https:" ? "wss://" : "ws://";
    return scheme + window.location.host + (path.charAt(0) === "/" ? path : "/" + path);
  }

  function open(c) {
    if (c.stopped) return;
    var socket;
    try { socket = new WebSocket(socketUrl(c.url)); } catch (e) { setLiveStatus("off", "Live updates are unavailable."); return; }
    c.socket = socket;
    socket.addEventListener("message", function (evt) {
      var message;
      try { message = JSON.parse(evt.data); } catch (e) { return; }
      if (!message || typeof message.event !== "string") return;
      if (message.event === "subscribed") {
        c.delay = MIN_DELAY;
        setLiveStatus("live", "Live");
        // What happened between the page's rendering (or the last connection) and now.
        refreshSections();
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
      if (FINAL_CLOSE_CODES[evt.code]) { setLiveStatus("off", FINAL_CLOSE_CODES[evt.code]); return; }
      var wait = Math.round(c.delay * (0.8 + Math.random() * 0.4));
      c.delay = Math.min(c.delay * 2, MAX_DELAY);
      setLiveStatus("reconnecting", "Reconnecting\u2026");
      c.timer = window.setTimeout(function () { open(c); }, wait);
    });
  }

  function scan(evt) {
    localizeTimes(document);
    document.querySelectorAll("form[data-composer]").forEach(bindComposer);
    var list = document.querySelector("[data-thread-messages]");
    if (list && !scrolled.has(list)) {
      scrolled.add(list); // a thread opens at its latest message
      list.scrollTop = list.scrollHeight;
    }
    var t = targets();
    var url = eventsUrl(t);
    if (conn && conn.url === url) {
      if (conn.status) setLiveStatus(conn.status[0], conn.status[1]);
      // A boosted navigation kept the socket: an event that arrived while the new page was on its way
      // changed the old page, so catch the new one up (as a new connection does).
      if (evt && evt.type === "htmx:afterSettle") refreshSections();
      return;
    }
    stop();
    if (!url) return;
    if (!("WebSocket" in window)) { setLiveStatus("off", "Live updates need a newer browser."); return; }
    conn = { url: url, socket: null, timer: null, ping: null, delay: MIN_DELAY, stopped: false };
    setLiveStatus("connecting", "Connecting\u2026");
    open(conn);
  }

  window.JagCallInbox = { scan: scan, countSegments: countSegments };
  document.addEventListener("htmx:load", scan);
  document.addEventListener("htmx:afterSettle", scan);
  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", scan); else scan();
})();
