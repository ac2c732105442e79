// Package scenarios holds berth's benchmark scenarios; each file registers
// the scenarios of one feature with bench.Register from init, measuring the
// feature beside a baseline taken in the same run.
package scenarios
