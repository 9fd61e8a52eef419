// scopemesh web view: plain JavaScript and SVG, no build step.
// The three views — cluster, events, trace — read the JSON under api/.
// When a view has drawn what it loaded, it sets document.body.dataset.ready
// to its name, which the browser tests wait for.
"use strict";

const base = new URL(document.baseURI);
const main = document.getElementById("main");

// --- helpers -------------------------------------------------------------

function el(tag, attrs, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v == null || v === false) continue;
    if (k === "class") e.className = v;
    else if (k.startsWith("on")) e.addEventListener(k.slice(2), v);
    else e.setAttribute(k, v === true ? "" : v);
  }
  for (const c of children.flat(Infinity)) {
    if (c != null) e.append(c instanceof Node ? c : String(c));
  }
  return e;
}

function esc(s) {
  return String(s).replace(/[&<>"]/g, c => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;" }[c]));
}

async function getJSON(path) {
  const resp = await fetch(new URL(path, base));
  const body = await resp.json().catch(() => ({}));
  if (!resp.ok) throw new Error(body.Error || resp.status + " " + resp.statusText);
  return body;
}

function ready(view) { document.body.dataset.ready = view; }

function showError(where, err) {
  where.replaceChildren(el("p", { class: "error" }, String(err.message || err)));
}

const num = n => Number(n || 0).toLocaleString("en-US");
function bytes(n) {
  const units = ["B", "KiB", "MiB", "GiB", "TiB"];
  let i = 0;
  for (n = Number(n || 0); n >= 1024 && i < units.length - 1; i++) n /= 1024;
  return (i ? n.toFixed(1) : n) + " " + units[i];
}
function duration(seconds) {
  const s = Math.abs(seconds);
  if (s === 0) return "0";
  if (s < 1e-3) return (seconds * 1e6).toFixed(0) + " µs";
  if (s < 1) return (seconds * 1e3).toFixed(s < 0.01 ? 2 : 1) + " ms";
  if (s < 120) return seconds.toFixed(1) + " s";
  if (s < 7200) return (seconds / 60).toFixed(0) + " min";
  if (s < 172800) return (seconds / 3600).toFixed(1) + " h";
  return (seconds / 86400).toFixed(1) + " d";
}
function ago(t) {
  const ms = Date.parse(t);
  if (!ms || ms < 0) return "never";
  return duration((Date.now() - ms) / 1000) + " ago";
}
// short keeps a peer ID readable: its start and its end.
const short = id => id && id.length > 16 ? id.slice(0, 8) + "…" + id.slice(-6) : id || "";
// names holds the nodes' names by peer ID, as the node serving the view
// knows them: from its status, and from the events and traces it sends.
const names = new Map();
function learnNames(st) {
  if (st.Name) names.set(st.ID, st.Name);
  for (const m of st.Members || []) if (m.Name) names.set(m.ID, m.Name);
}
function learnNameMap(m) { for (const [id, n] of Object.entries(m || {})) names.set(id, n); }
// nodeName is a node's name if known, else its short peer ID.
const nodeName = id => names.get(id) || short(id);
const attrText = attrs => Object.entries(attrs || {}).map(([k, v]) => k + "=" + v).join(" ");

function setActive(view) {
  for (const a of document.querySelectorAll("header.top nav a")) a.classList.toggle("active", a.dataset.view === view);
}

// --- cluster -------------------------------------------------------------

async function clusterView() {
  setActive("cluster");
  let timer = 0;
  const draw = async () => {
    try {
      const st = await getJSON("api/status");
      learnNames(st);
      document.getElementById("self").textContent = "node " + nodeName(st.ID);
      main.replaceChildren(clusterPage(st));
      ready("cluster");
    } catch (err) {
      showError(main, err);
    }
    timer = setTimeout(draw, 2000);
  };
  await draw();
  return () => clearTimeout(timer);
}

function card(title, rows, big) {
  return el("section", { class: "card" }, el("h3", {}, title), big != null ? el("div", { class: "big" }, big) : null,
    el("dl", {}, rows.map(([k, v, cls]) => [el("dt", {}, k), el("dd", { class: cls, title: String(v) }, v)])));
}

function clusterPage(st) {
  const g = st.Gossip, si = st.Sync.initiator, sr = st.Sync.responder, qs = st.Queries.served, qa = st.Queries.asked;
  const byState = {};
  for (const m of st.Members) byState[m.State] = (byState[m.State] || 0) + 1;
  const retention = st.Retention < 0 ? "kept for good" : duration(st.Retention);
  const skew = (st.ClockSkew || []).length;
  return el("div", { id: "cluster" },
    el("h1", {}, "Cluster as node ", el("span", { class: "ellipsis", title: st.ID }, nodeName(st.ID)), " sees it"),
    el("div", { class: "cards" },
      card("Events held", [
        ["store", bytes(st.StoreBytes)],
        ["reclaimable", bytes(st.Reclaimable)],
        ["retention", retention + (st.MaxBytes ? ", cap " + bytes(st.MaxBytes) : "")],
        ["horizon", st.Horizon ? new Date(st.Horizon).toLocaleString() : "nothing expired"],
        ["expired", num(st.Expired)],
        ["up", duration(st.Uptime)],
      ], num(st.Events)),
      card("Members", st.States.map(s => [s, num(byState[s] || 0), "state-" + s])
        .concat([["clock skew", skew ? skew + " origins ahead" : "none", skew ? "warn" : ""]]), num(st.Members.length)),
      card("Gossip", [
        ["recorded here", num(g.EventsRecorded)],
        ["published", num(g.EventsPublished) + " in " + num(g.BatchesPublished) + " batches"],
        ["received", num(g.EventsMerged) + " new in " + num(g.BatchesReceived) + " batches"],
        ["rejected", num(g.BatchesRejected), g.BatchesRejected ? "bad" : ""],
        ["held (clock ahead)", num(g.BatchesHeld), g.BatchesHeld ? "warn" : ""],
        ["dropped out / in", num(g.DroppedOutbound) + " / " + num(g.DroppedInbound), g.DroppedOutbound + g.DroppedInbound ? "warn" : ""],
      ]),
      card("Sync", [
        ["started here", num(si.Sessions) + (si.Failed ? " (" + num(si.Failed) + " failed)" : ""), si.Failed ? "warn" : ""],
        ["started by peers", num(sr.Sessions) + (sr.Failed ? " (" + num(sr.Failed) + " failed)" : ""), sr.Failed ? "warn" : ""],
        ["events in / out", num(si.EventsReceived + sr.EventsReceived) + " / " + num(si.EventsSent + sr.EventsSent)],
        ["bytes in / out", bytes(si.BytesReceived + sr.BytesReceived) + " / " + bytes(si.BytesSent + sr.BytesSent)],
        ["mean session", duration(si.MeanSeconds)],
      ]),
      card("Cluster queries", [
        ["asked", num(qa.Queries) + (qa.Failed ? " (" + num(qa.Failed) + " incomplete)" : "")],
        ["served", num(qs.Queries) + (qs.Failed ? " (" + num(qs.Failed) + " failed)" : "")],
      ])),
    el("h2", {}, "Members"),
    st.Members.length === 0 ? el("p", { class: "muted" }, "No members yet: this node knows of no peer.") :
      el("table", { class: "list", id: "members" },
        el("colgroup", {}, el("col", { style: "width:16%" }), el("col", { style: "width:17%" }), el("col", { style: "width:10%" }),
          el("col", { style: "width:7%" }), el("col", { style: "width:8%" }), el("col", { style: "width:12%" }), el("col", { style: "width:12%" }),
          el("col", { style: "width:18%" })),
        el("thead", {}, el("tr", {}, ["Name", "Peer ID", "State", "Link", "RTT", "Last seen", "Events by gossip", "Last sync"].map(h => el("th", {}, h)))),
        el("tbody", {}, st.Members.map(m => el("tr", { "data-id": m.ID },
          el("td", { class: "name", title: m.Name || "name not known yet" }, el("a", { href: "events?node=" + encodeURIComponent(m.ID) }, m.Name || "—")),
          el("td", { class: "mono", title: m.ID }, short(m.ID)),
          el("td", {}, el("span", { class: "badge state-" + m.State }, m.State)),
          el("td", {}, m.State !== "connected" ? "—" : m.Relayed ? "relayed" : "direct"),
          el("td", { class: "num" }, m.RTT ? duration(m.RTT) : "—"),
          el("td", {}, ago(m.LastSeen)),
          el("td", { class: "num" }, num(m.EventsReceived)),
          el("td", { title: m.SyncError || "" }, ago(m.LastSync), m.LastSync && Date.parse(m.LastSync) > 0 ?
            el("span", { class: m.SyncError ? "bad" : m.InSync ? "ok" : "warn" }, m.SyncError ? " failed" : m.InSync ? " ✓ in sync" : " differed") : null))))));
}

// --- events --------------------------------------------------------------

// The time choices of the filter bar, in seconds before now.
const sinceChoices = [["", "any time"], ["300", "last 5 min"], ["900", "last 15 min"], ["3600", "last hour"], ["86400", "last day"]];
const pageSize = 100;

async function eventsView() {
  setActive("events");
  const params = new URLSearchParams(location.search);
  const form = el("form", { class: "filters", id: "filters" },
    el("label", {}, "kind", el("input", { name: "kind", placeholder: "http.request, db.query", value: params.get("kind") || "" })),
    el("label", {}, "node", el("input", { name: "node", list: "node-ids", placeholder: "name or peer ID", value: params.get("node") || "" })),
    el("label", {}, "attributes", el("input", { name: "attr", placeholder: "key=value key=value", value: params.get("attr") || "" })),
    el("label", {}, "trace", el("input", { name: "trace", class: "mono", placeholder: "32 hex digits", value: params.get("trace") || "" })),
    el("label", {}, "time", el("select", { name: "since" }, sinceChoices.map(([v, t]) => el("option", { value: v, selected: params.get("since") === v }, t)))),
    el("label", {}, "from", el("select", { name: "scope" },
      el("option", { value: "local" }, "this node"), el("option", { value: "cluster", selected: params.get("scope") === "cluster" }, "every member"))),
    el("button", { type: "submit" }, "Apply"),
    el("label", { class: "live" }, "live", el("input", { type: "checkbox", name: "live", checked: params.get("live") === "1" })),
    el("datalist", { id: "node-ids" }));
  const status = el("div", { class: "pager" });
  const list = el("div", { id: "events" });
  main.replaceChildren(el("h1", {}, "Events"), form, status, list);
  getJSON("api/status").then(st => {
    learnNames(st);
    document.getElementById("self").textContent = "node " + nodeName(st.ID);
    const nodes = [st, ...st.Members];
    form.querySelector("#node-ids").replaceChildren(...nodes.map(m => el("option", { value: m.Name || m.ID }, m.ID)));
  }).catch(() => {});

  let source = null, cursors = [""];
  const stop = () => { if (source) source.close(); source = null; };

  form.addEventListener("submit", e => {
    e.preventDefault();
    const q = new URLSearchParams();
    for (const name of ["kind", "node", "attr", "trace", "since", "scope"]) {
      const v = form.elements[name].value.trim();
      if (v && !(name === "scope" && v === "local")) q.set(name, v);
    }
    if (form.elements.live.checked) q.set("live", "1");
    history.replaceState(null, "", "events" + (q.toString() ? "?" + q : ""));
    cursors = [""];
    load();
  });
  form.elements.live.addEventListener("change", () => form.requestSubmit());

  // apiFilter turns the form into the API's filter parameters.
  function apiFilter() {
    const f = new URLSearchParams();
    const split = s => s.split(/[\s,]+/).filter(Boolean);
    for (const k of split(form.elements.kind.value)) f.append("kind", k);
    for (const n of split(form.elements.node.value)) f.append("node", n);
    for (const kv of split(form.elements.attr.value)) f.append("attr", kv);
    if (form.elements.trace.value.trim()) f.set("trace", form.elements.trace.value.trim());
    const since = Number(form.elements.since.value);
    if (since) f.set("since", String(BigInt(Date.now() - since * 1000) * 1000000n) + ".0");
    return f;
  }

  async function load() {
    stop();
    const f = apiFilter();
    const cluster = form.elements.scope.value === "cluster";
    const page = new URLSearchParams(f);
    page.set("limit", pageSize);
    page.set("desc", "true");
    if (cluster) page.set("cluster", "true");
    const cursor = cursors[cursors.length - 1];
    if (cursor) page.set("after", cursor);
    let res;
    try {
      res = await getJSON("api/events?" + page);
    } catch (err) {
      showError(list, err);
      status.replaceChildren();
      ready("events");
      return;
    }
    learnNameMap(res.Names);
    const table = eventTable(res.Events);
    list.replaceChildren(table);
    const older = el("button", { class: "plain", disabled: !res.Next, onclick: () => { cursors.push(res.Next); load(); } }, "Older →");
    const newest = el("button", { class: "plain", disabled: cursors.length === 1, onclick: () => { cursors = [""]; load(); } }, "← Newest");
    const note = el("span", { class: "muted" }, res.Events.length + " events, newest first" +
      (cluster ? res.Complete ? ", every member answered" : ", incomplete: " + (res.Peers || []).filter(p => !p.Answered).map(p => short(p.ID) + " (" + p.Err + ")").join(", ") : ""));
    status.replaceChildren(newest, older, note);
    if (form.elements.live.checked && cursors.length === 1) {
      const live = el("span", { class: "live-on", id: "live-state" }, "● connecting");
      status.append(live);
      source = new EventSource(new URL("api/events/stream?" + f, base));
      source.addEventListener("open", () => { live.textContent = "● live"; });
      source.addEventListener("event", m => {
        const row = eventRow(JSON.parse(m.data));
        row.classList.add("fresh");
        table.tBodies[0].prepend(row);
        while (table.tBodies[0].rows.length > 500) table.tBodies[0].lastChild.remove();
      });
      source.addEventListener("gap", m => {
        const g = JSON.parse(m.data);
        table.tBodies[0].prepend(el("tr", {}, el("td", { colspan: 5, class: "warn" }, "fell behind: " + num(g.Dropped) + " events not shown")));
      });
      source.addEventListener("error", () => { live.textContent = "● reconnecting"; });
    }
    ready("events");
  }
  await load();
  return stop;
}

function eventTable(evs) {
  return el("table", { class: "list" },
    el("colgroup", {}, el("col", { style: "width:200px" }), el("col", { style: "width:160px" }), el("col", { style: "width:18%" }),
      el("col", {}), el("col", { style: "width:140px" })),
    el("thead", {}, el("tr", {}, ["Time (UTC)", "Node", "Kind", "Attributes", "Trace"].map(h => el("th", {}, h)))),
    el("tbody", {}, evs.map(eventRow)));
}

function eventRow(e) {
  const attrs = attrText(e.Attrs);
  return el("tr", { "data-id": e.ID, class: "event" },
    el("td", { class: "mono", title: e.Time }, e.At.replace("T", " ").replace("Z", "")),
    el("td", { class: names.has(e.Node) ? "" : "mono", title: e.Node }, nodeName(e.Node)),
    el("td", { title: e.Kind }, e.Kind),
    el("td", { class: "mono", title: attrs }, attrs),
    el("td", { class: "mono" }, e.Trace ? el("a", { href: "traces/" + e.Trace + "#e=" + e.ID, title: e.Trace }, e.Trace.slice(0, 12) + "…") : "—"));
}

// --- trace ---------------------------------------------------------------

const laneColors = ["#2457c5", "#c2410c", "#15803d", "#9333ea", "#be185d", "#0e7490", "#a16207", "#4d7c0f", "#6d28d9", "#b91c1c"];
const ROW = 22, LANE = 34, GUTTER = 84;

async function traceView(id) {
  setActive("");
  main.replaceChildren(el("p", { class: "muted" }, "Loading trace " + id + "…"));
  let t;
  try {
    t = await getJSON("api/traces/" + encodeURIComponent(id));
  } catch (err) {
    showError(main, err);
    ready("trace");
    return;
  }
  learnNameMap(t.Names);
  const view = new TraceView(t);
  main.replaceChildren(view.root);
  view.start();
  ready("trace");
  return () => view.stop();
}

// TraceView draws a trace: one lane per node, one row per event in causal
// order (each after its parent, otherwise by HLC), parent links as arrows.
// It draws only the rows in sight, so a trace of any length scrolls alike.
class TraceView {
  constructor(t) {
    this.t = t;
    const evs = t.Events;
    this.row = new Map(evs.map((e, i) => [e.ID, i]));
    this.lanes = [];
    const laneOf = new Map();
    this.lane = evs.map(e => {
      if (!laneOf.has(e.Node)) { laneOf.set(e.Node, this.lanes.length); this.lanes.push(e.Node); }
      return laneOf.get(e.Node);
    });
    this.children = new Map();
    for (const e of evs) {
      if (!e.Parent) continue;
      if (!this.children.has(e.Parent)) this.children.set(e.Parent, []);
      this.children.get(e.Parent).push(this.row.get(e.ID));
    }
    this.gaps = new Set(t.Gaps || []);
    this.expired = new Set(t.Expired || []);
    this.selected = -1;
    this.related = null; // rows causally before or after the selected one
    this.build();
  }

  letter(i) { return i < 26 ? String.fromCharCode(65 + i) : "L" + (i + 1); }
  x(lane) { return lane * LANE + LANE / 2; }
  y(row) { return row * ROW + ROW / 2; }

  build() {
    const t = this.t, nodes = this.lanes.length;
    const missing = t.Gaps.length, expired = t.Expired.length;
    const unanswered = (t.Peers || []).filter(p => !p.Answered);
    const lanesWidth = nodes * LANE;
    document.documentElement.style.setProperty("--lanes", lanesWidth + "px");
    const head = el("div", { class: "trace-head" },
      el("h1", { class: "ellipsis" }, "Trace ", el("span", { class: "mono" }, t.ID)),
      el("span", {}, num(t.Events.length) + " events on " + nodes + (nodes === 1 ? " node" : " nodes")),
      el("span", { class: "badge " + (t.Complete ? "ok" : "warn"), id: "completeness", title: unanswered.map(p => p.ID + ": " + p.Err).join("\n") },
        t.Complete ? "complete" : "incomplete: " + unanswered.length + " member" + (unanswered.length === 1 ? "" : "s") + " did not answer"),
      missing ? el("span", { class: "badge bad", id: "gaps" }, missing + " missing parent" + (missing === 1 ? "" : "s")) : null,
      expired ? el("span", { class: "badge muted", id: "expired" }, expired + " expired parent" + (expired === 1 ? "" : "s")) : null,
      el("button", { class: "plain", onclick: () => navigator.clipboard && navigator.clipboard.writeText(location.href) }, "Copy link"));
    const legend = el("div", { class: "legend" }, this.lanes.map((n, i) =>
      el("span", { class: "ellipsis", title: n }, el("b", { style: "background:" + laneColors[i % laneColors.length] }, this.letter(i)),
        names.has(n) ? [names.get(n), " ", el("span", { class: "mono muted" }, short(n))] : el("span", { class: "mono" }, n))));
    this.heads = el("div", { class: "trace-heads", style: "width:" + (GUTTER + lanesWidth + 400) + "px" },
      el("span", { style: "left:0;width:" + GUTTER + "px" }, "time"),
      this.lanes.map((n, i) => el("span", { class: "lane-head", title: n, style: "left:" + (GUTTER + i * LANE) + "px;width:" + LANE + "px;color:" + laneColors[i % laneColors.length] }, this.letter(i))),
      el("span", { style: "left:" + (GUTTER + lanesWidth + 8) + "px" }, "event"));
    this.svg = document.createElementNS("http://www.w3.org/2000/svg", "svg");
    this.svg.setAttribute("width", lanesWidth);
    this.svg.setAttribute("height", t.Events.length * ROW);
    this.rows = el("div", { class: "trace-rows" });
    this.canvas = el("div", { class: "trace-canvas", style: "height:" + t.Events.length * ROW + "px" }, this.svg, this.rows);
    this.scroller = el("div", { class: "trace-view", id: "trace" }, this.heads, this.canvas);
    this.detail = el("aside", { class: "detail", id: "detail" }, el("p", { class: "muted" }, "Click an event to see its attributes and payload. Events that are neither its causes nor its effects — concurrent with it — fade."));
    this.root = el("div", {}, head, legend, el("div", { class: "trace-wrap" }, this.scroller, this.detail));
    this.scroller.addEventListener("scroll", () => this.schedule());
    this.rows.addEventListener("click", e => {
      const r = e.target.closest(".trace-row");
      if (r) this.select(Number(r.dataset.row), false);
    });
    this.onResize = () => this.schedule();
    window.addEventListener("resize", this.onResize);
  }

  start() {
    const m = /(?:^#|&)e=([0-9a-f]+)/.exec(location.hash);
    if (m && this.row.has(m[1])) this.select(this.row.get(m[1]), true);
    else this.render();
  }

  stop() { window.removeEventListener("resize", this.onResize); }

  schedule() {
    if (this.pending) return;
    this.pending = requestAnimationFrame(() => { this.pending = 0; this.render(); });
  }

  // render draws the rows in sight, with a margin, and the links that
  // end among them; links that start there and end below are drawn as
  // one trunk per lane.
  render() {
    const evs = this.t.Events, top = this.scroller.scrollTop, height = this.scroller.clientHeight || 600;
    const first = Math.max(0, Math.floor(top / ROW) - 20), last = Math.min(evs.length - 1, Math.ceil((top + height) / ROW) + 20);
    let svg = "", rows = "";
    for (let i = 0; i < this.lanes.length; i++) {
      svg += `<line class="lane-line" x1="${this.x(i)}" x2="${this.x(i)}" y1="${Math.max(0, first * ROW)}" y2="${(last + 1) * ROW}"/>`;
    }
    const trunks = new Map(); // lane → top y of links leaving the window downwards
    for (let i = 0; i < evs.length; i++) {
      const p = evs[i].Parent;
      if (!p) continue;
      const a = this.row.get(p);
      if (a === undefined) {
        if (i >= first && i <= last) svg += this.missingLink(i, p);
        continue;
      }
      if (i >= first && i <= last) {
        svg += this.link(a, i);
      } else if (i > last && a <= last && a >= first) {
        const l = this.lane[a], y = this.y(a);
        trunks.set(l, Math.min(trunks.get(l) ?? y, y));
      }
    }
    for (const [l, y] of trunks) {
      svg += `<path class="link trunk" d="M${this.x(l)} ${y + 5}V${(last + 1) * ROW}"/>`;
    }
    for (let i = first; i <= last; i++) {
      const e = evs[i], l = this.lane[i];
      const sel = i === this.selected;
      svg += `<circle class="dot event${sel ? " selected" : ""}" data-id="${e.ID}" data-row="${i}" cx="${this.x(l)}" cy="${this.y(i)}" r="5" fill="${laneColors[l % laneColors.length]}"/>`;
      const cls = "trace-row" + (sel ? " selected" : this.related && !this.related.has(i) ? " concurrent" : "");
      const attrs = attrText(e.Attrs);
      rows += `<div class="${cls}" data-row="${i}" style="top:${i * ROW}px"><span class="t">${esc(offset(e.Offset))}</span>` +
        `<span style="width:${this.lanes.length * LANE}px;flex:none"></span>` +
        `<span class="lbl ellipsis" title="${esc(e.Kind + " " + attrs)}"><b>${esc(e.Kind)}</b><span class="attrs">${esc(attrs)}</span></span></div>`;
    }
    this.svg.innerHTML = `<defs><marker id="arrow" viewBox="0 0 8 8" refX="7" refY="4" markerWidth="7" markerHeight="7" orient="auto-start-reverse"><path d="M0 0L8 4L0 8z" fill="#7a8599"/></marker>` +
      `<marker id="arrow-hot" viewBox="0 0 8 8" refX="7" refY="4" markerWidth="7" markerHeight="7" orient="auto-start-reverse"><path d="M0 0L8 4L0 8z" fill="#2457c5"/></marker></defs>` + svg;
    this.rows.innerHTML = rows;
  }

  // link draws the arrow from the event of row a to its child in row b:
  // down its own lane, then across to the child's.
  link(a, b) {
    const la = this.lane[a], lb = this.lane[b], xa = this.x(la), xb = this.x(lb), ya = this.y(a), yb = this.y(b);
    const hot = this.related && this.related.has(a) && this.related.has(b) && (this.isAncestorLink(a, b));
    const cls = "link" + (hot ? " hot" : ""), marker = hot ? "arrow-hot" : "arrow";
    const d = la === lb ? `M${xa} ${ya + 6}V${yb - 6}` : `M${xa} ${ya + 6}V${yb}H${xb + (xb > xa ? -6 : 6)}`;
    return `<path class="${cls}" data-from="${a}" data-to="${b}" d="${d}" marker-end="url(#${marker})"/>`;
  }

  isAncestorLink(a, b) {
    const s = this.selected;
    return this.ancestors.has(b) || b === s || this.descendants.has(a) || a === s;
  }

  // missingLink marks an event whose parent the trace lacks: a dashed stub
  // from above, "?" if no member holds the parent, "⌛" if it expired.
  missingLink(i, parent) {
    const x = this.x(this.lane[i]), y = this.y(i), gone = this.expired.has(parent);
    const cls = gone ? "expired" : "missing";
    return `<path class="link ${cls}" d="M${x} ${y - ROW + 4}V${y - 6}"/>` +
      `<text class="mark ${cls}" x="${x + 7}" y="${y - 5}">${gone ? "⌛" : "?"}</text>`;
  }

  select(i, scroll) {
    const evs = this.t.Events;
    this.selected = i;
    this.ancestors = new Set();
    for (let p = evs[i].Parent, guard = 0; p && this.row.has(p) && guard < evs.length; guard++) {
      const r = this.row.get(p);
      this.ancestors.add(r);
      p = evs[r].Parent;
    }
    this.descendants = new Set();
    const todo = [...(this.children.get(evs[i].ID) || [])];
    while (todo.length) {
      const r = todo.pop();
      if (this.descendants.has(r)) continue;
      this.descendants.add(r);
      todo.push(...(this.children.get(evs[r].ID) || []));
    }
    this.related = new Set([i, ...this.ancestors, ...this.descendants]);
    history.replaceState(null, "", "#e=" + evs[i].ID);
    if (scroll) this.scroller.scrollTop = Math.max(0, i * ROW - this.scroller.clientHeight / 3);
    this.render();
    this.showDetail(i);
  }

  showDetail(i) {
    const e = this.t.Events[i], l = this.lane[i];
    const concurrent = this.t.Events.length - this.related.size;
    const jump = id => el("a", { href: "traces/" + this.t.ID + "#e=" + id, class: "mono", onclick: ev => { ev.preventDefault(); this.select(this.row.get(id), true); } }, id.slice(0, 16) + "…");
    let parent = "none: a root";
    if (e.Parent) {
      parent = this.row.has(e.Parent) ? jump(e.Parent) :
        el("span", { class: this.expired.has(e.Parent) ? "muted" : "bad" }, e.Parent.slice(0, 16) + "… " + (this.expired.has(e.Parent) ? "(expired)" : "(missing)"));
    }
    const kids = (this.children.get(e.ID) || []).map(r => [jump(this.t.Events[r].ID), " "]);
    this.detail.replaceChildren(
      el("h2", {}, e.Kind),
      el("dl", {},
        el("dt", {}, "node"), el("dd", {}, el("b", { style: "color:" + laneColors[l % laneColors.length] }, this.letter(l) + " "),
          names.has(e.Node) ? [names.get(e.Node), el("br")] : null, el("span", { class: "mono" }, e.Node)),
        el("dt", {}, "time"), el("dd", {}, e.At.replace("T", " "), el("br"), el("span", { class: "mono muted" }, "HLC " + e.Time)),
        el("dt", {}, "offset"), el("dd", {}, offset(e.Offset)),
        el("dt", {}, "ID"), el("dd", { class: "mono" }, e.ID),
        el("dt", {}, "parent"), el("dd", {}, parent),
        el("dt", {}, "children"), el("dd", {}, kids.length ? kids : "none"),
        el("dt", {}, "concurrent"), el("dd", {}, concurrent ? num(concurrent) + " events (faded) neither caused it nor followed from it" : "none")),
      el("h3", {}, "Attributes"),
      Object.keys(e.Attrs || {}).length ? el("table", { class: "list", id: "attrs" }, el("tbody", {},
        Object.entries(e.Attrs).sort().map(([k, v]) => el("tr", {}, el("td", { class: "mono", title: k }, k), el("td", { class: "mono", title: v }, v))))) :
        el("p", { class: "muted" }, "none"),
      el("h3", {}, "Payload" + (e.PayloadBase64 ? " (base64)" : "")),
      e.Payload ? el("pre", { id: "payload" }, e.Payload) : el("p", { class: "muted" }, "none"));
  }
}

// offset formats nanoseconds since a trace's first event.
function offset(ns) {
  const ms = (ns || 0) / 1e6;
  return ms < 1000 ? "+" + ms.toFixed(3) + "ms" : "+" + duration(ms / 1000);
}

// --- routing -------------------------------------------------------------

(function route() {
  const path = location.pathname.slice(base.pathname.length);
  let m;
  if (path === "" || path === "index.html") clusterView();
  else if (path === "events") eventsView();
  else if ((m = /^traces\/([^/]+)$/.exec(path))) traceView(decodeURIComponent(m[1]));
  else showError(main, new Error("no page at " + location.pathname));
})();
