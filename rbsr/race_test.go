//go:build race

package rbsr

// raceEnabled lets the slowest tests shrink under the race detector.
const raceEnabled = true
