package main

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/scopemesh/scopemesh"
	"github.com/scopemesh/scopemesh/events"
	"github.com/scopemesh/scopemesh/internal/httpquery"
	"github.com/scopemesh/scopemesh/query"
)

// The MCP server's tools answer through the node's API. Every answer fits
// an assistant's context: a one-line summary first, values cut to
// maxValueBytes, lists cut to a page whose JSON stays under
// maxAnswerBytes, and a cursor for the next page.
const (
	maxValueBytes  = 200
	maxAnswerBytes = 48 << 10

	defaultEventsPage  = 50
	maxEventsPage      = 200
	defaultTracePage   = 100
	maxTracePage       = 500
	defaultTracesFound = 10
	maxTracesFound     = 50
	defaultMembersPage = 100
	maxMembersPage     = query.MaxValues * 8

	// findScanEvents bounds the events find_traces reads for one answer;
	// its cursor goes on from where it stopped.
	findScanEvents = 5000
	findScanPage   = 1000

	// maxRenderLines bounds the text rendering of a trace.
	maxRenderLines = 120
	renderWidth    = 160
)

// mcpTools answers the tools' calls through a node's API.
type mcpTools struct {
	api *apiClient
	now func() time.Time
}

// newMCPServer returns an MCP server with the tools, read-only unless
// allowRecord.
func newMCPServer(api *apiClient, allowRecord bool) *mcp.Server {
	t := &mcpTools{api: api, now: time.Now}
	s := mcp.NewServer(&mcp.Implementation{Name: "scopemesh", Title: "scopemesh cluster events and traces", Version: releaseVersion()}, &mcp.ServerOptions{
		Instructions: "scopemesh keeps one causally ordered log of runtime events (HTTP requests, RPCs, queries, OpenTelemetry spans) for every node of a distributed application. " +
			"Start with cluster_status; find_traces finds requests that failed or were slow; get_trace shows one request across nodes as a causal tree; query_events lists events by kind, attribute, node or time.",
	})
	readOnly := &mcp.ToolAnnotations{ReadOnlyHint: true, OpenWorldHint: new(bool)}
	mcp.AddTool(s, &mcp.Tool{
		Name:        "cluster_status",
		Description: "The scopemesh node this server talks to and its cluster: the node's ID, how many events it holds and how long it keeps them, how many cluster members it knows and how many are connected, and replication counters. Call it first, to see whether the cluster is healthy.",
		Annotations: readOnly,
	}, t.clusterStatus)
	mcp.AddTool(s, &mcp.Tool{
		Name: "list_members",
		Description: "The cluster members the node knows, those it is connected to and those it knows of through the others: for each, its name, its state (connected, reachable through other members, suspect, unreachable or left) and since when, how its connections run (directly or through a relay), its round-trip time, its last reconciliation and how many events it delivered. " +
			"A member this node is not connected to does not answer cluster-wide queries.",
		Annotations: readOnly,
	}, t.listMembers)
	mcp.AddTool(s, &mcp.Tool{
		Name: "query_events",
		Description: "List events, oldest first (or newest first), filtered by trace, origin node, kind, attributes and time; from this node's replica, or with cluster=true from every member (which says who did not answer). " +
			"Each event has its ID, time, node, kind, attributes (long values cut), trace and parent. Pass next_cursor back as cursor for the next page.",
		Annotations: readOnly,
	}, t.queryEvents)
	mcp.AddTool(s, &mcp.Tool{
		Name: "get_trace",
		Description: "One trace (one request) from every cluster member, as a causal tree: each event with its parent, depth, node (and its name), start offset and duration (for spans), and a text rendering with one lane per node. " +
			"Says whether every member answered and which parent events are missing or expired. Long traces come in pages: pass next_cursor back as cursor.",
		Annotations: readOnly,
	}, t.getTrace)
	mcp.AddTool(s, &mcp.Tool{
		Name: "find_traces",
		Description: "Recent traces, newest first, that hold an event matching kinds and attributes, optionally only those with a failure (errors_only) or an operation slower than min_duration; one summary line each: the first operation, when, how many events on how many nodes, how long, how many failures. " +
			"Follow up with get_trace. Searches the last hour by default; pass next_cursor back as cursor to search further back.",
		Annotations: readOnly,
	}, t.findTraces)
	if allowRecord {
		mcp.AddTool(s, &mcp.Tool{
			Name:        "record_event",
			Description: "Record an event on the node, which replicates it to the cluster: a kind, attributes, and optionally the trace and parent event it belongs to (new_trace starts a trace). Use it to mark what you did, e.g. a deploy or an experiment, in the cluster's timeline.",
			Annotations: &mcp.ToolAnnotations{OpenWorldHint: new(bool), DestructiveHint: new(bool)},
		}, t.recordEvent)
	}
	return s
}

// answer returns the result of a call whose structured answer is out: its
// JSON, in the order of out's fields, summary first, as the text an
// assistant reads.
func answer(out any) *mcp.CallToolResult {
	b, err := json.Marshal(out)
	if err != nil {
		return nil // the SDK then writes the JSON itself
	}
	return &mcp.CallToolResult{Content: []mcp.Content{&mcp.TextContent{Text: string(b)}}}
}

// clip cuts s to maxValueBytes at a character boundary, marking the cut.
func clip(s string) string {
	if len(s) <= maxValueBytes {
		return s
	}
	n := maxValueBytes
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n] + "…"
}

func clipAttrs(attrs map[string]string) map[string]string {
	if len(attrs) == 0 {
		return nil
	}
	out := make(map[string]string, len(attrs))
	for k, v := range attrs {
		out[clip(k)] = clip(v)
	}
	return out
}

// jsonSize is the length of v's JSON encoding.
func jsonSize(v any) int {
	b, _ := json.Marshal(v)
	return len(b)
}

// pageSize returns the page size an input asks for, or the default.
func pageSize(asked, def, max int, name string) (int, error) {
	switch {
	case asked < 0 || asked > max:
		return 0, fmt.Errorf("%s %d is not between 1 and %d", name, asked, max)
	case asked == 0:
		return def, nil
	}
	return asked, nil
}

// ----- cluster_status

type statusIn struct{}

type statusOut struct {
	Summary    string                `json:"summary"`
	Node       string                `json:"node" jsonschema:"the node's peer ID"`
	Name       string                `json:"name,omitempty" jsonschema:"the node's name (scopemesh node --name), if it has one"`
	Uptime     string                `json:"uptime"`
	Events     int                   `json:"events" jsonschema:"events the node's replica holds"`
	Retention  string                `json:"retention"`
	Members    int                   `json:"members" jsonschema:"cluster members the node knows"`
	Connected  int                   `json:"connected"`
	Gossip     scopemesh.GossipStats `json:"gossip"`
	ClockSkew  []scopemesh.ClockSkew `json:"clock_skew,omitempty" jsonschema:"origins whose clocks ran ahead of the allowed offset: their events wait"`
	Addresses  []string              `json:"addresses"`
	StoreBytes int64                 `json:"store_bytes,omitempty"`
	MaxBytes   int64                 `json:"max_bytes,omitempty" jsonschema:"the cap on the store's size, if any"`
}

func (t *mcpTools) clusterStatus(ctx context.Context, _ *mcp.CallToolRequest, _ statusIn) (*mcp.CallToolResult, statusOut, error) {
	var st statusJSON
	if err := t.api.call(ctx, http.MethodGet, "/v1/status", nil, nil, &st); err != nil {
		return nil, statusOut{}, err
	}
	out := statusOut{
		Node:       st.ID,
		Name:       clip(st.Name),
		Uptime:     st.Uptime.Round(time.Second).String(),
		Events:     st.Events,
		Retention:  retentionText(st.Status),
		Members:    len(st.Peers),
		Connected:  st.Connected,
		Gossip:     st.Gossip,
		ClockSkew:  st.ClockSkew,
		Addresses:  st.Addrs[:min(len(st.Addrs), 8)],
		StoreBytes: st.StoreBytes,
		MaxBytes:   st.MaxBytes,
	}
	out.Summary = fmt.Sprintf("node %s holds %d events; %d of %d known members connected; up %s", nodeLabel(st.ID, st.Name), st.Events, st.Connected, len(st.Peers), out.Uptime)
	if g := st.Gossip; g.BatchesRejected > 0 || len(st.ClockSkew) > 0 {
		out.Summary += fmt.Sprintf("; %d gossip batches rejected, %d origins with clocks ahead", g.BatchesRejected, len(st.ClockSkew))
	}
	return answer(out), out, nil
}

// nodeLabel names a node in a summary: by its name and the end of its ID,
// or by the end of its ID alone.
func nodeLabel(id, name string) string {
	if name == "" {
		return shortID(id)
	}
	return clip(name) + " (" + shortID(id) + ")"
}

// ----- list_members

type listMembersIn struct {
	Limit  int    `json:"limit,omitempty" jsonschema:"at most this many members (default 100)"`
	Cursor string `json:"cursor,omitempty" jsonschema:"next_cursor of a previous answer, for the next page"`
}

type listMembersOut struct {
	Summary    string       `json:"summary"`
	Members    []memberView `json:"members"`
	NextCursor string       `json:"next_cursor,omitempty"`
}

// memberView is what list_members says of one member.
type memberView struct {
	Name           string `json:"name,omitempty" jsonschema:"the name it gives itself (scopemesh node --name); absent if it has none or its record has not arrived"`
	ID             string `json:"id" jsonschema:"its peer ID"`
	State          string `json:"state" jsonschema:"connected (a connection is open), reachable (members it is connected to reach it), suspect or unreachable (not heard of for a while, then longer), left (it said goodbye when it closed), or refused (disconnected on request)"`
	Since          string `json:"since,omitempty" jsonschema:"how long it has been connected, or how long ago its last connection closed"`
	Member         bool   `json:"member" jsonschema:"proved the cluster key or completed a sync: it is asked in cluster queries"`
	Via            string `json:"via,omitempty" jsonschema:"how the connections run: direct (and over which transport) or relayed"`
	RTT            string `json:"rtt,omitempty"`
	LastSync       string `json:"last_sync" jsonschema:"the last reconciliation with it: never, in sync, partial or failed, and how long ago"`
	EventsReceived uint64 `json:"events_received" jsonschema:"events new to this node it delivered by gossip"`
}

// memberOf is the view of one member: the place to extend as PeerInfo
// gains fields.
func memberOf(p peerJSON, now time.Time) memberView {
	v := memberView{
		Name:           clip(p.Name),
		ID:             p.ID,
		State:          memberState(p.PeerInfo),
		Member:         p.Member,
		Via:            via(p.Connections),
		LastSync:       lastSync(p, now),
		EventsReceived: p.EventsReceived,
	}
	switch {
	case p.Connected:
		v.Since = ago(now, p.ConnectedSince)
	case !p.UnreachableSince.IsZero():
		v.Since = ago(now, p.UnreachableSince)
	}
	if p.RTT > 0 {
		v.RTT = p.RTT.Round(10 * time.Microsecond).String()
	}
	return v
}

// memberState is a member's state in one word.
func memberState(p scopemesh.PeerInfo) string {
	switch {
	case p.Refused:
		return "refused"
	case p.Connected:
		return string(scopemesh.StateConnected)
	case p.State != "":
		return string(p.State)
	}
	return string(scopemesh.StateUnreachable)
}

func (t *mcpTools) listMembers(ctx context.Context, _ *mcp.CallToolRequest, in listMembersIn) (*mcp.CallToolResult, listMembersOut, error) {
	limit, err := pageSize(in.Limit, defaultMembersPage, maxMembersPage, "limit")
	if err != nil {
		return nil, listMembersOut{}, err
	}
	offset, err := offsetCursor(in.Cursor)
	if err != nil {
		return nil, listMembersOut{}, err
	}
	var peers []peerJSON
	if err := t.api.call(ctx, http.MethodGet, "/v1/peers", nil, nil, &peers); err != nil {
		return nil, listMembersOut{}, err
	}
	sortMembers(peers)
	out := listMembersOut{Summary: membersLine(peers), Members: []memberView{}}
	now := t.now()
	for i := offset; i < len(peers) && len(out.Members) < limit; i++ {
		out.Members = append(out.Members, memberOf(peers[i], now))
		if end := i + 1; end < len(peers) && len(out.Members) == limit {
			out.NextCursor = strconv.Itoa(end)
		}
	}
	return answer(out), out, nil
}

// sortMembers sorts the named members first, by name, then by ID, which
// is unique: pages follow one another in a stable order.
func sortMembers(peers []peerJSON) {
	unnamed := func(p peerJSON) int {
		if p.Name == "" {
			return 1
		}
		return 0
	}
	slices.SortFunc(peers, func(a, b peerJSON) int {
		return cmp.Or(unnamed(a)-unnamed(b), strings.Compare(a.Name, b.Name), strings.Compare(a.ID, b.ID))
	})
}

// membersLine summarises the members in one line: how many, and how many
// in each state, e.g. "4 members known: 2 connected, 1 reachable, 1 left".
func membersLine(peers []peerJSON) string {
	count := map[string]int{}
	for _, p := range peers {
		count[memberState(p.PeerInfo)]++
	}
	var parts []string
	for _, st := range []string{"connected", "reachable", "suspect", "unreachable", "left", "refused"} {
		if count[st] > 0 {
			parts = append(parts, fmt.Sprintf("%d %s", count[st], st))
		}
	}
	s := fmt.Sprintf("%d members known", len(peers))
	if len(parts) > 0 {
		s += ": " + strings.Join(parts, ", ")
	}
	return s
}

// offsetCursor reads a cursor that is a position in a list.
func offsetCursor(cursor string) (int, error) {
	if cursor == "" {
		return 0, nil
	}
	n, err := strconv.Atoi(cursor)
	if err != nil || n < 0 {
		return 0, fmt.Errorf("cursor %q is not one this tool gave: pass next_cursor as it came", cursor)
	}
	return n, nil
}

// ----- query_events

type queryEventsIn struct {
	Trace       string            `json:"trace,omitempty" jsonschema:"only events of this trace: its ID, 32 hex digits"`
	Nodes       []string          `json:"nodes,omitempty" jsonschema:"only events recorded on these nodes, any of them: peer IDs or member names"`
	Kinds       []string          `json:"kinds,omitempty" jsonschema:"only events of these kinds (e.g. http.request), any of them"`
	Attrs       map[string]string `json:"attrs,omitempty" jsonschema:"only events that have all these attributes with these values, e.g. {\"path\": \"/cart\"}"`
	Since       string            `json:"since,omitempty" jsonschema:"only events at or after this time: a duration ago (10m, 2h), an RFC 3339 time, or an HLC timestamp (wall.logical)"`
	Until       string            `json:"until,omitempty" jsonschema:"only events before this time, in the forms since takes"`
	NewestFirst bool              `json:"newest_first,omitempty"`
	Cluster     bool              `json:"cluster,omitempty" jsonschema:"ask every cluster member, not only this node's replica"`
	Limit       int               `json:"limit,omitempty" jsonschema:"at most this many events (default 50, at most 200)"`
	Cursor      string            `json:"cursor,omitempty" jsonschema:"next_cursor of a previous answer with the same filters, for the next page"`
}

type queryEventsOut struct {
	Summary    string         `json:"summary"`
	Complete   bool           `json:"complete" jsonschema:"every member asked answered"`
	NotAnswer  []memberAnswer `json:"members_not_answering,omitempty"`
	Events     []eventView    `json:"events"`
	NextCursor string         `json:"next_cursor,omitempty" jsonschema:"more events match: pass it as cursor"`
}

// memberAnswer says why a member did not answer a cluster query.
type memberAnswer struct {
	ID  string `json:"id"`
	Err string `json:"error"`
}

func notAnswering(peers []query.PeerAnswer) []memberAnswer {
	var out []memberAnswer
	for _, p := range peers {
		if !p.Answered {
			out = append(out, memberAnswer{ID: p.ID, Err: clip(p.Err)})
		}
	}
	return out
}

// eventView is an event as the tools show it.
type eventView struct {
	ID           string            `json:"id"`
	Time         string            `json:"time"`
	Node         string            `json:"node"`
	NodeName     string            `json:"node_name,omitempty" jsonschema:"the name of the node, if the node asked knows it"`
	Kind         string            `json:"kind"`
	Duration     string            `json:"duration,omitempty" jsonschema:"how long the operation took, for an event that stands for one (a span)"`
	Attrs        map[string]string `json:"attrs,omitempty"`
	Trace        string            `json:"trace,omitempty"`
	Parent       string            `json:"parent,omitempty"`
	PayloadBytes int               `json:"payload_bytes,omitempty"`
}

func viewOf(e events.Event) eventView {
	v := eventView{
		ID:           e.ID.String(),
		Time:         wallTime(e.Time.Wall),
		Node:         e.Node,
		Kind:         clip(e.Kind),
		Attrs:        clipAttrs(e.Attrs),
		PayloadBytes: len(e.Payload),
	}
	if _, d, ok := events.Interval(e); ok {
		v.Duration = d.String()
	}
	if !e.Correlation.IsZero() {
		v.Trace = e.Correlation.String()
	}
	if !e.Parent.IsZero() {
		v.Parent = e.Parent.String()
	}
	return v
}

func wallTime(ns int64) string { return time.Unix(0, ns).UTC().Format(time.RFC3339Nano) }

// filterOf reads the filter an input describes.
func (t *mcpTools) filterOf(in queryEventsIn, limit int) (query.Filter, error) {
	ff := filterFlags{trace: in.Trace, nodes: in.Nodes, kinds: in.Kinds, since: in.Since, until: in.Until, limit: limit, after: in.Cursor, desc: in.NewestFirst}
	for _, k := range slices.Sorted(maps.Keys(in.Attrs)) {
		ff.attrs = append(ff.attrs, k+"="+in.Attrs[k])
	}
	f, err := ff.filter(t.now())
	var usage *usageError
	if errors.As(err, &usage) {
		err = usage.err // flag names mean nothing here; the message does
	}
	return f, err
}

func (t *mcpTools) queryEvents(ctx context.Context, _ *mcp.CallToolRequest, in queryEventsIn) (*mcp.CallToolResult, queryEventsOut, error) {
	limit, err := pageSize(in.Limit, defaultEventsPage, maxEventsPage, "limit")
	if err != nil {
		return nil, queryEventsOut{}, err
	}
	f, err := t.filterOf(in, limit)
	if err != nil {
		return nil, queryEventsOut{}, err
	}
	q := httpquery.Values(f)
	if in.Cluster {
		q.Set("cluster", "true")
	}
	var res resultJSON
	if err := t.api.call(ctx, http.MethodGet, "/v1/events", q, nil, &res); err != nil {
		return nil, queryEventsOut{}, err
	}
	out := queryEventsOut{Complete: res.Complete, NotAnswer: notAnswering(res.Peers), Events: []eventView{}, NextCursor: res.Next}
	size := 0
	for i, e := range res.Events {
		v := viewOf(e)
		if size += jsonSize(v); size > maxAnswerBytes && i > 0 {
			out.NextCursor = query.CursorOf(res.Events[i-1]).String()
			break
		}
		out.Events = append(out.Events, v)
	}
	where := "this node's replica"
	if in.Cluster {
		where = fmt.Sprintf("the cluster (%d members asked, %d did not answer)", len(res.Peers), len(out.NotAnswer))
	}
	out.Summary = fmt.Sprintf("%d events from %s", len(out.Events), where)
	if n := len(out.Events); n > 0 {
		out.Summary += fmt.Sprintf(", %s to %s", out.Events[0].Time, out.Events[n-1].Time)
	}
	if out.NextCursor != "" {
		out.Summary += "; more match: pass next_cursor as cursor"
	}
	return answer(out), out, nil
}

// ----- get_trace

type getTraceIn struct {
	Trace  string `json:"trace" jsonschema:"the trace's ID, 32 hex digits"`
	Limit  int    `json:"limit,omitempty" jsonschema:"at most this many events of the tree (default 100, at most 500)"`
	Cursor string `json:"cursor,omitempty" jsonschema:"next_cursor of a previous answer, for the next part of the tree"`
}

type getTraceOut struct {
	Summary   string         `json:"summary"`
	Complete  bool           `json:"complete" jsonschema:"every member answered"`
	NotAnswer []memberAnswer `json:"members_not_answering,omitempty"`
	Events    int            `json:"events" jsonschema:"events in the whole trace"`
	Nodes     []traceNode    `json:"nodes" jsonschema:"the nodes the trace crossed, in the order the rendering letters them A, B, C, ..."`
	Missing   []string       `json:"missing_parents,omitempty" jsonschema:"parent events no member holds"`
	Expired   []string       `json:"expired_parents,omitempty" jsonschema:"parent events gone with the retention"`
	Tree      []treeEvent    `json:"tree" jsonschema:"events in causal order: each after its parent, siblings by start"`
	Rendering string         `json:"rendering" jsonschema:"the trace drawn for a terminal, one lane per node"`
	// NextCursor continues the tree; the rest of the answer is the same.
	NextCursor string `json:"next_cursor,omitempty" jsonschema:"more of the tree: pass it as cursor"`
}

// traceNode is a node a trace crossed.
type traceNode struct {
	ID   string `json:"id"`
	Name string `json:"name,omitempty"`
}

// treeEvent is one event of a trace's causal tree.
type treeEvent struct {
	eventView
	Depth   int     `json:"depth" jsonschema:"0 for a root, 1 for its children, ..."`
	Cause   string  `json:"cause,omitempty" jsonschema:"the event that caused it: its parent event, or the event of its parent span"`
	StartMs float64 `json:"start_ms" jsonschema:"when it began, in milliseconds after the trace began"`
	Failed  bool    `json:"failed,omitempty"`
}

func (t *mcpTools) getTrace(ctx context.Context, _ *mcp.CallToolRequest, in getTraceIn) (*mcp.CallToolResult, getTraceOut, error) {
	id, err := events.ParseTraceID(in.Trace)
	if err != nil {
		return nil, getTraceOut{}, err
	}
	limit, err := pageSize(in.Limit, defaultTracePage, maxTracePage, "limit")
	if err != nil {
		return nil, getTraceOut{}, err
	}
	offset, err := offsetCursor(in.Cursor)
	if err != nil {
		return nil, getTraceOut{}, err
	}
	tr, err := t.trace(ctx, id)
	if err != nil {
		return nil, getTraceOut{}, err
	}
	if len(tr.Events) == 0 {
		return nil, getTraceOut{}, fmt.Errorf("no member that answered holds events of trace %v", id)
	}
	out := getTraceOut{Complete: tr.Complete, NotAnswer: notAnswering(tr.Peers), Events: len(tr.Events), Tree: []treeEvent{}}
	for _, l := range tr.Lanes() {
		out.Nodes = append(out.Nodes, traceNode{ID: l.Node, Name: clip(tr.Names[l.Node])})
	}
	for _, g := range tr.Gaps {
		out.Missing = append(out.Missing, g.String())
	}
	for _, g := range tr.Expired {
		out.Expired = append(out.Expired, g.String())
	}
	start, end := traceSpan(tr)
	depth := make(map[events.ID]int, len(tr.Events))
	size := 0
	for i, e := range tr.Events {
		began, _ := events.Extent(e)
		te := treeEvent{eventView: viewOf(e), StartMs: float64(began-start) / float64(time.Millisecond), Failed: failed(e)}
		te.NodeName = clip(tr.Names[e.Node])
		if p, ok := tr.Parent(e.ID); ok {
			depth[e.ID] = depth[p.ID] + 1
			te.Cause = p.ID.String()
		}
		te.Depth = depth[e.ID]
		if i < offset || len(out.Tree) == limit {
			continue
		}
		if size += jsonSize(te); size > maxAnswerBytes && len(out.Tree) > 0 {
			out.NextCursor = strconv.Itoa(i)
			break
		}
		out.Tree = append(out.Tree, te)
		if len(out.Tree) == limit && i+1 < len(tr.Events) {
			out.NextCursor = strconv.Itoa(i + 1)
		}
	}
	out.Rendering = renderTrace(tr)
	out.Summary = traceLine(tr, start, end)
	if !tr.Complete {
		out.Summary += fmt.Sprintf("; %d members did not answer", len(out.NotAnswer))
	}
	if len(out.Missing) > 0 {
		out.Summary += fmt.Sprintf("; %d parent events missing", len(out.Missing))
	}
	if out.NextCursor != "" {
		out.Summary += fmt.Sprintf("; tree events %d to %d shown, pass next_cursor for more", offset, offset+len(out.Tree)-1)
	}
	return answer(out), out, nil
}

// trace fetches a trace from the node and arranges it.
func (t *mcpTools) trace(ctx context.Context, id events.TraceID) (*query.Trace, error) {
	var got query.Trace
	if err := t.api.call(ctx, http.MethodGet, "/v1/traces/"+id.String(), nil, nil, &got); err != nil {
		return nil, err
	}
	// The decoded trace lacks its index: arrange the events again.
	tr := query.NewTrace(id, got.Events)
	tr.Complete, tr.Peers, tr.Names = got.Complete, got.Peers, got.Names
	tr.SetHorizon(got.Horizon)
	return tr, nil
}

// renderTrace draws tr, cut to maxRenderLines.
func renderTrace(tr *query.Trace) string {
	var b strings.Builder
	tr.Render(&b, query.RenderOptions{Width: renderWidth})
	lines := strings.SplitAfter(b.String(), "\n")
	if len(lines) <= maxRenderLines {
		return b.String()
	}
	return strings.Join(lines[:maxRenderLines], "") + fmt.Sprintf("… %d more lines; the tree holds every event\n", len(lines)-maxRenderLines)
}

// traceSpan returns when tr began and ended, in wall nanoseconds.
func traceSpan(tr *query.Trace) (start, end int64) {
	for i, e := range tr.Events {
		if b, f := events.Extent(e); i == 0 {
			start, end = b, f
		} else {
			start, end = min(start, b), max(end, f)
		}
	}
	return start, end
}

// failed reports whether e records a failure: an OpenTelemetry span with
// an error status, an exception, an error attribute, or an HTTP status of
// 500 or more.
func failed(e events.Event) bool {
	a := e.Attrs
	if a["otel.status_code"] == "ERROR" || a["exception.type"] != "" || (a["error"] != "" && a["error"] != "false") {
		return true
	}
	for _, k := range []string{"http.response.status_code", "status"} {
		if code, err := strconv.Atoi(a[k]); err == nil && code >= 500 && code <= 599 {
			return true
		}
	}
	return false
}

// traceLine summarises tr in one line.
func traceLine(tr *query.Trace, start, end int64) string {
	roots := tr.Roots()
	first := roots[0]
	nodes := len(tr.Lanes())
	failures := 0
	for _, e := range tr.Events {
		if failed(e) {
			failures++
		}
	}
	s := fmt.Sprintf("trace %v: %s on %s at %s, %d events on %d nodes, %v", tr.ID, clip(first.Kind), nodeLabel(first.Node, tr.Names[first.Node]),
		wallTime(start), len(tr.Events), nodes, time.Duration(end-start))
	if failures > 0 {
		s += fmt.Sprintf(", %d failed", failures)
	}
	if len(roots) > 1 {
		s += fmt.Sprintf(", %d roots", len(roots))
	}
	return s
}

// ----- find_traces

type findTracesIn struct {
	Kinds       []string          `json:"kinds,omitempty" jsonschema:"only traces with an event of these kinds, any of them"`
	Attrs       map[string]string `json:"attrs,omitempty" jsonschema:"only traces with an event that has all these attributes, e.g. {\"path\": \"/cart\"}"`
	Nodes       []string          `json:"nodes,omitempty" jsonschema:"only traces with such an event recorded on these nodes: peer IDs or member names"`
	ErrorsOnly  bool              `json:"errors_only,omitempty" jsonschema:"only traces with a failure: an OpenTelemetry error status, an exception, an error attribute or an HTTP status of 500 or more"`
	MinDuration string            `json:"min_duration,omitempty" jsonschema:"only traces with an operation (a span) that took at least this long, e.g. 500ms"`
	Since       string            `json:"since,omitempty" jsonschema:"search back to this time: a duration ago (default 1h), an RFC 3339 time or an HLC timestamp"`
	LocalOnly   bool              `json:"local_only,omitempty" jsonschema:"search this node's replica only, not every member"`
	Limit       int               `json:"limit,omitempty" jsonschema:"at most this many traces (default 10, at most 50)"`
	Cursor      string            `json:"cursor,omitempty" jsonschema:"next_cursor of a previous answer with the same filters, to search further back"`
}

type findTracesOut struct {
	Summary    string         `json:"summary"`
	Traces     []traceFound   `json:"traces"`
	Complete   bool           `json:"complete" jsonschema:"every member asked answered every search"`
	NotAnswer  []memberAnswer `json:"members_not_answering,omitempty"`
	NextCursor string         `json:"next_cursor,omitempty" jsonschema:"more events are left to search: pass it as cursor"`
}

type traceFound struct {
	Trace   string `json:"trace"`
	Summary string `json:"summary"`
}

func (t *mcpTools) findTraces(ctx context.Context, _ *mcp.CallToolRequest, in findTracesIn) (*mcp.CallToolResult, findTracesOut, error) {
	limit, err := pageSize(in.Limit, defaultTracesFound, maxTracesFound, "limit")
	if err != nil {
		return nil, findTracesOut{}, err
	}
	var minDur time.Duration
	if in.MinDuration != "" {
		if minDur, err = time.ParseDuration(in.MinDuration); err != nil || minDur <= 0 {
			return nil, findTracesOut{}, fmt.Errorf("min_duration %q is not a positive duration such as 500ms", in.MinDuration)
		}
	}
	since := in.Since
	if since == "" {
		since = "1h"
	}
	f, err := t.filterOf(queryEventsIn{Nodes: in.Nodes, Kinds: in.Kinds, Attrs: in.Attrs, Since: since, NewestFirst: true, Cursor: in.Cursor}, findScanPage)
	if err != nil {
		return nil, findTracesOut{}, err
	}
	out := findTracesOut{Traces: []traceFound{}, Complete: true}
	seen := map[events.TraceID]bool{}
	var found []events.TraceID
	scanned := 0
scan:
	for scanned < findScanEvents {
		q := httpquery.Values(f)
		if !in.LocalOnly {
			q.Set("cluster", "true")
		}
		var res resultJSON
		if err := t.api.call(ctx, http.MethodGet, "/v1/events", q, nil, &res); err != nil {
			return nil, findTracesOut{}, err
		}
		out.Complete = out.Complete && res.Complete
		out.NotAnswer = mergeAnswers(out.NotAnswer, notAnswering(res.Peers))
		for _, e := range res.Events {
			scanned++
			f.After = query.CursorOf(e)
			if e.Correlation.IsZero() || seen[e.Correlation] {
				continue
			}
			if in.ErrorsOnly && !failed(e) {
				continue
			}
			if _, d, ok := events.Interval(e); minDur > 0 && (!ok || d < minDur) {
				continue
			}
			seen[e.Correlation] = true
			found = append(found, e.Correlation)
			if len(found) == limit {
				out.NextCursor = f.After.String()
				break scan
			}
		}
		if res.Next == "" {
			break
		}
		if scanned >= findScanEvents {
			out.NextCursor = res.Next
		}
		if f.After, err = scopemesh.ParseKey(res.Next); err != nil {
			return nil, findTracesOut{}, err
		}
	}
	for _, id := range found {
		tr, err := t.trace(ctx, id)
		if err != nil {
			return nil, findTracesOut{}, err
		}
		if len(tr.Events) == 0 {
			continue // expired since it was found
		}
		start, end := traceSpan(tr)
		out.Traces = append(out.Traces, traceFound{Trace: id.String(), Summary: traceLine(tr, start, end)})
		out.Complete = out.Complete && tr.Complete
	}
	out.Summary = fmt.Sprintf("%d traces found in %d events searched", len(out.Traces), scanned)
	if out.NextCursor != "" {
		out.Summary += "; more may be further back: pass next_cursor as cursor"
	}
	return answer(out), out, nil
}

// mergeAnswers adds to have the members of more it does not name yet.
func mergeAnswers(have, more []memberAnswer) []memberAnswer {
	for _, m := range more {
		if !slices.ContainsFunc(have, func(h memberAnswer) bool { return h.ID == m.ID }) {
			have = append(have, m)
		}
	}
	return have
}

// ----- record_event

type recordEventIn struct {
	Kind     string            `json:"kind" jsonschema:"what happened, e.g. deploy.start"`
	Attrs    map[string]string `json:"attrs,omitempty" jsonschema:"small details, e.g. {\"version\": \"1.4.2\"}"`
	Trace    string            `json:"trace,omitempty" jsonschema:"the trace it belongs to: its ID, 32 hex digits"`
	NewTrace bool              `json:"new_trace,omitempty" jsonschema:"start a new trace with this event"`
	Parent   string            `json:"parent,omitempty" jsonschema:"the ID of the event that caused it"`
}

type recordEventOut struct {
	Summary string    `json:"summary"`
	Event   eventView `json:"event"`
}

func (t *mcpTools) recordEvent(ctx context.Context, _ *mcp.CallToolRequest, in recordEventIn) (*mcp.CallToolResult, recordEventOut, error) {
	req := recordRequest{Kind: in.Kind, Attrs: in.Attrs, Trace: in.Trace, Parent: in.Parent}
	switch {
	case in.NewTrace && in.Trace != "":
		return nil, recordEventOut{}, errors.New("new_trace and trace exclude each other")
	case in.NewTrace:
		req.Trace = events.NewTraceID().String()
	}
	var e events.Event
	if err := t.api.call(ctx, http.MethodPost, "/v1/events", nil, req, &e); err != nil {
		return nil, recordEventOut{}, err
	}
	out := recordEventOut{Summary: recordedLine(e), Event: viewOf(e)}
	return answer(out), out, nil
}
