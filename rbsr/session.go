package rbsr

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"

	"github.com/scopemesh/scopemesh/crdt"
	"github.com/scopemesh/scopemesh/events"
	"github.com/scopemesh/scopemesh/hlc"
)

const (
	// DefaultMaxRounds is the round limit of a zero Config.
	DefaultMaxRounds = 4096
	// DefaultMaxListed is the listing bound of a zero Config: the pass's
	// last answer adds at most a message's list limit (16,384 IDs at the
	// default frame limit) to it, 8.5 MiB of IDs kept in all.
	DefaultMaxListed = 1 << 18
)

// Config configures a sync session. The zero value means the defaults.
type Config struct {
	// MaxRounds bounds the reconciliation rounds of a whole session, on
	// either side; a peer that needs more is cut off with ErrLimit. Zero
	// means DefaultMaxRounds.
	MaxRounds int
	// MaxListed bounds the IDs a pass's answers list, which the responder
	// keeps for the pass's Want: the initiator ends a pass once they
	// reach it and the responder refuses to go on past it. Unlike
	// MaxRounds it is part of the protocol: both sides must use the same
	// bound. Zero means DefaultMaxListed.
	MaxListed int
	// Reconcile configures each pass's Reconciler; the session sets its
	// From. Both sides must use the same frame limit.
	Reconcile Options
}

func (c Config) withDefaults() Config {
	if c.MaxRounds == 0 {
		c.MaxRounds = DefaultMaxRounds
	}
	if c.MaxListed == 0 {
		c.MaxListed = DefaultMaxListed
	}
	return c
}

// Ready is what a session asks of its driver after a call: send Frames, in
// order; then, if Send is set, read those events, encode them in batches
// and hand each to Batch before sending it, then call Sent; if Merge is
// set, decode, verify and merge that batch (a responder then calls
// Merged); then, unless Done, read the peer's next frame and Step it.
type Ready struct {
	Frames []Frame
	// Send names events the peer lacks. IDs the set no longer holds are
	// skipped; batches hold whatever the driver's encoding allows.
	Send []events.ID
	// Merge is an events batch the peer sent, as it came.
	Merge []byte
	// Done is set once the session has ended well.
	Done bool
}

func send(t FrameType, payload []byte) Ready { return Ready{Frames: []Frame{{t, payload}}} }

// initiatorState says what an initiator waits for.
type initiatorState uint8

const (
	initNew       initiatorState = iota // Start not called
	initReconcile                       // the answer to a reconciliation message
	initFetch                           // the events answering a Want, then FrameEnd
	initPush                            // the driver's batches (Batch, Sent)
	initAck                             // the acknowledgement of a pushed batch
	initDone                            // nothing: ended or failed
)

// Initiator is the side of a sync session that starts it: it runs the
// passes, asks for what it lacks and pushes what the peer lacks. It is a
// state machine without I/O; its methods must not be called concurrently.
type Initiator struct {
	newRec  func(Options) (*Reconciler, error)
	cfg     Config
	state   initiatorState
	err     error // why the session failed, once it has
	from    crdt.Key
	rec     *Reconciler
	initial bool // the last message sent was a pass's FrameInitiate
	rounds  int

	checking bool // the pass before this one completed
	complete bool // this pass compared the sets in full
	have     []events.ID
	inSync   bool
}

// NewInitiator returns the initiator of a session over s.
func NewInitiator[K Keys](s Set[K], cfg Config) *Initiator {
	read := readFunc(s)
	return &Initiator{
		cfg: cfg.withDefaults(),
		newRec: func(o Options) (*Reconciler, error) {
			if h := s.Horizon(); o.From.Compare(h) < 0 {
				o.From = h
			}
			return newReconciler(read, o)
		},
	}
}

// Start begins the session: the first pass's first frame.
func (s *Initiator) Start() (Ready, error) {
	if s.state != initNew {
		return Ready{}, s.fail(fmt.Errorf("%w: Start called twice", ErrSession))
	}
	return s.check(s.startPass())
}

// Step takes the peer's next frame. A FrameError is the driver's to read
// before: the session takes none.
func (s *Initiator) Step(f Frame) (Ready, error) {
	switch s.state {
	case initReconcile:
		switch f.Type {
		case FrameReconciled:
			msg, done, err := s.rec.Reconcile(f.Payload)
			switch {
			case errors.Is(err, ErrRounds):
				return s.check(s.endPass(false))
			case err != nil:
				return Ready{}, s.fail(err)
			case done:
				return s.check(s.endPass(true))
			}
			return s.check(s.round(FrameReconcile, msg))
		case FrameHorizon:
			h, err := hlc.DecodeTimestamp(f.Payload)
			switch {
			case !s.initial:
				return Ready{}, s.fail(badFrame("a horizon in answer to a pass's later message"))
			case err != nil:
				return Ready{}, s.fail(badFrame("a horizon of %d bytes", len(f.Payload)))
			case crdt.TimeKey(h).Compare(s.rec.From()) <= 0:
				return Ready{}, s.fail(badFrame("a horizon at %v, not above the pass's start at %v", h, s.rec.From().Time()))
			}
			s.from = crdt.TimeKey(h)
			return s.check(s.startPass())
		}
		return Ready{}, s.fail(unexpected(f, FrameReconciled, FrameHorizon))
	case initFetch:
		switch f.Type {
		case FrameEvents:
			return Ready{Merge: f.Payload}, nil
		case FrameEnd:
			return s.check(s.afterFetch())
		}
		return Ready{}, s.fail(unexpected(f, FrameEvents, FrameEnd))
	case initAck:
		if f.Type != FrameAck {
			return Ready{}, s.fail(unexpected(f, FrameAck))
		}
		if _, k := binary.Uvarint(f.Payload); k <= 0 {
			return Ready{}, s.fail(badFrame("malformed ack"))
		}
		s.state = initPush
		return Ready{}, nil
	}
	return Ready{}, s.fail(fmt.Errorf("%w: Step while %s", ErrSession, s.waiting()))
}

// Batch takes an events batch of those Ready.Send named, encoded by the
// driver, and returns the frame that carries it. The peer acknowledges each
// batch before the next: Step its FrameAck.
func (s *Initiator) Batch(batch []byte) (Frame, error) {
	if s.state != initPush {
		return Frame{}, s.fail(fmt.Errorf("%w: Batch while %s", ErrSession, s.waiting()))
	}
	s.state = initAck
	return Frame{FrameEvents, batch}, nil
}

// Sent ends the batches of Ready.Send.
func (s *Initiator) Sent() (Ready, error) {
	if s.state != initPush {
		return Ready{}, s.fail(fmt.Errorf("%w: Sent while %s", ErrSession, s.waiting()))
	}
	return s.check(s.afterPush())
}

// Rounds returns the reconciliation messages sent so far.
func (s *Initiator) Rounds() int { return s.rounds }

// InSync reports whether the session ended with a pass that found the sets
// equal.
func (s *Initiator) InSync() bool { return s.inSync }

// Err returns why the session failed, or nil.
func (s *Initiator) Err() error { return s.err }

func (s *Initiator) waiting() string {
	switch s.state {
	case initNew:
		return "not started"
	case initReconcile:
		return "waiting for an answer"
	case initFetch:
		return "waiting for events"
	case initPush:
		return "pushing events"
	case initAck:
		return "waiting for an acknowledgement"
	}
	return "ended"
}

func (s *Initiator) fail(err error) error {
	if s.err == nil {
		s.err = err
	}
	s.state = initDone
	return s.err
}

func (s *Initiator) check(r Ready, err error) (Ready, error) {
	if err != nil {
		return Ready{}, s.fail(err)
	}
	return r, nil
}

// startPass begins a pass at s.from, or the set's horizon if higher.
func (s *Initiator) startPass() (Ready, error) {
	o := s.cfg.Reconcile
	o.From = s.from
	rec, err := s.newRec(o)
	if err != nil {
		return Ready{}, err
	}
	msg, err := rec.Initiate()
	if err != nil {
		return Ready{}, err
	}
	s.rec, s.complete, s.have = rec, false, nil
	return s.round(FrameInitiate, append(rec.From().Time().AppendBinary(nil), msg...))
}

// round sends a reconciliation message of the pass, unless the pass's
// answers have listed as many IDs as one may: it then ends, partial, and
// the next goes on from there.
func (s *Initiator) round(t FrameType, msg []byte) (Ready, error) {
	if s.rec.Listed() >= s.cfg.MaxListed {
		return s.endPass(false)
	}
	if s.rounds++; s.rounds > s.cfg.MaxRounds {
		return Ready{}, fmt.Errorf("%w: more than %d rounds", ErrLimit, s.cfg.MaxRounds)
	}
	s.state, s.initial = initReconcile, t == FrameInitiate
	return send(t, msg), nil
}

// endPass moves what the pass learned: the events it lacks first, then
// those the peer lacks. A pass after a complete one checks that the sets
// are now equal.
func (s *Initiator) endPass(complete bool) (Ready, error) {
	s.complete, s.have = complete, s.rec.Have()
	need := s.rec.Need()
	if s.checking && complete && len(s.have) == 0 && len(need) == 0 {
		s.inSync = true
		return s.end()
	}
	if len(need) > 0 {
		s.state = initFetch
		return send(FrameWant, wantBitmap(need)), nil
	}
	return s.afterFetch()
}

func (s *Initiator) afterFetch() (Ready, error) {
	if len(s.have) > 0 {
		s.state = initPush
		return Ready{Send: s.have}, nil
	}
	return s.afterPush()
}

func (s *Initiator) afterPush() (Ready, error) {
	if s.checking && s.complete {
		// The sets differed again after a complete transfer: events
		// arrived meanwhile. They wait for the next session.
		return s.end()
	}
	s.checking = s.complete
	return s.startPass()
}

// end ends the session, telling the peer whether the sets ended equal: its
// view of the session counts too.
func (s *Initiator) end() (Ready, error) {
	var payload []byte
	if s.inSync {
		payload = []byte{1}
	}
	s.state = initDone
	r := send(FrameEnd, payload)
	r.Done = true
	return r, nil
}

// responderState says what a responder waits for.
type responderState uint8

const (
	respIdle  responderState = iota // the initiator's next frame
	respSend                        // the driver's batches (Batch, Sent)
	respMerge                       // the driver's merge of a batch (Merged)
	respDone                        // nothing: ended or failed
)

// Responder is the side of a sync session that answers: it answers
// reconciliation messages, keeps the IDs a pass's answers listed to serve
// its Want, and takes the events pushed to it. It is a state machine
// without I/O; its methods must not be called concurrently.
type Responder struct {
	rec     *Reconciler
	horizon func() crdt.Key
	cfg     Config
	state   responderState
	err     error
	rounds  int
	listed  []events.ID // the IDs this pass's answers listed
	inSync  bool
}

// NewResponder returns the responder of a session over s, or an error
// matching ErrOptions.
func NewResponder[K Keys](s Set[K], cfg Config) (*Responder, error) {
	cfg = cfg.withDefaults()
	rec, err := newReconciler(readFunc(s), cfg.Reconcile)
	if err != nil {
		return nil, err
	}
	return &Responder{rec: rec, horizon: s.Horizon, cfg: cfg}, nil
}

// Step takes the initiator's next frame. A FrameError is the driver's to
// read before: the session takes none.
func (s *Responder) Step(f Frame) (Ready, error) {
	if s.state != respIdle {
		return Ready{}, s.fail(fmt.Errorf("%w: Step while %s", ErrSession, s.waiting()))
	}
	switch f.Type {
	case FrameEnd:
		s.inSync, s.state = bytes.Equal(f.Payload, []byte{1}), respDone
		return Ready{Done: true}, nil
	case FrameInitiate, FrameReconcile:
		if s.rounds++; s.rounds > s.cfg.MaxRounds {
			return Ready{}, s.fail(fmt.Errorf("%w: more than %d rounds", ErrLimit, s.cfg.MaxRounds))
		}
		msg := f.Payload
		if f.Type == FrameInitiate {
			s.listed = s.listed[:0]
			from, err := hlc.DecodeTimestamp(msg[:min(len(msg), hlc.EncodedLen)])
			if err != nil {
				return Ready{}, s.fail(badFrame("a pass's start: %v", err))
			}
			msg = msg[hlc.EncodedLen:]
			if h := s.horizon(); crdt.TimeKey(from).Compare(h) < 0 {
				// What lies below is gone here: the initiator starts
				// again from the horizon.
				return send(FrameHorizon, h.Time().AppendBinary(nil)), nil
			}
		} else if len(s.listed) >= s.cfg.MaxListed {
			return Ready{}, s.fail(fmt.Errorf("%w: a pass went on after listing %d IDs", ErrLimit, len(s.listed)))
		}
		reply, ids, err := s.rec.RespondListing(msg)
		if err != nil {
			return Ready{}, s.fail(err)
		}
		s.listed = append(s.listed, ids...)
		return send(FrameReconciled, reply), nil
	case FrameWant:
		ids, err := wantedIDs(f.Payload, s.listed)
		if err != nil {
			return Ready{}, s.fail(err)
		}
		if len(ids) == 0 {
			return send(FrameEnd, nil), nil
		}
		s.state = respSend
		return Ready{Send: ids}, nil
	case FrameEvents:
		s.state = respMerge
		return Ready{Merge: f.Payload}, nil
	}
	return Ready{}, s.fail(unexpected(f, FrameInitiate, FrameReconcile, FrameWant, FrameEvents, FrameEnd))
}

// Batch takes an events batch of those Ready.Send named, encoded by the
// driver, and returns the frame that carries it.
func (s *Responder) Batch(batch []byte) (Frame, error) {
	if s.state != respSend {
		return Frame{}, s.fail(fmt.Errorf("%w: Batch while %s", ErrSession, s.waiting()))
	}
	return Frame{FrameEvents, batch}, nil
}

// Sent ends the batches of Ready.Send.
func (s *Responder) Sent() (Ready, error) {
	if s.state != respSend {
		return Ready{}, s.fail(fmt.Errorf("%w: Sent while %s", ErrSession, s.waiting()))
	}
	s.state = respIdle
	return send(FrameEnd, nil), nil
}

// Merged reports that the batch of Ready.Merge added added events to the
// set, and returns the acknowledgement to send.
func (s *Responder) Merged(added int) (Ready, error) {
	if s.state != respMerge {
		return Ready{}, s.fail(fmt.Errorf("%w: Merged while %s", ErrSession, s.waiting()))
	}
	s.state = respIdle
	return send(FrameAck, binary.AppendUvarint(nil, uint64(added))), nil
}

// Rounds returns the reconciliation messages answered so far.
func (s *Responder) Rounds() int { return s.rounds }

// InSync reports whether the initiator ended the session saying the sets
// ended equal.
func (s *Responder) InSync() bool { return s.inSync }

// Err returns why the session failed, or nil.
func (s *Responder) Err() error { return s.err }

func (s *Responder) waiting() string {
	switch s.state {
	case respIdle:
		return "waiting for a frame"
	case respSend:
		return "sending events"
	case respMerge:
		return "merging events"
	}
	return "ended"
}

func (s *Responder) fail(err error) error {
	if s.err == nil {
		s.err = err
	}
	s.state = respDone
	return s.err
}
