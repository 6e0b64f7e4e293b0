// flashreturn status page: polls /api/status and renders it; looks up a
// request through /v1/users/<user>/requests/<request>. Plain DOM, no
// framework, no build step. Every value from the daemon is set with
// textContent, never parsed as HTML.
"use strict";

const $ = (id) => document.getElementById(id);
const POLL_MS = 2000;

function el(tag, attrs, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (k === "class") e.className = v;
    else if (k === "style") e.style.cssText = v;
    else e.setAttribute(k, v);
  }
  for (const c of children) {
    if (c === null || c === undefined) continue;
    e.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return e;
}

function setText(id, v) { $(id).textContent = v; }
const int = (n) => Math.round(n).toLocaleString("en-US");
const rate = (n) => (n >= 100 ? int(n) : n.toFixed(n >= 10 ? 1 : 2));
const yuan = (fen) => (fen < 0 ? "−¥" : "¥") + (Math.abs(fen) / 100).toLocaleString("en-US", { minimumFractionDigits: 2, maximumFractionDigits: 2 });
const pct = (x) => (x < 0 ? "–" : (100 * x).toFixed(1) + "%");

function dur(sec) {
  if (sec === undefined || sec === null || sec < 0) return "–";
  if (sec < 0.001) return (sec * 1e6).toFixed(0) + " µs";
  if (sec < 1) return (sec * 1000).toFixed(sec < 0.01 ? 2 : 1) + " ms";
  if (sec < 120) return sec.toFixed(2) + " s";
  const m = Math.floor(sec / 60), h = Math.floor(m / 60);
  return h > 0 ? h + "h " + (m % 60) + "m" : m + "m " + Math.floor(sec % 60) + "s";
}

function render(s) {
  const ready = $("ready");
  ready.textContent = s.ready ? "ready" : "not ready";
  ready.className = "badge " + (s.ready ? "ok" : "bad");
  setText("policy-name", s.policy.name);
  setText("policy-version", s.policy.version.slice(0, 12));
  setText("partitions-ready", s.partitions_ready + "/" + s.partitions + " ready");
  setText("uptime", dur(s.uptime_seconds));
  setText("updated", new Date().toLocaleTimeString());

  setText("decisions-rate", rate(s.rates.decisions_per_second));
  setText("decisions-total", int(s.totals.decisions));
  setText("events-rate", rate(s.rates.events_per_second));
  setText("events-total", int(s.totals.events_in));
  // The window's percentiles while requests flow; since start when idle.
  const lat = s.latency.decisions > 0 ? s.latency : s.latency_since_start;
  setText("latency-p99", dur(lat.p99_seconds));
  setText("latency-p50", dur(lat.p50_seconds));
  setText("latency-n", int(lat.decisions));
  setText("window", s.latency.decisions > 0 ? "the last " + s.window_seconds.toFixed(0) + " s" : "total (idle now)");
  setText("approval-rate", pct(s.rates.approval_rate));
  setText("dead-rate", rate(s.rates.dead_letters_per_second));
  setText("dead-total", int(s.totals.dead_letters));
  setText("outstanding", yuan(s.totals.advanced_outstanding_fen));

  renderMix(s.decisions);
  const rb = $("reasons").tBodies[0];
  rb.replaceChildren(...s.reasons.slice(0, 8).map((r) => el("tr", {}, el("td", {}, r.name), el("td", {}, int(r.count)))));
  if (s.reasons.length === 0) rb.append(el("tr", {}, el("td", { class: "muted" }, "no reasons yet")));

  setText("money-refunds", yuan(s.totals.refunds_fen));
  setText("money-advanced", yuan(s.totals.advanced_fen));
  setText("money-clawbacks", yuan(s.totals.clawbacks_fen));
  setText("money-compensation", yuan(s.totals.compensation_fen));
  setText("money-outstanding", yuan(s.totals.advanced_outstanding_fen));
  setText("money-promised", yuan(s.totals.promised_outstanding_fen));
  renderResolutions(s.resolutions || {});

  renderStages(s);
  renderPolicy(s);
  renderPartitions(s);
  renderDeadLetters(s);
  document.body.dataset.rendered = String(Number(document.body.dataset.rendered || 0) + 1);
}

// renderResolutions lists how reviews ended (by a person or a deadline)
// and the returns closed with nothing sent back.
function renderResolutions(r) {
  const rows = [
    ["approved by a merchant", "approved/merchant"], ["approved by the platform", "approved/platform"],
    ["approved by the review deadline", "approved/timeout"], ["rejected by a merchant", "rejected/merchant"],
    ["rejected by the platform", "rejected/platform"], ["closed: nothing sent back", "closed/timeout"],
  ];
  $("resolutions").tBodies[0].replaceChildren(...rows.map(([label, k]) =>
    el("tr", { id: "res-" + k.replace("/", "-") }, el("td", {}, label), el("td", {}, int(r[k] || 0)))));
}

// STAGES says what each stage of pipeline/stages covers and whether it is
// counted per event or per batch (its count column means either).
const STAGES = {
  stored_pulled: "stored in JetStream → handed to the worker (per event)",
  pulled_applied: "handed to the worker → its batch applied (per event)",
  commit: "the batch's Badger commit, retries included (per batch)",
  publish_ack: "outputs handed to the publisher → stored in FR_OUT with their commit marker (per batch)",
};

// renderStages shows each stage's p50/p99 over the status window, or,
// for a stage nothing passed in the window, since start (as the latency
// card does), so an idle daemon still shows where time went. Stages end
// at different moments (an event is pulled and applied before its batch
// is acknowledged), so the window can hold one stage and not another.
function renderStages(s) {
  const since = s.stages_since_start || [];
  const win = s.stages || [];
  const rows = since.map((x, i) => (win[i] && win[i].count > 0 ? win[i] : x));
  const all = win.length > 0 && win.every((x) => x.count > 0);
  const none = !win.some((x) => x.count > 0);
  setText("stages-window", all ? "the last " + s.window_seconds.toFixed(0) + " s" :
    none ? "total (idle now)" : "the last " + s.window_seconds.toFixed(0) + " s, or total for a stage idle since");
  const tb = $("stages").tBodies[0];
  if (rows.length === 0) {
    tb.replaceChildren(el("tr", {}, el("td", { colspan: "5", class: "muted" }, "no data yet")));
    return;
  }
  tb.replaceChildren(...rows.map((x) => el("tr", { id: "stage-" + x.stage },
    el("td", {}, el("code", {}, x.stage)), el("td", {}, STAGES[x.stage] || ""),
    el("td", { class: "num", id: "stage-" + x.stage + "-p50" }, dur(x.p50_seconds)),
    el("td", { class: "num", id: "stage-" + x.stage + "-p99" }, dur(x.p99_seconds)),
    el("td", { class: "num", id: "stage-" + x.stage + "-n" }, int(x.count)))));
}

function renderMix(d) {
  const total = d.approved + d.review + d.rejected;
  const bar = $("mix-bar");
  bar.replaceChildren();
  const legend = $("mix-legend");
  legend.replaceChildren();
  for (const k of ["approved", "review", "rejected"]) {
    const share = total > 0 ? d[k] / total : 0;
    if (share > 0) bar.append(el("div", { class: k, style: "width:" + (100 * share).toFixed(2) + "%", title: k }));
    legend.append(el("li", { id: "mix-" + k }, el("i", { class: k }), k + " ", el("b", {}, int(d[k])), " (" + (total > 0 ? (100 * share).toFixed(1) : "0") + "%)"));
  }
}

function renderPolicy(s) {
  $("policy-box").replaceChildren(el("dl", { class: "kv" },
    el("dt", {}, "in force"), el("dd", {}, el("b", {}, s.policy.name)),
    el("dt", {}, "version"), el("dd", {}, el("code", {}, s.policy.version))));
  const box = $("shadow-box");
  if (!s.shadow) {
    box.className = "muted";
    box.textContent = "no shadow policy (start flashreturnd with --shadow to compare one on live traffic)";
    return;
  }
  const sh = s.shadow, n = sh.requests;
  const share = (x) => (n > 0 ? (100 * x / n).toFixed(1) + "%" : "–");
  box.className = "";
  box.replaceChildren(el("dl", { class: "kv" },
    el("dt", {}, "shadow"), el("dd", {}, el("b", {}, sh.policy.name), " ", el("code", {}, sh.policy.version.slice(0, 12))),
    el("dt", {}, "requests compared"), el("dd", {}, int(n)),
    el("dt", {}, "approved live / shadow"), el("dd", {}, share(sh.live_approved) + " / " + share(sh.shadow_approved)),
    el("dt", {}, "advanced live / shadow"), el("dd", {}, yuan(sh.live_advanced_fen) + " / " + yuan(sh.shadow_advanced_fen)),
    el("dt", {}, "disagreements"), el("dd", {}, int(sh.disagreements))));
}

function renderPartitions(s) {
  setText("pending-total", int(s.totals.pending));
  const max = Math.max(1, ...s.backlog.map((p) => p.pending));
  $("partitions").replaceChildren(...s.backlog.map((p) => el("div", {
    class: "part" + (p.ready ? "" : " notready"),
    title: "partition " + p.partition + ": " + p.pending + " pending, " + p.events + " events applied" + (p.ready ? "" : ", NOT READY"),
  }, "p" + p.partition, el("br"), el("b", {}, int(p.pending)), el("div", { class: "fill", style: "width:" + (100 * p.pending / max).toFixed(1) + "%" }))));
  const hot = [...s.backlog].sort((a, b) => b.events - a.events).slice(0, 5).filter((p) => p.events > 0);
  setText("hottest", hot.length ? hot.map((p) => "p" + p.partition + " (" + int(p.events) + ")").join(", ") : "–");
}

function renderDeadLetters(s) {
  const by = Object.entries(s.dead_letters_by_reason).filter(([, n]) => n > 0).map(([r, n]) => r + " " + int(n));
  setText("dead-by-reason", by.length ? "· " + by.join(" · ") : "");
  const tb = $("dead-letters").tBodies[0];
  if (s.recent_dead_letters.length === 0) {
    tb.replaceChildren(el("tr", {}, el("td", { colspan: "6", class: "muted" }, "none")));
    return;
  }
  tb.replaceChildren(...s.recent_dead_letters.slice(0, 10).map((d) => el("tr", {},
    el("td", {}, new Date(d.at).toLocaleTimeString()), el("td", {}, el("span", { class: "tag" }, d.reason)),
    el("td", {}, d.partition), el("td", {}, d.stream_seq), el("td", {}, d.subject), el("td", { class: "err" }, d.error))));
}

async function refresh() {
  try {
    const r = await fetch("/api/status", { cache: "no-store" });
    if (!r.ok) throw new Error("/api/status: HTTP " + r.status);
    render(await r.json());
    $("error").hidden = true;
  } catch (e) {
    $("error").hidden = false;
    $("error").textContent = "cannot read the daemon's status: " + e.message;
  } finally {
    setTimeout(refresh, POLL_MS);
  }
}

async function lookup(user, request) {
  const out = $("lookup-result");
  out.replaceChildren(el("div", { class: "muted" }, "looking up…"));
  let r;
  try {
    r = await fetch("/v1/users/" + encodeURIComponent(user) + "/requests/" + encodeURIComponent(request), { cache: "no-store" });
  } catch (e) {
    out.replaceChildren(el("div", { class: "fail" }, "lookup failed: " + e.message));
    return;
  }
  if (r.status === 404) {
    out.replaceChildren(el("div", { class: "fail", id: "lookup-notfound" }, "unknown: " + (await r.text()).trim()));
    return;
  }
  if (!r.ok) {
    out.replaceChildren(el("div", { class: "fail" }, "HTTP " + r.status + ": " + (await r.text()).trim()));
    return;
  }
  const v = await r.json();
  const tags = (xs) => (xs && xs.length ? xs.map((x) => el("span", { class: "tag" }, x)) : [el("span", { class: "muted" }, "none")]);
  const rec = v.decision_record || {};
  const dl = el("dl", { class: "kv", id: "lookup-summary" },
    el("dt", {}, "request"), el("dd", {}, v.request_id + " (order " + v.order_id + ", " + v.kind + ", " + v.reason + ")"),
    el("dt", {}, "stage"), el("dd", { id: "lookup-stage" }, el("b", {}, v.stage), " (" + v.status + ")"),
    el("dt", {}, "decision"), el("dd", { id: "lookup-decision", class: v.decision === "approved" ? "pass" : v.decision === "rejected" ? "fail" : "" }, v.decision),
    el("dt", {}, "reasons"), el("dd", {}, ...tags(v.reasons)),
    el("dt", {}, "amount"), el("dd", {}, yuan(v.amount_fen)),
    el("dt", {}, "policy"), el("dd", {}, v.policy ? v.policy.name + " " + v.policy.version.slice(0, 12) : "–"),
    el("dt", {}, "merchant rule"), el("dd", {}, rec.merchant_rule || "–"),
    el("dt", {}, "requested / decided"), el("dd", {}, (rec.request_at || "–") + " → " + (rec.decided_at || "–")),
    el("dt", {}, "resolution"), el("dd", { id: "lookup-resolution" }, v.resolution
      ? v.resolution.outcome + " by " + v.resolution.by + " at " + v.resolution.at + (v.resolution.note ? " · “" + v.resolution.note + "”" : "") +
        (v.resolution.reasons && v.resolution.reasons.length ? " · " + v.resolution.reasons.join(", ") : "")
      : "–"),
    el("dt", {}, "closed"), el("dd", {}, v.closed ? "nothing sent back: closed at " + v.closed.at : "–"),
    el("dt", {}, "refund"), el("dd", { id: "lookup-refund" }, v.refund
      ? (v.refund.sent ? "paid " + v.refund.sent_at + " on " : "promised on ") + v.refund.trigger + (v.refund.advance ? " (advance)" : "")
      : "–"),
    el("dt", {}, "next deadline"), el("dd", {}, v.next_deadline ? v.next_deadline.timer + " at " + v.next_deadline.at : "–"),
    el("dt", {}, "effects"), el("dd", {}, ...tags((v.effects || []).map((e) => e.kind + " " + e.id))));
  const trace = el("table", { class: "list", id: "lookup-trace" },
    el("thead", {}, el("tr", {}, el("th", {}, "rule"), el("th", {}, "result"), el("th", {}, "got"), el("th", {}, "limit"), el("th", {}, "detail"))),
    el("tbody", {}, ...(v.trace || []).map((c) => el("tr", {},
      el("td", {}, c.rule), el("td", { class: c.pass ? "pass" : "fail" }, c.pass ? "pass" : "FAIL"),
      el("td", {}, c.got), el("td", {}, c.limit), el("td", {}, c.detail)))));
  out.replaceChildren(dl, el("h3", {}, "Rule trace"), trace);
}

$("lookup").addEventListener("submit", (ev) => {
  ev.preventDefault();
  const u = $("lookup-user").value.trim(), q = $("lookup-request").value.trim();
  const url = new URL(location.href);
  url.searchParams.set("user", u);
  url.searchParams.set("request", q);
  history.replaceState(null, "", url);
  lookup(u, q);
});

const params = new URLSearchParams(location.search);
if (params.get("user") && params.get("request")) {
  $("lookup-user").value = params.get("user");
  $("lookup-request").value = params.get("request");
  lookup(params.get("user"), params.get("request"));
}
refresh();
