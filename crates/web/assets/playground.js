// The dashboard Playground: creates a Mentor session in the chosen agent's org (POST /api/session), posts each
// message to /api/chat and appends the streamed answer (AI SDK UI message stream: SSE `data: {json}` lines,
// text in `text-delta` chunks, `error` chunks on failure, `data: [DONE]` at the end) to the transcript as it
// arrives. No inline script or style: the page's CSP allows scripts and connections to this origin only.
(function () {
  "use strict";
  var form = document.getElementById("playground-form");
  if (!form) {
    return;
  }
  var agent = document.getElementById("playground-agent");
  var message = document.getElementById("playground-message");
  var send = document.getElementById("playground-send");
  var fresh = document.getElementById("playground-new");
  var transcript = document.getElementById("playground-transcript");
  var status = document.getElementById("playground-status");
  var sessionUrl = form.getAttribute("data-session-url") || "/api/session";
  var chatUrl = form.getAttribute("data-chat-url") || "/api/chat";

  var session = null; // {id, org}
  var busy = false;
  var controller = null;

  function say(text) {
    status.textContent = text;
  }

  function orgOf(select) {
    var option = select.options[select.selectedIndex];
    return option ? option.getAttribute("data-org") : "";
  }

  function clearEmpty() {
    var empty = document.getElementById("playground-empty");
    if (empty) {
      empty.remove();
    }
  }

  function bubble(role, text) {
    clearEmpty();
    var item = document.createElement("div");
    item.className = "playground-msg " + role;
    var who = document.createElement("span");
    who.className = "playground-role";
    who.textContent = role === "user" ? "You" : role === "assistant" ? "Agent" : "Problem";
    var body = document.createElement("div");
    body.className = "playground-text";
    body.textContent = text || "";
    item.appendChild(who);
    item.appendChild(body);
    transcript.appendChild(item);
    transcript.scrollTop = transcript.scrollHeight;
    return body;
  }

  function problem(text) {
    var body = bubble("error", text);
    body.parentNode.setAttribute("role", "alert");
    say(text);
  }

  // The words of an API error envelope {"error": {"code", "message", "details"}}.
  function envelopeText(response, bodyText) {
    var text = "";
    var code = "";
    try {
      var parsed = JSON.parse(bodyText);
      if (parsed && parsed.error) {
        code = parsed.error.code || "";
        text = parsed.error.message || "";
        var missing = (parsed.error.details || {}).missing;
        if (Array.isArray(missing) && missing.length && text.indexOf(missing[0]) === -1) {
          text += " (set " + missing.join(" or ") + ")";
        }
      }
    } catch (e) {
      text = "";
    }
    var prefix;
    if (code === "provider_not_configured" && text) {
      return "The agent cannot answer: " + text + (/[.!?]$/.test(text) ? "" : ".");
    } else if (code === "provider_not_configured") {
      prefix = "The agent cannot answer: its model provider is not configured on this server.";
    } else {
      switch (response.status) {
        case 503: prefix = "The service is unavailable right now."; break;
        case 429: prefix = "The model provider is busy (rate limited). Wait a moment and send again."; break;
        case 502: prefix = "The model provider failed."; break;
        case 504: prefix = "The model provider did not answer in time."; break;
        case 404: prefix = "Not found."; break;
        default: prefix = "The request failed (HTTP " + response.status + ").";
      }
    }
    return text ? prefix + " " + text.charAt(0).toUpperCase() + text.slice(1) + (/[.!?]$/.test(text) ? "" : ".") : prefix;
  }

  function postJson(url, body, signal) {
    return fetch(url, {
      method: "POST",
      headers: { "content-type": "application/json", "accept": "application/json, text/event-stream" },
      body: JSON.stringify(body),
      credentials: "same-origin",
      signal: signal
    });
  }

  function ensureSession(signal) {
    var org = orgOf(agent);
    if (session && session.org === org) {
      return Promise.resolve(session.id);
    }
    return postJson(sessionUrl, { orgId: org }, signal).then(function (response) {
      return response.text().then(function (text) {
        if (!response.ok) {
          throw new Error("Could not start a Mentor session. " + envelopeText(response, text));
        }
        var body = JSON.parse(text);
        session = { id: body.sessionId, org: org };
        return session.id;
      });
    });
  }

  // Reads the SSE body, calling onChunk for each parsed chunk; resolves at [DONE] or the end of the body.
  function readStream(response, onChunk) {
    var reader = response.body.getReader();
    var decoder = new TextDecoder();
    var buffer = "";
    var done = false;
    function handle(event) {
      var lines = event.split("\n");
      for (var i = 0; i < lines.length; i++) {
        var line = lines[i];
        if (line.indexOf("data:") !== 0) {
          continue; // comments (keep-alive) and other fields
        }
        var data = line.slice(5).replace(/^ /, "");
        if (data === "[DONE]") {
          done = true;
          return;
        }
        try {
          onChunk(JSON.parse(data));
        } catch (e) {
          // A malformed chunk is skipped; the protocol sends one JSON object per line.
        }
      }
    }
    function pump() {
      return reader.read().then(function (result) {
        if (result.value) {
          buffer += decoder.decode(result.value, { stream: true });
          buffer = buffer.replace(/\r\n/g, "\n");
          var cut;
          while (!done && (cut = buffer.indexOf("\n\n")) !== -1) {
            handle(buffer.slice(0, cut));
            buffer = buffer.slice(cut + 2);
          }
        }
        if (result.done || done) {
          if (!done && buffer.trim()) {
            handle(buffer);
          }
          if (done) {
            reader.cancel().catch(function () {});
          }
          return;
        }
        return pump();
      });
    }
    return pump();
  }

  function setBusy(on) {
    busy = on;
    send.disabled = on;
    send.textContent = on ? "Sending…" : "Send";
    form.setAttribute("aria-busy", on ? "true" : "false");
  }

  function submit() {
    var text = message.value.trim();
    if (busy) {
      return;
    }
    if (!text) {
      say("Type a message first.");
      message.focus();
      return;
    }
    var agentId = agent.value;
    setBusy(true);
    controller = typeof AbortController === "function" ? new AbortController() : null;
    var signal = controller ? controller.signal : undefined;
    bubble("user", text);
    message.value = "";
    say("Waiting for the agent…");
    var answer = null;
    var failed = false;
    ensureSession(signal)
      .then(function (sessionId) {
        return postJson(chatUrl, { sessionId: sessionId, agentId: agentId, message: text }, signal);
      })
      .then(function (response) {
        if (!response.ok || !response.body) {
          return response.text().then(function (body) {
            failed = true;
            problem(envelopeText(response, body));
          });
        }
        say("The agent is answering…");
        return readStream(response, function (chunk) {
          if (chunk.type === "text-delta" && typeof chunk.delta === "string") {
            if (!answer) {
              answer = bubble("assistant", "");
            }
            answer.textContent += chunk.delta;
            transcript.scrollTop = transcript.scrollHeight;
          } else if (chunk.type === "error") {
            failed = true;
            problem("The answer stopped: " + (chunk.errorText || "an error occurred") + ".");
          } else if (chunk.type === "tool-input-available" && chunk.toolName) {
            say("The agent is using a tool: " + chunk.toolName + "…");
          }
        });
      })
      .then(function () {
        if (!failed) {
          if (!answer) {
            bubble("assistant", "(no text in the answer)");
          }
          say("Answer complete.");
        }
      })
      .catch(function (err) {
        if (err && err.name === "AbortError") {
          say("Stopped.");
          return;
        }
        problem(err && err.message && err.message.indexOf("Could not start") === 0
          ? err.message
          : "The answer could not be read: the connection failed. Check that the server is running and try again.");
      })
      .then(function () {
        controller = null;
        setBusy(false);
        message.focus();
      });
  }

  function reset(reason) {
    if (controller) {
      controller.abort();
    }
    session = null;
    transcript.textContent = "";
    var empty = document.createElement("p");
    empty.className = "hint playground-empty";
    empty.id = "playground-empty";
    empty.textContent = "New conversation. Type a message and press Send.";
    transcript.appendChild(empty);
    say(reason);
  }

  form.addEventListener("submit", function (e) {
    e.preventDefault();
    submit();
  });
  message.addEventListener("keydown", function (e) {
    if (e.key === "Enter" && !e.shiftKey && !e.isComposing) {
      e.preventDefault();
      submit();
    }
  });
  fresh.addEventListener("click", function () {
    reset("Started a new conversation.");
    message.focus();
  });
  agent.addEventListener("change", function () {
    if (session) {
      reset("Switched agent: a new conversation starts with your next message.");
    }
  });
})();
