package scopemesh

import (
	"context"
	"errors"
	"fmt"
	"sync"

	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/scopemesh/scopemesh/crdt"
	"github.com/scopemesh/scopemesh/events"
	"github.com/scopemesh/scopemesh/hlc"
	"github.com/scopemesh/scopemesh/query"
)

// ErrClosed reports use of a Node after Close.
var ErrClosed = errors.New("scopemesh: node closed")

// Node is one member of a scopemesh cluster: it records events, holds a
// replica of the cluster's event set, and answers queries. A Node is safe for
// concurrent use.
type Node struct {
	cfg   Config
	id    peer.ID
	idStr string // id.String(), which costs a base58 encoding
	clock *hlc.Clock
	set   *crdt.Set

	closeStore func() error
	closeOnce  sync.Once
	closeErr   error
}

// Status is the state of a node as it sees itself.
type Status struct {
	ID     string // the node's peer ID
	Events int    // events held in the local replica
}

// Open starts a node configured by cfg.
func Open(ctx context.Context, cfg Config) (_ *Node, err error) {
	cfg, err = cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	ds, closeStore, err := openStore(cfg)
	if err != nil {
		return nil, err
	}
	defer func() {
		if err != nil {
			closeStore()
		}
	}()
	key, err := loadIdentity(ctx, cfg, ds)
	if err != nil {
		return nil, err
	}
	id, err := peer.IDFromPrivateKey(key)
	if err != nil {
		return nil, fmt.Errorf("scopemesh: deriving the peer ID: %w", err)
	}
	clockCfg := hlc.Config{MaxOffset: cfg.MaxClockOffset}
	if cfg.DataDir != "" || cfg.Datastore != nil {
		// A durable store gets a durable clock bound, so the node's clock
		// never runs backwards across restarts.
		if clockCfg.LastUpper, err = loadClockBound(ctx, ds); err != nil {
			return nil, err
		}
		clockCfg.Persist = clockBoundSaver(ds)
	}
	clock, err := hlc.NewClock(clockCfg)
	if err != nil {
		return nil, fmt.Errorf("scopemesh: starting the clock: %w", err)
	}
	set, err := crdt.New(ctx, ds, crdt.Options{Limits: cfg.Limits})
	if err != nil {
		return nil, fmt.Errorf("scopemesh: opening the event set: %w", err)
	}
	return &Node{cfg: cfg, id: id, idStr: id.String(), clock: clock, set: set, closeStore: closeStore}, nil
}

// Close stops the node and releases its store. Later calls return the first
// call's result.
func (n *Node) Close() error {
	n.closeOnce.Do(func() {
		n.closeErr = errors.Join(n.set.Close(), n.closeStore())
	})
	return n.closeErr
}

// ID returns the node's peer ID, the Node field of the events it records.
func (n *Node) ID() string { return n.idStr }

// Clock returns the node's hybrid logical clock.
func (n *Node) Clock() *hlc.Clock { return n.clock }

// Record stores an event that happened on this node and returns it as
// stored. It sets Time from the node's clock, Node to the node's ID, and ID
// from the content; a zero Correlation or Parent is taken from ctx (see
// events.ContextWithTrace and events.ContextWithParent). Record returns once
// the event is durable in the node's store.
func (n *Node) Record(ctx context.Context, e events.Event) (events.Event, error) {
	if e.Correlation.IsZero() {
		e.Correlation, _ = events.TraceFromContext(ctx)
	}
	if e.Parent.IsZero() {
		e.Parent, _ = events.ParentFromContext(ctx)
	}
	e.Node = n.ID()
	e.Time = n.clock.Now()
	if err := n.clock.Err(); err != nil {
		return events.Event{}, fmt.Errorf("scopemesh: record: %w", err)
	}
	sealed, err := n.cfg.Limits.Seal(e)
	if err != nil {
		return events.Event{}, fmt.Errorf("scopemesh: record: %w", err)
	}
	if _, err := n.set.Add(ctx, sealed); err != nil {
		return events.Event{}, fmt.Errorf("scopemesh: record: %w", err)
	}
	return sealed, nil
}

// Query returns the events of the local replica that match f, in (HLC, ID)
// order (newest first if f.Descending).
func (n *Node) Query(ctx context.Context, f query.Filter) ([]events.Event, error) {
	return query.Local(ctx, n.set, f)
}

// Status returns the node's state.
func (n *Node) Status() Status {
	return Status{ID: n.ID(), Events: n.set.Len()}
}
