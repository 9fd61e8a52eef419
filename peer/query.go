package peer

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"math"
	"slices"
	"sync"
	"time"

	"github.com/libp2p/go-libp2p/core/network"
	lpeer "github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/protocol"
	"golang.org/x/sync/semaphore"

	"github.com/scopemesh/scopemesh/events"
	"github.com/scopemesh/scopemesh/query"
)

// The query protocol: the asker sends one frameQuery holding an encoded
// query.Filter; the peer answers with frameEvents batches of matching
// events from its replica, in the filter's order, and a frameEnd. Either
// side may send a frameError instead. A frameRoute before the query, the
// ID of a member the peer has a connection to, asks the peer to pass the
// query on to that member and its answer back: one hop, to reach a
// member this node has no connection to.
// frameEvents, frameEnd and frameError have the numbers of the sync
// session's (rbsr); frameError ends sync and view sessions too.
const (
	frameEvents byte = 4 // an events batch
	frameEnd    byte = 6 // the end of an answer
	frameError  byte = 7 // a reason; the exchange ends
	frameQuery  byte = 8
	frameRoute  byte = 11
)

// Query service bounds. Answers are sent as the scan finds their events,
// so what a query holds does not grow with what it asks for; and what a
// query receives is bounded whatever its peers send.
const (
	queriesPerPeer      = 4                  // served at once for one asking peer
	queriesServed       = 32                 // served at once in all
	maxAnswerBytes      = 16 << 20           // one answer sends, counted by answerCharge
	answerMemory        = 16 << 20           // the batches all answers build and send at once
	batchMemory         = 2 * pushBatchBytes // one batch holds: its events, then their encoding
	queryBudget         = 64 << 20           // one query receives, counted by answerCharge and split evenly among the peers asked
	defaultQueryTimeout = 10 * time.Second   // when the caller's context has no deadline
)

// Query deadlines, so that a peer that neither asks nor reads loses its
// slot within seconds. Variables: tests shorten them.
var (
	queryRequestTimeout = 2 * time.Second // for the asker's query to arrive
	queryWriteTimeout   = 5 * time.Second // for the asker to take each frame of the answer
)

// ErrQueryBusy reports a peer that serves too many queries to take one more.
var ErrQueryBusy = errors.New("peer: too many queries in progress")

// ErrQueryLimit reports a query whose Limit is above query.MaxRemoteLimit,
// which peers refuse.
var ErrQueryLimit = errors.New("peer: query limit above what peers answer")

// ErrAnswerTooLarge reports a query answer cut off at a byte budget: the
// answering peer's, or the asker's share of its query's.
var ErrAnswerTooLarge = errors.New("peer: query answer too large")

// queryGate bounds the queries served at once, and the memory their
// answers hold.
type queryGate struct {
	mu     sync.Mutex
	total  int
	byPeer map[lpeer.ID]int
	memory *semaphore.Weighted // set by the first enter; answerMemory bytes
}

func (g *queryGate) enter(p lpeer.ID) bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.byPeer == nil {
		g.byPeer = make(map[lpeer.ID]int)
		g.memory = semaphore.NewWeighted(answerMemory)
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

// answerCharge is what a batch of an answer counts against the byte
// budgets: the larger of its size on the wire and its events' encoded
// size, which compression may make larger and which the asker holds once
// it decodes them. Both sides count the same.
func answerCharge(batch int, xs []events.Encoded) int {
	size := 0
	for _, x := range xs {
		size += len(x.Wire())
	}
	return max(batch, size)
}

// handleQuery answers a member's query from the local replica.
func (n *Host) handleQuery(raw network.Stream) {
	p, ok := n.accept(raw, n.trusted)
	if !ok {
		return
	}
	defer n.wg.Done()
	// Each frame of the answer must be taken within queryWriteTimeout.
	s := newStream(raw, SyncLimits{Idle: queryWriteTimeout})
	if !n.queries.enter(p) {
		endQuery(raw, s, ErrQueryBusy)
		return
	}
	defer n.queries.leave(p)
	ctx, cancel := context.WithTimeout(n.ctx, defaultQueryTimeout)
	defer cancel()
	stop := context.AfterFunc(ctx, func() { raw.Reset() })
	defer stop()

	start := time.Now()
	route, req, f, err := readQuery(s)
	switch {
	case err != nil:
	case route != "" && route != n.h.ID():
		err = n.passQuery(ctx, s, route, req)
	default:
		err = n.answer(ctx, s, f)
	}
	n.stats.queriesServed.ended(time.Since(start), err != nil)
	endQuery(raw, s, err)
}

// passQuery passes req, a query, on to member to, and its answer back
// over s, batch by batch: the asker checks them. It takes only members
// this node has a connection to, so that passing on costs no dial.
func (n *Host) passQuery(ctx context.Context, s *stream, to lpeer.ID, req []byte) error {
	if !n.members.isMember(to) || n.h.Network().Connectedness(to) != network.Connected {
		return fmt.Errorf("peer: no connection to member %s to pass the query on to", to)
	}
	raw, err := n.h.NewStream(ctx, to, n.protocols(func(nm names) protocol.ID { return nm.query })...)
	if err != nil {
		return fmt.Errorf("peer: passing the query on to %s: %w", to, err)
	}
	defer raw.Reset() // once the answer is passed on, nothing more is wanted
	stop := context.AfterFunc(ctx, func() { raw.Reset() })
	defer stop()
	next := newStream(raw, SyncLimits{Idle: queryWriteTimeout, Bytes: maxAnswerBytes + maxFrame})
	if err := next.send(frameQuery, req); err != nil {
		return err
	}
	for {
		typ, payload, err := next.recv(frameEvents, frameEnd)
		if err != nil || typ == frameEnd {
			return err
		}
		if err := s.send(frameEvents, payload); err != nil {
			return err
		}
	}
}

// readQuery reads the asker's query, and the member to pass it on to if
// the asker named one, which must arrive within queryRequestTimeout. It
// returns the query as encoded too.
func readQuery(s *stream) (route lpeer.ID, req []byte, f query.Filter, err error) {
	var typ byte
	err = s.within(queryRequestTimeout, func() (err error) {
		if typ, req, err = readFrame(s.r, query.MaxFilterBytes); err != nil || typ != frameRoute {
			return err
		}
		if route, err = lpeer.IDFromBytes(req); err != nil {
			return fmt.Errorf("%w: a route: %v", ErrFrame, err)
		}
		typ, req, err = readFrame(s.r, query.MaxFilterBytes)
		return err
	})
	if err != nil {
		return "", nil, query.Filter{}, err
	}
	if typ != frameQuery {
		return "", nil, query.Filter{}, fmt.Errorf("%w: type %d, want a query", ErrFrame, typ)
	}
	f, err = query.UnmarshalFilter(req)
	if err == nil && f.Limit > query.MaxRemoteLimit {
		err = fmt.Errorf("%w: Limit %d, at most %d: page with Filter.After", ErrQueryLimit, f.Limit, query.MaxRemoteLimit)
	}
	return route, req, f, err
}

// endQuery ends an answer with a frameEnd, or with a frameError saying
// why not, and closes the stream, within the write deadline.
func endQuery(raw network.Stream, s *stream, err error) {
	typ, payload := frameEnd, []byte(nil)
	if err != nil {
		typ, payload = frameError, []byte(err.Error())
	}
	if s.send(typ, payload) != nil {
		raw.Reset()
		return
	}
	s.within(queryWriteTimeout, raw.Close)
}

// answer sends the events of the local replica that match f.
func (n *Host) answer(ctx context.Context, s *stream, f query.Filter) error {
	a := &answerStream{n: n, s: s}
	defer a.release()
	var sendErr error
	err := query.Each(ctx, n.cfg.Set, f, func(e events.Event) bool {
		sendErr = a.add(ctx, e)
		return sendErr == nil
	})
	if err := cmp.Or(sendErr, err); err != nil {
		return err
	}
	return a.flush()
}

// answerStream sends an answer as the scan finds its events, in batches of
// about pushBatchBytes. Each batch takes batchMemory of the node's
// answerMemory from its first event until it is written, and the asker
// must take it within queryWriteTimeout. The answer stops at
// maxAnswerBytes.
type answerStream struct {
	n     *Host
	s     *stream
	batch []events.Encoded
	size  int  // encoded bytes of batch
	sent  int  // answerCharge of the batches sent
	held  bool // batchMemory is taken
}

func (a *answerStream) add(ctx context.Context, e events.Event) error {
	if !a.held {
		if err := a.n.queries.memory.Acquire(ctx, batchMemory); err != nil {
			return err
		}
		a.held = true
	}
	x, err := a.n.replica.limits.Encode(e)
	if err != nil {
		return err
	}
	a.batch = append(a.batch, x)
	a.size += len(x.Wire())
	if a.size >= pushBatchBytes || len(a.batch) >= a.n.maxBatchEvents() {
		return a.flush()
	}
	return nil
}

// flush sends the batch begun, if any.
func (a *answerStream) flush() error {
	if len(a.batch) == 0 {
		return nil
	}
	defer a.release()
	data, err := a.n.replica.encodeEncoded(a.s.channel(), a.batch)
	charge := answerCharge(len(data), a.batch)
	clear(a.batch) // the events are in data now
	a.batch, a.size = a.batch[:0], 0
	if err != nil {
		return fmt.Errorf("peer: encoding a batch: %w", err)
	}
	if a.sent += charge; a.sent > maxAnswerBytes {
		return fmt.Errorf("%w: over %d bytes: narrow the filter", ErrAnswerTooLarge, maxAnswerBytes)
	}
	return a.s.send(frameEvents, data)
}

func (a *answerStream) release() {
	if a.held {
		a.n.queries.memory.Release(batchMemory)
		a.held = false
	}
}

// QueryPeers sends f to each of peers, merges their answers into m as
// their events arrive, and returns how each peer answered, in the order of
// peers. A peer that does not answer in time, answers with garbage, with
// events the filter does not match or more than it asked for, or sends
// more than its share of the query's byte budget (64 MiB, split evenly
// among peers) is cut off and its answer has Err set; the batches it sent
// before were checked and stay merged. Peers refuse a Limit above
// query.MaxRemoteLimit. m must not be used elsewhere until QueryPeers
// returns.
func (n *Host) QueryPeers(ctx context.Context, f query.Filter, peers []lpeer.ID, m *query.Merger) []query.PeerAnswer {
	targets := make([]queryTarget, len(peers))
	for i, p := range peers {
		targets[i] = queryTarget{id: p, connected: true}
	}
	return n.queryTargets(ctx, f, targets, m)
}

// QueryMembers is QueryPeers for every member of the view that did not
// leave, every peer registered by Bootstrap, Connect or Join and, in an
// open cluster, every connected peer that speaks its protocol and is not
// admitted yet: it may have recorded events meanwhile. It
// reaches a member over a connection, opening one if there is none, or
// through a connected member whose record lists a connection to it.
// complete reports that every one answered in full, and that the node has
// joined (Join): until then it may not know every member.
func (n *Host) QueryMembers(ctx context.Context, f query.Filter, m *query.Merger) (answers []query.PeerAnswer, complete bool) {
	answers = n.queryTargets(ctx, f, n.members.queryTargets(n.keys == nil), m)
	complete = n.view.hasJoined()
	for _, a := range answers {
		complete = complete && a.Answered
	}
	return answers, complete
}

// reachTimeout bounds the dial a cluster query makes to a member it has
// no connection to.
const reachTimeout = 2 * time.Second

// queryTargets asks each of targets, as QueryPeers does.
func (n *Host) queryTargets(ctx context.Context, f query.Filter, targets []queryTarget, m *query.Merger) []query.PeerAnswer {
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, defaultQueryTimeout)
		defer cancel()
	}
	start := time.Now()
	req, err := query.MarshalFilter(f)
	answers := make([]query.PeerAnswer, len(targets))
	var mu sync.Mutex // guards m
	add := func(evs []events.Event) {
		mu.Lock()
		defer mu.Unlock()
		for _, e := range evs {
			m.Add(e)
		}
	}
	share := queryBudget / max(len(targets), 1)
	var wg sync.WaitGroup
	for i, t := range targets {
		answers[i].ID = t.id.String()
		if err != nil {
			answers[i].Err = err.Error()
			continue
		}
		wg.Go(func() {
			start := time.Now()
			count, err := n.reach(ctx, t, req, f, share, add)
			answers[i].Latency, answers[i].Count = time.Since(start), count
			if err != nil {
				answers[i].Err = err.Error()
				return
			}
			answers[i].Answered = true
		})
	}
	wg.Wait()
	n.stats.queriesAsked.ended(time.Since(start), slices.ContainsFunc(answers, func(a query.PeerAnswer) bool { return !a.Answered }))
	return answers
}

// reach asks t, over a connection, one it opens, or a neighbour of t's.
func (n *Host) reach(ctx context.Context, t queryTarget, req []byte, f query.Filter, share int, add func([]events.Event)) (int, error) {
	if !t.connected && n.h.Network().Connectedness(t.id) != network.Connected {
		dialCtx, cancel := context.WithTimeout(ctx, reachTimeout)
		err := n.dial(dialCtx, lpeer.AddrInfo{ID: t.id})
		cancel()
		if err != nil {
			for _, via := range t.neighbours[:min(len(t.neighbours), 2)] {
				count, viaErr := n.askPeer(ctx, via, t.id, req, f, share, add)
				if viaErr == nil || count > 0 {
					return count, viaErr
				}
				err = errors.Join(err, fmt.Errorf("through %s: %w", via, viaErr))
			}
			return 0, fmt.Errorf("unreachable: %w", err)
		}
	}
	return n.askPeer(ctx, t.id, "", req, f, share, add)
}

// askPeer runs one query on one peer — or, if route is set, on the member
// route, through p — and hands the events of each batch of the answer to
// add, once the whole batch is checked. It returns how many events it
// handed over.
func (n *Host) askPeer(ctx context.Context, p, route lpeer.ID, req []byte, f query.Filter, share int, add func([]events.Event)) (count int, err error) {
	raw, err := n.h.NewStream(network.WithAllowLimitedConn(ctx, "scopemesh-query"), p, n.protocols(func(nm names) protocol.ID { return nm.query })...)
	if err != nil {
		return 0, fmt.Errorf("unreachable: %w", err)
	}
	defer func() {
		if err != nil {
			raw.Reset() // a peer cut off stops sending at once
		} else {
			raw.Close()
		}
	}()
	stop := context.AfterFunc(ctx, func() { raw.Reset() })
	defer stop()
	// share bounds what the answer may bring, not the stream's byte count.
	s := newStream(raw, SyncLimits{Bytes: math.MaxInt64})
	if route != "" {
		if err := s.send(frameRoute, []byte(route)); err != nil {
			return 0, err
		}
	}
	if err := s.send(frameQuery, req); err != nil {
		return 0, err
	}
	limit := f.Limit
	if limit == 0 {
		limit = query.DefaultLimit
	}
	var xs []events.Encoded
	var evs []events.Event
	received := 0
	for {
		typ, payload, err := s.recv(frameEvents, frameEnd)
		if err != nil {
			if ctx.Err() != nil {
				return count, fmt.Errorf("no answer in time: %w", ctx.Err())
			}
			return count, err
		}
		if typ == frameEnd {
			return count, nil
		}
		if xs, err = n.replica.decode(xs[:0], s.channel(), payload, nil); err != nil {
			return count, fmt.Errorf("peer: a query answer: %w", err)
		}
		if received += answerCharge(len(payload), xs); received > share {
			return count, fmt.Errorf("%w: cut off over %d bytes, its share of the query's %d", ErrAnswerTooLarge, share, queryBudget)
		}
		if count+len(xs) > limit {
			return count, fmt.Errorf("%w: more than the %d events asked for", ErrFrame, limit)
		}
		evs = evs[:0]
		for _, x := range xs {
			e := x.Event()
			if !f.Match(e) {
				return count, fmt.Errorf("%w: a query answer holds an event the filter does not match", ErrFrame)
			}
			evs = append(evs, e)
		}
		add(evs)
		count += len(evs)
	}
}
