package grafana

//go:generate go run ../dashgen -o flashreturn.json

import (
	"bytes"
	"encoding/json"
	"fmt"

	"github.com/grafana/grafana-foundation-sdk/go/common"
	"github.com/grafana/grafana-foundation-sdk/go/dashboard"
)

// The dashboard's identity and variables.
const (
	uid   = "flashreturn" // links to the dashboard survive re-imports
	title = "flashreturn"

	datasourceVar = "datasource" // the Prometheus data source every query reads
	instanceVar   = "instance"   // the flashreturnd processes shown

	// schemaVersion is the dashboard schema version the JSON claims:
	// Grafana 10.4's (39), as the hand-written file had, rather than the
	// SDK's 42. Grafana migrates an older version forward on load (40 to
	// 42 change nothing this dashboard uses: a non-string refresh,
	// timepicker.time_options, hideFrom overrides), while a version newer
	// than a Grafana's latest is not migrated, and Grafana 12's API
	// conversion refuses a dashboard it cannot bring to its own version.
	schemaVersion = 39
)

// JSON returns the dashboard as Grafana imports it: indented JSON ending
// in a newline, the same bytes on every call (what is committed as
// flashreturn.json).
func JSON() ([]byte, error) {
	return render(rows())
}

// render builds a dashboard of rs with the SDK's builders, numbers its
// panels and rows 1, 2, 3… top to bottom, and returns its JSON.
func render(rs []row) ([]byte, error) {
	//lint:ignore SA1019 the SDK steers to its v2 schema (dashboardv2), which Grafana imports only behind feature flags (Grafana 12); this is the classic dashboard model every Grafana 10+ imports and provisions.
	b := dashboard.NewDashboardBuilder(title).
		Uid(uid).
		Description("flashreturn: instant after-sales return decisions. Panels and alerts: deploy/README.md.").
		Tags([]string{"flashreturn"}).
		Editable().
		Tooltip(dashboard.DashboardCursorSyncCrosshair).
		Time("now-1h", "now").
		Refresh("10s").
		Timezone(common.TimeZoneBrowser).
		WithVariable(dashboard.NewDatasourceVariableBuilder(datasourceVar).
			Label("Prometheus").
			Type("prometheus")).
		WithVariable(dashboard.NewQueryVariableBuilder(instanceVar).
			Label("instance").
			Datasource(datasource()).
			Definition("label_values(flashreturn_ready, instance)").
			Query(dashboard.StringOrMap{Map: map[string]any{
				"query": "label_values(flashreturn_ready, instance)",
				"refId": instanceVar,
			}}).
			Refresh(dashboard.VariableRefreshOnTimeRangeChanged).
			Sort(dashboard.VariableSortAlphabeticalAsc).
			Multi(true).
			IncludeAll(true).
			AllValue(".*").
			Current(dashboard.VariableOption{
				Selected: ptr(true),
				Text:     dashboard.StringOrArrayOfString{ArrayOfString: []string{"All"}},
				Value:    dashboard.StringOrArrayOfString{ArrayOfString: []string{"$__all"}},
			}))
	for _, r := range rs {
		b.WithRow(dashboard.NewRowBuilder(r.title))
		for _, p := range r.panels {
			b.WithPanel(p)
		}
	}
	d, err := b.Build()
	if err != nil {
		return nil, fmt.Errorf("grafana: build dashboard: %w", err)
	}
	d.SchemaVersion = schemaVersion
	// Grafana numbers panels itself when ids are missing, but then every
	// save renumbers them; fixed ids keep panel links (viewPanel=N) and
	// diffs stable. They follow the order of rows and panels.
	for i := range d.Panels {
		id := uint32(i + 1)
		switch p := d.Panels[i]; {
		case p.Panel != nil:
			p.Panel.Id = &id
		case p.RowPanel != nil:
			p.RowPanel.Id = id
		}
	}
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	enc.SetIndent("", "  ")
	if err := enc.Encode(d); err != nil {
		return nil, fmt.Errorf("grafana: encode dashboard: %w", err)
	}
	return unescapeHTML(buf.Bytes()), nil
}

// unescapeHTML undoes the \u003c, \u003e and \u0026 escapes in JSON
// strings (json.Marshal's HTML safety, which the SDK's own MarshalJSON
// methods apply whatever the encoder says), so that PromQL comparisons
// and "fr.dlq.<reason>" read as written. The result is the same JSON
// value.
func unescapeHTML(b []byte) []byte {
	out := make([]byte, 0, len(b))
	for i := 0; i < len(b); i++ {
		if b[i] != '\\' || i+1 >= len(b) {
			out = append(out, b[i])
			continue
		}
		if b[i+1] == 'u' && i+6 <= len(b) {
			switch string(b[i+2 : i+6]) {
			case "003c", "003C":
				out, i = append(out, '<'), i+5
				continue
			case "003e", "003E":
				out, i = append(out, '>'), i+5
				continue
			case "0026":
				out, i = append(out, '&'), i+5
				continue
			}
		}
		// Any other escape, \\ included, stays as it is.
		out, i = append(out, b[i], b[i+1]), i+1
	}
	return out
}
