package loadgen

import (
	"html/template"
	"io"

	"github.com/flashreturn/flashreturn/loadgen/audit"
)

// WriteHTML writes the report as one self-contained HTML page: no external
// assets; the charts are inline SVG drawn by a small inline script from
// the report's own JSON.
func (r *Report) WriteHTML(w io.Writer) error {
	return reportPage.Execute(w, r)
}

var reportPage = template.Must(template.New("report").Funcs(template.FuncMap{
	"deref": func(p *float64) float64 { return *p },
	"status": func(c audit.Check) string {
		switch {
		case c.Skipped != "":
			return "skip"
		case !c.OK():
			return "FAIL"
		}
		return "ok"
	},
}).Parse(`<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<title>flashreturn loadgen: {{.Params.Mode}} {{.Params.Shape}} {{.StartedAt.Format "2006-01-02 15:04:05"}}</title>
<style>
body{font:14px/1.4 system-ui,sans-serif;margin:24px;color:#222;max-width:1200px}
h1{font-size:20px;margin:0 0 4px} h2{font-size:16px;margin:24px 0 8px}
table{border-collapse:collapse;margin:4px 0} td,th{border:1px solid #ddd;padding:3px 8px;text-align:left;vertical-align:top}
th{background:#f4f4f4} .ok{color:#1a7f37} .FAIL{color:#cf222e;font-weight:bold} .skip{color:#9a6700}
.verdict{font-size:18px;font-weight:bold;padding:6px 10px;display:inline-block;border-radius:4px}
.pass{background:#dafbe1;color:#1a7f37} .fail{background:#ffebe9;color:#cf222e}
.grid{display:grid;grid-template-columns:1fr 1fr;gap:16px} .chart{border:1px solid #ddd;border-radius:4px;padding:8px}
.chart h3{font-size:14px;margin:0 0 4px} svg text{font:11px system-ui,sans-serif;fill:#555}
.kv td:first-child{color:#555}
</style></head><body>
<h1>flashreturn loadgen report</h1>
<div>{{.Params.Mode}}{{if .Params.Shape}} · {{.Params.Shape}}{{end}} against {{.Params.NATSURL}} · started {{.StartedAt.Format "2006-01-02 15:04:05 MST"}} · {{printf "%.1f" .ElapsedSec}} s</div>
<p><span id="verdict" class="verdict {{if and .Passed .ThresholdsPassed}}pass">PASS{{else}}fail">FAIL{{end}}</span>
 audit {{if .Passed}}passed{{else}}<b>failed</b>{{end}}{{if .Thresholds}} · {{$b := len .BrokenThresholds}}{{if $b}}<b>{{$b}} of {{len .Thresholds}} thresholds broken</b>{{else}}all {{len .Thresholds}} thresholds met{{end}}{{end}}{{if .Faults}} · {{len .Faults}} faults{{end}}</p>
<h2>Summary</h2>
<table class="kv">
<tr><td>events sent / acked</td><td>{{.Publish.Sent}} / {{.Publish.Acked}} (duplicates {{.Publish.Duplicates}}, stalls {{.Publish.Stalls}}, errors {{.Publish.Errors}}, retries {{.Publish.Retries}} in {{.Publish.Recoveries}} in-order recoveries, failed {{.Publish.Failed}})</td></tr>
<tr><td>send lag</td><td>max {{printf "%.1f" .Publish.MaxLagMs}} ms, {{.Publish.LateSends}} sends &gt; 1 ms late</td></tr>
<tr><td>requests / decided</td><td>{{.Requests}} / {{.Decided}} {{range $k, $v := .Decisions}} · {{$k}} {{$v}}{{end}}</td></tr>
<tr><td>latency (from {{.Latency.MeasuredFrom}})</td><td>n={{.Latency.Count}} · p50 {{printf "%.2f" .Latency.P50Ms}} ms · p90 {{printf "%.2f" .Latency.P90Ms}} ms · <b>p99 {{printf "%.2f" .Latency.P99Ms}} ms</b> · p99.9 {{printf "%.2f" .Latency.P999Ms}} ms · max {{printf "%.2f" .Latency.MaxMs}} ms</td></tr>
<tr><td>outputs</td><td>{{.OutputsTotal}}{{range $k, $v := .Outputs}} · {{$k}} {{$v}}{{end}}</td></tr>
<tr><td>dead letters</td><td>{{.DeadLetters}} (malformed sent {{.MalformedSent}})</td></tr>
<tr><td>backlog</td><td>max {{.BacklogMax}} at {{printf "%.0f" .BacklogMaxAtSec}} s, back under 100 ms of traffic {{if ge .BacklogClearSec 0.0}}{{printf "%.0f" .BacklogClearSec}} s later{{else}}never{{end}}</td></tr>
<tr><td>drain</td><td>{{if .Drained}}drained{{else}}NOT drained{{end}} {{printf "%.2f" .DrainSec}} s after the last send</td></tr>
{{with .Throughput}}<tr><td>throughput</td><td>{{.Events}} events sent in {{printf "%.1f" .SendSec}} s ({{printf "%.0f" .SendRate}}/s); processed ({{.Expect}}) in {{printf "%.1f" .ProcessSec}} s: <b>{{printf "%.0f" .ProcessedPerSec}} events/s</b></td></tr>{{end}}
{{if .Steps}}<tr><td>max sustainable rate</td><td><b>{{printf "%.0f" .MaxSustainableRate}} events/s</b></td></tr>{{end}}
</table>
{{if .Thresholds}}<h2>Thresholds</h2>
<table id="thresholds"><tr><th></th><th>threshold</th><th>measured</th></tr>
{{range .Thresholds}}<tr><td class="{{if .Passed}}ok">ok{{else}}FAIL">FAIL{{end}}</td><td>{{.Expr}}</td><td>{{.MeasuredText}}</td></tr>{{end}}
</table>{{end}}
{{if .Faults}}<h2>Faults</h2>
<p>Schedule <code>{{.Params.Faults}}</code>. The decision gap of a fault is the longest time without a decision from the fault until the next disruptive fault (or the end of the run): over all decisions, and for each of the {{.Params.Partitions}} partitions on its own (largest, median, and how many partitions had a decision in that window; at low rates a partition's natural spacing of decisions is part of its gap). The dashed lines on the time charts mark the faults.</p>
<table id="faults"><tr><th>at</th><th>target</th><th>action</th><th>pid</th><th>ready after</th><th>decision gap</th><th>partition gap max</th><th>partition gap p50</th><th>partitions decided</th><th>window until</th><th>note</th></tr>
{{range .Faults}}<tr class="fault-row"><td>{{if ge .AtSec 0.0}}{{printf "%+.2f" .AtSec}} s{{else}}planned {{printf "%+.2f" .PlannedSec}} s{{end}}</td><td>{{.Target}}</td><td>{{.Action}}</td><td>{{if .PID}}{{.PID}}{{end}}</td><td>{{with .ReadySec}}{{if ge (deref .) 0.0}}{{printf "%.2f" (deref .)}} s{{else}}never{{end}}{{end}}</td><td>{{if ge .GapMs 0.0}}<b>{{printf "%.0f" .GapMs}} ms</b>{{else}}–{{end}}</td><td>{{if ge .PartitionGapMaxMs 0.0}}{{printf "%.0f" .PartitionGapMaxMs}} ms{{else}}–{{end}}</td><td>{{if ge .PartitionGapP50Ms 0.0}}{{printf "%.0f" .PartitionGapP50Ms}} ms{{else}}–{{end}}</td><td>{{.Resumed}} / {{.Partitions}}</td><td>{{printf "%+.2f" .WindowEndSec}} s</td><td>{{.Error}}{{if .Output}} <code>{{.Output}}</code>{{end}}</td></tr>{{end}}
</table>{{end}}
{{if .Processes}}<h2>Spawned processes</h2>
<table><tr><th>target</th><th>command</th><th>log</th><th>lives</th></tr>
{{range .Processes}}<tr><td>{{.Name}}</td><td><code>{{.Command}}</code></td><td><code>{{.Log}}</code></td><td>{{range .Runs}}pid {{.PID}} {{printf "%+.2f" .StartSec}} s → {{if .Exit}}{{printf "%+.2f" .EndSec}} s {{.Exit}}{{else}}running{{end}}<br>{{end}}</td></tr>{{end}}
</table>{{end}}
<h2>Charts</h2>
<div class="grid">
<div class="chart"><h3>Request → decision latency over time (ms, log scale)</h3><div id="lat"></div></div>
<div class="chart"><h3>Latency percentile distribution (ms)</h3><div id="pct"></div></div>
<div class="chart"><h3>Throughput: offered, sent, decided, outputs (per second)</h3><div id="thr"></div></div>
<div class="chart"><h3>Backlog: requests without decision, inbound pending</h3><div id="blg"></div></div>
</div>
{{if .Steps}}<h2>Steps</h2><table><tr><th>step</th><th>rate</th><th>sent/s</th><th>decided/s</th><th>p99 ms</th><th>backlog</th><th>verdict</th></tr>
{{range .Steps}}<tr><td>{{.Step}}</td><td>{{printf "%.0f" .Rate}}</td><td>{{printf "%.0f" .SentPerSec}}</td><td>{{printf "%.0f" .DecidedPerSec}}</td><td>{{printf "%.2f" .P99Ms}}</td><td>{{.BacklogStart}} → {{.BacklogEnd}}</td><td>{{if .Sustained}}<span class="ok">sustained</span>{{else}}<span class="FAIL">not sustained</span> {{.Why}}{{end}}</td></tr>{{end}}</table>{{end}}
<h2>Audit</h2>
<table><tr><th></th><th>check</th><th>rule</th><th>checked</th><th>failed</th><th>examples</th></tr>
{{range .Audit}}<tr><td class="{{status .}}">{{status .}}</td><td>{{.Name}}</td><td>{{.Rule}}{{if .Skipped}} <i>(skipped: {{.Skipped}})</i>{{end}}</td><td>{{.Checked}}</td><td>{{.Failed}}</td><td>{{range .Examples}}{{.}}<br>{{end}}</td></tr>{{end}}
</table>
<h2>Parameters</h2>
<table class="kv">
<tr><td>mode</td><td>{{.Params.Mode}}</td></tr>
{{if .Params.Shape}}<tr><td>shape</td><td>{{.Params.Shape}}{{range $k, $v := .Params.ShapeParams}} · {{$k}}={{$v}}{{end}}</td></tr>{{end}}
{{if .Params.Events}}<tr><td>events / rate / expect</td><td>{{.Params.Events}} / {{if .Params.Rate}}{{.Params.Rate}}{{else}}unlimited{{end}} / {{.Params.Expect}}</td></tr>{{end}}
<tr><td>seed / run id</td><td>{{.Params.Seed}} / {{.Params.RunID}}</td></tr>
<tr><td>world</td><td>{{.Params.Shoppers}} shoppers, {{.Params.Merchants}} merchants, return fraction {{.Params.ReturnFraction}}, bad fraction {{.Params.BadFraction}}</td></tr>
<tr><td>p99 target / max in flight</td><td>{{.Params.P99TargetMs}} ms / {{.Params.MaxInFlight}}</td></tr>
<tr><td>policies seen</td><td>{{range $k, $v := .Policies}}{{$k}} ({{$v}}) {{end}}</td></tr>
</table>
<script>
const R = {{.}};
const NS = "http://www.w3.org/2000/svg";
function el(tag, attrs, parent, text) {
  const e = document.createElementNS(NS, tag);
  for (const k in attrs) e.setAttribute(k, attrs[k]);
  if (text !== undefined) e.textContent = text;
  if (parent) parent.appendChild(e);
  return e;
}
function fmt(v) { return Math.abs(v) >= 1000 ? (v/1000).toFixed(v >= 10000 ? 0 : 1) + "k" : (+v.toPrecision(3)).toString(); }
// chart draws lines [{name, color, pts:[[x,y]]}] into the element with id.
function chart(id, lines, o) {
  o = o || {};
  const W = 560, H = 260, L = 52, B = 30, T = 10, Rt = 10;
  const svg = el("svg", {width: W, height: H + 22, viewBox: "0 0 " + W + " " + (H + 22)});
  document.getElementById(id).appendChild(svg);
  let xs = [], ys = [];
  lines.forEach(l => l.pts.forEach(p => { if (isFinite(p[1]) && (!o.log || p[1] > 0)) { xs.push(p[0]); ys.push(p[1]); } }));
  if (!xs.length) { el("text", {x: W/2, y: H/2, "text-anchor": "middle"}, svg, "no data"); return; }
  const marks = (o.marks || []).filter(m => m.at_sec >= 0);
  marks.forEach(m => xs.push(m.at_sec));
  const x0 = o.x0 !== undefined ? o.x0 : Math.min(...xs), x1 = Math.max(...xs, x0 + 1e-9);
  let y0 = o.log ? Math.min(...ys) : 0, y1 = Math.max(...ys);
  if (o.log) { y0 = Math.pow(10, Math.floor(Math.log10(y0))); y1 = Math.pow(10, Math.ceil(Math.log10(y1 * 1.0001))); }
  if (y1 <= y0) y1 = y0 + 1;
  const fy = v => o.log ? Math.log10(v) : v;
  const sx = x => L + (x - x0) / (x1 - x0) * (W - L - Rt);
  const sy = y => T + (1 - (fy(y) - fy(y0)) / (fy(y1) - fy(y0))) * (H - T - B);
  el("rect", {x: L, y: T, width: W - L - Rt, height: H - T - B, fill: "none", stroke: "#ccc"}, svg);
  const yt = [];
  if (o.log) { for (let v = y0; v <= y1 * 1.0001; v *= 10) yt.push(v); }
  else { for (let i = 0; i <= 4; i++) yt.push(y0 + (y1 - y0) * i / 4); }
  yt.forEach(v => { el("line", {x1: L, x2: W - Rt, y1: sy(v), y2: sy(v), stroke: "#eee"}, svg);
    el("text", {x: L - 4, y: sy(v) + 4, "text-anchor": "end"}, svg, fmt(v)); });
  const xt = o.xticks || [0, 1, 2, 3, 4].map(i => x0 + (x1 - x0) * i / 4);
  xt.forEach(v => { const lab = Array.isArray(v) ? v[1] : fmt(v), xv = Array.isArray(v) ? v[0] : v;
    el("text", {x: sx(xv), y: H - B + 14, "text-anchor": "middle"}, svg, lab); });
  if (o.xlabel) el("text", {x: (L + W) / 2, y: H - 2, "text-anchor": "middle"}, svg, o.xlabel);
  // Faults: a dashed vertical line each, labelled, with the fault's
  // summary as its tooltip.
  // Labels of close markers go on the next row instead of overlapping.
  const rows = [];
  marks.forEach(m => {
    const x = sx(m.at_sec), c = markColor(m), label = (m.target === "daemon" ? "" : m.target + ":") + m.action;
    let row = rows.findIndex(end => x + 3 > end);
    if (row < 0) { row = rows.length; rows.push(0); }
    rows[row] = x + 3 + label.length * 6.2 + 4;
    const g = el("g", {"class": "fault-marker", "data-target": m.target, "data-action": m.action, "data-at": m.at_sec}, svg);
    el("line", {x1: x, x2: x, y1: T, y2: H - B, stroke: c, "stroke-width": 1.4, "stroke-dasharray": "5 3"}, g);
    el("text", {x: x + 3, y: T + 11 + 12 * row, fill: c, style: "fill:" + c}, g, label);
    el("title", {}, g, faultText(m));
  });
  let lx = L;
  lines.forEach(l => {
    const pts = l.pts.filter(p => isFinite(p[1]) && (!o.log || p[1] > 0)).map(p => sx(p[0]).toFixed(1) + "," + sy(Math.min(Math.max(p[1], y0), y1)).toFixed(1));
    if (pts.length) el("polyline", {points: pts.join(" "), fill: "none", stroke: l.color, "stroke-width": 1.6}, svg);
    if (pts.length === 1) { const [a, b] = pts[0].split(","); el("circle", {cx: a, cy: b, r: 3, fill: l.color}, svg); }
    el("rect", {x: lx, y: H + 8, width: 10, height: 10, fill: l.color}, svg);
    el("text", {x: lx + 14, y: H + 17}, svg, l.name);
    lx += 24 + l.name.length * 6.5;
  });
  if (marks.length) {
    [["fault", "#cf222e"], ["recovery", "#1a7f37"]].forEach(([name, c]) => {
      const g = el("g", {"class": "fault-legend"}, svg);
      el("line", {x1: lx, x2: lx + 12, y1: H + 13, y2: H + 13, stroke: c, "stroke-width": 1.4, "stroke-dasharray": "5 3"}, g);
      el("text", {x: lx + 16, y: H + 17}, g, name);
      lx += 28 + name.length * 6.5;
    });
  }
}
function markColor(m) { return (m.action === "start" || m.action === "sigcont") ? "#1a7f37" : "#cf222e"; }
function faultText(m) {
  let s = m.target + " " + m.action + " at " + m.at_sec.toFixed(2) + " s";
  if (m.gap_ms >= 0) s += ": decision gap " + m.gap_ms.toFixed(0) + " ms (per partition max " + m.partition_gap_max_ms.toFixed(0) + " ms, p50 " + m.partition_gap_p50_ms.toFixed(0) + " ms, " + m.partitions_resumed + "/" + m.partitions + " partitions decided)";
  if (m.error) s += " (" + m.error + ")";
  return s;
}
const S = R.series || [];
const F = R.faults || [];
const pick = (k, f) => S.map(s => [s.t, f ? f(s[k]) : s[k]]);
chart("lat", [
  {name: "p50", color: "#2da44e", pts: pick("p50_ms")},
  {name: "p99", color: "#d4a72c", pts: pick("p99_ms")},
  {name: "max", color: "#cf222e", pts: pick("max_ms")}], {log: true, xlabel: "seconds", marks: F});
const D = (R.latency && R.latency.distribution) || [];
const px = p => -Math.log10(Math.max(1 - p / 100, 1e-6));
chart("pct", [{name: "latency", color: "#0969da", pts: D.map(d => [px(d.percentile), d.ms])}],
  {log: true, x0: 0, xlabel: "percentile", xticks: [[0, "0%"], [1, "90%"], [2, "99%"], [3, "99.9%"], [4, "99.99%"], [5, "99.999%"]].filter(t => !D.length || t[0] <= px(D[D.length - 1].percentile))});
chart("thr", [
  {name: "offered", color: "#8c959f", pts: pick("offered")},
  {name: "sent", color: "#0969da", pts: pick("sent")},
  {name: "outputs", color: "#8250df", pts: pick("outputs")},
  {name: "decided", color: "#2da44e", pts: pick("decided")}], {xlabel: "seconds", marks: F});
chart("blg", [
  {name: "requests without decision", color: "#cf222e", pts: pick("pending_requests")},
  {name: "inbound pending", color: "#0969da", pts: pick("inbound_backlog", v => v < 0 ? NaN : v)}], {xlabel: "seconds", marks: F});
document.body.setAttribute("data-rendered", "1");
</script>
</body></html>
`))
