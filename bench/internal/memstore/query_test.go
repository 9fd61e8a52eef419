package memstore

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"runtime"
	"slices"
	"strings"
	"sync"
	"testing"

	ds "github.com/ipfs/go-datastore"
	dsq "github.com/ipfs/go-datastore/query"
)

func TestQueryPrefix(t *testing.T) {
	s := New()
	// In byte order: '-' < '/' < '0'.
	all := []string{"/a", "/a-", "/a-/x", "/a/b", "/a/b/c", "/a/c", "/a0", "/a0/x", "/ab", "/ab/c", "/b"}
	for _, k := range all {
		mustPut(t, s, k, nil)
	}
	tests := []struct {
		prefix string
		want   []string
	}{
		{"", all},
		{"/", all},
		{"/./", all},
		{"/a", []string{"/a/b", "/a/b/c", "/a/c"}},
		{"/a/", []string{"/a/b", "/a/b/c", "/a/c"}},
		{"a", []string{"/a/b", "/a/b/c", "/a/c"}},
		{"/b/../a", []string{"/a/b", "/a/b/c", "/a/c"}},
		{"/a/b", []string{"/a/b/c"}},
		{"/a/b/c", nil},
		{"/a-", []string{"/a-/x"}},
		{"/a0", []string{"/a0/x"}},
		{"/ab", []string{"/ab/c"}},
		{"/b", nil},
		{"/c", nil},
	}
	for _, tt := range tests {
		for _, desc := range []bool{false, true} {
			q := dsq.Query{Prefix: tt.prefix, KeysOnly: true}
			want := slices.Clone(tt.want)
			if desc {
				q.Orders = []dsq.Order{dsq.OrderByKeyDescending{}}
				slices.Reverse(want)
			}
			if got := queryKeys(t, s, q); !slices.Equal(got, want) {
				t.Errorf("prefix %q, descending %v: got %q, want %q", tt.prefix, desc, got, want)
			}
		}
	}
}

// TestQueryStreamed checks filters, offset and limit applied while streaming,
// in both directions and across chunk boundaries.
func TestQueryStreamed(t *testing.T) {
	s := New()
	for i := range 1000 {
		mustPut(t, s, key("/q", i), []byte{byte(i % 3)})
		mustPut(t, s, key("/r", i), nil) // outside the prefix, on both sides
		mustPut(t, s, key("/p", i), nil)
	}
	notThree := dsq.FilterValueCompare{Op: dsq.NotEqual, Value: []byte{0}}
	below := dsq.FilterKeyCompare{Op: dsq.LessThan, Key: key("/q", 900)}
	tests := []struct {
		name          string
		q             dsq.Query
		first, count  int // expected i of the first result, and result count
		step          int // expected difference between successive i
		skipMultiple3 bool
	}{
		{"all", dsq.Query{}, 0, 1000, 1, false},
		{"limit", dsq.Query{Limit: 5}, 0, 5, 1, false},
		{"offset", dsq.Query{Offset: 300}, 300, 700, 1, false},
		{"offset+limit", dsq.Query{Offset: 300, Limit: 400}, 300, 400, 1, false},
		{"offset past end", dsq.Query{Offset: 1000}, 0, 0, 1, false},
		{"filters", dsq.Query{Filters: []dsq.Filter{notThree, below}}, 1, 600, 1, true},
		{"filters+offset+limit", dsq.Query{Filters: []dsq.Filter{notThree, below}, Offset: 10, Limit: 300}, 16, 300, 1, true},
		{"key order", dsq.Query{Orders: []dsq.Order{dsq.OrderByKey{}}, Limit: 2}, 0, 2, 1, false},
		{"key order pointer", dsq.Query{Orders: []dsq.Order{&dsq.OrderByKey{}}, Limit: 2}, 0, 2, 1, false},
		{"descending", dsq.Query{Orders: []dsq.Order{dsq.OrderByKeyDescending{}}}, 999, 1000, -1, false},
		{"descending pointer", dsq.Query{Orders: []dsq.Order{&dsq.OrderByKeyDescending{}}, Offset: 1, Limit: 3}, 998, 3, -1, false},
		{"descending, then by value", dsq.Query{Orders: []dsq.Order{dsq.OrderByKeyDescending{}, dsq.OrderByValue{}}, Limit: 300}, 999, 300, -1, false},
		{"descending filtered", dsq.Query{Orders: []dsq.Order{dsq.OrderByKeyDescending{}}, Filters: []dsq.Filter{notThree, below}, Offset: 1, Limit: 2}, 898, 2, -1, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tt.q.Prefix = "/q"
			var want []string
			for i := tt.first; len(want) < tt.count; i += tt.step {
				if tt.skipMultiple3 && i%3 == 0 {
					continue
				}
				want = append(want, key("/q", i))
			}
			if got := queryKeys(t, s, tt.q); !slices.Equal(got, want) {
				t.Errorf("got %d keys %q…, want %d keys %q…", len(got), head(got), len(want), head(want))
			}
		})
	}
}

// TestQueryModel checks queries against MapDatastore, whose query is
// go-datastore's reference implementation, over random keys, writes and
// queries: every prefix, filter, order, offset and limit combination.
func TestQueryModel(t *testing.T) {
	ctx := t.Context()
	r := rand.New(rand.NewPCG(1, 2))
	s, model := New(), ds.NewMapDatastore()
	put := func(k string, v []byte) {
		mustPut(t, s, k, v)
		if err := model.Put(ctx, ds.NewKey(k), slices.Clone(v)); err != nil {
			t.Fatal(err)
		}
	}
	for range 3000 {
		put(randKey(r), randValue(r))
	}
	for round := range 400 {
		// Write between queries, directly and in batches.
		b, err := s.Batch(ctx)
		if err != nil {
			t.Fatal(err)
		}
		for range r.IntN(20) {
			k := ds.NewKey(randKey(r))
			if r.IntN(3) == 0 {
				mustNil(t, b.Delete(ctx, k))
				mustNil(t, model.Delete(ctx, k))
			} else {
				v := randValue(r)
				mustNil(t, b.Put(ctx, k, v))
				mustNil(t, model.Put(ctx, k, slices.Clone(v)))
			}
		}
		mustNil(t, b.Commit(ctx))
		put(randKey(r), randValue(r))

		q := randQuery(r)
		got, err := queryAll(ctx, s, q)
		if err != nil {
			t.Fatal(err)
		}
		mq := q
		if len(mq.Orders) == 0 {
			mq.Orders = []dsq.Order{dsq.OrderByKey{}} // the order Store promises
		}
		want, err := queryAll(ctx, model, mq)
		if err != nil {
			t.Fatal(err)
		}
		if !equalEntries(got, want) {
			t.Fatalf("round %d, %s: got %d entries %v…, want %d entries %v…", round, q, len(got), headEntries(got), len(want), headEntries(want))
		}
	}
}

func randKey(r *rand.Rand) string {
	// Few first segments, so that some prefixes hold more than a chunk;
	// segments that differ from "a" only past it, or by a byte either
	// side of '/', to catch prefix bounds that are off by one.
	first := []string{"a", "ab", "a0", "a-", "b"}
	rest := []string{"a", "ab", "a0", "a-", "a.b", "0", "b"}
	parts := []string{first[r.IntN(len(first))]}
	for range r.IntN(4) {
		if r.IntN(2) == 0 {
			parts = append(parts, rest[r.IntN(len(rest))])
		} else {
			parts = append(parts, fmt.Sprint(r.IntN(50)))
		}
	}
	return "/" + strings.Join(parts, "/")
}

func randValue(r *rand.Rand) []byte {
	v := make([]byte, r.IntN(4))
	for i := range v {
		v[i] = byte(r.IntN(4))
	}
	return v
}

func randQuery(r *rand.Rand) dsq.Query {
	var q dsq.Query
	switch k := randKey(r); r.IntN(8) {
	case 0:
		q.Prefix = ""
	case 1:
		q.Prefix = "/"
	case 2:
		q.Prefix = k + "/"
	case 3:
		q.Prefix = k[1:] // no leading slash
	case 4:
		q.Prefix = "/b/.." + k
	default:
		q.Prefix = k
		if n := strings.Count(k, "/"); n > 1 && r.IntN(2) == 0 {
			q.Prefix = k[:strings.LastIndexByte(k, '/')] // a parent, likely holding more
		}
	}
	ops := []dsq.Op{dsq.Equal, dsq.NotEqual, dsq.LessThan, dsq.LessThanOrEqual, dsq.GreaterThan, dsq.GreaterThanOrEqual}
	for range r.IntN(3) {
		switch r.IntN(3) {
		case 0:
			q.Filters = append(q.Filters, dsq.FilterKeyCompare{Op: ops[r.IntN(len(ops))], Key: randKey(r)})
		case 1:
			q.Filters = append(q.Filters, dsq.FilterKeyPrefix{Prefix: randKey(r)[:2]})
		case 2:
			q.Filters = append(q.Filters, dsq.FilterValueCompare{Op: ops[r.IntN(len(ops))], Value: randValue(r)})
		}
	}
	orders := [][]dsq.Order{
		nil,
		{dsq.OrderByKey{}},
		{&dsq.OrderByKey{}},
		{dsq.OrderByKeyDescending{}},
		{&dsq.OrderByKeyDescending{}},
		{dsq.OrderByKeyDescending{}, dsq.OrderByValue{}},
		{dsq.OrderByValue{}},
		{dsq.OrderByValueDescending{}, dsq.OrderByKeyDescending{}},
		{dsq.OrderByFunction(func(a, b dsq.Entry) int { return len(a.Key) - len(b.Key) })},
	}
	q.Orders = orders[r.IntN(len(orders))]
	if r.IntN(2) == 0 {
		q.Offset = r.IntN(600)
	}
	if r.IntN(2) == 0 {
		q.Limit = 1 + r.IntN(600)
	}
	q.KeysOnly = r.IntN(2) == 0
	q.ReturnsSizes = r.IntN(2) == 0
	return q
}

func TestQueryCloseEarly(t *testing.T) {
	s := New()
	for i := range 1000 {
		mustPut(t, s, key("/q", i), []byte{1})
	}
	res, err := s.Query(t.Context(), dsq.Query{Prefix: "/q"})
	if err != nil {
		t.Fatal(err)
	}
	for i := range 3 {
		if r, ok := res.NextSync(); !ok || r.Error != nil || r.Key != key("/q", i) {
			t.Fatalf("result %d: got %v, %v", i, r, ok)
		}
	}
	if err := res.Close(); err != nil {
		t.Fatal(err)
	}
	if err := res.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
	if r, ok := res.NextSync(); ok {
		t.Errorf("NextSync after Close: got %v, want the end", r)
	}
	// The closed query holds no lock.
	mustPut(t, s, "/after", nil)
}

// TestQueryInterleaved reads a query while its caller and other goroutines
// use the store: the caller calls Get and Put between results, as the event
// set does, while writers add and remove keys among the ones read. Under
// -race this also checks that results share no memory with the writers.
func TestQueryInterleaved(t *testing.T) {
	ctx := t.Context()
	s := New()
	const n = 3000
	// Even keys stay for the whole test; writers churn the odd ones.
	for i := 0; i < 2*n; i += 2 {
		mustPut(t, s, key("/q", i), []byte{byte(i)})
	}
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for w := range 4 {
		wg.Go(func() {
			r := rand.New(rand.NewPCG(uint64(w), 0))
			for {
				select {
				case <-stop:
					return
				default:
				}
				k := ds.NewKey(key("/q", 2*r.IntN(n)+1))
				var err error
				if r.IntN(2) == 0 {
					err = s.Put(ctx, k, []byte{1})
				} else {
					err = s.Delete(ctx, k)
				}
				if err != nil {
					t.Error(err)
					return
				}
			}
		})
	}
	defer func() { close(stop); wg.Wait() }()

	for _, desc := range []bool{false, true} {
		q := dsq.Query{Prefix: "/q"}
		if desc {
			q.Orders = []dsq.Order{dsq.OrderByKeyDescending{}}
		}
		res, err := s.Query(ctx, q)
		if err != nil {
			t.Fatal(err)
		}
		seen := map[string]bool{}
		prev := ""
		for r, ok := res.NextSync(); ok; r, ok = res.NextSync() {
			if r.Error != nil {
				t.Fatal(r.Error)
			}
			if prev != "" && (r.Key <= prev) != desc {
				t.Fatalf("descending %v: %q after %q", desc, r.Key, prev)
			}
			prev = r.Key
			seen[r.Key] = true
			// Were the query holding its read lock here, this Put
			// would deadlock at once, and the Get as soon as a
			// writer waited.
			if _, err := s.Get(ctx, ds.RawKey(r.Key)); err != nil && !errors.Is(err, ds.ErrNotFound) {
				t.Fatal(err)
			}
			if err := s.Put(ctx, ds.NewKey("/other"+r.Key), nil); err != nil {
				t.Fatal(err)
			}
			r.Value[0]++ // ours to modify
		}
		for i := 0; i < 2*n; i += 2 {
			if !seen[key("/q", i)] {
				t.Fatalf("descending %v: %s, present throughout, was skipped", desc, key("/q", i))
			}
		}
	}
}

// TestQueryNoGoroutines checks that a streamed query runs on its caller's
// goroutine.
func TestQueryNoGoroutines(t *testing.T) {
	s := New()
	for i := range 1000 {
		mustPut(t, s, key("/q", i), nil)
	}
	before := runtime.NumGoroutine()
	res, err := s.Query(t.Context(), dsq.Query{Prefix: "/q", KeysOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	defer res.Close()
	for range 500 {
		if _, ok := res.NextSync(); !ok {
			t.Fatal("results ended early")
		}
	}
	if after := runtime.NumGoroutine(); after > before {
		t.Errorf("goroutines: %d while reading a query, %d before", after, before)
	}
}

func queryAll(ctx context.Context, d ds.Datastore, q dsq.Query) ([]dsq.Entry, error) {
	res, err := d.Query(ctx, q)
	if err != nil {
		return nil, err
	}
	return res.Rest()
}

func queryKeys(t *testing.T, s *Store, q dsq.Query) []string {
	t.Helper()
	es, err := queryAll(t.Context(), s, q)
	if err != nil {
		t.Fatal(err)
	}
	var keys []string
	for _, e := range es {
		keys = append(keys, e.Key)
	}
	return keys
}

func equalEntries(a, b []dsq.Entry) bool {
	return slices.EqualFunc(a, b, func(x, y dsq.Entry) bool {
		return x.Key == y.Key && bytes.Equal(x.Value, y.Value) && (x.Value == nil) == (y.Value == nil) && x.Size == y.Size
	})
}

func head(keys []string) []string { return keys[:min(len(keys), 3)] }

func headEntries(es []dsq.Entry) []dsq.Entry { return es[:min(len(es), 3)] }

func mustNil(t testing.TB, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}
