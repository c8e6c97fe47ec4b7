// SigmaAI: small progressive enhancements only. Every page works without this file.
"use strict";

document.addEventListener("DOMContentLoaded", () => {
  // Forms with data-confirm ask before submitting (destructive actions).
  for (const form of document.querySelectorAll("form[data-confirm]")) {
    form.addEventListener("submit", (e) => {
      if (!window.confirm(form.dataset.confirm)) e.preventDefault();
    });
  }

  // Ctrl/Cmd+Enter sends from a textarea marked data-submit-on.
  for (const area of document.querySelectorAll("textarea[data-submit-on]")) {
    area.addEventListener("keydown", (e) => {
      if (e.key === "Enter" && (e.ctrlKey || e.metaKey)) {
        e.preventDefault();
        area.form.requestSubmit();
      }
    });
  }

  // Choosing a canned reply fills the reply box (without JS the form sends it as chosen).
  for (const select of document.querySelectorAll("select[data-canned-for]")) {
    select.addEventListener("change", () => {
      const area = document.getElementById(select.dataset.cannedFor);
      const opt = select.selectedOptions[0];
      if (area && opt && opt.dataset.body) { area.value = opt.dataset.body; area.focus(); }
    });
  }

  // Single-key shortcuts, outside text fields: "/" focuses search, others follow data-key.
  document.addEventListener("keydown", (e) => {
    const t = e.target;
    if (e.ctrlKey || e.metaKey || e.altKey) return;
    if (t instanceof HTMLInputElement || t instanceof HTMLTextAreaElement || t instanceof HTMLSelectElement) return;
    if (t instanceof HTMLElement && t.isContentEditable) return;
    const target = document.querySelector(`[data-key="${CSS.escape(e.key)}"]`);
    if (!target) return;
    e.preventDefault();
    if (target instanceof HTMLInputElement || target instanceof HTMLTextAreaElement) target.focus();
    else target.click();
  });

  // Review queue: j/k move between drafts; a approves, e edits, r rejects, t takes over.
  const cards = () => Array.from(document.querySelectorAll("[data-review-card]"));
  if (cards().length) {
    let current = 0;
    const focusCard = (i) => {
      const list = cards();
      if (!list.length) return;
      current = Math.max(0, Math.min(i, list.length - 1));
      list.forEach((c, n) => c.classList.toggle("current", n === current));
      list[current].focus();
      list[current].scrollIntoView({ block: "nearest" });
    };
    focusCard(0);
    document.addEventListener("keydown", (e) => {
      const t = e.target;
      if (e.ctrlKey || e.metaKey || e.altKey) return;
      const typing = t instanceof HTMLInputElement || t instanceof HTMLTextAreaElement;
      if (typing) {
        if (e.key === "Escape") { t.blur(); focusCard(current); }
        return;
      }
      const card = cards()[current];
      if (!card) return;
      const act = (name) => card.querySelector(`[data-action="${name}"]`);
      switch (e.key) {
        case "j": focusCard(current + 1); break;
        case "k": focusCard(current - 1); break;
        case "a": if (act("approve")) act("approve").click(); else return; break;
        case "e": { const f = card.querySelector("[data-draft-text]"); if (f) f.focus(); else return; break; }
        case "r": { const f = card.querySelector("[data-reject-reason]"); if (f) f.focus(); else return; break; }
        case "t": if (act("take-over")) act("take-over").click(); else return; break;
        case "d": if (act("dismiss")) act("dismiss").click(); else return; break;
        default: return;
      }
      e.preventDefault();
      e.stopImmediatePropagation();
    }, true);
  }

  // Live updates: when the server says this tenant's data changed, re-fetch this page and
  // swap in the regions marked data-live-refresh (the same markup the server renders).
  const live = document.body.dataset.live;
  const regions = document.querySelectorAll("[data-live-refresh]");
  if (live && regions.length && "EventSource" in window) {
    let pending = null;
    const refresh = async () => {
      pending = null;
      const res = await fetch(window.location.href, { credentials: "same-origin" });
      if (!res.ok) return;
      const doc = new DOMParser().parseFromString(await res.text(), "text/html");
      for (const region of document.querySelectorAll("[data-live-refresh]")) {
        const fresh = doc.getElementById(region.id);
        if (fresh && fresh.innerHTML !== region.innerHTML) region.innerHTML = fresh.innerHTML;
      }
    };
    const source = new EventSource(live);
    source.addEventListener("change", () => {
      // Coalesce bursts into one refresh.
      if (!pending) pending = setTimeout(refresh, 250);
    });
  }
});
