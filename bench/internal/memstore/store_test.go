package memstore

import (
	"errors"
	"fmt"
	"testing"

	ds "github.com/ipfs/go-datastore"
	dsq "github.com/ipfs/go-datastore/query"
	dstest "github.com/ipfs/go-datastore/test"
)

// TestConformance runs go-datastore's own suite, batch tests included.
func TestConformance(t *testing.T) {
	dstest.SubtestAll(t, New())
}

func TestGetMissing(t *testing.T) {
	ctx := t.Context()
	s := New()
	if _, err := s.Get(ctx, ds.NewKey("/nope")); !errors.Is(err, ds.ErrNotFound) {
		t.Errorf("Get: got %v, want ErrNotFound", err)
	}
	if n, err := s.GetSize(ctx, ds.NewKey("/nope")); n != -1 || !errors.Is(err, ds.ErrNotFound) {
		t.Errorf("GetSize: got %d, %v; want -1, ErrNotFound", n, err)
	}
	if ok, err := s.Has(ctx, ds.NewKey("/nope")); ok || err != nil {
		t.Errorf("Has: got %v, %v; want false, nil", ok, err)
	}
	if err := s.Delete(ctx, ds.NewKey("/nope")); err != nil {
		t.Errorf("Delete of a missing key: %v", err)
	}
}

// TestEmptyValues checks that nil and empty values, the event set's index
// entries, are stored as given.
func TestEmptyValues(t *testing.T) {
	ctx := t.Context()
	s := New()
	mustPut(t, s, "/nil", nil)
	mustPut(t, s, "/empty", []byte{})
	if v, err := s.Get(ctx, ds.NewKey("/nil")); err != nil || v != nil {
		t.Errorf("Get /nil: got %#v, %v; want nil, nil", v, err)
	}
	if v, err := s.Get(ctx, ds.NewKey("/empty")); err != nil || v == nil || len(v) != 0 {
		t.Errorf("Get /empty: got %#v, %v; want []byte{}, nil", v, err)
	}
	if n, err := s.GetSize(ctx, ds.NewKey("/nil")); n != 0 || err != nil {
		t.Errorf("GetSize /nil: got %d, %v; want 0, nil", n, err)
	}
}

// TestValuesNotAliased checks that no slice is shared between the store and
// its callers, in either direction.
func TestValuesNotAliased(t *testing.T) {
	ctx := t.Context()
	s := New()
	k := ds.NewKey("/k")

	in := []byte("abc")
	mustPut(t, s, "/k", in)
	in[0] = 'X'
	got := mustGet(t, s, "/k")
	if string(got) != "abc" {
		t.Fatalf("after modifying Put's argument: got %q, want abc", got)
	}
	got[0] = 'Y'
	if got := mustGet(t, s, "/k"); string(got) != "abc" {
		t.Fatalf("after modifying Get's result: got %q, want abc", got)
	}

	b, err := s.Batch(ctx)
	if err != nil {
		t.Fatal(err)
	}
	in = []byte("def")
	if err := b.Put(ctx, k, in); err != nil {
		t.Fatal(err)
	}
	in[0] = 'X'
	if err := b.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	in[1] = 'X'
	if got := mustGet(t, s, "/k"); string(got) != "def" {
		t.Fatalf("after modifying Batch.Put's argument: got %q, want def", got)
	}

	for _, orders := range [][]dsq.Order{nil, {dsq.OrderByValue{}}} {
		res, err := s.Query(ctx, dsq.Query{Orders: orders})
		if err != nil {
			t.Fatal(err)
		}
		es, err := res.Rest()
		if err != nil || len(es) != 1 {
			t.Fatalf("query: got %v, %v; want one entry", es, err)
		}
		es[0].Value[0] = 'Z'
		if got := mustGet(t, s, "/k"); string(got) != "def" {
			t.Fatalf("after modifying a query result (orders %v): got %q, want def", orders, got)
		}
	}
}

func TestClosed(t *testing.T) {
	ctx := t.Context()
	s := New()
	for i := range 100 {
		mustPut(t, s, key("/q", i), []byte{1})
	}
	b, err := s.Batch(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := b.Put(ctx, ds.NewKey("/b"), nil); err != nil {
		t.Fatal(err)
	}
	res, err := s.Query(ctx, dsq.Query{KeysOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	if r, ok := res.NextSync(); !ok || r.Error != nil {
		t.Fatalf("first result: %v, %v", r, ok)
	}

	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}

	k := ds.NewKey("/q")
	checks := map[string]error{}
	_, checks["Get"] = s.Get(ctx, k)
	_, checks["Has"] = s.Has(ctx, k)
	_, checks["GetSize"] = s.GetSize(ctx, k)
	checks["Put"] = s.Put(ctx, k, nil)
	checks["Delete"] = s.Delete(ctx, k)
	checks["Sync"] = s.Sync(ctx, k)
	_, checks["Query"] = s.Query(ctx, dsq.Query{})
	_, checks["Batch"] = s.Batch(ctx)
	checks["Batch.Commit"] = b.Commit(ctx)
	for name, err := range checks {
		if !errors.Is(err, ErrClosed) {
			t.Errorf("%s after Close: got %v, want ErrClosed", name, err)
		}
	}

	// The open query still returns what its current chunk holds, then
	// ErrClosed when it reads the next, then the end.
	var last dsq.Result
	var ok bool
	for {
		r, more := res.NextSync()
		if !more {
			break
		}
		last, ok = r, true
		if r.Error != nil {
			break
		}
	}
	if !ok || !errors.Is(last.Error, ErrClosed) {
		t.Errorf("open query after Close: last result %v, want ErrClosed", last)
	}
	if r, more := res.NextSync(); more {
		t.Errorf("open query after its error: got %v, want the end", r)
	}
}

func mustPut(t testing.TB, s *Store, k string, v []byte) {
	t.Helper()
	if err := s.Put(t.Context(), ds.NewKey(k), v); err != nil {
		t.Fatal(err)
	}
}

func mustGet(t testing.TB, s *Store, k string) []byte {
	t.Helper()
	v, err := s.Get(t.Context(), ds.NewKey(k))
	if err != nil {
		t.Fatal(err)
	}
	return v
}

// key returns prefix/i with i zero-padded, so keys sort as their numbers do.
func key(prefix string, i int) string {
	return fmt.Sprintf("%s/%08d", prefix, i)
}
