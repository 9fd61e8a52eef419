package web

import (
	"context"
	"embed"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net/http"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/scopemesh/scopemesh"
	"github.com/scopemesh/scopemesh/crdt"
	"github.com/scopemesh/scopemesh/events"
	"github.com/scopemesh/scopemesh/internal/httpquery"
	"github.com/scopemesh/scopemesh/peer"
	"github.com/scopemesh/scopemesh/query"
)

// Bounds of what requests can make the handler spend.
const (
	// MaxPageSize is the most events one page of the events view lists.
	MaxPageSize = 1000
	// defaultPageSize is a page's size when the request names none.
	defaultPageSize = 100
	// MaxStreams is the most live tails served at once; one more is
	// refused with 503 until another ends.
	MaxStreams = 16
	// MaxQueries is the most queries and traces run at once; others wait
	// their turn, as long as their request lasts.
	MaxQueries = 4
)

//go:embed assets
var assets embed.FS

// handler serves one node's web view.
type handler struct {
	node    *scopemesh.Node
	log     *slog.Logger
	streams chan struct{} // a slot per live tail
	queries chan struct{} // a slot per query or trace
	index   []byte        // the page every view starts from
}

// Handler returns the web view of node: its pages, at /, /events and
// /traces/{id}, and the JSON they read, under /api/. It may be mounted
// under a prefix with http.StripPrefix. It serves anyone who reaches it:
// the caller decides who may (scopemesh node asks for the API's token).
// Live tails end when their client leaves or the node closes; to end them
// when a server shuts down, give the server a BaseContext that ends then.
func Handler(node *scopemesh.Node) http.Handler {
	index, err := fs.ReadFile(assets, "assets/index.html")
	if err != nil {
		panic(err) // embedded at build time
	}
	h := &handler{
		node:    node,
		log:     slog.Default(),
		streams: make(chan struct{}, MaxStreams),
		queries: make(chan struct{}, MaxQueries),
		index:   index,
	}
	mux := http.NewServeMux()
	for _, page := range []string{"GET /{$}", "GET /events", "GET /traces/{id}"} {
		mux.HandleFunc(page, h.page)
	}
	mux.Handle("GET /assets/", http.FileServerFS(assets))
	mux.HandleFunc("GET /api/status", h.status)
	mux.HandleFunc("GET /api/events", h.events)
	mux.HandleFunc("GET /api/events/stream", h.stream)
	mux.HandleFunc("GET /api/traces/{id}", h.trace)
	return secure(mux)
}

// secure sets headers that keep the pages from being framed by other
// sites or running scripts from anywhere but here. Inline styles are
// allowed: the trace view places its rows with them.
func secure(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hd := w.Header()
		hd.Set("Content-Security-Policy", "default-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; frame-ancestors 'none'")
		hd.Set("X-Content-Type-Options", "nosniff")
		hd.Set("Referrer-Policy", "no-referrer")
		next.ServeHTTP(w, r)
	})
}

// page serves the page every view starts from, with a base URL that
// makes its links work under whatever prefix the handler is mounted.
func (h *handler) page(w http.ResponseWriter, r *http.Request) {
	base := strings.TrimSuffix(strings.SplitN(r.RequestURI, "?", 2)[0], r.URL.Path) + "/"
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	w.Write([]byte(strings.Replace(string(h.index), `<base href="/">`, `<base href="`+htmlAttr(base)+`">`, 1)))
}

// htmlAttr escapes s for a double-quoted HTML attribute.
func htmlAttr(s string) string {
	return strings.NewReplacer(`&`, "&amp;", `"`, "&quot;", `<`, "&lt;", `>`, "&gt;").Replace(s)
}

// statusView is the cluster page's data.
type statusView struct {
	ID          string
	Name        string
	Uptime      float64 // seconds
	Events      int
	StoreBytes  int64
	Reclaimable int64
	Expired     uint64
	Horizon     string  `json:",omitempty"` // RFC 3339; empty: nothing expired
	Retention   float64 // seconds; negative: kept for good
	MaxBytes    int64
	Gossip      peer.GossipStats
	Sync        map[string]syncView // by role: initiator, responder
	Queries     map[string]peer.QueryStats
	ClockSkew   []peer.ClockSkew
	Members     []memberView
	States      []peer.MemberState // every state a member can be in, in order
}

// memberStates are the states of PeerInfo.State, in the order the cluster
// page counts them.
var memberStates = []peer.MemberState{peer.StateConnected, peer.StateReachable, peer.StateSuspect, peer.StateUnreachable, peer.StateLeft}

type syncView struct {
	Sessions, Failed, EventsSent, EventsReceived, BytesSent, BytesReceived uint64
	MeanSeconds                                                            float64
}

type memberView struct {
	ID             string
	Name           string // empty until its record arrives
	State          peer.MemberState
	Relayed        bool    // its connections all run through a relay
	RTT            float64 // seconds; 0: unknown
	LastSeen       time.Time
	EventsReceived uint64
	LastSync       time.Time
	InSync         bool
	SyncError      string `json:",omitempty"`
}

func (h *handler) status(w http.ResponseWriter, _ *http.Request) {
	st := h.node.Status()
	v := statusView{
		ID: st.ID, Name: st.Name, Uptime: st.Uptime.Seconds(), Events: st.Events,
		StoreBytes: st.StoreBytes, Reclaimable: st.Reclaimable, Expired: st.Expired,
		Retention: st.Retention.Seconds(), MaxBytes: st.MaxBytes,
		Gossip: st.Gossip, ClockSkew: st.ClockSkew, States: memberStates,
		Sync:    map[string]syncView{"initiator": syncOf(st.SyncInitiated), "responder": syncOf(st.SyncServed)},
		Queries: map[string]peer.QueryStats{"served": st.QueriesServed, "asked": st.QueriesAsked},
		Members: make([]memberView, len(st.Peers)),
	}
	if !st.Horizon.IsZero() {
		v.Horizon = time.Unix(0, st.Horizon.Wall).UTC().Format(time.RFC3339)
	}
	for i, p := range st.Peers {
		m := memberView{
			ID: p.ID, Name: p.Name, State: p.State, RTT: p.RTT.Seconds(), LastSeen: p.LastSeen,
			EventsReceived: p.EventsReceived, LastSync: p.LastSync, InSync: p.InSync,
			Relayed: len(p.Connections) > 0,
		}
		for _, c := range p.Connections {
			m.Relayed = m.Relayed && c.Relayed
		}
		if p.LastSyncResult.Err != nil {
			m.SyncError = p.LastSyncResult.Err.Error()
		}
		v.Members[i] = m
	}
	writeJSON(w, v)
}

func syncOf(s peer.SyncStats) syncView {
	v := syncView{Sessions: s.Sessions, Failed: s.Failed, EventsSent: s.EventsSent, EventsReceived: s.EventsReceived,
		BytesSent: s.BytesSent, BytesReceived: s.BytesReceived}
	if n := s.Durations.Count(); n > 0 {
		v.MeanSeconds = s.Durations.Sum.Seconds() / float64(n)
	}
	return v
}

// eventView is an event as the pages show it.
type eventView struct {
	ID     string
	Node   string
	Kind   string
	Time   string            // the HLC timestamp, "wall.logical"
	At     string            // its wall time, RFC 3339 in milliseconds, UTC
	Trace  string            `json:",omitempty"`
	Parent string            `json:",omitempty"`
	Attrs  map[string]string `json:",omitempty"`
	// Payload is the payload as text if it is UTF-8, else in base64
	// (PayloadBase64).
	Payload       string `json:",omitempty"`
	PayloadBase64 bool   `json:",omitempty"`
	// Offset is, in a trace, the nanoseconds since its first event.
	Offset int64 `json:",omitempty"`
}

func viewOf(e events.Event) eventView {
	v := eventView{
		ID: e.ID.String(), Node: e.Node, Kind: e.Kind, Time: e.Time.String(),
		At: time.Unix(0, e.Time.Wall).UTC().Format("2006-01-02T15:04:05.000Z07:00"), Attrs: e.Attrs,
	}
	if !e.Correlation.IsZero() {
		v.Trace = e.Correlation.String()
	}
	if !e.Parent.IsZero() {
		v.Parent = e.Parent.String()
	}
	if utf8.Valid(e.Payload) {
		v.Payload = string(e.Payload)
	} else {
		v.Payload, v.PayloadBase64 = base64.StdEncoding.EncodeToString(e.Payload), true
	}
	return v
}

func viewsOf(evs []events.Event) []eventView {
	out := make([]eventView, len(evs))
	for i, e := range evs {
		out[i] = viewOf(e)
	}
	return out
}

// pageView is a page of the events view.
type pageView struct {
	Events   []eventView
	Next     string `json:",omitempty"` // the cursor of the next page; empty: no more
	Complete bool
	Peers    []query.PeerAnswer `json:",omitempty"`
	Names    map[string]string  `json:",omitempty"` // the events' nodes' names, by ID, as this node knows them
}

// names returns the names of the nodes among evs, by ID: this node's and
// its members'.
func (h *handler) names(evs []events.Event) map[string]string {
	st := h.node.Status()
	known := map[string]string{st.ID: st.Name}
	for _, p := range st.Peers {
		known[p.ID] = p.Name
	}
	out := map[string]string{}
	for _, e := range evs {
		if n := known[e.Node]; n != "" {
			out[e.Node] = n
		}
	}
	return out
}

// events serves a page of events: the filter's parameters as the API
// takes them (internal/httpquery), and cluster=true to ask every member.
func (h *handler) events(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	f, err := httpquery.Parse(q)
	if err == nil {
		err = httpquery.ResolveNodeNames(h.node, &f)
	}
	if err == nil && f.Limit > MaxPageSize {
		err = fmt.Errorf("%w: limit %d is above a page's %d", query.ErrInvalidFilter, f.Limit, MaxPageSize)
	}
	cluster, boolErr := httpquery.Bool(q, "cluster")
	if err = errors.Join(err, boolErr); err != nil {
		httpquery.WriteError(w, http.StatusBadRequest, err)
		return
	}
	if f.Limit == 0 {
		f.Limit = defaultPageSize
	}
	if !h.take(w, r, h.queries) {
		return
	}
	defer h.give(h.queries)
	var res query.Result
	if cluster {
		res, err = h.node.QueryCluster(r.Context(), f)
	} else {
		res, err = httpquery.Local(r.Context(), h.node, f)
	}
	if err != nil {
		httpquery.WriteError(w, httpquery.StatusOf(err), err)
		return
	}
	v := pageView{Events: viewsOf(res.Events), Complete: res.Complete, Peers: res.Peers, Names: h.names(res.Events)}
	if !res.Next.IsZero() {
		v.Next = res.Next.String()
	}
	writeJSON(w, v)
}

// traceView is a trace as its page shows it.
type traceView struct {
	ID       string
	Events   []eventView // in causal order: every event after its parent
	Gaps     []string    // parents no replica holds
	Expired  []string    // parents gone with retention
	Horizon  string      `json:",omitempty"` // RFC 3339; empty: nothing expired
	Complete bool
	Peers    []query.PeerAnswer
	Names    map[string]string `json:",omitempty"` // the nodes' names, by ID
}

func (h *handler) trace(w http.ResponseWriter, r *http.Request) {
	id, err := events.ParseTraceID(r.PathValue("id"))
	if err != nil {
		httpquery.WriteError(w, http.StatusBadRequest, err)
		return
	}
	if !h.take(w, r, h.queries) {
		return
	}
	defer h.give(h.queries)
	t, err := h.node.Trace(r.Context(), id)
	if err != nil {
		httpquery.WriteError(w, httpquery.StatusOf(err), err)
		return
	}
	v := traceView{ID: t.ID.String(), Events: viewsOf(t.Events), Complete: t.Complete, Peers: t.Peers, Names: t.Names,
		Gaps: idStrings(t.Gaps), Expired: idStrings(t.Expired)}
	if len(t.Events) > 0 {
		first := t.Events[0].Time.Wall
		for _, e := range t.Events {
			first = min(first, e.Time.Wall)
		}
		for i, e := range t.Events {
			v.Events[i].Offset = e.Time.Wall - first
		}
	}
	if !t.Horizon.IsZero() {
		v.Horizon = time.Unix(0, t.Horizon.Wall).UTC().Format(time.RFC3339)
	}
	writeJSON(w, v)
}

func idStrings(ids []events.ID) []string {
	out := make([]string, len(ids))
	for i, id := range ids {
		out[i] = id.String()
	}
	return out
}

// stream sends the events matching the filter as they reach the node,
// as server-sent events: "event" for an event, "gap" when the tail fell
// behind and lost some, which a query from the gap's cursor recovers.
func (h *handler) stream(w http.ResponseWriter, r *http.Request) {
	f, err := httpquery.Parse(r.URL.Query())
	if err == nil {
		err = httpquery.ResolveNodeNames(h.node, &f)
	}
	if err != nil {
		httpquery.WriteError(w, http.StatusBadRequest, err)
		return
	}
	select {
	case h.streams <- struct{}{}:
		defer h.give(h.streams)
	default:
		httpquery.WriteError(w, http.StatusServiceUnavailable, fmt.Errorf("%d live tails are open, the most this node serves: close one", MaxStreams))
		return
	}
	ctx := r.Context()
	sub, err := h.node.Subscribe(ctx, f)
	if err != nil {
		httpquery.WriteError(w, httpquery.StatusOf(err), err)
		return
	}
	defer sub.Close()
	w.Header().Set("Content-Type", "text/event-stream")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(http.StatusOK)
	rc := http.NewResponseController(w)
	// The headers tell the client it is subscribed: what is recorded from
	// then on reaches it.
	if rc.Flush() != nil {
		return
	}
	for {
		e, err := sub.Next(ctx)
		kind, data := "event", any(nil)
		var gap *crdt.GapError
		switch {
		case errors.As(err, &gap):
			kind, data = "gap", map[string]any{"From": gap.From.String(), "Dropped": gap.Dropped}
		case err != nil:
			return // the client left, or the node closed
		default:
			data = viewOf(e)
		}
		b, err := json.Marshal(data)
		if err != nil {
			h.log.Error("encoding a streamed event", "err", err)
			return
		}
		if _, err := fmt.Fprintf(w, "event: %s\ndata: %s\n\n", kind, b); err != nil || rc.Flush() != nil {
			return
		}
	}
}

// take waits for a slot of sem as long as r lasts, and reports whether it
// got one; if not, it has answered r.
func (h *handler) take(w http.ResponseWriter, r *http.Request, sem chan struct{}) bool {
	select {
	case sem <- struct{}{}:
		return true
	case <-r.Context().Done():
		httpquery.WriteError(w, http.StatusServiceUnavailable, context.Cause(r.Context()))
		return false
	}
}

func (h *handler) give(sem chan struct{}) { <-sem }

func writeJSON(w http.ResponseWriter, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		httpquery.WriteError(w, http.StatusInternalServerError, err)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.Write(b)
}
