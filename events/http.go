package events

import "net/http"

// Middleware returns a handler that extracts the trace, parent and HLC from
// each request's headers (see Extract) into the request's context before it
// calls next.
func (p Propagator) Middleware(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ctx := p.Extract(r.Context(), HeaderCarrier(r.Header))
		next.ServeHTTP(w, r.WithContext(ctx))
	})
}

// Transport returns a RoundTripper that injects the trace and parent of
// each request's context, and the time of p.Clock, into a copy of the
// request's headers (see Inject) before it calls base. A nil base means
// http.DefaultTransport.
func (p Propagator) Transport(base http.RoundTripper) http.RoundTripper {
	if base == nil {
		base = http.DefaultTransport
	}
	return &transport{p: p, base: base}
}

type transport struct {
	p    Propagator
	base http.RoundTripper
}

var _ http.RoundTripper = (*transport)(nil)

func (t *transport) RoundTrip(req *http.Request) (*http.Response, error) {
	// A RoundTripper must not modify the request it is given.
	r := req.Clone(req.Context())
	if r.Header == nil {
		r.Header = make(http.Header)
	}
	t.p.Inject(r.Context(), HeaderCarrier(r.Header))
	return t.base.RoundTrip(r)
}

// CloseIdleConnections closes the idle connections of the base transport,
// if it can, so that http.Client.CloseIdleConnections still reaches it.
func (t *transport) CloseIdleConnections() {
	if c, ok := t.base.(interface{ CloseIdleConnections() }); ok {
		c.CloseIdleConnections()
	}
}
