// The playground: calls /v1/chat/completions from the browser with the key the user pasted, and reads the
// Server-Sent Events stream chunk by chunk. The key never goes to the console's own server.
(function () {
  "use strict";

  var KEY_STORAGE = "tollway.playground.key";
  var KEY_PATTERN = /^sk-tw-[0-9A-Za-z]{46}$/;
  var settings = document.getElementById("playground-form");
  if (!settings) return;

  var keyInput = document.getElementById("pg-key");
  var modelInput = document.getElementById("pg-model");
  var modelList = document.getElementById("pg-models");
  var modelsHelp = document.getElementById("pg-models-help");
  var systemInput = document.getElementById("pg-system");
  var temperature = document.getElementById("pg-temperature");
  var temperatureValue = document.getElementById("pg-temperature-value");
  var streamInput = document.getElementById("pg-stream");
  var log = document.getElementById("pg-log");
  var empty = document.getElementById("pg-empty");
  var sendForm = document.getElementById("pg-send-form");
  var message = document.getElementById("pg-message");
  var sendButton = document.getElementById("pg-send");
  var stopButton = document.getElementById("pg-stop");
  var clearButton = document.getElementById("pg-clear");
  var status = document.getElementById("pg-status");

  var history = [];
  var controller = null;

  try {
    var remembered = window.sessionStorage.getItem(KEY_STORAGE);
    if (remembered) keyInput.value = remembered;
  } catch (e) { /* storage unavailable */ }
  if (!modelInput.value && modelList.options.length) modelInput.value = modelList.options[0].value;

  temperature.addEventListener("input", function () {
    temperatureValue.textContent = Number(temperature.value).toFixed(1);
  });

  function setStatus(text) { status.textContent = text; }

  function addMessage(role, text) {
    if (empty) { empty.remove(); empty = null; }
    var bubble = document.createElement("div");
    bubble.className = "message message-" + role;
    var label = document.createElement("span");
    label.className = "message-role";
    label.textContent = role === "error" ? "Error" : role;
    var body = document.createElement("span");
    body.className = "message-text";
    body.textContent = text || "";
    bubble.appendChild(label);
    bubble.appendChild(body);
    log.appendChild(bubble);
    log.scrollTop = log.scrollHeight;
    return bubble;
  }

  function errorText(payload, statusCode) {
    var error = payload && payload.error;
    if (error && error.message) return error.message + (error.code ? " (" + error.code + ")" : "");
    return "The gateway answered " + statusCode + ".";
  }

  // Ask which models a key may call when the user pastes one, and only if it looks like a Tollway key (a
  // typo would answer 401). Not on page load: a key made seconds ago may not have reached the gateway's
  // key snapshot yet, and the server-drawn list of the teams' models is good enough until then.
  function loadModels() {
    var key = keyInput.value.trim();
    if (!KEY_PATTERN.test(key)) return;
    try { window.sessionStorage.setItem(KEY_STORAGE, key); } catch (e) { /* storage unavailable */ }
    fetch(settings.dataset.modelsEndpoint, { headers: { Authorization: "Bearer " + key } })
      .then(function (response) { return response.ok ? response.json() : null; })
      .then(function (payload) {
        if (!payload || !Array.isArray(payload.data)) {
          modelsHelp.textContent = "That key was not accepted; check it, or create a new one on your team's page.";
          return;
        }
        modelList.innerHTML = "";
        payload.data.forEach(function (model) {
          var option = document.createElement("option");
          option.value = model.id;
          modelList.appendChild(option);
        });
        modelsHelp.textContent = payload.data.length
          ? payload.data.length + " model" + (payload.data.length === 1 ? "" : "s") + " available to this key."
          : "This key cannot call any model yet: its team needs an active subscription.";
        var ids = payload.data.map(function (model) { return model.id; });
        if (ids.length && ids.indexOf(modelInput.value) === -1) modelInput.value = ids[0];
      })
      .catch(function () { /* offline or blocked: the typed model name still works */ });
  }
  keyInput.addEventListener("change", loadModels);

  function readStream(response, state) {
    return window.TollwaySSE.readChat(response, state, errorText, function (state) {
      state.target.textContent = state.text;
      log.scrollTop = log.scrollHeight;
    });
  }

  function finish(state, bubble) {
    bubble.classList.remove("streaming");
    var seconds = ((performance.now() - state.started) / 1000).toFixed(2);
    var parts = [seconds + " s"];
    if (state.firstTokenMs !== null) parts.push("first token after " + Math.round(state.firstTokenMs) + " ms");
    if (state.usage) parts.push(state.usage.prompt_tokens + " in / " + state.usage.completion_tokens + " out tokens");
    setStatus(parts.join(" · "));
  }

  function busy(isBusy) {
    sendButton.disabled = isBusy;
    stopButton.hidden = !isBusy;
  }

  async function send(text) {
    var key = keyInput.value.trim();
    var model = modelInput.value.trim();
    if (!key) { keyInput.focus(); setStatus("Paste an API key first."); return; }
    if (!model) { modelInput.focus(); setStatus("Pick a model."); return; }
    history.push({ role: "user", content: text });
    addMessage("user", text);
    var messages = history.slice();
    if (systemInput.value.trim()) messages.unshift({ role: "system", content: systemInput.value.trim() });
    var stream = streamInput.checked;
    var body = { model: model, messages: messages, temperature: Number(temperature.value), stream: stream };
    if (stream) body.stream_options = { include_usage: true };

    var bubble = addMessage("assistant", "");
    bubble.classList.add("streaming");
    var state = { text: "", usage: null, error: null, started: performance.now(), firstTokenMs: null };
    state.target = bubble.querySelector(".message-text");
    controller = new AbortController();
    busy(true);
    setStatus("Waiting for " + model + "…");
    try {
      var response = await fetch(settings.dataset.endpoint, {
        method: "POST",
        headers: { Authorization: "Bearer " + key, "Content-Type": "application/json" },
        body: JSON.stringify(body),
        signal: controller.signal,
      });
      if (!response.ok) {
        var payload = await response.json().catch(function () { return null; });
        throw new Error(errorText(payload, response.status));
      }
      if (stream) {
        await readStream(response, state);
      } else {
        var completion = await response.json();
        state.usage = completion.usage || null;
        var choice = completion.choices && completion.choices[0];
        state.text = (choice && choice.message && choice.message.content) || "";
      state.target.textContent = state.text;
      }
      if (state.error) throw new Error(state.error);
      history.push({ role: "assistant", content: state.text });
      finish(state, bubble);
    } catch (error) {
      bubble.classList.remove("streaming");
      if (error.name === "AbortError") {
        setStatus("Stopped.");
        if (state.text) history.push({ role: "assistant", content: state.text });
      } else {
        if (!state.text) bubble.remove();
        history.pop();
        addMessage("error", error.message);
        setStatus("");
      }
    } finally {
      busy(false);
      controller = null;
    }
  }

  sendForm.addEventListener("submit", function (event) {
    event.preventDefault();
    var text = message.value.trim();
    if (!text || controller) return;
    message.value = "";
    send(text);
  });
  message.addEventListener("keydown", function (event) {
    if (event.key === "Enter" && (event.ctrlKey || event.metaKey)) {
      event.preventDefault();
      sendForm.requestSubmit();
    }
  });
  stopButton.addEventListener("click", function () { if (controller) controller.abort(); });
  clearButton.addEventListener("click", function () {
    history = [];
    log.innerHTML = "";
    setStatus("");
  });
})();
