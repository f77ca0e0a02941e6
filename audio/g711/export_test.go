package g711

// The formulas the decode tables are built from, for the benchmarks' baseline.
var (
	ExpandUlaw = expandUlaw
	ExpandAlaw = expandAlaw
)
