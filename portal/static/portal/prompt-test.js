// Test runs of a prompt: the console renders the messages (server-side, with core/prompts.py), then the browser
// calls /v1/chat/completions once per chosen alias, side by side and streaming, with the key the user pasted
// (keys are stored hashed, so the server has none to lend). Latency is measured here; the cost is estimated
// from the usage the stream reports, priced with the catalogue's prices of the deployment that answered
// (x-tollway-deployment). A kept example is priced again by the server, from the token counts.
(function () {
  "use strict";

  var KEY_STORAGE = "tollway.playground.key";
  var form = document.getElementById("test-form");
  if (!form) return;
  var keyInput = document.getElementById("test-key");
  var versionInput = document.getElementById("test-version");
  var results = document.getElementById("test-results");
  var errorBox = document.getElementById("test-error");
  var runButton = document.getElementById("test-run");
  var prices = JSON.parse(document.getElementById("test-prices").textContent);
  var csrf = form.querySelector("input[name=csrfmiddlewaretoken]").value;
  var canKeep = form.dataset.canKeep === "true";

  try {
    var remembered = window.sessionStorage.getItem(KEY_STORAGE);
    if (remembered) keyInput.value = remembered;
  } catch (e) { /* storage unavailable */ }

  function showError(text) {
    errorBox.textContent = text || "";
    errorBox.hidden = !text;
  }

  function errorText(payload, statusCode) {
    var error = payload && payload.error;
    if (error && error.message) return error.message + (error.param ? " (" + error.param + ")" : "");
    return "The gateway answered " + statusCode + ".";
  }

  function typedValues() {
    var values = {};
    form.querySelectorAll("[data-variable-input]").forEach(function (input) {
      if (input.value !== "") values[input.getAttribute("data-variable-input")] = input.value;
    });
    return values;
  }

  // Dollars from a price per million tokens (text, as the catalogue stores it): an estimate for the page only.
  function costOf(usage, price) {
    if (!usage || !price) return null;
    var cached = (usage.prompt_tokens_details && usage.prompt_tokens_details.cached_tokens) || 0;
    if (price.cached === null) cached = 0;
    var input = (usage.prompt_tokens - cached) * Number(price.input) + cached * Number(price.cached || 0);
    return (input + usage.completion_tokens * Number(price.output)) / 1e6;
  }

  // As the server shows a kept example's cost (portal/views/rendering.py usd): cents at least, to 10 places.
  function dollars(amount) {
    if (amount === null) return "—";
    return "$" + amount.toFixed(10).replace(/(\.\d\d\d*?)0+$/, "$1");
  }

  function column(alias) {
    var card = document.createElement("article");
    card.className = "card run";
    card.setAttribute("data-testid", "run-" + alias);
    card.innerHTML =
      '<header class="run-header"><code></code><span class="run-status muted small">waiting…</span></header>' +
      '<div class="run-output message message-assistant streaming"></div>' +
      '<dl class="run-facts"><dt>Latency</dt><dd class="run-latency">—</dd><dt>First token</dt><dd class="run-first">—</dd>' +
      '<dt>Tokens</dt><dd class="run-tokens">—</dd><dt>Cost</dt><dd class="run-cost">—</dd></dl>';
    card.querySelector("code").textContent = alias;
    return card;
  }

  function readStream(response, state) {
    return window.TollwaySSE.readChat(response, state, errorText, function (state) {
      state.output.textContent = state.text;
    });
  }

  function keepButton(card, run) {
    var button = document.createElement("button");
    button.type = "button";
    button.className = "btn btn-ghost btn-sm";
    button.textContent = "Keep as an example of v" + run.version;
    button.setAttribute("data-testid", "keep-" + run.alias);
    button.addEventListener("click", async function () {
      button.disabled = true;
      var response = await fetch(form.dataset.examplesUrl, {
        method: "POST",
        headers: { "Content-Type": "application/json", "X-CSRFToken": csrf },
        credentials: "same-origin",
        body: JSON.stringify(run),
      });
      var payload = await response.json().catch(function () { return null; });
      if (!response.ok) {
        button.disabled = false;
        showError(errorText(payload, response.status));
        return;
      }
      button.textContent = "Kept ✓";
      addExampleRow(run, payload);
    });
    card.appendChild(button);
  }

  function addExampleRow(run, payload) {
    var table = document.querySelector("[data-testid=examples]");
    var empty = document.getElementById("examples-empty");
    if (empty) empty.remove();
    table.hidden = false;
    var row = document.createElement("tr");
    row.setAttribute("data-testid", "example-" + payload.id);
    var cells = ["v" + payload.version, run.alias, JSON.stringify(run.variables), run.output.slice(0, 300),
      payload.cost || "—", Math.round(run.latency_ms) + " ms", "you"];
    cells.forEach(function (text, index) {
      var cell = document.createElement("td");
      if (index === 4 || index === 5) cell.className = "num";
      cell.textContent = text;
      row.appendChild(cell);
    });
    document.getElementById("example-rows").prepend(row);
  }

  async function runOn(alias, rendered, key, card) {
    var output = card.querySelector(".run-output");
    var status = card.querySelector(".run-status");
    var body = Object.assign({}, rendered.parameters || {}, {
      model: alias, messages: rendered.messages, stream: true, stream_options: { include_usage: true },
    });
    var state = { text: "", usage: null, error: null, started: performance.now(), firstTokenMs: null, output: output };
    try {
      var response = await fetch(form.dataset.endpoint, {
        method: "POST",
        headers: { Authorization: "Bearer " + key, "Content-Type": "application/json" },
        body: JSON.stringify(body),
      });
      if (!response.ok) {
        var payload = await response.json().catch(function () { return null; });
        throw new Error(errorText(payload, response.status));
      }
      var deployment = response.headers.get("x-tollway-deployment");
      await readStream(response, state);
      if (state.error) throw new Error(state.error);
      var latencyMs = performance.now() - state.started;
      var aliasPrices = prices[alias] || { deployments: {}, first: null };
      var price = aliasPrices.deployments[deployment] || aliasPrices.deployments[aliasPrices.first] || null;
      output.classList.remove("streaming");
      status.textContent = deployment ? "answered by " + deployment : "done";
      card.querySelector(".run-latency").textContent = Math.round(latencyMs) + " ms";
      if (state.firstTokenMs !== null) card.querySelector(".run-first").textContent = Math.round(state.firstTokenMs) + " ms";
      if (state.usage) {
        card.querySelector(".run-tokens").textContent = state.usage.prompt_tokens + " in / " + state.usage.completion_tokens + " out";
      }
      card.querySelector(".run-cost").textContent = dollars(costOf(state.usage, price));
      card.classList.add("run-done");
      if (canKeep && rendered.version !== null) {
        keepButton(card, {
          version: rendered.version, alias: alias, variables: rendered.variables, output: state.text,
          usage: state.usage, deployment: deployment, latency_ms: latencyMs,
        });
      }
    } catch (error) {
      output.classList.remove("streaming");
      output.classList.add("message-error");
      output.textContent = error.message;
      status.textContent = "failed";
      card.classList.add("run-failed");
    }
  }

  form.addEventListener("submit", async function (event) {
    event.preventDefault();
    showError("");
    var key = keyInput.value.trim();
    var aliases = Array.prototype.map.call(form.querySelectorAll("input[name=alias]:checked"), function (box) { return box.value; });
    if (!key) { keyInput.focus(); showError("Paste an API key first."); return; }
    if (!aliases.length) { showError("Pick at least one alias."); return; }
    try { window.sessionStorage.setItem(KEY_STORAGE, key); } catch (e) { /* storage unavailable */ }
    runButton.disabled = true;
    try {
      var response = await fetch(form.dataset.renderUrl, {
        method: "POST",
        headers: { "Content-Type": "application/json", "X-CSRFToken": csrf },
        credentials: "same-origin",
        body: JSON.stringify({ version: versionInput.value, values: typedValues() }),
      });
      var rendered = await response.json().catch(function () { return null; });
      if (!response.ok) { showError(errorText(rendered, response.status)); return; }
      results.innerHTML = "";
      var runs = aliases.map(function (alias) {
        var card = column(alias);
        results.appendChild(card);
        return runOn(alias, rendered, key, card);
      });
      await Promise.all(runs);
    } finally {
      runButton.disabled = false;
    }
  });
})();
