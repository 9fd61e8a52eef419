package peer

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/libp2p/go-libp2p/core/network"
	lpeer "github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/protocol"

	"github.com/scopemesh/scopemesh/events"
	"github.com/scopemesh/scopemesh/query"
)

// The query protocol: the asker sends one frameQuery holding an encoded
// query.Filter; the peer answers with frameEvents batches of matching
// events from its replica, in the filter's order, and a frameEnd. Either
// side may send a frameError instead.
const frameQuery byte = 8

// Query service bounds.
const (
	queriesPerPeer      = 4                // served at once for one asking peer
	queriesServed       = 32               // served at once in all
	maxAnswerBytes      = 64 << 20         // read from one peer for one query
	defaultQueryTimeout = 10 * time.Second // when the caller's context has no deadline
)

// ErrQueryBusy reports a peer that serves too many queries to take one more.
var ErrQueryBusy = errors.New("peer: too many queries in progress")

// queryGate bounds the queries served at once.
type queryGate struct {
	mu     sync.Mutex
	total  int
	byPeer map[lpeer.ID]int
}

func (g *queryGate) enter(p lpeer.ID) bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.byPeer == nil {
		g.byPeer = make(map[lpeer.ID]int)
	}
	if g.total >= queriesServed || g.byPeer[p] >= queriesPerPeer {
		return false
	}
	g.total++
	g.byPeer[p]++
	return true
}

func (g *queryGate) leave(p lpeer.ID) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.total--
	if g.byPeer[p]--; g.byPeer[p] == 0 {
		delete(g.byPeer, p)
	}
}

// handleQuery answers a peer's query from the local replica.
func (n *Host) handleQuery(raw network.Stream) {
	p, ok := n.accept(raw)
	if !ok {
		return
	}
	defer n.wg.Done()
	defer raw.Close()
	s := newStream(raw, n.syncLimits)
	if !n.queries.enter(p) {
		s.send(frameError, []byte(ErrQueryBusy.Error()))
		return
	}
	defer n.queries.leave(p)
	ctx, cancel := context.WithTimeout(n.ctx, defaultQueryTimeout)
	defer cancel()
	stop := context.AfterFunc(ctx, func() { raw.Reset() })
	defer stop()

	_, payload, err := s.recv(frameQuery)
	var f query.Filter
	if err == nil {
		f, err = query.UnmarshalFilter(payload)
	}
	var found []events.Event
	if err == nil {
		found, err = query.Local(ctx, n.cfg.Set, f)
	}
	if err != nil {
		s.send(frameError, []byte(err.Error()))
		return
	}
	if err := n.sendBatches(s.channel(), found, func(batch []byte, _ int) error { return s.send(frameEvents, batch) }); err == nil {
		s.send(frameEnd, nil)
	}
}

// QueryPeers sends f to each of peers and returns their answers in the
// same order. A peer that does not answer in time, or answers with garbage
// or more than it should, has an answer with Err set and no events.
func (n *Host) QueryPeers(ctx context.Context, f query.Filter, peers []lpeer.ID) ([]query.PeerAnswer, [][]events.Event) {
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, defaultQueryTimeout)
		defer cancel()
	}
	req, err := query.MarshalFilter(f)
	answers := make([]query.PeerAnswer, len(peers))
	found := make([][]events.Event, len(peers))
	var wg sync.WaitGroup
	for i, p := range peers {
		answers[i].ID = p.String()
		if err != nil {
			answers[i].Err = err.Error()
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			start := time.Now()
			evs, err := n.askPeer(ctx, p, req, f)
			answers[i].Latency = time.Since(start)
			if err != nil {
				answers[i].Err = err.Error()
				return
			}
			answers[i].Answered, answers[i].Count, found[i] = true, len(evs), evs
		}()
	}
	wg.Wait()
	return answers, found
}

// askPeer runs one query on one peer.
func (n *Host) askPeer(ctx context.Context, p lpeer.ID, req []byte, f query.Filter) ([]events.Event, error) {
	raw, err := n.h.NewStream(network.WithAllowLimitedConn(ctx, "scopemesh-query"), p, n.protocols(func(nm names) protocol.ID { return nm.query })...)
	if err != nil {
		return nil, fmt.Errorf("unreachable: %w", err)
	}
	defer raw.Close()
	stop := context.AfterFunc(ctx, func() { raw.Reset() })
	defer stop()
	s := newStream(raw, SyncLimits{Bytes: maxAnswerBytes})
	if err := s.send(frameQuery, req); err != nil {
		return nil, err
	}
	limit := f.Limit
	if limit == 0 {
		limit = query.DefaultLimit
	}
	var out []events.Event
	for {
		typ, payload, err := s.recv(frameEvents, frameEnd)
		if err != nil {
			if ctx.Err() != nil {
				return nil, fmt.Errorf("no answer in time: %w", ctx.Err())
			}
			return nil, err
		}
		if typ == frameEnd {
			return out, nil
		}
		xs, err := n.replica.decode(nil, s.channel(), payload, nil)
		if err != nil {
			return nil, fmt.Errorf("peer: a query answer: %w", err)
		}
		for _, x := range xs {
			e := x.Event()
			if !f.Match(e) {
				return nil, fmt.Errorf("%w: a query answer holds an event the filter does not match", ErrFrame)
			}
			out = append(out, e)
		}
		if len(out) > limit {
			return nil, fmt.Errorf("%w: more than the %d events asked for", ErrFrame, limit)
		}
	}
}
