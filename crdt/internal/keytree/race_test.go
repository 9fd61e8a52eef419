//go:build race

package keytree

// raceEnabled reports a -race build, where the heap measurement is slow and
// not representative.
const raceEnabled = true
