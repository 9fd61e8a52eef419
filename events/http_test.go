package events

import (
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/scopemesh/scopemesh/hlc"
)

// TestHTTPChain sends a request from a client through server A, which
// records an event and calls server B with it as parent. All three have
// skewed clocks. The trace must survive both hops, B must see A's event as
// parent, and each receiver's clock must move past its sender's.
func TestHTTPChain(t *testing.T) {
	clientClock, _ := manualClock(t, 200*time.Millisecond)
	aClock, _ := manualClock(t, 0)
	bClock, _ := manualClock(t, -250*time.Millisecond)
	var clockErrs []error
	onErr := func(_ string, err error) { clockErrs = append(clockErrs, err) }

	type seen struct {
		trace  TraceID
		parent ID
		sent   hlc.Timestamp // the HLC field the server received
		after  hlc.Timestamp // the server's clock once the middleware ran
	}
	var atA, atB seen
	var aEvent Event

	bProp := Propagator{Clock: bClock, OnClockError: onErr}
	b := httptest.NewServer(bProp.Middleware(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		atB.trace, _ = TraceFromContext(r.Context())
		atB.parent, _ = ParentFromContext(r.Context())
		atB.sent, _ = hlc.Parse(r.Header.Get("scopemesh-hlc"))
		atB.after = bClock.Last()
	})))
	defer b.Close()

	aProp := Propagator{Clock: aClock, OnClockError: onErr}
	aClient := &http.Client{Transport: aProp.Transport(b.Client().Transport)}
	a := httptest.NewServer(aProp.Middleware(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ctx := r.Context()
		atA.trace, _ = TraceFromContext(ctx)
		atA.parent, _ = ParentFromContext(ctx)
		atA.sent, _ = hlc.Parse(r.Header.Get("scopemesh-hlc"))
		atA.after = aClock.Last()

		var err error
		aEvent, err = Seal(Event{Time: aClock.Now(), Node: "A", Correlation: atA.trace, Parent: atA.parent, Kind: "http.request"})
		if err != nil {
			t.Error(err)
		}
		req, _ := http.NewRequestWithContext(ContextWithParent(ctx, aEvent.ID), "GET", b.URL, nil)
		resp, err := aClient.Do(req)
		if err != nil {
			t.Error(err)
			return
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
	})))
	defer a.Close()

	clientProp := Propagator{Clock: clientClock}
	client := &http.Client{Transport: clientProp.Transport(a.Client().Transport)}
	root := mustSeal(t, Event{Time: clientClock.Now(), Node: "client", Kind: "call"})
	ctx, tr := tracedContext(root.ID)
	req, _ := http.NewRequestWithContext(ctx, "GET", a.URL, nil)
	req.Header.Set("X-Original", "1")
	resp, err := client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()

	if len(req.Header) != 1 {
		t.Errorf("Transport modified the caller's request headers: %v", req.Header)
	}
	if len(clockErrs) != 0 {
		t.Fatalf("clock errors: %v", clockErrs)
	}
	if atA.trace != tr || atB.trace != tr {
		t.Fatalf("trace: client %s, A %s, B %s", tr, atA.trace, atB.trace)
	}
	if atA.parent != root.ID || atB.parent != aEvent.ID {
		t.Fatalf("parents: A got %s (want %s), B got %s (want %s)", atA.parent, root.ID, atB.parent, aEvent.ID)
	}
	if atA.sent.IsZero() || atA.after.Less(atA.sent) {
		t.Fatalf("A's clock %v is behind the client's %v", atA.after, atA.sent)
	}
	if atB.sent.IsZero() || atB.after.Less(atB.sent) || !atA.sent.Less(atB.sent) {
		t.Fatalf("B's clock %v, A sent %v after receiving %v", atB.after, atB.sent, atA.sent)
	}
	// The physical clocks did not move, so only the HLC rules can have put
	// B, whose wall clock is 450ms behind the client's, after the client.
	if next := bClock.Now(); !atA.sent.Less(next) || !aEvent.Time.Less(next) {
		t.Fatalf("B's next timestamp %v is not after the client's %v and A's event %v", next, atA.sent, aEvent.Time)
	}
}

func TestHTTPClockTooFarAhead(t *testing.T) {
	serverClock, _ := manualClock(t, 0)
	clientClock, _ := manualClock(t, time.Second)
	var got []error
	p := Propagator{Clock: serverClock, OnClockError: func(_ string, err error) { got = append(got, err) }}
	var trace TraceID
	srv := httptest.NewServer(p.Middleware(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		trace, _ = TraceFromContext(r.Context())
	})))
	defer srv.Close()

	ctx, tr := tracedContext(ID{1})
	client := &http.Client{Transport: Propagator{Clock: clientClock}.Transport(srv.Client().Transport)}
	req, _ := http.NewRequestWithContext(ctx, "GET", srv.URL, nil)
	resp, err := client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || trace != tr {
		t.Fatalf("status %d, trace %s: the request must go on", resp.StatusCode, trace)
	}
	if len(got) != 1 || !errors.Is(got[0], hlc.ErrClockOffset) {
		t.Fatalf("clock errors %v, want one ErrClockOffset", got)
	}
	if serverClock.Last().Wall > epoch.UnixNano() {
		t.Fatalf("server clock moved to %v", serverClock.Last())
	}
}

func TestMiddlewareWithoutHeadersStartsTrace(t *testing.T) {
	var trace TraceID
	var ok bool
	h := Propagator{}.Middleware(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		trace, ok = TraceFromContext(r.Context())
	}))
	h.ServeHTTP(httptest.NewRecorder(), httptest.NewRequest("GET", "/", nil))
	if !ok || trace.IsZero() {
		t.Fatal("no trace started")
	}
}

func TestTransportNilHeaderAndBase(t *testing.T) {
	rt := Propagator{}.Transport(roundTripFunc(func(r *http.Request) (*http.Response, error) {
		if r.Header.Get("traceparent") == "" {
			t.Error("no traceparent")
		}
		return &http.Response{StatusCode: 200, Body: http.NoBody}, nil
	}))
	ctx, _ := tracedContext(ID{1})
	req, _ := http.NewRequestWithContext(ctx, "GET", "http://example.invalid/", nil)
	req.Header = nil
	if _, err := rt.RoundTrip(req); err != nil {
		t.Fatal(err)
	}
	if req.Header != nil {
		t.Fatal("caller's request changed")
	}
	if (Propagator{}).Transport(nil).(*transport).base != http.DefaultTransport {
		t.Fatal("nil base is not http.DefaultTransport")
	}
}

type roundTripFunc func(*http.Request) (*http.Response, error)

func (f roundTripFunc) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }

// TestResponseCarriesServerClock: a server far ahead stamps its response,
// and the client's clock moves past everything the server issued.
func TestResponseCarriesServerClock(t *testing.T) {
	clientClock, _ := manualClock(t, 0)
	serverClock, _ := manualClock(t, 300*time.Millisecond)
	var issued hlc.Timestamp
	srv := httptest.NewServer(Propagator{Clock: serverClock}.Middleware(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		issued = serverClock.Now() // an event the server recorded
		io.WriteString(w, "ok")
	})))
	defer srv.Close()
	silent := httptest.NewServer(Propagator{Clock: serverClock}.Middleware(http.HandlerFunc(func(http.ResponseWriter, *http.Request) {})))
	defer silent.Close()

	client := &http.Client{Transport: Propagator{Clock: clientClock}.Transport(nil)}
	for _, url := range []string{srv.URL, silent.URL} {
		resp, err := client.Get(url)
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.Header.Get("scopemesh-hlc") == "" {
			t.Fatalf("%s: response has no HLC header", url)
		}
	}
	if after := clientClock.Now(); !issued.Less(after) {
		t.Fatalf("client clock %v is not past the server's event at %v", after, issued)
	}
}
