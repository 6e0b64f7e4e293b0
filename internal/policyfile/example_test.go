package policyfile_test

import (
	"errors"
	"fmt"

	"github.com/flashreturn/flashreturn/internal/core"
	"github.com/flashreturn/flashreturn/internal/policyfile"
)

// ExampleLoad reads a policy file that starts from a preset and changes a
// few parameters; everything it leaves out is the preset's.
func ExampleLoad() {
	p, err := policyfile.Load("testdata/hangzhou.yaml")
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println(p.Name, p.Cities, p.AmountCapFen, p.WindowDays, p.MinStars)
	// Output: tmall-hangzhou [Hangzhou] 30000 7 3
}

// ExampleLoad_check is what `flashreturnd policy check <file>` does: a
// file with a misspelt field is refused with the file, the line and the
// field, instead of silently running on the default.
func ExampleLoad_check() {
	_, err := policyfile.Load("testdata/bad.yaml")
	fmt.Println(err)
	var pe *policyfile.Error
	if errors.As(err, &pe) {
		fmt.Println(pe.Line, pe.Field)
	}
	// Output:
	// policyfile: testdata/bad.yaml: line 4: window_dayz: unknown field (known: base, name, kinds, min_stars, reasons, require_seven_day, window_days, amount_cap_fen, excluded_categories, require_single_address, cities, refunds, pre_shipment_refund, exchange_pickup, service_hours, small_window, large_window, compensation_fen, pickup_grace, review_deadline, return_deadline, exposure_cap_fen, velocity_max, velocity_window, trust_window, penalties)
	// 4 window_dayz
}

// ExampleMarshal writes a preset as a complete file, the usual starting
// point for a custom policy; Parse reads it back into the same version.
func ExampleMarshal() {
	preset, _ := core.Preset(core.PresetTmall)
	b, _ := policyfile.Marshal(preset)
	back, err := policyfile.Parse(b, policyfile.FormatAuto)
	fmt.Println(err, back.Name, back.Version == preset.Version)
	// Output: <nil> tmall-fast-return true
}
