// Package poll waits, in tests, for a condition to hold: it checks the
// condition every few milliseconds until it holds or a deadline passes, so
// tests never sleep for a guessed time.
package poll
