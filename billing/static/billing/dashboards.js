// Dashboards: draw each [data-chart] from the JSON its [data-dashboard] container points at (figures built by
// billing/dashboards/figures.py). The stack buttons re-fetch the same data with another "stack".
(function () {
  "use strict";

  function status(element, text) {
    element.innerHTML = "";
    var p = document.createElement("p");
    p.className = "chart-status muted";
    p.textContent = text;
    element.appendChild(p);
    element.classList.add("chart-empty");
  }

  // A zero is a point (no errors in an hour, a free model): only a figure without any value is "no data".
  function hasPoints(figure) {
    return figure && figure.data && figure.data.some(function (trace) {
      return (trace.y || []).some(function (value) { return value !== null && value !== undefined; });
    });
  }

  function draw(element, figure) {
    if (!hasPoints(figure)) {
      if (window.Plotly) window.Plotly.purge(element);
      status(element, "No data in this range.");
      return;
    }
    element.classList.remove("chart-empty");
    var placeholder = element.querySelector(".chart-status");
    if (placeholder) placeholder.remove();
    window.Plotly.react(element, figure.data, figure.layout, { responsive: true, displaylogo: false, displayModeBar: false });
  }

  function figureFor(payload, name) {
    if (name.indexOf("budget-") === 0) return (payload.budgets || {})[name.slice(7)];
    return payload[name];
  }

  function load(container, extra) {
    var url = container.getAttribute("data-source") + (extra || "");
    var charts = container.querySelectorAll("[data-chart]");
    container.setAttribute("aria-busy", "true");
    return fetch(url, { credentials: "same-origin", headers: { Accept: "application/json" } })
      .then(function (response) {
        if (!response.ok) throw new Error("HTTP " + response.status);
        return response.json();
      })
      .then(function (payload) {
        charts.forEach(function (element) { draw(element, figureFor(payload, element.getAttribute("data-chart"))); });
        container.setAttribute("data-loaded", "true");
      })
      .catch(function () {
        charts.forEach(function (element) { status(element, "The chart could not be loaded. Reload the page to try again."); });
        container.setAttribute("data-loaded", "error");
      })
      .finally(function () { container.removeAttribute("aria-busy"); });
  }

  document.querySelectorAll("[data-dashboard]").forEach(function (container) {
    if (!window.Plotly) {
      container.querySelectorAll("[data-chart]").forEach(function (element) { status(element, "Charts need JavaScript (plotly.js) to draw."); });
      return;
    }
    load(container);
    container.querySelectorAll("[data-stack]").forEach(function (button) {
      button.addEventListener("click", function () {
        container.querySelectorAll("[data-stack]").forEach(function (other) {
          var on = other === button;
          other.classList.toggle("btn-primary", on);
          other.classList.toggle("btn-ghost", !on);
          other.setAttribute("aria-pressed", on ? "true" : "false");
        });
        load(container, "&stack=" + encodeURIComponent(button.getAttribute("data-stack")));
      });
    });
  });
})();
