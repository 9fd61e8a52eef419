// Package rbsr is range-based set reconciliation (the Negentropy scheme)
// between two sets of events: the Reconciler, which finds what each side
// lacks, its wire format and fingerprints, and the sync session built on
// it, which also moves what was found. Everything here is a pure state
// machine: messages in, messages out, no sockets, no goroutines, no clocks.
// Package peer carries the frames over a stream and schedules sessions.
//
// rbsr reads a set through Set: keys by rank and the sums of ranges of
// their IDs (*crdt.Set satisfies it). crdt never imports rbsr.
//
// # Usage
//
// The reconciler alone, the initiator's loop:
//
//	rec, err := rbsr.NewReconciler(set, rbsr.Options{})
//	msg, err := rec.Initiate()
//	for !done {
//		reply := exchange(msg) // the peer's rec.RespondListing(msg)
//		msg, done, err = rec.Reconcile(reply)
//	}
//	rec.Have() // IDs only this side holds
//	rec.Need() // the peer's only: numbers among the IDs its answers listed
//
// A whole sync session, as the initiator's driver runs it (package peer
// drives both roles; the responder's driver is the same loop around
// NewResponder and Step, with Merged after each merge):
//
//	s := rbsr.NewInitiator(set, rbsr.Config{})
//	rd, err := s.Start()
//	for err == nil {
//		send(rd.Frames...)
//		if rd.Done {
//			break
//		}
//		if rd.Send != nil { // the events the peer lacks
//			for each encoded batch { send(s.Batch(batch)); s.Step(recv()) }
//			rd, err = s.Sent()
//			continue
//		}
//		if rd.Merge != nil { // a batch the peer sent
//			decode, verify and merge it
//		}
//		rd, err = s.Step(recv())
//	}
//
// Events batches are opaque here: encoding, sealing and verifying them,
// and every limit of time, bytes and events, are the driver's.

// # Invariants
//
//   - Have and Need are exact when both sides are honest: Have holds the
//     IDs only the initiator holds, Need numbers those only the responder
//     holds, each once.
//   - A message or frame that is refused changes nothing: neither the set
//     nor the reconciler nor the session moves, and the session's error
//     says why.
//   - Both sides count a pass's listed IDs alike (Config.MaxListed): the
//     initiator ends a pass once its answers listed that many, and the
//     responder refuses to go on past it, so what a responder keeps for a
//     pass's Want is bounded.
//   - Every message and frame is checked against its limits before
//     anything is allocated for it.
//
// # Hazards
//
//   - Fingerprints sum IDs mod 2^256. Sums are cheap to update but not
//     collision resistant against a party who chooses the summands: with
//     Wagner's generalized birthday attack, a peer able to pick many IDs could
//     build two different ranges with equal fingerprints, and reconciliation
//     would then miss a difference. IDs are SHA-256 hashes of event content,
//     so crafting them means grinding event content, and only cluster
//     members can put events in the set; what this protects against is
//     accidental collisions (2^-128), not a malicious member.
//   - Reconciliation lists the IDs of small ranges by prefix, 4 to 7
//     bytes of each, and the responder matches its IDs against them. Two
//     IDs sharing a prefix would hide each other, so the responder's answer
//     carries the fingerprint of its events in those ranges that matched a
//     listed prefix, and the initiator checks that its listed IDs the
//     responder matched sum to it; on a mismatch it lists those ranges
//     again in whole IDs. Have and Need are therefore as exact as
//     the fingerprints (above): a member grinding IDs that share prefixes
//     costs a round trip, not a missed event. A responder that lies can
//     make Have and Need wrong, but no more: Need names events to fetch,
//     which are checked against their IDs on arrival, and Have events to
//     send. MaxRounds bounds how long a responder can keep a session going.
package rbsr
