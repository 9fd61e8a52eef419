package memstore

import (
	"bytes"
	"context"

	ds "github.com/ipfs/go-datastore"
)

var _ ds.Batch = (*batch)(nil)

// batch buffers writes until Commit. It is not safe for concurrent use, like
// any datastore.Batch.
type batch struct {
	s *Store
	// ops are applied in order, so a later write to a key wins, as it
	// would had the writes gone to the store one by one.
	ops []op
}

type op struct {
	key    string
	value  []byte // owned by the batch, then by the store
	delete bool
}

// Put buffers a write of a copy of value, so the caller may reuse value
// before Commit.
func (b *batch) Put(_ context.Context, key ds.Key, value []byte) error {
	b.ops = append(b.ops, op{key: key.String(), value: bytes.Clone(value)})
	return nil
}

// Delete buffers the deletion of key.
func (b *batch) Delete(_ context.Context, key ds.Key) error {
	b.ops = append(b.ops, op{key: key.String(), delete: true})
	return nil
}

// Commit applies the buffered writes under one write lock, so no reader sees
// part of the batch: each Get, Has, GetSize and query chunk sees all of it or
// none. The batch is empty afterwards and may be reused; after a failed
// Commit it still holds its writes.
func (b *batch) Commit(_ context.Context) error {
	s := b.s
	s.mu.Lock()
	if s.mu.tree == nil {
		s.mu.Unlock()
		return ErrClosed
	}
	for _, o := range b.ops {
		if o.delete {
			s.mu.tree.Delete(o.key)
		} else {
			s.mu.tree.Set(o.key, o.value)
		}
	}
	s.mu.Unlock()
	// The store now owns the values: drop the batch's references so that
	// reusing the batch cannot reach them.
	clear(b.ops)
	b.ops = b.ops[:0]
	return nil
}
