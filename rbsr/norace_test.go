//go:build !race

package rbsr

const raceEnabled = false
