// The ThinGate admin console: polls /thinadmin/api/overview and draws the
// tables and charts. Everything from the gateway is written as text
// (textContent), never as markup: computer IDs and host names come from
// strangers. Changes are POSTs carrying the page's token.
"use strict";

(function () {
  const TOKEN = document.querySelector('meta[name="thinadmin-token"]').content;
  const POLL_MS = 3000;
  const SVG = "http://www.w3.org/2000/svg";
  const search = document.getElementById("search");
  const status = document.getElementById("status");
  let armed = null; // the computer ID whose Remove was clicked once
  let timer = null;

  search.value = new URLSearchParams(location.search).get("q") || "";

  function el(tag, text, cls) {
    const e = document.createElement(tag);
    if (text !== undefined && text !== null) e.textContent = String(text);
    if (cls) e.className = cls;
    return e;
  }

  function when(ms) {
    if (!ms) return "never";
    return new Date(ms).toLocaleString();
  }

  function duration(s) {
    const h = Math.floor(s / 3600), m = Math.floor((s % 3600) / 60), r = s % 60;
    return (h ? h + " h " : "") + (h || m ? m + " min " : "") + r + " s";
  }

  function bytes(n) {
    const units = ["B", "KiB", "MiB", "GiB", "TiB"];
    let i = 0;
    while (n >= 1024 && i < units.length - 1) { n /= 1024; i++; }
    return (i ? n.toFixed(1) : n) + " " + units[i];
  }

  function fill(table, rows, columns, empty) {
    const body = document.querySelector("#" + table + " tbody");
    body.replaceChildren();
    if (rows.length === 0) {
      const tr = el("tr");
      const td = el("td", empty, "empty");
      td.colSpan = columns;
      tr.appendChild(td);
      body.appendChild(tr);
      return [];
    }
    return rows.map((r) => {
      const tr = el("tr");
      body.appendChild(tr);
      return tr;
    });
  }

  function cells(tr, values) {
    for (const v of values) tr.appendChild(v instanceof Node ? wrap(v) : el("td", v));
  }

  function wrap(node) {
    const td = el("td");
    td.appendChild(node);
    return td;
  }

  function actionButton(label, action, pcid, cls) {
    const b = el("button", label, cls);
    b.type = "button";
    b.dataset.action = action;
    b.dataset.pcid = pcid;
    return b;
  }

  function machineButtons(m) {
    const span = el("span");
    span.appendChild(m.disabled ? actionButton("Enable", "enable", m.pcid) : actionButton("Disable", "disable", m.pcid));
    if (armed === m.pcid) {
      span.appendChild(actionButton("Really remove " + m.pcid + "?", "remove", m.pcid, "danger confirm"));
    } else {
      span.appendChild(actionButton("Remove", "arm", m.pcid, "danger"));
    }
    return span;
  }

  function render(d) {
    const found = document.getElementById("found");
    found.textContent = d.machines_found + " of " + d.machines_total + " machines" +
      (d.machines.length < d.machines_found ? " (first " + d.machines.length + " shown; search to narrow)" : "");

    fill("tunnels", d.tunnels, 5, "no tunnel relaying now").forEach((tr, i) => {
      const t = d.tunnels[i];
      tr.dataset.pcid = t.pcid;
      cells(tr, [t.pcid, t.client, duration(t.seconds), bytes(t.up), bytes(t.down)]);
    });
    fill("sessions", d.sessions, 5, "no office PC online").forEach((tr, i) => {
      const s = d.sessions[i];
      tr.dataset.pcid = s.pcid;
      cells(tr, [s.pcid, s.host, s.ip, when(s.established_ms), s.clients]);
    });
    fill("machines", d.machines, 7, "no machine matches").forEach((tr, i) => {
      const m = d.machines[i];
      tr.dataset.pcid = m.pcid;
      const state = m.disabled ? el("span", "disabled", "badge disabled")
        : m.online ? el("span", "online", "badge online") : el("span", "offline", "badge offline");
      cells(tr, [m.pcid, state, m.online ? "online now" : when(m.last_contact_ms), m.host, m.last_ip,
        m.clients_total, machineButtons(m)]);
    });
    chart("chart-sessions", d.history, [["sessions", "office PCs online"], ["tunnels", "tunnels"]], (v) => String(v));
    chart("chart-traffic", d.history, [["up", "client → PC"], ["down", "PC → client"]], bytes);
  }

  function svg(tag, attrs, text) {
    const e = document.createElementNS(SVG, tag);
    for (const k in attrs) e.setAttribute(k, attrs[k]);
    if (text !== undefined) e.textContent = text;
    return e;
  }

  // A line chart of `series` ([field, label]) over the samples, the last 24 h.
  function chart(id, samples, series, fmt) {
    const box = document.getElementById(id);
    box.replaceChildren();
    const W = 600, H = 160, L = 60, R = 10, T = 14, B = 20;
    const end = samples.length ? samples[samples.length - 1].at_ms : Date.now();
    const start = end - 24 * 3600 * 1000;
    let max = 1;
    for (const s of samples) for (const [f] of series) max = Math.max(max, s[f]);
    const x = (ms) => L + ((ms - start) / (end - start)) * (W - L - R);
    const y = (v) => H - B - (v / max) * (H - T - B);
    box.appendChild(svg("line", { class: "axis", x1: L, y1: H - B, x2: W - R, y2: H - B }));
    box.appendChild(svg("line", { class: "axis", x1: L, y1: T, x2: L, y2: H - B }));
    box.appendChild(svg("text", { class: "label", x: 2, y: T + 4 }, fmt(max)));
    box.appendChild(svg("text", { class: "label", x: 2, y: H - B }, fmt(0)));
    box.appendChild(svg("text", { class: "label", x: L, y: H - 4 }, "24 h ago"));
    box.appendChild(svg("text", { class: "label", x: W - R - 20, y: H - 4 }, "now"));
    series.forEach(([f, label], i) => {
      const pts = samples.map((s) => x(s.at_ms).toFixed(1) + "," + y(s[f]).toFixed(1));
      if (pts.length === 1) pts.unshift(L + "," + pts[0].split(",")[1]);
      box.appendChild(svg("polyline", { class: "s" + i, points: pts.join(" "), "data-series": f }));
      const last = samples.length ? samples[samples.length - 1][f] : 0;
      box.appendChild(svg("text", { class: "legend" + i, x: L + 8 + i * 200, y: T - 2 }, label + ": " + fmt(last)));
    });
  }

  async function refresh() {
    clearTimeout(timer);
    try {
      const q = search.value.trim();
      const r = await fetch("/thinadmin/api/overview?q=" + encodeURIComponent(q), {
        headers: { "X-Thinadmin-Token": TOKEN },
        cache: "no-store",
      });
      if (!r.ok) throw new Error("the gateway answered " + r.status + " " + (await r.text()));
      render(await r.json());
      status.textContent = "Updated " + new Date().toLocaleTimeString();
      status.className = "status";
    } catch (e) {
      status.textContent = "Cannot reach the gateway: " + e.message;
      status.className = "status error";
    }
    timer = setTimeout(refresh, POLL_MS);
  }

  async function act(action, pcid) {
    const r = await fetch("/thinadmin/api/machine/" + action + "?pcid=" + encodeURIComponent(pcid), {
      method: "POST",
      headers: { "X-Thinadmin-Token": TOKEN },
      cache: "no-store",
    });
    const text = await r.text();
    if (!r.ok) {
      status.textContent = action + " " + pcid + ": " + text;
      status.className = "status error";
    }
  }

  document.addEventListener("click", async (ev) => {
    const b = ev.target.closest("button[data-action]");
    if (!b) return;
    const { action, pcid } = b.dataset;
    if (action === "arm") {
      armed = pcid;
    } else {
      armed = null;
      await act(action, pcid);
    }
    refresh();
  });

  search.addEventListener("input", () => {
    const u = new URL(location.href);
    if (search.value.trim()) u.searchParams.set("q", search.value.trim()); else u.searchParams.delete("q");
    history.replaceState(null, "", u);
    refresh();
  });

  refresh();
})();
