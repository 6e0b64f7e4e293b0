package pipeline

import "strconv"

// partitionLabel is the label set of a per-partition metric.
func partitionLabel(p int) string { return `{partition="` + strconv.Itoa(p) + `"}` }
