// SigmaAI: small progressive enhancements only. Every page works without this file.
"use strict";
document.addEventListener("DOMContentLoaded", () => {
  // Forms with data-confirm ask before submitting (destructive actions).
  for (const form of document.querySelectorAll("form[data-confirm]")) {
    form.addEventListener("submit", (e) => {
      if (!window.confirm(form.dataset.confirm)) e.preventDefault();
    });
  }
});
