package peer

import (
	"bufio"
	"fmt"
	"io"
	"sync/atomic"
	"time"

	"github.com/libp2p/go-libp2p/core/network"
)

// stream wraps a sync, query or view stream with framing, byte counting and
// the idle limit.
type stream struct {
	s     network.Stream
	count *countingStream
	r     *bufio.Reader
	w     *bufio.Writer
	lim   SyncLimits

	timer   *time.Timer   // resets s when an operation overruns its time
	stalled atomic.Bool   // timer fired
	idle    time.Duration // while positive, each byte moved restarts timer for this long
}

func newStream(s network.Stream, lim SyncLimits) *stream {
	st := &stream{s: s, lim: lim}
	st.count = &countingStream{rw: s, moved: st.moved}
	st.r, st.w = bufio.NewReader(st.count), bufio.NewWriter(st.count)
	return st
}

// moved restarts the timer of an idle-limited operation (whileMoving):
// bytes moved. It runs in the operation's goroutine.
func (s *stream) moved() {
	if s.idle > 0 {
		s.timer.Reset(s.idle)
	}
}

// whileMoving runs op, a frame's read or write, and resets the stream if
// no byte moved for d: a large frame over a slow link is not cut off for
// taking longer than d in all.
func (s *stream) whileMoving(d time.Duration, op func() error) error {
	if d > 0 {
		s.idle = d
		defer func() { s.idle = 0 }()
	}
	return s.within(d, op)
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
	s.timer.Stop()
	if s.stalled.Load() { // once fired, the stream is reset for good
		return fmt.Errorf("%w: nothing for %v", ErrStalled, d)
	}
	return err
}

// send writes a frame, which the peer must take within the idle limit.
func (s *stream) send(typ byte, payload []byte) error {
	return s.whileMoving(s.lim.Idle, func() error { return writeFrame(s.w, typ, payload) })
}

// channel names the stream for sealing: its protocol.
func (s *stream) channel() string { return string(s.s.Protocol()) }

// recv reads the next frame, which must come within the idle limit and be
// of one of the types want; an error frame becomes an error.
func (s *stream) recv(want ...byte) (byte, []byte, error) { return s.recvMax(maxFrame, want...) }

// knownErrors are the errors a peer's error frame names that callers tell
// apart: the peer is busy, and may be asked again, or holds nothing.
var knownErrors = []error{ErrBusy, ErrQueryBusy, ErrViewBusy, ErrFetchBusy, ErrNotHeld}

// recvMax is recv for a frame whose payload may be up to max bytes.
func (s *stream) recvMax(max int, want ...byte) (byte, []byte, error) {
	typ, payload, err := s.next(max)
	if err != nil {
		return 0, nil, err
	}
	for _, t := range want {
		if typ == t {
			return typ, payload, nil
		}
	}
	return 0, nil, fmt.Errorf("%w: type %d, want one of %v", ErrFrame, typ, want)
}

// next reads the next frame of any type, whose payload may be up to max
// bytes; an error frame becomes an error.
func (s *stream) next(max int) (byte, []byte, error) {
	var typ byte
	var payload []byte
	err := s.whileMoving(s.lim.Idle, func() (err error) {
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
		for _, known := range knownErrors {
			if string(payload) == known.Error() {
				return 0, nil, known
			}
		}
		return 0, nil, fmt.Errorf("peer: the peer ended the session: %s", payload)
	}
	return typ, payload, nil
}

// countingStream counts the bytes a session moves in each direction, and
// tells moved of each read or write that moved some.
type countingStream struct {
	rw      io.ReadWriter
	moved   func()
	read    int64
	written int64
}

func (c *countingStream) Read(p []byte) (int, error) {
	n, err := c.rw.Read(p)
	c.read += int64(n)
	if n > 0 {
		c.moved()
	}
	return n, err
}

func (c *countingStream) Write(p []byte) (int, error) {
	n, err := c.rw.Write(p)
	c.written += int64(n)
	if n > 0 {
		c.moved()
	}
	return n, err
}
