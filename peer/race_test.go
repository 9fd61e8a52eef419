//go:build race

package peer

// raceEnabled lets the slowest tests shrink under the race detector.
const raceEnabled = true
