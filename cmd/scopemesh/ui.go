package main

import (
	"encoding/hex"
	"fmt"
	"html"
	"log/slog"
	"net"
	"net/http"
	"strings"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/scopemesh/scopemesh"
	"github.com/scopemesh/scopemesh/metrics"
	"github.com/scopemesh/scopemesh/web"
)

// The web view (--ui) and the metrics (--metrics, and /metrics on the
// web view's listener).
//
// The web view listens on loopback only and asks for the API's token, as
// the API on TCP does: a request carries it as a bearer token (Prometheus,
// curl), or a browser opens the view once with ?token=TOKEN, which sets a
// cookie that only this site's own pages send (SameSite=Strict) and
// leaves the token out of the address bar. --metrics serves /metrics
// alone, on any address and to anyone: counts, never events or peer IDs,
// as a Prometheus exporter does.

// uiCookie holds the token in a browser that signed in.
const uiCookie = "scopemesh_token"

// listenLoopback listens at the host:port addr of flag, which must be a
// loopback address.
func listenLoopback(flag, addr string) (net.Listener, error) {
	tcp, err := net.ResolveTCPAddr("tcp", addr)
	if err != nil {
		return nil, usagef("%s %s: %v", flag, addr, err)
	}
	if tcp.IP == nil || !tcp.IP.IsLoopback() {
		return nil, usagef("%s %s is not a loopback address: the web view serves the cluster's events; reach it from elsewhere through a tunnel (ssh -L)", flag, addr)
	}
	return net.ListenTCP("tcp", tcp)
}

// metricsHandler serves node's metrics, and those other parts of the
// process register on Prometheus's default registry: libp2p's, Go's
// runtime and the process's.
func metricsHandler(node *scopemesh.Node, log *slog.Logger) http.Handler {
	reg := prometheus.NewRegistry()
	reg.MustRegister(metrics.NewCollector(node))
	return promhttp.HandlerFor(prometheus.Gatherers{reg, prometheus.DefaultGatherer}, promhttp.HandlerOpts{
		ErrorLog:            slog.NewLogLogger(log.Handler(), slog.LevelWarn),
		MaxRequestsInFlight: 4,
	})
}

// uiHandler is the web view of node with /metrics beside it, for those
// who hold token, which clients find in tokenFile.
func uiHandler(node *scopemesh.Node, metricsH http.Handler, token []byte, tokenFile string) http.Handler {
	mux := http.NewServeMux()
	mux.Handle("/metrics", metricsH)
	mux.Handle("/", web.Handler(node))
	return uiGuard(token, tokenFile, mux)
}

// uiGuard admits the requests that carry token, as a bearer token or in
// the cookie a sign-in sets; a request with ?token=TOKEN signs in.
func uiGuard(token []byte, tokenFile string, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		// A page that rebinds its own domain to 127.0.0.1 names that
		// domain in Host; the cookie would not go to it, but the
		// sign-in form would.
		if !loopbackHost(r.Host) {
			http.Error(w, fmt.Sprintf("host %q is not a loopback address", r.Host), http.StatusForbidden)
			return
		}
		q := r.URL.Query()
		if given := q.Get("token"); given != "" {
			if !tokenMatches(given, token) {
				signIn(w, tokenFile, "That is not this node's token.")
				return
			}
			http.SetCookie(w, &http.Cookie{Name: uiCookie, Value: hex.EncodeToString(token), Path: "/",
				HttpOnly: true, SameSite: http.SameSiteStrictMode})
			q.Del("token")
			u := *r.URL
			u.RawQuery = q.Encode()
			http.Redirect(w, r, u.RequestURI(), http.StatusSeeOther)
			return
		}
		bearer, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
		if ok && tokenMatches(bearer, token) {
			next.ServeHTTP(w, r)
			return
		}
		if c, err := r.Cookie(uiCookie); err == nil && tokenMatches(c.Value, token) {
			next.ServeHTTP(w, r)
			return
		}
		signIn(w, tokenFile, "")
	})
}

// signIn answers 401 with a page that asks for the token and says where
// it is.
func signIn(w http.ResponseWriter, tokenFile, problem string) {
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Content-Security-Policy", "default-src 'none'; form-action 'self'")
	w.Header().Set("WWW-Authenticate", "Bearer")
	w.WriteHeader(http.StatusUnauthorized)
	fmt.Fprintf(w, `<!doctype html><html lang="en"><meta charset="utf-8"><title>scopemesh: sign in</title>
<h1>scopemesh</h1><p>%s This node's web view needs its API token: the hex in <code>%s</code>.</p>
<form method="get"><input type="password" name="token" size="66" autofocus> <button>Sign in</button></form>`,
		html.EscapeString(problem), html.EscapeString(tokenFile))
}
