package events

import "net/http"

// Middleware returns a handler that extracts the trace, parent and HLC from
// each request's headers (see Extract) into the request's context before it
// calls next. With a Clock, it also stamps the response with the server's
// time, so that the caller's clock moves past everything the server did.
func (p Propagator) Middleware(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ctx := p.Extract(r.Context(), HeaderCarrier(r.Header))
		if p.Clock == nil {
			next.ServeHTTP(w, r.WithContext(ctx))
			return
		}
		cw := &clockWriter{ResponseWriter: w, p: p}
		next.ServeHTTP(cw, r.WithContext(ctx))
		cw.stamp() // a handler that wrote nothing: headers are not sent yet
	})
}

// clockWriter sets the HLC header just before the response's headers go
// out.
type clockWriter struct {
	http.ResponseWriter
	p       Propagator
	stamped bool
}

func (w *clockWriter) stamp() {
	if !w.stamped {
		w.stamped = true
		w.Header().Set(hlcField, w.p.Clock.Now().String())
	}
}

func (w *clockWriter) WriteHeader(code int) {
	w.stamp()
	w.ResponseWriter.WriteHeader(code)
}

func (w *clockWriter) Write(b []byte) (int, error) {
	w.stamp()
	return w.ResponseWriter.Write(b)
}

// Unwrap lets http.ResponseController reach the underlying writer (Flush,
// Hijack, deadlines).
func (w *clockWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// Transport returns a RoundTripper that injects the trace and parent of
// each request's context, and the time of p.Clock, into a copy of the
// request's headers (see Inject) before it calls base, and moves p.Clock
// past the HLC a response carries. A nil base means http.DefaultTransport.
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
	resp, err := t.base.RoundTrip(r)
	if resp != nil && t.p.Clock != nil {
		if v := resp.Header.Get(hlcField); v != "" {
			t.p.updateClock(v)
		}
	}
	return resp, err
}

// CloseIdleConnections closes the idle connections of the base transport,
// if it can, so that http.Client.CloseIdleConnections still reaches it.
func (t *transport) CloseIdleConnections() {
	if c, ok := t.base.(interface{ CloseIdleConnections() }); ok {
		c.CloseIdleConnections()
	}
}
