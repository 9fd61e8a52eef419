package peer

import (
	"bufio"
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/libp2p/go-libp2p/core/network"
	lpeer "github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/protocol"

	"github.com/scopemesh/scopemesh/crdt"
	"github.com/scopemesh/scopemesh/events"
	"github.com/scopemesh/scopemesh/hlc"
	"github.com/scopemesh/scopemesh/rbsr"
)

// The sync protocol. A session runs passes. In each, the initiator
// reconciles the two sets (crdt.Reconciler), then asks for the events it
// lacks and pushes those the responder lacks, in bounded batches; the last
// pass finds the sets equal, or that they changed meanwhile. One stream
// carries one session; every frame answers the previous.
//
// A pass compares only what lies above both sides' horizons (retention):
// the initiator starts from its own, and a responder whose horizon is
// higher says so instead of answering, and the pass starts again from
// there. So expired events are never compared, fetched or pushed, and a
// heal costs what is above the horizons, not what was ever recorded.
//
// The responder's answers do not spell out most of the IDs of the events
// the initiator lacks, they count them (crdt.Reconciler.Need). So the
// responder keeps, for the pass, the IDs its answers listed, and a Want
// names events by their place among them: a bitmap, a bit an ID.
const (
	frameReconcile  byte = 1 // initiator: a reconciliation message of the pass frameInitiate began
	frameReconciled byte = 2 // responder: its answer
	frameWant       byte = 3 // initiator: bitmap over the IDs the pass's answers listed, bit i%8 of byte i/8 for the i-th
	frameEvents     byte = 4 // either: an events batch
	frameAck        byte = 5 // responder: uvarint count of pushed events merged
	frameEnd        byte = 6 // responder: end of the events answering a Want; initiator: end of session, 1 if the sets ended equal
	frameError      byte = 7 // either: a reason; the session ends
	frameInitiate   byte = 8 // initiator: where the pass starts (a 12-byte HLC time), then its first reconciliation message
	frameHorizon    byte = 9 // responder: its horizon, above where the pass was to start: start the pass again from there
)

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
	// maxListed bounds the IDs a responder keeps for a pass's Want: the
	// initiator ends a pass once the answers have listed this many, and
	// the pass's last answer adds at most a reconciliation message's list
	// limit (16,384 IDs) to them, 8.5 MiB in all. Unlike SyncLimits it is
	// part of the protocol: both sides must count to the same bound.
	maxListed      = 1 << 18
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

// sessions allots the session slots. Its zero value is usable.
type sessions struct {
	mu      sync.Mutex
	peers   map[lpeer.ID]bool // peers with a session running
	inbound int               // sessions peers started that run
	ended   chan struct{}     // closed, and replaced, when a session ends
}

// start claims a slot for a session with p, inbound if p started it. An
// outbound session waits, at most share, for the sessions running to end,
// and then, until ctx ends, for a free slot and for p's running session to
// end. An inbound one is refused with ErrBusy, for its initiator to try
// again in a moment, if no slot is free or one of this node's own sessions
// runs; otherwise it waits, at most share, for the other inbound ones,
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
// one of this node's own runs; ended closes when a session ends.
func (s *sessions) tryStart(p lpeer.ID, inbound, shared bool) (end func(), busy bool, ended <-chan struct{}) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.ended == nil {
		s.ended = make(chan struct{})
	}
	own := len(s.peers) - s.inbound
	if s.peers[p] || len(s.peers) >= maxSessions || inbound && (s.inbound >= maxInbound || own > 0) {
		return nil, true, s.ended
	}
	if !shared && (s.inbound > 0 || !inbound && own > 0) {
		return nil, false, s.ended
	}
	if s.peers == nil {
		s.peers = make(map[lpeer.ID]bool)
	}
	s.peers[p] = true
	if inbound {
		s.inbound++
	}
	return func() {
		s.mu.Lock()
		defer s.mu.Unlock()
		delete(s.peers, p)
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
			n.admitted(n.members.synced(p, res))
			return res
		}
		if !sleep(ctx, time.Duration(20+rand.IntN(200))*time.Millisecond) {
			return SyncResult{Err: ctx.Err()}
		}
	}
}

// stream wraps a session's stream with framing and byte counting.
type stream struct {
	s     network.Stream
	count *countingStream
	r     *bufio.Reader
	w     *bufio.Writer
	lim   SyncLimits

	timer   *time.Timer // resets s when an operation overruns its time
	stalled atomic.Bool // timer fired

	// from is where the initiator's passes start: the responder's
	// horizon, once it has said it is higher than the initiator's.
	from crdt.Key
}

func newStream(s network.Stream, lim SyncLimits) *stream {
	c := &countingStream{rw: s}
	return &stream{s: s, count: c, r: bufio.NewReader(c), w: bufio.NewWriter(c), lim: lim}
}

// within runs op, a read or write of the stream, and resets the stream if
// op has not returned after d (no limit if d is not positive): a timer
// rather than the stream's deadlines, which not every stream keeps
// (mocknet's ignore them).
func (s *stream) within(d time.Duration, op func() error) error {
	if d <= 0 {
		return op()
	}
	if s.timer == nil {
		s.timer = time.AfterFunc(d, func() {
			s.stalled.Store(true)
			s.s.Reset()
		})
	} else {
		s.timer.Reset(d)
	}
	err := op()
	if !s.timer.Stop() && s.stalled.Load() {
		return fmt.Errorf("%w: nothing for %v", ErrStalled, d)
	}
	return err
}

// send writes a frame, which the peer must take within the idle limit.
func (s *stream) send(typ byte, payload []byte) error {
	return s.within(s.lim.Idle, func() error { return writeFrame(s.w, typ, payload) })
}

// channel names the stream for sealing: its protocol.
func (s *stream) channel() string { return string(s.s.Protocol()) }

// recv reads the next frame, which must come within the idle limit and be
// of one of the types want; an error frame becomes an error.
func (s *stream) recv(want ...byte) (byte, []byte, error) { return s.recvMax(maxFrame, want...) }

// busyErrors are the errors a peer's error frame names that callers tell
// apart: the peer is busy, and may be asked again.
var busyErrors = []error{ErrBusy, ErrQueryBusy, ErrViewBusy}

// recvMax is recv for a frame whose payload may be up to max bytes.
func (s *stream) recvMax(max int, want ...byte) (byte, []byte, error) {
	var typ byte
	var payload []byte
	err := s.within(s.lim.Idle, func() (err error) {
		typ, payload, err = readFrame(s.r, max)
		return err
	})
	if err != nil {
		return 0, nil, err
	}
	if s.count.read > s.lim.Bytes {
		return 0, nil, fmt.Errorf("%w: more than %d bytes", ErrSyncLimit, s.lim.Bytes)
	}
	if typ == frameError {
		for _, busy := range busyErrors {
			if string(payload) == busy.Error() {
				return 0, nil, busy
			}
		}
		return 0, nil, fmt.Errorf("peer: the peer ended the session: %s", payload)
	}
	for _, t := range want {
		if typ == t {
			return typ, payload, nil
		}
	}
	return 0, nil, fmt.Errorf("%w: type %d, want one of %v", ErrFrame, typ, want)
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

	// Each pass reconciles, then moves what it found. A pass that runs out
	// of rounds, or whose answers listed maxListed IDs (an empty node
	// catching up on millions of events), moves what it learned, and the
	// next pass goes on from there. The pass after a complete one checks
	// that the sets are now equal.
	checking := false
	for {
		have, need, complete, err := n.reconcile(s, &res, p)
		if err != nil {
			res.Err = err
			return res
		}
		if checking && complete && len(have) == 0 && len(need) == 0 {
			res.InSync = true
			break
		}
		if err := n.fetch(ctx, s, &res, need); err != nil {
			res.Err = err
			return res
		}
		if err := n.push(ctx, s, &res, have); err != nil {
			res.Err = err
			return res
		}
		if checking && complete {
			// The sets differed again after a complete transfer: events
			// arrived meanwhile. They wait for the next session.
			break
		}
		checking = complete
	}
	// The end says whether the sets ended equal: the responder's view
	// of the session counts too (PeerInfo.InSync).
	var end []byte
	if res.InSync {
		end = []byte{1}
	}
	res.Err = s.send(frameEnd, end)
	return res
}

// reconcile runs a pass's reconciliation rounds until the initiator knows
// what each side lacks, or the reconciler's round limit or the responder's
// listing bound (maxListed) stops it early: complete is then false, and
// have and need hold what was learned. need numbers the IDs the responder
// listed in this pass.
func (n *Host) reconcile(s *stream, res *SyncResult, p lpeer.ID) (have []events.ID, need []int, complete bool, err error) {
	for {
		rec, err := rbsr.NewReconciler(n.cfg.Set, rbsr.Options{From: s.from})
		if err != nil {
			return nil, nil, false, err
		}
		msg, err := rec.Initiate()
		msg = append(rec.From().Time().AppendBinary(nil), msg...)
		typ, rebased := frameInitiate, false
		for done := false; err == nil && !done; typ = frameReconcile {
			if rec.Listed() >= maxListed {
				return rec.Have(), rec.Need(), false, nil
			}
			if res.Rounds++; res.Rounds > s.lim.Rounds {
				return nil, nil, false, fmt.Errorf("%w: more than %d rounds", ErrSyncLimit, s.lim.Rounds)
			}
			sent := time.Now()
			if err = s.send(typ, msg); err != nil {
				break
			}
			var got byte
			var reply []byte
			if got, reply, err = s.recv(frameReconciled, frameHorizon); err != nil {
				break
			}
			if res.Rounds == 1 {
				n.h.Peerstore().RecordLatency(p, time.Since(sent))
			}
			if got == frameHorizon {
				err = s.rebase(typ, reply, rec.From())
				rebased = err == nil
				break
			}
			msg, done, err = rec.Reconcile(reply)
		}
		if rebased {
			continue
		}
		if errors.Is(err, rbsr.ErrRounds) {
			return rec.Have(), rec.Need(), false, nil
		}
		if err != nil {
			return nil, nil, false, err
		}
		return rec.Have(), rec.Need(), true, nil
	}
}

// rebase takes a responder's horizon, its answer to a pass that started
// below it (typ frameInitiate, from), as where the session's passes start
// from then on.
func (s *stream) rebase(typ byte, payload []byte, from crdt.Key) error {
	h, err := hlc.DecodeTimestamp(payload)
	if err != nil || typ != frameInitiate || crdt.TimeKey(h).Compare(from) <= 0 {
		return fmt.Errorf("%w: a horizon of %d bytes, in answer to frame %d starting at %v", ErrFrame, len(payload), typ, from)
	}
	s.from = crdt.TimeKey(h)
	return nil
}

// fetch asks for the events the initiator lacks, by their numbers among
// the IDs the responder listed in the pass, and merges them.
func (n *Host) fetch(ctx context.Context, s *stream, res *SyncResult, need []int) error {
	if len(need) == 0 {
		return nil
	}
	if err := s.send(frameWant, wantBitmap(need)); err != nil {
		return err
	}
	for {
		typ, payload, err := s.recv(frameEvents, frameEnd)
		if err != nil {
			return err
		}
		if typ == frameEnd {
			return nil
		}
		added, held, err := n.mergeBatch(ctx, s, payload)
		res.Received += added
		res.Held += held
		if err != nil {
			return err
		}
	}
}

// wantBitmap encodes a Want for the listed IDs numbered need.
func wantBitmap(need []int) []byte {
	bitmap := make([]byte, slices.Max(need)/8+1)
	for _, i := range need {
		bitmap[i/8] |= 1 << (i % 8)
	}
	return bitmap
}

// wantedIDs decodes a Want against the IDs listed in the pass: the IDs
// whose bits are set, in the order listed. It refuses a bitmap longer than
// the listing before it allocates anything.
func wantedIDs(bitmap []byte, listed []events.ID) ([]events.ID, error) {
	if len(bitmap) > (len(listed)+7)/8 {
		return nil, fmt.Errorf("%w: a want of %d bytes for %d listed IDs", ErrFrame, len(bitmap), len(listed))
	}
	var ids []events.ID
	for i := range len(bitmap) * 8 {
		if bitmap[i/8]&(1<<(i%8)) == 0 {
			continue
		}
		if i >= len(listed) {
			return nil, fmt.Errorf("%w: a want for listed ID %d of %d", ErrFrame, i, len(listed))
		}
		ids = append(ids, listed[i])
	}
	return ids, nil
}

// push sends the events the responder lacks.
func (n *Host) push(ctx context.Context, s *stream, res *SyncResult, have []events.ID) error {
	return n.sendEvents(ctx, s.channel(), have, func(batch []byte, count int) error {
		if err := s.send(frameEvents, batch); err != nil {
			return err
		}
		_, ack, err := s.recv(frameAck)
		if err != nil {
			return err
		}
		if _, k := binary.Uvarint(ack); k <= 0 {
			return fmt.Errorf("%w: malformed ack", ErrFrame)
		}
		res.Sent += count
		return nil
	})
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
	// A trace's events travel together: that compresses 10 to 20 % better
	// than key order, where traces interleave.
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
	n.admitted(n.members.synced(p, res))
}

// serve answers an initiator's frames until it ends the session.
func (n *Host) serve(ctx context.Context, s *stream, res *SyncResult) error {
	rec, err := rbsr.NewReconciler(n.cfg.Set, rbsr.Options{})
	if err != nil {
		return err
	}
	var listed []events.ID // the IDs this pass's answers listed
	for {
		typ, payload, err := s.recv(frameInitiate, frameReconcile, frameWant, frameEvents, frameEnd)
		if err != nil {
			return err
		}
		switch typ {
		case frameEnd:
			res.InSync = bytes.Equal(payload, []byte{1})
			return nil
		case frameInitiate, frameReconcile:
			if res.Rounds++; res.Rounds > s.lim.Rounds {
				return fmt.Errorf("%w: more than %d rounds", ErrSyncLimit, s.lim.Rounds)
			}
			if typ == frameInitiate {
				listed = listed[:0]
				from, err := hlc.DecodeTimestamp(payload[:min(len(payload), hlc.EncodedLen)])
				if err != nil {
					return fmt.Errorf("%w: a pass's start: %v", ErrFrame, err)
				}
				payload = payload[hlc.EncodedLen:]
				if h := n.cfg.Set.Horizon(); crdt.TimeKey(from).Compare(h) < 0 {
					// What lies below is gone here: the initiator
					// starts again from the horizon.
					if err := s.send(frameHorizon, h.Time().AppendBinary(nil)); err != nil {
						return err
					}
					continue
				}
			} else if len(listed) >= maxListed {
				return fmt.Errorf("%w: a pass went on after listing %d IDs", ErrSyncLimit, len(listed))
			}
			reply, ids, err := rec.RespondListing(payload)
			if err != nil {
				return err
			}
			listed = append(listed, ids...)
			if err := s.send(frameReconciled, reply); err != nil {
				return err
			}
		case frameWant:
			ids, err := wantedIDs(payload, listed)
			for err == nil && len(ids) > 0 {
				chunk := ids[:min(len(ids), wantChunk)]
				ids = ids[len(chunk):]
				err = n.sendEvents(ctx, s.channel(), chunk, func(batch []byte, count int) error {
					res.Sent += count
					return s.send(frameEvents, batch)
				})
			}
			if err == nil {
				err = s.send(frameEnd, nil)
			}
			if err != nil {
				return err
			}
		case frameEvents:
			added, held, err := n.mergeBatch(ctx, s, payload)
			res.Received += added
			res.Held += held
			if err != nil {
				return err
			}
			if err := s.send(frameAck, binary.AppendUvarint(nil, uint64(added))); err != nil {
				return err
			}
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
// the clocks to move), unless one is already scheduled.
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
	time.AfterFunc(min(after, n.cfg.SyncInterval)+50*time.Millisecond, func() {
		t.mu.Lock()
		delete(t.pending, p)
		t.mu.Unlock()
		if n.ctx.Err() == nil {
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
