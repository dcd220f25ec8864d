// Small progressive enhancements for the dashboard. Everything works without this file; it only adds
// confirmations, select-all, copy buttons and focus handling. No inline handlers (the CSP forbids them).
(function () {
  "use strict";
  document.addEventListener("click", function (e) {
    var confirmer = e.target.closest("[data-confirm]");
    if (confirmer && !window.confirm(confirmer.getAttribute("data-confirm"))) {
      e.preventDefault();
      e.stopPropagation();
      return;
    }
    var copier = e.target.closest("[data-copy]");
    if (copier) {
      var source = document.getElementById(copier.getAttribute("data-copy"));
      if (source && navigator.clipboard) {
        navigator.clipboard.writeText(source.value || source.textContent).then(function () {
          copier.textContent = "Copied";
        });
      }
    }
  }, true);
  document.addEventListener("change", function (e) {
    var all = e.target.closest("[data-select-all]");
    if (all) {
      var form = all.form || document;
      form.querySelectorAll("input[type=checkbox][name='" + all.getAttribute("data-select-all") + "']").forEach(function (box) {
        box.checked = all.checked;
      });
    }
  });
  // The "save this view" form sits outside the results htmx replaces: after htmx filtered and pushed the new URL,
  // its hidden filters follow the URL (without the page position). Without JavaScript the page reloads anyway.
  document.addEventListener("htmx:pushedIntoHistory", function () {
    var filters = document.getElementById("view-filters");
    if (filters) {
      var params = new URLSearchParams(window.location.search);
      params.delete("cursor");
      filters.value = params.toString();
    }
  });
  // After htmx swaps a whole result area in, move focus to it so keyboard and screen-reader users follow.
  document.addEventListener("htmx:afterSwap", function (e) {
    if (e.detail && e.detail.target && e.detail.target.id === "results") {
      e.detail.target.setAttribute("tabindex", "-1");
      e.detail.target.focus({ preventScroll: true });
    }
  });
})();
