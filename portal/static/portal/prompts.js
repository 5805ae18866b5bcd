// The prompt editor: add and remove message rows, and keep the variables table in step with the text as it is
// typed. Names are found with the same pattern as core/prompts.py (`\{{` is a literal, `{{ name }}` a variable);
// the server checks everything again on save and preview, so this only saves typing.
(function () {
  "use strict";

  var editor = document.getElementById("prompt-editor");
  if (!editor) return;
  var messageRows = document.getElementById("message-rows");
  var messageTemplate = document.getElementById("message-row-template");
  var variableRows = document.getElementById("variable-rows");
  var variableTemplate = document.getElementById("variable-row-template");
  var variablesTable = editor.querySelector(".variables-table");
  var variablesEmpty = document.getElementById("variables-empty");
  var TOKEN = /\\\{\{|\{\{\s*([A-Za-z_][A-Za-z0-9_]{0,63})\s*\}\}/g;
  // Rows of variables no longer in the text, kept so retyping a name brings its settings back.
  var detached = {};
  var nextIndex = messageRows.querySelectorAll(".message-row").length;

  function namesInText() {
    var names = [];
    messageRows.querySelectorAll("textarea[name=message_content]").forEach(function (area) {
      var match;
      TOKEN.lastIndex = 0;
      while ((match = TOKEN.exec(area.value)) !== null) {
        if (match[1] && names.indexOf(match[1]) === -1) names.push(match[1]);
      }
    });
    return names;
  }

  function rowOf(name) {
    return variableRows.querySelector('tr.variable-row[data-variable="' + name + '"]');
  }

  function newVariableRow(name) {
    var holder = document.createElement("tbody");
    // Names match [A-Za-z_][A-Za-z0-9_]*, so they are safe to put in the markup.
    holder.innerHTML = variableTemplate.innerHTML.replace(/__name__/g, name);
    return holder.querySelector("tr");
  }

  function syncVariables() {
    var names = namesInText();
    variableRows.querySelectorAll("tr.variable-row").forEach(function (row) {
      var name = row.getAttribute("data-variable");
      if (names.indexOf(name) === -1) {
        detached[name] = row;
        var error = variableRows.querySelector('tr[data-error-for="' + name + '"]');
        if (error) error.remove();
        row.remove();
      }
    });
    names.forEach(function (name) {
      var row = rowOf(name) || detached[name] || newVariableRow(name);
      delete detached[name];
      variableRows.appendChild(row);  // appending an attached row moves it: the table follows first-use order
      var error = variableRows.querySelector('tr[data-error-for="' + name + '"]');
      if (error) variableRows.appendChild(error);
      showEnumValues(row);
    });
    variablesTable.hidden = names.length === 0;
    variablesEmpty.hidden = names.length !== 0;
  }

  function showEnumValues(row) {
    var type = row.querySelector(".variable-type");
    var values = row.querySelector(".variable-values");
    if (type && values) values.disabled = type.value !== "enum";
  }

  variableRows.addEventListener("change", function (event) {
    if (event.target.classList.contains("variable-type")) showEnumValues(event.target.closest("tr"));
  });
  // A variable with a default is never missing, so typing one makes it optional (the server does the same).
  variableRows.addEventListener("input", function (event) {
    if (!/_default$/.test(event.target.name || "") || !event.target.value) return;
    var required = event.target.closest("tr").querySelector('input[name$="_required"]');
    if (required) required.checked = false;
  });
  messageRows.addEventListener("input", function (event) {
    if (event.target.name === "message_content") syncVariables();
  });
  messageRows.addEventListener("click", function (event) {
    var button = event.target.closest("[data-remove-message]");
    if (!button) return;
    if (messageRows.querySelectorAll(".message-row").length > 1) button.closest(".message-row").remove();
    syncVariables();
  });
  var addButton = document.getElementById("add-message");
  if (addButton) {
    addButton.addEventListener("click", function () {
      var holder = document.createElement("div");
      holder.innerHTML = messageTemplate.innerHTML.replace(/__index__/g, String(nextIndex++));
      var row = holder.querySelector(".message-row");
      messageRows.appendChild(row);
      row.querySelector("textarea").focus();
    });
  }
  variableRows.querySelectorAll("tr.variable-row").forEach(showEnumValues);
})();
