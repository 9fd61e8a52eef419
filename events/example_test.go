package events_test

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"time"

	"github.com/scopemesh/scopemesh/events"
	"github.com/scopemesh/scopemesh/hlc"
)

func ExampleSeal() {
	e, err := events.Seal(events.Event{
		Time:  hlc.Timestamp{Wall: 1_767_323_045_000_000_000},
		Node:  "12D3KooWGzh5sBvXh3ax1W3kG3sUqk8JcS2oD4ziLBEX5WwFMaYq",
		Kind:  "http.request",
		Attrs: map[string]string{"method": "GET", "path": "/orders"},
	})
	if err != nil {
		panic(err)
	}
	fmt.Println(e.ID)

	// The ID depends on the content only: filling Attrs in another order,
	// or sealing again, gives the same ID.
	same, _ := events.Seal(events.Event{
		Time:  e.Time,
		Node:  e.Node,
		Kind:  e.Kind,
		Attrs: map[string]string{"path": "/orders", "method": "GET"},
	})
	fmt.Println(same.ID == e.ID)

	// Any change to the content breaks it.
	e.Attrs = map[string]string{"method": "POST", "path": "/orders"}
	fmt.Println(events.Verify(e) != nil)
	// Output:
	// e2edb2dbb54023e04d9e16d6494a4d96410056b0af98169ac64708bc657be690
	// true
	// true
}

func ExampleUnmarshal() {
	e, _ := events.Seal(events.Event{Node: "n1", Kind: "job.done", Payload: []byte("ok")})
	b, _ := events.Marshal(e)
	back, err := events.Unmarshal(b)
	fmt.Println(len(b), back.Kind, string(back.Payload), back.ID == e.ID, err)

	b[len(b)-1] = 'K' // tamper with the payload
	_, err = events.Unmarshal(b)
	fmt.Println(err != nil)
	// Output:
	// 56 job.done ok true <nil>
	// true
}

func ExamplePropagator() {
	// Two nodes whose wall clocks disagree by 300ms.
	t0 := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	senderClock, _ := hlc.NewClock(hlc.Config{WallClock: hlc.NewManualClock(t0.Add(300 * time.Millisecond))})
	receiverClock, _ := hlc.NewClock(hlc.Config{WallClock: hlc.NewManualClock(t0)})
	sender := events.Propagator{Clock: senderClock}
	receiver := events.Propagator{Clock: receiverClock}

	trace, _ := events.ParseTraceID("4bf92f3577b34da6a3ce929d0e0e4736")
	parent, _ := events.ParseID("00f067aa0ba902b7" + "0123456789abcdef0123456789abcdef0123456789abcdef")
	ctx := events.ContextWithTrace(context.Background(), trace)
	ctx = events.ContextWithParent(ctx, parent)

	// A libp2p stream frame's header map, say.
	frame := map[string]string{}
	sender.Inject(ctx, events.MapCarrier(frame))
	fmt.Println("traceparent:", frame["traceparent"])
	fmt.Println("tracestate:", frame["tracestate"])
	fmt.Println("scopemesh-hlc:", frame["scopemesh-hlc"])

	got := receiver.Extract(context.Background(), events.MapCarrier(frame))
	gotTrace, _ := events.TraceFromContext(got)
	gotParent, _ := events.ParentFromContext(got)
	fmt.Println(gotTrace == trace, gotParent == parent)
	// The receiver's next timestamp follows the sender's, despite its
	// slower wall clock.
	fmt.Println(receiverClock.Now())
	// Output:
	// traceparent: 00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-03
	// tracestate: scopemesh=00f067aa0ba902b70123456789abcdef0123456789abcdef0123456789abcdef
	// scopemesh-hlc: 1767323045300000000.0
	// true true
	// 1767323045300000000.1
}

func ExampleNewSlogHandler() {
	h := slog.NewJSONHandler(os.Stdout, &slog.HandlerOptions{
		ReplaceAttr: func(groups []string, a slog.Attr) slog.Attr {
			if a.Key == slog.TimeKey && len(groups) == 0 {
				return slog.Attr{} // keep the output stable
			}
			return a
		},
	})
	log := slog.New(events.NewSlogHandler(h)).WithGroup("req")

	trace, _ := events.ParseTraceID("4bf92f3577b34da6a3ce929d0e0e4736")
	ctx := events.ContextWithTrace(context.Background(), trace)
	log.InfoContext(ctx, "served", "status", 200)
	// Output:
	// {"level":"INFO","msg":"served","trace_id":"4bf92f3577b34da6a3ce929d0e0e4736","req":{"status":200}}
}

func ExampleEncodeBatch() {
	var evs []events.Event
	for i := range 3 {
		e, _ := events.Seal(events.Event{Time: hlc.Timestamp{Wall: int64(i)}, Node: "n1", Kind: "tick"})
		evs = append(evs, e)
	}
	b, _ := events.EncodeBatch(evs)
	got, err := events.DecodeBatch(b)
	fmt.Println(len(b), len(got), err)
	// Output: 149 3 <nil>
}
