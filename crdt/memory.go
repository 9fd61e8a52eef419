package crdt

import (
	"context"
	"fmt"

	"github.com/scopemesh/scopemesh/crdt/memset"
	"github.com/scopemesh/scopemesh/events"
)

// NewMemory returns an empty set that keeps its events in memory only, for
// nodes with nothing to persist. It behaves as a set on a datastore does,
// at a fraction of the cost per event: encodings are copied into slabs,
// and each index value's keys sit in a sorted list, with no keys to format
// and no strings to compare (package memset).
func NewMemory(opts Options) *Set {
	return withBackend(memoryBackend{memset.New()}, opts, nil, nil, nil)
}

// memoryBackend is a set's backend over a memset.Store.
type memoryBackend struct{ *memset.Store }

var _ backend = memoryBackend{}

func (b memoryBackend) write(_ context.Context, recs []record) error {
	b.Write(recs)
	return nil
}

func (b memoryBackend) event(_ context.Context, k Key) ([]byte, error) {
	if data, ok := b.Event(k); ok {
		return data, nil
	}
	return nil, fmt.Errorf("%w: %v", ErrNotFound, k.ID())
}

func (b memoryBackend) keyOf(_ context.Context, id events.ID) (Key, error) {
	if k, ok := b.KeyOf(id); ok {
		return k, nil
	}
	return Key{}, fmt.Errorf("%w: %v", ErrNotFound, id)
}

// list lists the keys of r, from its start (or its end).
func (b memoryBackend) list(ctx context.Context, i Index, value string, r Range, descending bool, fn func(Key) bool) error {
	var mi memset.Index
	var v memset.Value
	switch i {
	case ByCorrelation:
		t, err := events.ParseTraceID(value)
		if err != nil {
			return err
		}
		mi, v = memset.ByTrace, memset.TraceValue(t)
	case ByNode:
		mi, v = memset.ByNode, memset.DigestValue(digest(value))
	case ByKind:
		mi, v = memset.ByKind, memset.DigestValue(digest(value))
	default:
		return fmt.Errorf("crdt: unknown index %v", i)
	}
	return b.List(ctx, mi, v, r.From, r.To, descending, fn)
}

func (b memoryBackend) expire(_ context.Context, before Key) (expiry, error) {
	gone, err := b.Expire(before)
	if err != nil {
		err = fmt.Errorf("%w: %v", ErrCorrupt, err)
	}
	return expiry{n: gone.Events, nodes: gone.Nodes, kinds: gone.Kinds}, err
}

func (b memoryBackend) saveHorizon(context.Context, Key) error { return nil }

func (b memoryBackend) bytes(context.Context) (total, reclaimable int64, err error) {
	return b.Bytes(), 0, nil
}
