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

  // The shortcut list: a native modal dialog (focus moves in, Esc closes, focus returns).
  for (const button of document.querySelectorAll("button[data-opens]")) {
    const dialog = document.getElementById(button.dataset.opens);
    if (!(dialog instanceof HTMLDialogElement)) continue;
    button.hidden = false;
    button.addEventListener("click", () => dialog.showModal());
  }

  // Single-key shortcuts, outside text fields: "/" focuses search, others follow data-key.
  document.addEventListener("keydown", (e) => {
    const t = e.target;
    if (e.ctrlKey || e.metaKey || e.altKey) return;
    if (t instanceof HTMLInputElement || t instanceof HTMLTextAreaElement || t instanceof HTMLSelectElement) return;
    if (t instanceof HTMLElement && t.isContentEditable) return;
    if (document.querySelector("dialog[open]")) return;
    const target = document.querySelector(`[data-key="${CSS.escape(e.key)}"]`);
    if (!target) return;
    e.preventDefault();
    if (target instanceof HTMLInputElement || target instanceof HTMLTextAreaElement) target.focus();
    else target.click();
  });

  // Review queue: j/k move between drafts; a approves, e edits, r rejects, t takes over,
  // d dismisses. Action keys act on the card that holds focus (Tab or a click moves
  // "current" there), never on one remembered from an earlier j/k: a reviewer must see the
  // draft a key sends.
  const cards = () => Array.from(document.querySelectorAll("[data-review-card]"));
  let currentId = null;
  const markCurrent = (card) => {
    currentId = card ? card.id : null;
    for (const c of cards()) {
      const on = c === card;
      c.classList.toggle("current", on);
      if (on) c.setAttribute("aria-current", "true"); else c.removeAttribute("aria-current");
    }
  };
  const cardOf = (el) => (el instanceof Element ? el.closest("[data-review-card]") : null);
  const focusCard = (card) => {
    if (!card) return;
    markCurrent(card);
    card.focus();
    card.scrollIntoView({ block: "nearest" });
  };
  if (cards().length) {
    focusCard(cards()[0]);
  }
  document.addEventListener("focusin", (e) => {
    const card = cardOf(e.target);
    if (card && card.id !== currentId) markCurrent(card);
  });
  document.addEventListener("keydown", (e) => {
    if (!cards().length || document.querySelector("dialog[open]")) return;
    const t = e.target;
    if (e.ctrlKey || e.metaKey || e.altKey) return;
    const typing = t instanceof HTMLInputElement || t instanceof HTMLTextAreaElement || t instanceof HTMLSelectElement;
    if (typing) {
      if (e.key === "Escape") { const card = cardOf(t); t.blur(); if (card) focusCard(card); }
      return;
    }
    const list = cards();
    const focused = cardOf(document.activeElement);
    const here = focused || document.getElementById(currentId || "");
    const at = here ? list.indexOf(here) : -1;
    switch (e.key) {
      case "j": focusCard(list[Math.min(at + 1, list.length - 1)]); break;
      case "k": focusCard(list[Math.max(at - 1, 0)]); break;
      case "a": case "e": case "r": case "t": case "d": {
        // Only the focused card: with focus elsewhere (nav, body) the key does nothing.
        if (!focused || focused.classList.contains("stale")) return;
        const act = (name) => focused.querySelector(`[data-action="${name}"]:not(:disabled)`);
        const target = {
          a: () => act("approve"),
          t: () => act("take-over"),
          d: () => act("dismiss"),
          e: () => focused.querySelector("[data-draft-text]"),
          r: () => focused.querySelector("[data-reject-reason]"),
        }[e.key]();
        if (!target) return;
        if (target instanceof HTMLButtonElement) target.click(); else target.focus();
        break;
      }
      default: return;
    }
    e.preventDefault();
    e.stopImmediatePropagation();
  }, true);

  // Presence: a conversation page tells the server every few seconds that this member is
  // here, and whether they are editing the AI's draft (the queue does so only while a card's
  // draft is being edited). The member editing a draft holds it: for everyone else the
  // server refuses approve/reject until they stop, and the answer to each heartbeat says who
  // holds it, so the buttons here are disarmed first. A closed page says goodbye.
  const csrfValue = () => {
    const f = document.querySelector("input[name=csrf]");
    return f ? f.value : "";
  };
  const showLock = (scope, name) => {
    if (!scope) return;
    const note = scope.querySelector("[data-lock-note]");
    if (note) {
      note.hidden = !name;
      if (name) note.textContent = (note.dataset.text || "").replace("{}", name);
    }
    for (const b of scope.querySelectorAll('[data-action="approve"], [data-action="reject"], [data-action="regenerate"]')) b.disabled = !!name;
  };
  const beat = async (url, draftId, editing, scope) => {
    const body = new URLSearchParams({ csrf: csrfValue(), draft: draftId || "", editing: editing ? "1" : "" });
    try {
      const res = await fetch(url, { method: "POST", credentials: "same-origin", body });
      if (res.ok && res.status === 200) showLock(scope, (await res.json()).locked_by);
    } catch (_) { /* offline: the next beat tries again */ }
  };
  const goodbye = (url) => {
    const body = new URLSearchParams({ csrf: csrfValue(), leave: "1" });
    if (!(navigator.sendBeacon && navigator.sendBeacon(url, body))) {
      fetch(url, { method: "POST", credentials: "same-origin", body, keepalive: true }).catch(() => {});
    }
  };
  const editingIn = (scope) => {
    const area = scope && scope.querySelector("[data-draft-text]");
    return !!area && (document.activeElement === area || area.value !== area.defaultValue);
  };
  const onPage = document.querySelector(".conversation[data-presence]");
  if (onPage) {
    const url = onPage.dataset.presence;
    const every = Math.max(5, Number(onPage.dataset.heartbeat) || 20) * 1000;
    const draftScope = () => document.getElementById("ai-draft");
    let was = null;
    const send = () => {
      const scope = draftScope();
      was = editingIn(scope);
      beat(url, scope ? scope.dataset.draftId : "", was, scope);
    };
    setInterval(send, every);
    // Starting (or stopping) an edit is told at once, not at the next beat.
    const changed = () => { if (editingIn(draftScope()) !== was) send(); };
    document.addEventListener("focusin", changed);
    document.addEventListener("input", changed);
    document.addEventListener("focusout", () => setTimeout(changed, 0));
    window.addEventListener("pagehide", () => goodbye(url));
  }
  let editingCard = null;
  const cardBeat = () => {
    const card = cardOf(document.activeElement) || editingCard;
    const editing = !!card && editingIn(card);
    if (editing) {
      if (editingCard && editingCard !== card) goodbye(editingCard.dataset.presence);
      editingCard = card;
      beat(card.dataset.presence, card.dataset.draftId, true, card);
    } else if (editingCard) {
      goodbye(editingCard.dataset.presence);
      editingCard = null;
    }
  };
  if (cards().length) {
    let last = false;
    const cardChanged = () => {
      const card = cardOf(document.activeElement) || editingCard;
      const now = !!card && editingIn(card);
      if (now !== last || (now && card !== editingCard)) { last = now; cardBeat(); }
    };
    document.addEventListener("focusin", cardChanged);
    document.addEventListener("input", cardChanged);
    document.addEventListener("focusout", () => setTimeout(cardChanged, 0));
    setInterval(() => { if (editingCard) cardBeat(); }, 20000);
    window.addEventListener("pagehide", () => { if (editingCard) goodbye(editingCard.dataset.presence); });
  }
  // A link to a knowledge entry (a draft's sources) opens that entry.
  const target = location.hash && document.getElementById(location.hash.slice(1));
  if (target instanceof HTMLDetailsElement) target.open = true;

  // Phones: the compact navigation scrolls sideways; keep the current entry in view.
  const here = document.querySelector(".portal-nav a[aria-current=page]");
  if (here && here.parentElement) {
    const strip = here.closest("ul");
    if (strip && strip.scrollWidth > strip.clientWidth) strip.scrollLeft = here.offsetLeft - 16;
  }

  // Live updates: when the server says this tenant's data changed, fetch only the regions
  // marked data-live-refresh that the change concerns (their data-live-on kinds: "inbox",
  // "review", "conversation" for any conversation, "conversation:<id>" for one; none listed
  // means every change), as fragments of this same page (?fragment=<names>), and merge them
  // child by child (matched by id). A child that holds focus or a field the user changed is
  // never replaced, so nothing typed is lost and focus stays put; the nav counters (and the
  // tab title, when the fragment carries one) follow the fragment, and arrivals are
  // announced once through the polite status region.
  const live = document.body.dataset.live;
  const regions = document.querySelectorAll("[data-live-refresh]");
  const status = document.getElementById("live-status");
  const fmt = (tpl, n) => (tpl || "").replace("{}", String(n));
  const announce = (text) => {
    if (!status || !text) return;
    status.textContent = "";
    setTimeout(() => { status.textContent = text; }, 50);
  };
  const dirty = (el) => Array.from(el.querySelectorAll("textarea, input, select")).some((f) => {
    if (f instanceof HTMLSelectElement) return Array.from(f.options).some((o) => o.selected !== o.defaultSelected);
    if (f instanceof HTMLInputElement && (f.type === "checkbox" || f.type === "radio")) return f.checked !== f.defaultChecked;
    if (f instanceof HTMLInputElement && f.type === "hidden") return false;
    return f.value !== f.defaultValue;
  });
  const holdsFocus = (el) => document.activeElement !== document.body && el.contains(document.activeElement);
  const busy = (el) => holdsFocus(el) || dirty(el);
  const keyed = (root) => Array.from(root.children).every((c) => c.id);
  const merge = (region, fresh) => {
    const added = [];
    if (!keyed(region) || !keyed(fresh)) {
      if (!busy(region) && fresh.innerHTML !== region.innerHTML) region.innerHTML = fresh.innerHTML;
      return added;
    }
    const old = new Map(Array.from(region.children).map((c) => [c.id, c]));
    let prev = null;
    for (const f of Array.from(fresh.children)) {
      let node = old.get(f.id);
      if (node) {
        old.delete(f.id);
        if (!busy(node) && node.outerHTML !== f.outerHTML) {
          const n = document.importNode(f, true);
          node.replaceWith(n);
          node = n;
        }
      } else {
        // Existing nodes are never moved (moving one drops its focus); new ones slot in
        // after their fresh predecessor.
        node = document.importNode(f, true);
        if (prev) prev.after(node); else region.prepend(node);
        added.push(node);
      }
      prev = node;
    }
    for (const node of old.values()) {
      if (!busy(node)) { node.remove(); continue; }
      // Decided elsewhere while being read or edited: kept (so the text can be copied) but
      // marked and disarmed.
      if (!node.classList.contains("stale")) {
        node.classList.add("stale");
        for (const b of node.querySelectorAll("button[type=submit]")) b.disabled = true;
        if (region.dataset.staleText) {
          const p = document.createElement("p");
          p.className = "flash error";
          p.textContent = region.dataset.staleText;
          node.prepend(p);
        }
      }
    }
    return added;
  };
  const syncShell = (doc) => {
    if (doc.title) document.title = doc.title;
    for (const id of ["review-count", "unread-count"]) {
      const mine = document.getElementById(id);
      const fresh = doc.getElementById(id);
      if (!mine || !fresh) continue;
      mine.textContent = fresh.textContent;
      mine.hidden = fresh.hidden;
      const label = fresh.getAttribute("aria-label");
      if (label) mine.setAttribute("aria-label", label);
    }
  };
  const pill = document.getElementById("new-drafts");
  let unseen = [];
  if (pill) {
    pill.addEventListener("click", () => {
      const first = unseen.find((n) => n.isConnected);
      unseen = [];
      pill.hidden = true;
      if (first) focusCard(first);
    });
  }
  if (live && regions.length && "EventSource" in window) {
    let pending = null;
    // The regions the changes seen since the last refresh concern (all of them: a change of
    // unknown kind, or a reopened stream that may have missed some).
    let due = new Set();
    const concerns = (region, change) => {
      const on = (region.dataset.liveOn || "").split(/\s+/).filter(Boolean);
      if (!on.length || !change || !change.kind) return true;
      return on.some((k) => k === change.kind || (change.id && k === `${change.kind}:${change.id}`));
    };
    const note = (change) => {
      for (const region of document.querySelectorAll("[data-live-refresh]")) {
        if (concerns(region, change)) due.add(region.dataset.liveRefresh);
      }
      if (due.size && !pending) pending = setTimeout(refresh, 250);
    };
    const refresh = async () => {
      pending = null;
      const names = Array.from(due);
      due = new Set();
      if (!names.length) return;
      const url = new URL(window.location.href);
      url.hash = "";
      url.searchParams.set("fragment", names.join(","));
      const res = await fetch(url, { credentials: "same-origin" });
      if (!res.ok) return;
      const doc = new DOMParser().parseFromString(await res.text(), "text/html");
      syncShell(doc);
      for (const region of document.querySelectorAll("[data-live-refresh]")) {
        if (!names.includes(region.dataset.liveRefresh)) continue;
        const fresh = doc.getElementById(region.id);
        if (!fresh) continue;
        const added = merge(region, fresh);
        const arrivals = added.filter((n) => n.matches("[data-review-card], .msg"));
        if (!arrivals.length) continue;
        const n = arrivals.length;
        announce(fmt(n === 1 ? region.dataset.liveOne : region.dataset.liveMany, n));
        if (pill && region.id === "review-list") {
          unseen = unseen.filter((x) => x.isConnected).concat(arrivals.filter((x) => x.matches("[data-review-card]")));
          for (const x of unseen) x.classList.add("arrived");
          pill.textContent = fmt(unseen.length === 1 ? pill.dataset.one : pill.dataset.many, unseen.length);
          pill.hidden = unseen.length === 0;
        }
      }
      // The current card may have been replaced by a fresh copy: keep it marked.
      const cur = document.getElementById(currentId || "");
      if (cur) markCurrent(cur);
      else if (!cardOf(document.activeElement) && cards().length) markCurrent(cards()[0]);
      const empty = document.getElementById("review-empty");
      if (empty && cards().some((c) => !c.classList.contains("stale"))) empty.remove();
    };
    const source = new EventSource(live);
    // A reopened stream (the instance restarted, the network blinked) may have missed
    // changes: refresh once.
    let opened = false;
    source.addEventListener("open", () => {
      if (opened) note(null);
      opened = true;
    });
    source.addEventListener("change", (e) => {
      // Coalesce bursts into one refresh.
      let change = null;
      try { change = JSON.parse(e.data); } catch (_) { change = null; }
      note(change);
    });
  }
});
