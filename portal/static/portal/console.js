// Tollway console: small enhancements over plain server-rendered pages. Everything works without it,
// except copying to the clipboard and the playground.
(function () {
  "use strict";

  // Phone-width navigation.
  document.querySelectorAll("[data-nav-toggle]").forEach(function (button) {
    button.addEventListener("click", function () {
      var nav = document.getElementById(button.getAttribute("aria-controls"));
      var open = nav.classList.toggle("open");
      button.setAttribute("aria-expanded", open ? "true" : "false");
    });
  });

  // Ask before destructive actions (revoking a key).
  document.querySelectorAll("form[data-confirm]").forEach(function (form) {
    form.addEventListener("submit", function (event) {
      if (!window.confirm(form.getAttribute("data-confirm"))) event.preventDefault();
    });
  });

  function copyText(text) {
    if (navigator.clipboard && window.isSecureContext) return navigator.clipboard.writeText(text);
    // Plain-HTTP deployments have no Clipboard API: fall back to a selected textarea.
    return new Promise(function (resolve, reject) {
      var area = document.createElement("textarea");
      area.value = text;
      area.setAttribute("readonly", "");
      area.style.position = "fixed";
      area.style.opacity = "0";
      document.body.appendChild(area);
      area.select();
      var copied = false;
      try { copied = document.execCommand("copy"); } catch (e) { copied = false; }
      document.body.removeChild(area);
      if (copied) { resolve(); } else { reject(new Error("copy refused")); }
    });
  }

  document.querySelectorAll("[data-copy-target]").forEach(function (button) {
    var label = button.textContent;
    button.addEventListener("click", function () {
      var source = document.getElementById(button.getAttribute("data-copy-target"));
      copyText(source.textContent.trim()).then(
        function () { button.textContent = "Copied ✓"; },
        function () {
          // Leave the key selected so Ctrl+C still works.
          var range = document.createRange();
          range.selectNodeContents(source);
          var selection = window.getSelection();
          selection.removeAllRanges();
          selection.addRange(range);
          button.textContent = "Press Ctrl+C";
        }
      );
      window.setTimeout(function () { button.textContent = label; }, 2500);
    });
  });

  // "Try it in the playground": hand the new key over in this tab's sessionStorage only.
  document.querySelectorAll("[data-playground-key]").forEach(function (link) {
    link.addEventListener("click", function () {
      var source = document.getElementById(link.getAttribute("data-playground-key"));
      try { window.sessionStorage.setItem("tollway.playground.key", source.textContent.trim()); } catch (e) { /* private mode */ }
    });
  });
})();
