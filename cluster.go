package scopemesh

import (
	"context"
	"fmt"

	"github.com/scopemesh/scopemesh/events"
	"github.com/scopemesh/scopemesh/query"
)

// QueryCluster runs f on the local replica and on every member of the
// cluster this node knows of — connected, or known through the others'
// member lists, and not gone (Peers) — and merges the answers as they
// arrive: each event once, in (HLC, ID) order, f.Limit of them, with the
// cursor of the next page in Result.Next. A Limit above
// query.MaxRemoteLimit is lowered to it: page with Result.Next for more.
// A member the node has no connection to is dialled, or asked through a
// member that has one. Members that are unreachable, slow past ctx's
// deadline (10s if it has none), answer badly or send more than their
// share of the query's byte budget are listed in Result.Peers with the
// reason, and Result.Complete is then false, as it is until the node has
// joined (Join); the answer holds what the others know, and what a member
// cut off sent before. Members that left, or that were forgotten, are
// not asked.
func (n *Node) QueryCluster(ctx context.Context, f query.Filter) (query.Result, error) {
	if err := f.Validate(); err != nil {
		return query.Result{}, err
	}
	f.Limit = min(f.Limit, query.MaxRemoteLimit)
	m := query.NewMerger(f)
	if err := query.Each(ctx, n.set, f, func(e events.Event) bool {
		m.Add(e)
		return true
	}); err != nil {
		return query.Result{}, fmt.Errorf("scopemesh: querying the local replica: %w", err)
	}
	var res query.Result
	res.Peers, res.Complete = n.net.QueryMembers(ctx, f, m)
	res.Events, res.Next = m.Result()
	return res, nil
}

// Trace returns every event of trace id the cluster holds, as a causal
// tree: from the local replica and every member that answers (see
// QueryCluster), a page of query.MaxRemoteLimit events at a time.
// Trace.Complete says whether every member answered every page.
func (n *Node) Trace(ctx context.Context, id events.TraceID) (query.Trace, error) {
	f := query.Filter{Correlation: id, Limit: query.MaxRemoteLimit}
	var all []events.Event
	complete := true
	var peers []query.PeerAnswer
	for {
		res, err := n.QueryCluster(ctx, f)
		if err != nil {
			return query.Trace{}, err
		}
		all = append(all, res.Events...)
		complete = complete && res.Complete
		if peers == nil {
			peers = res.Peers
		}
		if res.Next.IsZero() {
			break
		}
		f.After = res.Next
	}
	t := query.NewTrace(id, all)
	t.Complete, t.Peers = complete, peers
	t.Names = n.names()
	t.SetHorizon(n.set.Horizon().Time())
	return *t, nil
}

// names returns the names of this node and the members it knows, by ID.
func (n *Node) names() map[string]string {
	out := map[string]string{n.id: n.cfg.Name}
	for _, p := range n.Peers() {
		if p.Name != "" {
			out[p.ID] = p.Name
		}
	}
	return out
}
