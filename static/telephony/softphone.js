/* The portal's browser phone (templates/telephony/browser/softphone.html), on the Twilio Voice JS SDK
   (static/vendor/twilio-voice-sdk-2.18.5, window.Twilio.Device).

   - Gets a one-hour access token from the portal (POST, session + CSRF token) and renews it when the
     SDK says it will expire (tokenWillExpire).
   - Places calls with the chosen caller number as a parameter (CallerId); the server's browser-voice
     hook checks the member, the number and the pre-dial rules before anything is dialled.
   - Takes incoming calls (an agent's transfer to this member), with Accept / Reject.
   - In simulated mode Twilio's voice servers are out of reach: the device is made (the token is real
     for the stand-in) but never registered, and the page offers placing the call through JagCall.
   The state is mirrored in data-state on the section (starting, ready, calling, in-call, incoming,
   simulated, error) for people's assistive technology (the status line) and for tests. */
(function () {
  "use strict";

  var MICROPHONE_HELP =
    "JagCall cannot use your microphone. Allow microphone access for this site (the icon in the address bar), " +
    "check that a microphone is connected, then try again.";
  var E164 = /^\+[1-9]\d{6,14}$/;

  function TokenRefused(message) {
    this.name = "TokenRefused";
    this.message = message;
  }
  TokenRefused.prototype = Object.create(Error.prototype);

  function explain(error) {
    var code = error && (error.code || (error.twilioError && error.twilioError.code));
    var name = error && error.name;
    if (code === 31401 || code === 31402 || code === 31208 || name === "NotAllowedError" || name === "NotFoundError") {
      return MICROPHONE_HELP;
    }
    if ([20101, 20102, 20103, 20104, 20105, 20106, 20107, 20157, 20160, 31202, 31204, 31205, 31207].indexOf(code) !== -1) {
      return "Twilio refused this phone's access (" + code + "). Reload the page to get a new one; if it happens again, " +
        "ask an owner to check the organization's Twilio account.";
    }
    if (code === 31005 || code === 31009 || code === 53000 || code === 53405 || code === 31000) {
      return "Cannot reach Twilio's voice servers (" + code + "). Check your internet connection; the phone keeps trying.";
    }
    return (error && error.message) || "Something went wrong with the phone. Reload the page and try again.";
  }

  function start(root) {
    if (root.dataset.started) return;
    root.dataset.started = "true";

    var statusLine = root.querySelector("[data-status]");
    var errorLine = root.querySelector("[data-error]");
    var form = root.querySelector("[data-dial-form]");
    var numberInput = root.querySelector("[data-number]");
    var callerSelect = root.querySelector("[data-caller-id]");
    var callButton = root.querySelector("[data-call]");
    var hangupButton = root.querySelector("[data-hangup]");
    var muteButton = root.querySelector("[data-mute]");
    var incomingPanel = root.querySelector("[data-incoming]");
    var incomingFrom = root.querySelector("[data-incoming-from]");
    var simulated = root.dataset.simulated === "true";
    var device = null;
    var activeCall = null;
    var pendingCall = null;

    function setStatus(text, state) {
      statusLine.textContent = text;
      if (state) root.dataset.state = state;
    }

    function showError(text) {
      errorLine.textContent = text || "";
      errorLine.hidden = !text;
    }

    function refreshButtons() {
      var canCall = !!device && !simulated && root.dataset.state === "ready" && !activeCall && !!callerSelect.value;
      callButton.disabled = !canCall;
      hangupButton.disabled = !activeCall;
      muteButton.disabled = !activeCall;
      if (!activeCall) {
        muteButton.setAttribute("aria-pressed", "false");
        muteButton.textContent = "Mute";
      }
    }

    function fetchToken() {
      return fetch(root.dataset.tokenUrl, {
        method: "POST",
        credentials: "same-origin",
        headers: { "X-CSRFToken": root.dataset.csrf, Accept: "application/json" },
      }).then(function (response) {
        return response
          .json()
          .catch(function () {
            return null;
          })
          .then(function (body) {
            if (response.ok && body && body.token) {
              root.dataset.token = "issued";
              root.dataset.identity = body.identity;
              root.dataset.tokenExpiresAt = body.expires_at;
              return body.token;
            }
            if (body && body.error) throw new TokenRefused(body.error);
            if (response.status === 404 || (response.ok && !body)) {
              throw new TokenRefused(
                "JagCall refused this phone's access: your session may have ended, or you are no longer a member " +
                  "of this organization. Reload the page and sign in again."
              );
            }
            if (response.status === 403) {
              throw new TokenRefused("Your role in this organization does not allow calls from the browser.");
            }
            throw new TokenRefused("JagCall could not issue this phone's access (HTTP " + response.status + "). Try again in a minute.");
          });
      });
    }

    function endCall(message) {
      activeCall = null;
      setStatus(message, "ready");
      refreshButtons();
    }

    function wireCall(call) {
      activeCall = call;
      refreshButtons();
      call.on("ringing", function () {
        setStatus("Ringing…", "calling");
      });
      call.on("accept", function () {
        setStatus("In call.", "in-call");
        refreshButtons();
      });
      call.on("disconnect", function () {
        endCall("Call ended. Ready for the next one.");
      });
      call.on("cancel", function () {
        endCall("The other side hung up before the call was answered.");
      });
      call.on("reject", function () {
        endCall("Call rejected.");
      });
      call.on("error", function (error) {
        showError(explain(error));
      });
      call.on("mute", function (isMuted) {
        muteButton.setAttribute("aria-pressed", isMuted ? "true" : "false");
        muteButton.textContent = isMuted ? "Unmute" : "Mute";
      });
    }

    function checkMicrophone() {
      if (!navigator.mediaDevices || !navigator.mediaDevices.getUserMedia) {
        return Promise.reject({ name: "NotAllowedError" });
      }
      return navigator.mediaDevices.getUserMedia({ audio: true }).then(function (stream) {
        stream.getTracks().forEach(function (track) {
          track.stop();
        });
      });
    }

    function placeCall(event) {
      event.preventDefault();
      showError("");
      var to = numberInput.value.replace(/[\s().-]/g, "");
      if (!E164.test(to)) {
        showError("Enter the number to call in international format with the country code, e.g. +14155550100.");
        numberInput.focus();
        return;
      }
      if (!callerSelect.value) {
        showError("Choose the number to call from.");
        return;
      }
      if (!device || simulated || root.dataset.state !== "ready") return;
      checkMicrophone()
        .then(function () {
          setStatus("Calling " + to + "…", "calling");
          return device.connect({ params: { To: to, CallerId: callerSelect.value } });
        })
        .then(wireCall)
        .catch(function (error) {
          showError(explain(error));
          setStatus("Ready: you can place and receive calls.", "ready");
          refreshButtons();
        });
    }

    function onIncoming(call) {
      pendingCall = call;
      var from = (call.parameters && call.parameters.From) || "an unknown caller";
      incomingFrom.textContent = "from " + from.replace(/^client:.*/, "a colleague");
      incomingPanel.hidden = false;
      setStatus("Incoming call " + incomingFrom.textContent + ".", "incoming");
      function clear() {
        if (pendingCall === call) pendingCall = null;
        incomingPanel.hidden = true;
        if (!activeCall) setStatus("Ready: you can place and receive calls.", "ready");
      }
      call.on("cancel", function () {
        clear();
        setStatus("The caller hung up.", "ready");
      });
      call.on("reject", clear);
      call.on("accept", function () {
        incomingPanel.hidden = true;
        pendingCall = null;
      });
    }

    root.querySelector("[data-accept]").addEventListener("click", function () {
      if (!pendingCall) return;
      var call = pendingCall;
      checkMicrophone()
        .then(function () {
          wireCall(call);
          call.accept();
          setStatus("In call.", "in-call");
        })
        .catch(function (error) {
          showError(explain(error));
        });
    });
    root.querySelector("[data-reject]").addEventListener("click", function () {
      if (pendingCall) pendingCall.reject();
    });
    hangupButton.addEventListener("click", function () {
      if (activeCall) activeCall.disconnect();
    });
    muteButton.addEventListener("click", function () {
      if (activeCall) activeCall.mute(!activeCall.isMuted());
    });
    root.querySelectorAll("[data-digit]").forEach(function (button) {
      button.addEventListener("click", function () {
        var digit = button.dataset.digit;
        if (activeCall && root.dataset.state === "in-call") {
          activeCall.sendDigits(digit);
        } else {
          numberInput.value += digit;
        }
      });
    });
    callerSelect.addEventListener("change", refreshButtons);
    form.addEventListener("submit", placeCall);

    // Leaving the page through the portal's boosted links swaps the body: let the device go with it.
    document.body.addEventListener("htmx:beforeSwap", function teardown(event) {
      if (event.detail && event.detail.target === document.body && device) {
        device.destroy();
        device = null;
        document.body.removeEventListener("htmx:beforeSwap", teardown);
      }
    });

    if (!window.Twilio || !window.Twilio.Device) {
      setStatus("Not connected.", "error");
      showError("The calling library did not load. Reload the page; if it keeps happening, tell your administrator.");
      return;
    }
    root.dataset.sdk = "loaded";
    setStatus("Getting the phone's access…", "starting");
    fetchToken()
      .then(function (token) {
        device = new window.Twilio.Device(token, {
          closeProtection: "A call is in progress: leaving this page ends it.",
          codecPreferences: ["opus", "pcmu"],
          logLevel: "warn",
        });
        device.on("registered", function () {
          showError("");
          setStatus("Ready: you can place and receive calls.", "ready");
          refreshButtons();
        });
        device.on("unregistered", function () {
          if (!simulated) setStatus("Not connected: calls cannot reach this phone right now.", "error");
          refreshButtons();
        });
        device.on("error", function (error) {
          showError(explain(error));
        });
        device.on("incoming", onIncoming);
        device.on("tokenWillExpire", function () {
          fetchToken()
            .then(function (next) {
              device.updateToken(next);
            })
            .catch(function (error) {
              showError(error.message + " The phone stops working when its current access ends.");
            });
        });
        if (simulated) {
          setStatus(
            "Simulated mode: this phone has its access but cannot connect to Twilio here. Place the call through JagCall above.",
            "simulated"
          );
          refreshButtons();
          return;
        }
        setStatus("Connecting to Twilio…", "connecting");
        return device.register();
      })
      .catch(function (error) {
        setStatus("Not connected.", "error");
        showError(error instanceof TokenRefused ? error.message : explain(error));
        refreshButtons();
      });
  }

  function boot() {
    var root = document.querySelector("[data-softphone]");
    if (!root) return;
    if (window.Twilio && window.Twilio.Device) {
      start(root);
      return;
    }
    // Loaded through a boosted link, the SDK's script may still be on its way.
    var sdk = document.querySelector("script[data-twilio-sdk]");
    if (sdk) {
      sdk.addEventListener("load", function () {
        start(root);
      });
      sdk.addEventListener("error", function () {
        start(root);
      });
      setTimeout(function () {
        start(root);
      }, 10000);
    } else {
      start(root);
    }
  }

  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", boot);
  } else {
    boot();
  }
  document.addEventListener("htmx:load", boot);
})();
