// Command httptrace runs three HTTP services — frontend, cart and stock —
// each on its own scopemesh node, calling each other with the propagation
// middleware. It sends one request and prints the stitched trace as every
// node sees it.
//
//	go run ./examples/httptrace
package main

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/scopemesh/scopemesh"
	"github.com/scopemesh/scopemesh/events"
	"github.com/scopemesh/scopemesh/query"
)

// service is one HTTP service with its own node.
type service struct {
	name   string
	node   *scopemesh.Node
	prop   events.Propagator
	client *http.Client
	url    string
}

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "httptrace:", err)
		os.Exit(1)
	}
}

func run() error {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cluster := fmt.Sprintf("httptrace-%d", time.Now().UnixNano())
	var svcs []*service
	for _, name := range []string{"frontend", "cart", "stock"} {
		cfg := scopemesh.Config{
			Name:        name,
			Cluster:     cluster,
			ListenAddrs: []string{"/ip4/127.0.0.1/tcp/0"},
			DisableMDNS: true,
			DHT:         scopemesh.DHTOff,
		}
		if len(svcs) > 0 {
			cfg.Bootstrap = svcs[0].node.Addrs()
		}
		node, err := scopemesh.Open(ctx, cfg)
		if err != nil {
			return err
		}
		defer node.Close()
		prop := events.Propagator{Clock: node.Clock()}
		svcs = append(svcs, &service{name: name, node: node, prop: prop, client: &http.Client{Transport: prop.Transport(nil)}})
	}
	frontend, cart, stock := svcs[0], svcs[1], svcs[2]
	if err := connectAll(ctx, svcs); err != nil {
		return err
	}

	// frontend → cart; cart asks stock about two items at once.
	handlers := map[*service]func(ctx context.Context) error{
		frontend: func(ctx context.Context) error { return frontend.call(ctx, cart, "/cart/42") },
		cart: func(ctx context.Context) error {
			var wg sync.WaitGroup
			errs := make(chan error, 2)
			for _, item := range []string{"apple", "pear"} {
				wg.Add(1)
				go func() { defer wg.Done(); errs <- cart.call(ctx, stock, "/stock/"+item) }()
			}
			wg.Wait()
			close(errs)
			for err := range errs {
				if err != nil {
					return err
				}
			}
			return nil
		},
		stock: func(context.Context) error { return nil },
	}
	for _, s := range svcs {
		if err := s.serve(handlers[s]); err != nil {
			return err
		}
	}

	reqCtx := events.ContextWithTrace(ctx, events.NewTraceID())
	trace, _ := events.TraceFromContext(reqCtx)
	if err := frontend.get(reqCtx, frontend.url+"/checkout"); err != nil {
		return err
	}
	for _, s := range svcs {
		t, err := s.node.Trace(ctx, trace)
		if err != nil {
			return err
		}
		fmt.Printf("\nAs %s's node sees it:\n", s.name)
		if err := t.Render(os.Stdout, query.RenderOptions{}); err != nil {
			return err
		}
	}
	return nil
}

// connectAll waits until every node is connected to every other.
func connectAll(ctx context.Context, svcs []*service) error {
	for _, a := range svcs {
		for _, b := range svcs {
			if a != b {
				if err := a.node.Connect(ctx, b.node.Addrs()[0]); err != nil {
					return err
				}
			}
		}
	}
	return nil
}

// serve starts the service's HTTP server on loopback. Each request is
// recorded on the service's node, handled by work, and its reply recorded.
func (s *service) serve(work func(ctx context.Context) error) error {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	s.url = "http://" + ln.Addr().String()
	h := s.prop.Middleware(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		in, err := s.node.Record(r.Context(), events.Event{Kind: "http.server", Attrs: map[string]string{"service": s.name, "path": r.URL.Path}})
		if err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		ctx := events.ContextWithParent(r.Context(), in.ID)
		status := "200"
		if err := work(ctx); err != nil {
			status = "502"
			w.WriteHeader(http.StatusBadGateway)
		}
		s.node.Record(ctx, events.Event{Kind: "http.reply", Attrs: map[string]string{"service": s.name, "status": status}})
	}))
	go http.Serve(ln, h)
	return nil
}

// call records an outgoing call on s's node and makes it, under ctx's trace.
func (s *service) call(ctx context.Context, to *service, path string) error {
	out, err := s.node.Record(ctx, events.Event{Kind: "http.client", Attrs: map[string]string{"to": to.name, "path": path}})
	if err != nil {
		return err
	}
	return s.get(events.ContextWithParent(ctx, out.ID), to.url+path)
}

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
		return fmt.Errorf("%s: %s", strings.TrimPrefix(url, "http://"), resp.Status)
	}
	return nil
}
