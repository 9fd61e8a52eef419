package main

import (
	"context"
	"crypto/subtle"
	"crypto/tls"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/scopemesh/scopemesh"
	"github.com/scopemesh/scopemesh/events"
	"github.com/scopemesh/scopemesh/internal/httpquery"
	"github.com/scopemesh/scopemesh/query"
)

// The local API: JSON over HTTP, on a unix socket or a loopback port, or
// over HTTPS on any address (--api-remote). On TCP every request carries
// the node's token: "Authorization: Bearer TOKEN" (credentials.go). The
// JSON field names are the Go field names of the library's types
// (scopemesh.Status, PeerInfo, events.Event, query.Result), except where the
// views below turn errors and keys into strings.
//
//	GET  /v1/status          scopemesh.Status
//	GET  /v1/peers           []scopemesh.PeerInfo
//	GET  /v1/events?FILTER   query.Result; cluster=true asks every member
//	POST /v1/events          record: recordRequest in, events.Event out
//	GET  /v1/events/stream?FILTER
//	                         live events, one JSON object per line
//	                         (streamLine); text/event-stream if asked
//	GET  /v1/traces/{id}     query.Trace; format=text renders it
//	POST /v1/sync            map of peer ID to scopemesh.SyncResult
//
// FILTER is trace, node, kind, attr (k=v), since and until (HLC
// timestamps, "wall.logical"), limit, after (a cursor) and desc; node, kind
// and attr repeat.

// maxRecordBody bounds a record request; events themselves are bounded by
// the node's limits.
const maxRecordBody = 4 << 20

// recordRequest is the body of POST /v1/events.
type recordRequest struct {
	Kind    string
	Attrs   map[string]string `json:",omitempty"`
	Trace   string            `json:",omitempty"` // a trace ID; empty: none
	Parent  string            `json:",omitempty"` // an event ID; empty: none
	Payload []byte            `json:",omitempty"`
}

// streamLine is one line of the event stream: an event, or the news that
// the stream fell behind and lost events, which a query from Gap.From
// recovers.
type streamLine struct {
	Event *events.Event `json:",omitempty"`
	Gap   *gapJSON      `json:",omitempty"`
}

type gapJSON struct {
	From    string // a cursor: every lost event sorts at or after it
	Dropped int
}

// The JSON views of library types whose errors and keys encoding/json would
// lose: a field of the outer struct hides the embedded one of the same name.

type syncResultJSON struct {
	scopemesh.SyncResult
	Err string `json:",omitempty"`
}

type peerJSON struct {
	scopemesh.PeerInfo
	LastSyncResult syncResultJSON
}

type statusJSON struct {
	scopemesh.Status
	Peers []peerJSON
}

type resultJSON struct {
	query.Result
	Next string `json:",omitempty"` // Filter.After of the next page; empty: no more
}

func syncResultView(r scopemesh.SyncResult) syncResultJSON {
	v := syncResultJSON{SyncResult: r}
	if r.Err != nil {
		v.Err = r.Err.Error()
	}
	return v
}

func peersView(ps []scopemesh.PeerInfo) []peerJSON {
	out := make([]peerJSON, len(ps))
	for i, p := range ps {
		out[i] = peerJSON{PeerInfo: p, LastSyncResult: syncResultView(p.LastSyncResult)}
	}
	return out
}

func resultView(r query.Result) resultJSON {
	v := resultJSON{Result: r}
	if !r.Next.IsZero() {
		v.Next = r.Next.String()
	}
	return v
}

// apiHandler serves the local API of node.
type apiHandler struct {
	node *scopemesh.Node
	log  *slog.Logger
	// streams ends when the server shuts down: event streams never end by
	// themselves, and the server waits for every request to end.
	streams context.Context
}

func newAPIHandler(streams context.Context, node *scopemesh.Node, log *slog.Logger, g apiGuard) http.Handler {
	a := &apiHandler{node: node, log: log, streams: streams}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /v1/status", a.status)
	mux.HandleFunc("GET /v1/peers", a.peers)
	mux.HandleFunc("POST /v1/peers", a.join)
	mux.HandleFunc("DELETE /v1/peers/{id}", a.forget)
	mux.HandleFunc("GET /v1/events", a.query)
	mux.HandleFunc("POST /v1/events", a.record)
	mux.HandleFunc("GET /v1/events/stream", a.stream)
	mux.HandleFunc("GET /v1/traces/{id}", a.trace)
	mux.HandleFunc("POST /v1/sync", a.sync)
	return g.wrap(mux)
}

// apiGuard keeps out of an HTTP server of the node's — its API, the MCP
// server's HTTP endpoint — those who may not call it.
type apiGuard struct {
	// token is what every request must carry as a bearer token; nil: none,
	// on a unix socket, whose file mode says who may connect.
	token []byte
	// checkHost refuses requests whose Host header is not a loopback name,
	// which a web page would send after rebinding its domain to 127.0.0.1.
	// The token already stops such a page; this is a second wall for a
	// loopback server. A remote API's clients name it as they like.
	checkHost bool
}

// wrap refuses requests from web browsers, which a page open on this
// machine could send to a loopback port, and on TCP requests without the
// token.
func (g apiGuard) wrap(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Origin") != "" || r.Header.Get("Sec-Fetch-Site") == "cross-site" {
			httpquery.WriteError(w, http.StatusForbidden, errors.New("requests from web pages are refused"))
			return
		}
		if g.token != nil {
			if err := g.checkToken(r); err != nil {
				w.Header().Set("WWW-Authenticate", "Bearer")
				httpquery.WriteError(w, http.StatusUnauthorized, err)
				return
			}
		}
		if g.checkHost && !loopbackHost(r.Host) {
			httpquery.WriteError(w, http.StatusForbidden, fmt.Errorf("host %q is not a loopback address", r.Host))
			return
		}
		if r.Method == http.MethodPost && !strings.HasPrefix(r.Header.Get("Content-Type"), "application/json") {
			httpquery.WriteError(w, http.StatusUnsupportedMediaType, errors.New("the body must be application/json"))
			return
		}
		next.ServeHTTP(w, r)
	})
}

// checkToken reports what is wrong with the request's token, in words
// that say where to find the right one.
func (g apiGuard) checkToken(r *http.Request) error {
	const where = "the hex in the node's " + apiTokenName + " (scopemesh commands read it from --api-token-file, $" + tokenEnv + " or the default data dir)"
	bearer, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	if !ok {
		return errors.New("this API needs the node's token: send the header \"Authorization: Bearer TOKEN\", TOKEN being " + where)
	}
	if !tokenMatches(bearer, g.token) {
		return errors.New("the token is not this node's: send " + where)
	}
	return nil
}

// tokenMatches reports whether given, in hex, is token. It compares in
// constant time: the time taken tells nothing of the token.
func tokenMatches(given string, token []byte) bool {
	got, _ := hex.DecodeString(strings.TrimSpace(given))
	return subtle.ConstantTimeCompare(got, token) == 1
}

// loopbackHost reports whether a Host header names this machine.
func loopbackHost(hostport string) bool {
	host, _, err := net.SplitHostPort(hostport)
	if err != nil {
		host = hostport
	}
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(strings.Trim(host, "[]"))
	return ip != nil && ip.IsLoopback()
}

func (a *apiHandler) status(w http.ResponseWriter, _ *http.Request) {
	st := a.node.Status()
	writeJSONResponse(w, statusJSON{Status: st, Peers: peersView(st.Peers)})
}

func (a *apiHandler) peers(w http.ResponseWriter, _ *http.Request) {
	writeJSONResponse(w, peersView(a.node.Peers()))
}

// joinRequest is the body of POST /v1/peers.
type joinRequest struct {
	Addr string `json:"addr"`
}

// joinResponse answers it: the members the node knows once joined.
type joinResponse struct {
	Members int `json:"members"`
}

// join connects the node to a member and waits for its member list.
func (a *apiHandler) join(w http.ResponseWriter, r *http.Request) {
	var req joinRequest
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, maxRecordBody))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&req); err != nil {
		httpquery.WriteError(w, http.StatusBadRequest, fmt.Errorf("reading the request: %w", err))
		return
	}
	members, err := a.node.Join(r.Context(), req.Addr)
	if err != nil {
		httpquery.WriteError(w, httpquery.StatusOf(err), err)
		return
	}
	writeJSONResponse(w, joinResponse{Members: members})
}

// forgetResponse answers DELETE /v1/peers/{id}: the member forgotten.
type forgetResponse struct {
	ID string `json:"id"`
}

func (a *apiHandler) forget(w http.ResponseWriter, r *http.Request) {
	id, err := a.node.Forget(r.PathValue("id"))
	if err != nil {
		httpquery.WriteError(w, httpquery.StatusOf(err), err)
		return
	}
	writeJSONResponse(w, forgetResponse{ID: id})
}

func (a *apiHandler) query(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	f, err := httpquery.Parse(q)
	if err == nil {
		err = httpquery.ResolveNodeNames(a.node, &f)
	}
	if err != nil {
		httpquery.WriteError(w, http.StatusBadRequest, err)
		return
	}
	cluster, err := httpquery.Bool(q, "cluster")
	if err != nil {
		httpquery.WriteError(w, http.StatusBadRequest, err)
		return
	}
	var res query.Result
	if cluster {
		res, err = a.node.QueryCluster(r.Context(), f)
	} else {
		res, err = httpquery.Local(r.Context(), a.node, f)
	}
	if err != nil {
		httpquery.WriteError(w, httpquery.StatusOf(err), err)
		return
	}
	writeJSONResponse(w, resultView(res))
}

func (a *apiHandler) record(w http.ResponseWriter, r *http.Request) {
	var req recordRequest
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, maxRecordBody))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&req); err != nil {
		code := http.StatusBadRequest
		if _, ok := errors.AsType[*http.MaxBytesError](err); ok {
			code = http.StatusRequestEntityTooLarge
		}
		httpquery.WriteError(w, code, fmt.Errorf("reading the event: %w", err))
		return
	}
	e := events.Event{Kind: req.Kind, Attrs: req.Attrs, Payload: req.Payload}
	var err error
	if req.Trace != "" {
		if e.Correlation, err = events.ParseTraceID(req.Trace); err != nil {
			httpquery.WriteError(w, http.StatusBadRequest, err)
			return
		}
	}
	if req.Parent != "" {
		if e.Parent, err = events.ParseID(req.Parent); err != nil {
			httpquery.WriteError(w, http.StatusBadRequest, err)
			return
		}
	}
	rec, err := a.node.Record(r.Context(), e)
	if err != nil {
		httpquery.WriteError(w, httpquery.StatusOf(err), err)
		return
	}
	writeJSONResponse(w, rec)
}

// stream sends the events matching the filter as they reach the node, until
// the client goes away or the server shuts down.
func (a *apiHandler) stream(w http.ResponseWriter, r *http.Request) {
	f, err := httpquery.Parse(r.URL.Query())
	if err == nil {
		err = httpquery.ResolveNodeNames(a.node, &f)
	}
	if err != nil {
		httpquery.WriteError(w, http.StatusBadRequest, err)
		return
	}
	ctx, cancel := context.WithCancel(r.Context())
	defer cancel()
	defer context.AfterFunc(a.streams, cancel)()
	sub, err := a.node.Subscribe(ctx, f)
	if err != nil {
		httpquery.WriteError(w, httpquery.StatusOf(err), err)
		return
	}
	defer sub.Close()

	sse := strings.Contains(r.Header.Get("Accept"), "text/event-stream")
	if sse {
		w.Header().Set("Content-Type", "text/event-stream")
	} else {
		w.Header().Set("Content-Type", "application/x-ndjson")
	}
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(http.StatusOK)
	// The client learns it is subscribed when the headers arrive: events
	// recorded after that are delivered.
	rc := http.NewResponseController(w)
	if err := rc.Flush(); err != nil {
		return
	}
	for {
		e, err := sub.Next(ctx)
		var line streamLine
		var gap *scopemesh.GapError
		switch {
		case errors.As(err, &gap):
			line.Gap = &gapJSON{From: gap.From.String(), Dropped: gap.Dropped}
		case err != nil:
			// The client left, the server is shutting down, or the
			// node closed: either way the stream is over.
			return
		default:
			line.Event = &e
		}
		b, err := json.Marshal(line)
		if err != nil {
			a.log.Error("encoding a streamed event", "err", err)
			return
		}
		if sse {
			kind := "event"
			if line.Gap != nil {
				kind = "gap"
			}
			_, err = fmt.Fprintf(w, "event: %s\ndata: %s\n\n", kind, b)
		} else {
			_, err = fmt.Fprintf(w, "%s\n", b)
		}
		if err == nil {
			err = rc.Flush()
		}
		if err != nil {
			return
		}
	}
}

func (a *apiHandler) trace(w http.ResponseWriter, r *http.Request) {
	id, err := events.ParseTraceID(r.PathValue("id"))
	if err != nil {
		httpquery.WriteError(w, http.StatusBadRequest, err)
		return
	}
	t, err := a.node.Trace(r.Context(), id)
	if err != nil {
		httpquery.WriteError(w, httpquery.StatusOf(err), err)
		return
	}
	if r.URL.Query().Get("format") == "text" {
		width, _ := strconv.Atoi(r.URL.Query().Get("width"))
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		t.Render(w, query.RenderOptions{Width: width})
		return
	}
	writeJSONResponse(w, t)
}

func (a *apiHandler) sync(w http.ResponseWriter, r *http.Request) {
	results, err := a.node.Sync(r.Context())
	if err != nil {
		httpquery.WriteError(w, httpquery.StatusOf(err), err)
		return
	}
	out := make(map[string]syncResultJSON, len(results))
	for id, res := range results {
		out[id] = syncResultView(res)
	}
	writeJSONResponse(w, out)
}

func writeJSONResponse(w http.ResponseWriter, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		httpquery.WriteError(w, http.StatusInternalServerError, err)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.Write(append(b, '\n'))
}

// httpServer serves HTTP on one listener until Shutdown.
type httpServer struct {
	srv  *http.Server
	done chan error // Serve's result
}

// serveAPI serves node's API on ln, which listens at addr, guarded by
// creds: zero on a unix socket.
func serveAPI(node *scopemesh.Node, ln net.Listener, addr apiAddr, creds apiCredentials, log *slog.Logger) *httpServer {
	if creds.tls != nil {
		ln = tls.NewListener(ln, creds.tls)
	}
	checkHost := addr.network == "tcp" && !addr.tls
	return serveHTTP(ln, log, func(streams context.Context) http.Handler {
		return newAPIHandler(streams, node, log, apiGuard{token: creds.token, checkHost: checkHost})
	})
}

// serveHTTP serves the handler newHandler makes on ln. The context
// newHandler gets, which every request's context also derives from, ends
// when Shutdown begins: requests that never end by themselves, event
// streams, end then.
func serveHTTP(ln net.Listener, log *slog.Logger, newHandler func(streams context.Context) http.Handler) *httpServer {
	streams, endStreams := context.WithCancel(context.Background())
	s := &httpServer{
		srv: &http.Server{
			Handler:           newHandler(streams),
			BaseContext:       func(net.Listener) context.Context { return streams },
			ReadHeaderTimeout: 10 * time.Second,
			ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelWarn),
		},
		done: make(chan error, 1),
	}
	s.srv.RegisterOnShutdown(endStreams)
	go func() { s.done <- s.srv.Serve(ln) }()
	return s
}

// Shutdown stops accepting requests, ends the event streams, and waits for
// the other requests — records among them — to finish, or for ctx. It
// closes the listener, which removes a unix socket.
func (s *httpServer) Shutdown(ctx context.Context) error {
	err := s.srv.Shutdown(ctx)
	if serveErr := <-s.done; !errors.Is(serveErr, http.ErrServerClosed) {
		err = errors.Join(err, serveErr)
	}
	return err
}

// readAPIError turns an error response into an error.
func readAPIError(resp *http.Response) error {
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	var e httpquery.Error
	if json.Unmarshal(body, &e) == nil && e.Error != "" {
		return errors.New(e.Error)
	}
	return fmt.Errorf("the node answered %s: %s", resp.Status, strings.TrimSpace(string(body)))
}
