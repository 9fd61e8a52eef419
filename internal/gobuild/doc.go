// Package gobuild builds a command of this module for a test that runs it
// as a process of its own (to kill it, signal it, or run it in a network
// namespace).
package gobuild
