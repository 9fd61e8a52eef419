package peer

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"sync/atomic"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/network"
)

// trickle is a stream over a slow link: each read takes every, and yields
// one byte.
type trickle struct {
	network.Stream
	data  []byte
	every time.Duration
	reset atomic.Bool
}

func (t *trickle) Read(p []byte) (int, error) {
	if len(t.data) == 0 || t.reset.Load() {
		return 0, io.EOF
	}
	time.Sleep(t.every)
	p[0], t.data = t.data[0], t.data[1:]
	return 1, nil
}

func (t *trickle) Reset() error { t.reset.Store(true); return nil }

// TestAFrameThatKeepsMovingIsNotStalled: a frame that takes four times the
// idle limit to arrive, a byte at a time, is read; one whose bytes stop
// for longer than the limit is cut off as stalled.
func TestAFrameThatKeepsMovingIsNotStalled(t *testing.T) {
	var frame bytes.Buffer
	w := bufio.NewWriter(&frame)
	writeFrame(w, frameEvents, bytes.Repeat([]byte{1}, 38))
	const idle = 100 * time.Millisecond

	slow := &trickle{data: frame.Bytes(), every: idle / 10}
	s := newStream(slow, SyncLimits{Idle: idle, Bytes: 1 << 10})
	start := time.Now()
	if _, payload, err := s.recv(frameEvents); err != nil || len(payload) != 38 {
		t.Fatalf("a frame arriving a byte every %v with an idle limit of %v: %d bytes, %v", slow.every, idle, len(payload), err)
	}
	if took := time.Since(start); took < 2*idle {
		t.Fatalf("the frame took %v, less than the idle limit: the test proves nothing", took)
	}

	stuck := &trickle{data: frame.Bytes(), every: 3 * idle}
	s = newStream(stuck, SyncLimits{Idle: idle, Bytes: 1 << 10})
	if _, _, err := s.recv(frameEvents); !errors.Is(err, ErrStalled) || !stuck.reset.Load() {
		t.Fatalf("a frame whose bytes stop for %v with an idle limit of %v: %v, reset %v", stuck.every, idle, err, stuck.reset.Load())
	}
}
