/* Testing an agent from its page (/o/<slug>/agents/<id>/test/), over its test socket
   (/ws/o/<slug>/agents/<id>/test/, JSON messages, see telephony/agent_test.py).
   By text: the message goes out, the reply streams in ("live"), then the stored turn arrives with its
   timings and knowledge sources. By voice: the microphone is captured in an AudioWorklet, turned into
   16 kHz 16-bit PCM and sent in base64 chunks; the agent's PCM is played with Web Audio, and a "clear"
   (you spoke over the agent) stops it at once. One conversation per socket: a new test opens a new one.
   Every value shown comes from the server and is set as text, never as HTML. */
(function () {
  "use strict";

  var RATE = 16000;
  var CHUNK_SAMPLES = 1600; // 100 ms of audio a message
  var CLOSE_MESSAGES = {
    4401: "Your session has ended. Sign in again to test the agent.",
    4403: "Only owners and admins can test agents.",
    4404: "This agent does not exist any more in this organization."
  };
  var LATENCIES = [
    ["end_of_turn_ms", "End of turn"],
    ["transcript_ms", "Transcript"],
    ["retrieved_ms", "Knowledge"],
    ["llm_first_token_ms", "Model's first word"],
    ["tts_first_byte_ms", "Voice's first audio"],
    ["first_audio_ms", "First audio sent"]
  ];

  var page = null; // the state of the page currently shown

  function socketUrl(path) {
    var scheme = window.location.protocol === "https:" ? "wss://" : "ws://";
    return scheme + window.location.host + path;
  }

  function el(root, name) {
    return root.querySelector("[data-" + name + "]");
  }

  function toBase64(bytes) {
    var binary = "";
    for (var i = 0; i < bytes.length; i += 0x8000) {
      binary += String.fromCharCode.apply(null, bytes.subarray(i, i + 0x8000));
    }
    return window.btoa(binary);
  }

  function fromBase64(text) {
    var binary = window.atob(text);
    var bytes = new Uint8Array(binary.length);
    for (var i = 0; i < binary.length; i++) bytes[i] = binary.charCodeAt(i);
    return bytes;
  }

  function Page(root) {
    this.root = root;
    this.socket = null;
    this.channel = "";
    this.ended = false;
    this.context = null;
    this.stream = null;
    this.node = null;
    this.pending = [];
    this.pendingLength = 0;
    this.playhead = 0;
    this.sources = [];
    this.ticker = null;
    this.afterStart = null;
    this.status = el(root, "test-status");
    this.dot = el(root, "test-status-dot");
    this.errorBox = el(root, "test-error");
    this.transcript = el(root, "test-transcript");
    this.live = el(root, "test-live");
    this.input = el(root, "test-input");
    this.send = el(root, "test-send");
    this.talk = el(root, "test-talk");
    this.stopButton = el(root, "test-stop");
    this.restart = el(root, "test-restart");
    this.latencies = el(root, "test-latencies");
    var self = this;
    el(root, "test-form").addEventListener("submit", function (event) {
      event.preventDefault();
      self.sendText();
    });
    this.talk.addEventListener("click", function () { self.startVoice(); });
    this.stopButton.addEventListener("click", function () { self.message({ type: "stop" }); });
    this.restart.addEventListener("click", function () { self.reconnect(); });
    this.connect();
  }

  Page.prototype.setState = function (state, text) {
    this.root.setAttribute("data-state", state);
    this.dot.setAttribute("data-state", state);
    this.status.textContent = text;
  };

  Page.prototype.showError = function (text) {
    this.errorBox.textContent = text || "";
    this.errorBox.hidden = !text;
  };

  Page.prototype.controls = function (open) {
    var canType = open && !this.ended && this.channel !== "browser";
    this.input.disabled = !canType;
    this.send.disabled = !canType;
    this.talk.disabled = !open || this.ended || this.channel === "browser";
    this.stopButton.disabled = !open || this.ended || !this.channel;
    this.restart.hidden = !this.ended;
  };

  Page.prototype.connect = function () {
    var self = this;
    this.ended = false;
    this.channel = "";
    this.setState("connecting", "Connecting…");
    this.controls(false);
    var socket = new WebSocket(socketUrl(this.root.getAttribute("data-socket-path")));
    this.socket = socket;
    socket.onmessage = function (event) {
      if (socket !== self.socket) return;
      var message;
      try { message = JSON.parse(event.data); } catch (error) { return; }
      self.receive(message);
    };
    socket.onclose = function (event) {
      if (socket !== self.socket) return;
      self.stopVoice();
      if (CLOSE_MESSAGES[event.code]) {
        self.ended = true;
        self.setState("error", "Not connected.");
        self.showError(CLOSE_MESSAGES[event.code]);
      } else if (!self.ended) {
        self.ended = true;
        self.setState("ended", "Disconnected. Start a new test to talk again.");
      }
      self.controls(false);
      self.restart.hidden = false;
    };
  };

  Page.prototype.reconnect = function (then) {
    var old = this.socket;
    this.socket = null;
    if (old) old.close();
    this.stopVoice();
    this.showError("");
    this.afterStart = then || null;
    this.connect();
  };

  Page.prototype.message = function (payload) {
    if (this.socket && this.socket.readyState === WebSocket.OPEN) this.socket.send(JSON.stringify(payload));
  };

  Page.prototype.receive = function (message) {
    switch (message.type) {
      case "ready":
        this.setState("ready", "Ready: type a message, or press “Talk in the browser” and speak.");
        this.controls(true);
        if (this.afterStart) { var next = this.afterStart; this.afterStart = null; next.call(this); }
        break;
      case "started":
        this.channel = message.channel;
        this.controls(true);
        if (message.channel === "browser") this.setState("listening", "Listening: speak to the agent.");
        break;
      case "live":
        if (message.role === "agent") {
          this.live.textContent = "Agent: " + message.text;
          if (this.channel === "text") this.setState("speaking", "The agent is answering…");
        } else {
          this.live.textContent = "You: " + message.text;
        }
        this.live.hidden = false;
        break;
      case "turn":
        this.addTurn(message.turn);
        break;
      case "audio":
        this.play(message.pcm);
        break;
      case "clear":
        this.clearPlayback();
        break;
      case "error":
        this.showError(message.message);
        if (this.ended || this.channel === "browser") break;
        if (this.context) { // the voice test could not start (e.g. a provider's key is missing)
          this.stopVoice();
          this.controls(true);
        }
        this.setState("ready", this.channel === "text" ? "Ready: type your next message." : "Ready: fix what the message above says, then try again.");
        break;
      case "ended":
        this.ended = true;
        this.stopVoice();
        this.live.hidden = true;
        this.setState("ended", (message.message || "The test ended.") + " Start a new test to talk again.");
        this.controls(false);
        break;
    }
  };

  Page.prototype.addTurn = function (turn) {
    var empty = el(this.root, "test-empty");
    if (empty) empty.remove();
    var item = document.createElement("li");
    item.setAttribute("data-role", turn.role);
    item.setAttribute("data-turn", String(turn.index));
    var who = document.createElement("span");
    who.className = "agent-test-who";
    who.textContent = turn.role === "caller" ? "You" : turn.role_label;
    item.appendChild(who);
    item.appendChild(document.createTextNode(turn.text + (turn.interrupted ? " …" : "")));
    if (turn.interrupted) {
      var cut = document.createElement("span");
      cut.className = "agent-test-sources";
      cut.textContent = "Interrupted: this is what you heard.";
      item.appendChild(cut);
    }
    if (turn.sources && turn.sources.length) {
      var sources = document.createElement("span");
      sources.className = "agent-test-sources";
      sources.setAttribute("data-turn-sources", "");
      var documents = turn.sources.filter(function (name, index) { return name && turn.sources.indexOf(name) === index; });
      sources.textContent = "From the knowledge base: " + documents.join(", ");
      item.appendChild(sources);
    }
    this.transcript.appendChild(item);
    this.transcript.scrollTop = this.transcript.scrollHeight;
    if (turn.role === "agent") {
      this.live.hidden = true;
      this.addLatencies(turn);
      if (this.channel === "text" && !this.ended) this.setState("ready", "Ready: type your next message.");
    } else if (turn.role === "caller") {
      this.live.hidden = true;
      if (this.channel === "text") this.setState("thinking", "The agent is thinking…");
    }
  };

  Page.prototype.addLatencies = function (turn) {
    var empty = el(this.root, "test-latency-empty");
    if (empty) empty.remove();
    var item = document.createElement("li");
    item.setAttribute("data-latency-turn", String(turn.index));
    var title = document.createElement("strong");
    title.textContent = turn.text.length > 60 ? turn.text.slice(0, 57) + "…" : turn.text;
    item.appendChild(title);
    var list = document.createElement("dl");
    var shown = 0;
    LATENCIES.forEach(function (pair) {
      var value = turn.latency ? turn.latency[pair[0]] : null;
      if (value === null || value === undefined) return;
      var dt = document.createElement("dt");
      dt.textContent = pair[1];
      var dd = document.createElement("dd");
      dd.setAttribute("data-latency", pair[0]);
      dd.textContent = value + " ms";
      list.appendChild(dt);
      list.appendChild(dd);
      shown++;
    });
    if (shown) {
      item.appendChild(list);
    } else {
      var none = document.createElement("p");
      none.className = "muted small";
      none.textContent = "Not timed (the agent's first message is not an answer).";
      item.appendChild(none);
    }
    this.latencies.appendChild(item);
  };

  Page.prototype.sendText = function () {
    var text = this.input.value.trim();
    if (!text) return;
    this.showError("");
    this.message({ type: "text", text: text });
    this.input.value = "";
    this.setState("thinking", "Sending…");
  };

  // --- voice ---------------------------------------------------------------------------------

  Page.prototype.startVoice = function () {
    var self = this;
    this.showError("");
    if (this.channel === "text") {
      // One conversation per connection: a voice test is a new one.
      this.reconnect(function () { self.startVoice(); });
      return;
    }
    if (!navigator.mediaDevices || !navigator.mediaDevices.getUserMedia || !window.AudioWorkletNode) {
      this.showError("This browser cannot capture the microphone here. Use a current Chrome, Edge, Firefox or Safari over HTTPS.");
      return;
    }
    this.setState("connecting", "Asking for your microphone…");
    this.talk.disabled = true;
    navigator.mediaDevices
      .getUserMedia({ audio: { channelCount: 1, echoCancellation: true, noiseSuppression: true, autoGainControl: true } })
      .then(function (stream) {
        self.stream = stream;
        self.context = new (window.AudioContext || window.webkitAudioContext)({ sampleRate: RATE });
        return self.context.audioWorklet.addModule(self.root.getAttribute("data-worklet-url")).then(function () {
          var source = self.context.createMediaStreamSource(stream);
          self.node = new AudioWorkletNode(self.context, "agent-test-capture");
          self.node.port.onmessage = function (event) { self.capture(event.data); };
          source.connect(self.node);
          self.playhead = 0;
          self.ticker = window.setInterval(function () { self.tick(); }, 200);
          self.message({ type: "start", channel: "browser" });
        });
      })
      .catch(function (error) {
        self.stopVoice();
        self.controls(true);
        self.setState("ready", "Ready: type a message, or allow the microphone and try again.");
        if (error && (error.name === "NotAllowedError" || error.name === "SecurityError")) {
          self.showError("The microphone is blocked for this site. Allow it in your browser's address bar (the camera and microphone icon), then press “Talk in the browser” again.");
        } else if (error && error.name === "NotFoundError") {
          self.showError("No microphone was found. Connect one (or a headset), then press “Talk in the browser” again.");
        } else {
          self.showError("The microphone could not be started: " + (error && error.message ? error.message : "unknown error") + ".");
        }
      });
  };

  Page.prototype.capture = function (samples) {
    if (this.channel !== "browser" || this.ended) return;
    var rate = this.context.sampleRate;
    var data = samples;
    if (rate !== RATE) { // the browser would not open the context at 16 kHz: downsample by averaging
      var ratio = rate / RATE;
      var length = Math.floor(samples.length / ratio);
      data = new Float32Array(length);
      for (var i = 0; i < length; i++) {
        var start = Math.floor(i * ratio), end = Math.min(samples.length, Math.floor((i + 1) * ratio)), sum = 0;
        for (var j = start; j < end; j++) sum += samples[j];
        data[i] = end > start ? sum / (end - start) : 0;
      }
    }
    this.pending.push(data);
    this.pendingLength += data.length;
    if (this.pendingLength < CHUNK_SAMPLES) return;
    var pcm = new Int16Array(this.pendingLength);
    var offset = 0;
    this.pending.forEach(function (part) {
      for (var k = 0; k < part.length; k++) {
        var s = Math.max(-1, Math.min(1, part[k]));
        pcm[offset++] = s < 0 ? s * 0x8000 : s * 0x7fff;
      }
    });
    this.pending = [];
    this.pendingLength = 0;
    this.message({ type: "audio", pcm: toBase64(new Uint8Array(pcm.buffer)) });
  };

  Page.prototype.play = function (encoded) {
    if (!this.context) return;
    var bytes = fromBase64(encoded);
    var view = new DataView(bytes.buffer);
    var count = Math.floor(bytes.length / 2);
    var buffer = this.context.createBuffer(1, count, RATE);
    var channel = buffer.getChannelData(0);
    for (var i = 0; i < count; i++) channel[i] = view.getInt16(i * 2, true) / 0x8000;
    var source = this.context.createBufferSource();
    source.buffer = buffer;
    source.connect(this.context.destination);
    var at = Math.max(this.context.currentTime + 0.02, this.playhead);
    source.start(at);
    this.playhead = at + buffer.duration;
    var sources = this.sources;
    sources.push(source);
    source.onended = function () {
      var index = sources.indexOf(source);
      if (index >= 0) sources.splice(index, 1);
    };
    this.tick();
  };

  Page.prototype.clearPlayback = function () {
    this.sources.forEach(function (source) { try { source.stop(); } catch (error) { /* already stopped */ } });
    this.sources = [];
    this.playhead = 0;
    this.tick();
  };

  Page.prototype.tick = function () {
    if (this.channel !== "browser" || this.ended || !this.context) return;
    if (this.playhead > this.context.currentTime) {
      this.setState("speaking", "The agent is speaking (speak to interrupt it).");
    } else {
      this.setState("listening", "Listening: speak to the agent.");
    }
  };

  Page.prototype.stopVoice = function () {
    if (this.ticker) { window.clearInterval(this.ticker); this.ticker = null; }
    this.clearPlaybackQuietly();
    if (this.node) { this.node.port.onmessage = null; this.node.disconnect(); this.node = null; }
    if (this.stream) { this.stream.getTracks().forEach(function (track) { track.stop(); }); this.stream = null; }
    if (this.context) { this.context.close(); this.context = null; }
    this.pending = [];
    this.pendingLength = 0;
  };

  Page.prototype.clearPlaybackQuietly = function () {
    this.sources.forEach(function (source) { try { source.stop(); } catch (error) { /* already stopped */ } });
    this.sources = [];
    this.playhead = 0;
  };

  Page.prototype.teardown = function () {
    var socket = this.socket;
    this.socket = null;
    this.ended = true;
    if (socket) socket.close();
    this.stopVoice();
  };

  function boot() {
    var root = document.querySelector("[data-agent-test]");
    if (!root || root.jagcallAgentTest) return;
    if (page) page.teardown();
    root.jagcallAgentTest = true;
    page = new Page(root);
  }

  if (window.jagcallAgentTestLoaded) { boot(); return; }
  window.jagcallAgentTestLoaded = true;
  // Leaving through the portal's boosted links swaps the body: the socket and the microphone go with it.
  document.addEventListener("htmx:beforeSwap", function (event) {
    if (page && event.detail && event.detail.target === document.body) { page.teardown(); page = null; }
  });
  window.addEventListener("pagehide", function () { if (page) { page.teardown(); page = null; } });
  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", boot); else boot();
  document.addEventListener("htmx:load", boot);
})();
