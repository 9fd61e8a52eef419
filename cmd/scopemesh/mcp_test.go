package main

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"maps"
	"net/http"
	"os"
	"reflect"
	"regexp"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/scopemesh/scopemesh"
	"github.com/scopemesh/scopemesh/events"
)

// mcpSession connects the SDK's client to an MCP server answering through
// n's API.
func mcpSession(t *testing.T, n *testNode, allowRecord bool) *mcp.ClientSession {
	t.Helper()
	cf := clientFlags{api: n.api, timeout: 20 * time.Second}
	api, err := cf.client()
	if err != nil {
		t.Fatal(err)
	}
	serverEnd, clientEnd := mcp.NewInMemoryTransports()
	ctx := context.Background()
	ss, err := newMCPServer(api, allowRecord).Connect(ctx, serverEnd, nil)
	if err != nil {
		t.Fatal(err)
	}
	cs, err := mcp.NewClient(&mcp.Implementation{Name: "test", Version: "v0"}, nil).Connect(ctx, clientEnd, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cs.Close()
		ss.Wait()
	})
	return cs
}

// callTool calls a tool and decodes its structured answer into out; it
// fails the test on an error unless wantErr, and then returns the error's
// text.
func callTool(t *testing.T, cs *mcp.ClientSession, name string, args map[string]any, out any, wantErr bool) string {
	t.Helper()
	res, err := cs.CallTool(context.Background(), &mcp.CallToolParams{Name: name, Arguments: args})
	if err != nil {
		t.Fatalf("%s(%v): %v", name, args, err)
	}
	var text strings.Builder
	for _, c := range res.Content {
		if tc, ok := c.(*mcp.TextContent); ok {
			text.WriteString(tc.Text)
		}
	}
	if res.IsError != wantErr {
		t.Fatalf("%s(%v): error %v, want %v: %s", name, args, res.IsError, wantErr, text.String())
	}
	if !wantErr && out != nil {
		b, _ := json.Marshal(res.StructuredContent)
		reflect.ValueOf(out).Elem().SetZero() // nothing left of an earlier answer
		if err := json.Unmarshal(b, out); err != nil {
			t.Fatalf("%s: %v\n%s", name, err, b)
		}
		// The text an assistant reads is the same answer, summary first.
		if !json.Valid([]byte(text.String())) || !strings.HasPrefix(text.String(), `{"summary":"`) {
			t.Fatalf("%s: text content is not the JSON answer, summary first: %s", name, text.String())
		}
	}
	return text.String()
}

// mcpFixture records, on two connected nodes named alpha and bravo, three
// traces: one that fails, one with a slow span, one neither.
type mcpFixture struct {
	a, b                 *testNode
	failing, slow, plain events.TraceID
	failingRoot          events.Event
}

func newMCPFixture(t *testing.T) mcpFixture {
	a, b := startNamed(t, "alpha"), startNamed(t, "bravo")
	connectNodes(t, a, b)
	f := mcpFixture{a: a, b: b, failing: events.NewTraceID(), slow: events.NewTraceID(), plain: events.NewTraceID()}
	ctx := context.Background()
	record := func(n *testNode, trace events.TraceID, parent events.ID, kind string, attrs map[string]string) events.Event {
		t.Helper()
		e, err := n.Record(ctx, events.Event{Correlation: trace, Parent: parent, Kind: kind, Attrs: attrs})
		if err != nil {
			t.Fatal(err)
		}
		return e
	}
	f.failingRoot = record(a, f.failing, events.ID{}, "http.request", map[string]string{"path": "/checkout"})
	call := record(b, f.failing, f.failingRoot.ID, "rpc.call", map[string]string{"method": "Cart.Get"})
	record(b, f.failing, call.ID, "db.query", map[string]string{"otel.status_code": "ERROR", "long": strings.Repeat("x", 4000)})
	record(a, f.failing, f.failingRoot.ID, "http.response", map[string]string{"status": "502"})

	start, dur := events.IntervalAttrs(time.Now().Add(-2*time.Second), 1500*time.Millisecond)
	slowRoot := record(a, f.slow, events.ID{}, "GET /report", map[string]string{events.AttrSpanID: "00000000000000aa", events.AttrStart: start, events.AttrDuration: dur})
	record(b, f.slow, slowRoot.ID, "db.scan", map[string]string{"table": "orders"})

	record(a, f.plain, events.ID{}, "http.request", map[string]string{"path": "/cart"})
	record(a, events.TraceID{}, events.ID{}, "deploy.done", nil) // in no trace
	eventually(t, 10*time.Second, "b's events to reach a", func() bool { return a.Status().Events == 8 })
	// b's member record, which carries its name, follows the connection.
	eventually(t, 10*time.Second, "a to know b's name", func() bool {
		return slices.ContainsFunc(a.Peers(), func(p scopemesh.PeerInfo) bool { return p.Name == "bravo" })
	})
	return f
}

func TestMCPTools(t *testing.T) {
	f := newMCPFixture(t)
	cs := mcpSession(t, f.a, false)

	var names []string
	for tool, err := range cs.Tools(context.Background(), nil) {
		if err != nil {
			t.Fatal(err)
		}
		names = append(names, tool.Name)
		if len(tool.Description) < 80 || tool.InputSchema == nil || tool.Annotations == nil || !tool.Annotations.ReadOnlyHint {
			t.Errorf("tool %s: description %q, schema %v, annotations %+v", tool.Name, tool.Description, tool.InputSchema, tool.Annotations)
		}
	}
	slices.Sort(names)
	if want := []string{"cluster_status", "find_traces", "get_trace", "list_members", "query_events"}; !slices.Equal(names, want) {
		t.Fatalf("tools %v, want %v: read-only without --allow-record", names, want)
	}

	t.Run("cluster_status", func(t *testing.T) {
		var st statusOut
		callTool(t, cs, "cluster_status", nil, &st, false)
		if st.Node != f.a.ID() || st.Name != "alpha" || st.Events != 8 || st.Members != 1 || st.Connected != 1 ||
			!strings.HasPrefix(st.Summary, "node alpha (…") || !strings.Contains(st.Summary, "holds 8 events; 1 of 1 known members connected") {
			t.Fatalf("%+v", st)
		}
	})

	t.Run("list_members", func(t *testing.T) {
		var m listMembersOut
		callTool(t, cs, "list_members", nil, &m, false)
		if len(m.Members) != 1 {
			t.Fatalf("%+v", m)
		}
		bravo := m.Members[0]
		if bravo.ID != f.b.ID() || bravo.Name != "bravo" || bravo.State != "connected" || !strings.HasSuffix(bravo.Since, " ago") || !strings.HasPrefix(bravo.Via, "direct") ||
			m.Summary != "1 members known: 1 connected" || m.NextCursor != "" {
			t.Fatalf("%+v", m)
		}
		callTool(t, cs, "list_members", map[string]any{"cursor": "x"}, nil, true)
	})

	t.Run("query_events", func(t *testing.T) {
		var q queryEventsOut
		callTool(t, cs, "query_events", map[string]any{"kinds": []string{"db.query", "rpc.call"}, "cluster": true}, &q, false)
		if len(q.Events) != 2 || !q.Complete || q.Events[0].Kind != "rpc.call" || q.Events[0].Node != f.b.ID() || !strings.HasPrefix(q.Summary, "2 events from the cluster (1 members asked, 0 did not answer)") {
			t.Fatalf("%+v", q)
		}
		callTool(t, cs, "query_events", map[string]any{"nodes": []string{"bravo"}}, &q, false)
		if len(q.Events) != 3 || q.Events[0].Node != f.b.ID() || q.Events[2].Node != f.b.ID() {
			t.Fatalf("bravo's events, by name: %+v", q)
		}
		if long := q.Events[1].Attrs["long"]; len(long) > maxValueBytes+len("…") || !strings.HasSuffix(long, "…") {
			t.Fatalf("a long value came back %d bytes long", len(long))
		}
		// Pages: one event at a time, oldest first, by cursor.
		var seen []string
		args := map[string]any{"trace": f.failing.String(), "limit": 1}
		for range 10 {
			callTool(t, cs, "query_events", args, &q, false)
			for _, e := range q.Events {
				seen = append(seen, e.Kind)
			}
			if q.NextCursor == "" {
				break
			}
			args["cursor"] = q.NextCursor
		}
		if want := []string{"http.request", "rpc.call", "db.query", "http.response"}; !slices.Equal(seen, want) {
			t.Fatalf("paged through %v, want %v", seen, want)
		}
		callTool(t, cs, "query_events", map[string]any{"attrs": map[string]string{"path": "/cart"}, "since": "1h", "newest_first": true}, &q, false)
		if len(q.Events) != 1 || q.Events[0].Trace != f.plain.String() {
			t.Fatalf("by attribute: %+v", q)
		}
		for _, bad := range []map[string]any{
			{"trace": "xyz"},
			{"limit": 1000},
			{"since": "yesterday"},
			{"cursor": "00"},
			{"kinds": "http.request"}, // not a list: the schema refuses it
		} {
			if msg := callTool(t, cs, "query_events", bad, nil, true); msg == "" {
				t.Errorf("%v: an error without a message", bad)
			}
		}
	})

	t.Run("get_trace", func(t *testing.T) {
		var tr getTraceOut
		callTool(t, cs, "get_trace", map[string]any{"trace": f.failing.String()}, &tr, false)
		if tr.Events != 4 || len(tr.Tree) != 4 || !tr.Complete || tr.NextCursor != "" ||
			!slices.Equal(tr.Nodes, []traceNode{{f.a.ID(), "alpha"}, {f.b.ID(), "bravo"}}) {
			t.Fatalf("%+v", tr)
		}
		depths := map[string]int{}
		for _, e := range tr.Tree {
			depths[e.Kind] = e.Depth
		}
		if !maps.Equal(depths, map[string]int{"http.request": 0, "rpc.call": 1, "db.query": 2, "http.response": 1}) || tr.Tree[1].Cause != f.failingRoot.ID.String() ||
			tr.Tree[0].NodeName != "alpha" || tr.Tree[1].NodeName != "bravo" {
			t.Fatalf("tree %+v", tr.Tree)
		}
		if !tr.Tree[2].Failed || !strings.Contains(tr.Summary, "http.request on alpha (…") || !strings.Contains(tr.Summary, "4 events on 2 nodes") || !strings.Contains(tr.Summary, "2 failed") {
			t.Fatalf("summary %q, tree %+v", tr.Summary, tr.Tree)
		}
		if !strings.Contains(tr.Rendering, "4 events on 2 nodes, complete") || !strings.Contains(tr.Rendering, "A = alpha   B = bravo") || !strings.Contains(tr.Rendering, "╰─▶●") {
			t.Fatalf("rendering:\n%s", tr.Rendering)
		}
		// A page of the tree at a time.
		callTool(t, cs, "get_trace", map[string]any{"trace": f.failing.String(), "limit": 3}, &tr, false)
		if len(tr.Tree) != 3 || tr.NextCursor != "3" {
			t.Fatalf("first page: %d events, cursor %q", len(tr.Tree), tr.NextCursor)
		}
		callTool(t, cs, "get_trace", map[string]any{"trace": f.failing.String(), "limit": 3, "cursor": tr.NextCursor}, &tr, false)
		if len(tr.Tree) != 1 || tr.Tree[0].Depth != 1 || tr.NextCursor != "" {
			t.Fatalf("second page: %+v", tr.Tree)
		}
		// A span's duration and start.
		callTool(t, cs, "get_trace", map[string]any{"trace": f.slow.String()}, &tr, false)
		if tr.Tree[0].Duration != "1.5s" || tr.Tree[0].StartMs != 0 || tr.Tree[1].StartMs < 1000 || !strings.Contains(tr.Rendering, "GET /report [1.5s]") {
			t.Fatalf("slow trace: %+v\n%s", tr.Tree, tr.Rendering)
		}
		if msg := callTool(t, cs, "get_trace", map[string]any{"trace": events.NewTraceID().String()}, nil, true); !strings.Contains(msg, "no member that answered holds events of trace") {
			t.Fatalf("an unknown trace: %s", msg)
		}
		callTool(t, cs, "get_trace", map[string]any{}, nil, true) // trace is required
	})

	t.Run("find_traces", func(t *testing.T) {
		var ft findTracesOut
		callTool(t, cs, "find_traces", nil, &ft, false)
		if len(ft.Traces) != 3 || !ft.Complete || ft.Traces[0].Trace != f.plain.String() || !strings.HasPrefix(ft.Summary, "3 traces found in 8 events searched") {
			t.Fatalf("every trace, newest first: %+v", ft)
		}
		callTool(t, cs, "find_traces", map[string]any{"errors_only": true}, &ft, false)
		if len(ft.Traces) != 1 || ft.Traces[0].Trace != f.failing.String() || !strings.Contains(ft.Traces[0].Summary, "http.request on") || !strings.Contains(ft.Traces[0].Summary, "2 failed") {
			t.Fatalf("errors only: %+v", ft)
		}
		callTool(t, cs, "find_traces", map[string]any{"min_duration": "1s"}, &ft, false)
		if len(ft.Traces) != 1 || ft.Traces[0].Trace != f.slow.String() {
			t.Fatalf("slow: %+v", ft)
		}
		callTool(t, cs, "find_traces", map[string]any{"kinds": []string{"http.request"}, "limit": 1}, &ft, false)
		if len(ft.Traces) != 1 || ft.Traces[0].Trace != f.plain.String() || ft.NextCursor == "" {
			t.Fatalf("the first of two: %+v", ft)
		}
		callTool(t, cs, "find_traces", map[string]any{"kinds": []string{"http.request"}, "limit": 1, "cursor": ft.NextCursor}, &ft, false)
		if len(ft.Traces) != 1 || ft.Traces[0].Trace != f.failing.String() {
			t.Fatalf("the second of two: %+v", ft)
		}
		callTool(t, cs, "find_traces", map[string]any{"min_duration": "soon"}, nil, true)
	})
}

// list_members puts the named members first and says each one's state in
// a word, and how many are in each in its summary.
func TestMemberViews(t *testing.T) {
	now := time.Now()
	peers := []peerJSON{
		{PeerInfo: scopemesh.PeerInfo{ID: "12D3KooWa", State: scopemesh.StateSuspect, UnreachableSince: now.Add(-40 * time.Second)}},
		{PeerInfo: scopemesh.PeerInfo{ID: "12D3KooWb", Name: "zulu", State: scopemesh.StateLeft, UnreachableSince: now.Add(-time.Minute)}},
		{PeerInfo: scopemesh.PeerInfo{ID: "12D3KooWc", Name: "echo", State: scopemesh.StateConnected, Connected: true, ConnectedSince: now.Add(-time.Hour)}},
		{PeerInfo: scopemesh.PeerInfo{ID: "12D3KooWd", Name: "kilo", State: scopemesh.StateReachable, Refused: true}},
		{PeerInfo: scopemesh.PeerInfo{ID: "12D3KooWe", Name: "echo", State: scopemesh.StateReachable}},
	}
	sortMembers(peers)
	var got []string
	for _, p := range peers {
		v := memberOf(p, now)
		got = append(got, strings.TrimSpace(v.Name+" "+v.ID+" "+v.State+" "+v.Since))
	}
	want := []string{
		"echo 12D3KooWc connected 1h0m0s ago",
		"echo 12D3KooWe reachable",
		"kilo 12D3KooWd refused",
		"zulu 12D3KooWb left 1m0s ago",
		"12D3KooWa suspect 40s ago",
	}
	if !slices.Equal(got, want) {
		t.Errorf("members:\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	if line, want := membersLine(peers), "5 members known: 1 connected, 1 reachable, 1 suspect, 1 left, 1 refused"; line != want {
		t.Errorf("summary %q, want %q", line, want)
	}
}

func TestMCPRecordsOnlyWhenAllowed(t *testing.T) {
	n := startNode(t)
	if _, err := mcpSession(t, n, false).CallTool(context.Background(), &mcp.CallToolParams{Name: "record_event", Arguments: map[string]any{"kind": "deploy.start"}}); err == nil || !strings.Contains(err.Error(), "unknown tool") {
		t.Fatalf("record_event without --allow-record: %v", err)
	}

	cs := mcpSession(t, n, true)
	var rec recordEventOut
	callTool(t, cs, "record_event", map[string]any{"kind": "deploy.start", "attrs": map[string]string{"version": "1.4.2"}, "new_trace": true}, &rec, false)
	if rec.Event.Kind != "deploy.start" || rec.Event.Trace == "" || rec.Event.Node != n.ID() || !strings.HasPrefix(rec.Summary, "recorded deploy.start") {
		t.Fatalf("%+v", rec)
	}
	if n.Status().Events != 1 {
		t.Fatal("the node does not hold the event")
	}
	callTool(t, cs, "record_event", map[string]any{"kind": ""}, nil, true)
	callTool(t, cs, "record_event", map[string]any{"kind": "k", "trace": rec.Event.Trace, "new_trace": true}, nil, true)
	if n.Status().Events != 1 {
		t.Fatal("a refused record changed the node")
	}
}

// `scopemesh mcp` serves over stdin and stdout until the client leaves,
// and leaves nothing running.
func TestMCPCommandOverStdio(t *testing.T) {
	n := startNode(t)
	inR, inW := io.Pipe()
	outR, outW := io.Pipe()
	var errOut bytes.Buffer
	done := make(chan int, 1)
	go func() {
		done <- run(context.Background(), []string{"mcp", "--api", n.api}, inR, outW, &errOut)
		outW.Close()
	}()
	cs, err := mcp.NewClient(&mcp.Implementation{Name: "test", Version: "v0"}, nil).Connect(context.Background(), &mcp.IOTransport{Reader: outR, Writer: inW}, nil)
	if err != nil {
		t.Fatal(err)
	}
	var st statusOut
	callTool(t, cs, "cluster_status", nil, &st, false)
	if st.Node != n.ID() {
		t.Fatalf("%+v", st)
	}
	cs.Close()
	inW.Close()
	select {
	case code := <-done:
		if code != exitOK {
			t.Fatalf("exit %d: %s", code, errOut.String())
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the MCP server did not stop when its client left")
	}
	noMCPGoroutines(t)
}

// noMCPGoroutines waits until no goroutine runs the MCP SDK's code: the
// node's own may run on, but the server's must all have stopped.
func noMCPGoroutines(t *testing.T) {
	t.Helper()
	var stacks []byte
	eventually(t, 5*time.Second, "the MCP server's goroutines to stop", func() bool {
		stacks = make([]byte, 1<<20)
		stacks = stacks[:runtime.Stack(stacks, true)]
		return !bytes.Contains(stacks, []byte("modelcontextprotocol/go-sdk"))
	})
}

// bearer adds a token to every request.
type bearer struct{ token string }

func (b bearer) RoundTrip(r *http.Request) (*http.Response, error) {
	r = r.Clone(r.Context())
	r.Header.Set("Authorization", "Bearer "+b.token)
	return http.DefaultTransport.RoundTrip(r)
}

// `scopemesh mcp --http` serves on loopback to those with the node's token.
func TestMCPCommandOverHTTP(t *testing.T) {
	isolateClient(t)
	node := startNodeCommand(t, "--api", "127.0.0.1:0")
	api := strings.TrimPrefix(node.report.API, "tcp:")
	token, err := os.ReadFile(node.report.APITokenFile)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	errOut := &lockedWriter{w: &bytes.Buffer{}}
	done := make(chan int, 1)
	go func() {
		done <- run(ctx, []string{"mcp", "--http", "127.0.0.1:0", "--api", api, "--api-token-file", node.report.APITokenFile}, strings.NewReader(""), io.Discard, errOut)
	}()
	addr := regexp.MustCompile(`serving MCP at (http://\S+/mcp);`)
	var endpoint string
	eventually(t, 10*time.Second, "the MCP server's address", func() bool {
		if m := addr.FindStringSubmatch(errOut.String()); m != nil {
			endpoint = m[1]
		}
		return endpoint != ""
	})

	client := mcp.NewClient(&mcp.Implementation{Name: "test", Version: "v0"}, nil)
	if _, err := client.Connect(ctx, &mcp.StreamableClientTransport{Endpoint: endpoint, MaxRetries: -1}, nil); err == nil {
		t.Fatal("connected without the token")
	}
	cs, err := client.Connect(ctx, &mcp.StreamableClientTransport{Endpoint: endpoint, HTTPClient: &http.Client{Transport: bearer{strings.TrimSpace(string(token))}}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	var st statusOut
	callTool(t, cs, "cluster_status", nil, &st, false)
	if st.Node == "" || st.Events != 0 {
		t.Fatalf("%+v", st)
	}
	cs.Close()
	cancel()
	select {
	case code := <-done:
		if code != exitOK {
			t.Fatalf("exit %d: %s", code, errOut.String())
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the MCP server did not stop")
	}
	noMCPGoroutines(t)

	for _, args := range [][]string{
		{"mcp", "--http", "0.0.0.0:7401", "--api", api},
		{"mcp", "--http", "192.0.2.1:7401", "--api", api},
		{"mcp", "--http", "nowhere", "--api", api},
	} {
		if _, errOut, code := cli(context.Background(), args...); code != exitUsage || !strings.Contains(errOut, "not a loopback host:port") {
			t.Errorf("%v: exit %d: %s", args, code, errOut)
		}
	}
	// A node with no token cannot be served over HTTP.
	n := startNode(t)
	if _, errOut, code := cli(context.Background(), "mcp", "--http", "127.0.0.1:0", "--api", n.api, "--api-token-file", "/nonexistent"); code != exitFailure || !strings.Contains(errOut, "--http serves only requests that carry the node's API token") {
		t.Errorf("exit %d: %s", code, errOut)
	}
}
