package otelbridge_test

import (
	"context"
	"io"
	"net"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"go.opentelemetry.io/contrib/instrumentation/net/http/otelhttp"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	semconv "go.opentelemetry.io/otel/semconv/v1.43.0"

	"github.com/scopemesh/scopemesh"
	"github.com/scopemesh/scopemesh/events"
	"github.com/scopemesh/scopemesh/internal/poll"
	"github.com/scopemesh/scopemesh/internal/testcluster"
	"github.com/scopemesh/scopemesh/otelbridge"
	"github.com/scopemesh/scopemesh/query"
)

var _ otelbridge.Recorder = (*scopemesh.Node)(nil)

// service is an HTTP service instrumented with otelhttp, exporting its
// spans to its own node and to a span recorder the services share.
type service struct {
	name   string
	node   *scopemesh.Node
	tp     *sdktrace.TracerProvider
	client *http.Client
	url    string
}

func newService(t *testing.T, name string, spans *tracetest.SpanRecorder) *service {
	node := testcluster.Open(t, name)
	tp := sdktrace.NewTracerProvider(
		sdktrace.WithBatcher(otelbridge.New(node, otelbridge.Config{})),
		sdktrace.WithSpanProcessor(spans),
		sdktrace.WithResource(resource.NewSchemaless(semconv.ServiceName(name))),
	)
	t.Cleanup(func() { tp.Shutdown(context.Background()) })
	opts := []otelhttp.Option{otelhttp.WithTracerProvider(tp), otelhttp.WithPropagators(propagation.TraceContext{})}
	return &service{name: name, node: node, tp: tp, client: &http.Client{Transport: otelhttp.NewTransport(nil, opts...)}}
}

// serve serves handle, instrumented, on loopback.
func (s *service) serve(t *testing.T, handle func(ctx context.Context) error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s.url = "http://" + ln.Addr().String()
	h := otelhttp.NewHandler(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if err := handle(r.Context()); err != nil {
			http.Error(w, err.Error(), http.StatusBadGateway)
		}
	}), s.name, otelhttp.WithTracerProvider(s.tp), otelhttp.WithPropagators(propagation.TraceContext{}))
	srv := &http.Server{Handler: h}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
}

// get calls url with ctx's span as the parent.
func (s *service) get(ctx context.Context, url string) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return err
	}
	resp, err := s.client.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	io.Copy(io.Discard, resp.Body)
	if resp.StatusCode != http.StatusOK {
		return &httpError{url, resp.Status}
	}
	return nil
}

type httpError struct{ url, status string }

func (e *httpError) Error() string { return e.url + ": " + e.status }

// One request through three services, each with its own node: the trace
// any node assembles has every span, in the tree and order the spans
// themselves make.
func TestThreeServicesOneTrace(t *testing.T) {
	spans := tracetest.NewSpanRecorder()
	frontend, cart, stock := newService(t, "frontend", spans), newService(t, "cart", spans), newService(t, "stock", spans)
	svcs := []*service{frontend, cart, stock}
	for _, a := range svcs {
		for _, b := range svcs {
			if a != b {
				if err := a.node.Connect(context.Background(), b.node.Addrs()[0]); err != nil {
					t.Fatal(err)
				}
			}
		}
	}
	stock.serve(t, func(context.Context) error { return nil })
	cart.serve(t, func(ctx context.Context) error {
		for _, item := range []string{"apple", "pear"} {
			if err := cart.get(ctx, stock.url+"/stock/"+item); err != nil {
				return err
			}
		}
		return nil
	})
	frontend.serve(t, func(ctx context.Context) error { return frontend.get(ctx, cart.url+"/cart/42") })

	resp, err := http.Get(frontend.url + "/checkout")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("checkout: %s", resp.Status)
	}
	for _, s := range svcs {
		if err := s.tp.ForceFlush(context.Background()); err != nil {
			t.Fatal(err)
		}
	}

	ended := spans.Ended()
	// frontend server, client; cart server, 2 clients; stock 2 servers.
	if len(ended) != 7 {
		t.Fatalf("%d spans ended, want 7", len(ended))
	}
	traceID := events.TraceID(ended[0].SpanContext().TraceID())
	// The spans' tree: each span's children, by start.
	bySpan := map[string]sdktrace.ReadOnlySpan{}
	otelChildren := map[string][]string{}
	for _, s := range ended {
		bySpan[s.SpanContext().SpanID().String()] = s
	}
	byStart := slices.Clone(ended)
	slices.SortFunc(byStart, func(a, b sdktrace.ReadOnlySpan) int { return a.StartTime().Compare(b.StartTime()) })
	var otelOrder []string
	for _, s := range byStart {
		id := s.SpanContext().SpanID().String()
		otelOrder = append(otelOrder, id)
		parent := ""
		if p := s.Parent(); p.IsValid() {
			parent = p.SpanID().String()
		}
		otelChildren[parent] = append(otelChildren[parent], id)
	}

	for _, s := range svcs {
		var tr query.Trace
		poll.Until(t, 20*time.Second, s.name+"'s node to hold every span", func() bool {
			tr, err = s.node.Trace(context.Background(), traceID)
			// The members' names come with their records, which
			// follow the connections.
			return err == nil && len(tr.Events) == len(ended) && len(tr.Names) == len(svcs)
		})
		tree := query.NewTrace(traceID, tr.Events) // as a client of the JSON would
		tree.Complete, tree.Names = tr.Complete, tr.Names
		var order []string
		children := map[string][]string{}
		for _, e := range tree.Events {
			id := e.Attrs[events.AttrSpanID]
			order = append(order, id)
			parent := ""
			if p, ok := tree.Parent(e.ID); ok {
				parent = p.Attrs[events.AttrSpanID]
			}
			children[parent] = append(children[parent], id)
			span := bySpan[id]
			if span == nil || e.Kind != span.Name() || e.Attrs[events.AttrDuration] != span.EndTime().Sub(span.StartTime()).String() {
				t.Fatalf("%s: event %s %v has no span of its name and duration", s.name, e.Kind, e.Attrs)
			}
			if v, _ := span.Resource().Set().Value(semconv.ServiceNameKey); e.Attrs["service.name"] != v.Emit() {
				t.Errorf("%s: %s recorded by %s", s.name, e.Kind, e.Attrs["service.name"])
			}
		}
		if !slices.Equal(order, otelOrder) {
			t.Errorf("%s: events in order %v, spans by start %v", s.name, order, otelOrder)
		}
		for parent, kids := range otelChildren {
			if !slices.Equal(children[parent], kids) {
				t.Errorf("%s: children of %q: %v, spans %v", s.name, parent, children[parent], kids)
			}
		}
		if roots := tree.Roots(); len(roots) != 1 || roots[0].Attrs["span.kind"] != "server" || roots[0].Attrs["service.name"] != "frontend" {
			t.Errorf("%s: roots %v", s.name, roots)
		}
		var text strings.Builder
		tree.Render(&text, query.RenderOptions{Width: 200})
		if !strings.Contains(text.String(), "7 events on 3 nodes") || !strings.Contains(text.String(), "A = frontend   B = cart   C = stock") || strings.Count(text.String(), "─▶●") < 3 || !strings.Contains(text.String(), "s]") {
			t.Errorf("%s renders:\n%s", s.name, text.String())
		}
	}
}
