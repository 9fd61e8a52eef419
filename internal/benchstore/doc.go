// Package benchstore builds large Pebble stores of events for benchmarks
// once, and keeps them between runs: a million events take a minute to
// write, and opening or querying them is what the benchmarks measure.
package benchstore
