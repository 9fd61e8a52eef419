package memstore

import (
	"fmt"
	"sync"
	"testing"

	ds "github.com/ipfs/go-datastore"
	dsq "github.com/ipfs/go-datastore/query"
)

// TestBatchAtomic commits batches that each replace one generation of keys
// with the next, while a reader queries them. A query no larger than its
// first chunk is read under one read lock, so it must always see exactly
// one whole generation.
func TestBatchAtomic(t *testing.T) {
	ctx := t.Context()
	const size, generations = 20, 2000
	if size > firstChunk {
		t.Fatalf("size %d must fit in one chunk (%d)", size, firstChunk)
	}
	genKey := func(g, i int) ds.Key { return ds.NewKey(fmt.Sprintf("/b/%d-%d", i, g)) }

	s := New()
	for i := range size {
		mustPut(t, s, genKey(0, i).String(), []byte("0"))
	}
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		defer close(done)
		for g := 1; g <= generations; g++ {
			b, err := s.Batch(ctx)
			if err != nil {
				t.Error(err)
				return
			}
			for i := range size {
				// Interleave deletes and puts, so that a reader
				// seeing the batch half done would see a count
				// other than size, or mixed generations.
				if err := b.Delete(ctx, genKey(g-1, i)); err != nil {
					t.Error(err)
				}
				if err := b.Put(ctx, genKey(g, i), fmt.Appendf(nil, "%d", g)); err != nil {
					t.Error(err)
				}
			}
			if err := b.Commit(ctx); err != nil {
				t.Error(err)
				return
			}
		}
	})
	reads := 0
	for finished := false; !finished; reads++ {
		select {
		case <-done:
			finished = true
		default:
		}
		es, err := queryAll(ctx, s, dsq.Query{Prefix: "/b"})
		if err != nil {
			t.Fatal(err)
		}
		if len(es) != size {
			t.Fatalf("read %d: saw %d keys, want %d", reads, len(es), size)
		}
		for _, e := range es[1:] {
			if string(e.Value) != string(es[0].Value) {
				t.Fatalf("read %d: saw generations %s and %s together", reads, es[0].Value, e.Value)
			}
		}
	}
	wg.Wait()
}

// TestBatchOrder checks that a batch's writes apply in the order made, and
// that a committed batch starts over empty.
func TestBatchOrder(t *testing.T) {
	ctx := t.Context()
	s := New()
	mustPut(t, s, "/gone", []byte("x"))
	b, err := s.Batch(ctx)
	if err != nil {
		t.Fatal(err)
	}
	k := ds.NewKey("/k")
	mustNil(t, b.Put(ctx, k, []byte("1")))
	mustNil(t, b.Delete(ctx, k))
	mustNil(t, b.Put(ctx, k, []byte("2")))
	mustNil(t, b.Delete(ctx, ds.NewKey("/gone")))
	mustNil(t, b.Put(ctx, ds.NewKey("/new"), nil))
	mustNil(t, b.Delete(ctx, ds.NewKey("/new")))
	if ok, _ := s.Has(ctx, k); ok {
		t.Fatal("batch visible before Commit")
	}
	mustNil(t, b.Commit(ctx))
	if got := mustGet(t, s, "/k"); string(got) != "2" {
		t.Errorf("/k: got %q, want the last Put, 2", got)
	}
	for _, gone := range []string{"/gone", "/new"} {
		if ok, _ := s.Has(ctx, ds.NewKey(gone)); ok {
			t.Errorf("%s: present, want deleted", gone)
		}
	}

	// Reused, the batch must not replay what it already committed.
	mustPut(t, s, "/k", []byte("3"))
	mustNil(t, b.Put(ctx, ds.NewKey("/other"), nil))
	mustNil(t, b.Commit(ctx))
	if got := mustGet(t, s, "/k"); string(got) != "3" {
		t.Errorf("/k after a second Commit: got %q, want 3", got)
	}
}
