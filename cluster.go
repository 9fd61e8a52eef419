package scopemesh

import (
	"context"
	"fmt"

	"github.com/scopemesh/scopemesh/events"
	"github.com/scopemesh/scopemesh/query"
)

// QueryCluster runs f on the local replica and on every cluster member this
// node knows of, and merges the answers: each event once, in (HLC, ID)
// order, f.Limit of them, with the cursor of the next page in Result.Next.
// Members that are unreachable, slow past ctx's deadline (10s if it has
// none) or answer badly are listed in Result.Peers with the reason, and
// Result.Complete is then false; the answer holds what the others know.
func (n *Node) QueryCluster(ctx context.Context, f query.Filter) (query.Result, error) {
	if err := f.Validate(); err != nil {
		return query.Result{}, err
	}
	local, err := query.Local(ctx, n.set, f)
	if err != nil {
		return query.Result{}, fmt.Errorf("scopemesh: querying the local replica: %w", err)
	}
	connected, unreachable := n.net.Members()
	peers, found := n.net.QueryPeers(ctx, f, connected)
	res := query.Result{Peers: peers, Complete: len(unreachable) == 0}
	for _, p := range unreachable {
		res.Peers = append(res.Peers, query.PeerAnswer{ID: p.String(), Err: "unreachable"})
	}
	for _, a := range peers {
		res.Complete = res.Complete && a.Answered
	}
	res.Events, res.Next = query.Merge(f, append(found, local)...)
	return res, nil
}

// Trace returns every event of trace id the cluster holds, as a causal
// tree: from the local replica and every member that answers (see
// QueryCluster). Trace.Complete says whether every member answered.
func (n *Node) Trace(ctx context.Context, id events.TraceID) (query.Trace, error) {
	f := query.Filter{Correlation: id, Limit: query.MaxLimit}
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
	return *t, nil
}
