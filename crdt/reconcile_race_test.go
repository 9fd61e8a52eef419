//go:build race

package crdt

// raceEnabled lets the slowest tests shrink under the race detector.
const raceEnabled = true
