package scopemesh

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ipfs/go-datastore"
	dssync "github.com/ipfs/go-datastore/sync"

	"github.com/scopemesh/scopemesh/crdt"
	"github.com/scopemesh/scopemesh/events"
	"github.com/scopemesh/scopemesh/query"
)

// isolated returns cfg for a node that listens on loopback only and finds
// no peers by itself, in a cluster of its own.
func isolated(t testing.TB, cfg Config) Config {
	cfg.Cluster = t.Name()
	cfg.ListenAddrs = []string{"/ip4/127.0.0.1/tcp/0", "/ip4/127.0.0.1/udp/0/quic-v1"}
	cfg.DisableMDNS = true
	cfg.DHT = DHTOff
	return cfg
}

// open opens a node with cfg and closes it at the end of the test.
func open(t testing.TB, cfg Config) *Node {
	t.Helper()
	n, err := Open(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { n.Close() })
	return n
}

func TestRecordStampsAndStores(t *testing.T) {
	ctx := context.Background()
	n := open(t, isolated(t, Config{}))
	trace := events.NewTraceID()
	ctx = events.ContextWithTrace(ctx, trace)
	first, err := n.Record(ctx, events.Event{Kind: "job.start", Node: "forged", Attrs: map[string]string{"job": "7"}})
	if err != nil {
		t.Fatal(err)
	}
	if first.Node != n.ID() || first.Correlation != trace || first.Time.IsZero() {
		t.Fatalf("recorded %+v: want Node %s, trace %v and a time", first, n.ID(), trace)
	}
	if err := events.Verify(first); err != nil {
		t.Fatalf("recorded event does not verify: %v", err)
	}
	second, err := n.Record(events.ContextWithParent(ctx, first.ID), events.Event{Kind: "job.end"})
	if err != nil {
		t.Fatal(err)
	}
	if second.Parent != first.ID || !first.Time.Less(second.Time) {
		t.Fatalf("second event %+v: want parent %v and a later time than %v", second, first.ID, first.Time)
	}
	got, err := n.Query(ctx, query.Filter{Correlation: trace})
	if err != nil || len(got) != 2 || got[0].ID != first.ID || got[1].ID != second.ID {
		t.Fatalf("Query = %d events, %v; want the two recorded in order", len(got), err)
	}
	if _, err := n.Record(ctx, events.Event{}); !errors.Is(err, events.ErrInvalid) {
		t.Fatalf("Record without a Kind = %v, want ErrInvalid", err)
	}
	if st := n.Status(); st.Events != 2 || st.ID != n.ID() {
		t.Fatalf("Status = %+v", st)
	}
}

// A request from a span that is no event: what is recorded for it names
// the span, so the trace can join the two.
func TestRecordNamesTheRemoteParentSpan(t *testing.T) {
	n := open(t, isolated(t, Config{}))
	const tp = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
	ctx := events.Propagator{}.Extract(context.Background(), events.MapCarrier{"traceparent": tp})
	attrs := map[string]string{"path": "/cart"}
	in, err := n.Record(ctx, events.Event{Kind: "http.server", Attrs: attrs})
	if err != nil {
		t.Fatal(err)
	}
	if in.Attrs[events.AttrParentSpanID] != "00f067aa0ba902b7" || in.Attrs["path"] != "/cart" || in.Correlation.String() != "4bf92f3577b34da6a3ce929d0e0e4736" {
		t.Fatalf("recorded %+v", in)
	}
	if len(attrs) != 1 {
		t.Fatalf("Record changed the caller's attributes: %v", attrs)
	}
	// Its children name it, not the span; one that names a span keeps it.
	child, err := n.Record(events.ContextWithParent(ctx, in.ID), events.Event{Kind: "db.query"})
	if err != nil || child.Parent != in.ID || child.Attrs[events.AttrParentSpanID] != "" {
		t.Fatalf("child %+v, %v", child, err)
	}
	own, err := n.Record(ctx, events.Event{Kind: "k", Attrs: map[string]string{events.AttrParentSpanID: "0102030405060708"}})
	if err != nil || own.Attrs[events.AttrParentSpanID] != "0102030405060708" {
		t.Fatalf("an event naming its own parent span: %+v, %v", own, err)
	}
	// Of another trace, nothing.
	other, err := n.Record(ctx, events.Event{Kind: "k", Correlation: events.NewTraceID()})
	if err != nil || len(other.Attrs) != 0 {
		t.Fatalf("an event of another trace: %+v, %v", other, err)
	}
}

func TestDataDirSurvivesRestart(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	n, err := Open(ctx, isolated(t, Config{DataDir: dir}))
	if err != nil {
		t.Fatal(err)
	}
	id := n.ID()
	var last events.Event
	for range 50 {
		if last, err = n.Record(ctx, events.Event{Kind: "tick"}); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := Open(ctx, isolated(t, Config{DataDir: dir})); !errors.Is(err, ErrDataDirInUse) {
		t.Fatalf("second Open of a data dir in use = %v, want an error saying so", err)
	}
	if err := n.Close(); err != nil {
		t.Fatal(err)
	}
	info, err := os.Stat(filepath.Join(dir, identityFile))
	if err != nil || info.Mode().Perm() != 0o600 {
		t.Fatalf("identity file: %v, mode %v; want 0600", err, info.Mode())
	}

	n2 := open(t, isolated(t, Config{DataDir: dir}))
	if n2.ID() != id {
		t.Fatalf("identity changed across restart: %s, was %s", n2.ID(), id)
	}
	if n2.Status().Events != 50 {
		t.Fatalf("%d events after restart, want 50", n2.Status().Events)
	}
	next, err := n2.Record(ctx, events.Event{Kind: "tick"})
	if err != nil {
		t.Fatal(err)
	}
	if !last.Time.Less(next.Time) {
		t.Fatalf("time went backwards across restart: %v then %v", last.Time, next.Time)
	}
}

func TestBringYourOwnDatastore(t *testing.T) {
	ctx := context.Background()
	ds := dssync.MutexWrap(datastore.NewMapDatastore())
	n := open(t, isolated(t, Config{Datastore: ds}))
	if _, err := n.Record(ctx, events.Event{Kind: "x"}); err != nil {
		t.Fatal(err)
	}
	id := n.ID()
	n.Close()
	n2 := open(t, isolated(t, Config{Datastore: ds}))
	if n2.ID() != id || n2.Status().Events != 1 {
		t.Fatalf("reopened on the same datastore: ID %s (was %s), %d events", n2.ID(), id, n2.Status().Events)
	}
}

func TestConfigErrorsAllReported(t *testing.T) {
	_, err := Open(context.Background(), Config{SyncInterval: -1, MaxClockOffset: -1, DHT: 99, Bootstrap: []string{"/ip4/1.2.3.4/tcp/1"},
		Retention: time.Minute, DataDir: t.TempDir(), MaxBytes: 64 << 20})
	for _, want := range []string{"SyncInterval", "MaxClockOffset", "DHT", "Bootstrap", "Retention", "MaxBytes"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("error %v does not mention %s", err, want)
		}
	}
}

func TestSubscribe(t *testing.T) {
	ctx := context.Background()
	n := open(t, isolated(t, Config{}))
	sub, err := n.Subscribe(ctx, query.Filter{Kinds: []string{"wanted"}})
	if err != nil {
		t.Fatal(err)
	}
	for _, kind := range []string{"other", "wanted", "other", "wanted"} {
		if _, err := n.Record(ctx, events.Event{Kind: kind}); err != nil {
			t.Fatal(err)
		}
	}
	for range 2 {
		e, err := sub.Next(ctx)
		if err != nil || e.Kind != "wanted" {
			t.Fatalf("Next = %v, %v; want a 'wanted' event", e.Kind, err)
		}
	}
	sub.Close()
	if _, err := sub.Next(ctx); !errors.Is(err, ErrClosed) {
		t.Fatalf("Next after Close = %v, want ErrClosed", err)
	}

	cctx, cancel := context.WithCancel(ctx)
	sub2, err := n.Subscribe(cctx, query.Filter{})
	if err != nil {
		t.Fatal(err)
	}
	cancel()
	if _, err := sub2.Next(ctx); !errors.Is(err, ErrClosed) {
		t.Fatalf("Next after the subscription's context ended = %v, want ErrClosed", err)
	}
	if _, err := n.Subscribe(ctx, query.Filter{Limit: -1, Since: n.Clock().Now(), Until: n.Clock().Now()}); err != nil {
		t.Fatalf("Subscribe ignores Limit: %v", err)
	}
}

// TestConcurrentRecordQuerySubscribe is for the race detector: writers,
// readers and a subscriber at once.
func TestConcurrentRecordQuerySubscribe(t *testing.T) {
	ctx := context.Background()
	n := open(t, isolated(t, Config{}))
	sub, err := n.Subscribe(ctx, query.Filter{})
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Close()
	const writers, each = 4, 200
	var wg sync.WaitGroup
	for range writers {
		wg.Add(2)
		go func() {
			defer wg.Done()
			for range each {
				if _, err := n.Record(ctx, events.Event{Kind: "w"}); err != nil {
					t.Error(err)
					return
				}
			}
		}()
		go func() {
			defer wg.Done()
			for range 20 {
				if _, err := n.Query(ctx, query.Filter{Kinds: []string{"w"}, Descending: true, Limit: 10}); err != nil {
					t.Error(err)
					return
				}
			}
		}()
	}
	got := 0
	for got < writers*each {
		_, err := sub.Next(ctx)
		var gap *crdt.GapError
		if errors.As(err, &gap) {
			got += gap.Dropped
			continue
		}
		if err != nil {
			t.Fatal(err)
		}
		got++
	}
	wg.Wait()
	if n.Status().Events != writers*each {
		t.Fatalf("%d events stored, want %d", n.Status().Events, writers*each)
	}
}

// TestSlowSubscriberGetsAGap: a subscriber that does not read loses events
// beyond its buffer, learns it from a gap error, and recovers them by
// querying from the gap.
func TestSlowSubscriberGetsAGap(t *testing.T) {
	ctx := context.Background()
	n := open(t, isolated(t, Config{}))
	sub, err := n.Subscribe(ctx, query.Filter{})
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Close()
	const total = crdt.DefaultWatchBuffer + 500
	for range total {
		if _, err := n.Record(ctx, events.Event{Kind: "burst"}); err != nil {
			t.Fatal(err)
		}
	}
	seen := 0
	var gap *crdt.GapError
	for {
		_, err := sub.Next(ctx)
		if errors.As(err, &gap) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		seen++
	}
	if seen != crdt.DefaultWatchBuffer || gap.Dropped != total-seen {
		t.Fatalf("read %d then a gap of %d; want %d then %d", seen, gap.Dropped, crdt.DefaultWatchBuffer, total-crdt.DefaultWatchBuffer)
	}
	missed, err := n.Query(ctx, query.Filter{Since: gap.From.Time(), Limit: query.MaxLimit})
	if err != nil || len(missed) != gap.Dropped {
		t.Fatalf("query from the gap found %d events (%v), want %d", len(missed), err, gap.Dropped)
	}
}
