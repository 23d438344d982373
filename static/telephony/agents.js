/* The agent editor's post-call analysis fields: add and remove rows, and show the
   options input only for "One of a list" (enum) fields. Plain JavaScript, no build step.
   Listens on the document once, so it keeps working when htmx swaps the page in. */
(function () {
  "use strict";
  if (window.jagcallAgentEditor) return;
  window.jagcallAgentEditor = true;

  function rows(editor) {
    return editor.querySelector("[data-analysis-rows]");
  }

  function nextIndex(container) {
    var highest = -1;
    container.querySelectorAll("input[name^='analysis-'], select[name^='analysis-']").forEach(function (input) {
      var match = /^analysis-(\d+)-/.exec(input.name);
      if (match) highest = Math.max(highest, parseInt(match[1], 10));
    });
    return highest + 1;
  }

  function syncOptions(row) {
    var type = row.querySelector("[data-analysis-type]");
    var options = row.querySelector("[data-analysis-options]");
    if (type && options) options.hidden = type.value !== "enum";
  }

  document.addEventListener("click", function (event) {
    var add = event.target.closest("[data-analysis-add]");
    if (add) {
      var editor = add.closest("[data-agent-editor]");
      var container = rows(editor);
      var max = parseInt(container.getAttribute("data-max") || "20", 10);
      if (container.querySelectorAll("[data-analysis-row]").length >= max) {
        add.disabled = true;
        add.textContent = "At most " + max + " fields";
        return;
      }
      var template = editor.querySelector("[data-analysis-template]");
      var html = template.innerHTML.replace(/__index__/g, String(nextIndex(container)));
      container.insertAdjacentHTML("beforeend", html);
      var added = container.lastElementChild;
      syncOptions(added);
      var name = added.querySelector("input");
      if (name) name.focus();
      return;
    }
    var remove = event.target.closest("[data-analysis-remove]");
    if (remove) {
      var row = remove.closest("[data-analysis-row]");
      var adder = remove.closest("[data-agent-editor]").querySelector("[data-analysis-add]");
      row.remove();
      if (adder && adder.disabled) {
        adder.disabled = false;
        adder.textContent = "Add a field";
      }
    }
  });

  document.addEventListener("change", function (event) {
    if (event.target.matches && event.target.matches("[data-analysis-type]")) {
      syncOptions(event.target.closest("[data-analysis-row]"));
    }
  });
})();
