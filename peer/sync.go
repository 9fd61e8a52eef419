package peer

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"sync"
	"time"

	"github.com/libp2p/go-libp2p/core/network"
	lpeer "github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/protocol"

	"github.com/scopemesh/scopemesh/crdt"
	"github.com/scopemesh/scopemesh/events"
	"github.com/scopemesh/scopemesh/rbsr"
)

// Sync sessions. The session itself — passes, Want numbering, the listing
// bound, push and acknowledgement — is rbsr's state machine; this file
// carries its frames over a stream, reads and merges the events it names,
// and schedules sessions: slots, the sync loop, retries, idle limits.

// SyncLimits bound one sync session, on both sides. A peer that exceeds
// them is cut off and the session's result says why.
type SyncLimits struct {
	Rounds   int           // reconciliation rounds; 0: 4096
	Bytes    int64         // bytes received; 0: 1 GiB
	Events   int           // events received; 0: 10,000,000
	Duration time.Duration // whole session; 0: 10 minutes
	// Idle bounds the wait for the peer's next frame, and for it to take
	// ours; 0: 10 seconds. A peer that stalls loses the session, not the
	// node's other sessions.
	Idle time.Duration
}

func (l SyncLimits) withDefaults() SyncLimits {
	if l.Rounds == 0 {
		l.Rounds = 4096
	}
	if l.Bytes == 0 {
		l.Bytes = 1 << 30
	}
	if l.Events == 0 {
		l.Events = 10_000_000
	}
	if l.Duration == 0 {
		l.Duration = 10 * time.Minute
	}
	if l.Idle == 0 {
		l.Idle = 10 * time.Second
	}
	return l
}

// Sync sizes.
const (
	wantChunk      = 4096      // events a Want's answer reads from the set at a time
	pushBatchBytes = 512 << 10 // a pushed or answered events batch, roughly
	maxFrame       = 2 << 20   // the largest frame either side reads
)

// ErrSyncLimit reports a session cut off because the peer exceeded a limit.
var ErrSyncLimit = errors.New("peer: sync session limit exceeded")

// ErrStalled reports a session or query whose peer sent nothing, or took
// nothing, for longer than it may: SyncLimits.Idle in a sync session.
var ErrStalled = errors.New("peer: the peer stalled")

// ErrBusy reports that the peer was running another sync session.
var ErrBusy = errors.New("peer: busy with another sync session")

// SyncResult reports one sync session with one peer, as its initiator saw it.
type SyncResult struct {
	Sent          int           // events pushed to the peer
	Received      int           // events from the peer that were new here
	Held          int           // events from the peer held back: their clock was too far ahead
	Rounds        int           // reconciliation rounds
	BytesSent     int64         // bytes written to the stream
	BytesReceived int64         // bytes read from it
	Duration      time.Duration // from opening the stream to the end
	InSync        bool          // a final reconciliation found the sets equal
	Err           error         // why the session failed, if it did
}

// Session slots. A node runs at most maxSessions sync sessions at once,
// and one at a time with any peer, whichever side started it; sessions
// peers start may take all slots but one, so that no peer, and no crowd
// of peers, can keep the node from starting sessions of its own.
//
// Sessions in a row move less than sessions side by side: after a
// partition heals, the first brings in what one peer's side recorded, and
// the next, with another peer of that side, finds it already here instead
// of moving it again. So a session waits for those running to end, or is
// refused for a moment (start), but for at most a second
// (SyncLimits.Idle/3 if less): a peer that stalls delays the others by
// that much, and keeps none of them waiting longer.
const (
	maxSessions = 4
	maxInbound  = maxSessions - 1
)

// busyRetries bounds how often a session refused as busy is tried again
// at once: after that, the periodic sync tries later.
const busyRetries = 8

// ownRefuses is how long one of this node's own sessions has inbound ones
// refused (start): long enough for two nodes that started at once to sort
// it out, short enough that peers' retries outlast it when the own session
// hangs.
const ownRefuses = 300 * time.Millisecond

// sessions allots the session slots. Its zero value is usable.
type sessions struct {
	mu      sync.Mutex
	peers   map[lpeer.ID]bool      // peers with a session running
	own     map[lpeer.ID]time.Time // of them, those this node started, and when
	inbound int                    // sessions peers started that run
	ended   chan struct{}          // closed, and replaced, when a session ends
}

// start claims a slot for a session with p, inbound if p started it. An
// outbound session waits, at most share, for the sessions running to end,
// and then, until ctx ends, for a free slot and for p's running session to
// end. An inbound one is refused with ErrBusy, for its initiator to try
// again in a moment, if no slot is free or one of this node's own sessions
// started within ownRefuses; otherwise it waits, at most share, for the other inbound ones,
// which are all under way. Had it waited for this node's own sessions,
// which wait for their peers' in turn, nodes syncing with each other all
// at once would each have waited the whole of share.
func (s *sessions) start(ctx context.Context, p lpeer.ID, inbound bool, share time.Duration) (end func(), err error) {
	alone := time.NewTimer(share)
	defer alone.Stop()
	shared := false
	for {
		end, busy, ended := s.tryStart(p, inbound, shared)
		switch {
		case end != nil:
			return end, nil
		case busy && inbound:
			return nil, ErrBusy
		}
		select {
		case <-ended:
		case <-alone.C:
			shared = true
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
}

// tryStart claims a slot for a session with p if one is free and, unless
// shared, no other session it waits for runs (start). busy reports that
// no slot for it is free (or p has one), or, for an inbound session, that
// one of this node's own started lately; ended closes when a session ends.
func (s *sessions) tryStart(p lpeer.ID, inbound, shared bool) (end func(), busy bool, ended <-chan struct{}) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.ended == nil {
		s.ended = make(chan struct{})
	}
	now := time.Now()
	recent := false
	for _, started := range s.own {
		recent = recent || now.Sub(started) < ownRefuses
	}
	if s.peers[p] || len(s.peers) >= maxSessions || inbound && (s.inbound >= maxInbound || recent) {
		return nil, true, s.ended
	}
	if !shared && (s.inbound > 0 || !inbound && len(s.own) > 0) {
		return nil, false, s.ended
	}
	if s.peers == nil {
		s.peers, s.own = make(map[lpeer.ID]bool), make(map[lpeer.ID]time.Time)
	}
	s.peers[p] = true
	if inbound {
		s.inbound++
	} else {
		s.own[p] = now
	}
	return func() {
		s.mu.Lock()
		defer s.mu.Unlock()
		delete(s.peers, p)
		delete(s.own, p)
		if inbound {
			s.inbound--
		}
		close(s.ended)
		s.ended = make(chan struct{})
	}, false, nil
}

// shareAfter is how long a session waits for the others to end.
func (l SyncLimits) shareAfter() time.Duration { return min(time.Second, l.Idle/3) }

// syncPeer runs a session with p, first waiting for a slot. When both
// sides start at once, each refuses the other's stream; they retry after
// a random pause until one gets through, or busyRetries times.
func (n *Host) syncPeer(ctx context.Context, p lpeer.ID) SyncResult {
	if !n.member(ctx, p) {
		return SyncResult{Err: fmt.Errorf("%w: %s", ErrNotMember, p)}
	}
	for busy := 0; ; busy++ {
		end, err := n.sessions.start(ctx, p, false, n.syncLimits.shareAfter())
		if err != nil {
			return SyncResult{Err: err}
		}
		res := n.initiate(ctx, p)
		end()
		if !errors.Is(res.Err, ErrBusy) || busy == busyRetries {
			n.stats.syncInitiated.ended(res)
			n.admitted(n.members.synced(p, res))
			return res
		}
		if !sleep(ctx, time.Duration(20+rand.IntN(200))*time.Millisecond) {
			return SyncResult{Err: ctx.Err()}
		}
	}
}

// initiate runs one session as initiator.
func (n *Host) initiate(ctx context.Context, p lpeer.ID) (res SyncResult) {
	start := time.Now()
	lim := n.syncLimits
	ctx, cancel := context.WithTimeout(ctx, lim.Duration)
	defer cancel()
	raw, err := n.h.NewStream(network.WithAllowLimitedConn(ctx, "scopemesh-sync"), p, n.protocols(func(nm names) protocol.ID { return nm.sync })...)
	if err != nil {
		return SyncResult{Err: fmt.Errorf("peer: opening a sync stream: %w", err), Duration: time.Since(start)}
	}
	s := newStream(raw, lim)
	defer s.within(lim.Idle, raw.Close)
	stop := context.AfterFunc(ctx, func() { raw.Reset() })
	defer stop()
	defer func() {
		res.BytesSent, res.BytesReceived, res.Duration = s.count.written, s.count.read, time.Since(start)
		if res.Err != nil && ctx.Err() != nil {
			res.Err = fmt.Errorf("%w (%v)", res.Err, context.Cause(ctx))
		}
	}()

	sess := rbsr.NewInitiator(n.cfg.Set, rbsr.Config{MaxRounds: lim.Rounds})
	defer func() { res.Rounds, res.InSync = sess.Rounds(), sess.InSync() }()
	rd, err := sess.Start()
	sent, answered := time.Now(), false
	for err == nil {
		if err = s.sendFrames(rd.Frames); err != nil || rd.Done {
			break
		}
		if rd.Send != nil {
			if err = n.push(ctx, s, sess, &res, rd.Send); err == nil {
				rd, err = sess.Sent()
			}
			continue
		}
		if rd.Merge != nil {
			var added, held int
			added, held, err = n.mergeBatch(ctx, s, rd.Merge)
			res.Received += added
			res.Held += held
			if err != nil {
				break
			}
		}
		var f rbsr.Frame
		if f, err = s.nextFrame(); err != nil {
			break
		}
		if !answered {
			n.h.Peerstore().RecordLatency(p, time.Since(sent))
			answered = true
		}
		rd, err = sess.Step(f)
	}
	res.Err = sessionError(err)
	return res
}

// push sends the events the responder lacks, each batch acknowledged
// before the next.
func (n *Host) push(ctx context.Context, s *stream, sess *rbsr.Initiator, res *SyncResult, have []events.ID) error {
	return n.sendEvents(ctx, s.channel(), have, func(batch []byte, count int) error {
		f, err := sess.Batch(batch)
		if err != nil {
			return err
		}
		if err := s.sendFrames([]rbsr.Frame{f}); err != nil {
			return err
		}
		ack, err := s.nextFrame()
		if err != nil {
			return err
		}
		if _, err := sess.Step(ack); err != nil {
			return err
		}
		res.Sent += count
		return nil
	})
}

// sendFrames writes a session's frames.
func (s *stream) sendFrames(fs []rbsr.Frame) error {
	for _, f := range fs {
		if err := s.send(byte(f.Type), f.Payload); err != nil {
			return err
		}
	}
	return nil
}

// nextFrame reads a session's next frame; the session checks its type.
func (s *stream) nextFrame() (rbsr.Frame, error) {
	typ, payload, err := s.next(maxFrame)
	return rbsr.Frame{Type: rbsr.FrameType(typ), Payload: payload}, err
}

// sessionError adds this package's sentinel to a session's error, so that
// a bad frame matches ErrFrame and a limit ErrSyncLimit, whichever side
// found it.
func sessionError(err error) error {
	switch {
	case errors.Is(err, rbsr.ErrFrame):
		return fmt.Errorf("%w: %w", ErrFrame, err)
	case errors.Is(err, rbsr.ErrLimit):
		return fmt.Errorf("%w: %w", ErrSyncLimit, err)
	}
	return err
}

// sendEvents reads the events ids names from the set and hands them to
// send in batches encoded for channel.
func (n *Host) sendEvents(ctx context.Context, channel string, ids []events.ID, send func(batch []byte, count int) error) error {
	evs := make([]events.Event, 0, len(ids))
	for _, id := range ids {
		e, err := n.cfg.Set.Get(ctx, id)
		if errors.Is(err, crdt.ErrNotFound) {
			continue // asked for by a peer, but not here
		}
		if err != nil {
			return err
		}
		evs = append(evs, e)
	}
	// A trace's events travel together: they compress better side by side
	// than in key order, where traces interleave.
	slices.SortStableFunc(evs, func(a, b events.Event) int { return bytes.Compare(a.Correlation[:], b.Correlation[:]) })
	return n.sendBatches(channel, evs, send)
}

// sendBatches encodes evs for channel in batches of about pushBatchBytes and
// hands each to send.
func (n *Host) sendBatches(channel string, evs []events.Event, send func(batch []byte, count int) error) error {
	for len(evs) > 0 {
		count, size := 0, 0
		for count < len(evs) && count < n.maxBatchEvents() && size < pushBatchBytes {
			size += approxSize(evs[count])
			count++
		}
		data, err := n.replica.encode(channel, evs[:count])
		if err != nil {
			return fmt.Errorf("peer: encoding a batch: %w", err)
		}
		if err := send(data, count); err != nil {
			return err
		}
		evs = evs[count:]
	}
	return nil
}

func (n *Host) maxBatchEvents() int {
	if n.cfg.Limits.MaxBatchEvents > 0 {
		return n.cfg.Limits.MaxBatchEvents
	}
	return events.DefaultLimits.MaxBatchEvents
}

// mergeBatch decodes, verifies and merges a batch a peer sent, counting its
// events against the session's limit.
func (n *Host) mergeBatch(ctx context.Context, s *stream, payload []byte) (added, held int, err error) {
	evs, err := n.replica.decode(nil, s.channel(), payload, nil)
	if err != nil {
		return 0, 0, fmt.Errorf("peer: a synced batch: %w", err)
	}
	if s.lim.Events -= len(evs); s.lim.Events < 0 {
		return 0, 0, fmt.Errorf("%w: too many events", ErrSyncLimit)
	}
	return n.replica.merge(ctx, s.s.Conn().RemotePeer(), evs)
}

// handleSync serves a session a peer started.
func (n *Host) handleSync(raw network.Stream) {
	p, ok := n.accept(raw, n.member)
	if !ok {
		return
	}
	defer n.wg.Done()
	lim := n.syncLimits
	s := newStream(raw, lim)
	// A peer that takes nothing more would hold Close up (mocknet's waits
	// for it to read): it gets the idle limit to, like every frame.
	defer s.within(lim.Idle, raw.Close)
	ctx, cancel := context.WithTimeout(n.ctx, lim.Duration)
	defer cancel()
	end, err := n.sessions.start(ctx, p, true, lim.shareAfter())
	if err != nil {
		s.send(frameError, []byte(ErrBusy.Error()))
		return
	}
	defer end()
	stop := context.AfterFunc(ctx, func() { raw.Reset() })
	defer stop()

	res := SyncResult{}
	start := time.Now()
	err = n.serve(ctx, s, &res)
	res.BytesSent, res.BytesReceived, res.Duration = s.count.written, s.count.read, time.Since(start)
	if err != nil {
		res.Err = err
		s.send(frameError, []byte(err.Error()))
		n.log.Debug("sync session from a peer failed", "peer", p, "err", err)
	}
	n.stats.syncServed.ended(res)
	n.admitted(n.members.synced(p, res))
}

// serve answers an initiator's frames until it ends the session.
func (n *Host) serve(ctx context.Context, s *stream, res *SyncResult) error {
	sess, err := rbsr.NewResponder(n.cfg.Set, rbsr.Config{MaxRounds: s.lim.Rounds})
	if err != nil {
		return err
	}
	defer func() { res.Rounds, res.InSync = sess.Rounds(), sess.InSync() }()
	for {
		f, err := s.nextFrame()
		if err != nil {
			return err
		}
		rd, err := sess.Step(f)
		switch {
		case err != nil:
		case rd.Send != nil:
			ids := rd.Send
			for err == nil && len(ids) > 0 {
				chunk := ids[:min(len(ids), wantChunk)]
				ids = ids[len(chunk):]
				err = n.sendEvents(ctx, s.channel(), chunk, func(batch []byte, count int) error {
					f, err := sess.Batch(batch)
					if err != nil {
						return err
					}
					res.Sent += count
					return s.sendFrames([]rbsr.Frame{f})
				})
			}
			if err == nil {
				rd, err = sess.Sent()
			}
		case rd.Merge != nil:
			added, held, merr := n.mergeBatch(ctx, s, rd.Merge)
			res.Received += added
			res.Held += held
			if err = merr; err == nil {
				rd, err = sess.Merged(added)
			}
		}
		if err != nil {
			return sessionError(err)
		}
		if err := s.sendFrames(rd.Frames); err != nil || rd.Done {
			return err
		}
	}
}

// syncLoop starts sessions: with members that connect or come back, and
// every interval with one connected member picked at random.
func (n *Host) syncLoop(ctx context.Context) {
	interval := n.cfg.SyncInterval
	next := func() time.Duration { return interval*4/5 + rand.N(interval*2/5+1) } // ±20% jitter
	t := time.NewTimer(next())
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case p := <-n.syncNow:
			n.goLoop(ctx, func(ctx context.Context) { n.syncRequested(ctx, p) })
		case <-t.C:
			// A peer whose last session stalled is picked only when every
			// other one's did too.
			peers, stalled := n.members.byHealth(n.syncTargets())
			if len(peers) == 0 {
				peers = stalled
			}
			if len(peers) > 0 {
				p := peers[rand.IntN(len(peers))]
				n.goLoop(ctx, func(ctx context.Context) { n.syncPeer(ctx, p) })
			}
			t.Reset(next())
		}
	}
}

// syncRetryFirst is how long a requested sync that failed waits before its
// first retry. Each retry waits twice as long as the one before.
const syncRetryFirst = 250 * time.Millisecond

// syncRequested runs a sync that requestSync asked for, and retries it with
// backoff while it fails and p stays connected, until the periodic sync
// would come before the next retry; if p is not connected, p's next
// connection asks for it again. A join or a reconnection asks once, and
// nothing else would sync before the periodic sync: a session that failed
// — say, on a connection that the peer's own dial was replacing — would
// leave the events each side recorded apart until then.
func (n *Host) syncRequested(ctx context.Context, p lpeer.ID) {
	for wait := syncRetryFirst; ; wait *= 2 {
		res := n.syncPeer(ctx, p)
		if res.Err == nil || errors.Is(res.Err, ErrNotMember) {
			return
		}
		n.members.oweSync(p)
		if n.h.Network().Connectedness(p) != network.Connected {
			return // p's next connection asks again
		}
		if wait > n.cfg.SyncInterval {
			return // the periodic sync comes sooner
		}
		n.log.Debug("requested sync failed; retrying", "peer", p, "after", wait, "err", res.Err)
		if !sleep(ctx, wait) {
			return
		}
	}
}

// requestSync asks the sync loop to sync with p soon. It never blocks: if
// requests pile up, the periodic sync covers the dropped one.
func (n *Host) requestSync(p lpeer.ID) {
	select {
	case n.syncNow <- p:
	default:
	}
}

// requestSyncOnce is requestSync for an event both sides see (a join, a
// reconnection): only the side with the smaller peer ID asks, and its
// session moves events both ways, so the pair runs one session, not two in
// a row.
func (n *Host) requestSyncOnce(p lpeer.ID) {
	if n.h.ID() < p {
		n.requestSync(p)
	}
}

// retryTable schedules, at most one per peer at a time, the syncs that
// fetch events held back because their clock ran ahead.
type retryTable struct {
	mu      sync.Mutex
	pending map[lpeer.ID]bool
}

// maxRetries bounds the syncs scheduled for held-back events; past it the
// periodic sync fetches them.
const maxRetries = 256

// syncLater asks for a sync with p once after has passed (plus a margin for
// the clocks to move), unless one is already scheduled: a goroutine Close
// waits for, at most maxRetries of them.
func (n *Host) syncLater(p lpeer.ID, after time.Duration) {
	t := &n.retries
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.pending[p] || len(t.pending) >= maxRetries {
		return
	}
	if t.pending == nil {
		t.pending = make(map[lpeer.ID]bool)
	}
	t.pending[p] = true
	n.goLoop(n.ctx, func(ctx context.Context) {
		due := sleep(ctx, min(after, n.cfg.SyncInterval)+50*time.Millisecond)
		t.mu.Lock()
		delete(t.pending, p)
		t.mu.Unlock()
		if due {
			n.requestSync(p)
		}
	})
}

// Sync reconciles with every connected member and candidate now,
// concurrently as far as
// the session slots allow, and returns each session's result by peer ID.
// Members whose last session stalled go after the others.
func (n *Host) Sync(ctx context.Context) map[string]SyncResult {
	results := make(map[string]SyncResult)
	var mu sync.Mutex
	healthy, stalled := n.members.byHealth(n.syncTargets())
	for _, peers := range [][]lpeer.ID{healthy, stalled} {
		var wg sync.WaitGroup
		for _, p := range peers {
			done := func(res SyncResult) {
				mu.Lock()
				defer mu.Unlock()
				results[p.String()] = res
			}
			if !n.enter() {
				done(SyncResult{Err: ErrClosed})
				continue
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				defer n.wg.Done()
				done(n.syncPeer(ctx, p))
			}()
		}
		wg.Wait()
	}
	return results
}
