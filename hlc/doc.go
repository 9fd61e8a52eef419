// Package hlc implements the hybrid logical clock that orders scopemesh
// events across nodes (Kulkarni et al., "Logical Physical Clocks", 2014).
//
// A Timestamp pairs a wall time in unix nanoseconds with a logical counter.
// Timestamps compare by wall time, then by counter, and their 12-byte binary
// encoding sorts the same way, so encoded timestamps can lead storage keys.
//
// # Usage
//
//	clock, err := hlc.NewClock(hlc.Config{})
//	ts := clock.Now()                  // stamp a local event
//	err = clock.Update(remoteTimestamp) // on receipt of a remote one
//
// # Invariants
//
//   - Now is strictly increasing across all goroutines.
//   - Now is never behind the physical clock, unless the physical clock went
//     backwards; then the clock holds its wall part and counts logically
//     until physical time catches up.
//   - The logical counter never wraps: past 2^32-1 it carries into the wall
//     part, which then runs a nanosecond ahead of physical time.
//   - After Update(r) succeeds, every later Now is after r.
//   - Update rejects, with ErrClockOffset and without changing the clock, a
//     remote wall time more than MaxOffset ahead of physical time. Exactly
//     MaxOffset ahead is accepted.
//   - With Config.Persist, the clock never issues a wall time beyond a bound
//     that Persist has stored; a clock restarted with Config.LastUpper issues
//     only timestamps after every one issued before the restart.
//
// # Hazards
//
//   - Without Persist, a restarted clock whose physical clock was set back
//     can issue timestamps it already issued before the restart.
//   - MaxOffset bounds what one remote node can do to the clock: a node whose
//     physical clock runs ahead by less than MaxOffset still drags every
//     clock it talks to forward by that much. Keep physical clocks in sync
//     (NTP) and MaxOffset small.
//   - If Persist fails, the clock holds at the last stored bound and Err
//     reports the failure; it panics only after issuing 2^32 timestamps at
//     that bound while Persist keeps failing.
package hlc
