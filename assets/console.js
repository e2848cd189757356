// facewatch console: the one ES module. Pages work without it (plain links and forms); on the
// officer console it adds the live queue (GET /alerts/live: a snapshot, then changes), the
// Live / Reconnecting banner, keys, per-severity sounds after "Start shift", and the idle blur.
// HTML it inserts is rendered (and escaped) by the server; nothing here builds markup from data.

const root = document.querySelector("[data-officer-console]");
if (root) officerConsole(root);

function officerConsole(root) {
  const queue = document.getElementById("queue");
  const live = document.getElementById("live");
  const announce = document.getElementById("announce");
  const count = document.getElementById("queue-count");
  const help = document.getElementById("help");
  const selected = () => root.dataset.selected || null;

  // --- the live queue -------------------------------------------------------------------
  const fragment = (html) => {
    const t = document.createElement("template");
    t.innerHTML = html;
    return t.content.firstElementChild;
  };
  const mark = (li) => {
    if (li.dataset.id === selected()) li.setAttribute("aria-current", "true");
    return li;
  };
  const recount = () => {
    const n = queue.children.length;
    count.textContent = `(${n})`;
    const empty = document.getElementById("queue-empty");
    if (empty) empty.hidden = n > 0;
  };
  const setLive = (state, text) => {
    live.dataset.state = state;
    live.textContent = text;
  };

  function applySnapshot(items) {
    const highlighted = cursorId();
    queue.replaceChildren(...items.map((i) => mark(fragment(i.html))));
    recount();
    if (highlighted) moveCursorTo(highlighted);
  }

  function applyChange(c) {
    const old = queue.querySelector(`li[data-id="${CSS.escape(c.id)}"]`);
    if (!c.under_review) {
      if (old) old.remove();
    } else if (old) {
      old.replaceWith(mark(fragment(c.html)));
    } else {
      queue.prepend(mark(fragment(c.html)));
    }
    recount();
    if (c.announce) {
      announce.textContent = c.announce;
      chime(c.severity);
    }
    if (c.id === selected() && c.kind !== "alert.created") refreshCard(c.id);
  }

  async function refreshCard(id) {
    const card = document.getElementById("card");
    // An officer typing a note keeps it: the card is refreshed once the note is empty.
    const note = card && card.querySelector("textarea");
    if (note && note.value.trim() !== "") return;
    const r = await fetch(`/alerts/${encodeURIComponent(id)}/card`, { credentials: "same-origin" });
    if (r.ok && card) card.replaceWith(fragment(await r.text()));
  }

  let source = null;
  let retryTimer = null;
  function connect() {
    clearTimeout(retryTimer);
    source = new EventSource("/alerts/live");
    source.addEventListener("snapshot", (e) => {
      const d = JSON.parse(e.data);
      applySnapshot(d.items);
      setLive("live", "Live");
    });
    source.addEventListener("change", (e) => applyChange(JSON.parse(e.data)));
    source.addEventListener("resync", () => location.reload());
    source.onerror = () => {
      setLive("reconnecting", "Reconnecting…");
      // The browser retries a dropped connection by itself; one it gave up on (an error
      // answer: the service restarting, or the session ended) is looked into here.
      if (source.readyState === EventSource.CLOSED) retryTimer = setTimeout(recover, 2000);
    };
  }
  // Signed out (idle, revoked, too old): the sign-in page answers 200 instead of sending
  // a signed-in browser home. Unreachable service: keep trying.
  async function recover() {
    try {
      const r = await fetch("/signin", { redirect: "manual", credentials: "same-origin" });
      if (r.status === 200) return location.assign("/signin");
    } catch (_) {
      // down: try again below
    }
    connect();
  }
  setLive("reconnecting", "Connecting…");
  connect();

  // --- keys -----------------------------------------------------------------------------
  let cursor = -1;
  const items = () => Array.from(queue.children);
  function cursorId() {
    const li = items()[cursor];
    return li ? li.dataset.id : null;
  }
  function moveCursorTo(id) {
    cursor = items().findIndex((li) => li.dataset.id === id);
    focusCursor();
  }
  function focusCursor() {
    const li = items()[cursor];
    if (li) li.querySelector("a").focus();
  }
  const start = items().findIndex((li) => li.dataset.id === selected());
  cursor = start;

  document.addEventListener("keydown", (e) => {
    if (e.ctrlKey || e.metaKey || e.altKey) return;
    const typing = ["TEXTAREA", "INPUT"].includes(document.activeElement?.tagName);
    if (e.key === "Escape") {
      if (help.open) return; // the dialog closes itself
      if (typing) document.activeElement.blur();
      else if (selected()) location.assign("/alerts");
      return;
    }
    if (typing) return;
    const n = items().length;
    switch (e.key) {
      case "j":
        if (n) { cursor = Math.min(cursor + 1, n - 1); focusCursor(); }
        break;
      case "k":
        if (n) { cursor = Math.max(cursor - 1, 0); focusCursor(); }
        break;
      case "Enter":
        // On a link, Enter follows it already; elsewhere it opens the highlighted alert.
        if (document.activeElement?.tagName !== "A" && document.activeElement?.tagName !== "BUTTON" && cursorId()) {
          location.assign(`/alerts/${encodeURIComponent(cursorId())}`);
        } else return;
        break;
      case "c":
        document.getElementById("confirm")?.focus();
        break;
      case "d":
        document.getElementById("dismiss")?.focus();
        break;
      case "?":
        help.showModal();
        break;
      default:
        return;
    }
    e.preventDefault();
  });
  document.getElementById("help-button").addEventListener("click", () => help.showModal());

  // --- sound per severity, after a click (browsers allow audio only after a gesture) ----------
  let audio = null;
  const shift = document.getElementById("shift");
  shift.addEventListener("click", () => {
    if (audio) {
      audio.close();
      audio = null;
      shift.setAttribute("aria-pressed", "false");
      shift.textContent = "Start shift (sound on)";
      return;
    }
    audio = new AudioContext();
    shift.setAttribute("aria-pressed", "true");
    shift.textContent = "End shift (sound off)";
    chime("low");
  });
  // Higher and more tones for more severe lists: told apart without looking.
  const tones = { low: [440], medium: [660, 660], high: [880, 660, 880], critical: [988, 740, 988, 740] };
  function chime(severity) {
    if (!audio) return;
    let t = audio.currentTime;
    for (const f of tones[severity] || tones.high) {
      const osc = audio.createOscillator();
      const gain = audio.createGain();
      osc.frequency.value = f;
      gain.gain.setValueAtTime(0.2, t);
      gain.gain.exponentialRampToValueAtTime(0.001, t + 0.18);
      osc.connect(gain).connect(audio.destination);
      osc.start(t);
      osc.stop(t + 0.2);
      t += 0.22;
    }
  }

  // --- idle blur: faces on an unattended screen are blurred ([console] blur_after_secs) ----
  const IDLE_MS = Number(document.querySelector("[data-blur-ms]")?.dataset.blurMs) || 120000;
  let idleTimer = null;
  const awake = () => {
    document.body.classList.remove("idle");
    clearTimeout(idleTimer);
    idleTimer = setTimeout(() => document.body.classList.add("idle"), IDLE_MS);
  };
  for (const ev of ["pointermove", "pointerdown", "keydown", "wheel", "touchstart"]) {
    document.addEventListener(ev, awake, { passive: true });
  }
  awake();
}
