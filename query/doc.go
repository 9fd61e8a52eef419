// Package query selects events from a scopemesh replica.
//
// A Filter names what to select — a trace, origin nodes, kinds, attributes,
// a half-open time range — and how many, in which order, from which cursor.
// Local plans the cheapest way through the replica's indexes: a trace's own
// index, the origin-node or kind index, or the time-ordered index over the
// filter's range, whichever reads the fewest events, and stops at the limit.
// Each yields the same events one at a time, reading the replica as it goes,
// for a caller that sends them on rather than keep them.
//
// A Merger merges the answers of several replicas to one filter as their
// events arrive, keeping only the first Limit of them in order, however
// much the answers hold.
//
// # Usage
//
//	evs, err := query.Local(ctx, set, query.Filter{Correlation: trace})
//	next := query.Filter{Kinds: []string{"http.request"}, Limit: 100}
//	page, err := query.Local(ctx, set, next)
//	next.After = crdt.KeyOf(page[len(page)-1]) // the following page
//
//	m := query.NewMerger(next)
//	err = query.Each(ctx, set, next, func(e events.Event) bool { m.Add(e); return true })
//	// ... m.Add the events of other replicas' answers as they arrive
//	evs, cursor := m.Result()
//
// Results are in (HLC, ID) order, the same on every replica; pages stay
// stable while events are added, because a cursor is a position in that
// order.
package query
