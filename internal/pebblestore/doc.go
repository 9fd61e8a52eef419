// Package pebblestore opens the on-disk go-datastore of a scopemesh node: a
// Pebble database whose commits reach the operating system before they
// return, so that an acknowledged write survives a crash of the process,
// while the disk flush (fsync) that makes it survive a crash of the machine
// runs in the background, shared by every write of an interval.
//
// Pebble offers two modes: a synced commit waits for fsync (about a
// millisecond on virtualised disks, so a caller commits at most about a
// thousand times a second), and an unsynced commit leaves the record in a
// user-space buffer that a killed process loses. Here a synced commit waits
// only for the write to the write-ahead log file: the file's Sync is a no-op,
// and a background loop calls the real fsync every Options.SyncInterval.
package pebblestore
