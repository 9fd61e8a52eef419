package main

import (
	"context"
	"encoding/base64"
	"errors"
	"strings"

	"github.com/ipfs/go-datastore"
	dsq "github.com/ipfs/go-datastore/query"

	"github.com/scopemesh/scopemesh/crdt"
)

// keyStore is a read-only datastore that holds a set's ordered index and
// nothing else: it lists the keys it was given as the set's node index
// (/n/<node>/<key>, in layout 3 as crdt/store.go documents it), which is
// all crdt.New reads to rebuild the index and all the reconciler reads. It lets
// the harness reconcile sets of ten million events through the exported
// API without sealing and storing ten million events (minutes, and about
// 10 GiB a side). Reading an event from it fails: a set over it can
// reconcile, not serve events.
type keyStore struct {
	keys   []crdt.Key // in key order
	prefix string     // /n/<segment>/: one origin node's index
}

var _ datastore.Batching = (*keyStore)(nil)

var errKeysOnly = errors.New("bench: this store holds an index only")

// The layout's mark and its text form of keys and digests (crdt/store.go,
// crdt/layout.go): base 64 in an alphabet in ASCII order, unpadded.
var (
	layoutKey = datastore.NewKey("/layout")
	keyText   = base64.NewEncoding("-0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ_abcdefghijklmnopqrstuvwxyz").WithPadding(base64.NoPadding)
)

func newKeyStore(keys []crdt.Key) *keyStore {
	// The segment stands for the origin's 8-byte digest; crdt.New only
	// counts events by it.
	return &keyStore{keys: keys, prefix: "/n/" + keyText.EncodeToString([]byte("benchkey")) + "/"}
}

func (s *keyStore) Query(_ context.Context, q dsq.Query) (dsq.Results, error) {
	i := 0
	listed := strings.HasPrefix(s.prefix, q.Prefix)
	return dsq.ResultsFromIterator(q, dsq.Iterator{Next: func() (dsq.Result, bool) {
		if !listed || i >= len(s.keys) {
			return dsq.Result{}, false
		}
		k := s.prefix + keyText.EncodeToString(s.keys[i][:])
		i++
		return dsq.Result{Entry: dsq.Entry{Key: k}}, true
	}}), nil
}

func (s *keyStore) Get(_ context.Context, k datastore.Key) ([]byte, error) {
	if k == layoutKey {
		return []byte("3"), nil
	}
	return nil, datastore.ErrNotFound
}
func (s *keyStore) Has(context.Context, datastore.Key) (bool, error) { return false, nil }
func (s *keyStore) GetSize(context.Context, datastore.Key) (int, error) {
	return -1, datastore.ErrNotFound
}
func (s *keyStore) Put(context.Context, datastore.Key, []byte) error { return errKeysOnly }
func (s *keyStore) Delete(context.Context, datastore.Key) error      { return errKeysOnly }
func (s *keyStore) Sync(context.Context, datastore.Key) error        { return nil }
func (s *keyStore) Close() error                                     { return nil }
func (s *keyStore) Batch(context.Context) (datastore.Batch, error)   { return nil, errKeysOnly }
