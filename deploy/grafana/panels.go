package grafana

import (
	"github.com/grafana/grafana-foundation-sdk/go/cog"
	"github.com/grafana/grafana-foundation-sdk/go/cog/variants"
	"github.com/grafana/grafana-foundation-sdk/go/common"
	"github.com/grafana/grafana-foundation-sdk/go/dashboard"
	"github.com/grafana/grafana-foundation-sdk/go/prometheus"
	"github.com/grafana/grafana-foundation-sdk/go/stat"
	"github.com/grafana/grafana-foundation-sdk/go/table"
	"github.com/grafana/grafana-foundation-sdk/go/timeseries"
	"github.com/grafana/grafana-foundation-sdk/go/units"
)

// Units of the panels. Grafana's unit ids, from the SDK where it has
// them; TestUnits keeps the list of those the dashboard may use.
const (
	unitSeconds   = units.Seconds           // durations
	unitEvents    = units.EventsPerSecond   // inbound events / s (Grafana 10.1+ shows "evt/s")
	unitMessages  = units.MessagesPerSecond // messages published / s (Grafana 10.1+ shows "msg/s")
	unitDecisions = units.RequestsPerSecond // decisions / s: one per return request
	unitOps       = units.OpsPerSecond      // other things happening per second
	unitRatio     = units.PercentUnit       // 0..1 shown as a percentage
	unitCount     = units.Short             // plain numbers, scaled with K, M
	unitBytes     = units.BytesIEC          // sizes
	// unitYuan is money. The metrics count fen (1/100 yuan); the queries
	// divide by 100. Grafana has no yuan unit (the former "currencyCNY"
	// is not one: Grafana printed it as a suffix after the number), so
	// this is Grafana's custom currency form: "¥" before the number,
	// scaled with K, M, B.
	unitYuan = "currency:¥"
)

// Legend calculations of every time series panel: the last value and the
// maximum over the time range.
var legendCalcs = []string{"lastNotNull", "max"}

// datasource is what every panel and query reads: the dashboard's
// datasource variable (a Prometheus the operator picks), so that one file
// works against any Prometheus without editing.
func datasource() common.DataSourceRef {
	return common.DataSourceRef{Type: ptr("prometheus"), Uid: ptr("${" + datasourceVar + "}")}
}

// query is one PromQL expression of a panel and the legend of its series
// ("{{label}}" interpolates a label). Expressions select
// instance=~"$instance" so that the instance variable filters every
// panel (TestQueriesFilterByInstance checks it).
type query struct {
	expr   string
	legend string
}

// quantile is a histogram quantile and its legend.
type quantile struct {
	q, legend string
}

// The quantiles the latency panels draw.
var (
	p50  = quantile{"0.5", "p50"}
	p99  = quantile{"0.99", "p99"}
	p999 = quantile{"0.999", "p99.9"}
)

// quantiles returns a query per quantile of the Prometheus histogram
// named hist (without its _bucket suffix), over all instances selected,
// with rates over window ("$__rate_interval" follows the zoom; "5m" is
// steadier).
func quantiles(hist, window string, qs ...quantile) []query {
	out := make([]query, 0, len(qs))
	for _, q := range qs {
		out = append(out, query{
			expr:   "histogram_quantile(" + q.q + `, sum by (le) (rate(` + hist + `_bucket{instance=~"$instance"}[` + window + "])))",
			legend: q.legend,
		})
	}
	return out
}

// targets turns queries into the panel's Prometheus queries, with refIds
// A, B, C… in order.
func targets(qs []query) []cog.Builder[variants.Dataquery] {
	out := make([]cog.Builder[variants.Dataquery], 0, len(qs))
	for i, q := range qs {
		t := prometheus.NewDataqueryBuilder().
			Datasource(datasource()).
			RefId(string(rune('A' + i))).
			Expr(q.expr).
			Range()
		if q.legend != "" {
			t.LegendFormat(q.legend)
		}
		out = append(out, t)
	}
	return out
}

// steps returns absolute thresholds: base colours everything below the
// first step; each step colours values from its value up.
func steps(base string, above ...dashboard.Threshold) *dashboard.ThresholdsConfigBuilder {
	return dashboard.NewThresholdsConfigBuilder().
		Mode(dashboard.ThresholdsModeAbsolute).
		Steps(append([]dashboard.Threshold{{Color: base}}, above...))
}

// from is a threshold step: color from value up.
func from(value float64, color string) dashboard.Threshold {
	return dashboard.Threshold{Value: &value, Color: color}
}

// statPanel is a 4×4 single number: the last value of expr, coloured by
// thresholds, over a sparkline.
func statPanel(title, description, unit, expr string, thresholds *dashboard.ThresholdsConfigBuilder) *stat.PanelBuilder {
	return stat.NewPanelBuilder().
		Title(title).
		Description(description).
		Datasource(datasource()).
		Targets(targets([]query{{expr: expr}})).
		Span(4).Height(4).
		Unit(unit).
		Thresholds(thresholds).
		ReduceOptions(common.NewReduceDataOptionsBuilder().Calcs([]string{"lastNotNull"}).Fields("").Values(false)).
		ColorMode(common.BigValueColorModeValue).
		GraphMode(common.BigValueGraphModeArea).
		TextMode(common.BigValueTextModeAuto).
		JustifyMode(common.BigValueJustifyModeAuto).
		Orientation(common.VizOrientationAuto)
}

// timeseriesPanel is a graph 8 high (the caller sets its width with Span)
// of one line per series of qs: thin lines, a light fill, no points, not
// stacked; a table legend with the last and largest value; a tooltip
// with every series, largest first.
func timeseriesPanel(title, description, unit string, qs ...query) *timeseries.PanelBuilder {
	return timeseries.NewPanelBuilder().
		Title(title).
		Description(description).
		Datasource(datasource()).
		Targets(targets(qs)).
		Height(8).
		Unit(unit).
		DrawStyle(common.GraphDrawStyleLine).
		LineWidth(1).
		FillOpacity(10).
		ShowPoints(common.VisibilityModeNever).
		Stacking(stacking(common.StackingModeNone)).
		Legend(common.NewVizLegendOptionsBuilder().
			ShowLegend(true).
			DisplayMode(common.LegendDisplayModeTable).
			Placement(common.LegendPlacementBottom).
			Calcs(legendCalcs)).
		Tooltip(common.NewVizTooltipOptionsBuilder().
			Mode(common.TooltipDisplayModeMulti).
			Sort(common.SortOrderDescending))
}

// stacking stacks a time series panel's series (StackingModeNormal) or
// not (StackingModeNone).
func stacking(mode common.StackingMode) *common.StackingConfigBuilder {
	return common.NewStackingConfigBuilder().Mode(mode).Group("A")
}

// tablePanel is a table 6 high of the labels of expr's series, evaluated
// once at the end of the range; the time and value columns are hidden.
func tablePanel(title, description, expr string) *table.PanelBuilder {
	t := prometheus.NewDataqueryBuilder().
		Datasource(datasource()).
		RefId("A").
		Expr(expr).
		Format(prometheus.PromQueryFormatTable).
		Instant()
	return table.NewPanelBuilder().
		Title(title).
		Description(description).
		Datasource(datasource()).
		WithTarget(t).
		Height(6).
		ShowHeader(true).
		Footer(common.NewTableFooterOptionsBuilder().Show(false).Reducer([]string{}).CountRows(false)).
		WithTransformation(dashboard.DataTransformerConfig{
			Id:      "organize",
			Options: map[string]any{"excludeByName": map[string]bool{"Time": true, "Value": true}},
		})
}

func ptr[T any](v T) *T { return &v }
