/* A call's conversation, live: while the call runs, each turn the agent's conversation stores arrives as
   "call.turn" (payload: call_id and the turn as telephony.services.conversations.turn_payload shapes it,
   the same shape the server renders) and is added in its place; "call.live_text" shows what the caller
   is saying right now, as an interim line that the stored turn replaces.
   The organization's events socket is live-calls.js's: it re-dispatches every message on the document
   ("jagcall:org-event") and every fresh copy of the page it fetches ("jagcall:call-page-fetched"), from
   which the turns this page missed (before it connected, or while it was reconnecting) are taken.
   All conversation text is set as text, never as HTML. The markup matches _conversation.html. */
(function () {
  "use strict";

  if (window.JagCallConversation) { window.JagCallConversation.scan(); return; }

  var LATENCIES = [
    ["end_of_turn_ms", "End of turn"],
    ["transcript_ms", "Transcript"],
    ["retrieved_ms", "Knowledge"],
    ["llm_first_token_ms", "LLM first token"],
    ["tts_first_byte_ms", "TTS first byte"],
    ["first_audio_ms", "First audio"]
  ];
  var LIVE_LABELS = { caller: "Caller", agent: "Agent" };

  function section() { return document.querySelector("[data-call-conversation]"); }

  function el(tag, className, text) {
    var node = document.createElement(tag);
    if (className) node.className = className;
    if (text !== undefined && text !== null) node.textContent = String(text);
    return node;
  }

  function pad(n) { return (n < 10 ? "0" : "") + n; }

  function offset(iso, list) {
    var first = list.querySelector("li[data-turn][data-started-at]");
    var start = first ? Date.parse(first.getAttribute("data-started-at")) : NaN;
    var at = Date.parse(iso);
    if (isNaN(at)) return "";
    var seconds = isNaN(start) ? 0 : Math.max(0, Math.floor((at - start) / 1000));
    return pad(Math.floor(seconds / 60)) + ":" + pad(seconds % 60);
  }

  function turnItem(turn, list) {
    var li = el("li", "turn turn-" + turn.role + (turn.interrupted ? " turn-interrupted" : ""));
    li.setAttribute("data-turn", "");
    li.setAttribute("data-role", turn.role);
    li.setAttribute("data-index", String(turn.index));
    li.setAttribute("data-started-at", turn.started_at || "");
    var latency = turn.latency || {};
    if (latency.first_audio_ms !== null && latency.first_audio_ms !== undefined) {
      li.setAttribute("data-first-audio-ms", String(latency.first_audio_ms));
    }

    var head = el("p", "turn-head");
    head.appendChild(el("strong", "turn-who", turn.role_label || turn.role));
    head.appendChild(document.createTextNode(" "));
    var time = el("time", "turn-at muted small", offset(turn.started_at, list));
    time.setAttribute("datetime", turn.started_at || "");
    head.appendChild(time);
    li.appendChild(head);

    var text = turn.text || "";
    if (turn.role === "tool") {
      var call = el("p", "turn-tool-call");
      call.appendChild(el("code", null, turn.tool || ""));
      call.appendChild(document.createTextNode(" "));
      var outcome = el("span", "badge turn-outcome", turn.tool_ok === true ? "Done" : turn.tool_ok === false ? "Failed" : "No outcome");
      outcome.setAttribute("data-tool-ok", turn.tool_ok === true ? "true" : turn.tool_ok === false ? "false" : "unknown");
      call.appendChild(outcome);
      li.appendChild(call);
      if (text) li.appendChild(el("p", "turn-text", text));
    } else if (turn.role === "keypad") {
      var pressed = el("p", "turn-text", "Pressed ");
      pressed.appendChild(el("kbd", null, text));
      li.appendChild(pressed);
    } else if (turn.interrupted) {
      var cut = el("p", "turn-text");
      var mark = el("span", "turn-mark", "Interrupted — the caller heard:");
      mark.setAttribute("data-turn-interrupted", "");
      cut.appendChild(mark);
      cut.appendChild(document.createTextNode(" "));
      if (text) cut.appendChild(document.createTextNode(text)); else cut.appendChild(el("span", "muted", "nothing yet"));
      li.appendChild(cut);
    } else {
      li.appendChild(el("p", "turn-text", text));
    }

    var sources = [];
    (turn.sources || []).forEach(function (name) { if (name && sources.indexOf(name) === -1) sources.push(name); });
    if (sources.length) {
      var used = el("p", "turn-sources small");
      used.appendChild(el("span", "muted", "Knowledge used:"));
      used.appendChild(document.createTextNode(" " + sources.join(", ")));
      li.appendChild(used);
    }

    var measured = LATENCIES.filter(function (pair) { return latency[pair[0]] !== null && latency[pair[0]] !== undefined; });
    if (measured.length) {
      var dl = el("dl", "turn-latency small");
      dl.setAttribute("data-turn-latency", "");
      dl.setAttribute("aria-label", "Milliseconds after the caller stopped speaking");
      measured.forEach(function (pair) {
        var item = el("div");
        item.setAttribute("data-latency", pair[0]);
        item.appendChild(el("dt", null, pair[1]));
        item.appendChild(el("dd", null, latency[pair[0]] + " ms"));
        dl.appendChild(item);
      });
      li.appendChild(dl);
    }
    return li;
  }

  function liveLines(list) { return list.querySelectorAll("li[data-live-text]"); }

  // Stored turns in index order; interim lines stay after them.
  function place(list, item) {
    var index = Number(item.getAttribute("data-index"));
    var turns = list.querySelectorAll("li[data-turn]");
    for (var i = 0; i < turns.length; i++) {
      if (Number(turns[i].getAttribute("data-index")) > index) { list.insertBefore(item, turns[i]); return; }
    }
    var firstLive = liveLines(list)[0];
    list.insertBefore(item, firstLive || null);
  }

  function has(list, index) {
    return !!list.querySelector('li[data-turn][data-index="' + CSS.escape(String(index)) + '"]');
  }

  function dropLive(list, role) {
    liveLines(list).forEach(function (line) {
      if (!role || line.getAttribute("data-role") === role) line.remove();
    });
  }

  function refreshState(root) {
    var list = root.querySelector("[data-call-turns]");
    var empty = root.querySelector("[data-conversation-empty]");
    if (empty) empty.hidden = !!list.querySelector("li");
    var values = Array.prototype.map.call(
      list.querySelectorAll('li[data-turn][data-role="agent"][data-first-audio-ms]'),
      function (li) { return Number(li.getAttribute("data-first-audio-ms")); }
    ).filter(function (n) { return !isNaN(n); }).sort(function (a, b) { return a - b; });
    var summary = root.querySelector("[data-conversation-summary]");
    if (!summary) return;
    if (!values.length) { summary.hidden = true; return; }
    var mid = Math.floor(values.length / 2);
    // As Python's statistics.median, then rounded half to even like the server's round().
    var median = values.length % 2 ? values[mid] : (values[mid - 1] + values[mid]) / 2;
    var rounded = Math.round(median);
    if (Math.abs(median % 1) === 0.5 && rounded % 2 !== 0) rounded -= 1;
    summary.querySelector("[data-conversation-median]").textContent = rounded + " ms";
    summary.querySelector("[data-conversation-measured]").textContent = String(values.length);
    summary.hidden = false;
  }

  function addTurn(root, turn) {
    var list = root.querySelector("[data-call-turns]");
    if (!list || typeof turn.index !== "number" || !turn.role) return;
    dropLive(list, turn.role);
    if (!has(list, turn.index)) place(list, turnItem(turn, list));
    refreshState(root);
  }

  function showLive(root, role, text) {
    var list = root.querySelector("[data-call-turns]");
    if (!list || root.hasAttribute("data-call-finished")) return;
    var line = list.querySelector('li[data-live-text][data-role="' + CSS.escape(role) + '"]');
    if (!text) { if (line) line.remove(); refreshState(root); return; }
    if (!line) {
      line = el("li", "turn turn-live turn-" + role);
      line.setAttribute("data-live-text", "");
      line.setAttribute("data-role", role);
      var head = el("p", "turn-head");
      head.appendChild(el("strong", "turn-who", LIVE_LABELS[role] || role));
      head.appendChild(document.createTextNode(" "));
      head.appendChild(el("span", "muted small", "speaking…"));
      line.appendChild(head);
      line.appendChild(el("p", "turn-text"));
      list.appendChild(line);
    }
    line.querySelector(".turn-text").textContent = text;
    refreshState(root);
  }

  // Turns in a fresh copy of the page that this one does not show yet.
  function merge(root, fresh) {
    var list = root.querySelector("[data-call-turns]");
    var theirs = fresh.querySelector('[data-call-conversation="' + CSS.escape(root.getAttribute("data-call-conversation")) + '"]');
    if (!list || !theirs) return;
    theirs.querySelectorAll("[data-call-turns] li[data-turn]").forEach(function (item) {
      var index = item.getAttribute("data-index");
      if (index !== null && !has(list, index)) {
        dropLive(list, item.getAttribute("data-role"));
        place(list, document.importNode(item, true));
      }
    });
    if (theirs.hasAttribute("data-call-finished")) finish(root);
    refreshState(root);
  }

  function finish(root) {
    root.setAttribute("data-call-finished", "");
    var list = root.querySelector("[data-call-turns]");
    if (list) dropLive(list);
  }

  document.addEventListener("jagcall:org-event", function (evt) {
    var root = section();
    var message = evt.detail || {};
    var payload = message.payload || {};
    if (!root) return;
    var id = root.getAttribute("data-call-conversation");
    if (message.event === "call.turn" && payload.call_id === id) addTurn(root, payload);
    else if (message.event === "call.live_text" && payload.call_id === id && typeof payload.role === "string") {
      showLive(root, payload.role, typeof payload.text === "string" ? payload.text.trim() : "");
    } else if (message.event === "call.updated" && payload.id === id && payload.finished) finish(root);
  });

  document.addEventListener("jagcall:call-page-fetched", function (evt) {
    var root = section();
    if (root && evt.detail && evt.detail.document) merge(root, evt.detail.document);
  });

  function scan() {
    var root = section();
    if (root) refreshState(root);
  }

  window.JagCallConversation = { scan: scan };
  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", scan); else scan();
})();
