package memstore

import (
	"bytes"
	"context"
	"errors"
	"sync"

	ds "github.com/ipfs/go-datastore"
	"github.com/tidwall/btree"
)

// ErrClosed reports use of a Store, or of a query or batch on it, after
// Close.
var ErrClosed = errors.New("memstore: closed")

var (
	_ ds.Datastore = (*Store)(nil)
	_ ds.Batching  = (*Store)(nil)
)

// Store is an ordered in-memory datastore. It is safe for concurrent use by
// multiple goroutines. Methods hold mu only while they touch the tree (a
// Commit for its whole batch, a query for each chunk it reads) and never
// while caller code runs.
type Store struct {
	mu struct {
		sync.RWMutex
		// tree maps key.String() to a value that the store owns: no
		// caller holds a reference to it, and it is never modified in
		// place, only replaced. That is what lets queries pick values up
		// under the read lock and copy them after releasing it.
		// Nil once the store is closed.
		tree *btree.Map[string, []byte]
	}
}

// New returns an empty Store.
func New() *Store {
	s := &Store{}
	s.mu.tree = btree.NewMap[string, []byte](0)
	return s
}

// Get returns a copy of the value stored under key, which the caller may
// modify, or datastore.ErrNotFound.
func (s *Store) Get(_ context.Context, key ds.Key) ([]byte, error) {
	s.mu.RLock()
	if s.mu.tree == nil {
		s.mu.RUnlock()
		return nil, ErrClosed
	}
	v, ok := s.mu.tree.Get(key.String())
	s.mu.RUnlock()
	if !ok {
		return nil, ds.ErrNotFound
	}
	// The stored slice is never modified in place, so copying it after
	// unlocking is safe and keeps the critical section short.
	return bytes.Clone(v), nil
}

// Has reports whether a value is stored under key.
func (s *Store) Has(_ context.Context, key ds.Key) (bool, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.mu.tree == nil {
		return false, ErrClosed
	}
	_, ok := s.mu.tree.Get(key.String())
	return ok, nil
}

// GetSize returns the length of the value stored under key, or -1 and
// datastore.ErrNotFound.
func (s *Store) GetSize(_ context.Context, key ds.Key) (int, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.mu.tree == nil {
		return -1, ErrClosed
	}
	v, ok := s.mu.tree.Get(key.String())
	if !ok {
		return -1, ds.ErrNotFound
	}
	return len(v), nil
}

// Put stores a copy of value under key, so the caller may reuse value once
// Put returns.
func (s *Store) Put(_ context.Context, key ds.Key, value []byte) error {
	// bytes.Clone keeps nil and empty values apart, as the caller passed
	// them. Copy before locking: the copy can be large.
	v := bytes.Clone(value)
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.mu.tree == nil {
		return ErrClosed
	}
	s.mu.tree.Set(key.String(), v)
	return nil
}

// Delete removes the value stored under key. Deleting a missing key is not
// an error.
func (s *Store) Delete(_ context.Context, key ds.Key) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.mu.tree == nil {
		return ErrClosed
	}
	s.mu.tree.Delete(key.String())
	return nil
}

// Sync does nothing: there is nothing to make durable.
func (s *Store) Sync(_ context.Context, _ ds.Key) error {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.mu.tree == nil {
		return ErrClosed
	}
	return nil
}

// Close drops the stored data. Later calls on the store, and on queries and
// batches still open on it, return ErrClosed. Closing twice is not an error.
func (s *Store) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.mu.tree = nil
	return nil
}

// Batch returns a batch of writes that Commit applies atomically.
func (s *Store) Batch(_ context.Context) (ds.Batch, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.mu.tree == nil {
		return nil, ErrClosed
	}
	return &batch{s: s}, nil
}
