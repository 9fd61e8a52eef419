package scopemesh

import (
	"context"
	"errors"

	"github.com/scopemesh/scopemesh/crdt"
	"github.com/scopemesh/scopemesh/events"
	"github.com/scopemesh/scopemesh/query"
)

// Subscription delivers the events that match a filter as they reach the
// node, in arrival order, each once. Its buffer is bounded: a subscriber
// that falls behind loses events, and Next then reports the loss with an
// error matching ErrGap (a *GapError) that says from which key to query
// the node to recover them.
type Subscription struct {
	filter query.Filter
	watch  *crdt.Watch
	stop   func() bool
}

// ErrGap is matched by the *GapError Subscription.Next returns when the
// subscriber fell behind and lost events.
var ErrGap = crdt.ErrGap

// GapError says from which key on a subscriber lost events.
type GapError = crdt.GapError

// Subscribe returns a Subscription to the events matching f that the node
// records or receives from now on. Limit, After and Descending are ignored.
// The subscription ends when ctx is done or Close is called.
func (n *Node) Subscribe(ctx context.Context, f query.Filter) (*Subscription, error) {
	f.Limit, f.After, f.Descending = 0, crdt.Key{}, false
	if err := f.Validate(); err != nil {
		return nil, err
	}
	s := &Subscription{filter: f, watch: n.set.Watch(0)}
	s.stop = context.AfterFunc(ctx, func() { s.watch.Close() })
	return s, nil
}

// Next returns the next matching event. It blocks until one arrives, ctx is
// done, or the subscription ends (then the error matches ErrClosed).
func (s *Subscription) Next(ctx context.Context) (events.Event, error) {
	for {
		e, err := s.watch.Next(ctx)
		if errors.Is(err, crdt.ErrClosed) {
			return events.Event{}, ErrClosed
		}
		if err != nil || s.filter.Match(e) {
			return e, err
		}
	}
}

// Close ends the subscription.
func (s *Subscription) Close() error {
	s.stop()
	return s.watch.Close()
}
