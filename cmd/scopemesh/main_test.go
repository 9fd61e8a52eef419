package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/scopemesh/scopemesh"
	"github.com/scopemesh/scopemesh/events"
	"github.com/scopemesh/scopemesh/internal/httpquery"
	"github.com/scopemesh/scopemesh/internal/poll"
	"github.com/scopemesh/scopemesh/internal/testcluster"
	"github.com/scopemesh/scopemesh/query"
)

// testNode is a node on loopback with an in-memory store, serving its API
// on a unix socket.
type testNode struct {
	*scopemesh.Node
	api string // the socket's path
}

// startNode starts a test node of the test's own cluster.
func startNode(t *testing.T) *testNode { t.Helper(); return startNamed(t, "") }

// startNamed starts a test node named name.
func startNamed(t *testing.T, name string) *testNode {
	t.Helper()
	node := testcluster.Open(t, name)
	// t.TempDir paths can pass the 107 bytes a socket path may have.
	dir, err := os.MkdirTemp("", "smapi")
	if err != nil {
		t.Fatal(err)
	}
	addr := apiAddr{network: "unix", address: filepath.Join(dir, apiSocketName)}
	ln, err := listenAPI(addr, false)
	if err != nil {
		t.Fatal(err)
	}
	srv := serveAPI(node, ln, addr, apiCredentials{}, slog.New(slog.DiscardHandler))
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := srv.Shutdown(ctx); err != nil {
			t.Errorf("shutting the API down: %v", err)
		}
		os.RemoveAll(dir) // the node closes after, in Open's cleanup
	})
	return &testNode{Node: node, api: addr.address}
}

// connectNodes connects a to b and waits until each counts the other as a
// connected member.
func connectNodes(t *testing.T, a, b *testNode) {
	t.Helper()
	if err := a.Connect(context.Background(), b.Addrs()[0]); err != nil {
		t.Fatal(err)
	}
	eventually(t, 10*time.Second, "the nodes to see each other as members", func() bool {
		return connectedTo(a.Node, b.ID()) && connectedTo(b.Node, a.ID())
	})
}

func connectedTo(n *scopemesh.Node, id string) bool {
	for _, p := range n.Peers() {
		if p.ID == id && p.Connected {
			return true
		}
	}
	return false
}

// eventually polls cond until it holds or the deadline passes.
var eventually = poll.Until

// cli runs the command line in-process.
func cli(ctx context.Context, args ...string) (stdout, stderr string, code int) {
	var out, errOut bytes.Buffer
	code = run(ctx, args, strings.NewReader(""), &out, &errOut)
	return out.String(), errOut.String(), code
}

// mustCLI runs the command line and fails the test unless it succeeds.
func mustCLI(t *testing.T, args ...string) string {
	t.Helper()
	out, errOut, code := cli(context.Background(), args...)
	if code != exitOK {
		t.Fatalf("scopemesh %s: exit %d\n%s%s", strings.Join(args, " "), code, out, errOut)
	}
	return out
}

// mustJSON runs the command line and decodes its JSON output into v.
func mustJSON(t *testing.T, v any, args ...string) {
	t.Helper()
	out := mustCLI(t, append(args, "--json")...)
	if err := json.Unmarshal([]byte(out), v); err != nil {
		t.Fatalf("scopemesh %s --json: %v\n%s", strings.Join(args, " "), err, out)
	}
}

func TestRecordAndQuery(t *testing.T) {
	n := startNode(t)
	var first events.Event
	mustJSON(t, &first, "record", "--api", n.api, "http.request", "path=/cart", "user=7", "--new-trace", "--payload", "body")
	if first.Kind != "http.request" || first.Attrs["path"] != "/cart" || first.Correlation.IsZero() || string(first.Payload) != "body" || first.Node != n.ID() {
		t.Fatalf("recorded %+v", first)
	}
	out := mustCLI(t, "record", "--api", n.api, "db.query", "table=carts", "--trace", first.Correlation.String(), "--parent", first.ID.String())
	if !strings.HasPrefix(out, "recorded db.query ") || !strings.Contains(out, first.Correlation.String()) {
		t.Errorf("record printed %q", out)
	}
	mustCLI(t, "record", "--api", n.api, "unrelated")

	var res resultJSON
	mustJSON(t, &res, "query", "--api", n.api, "--trace", first.Correlation.String())
	if len(res.Events) != 2 || res.Events[0].ID != first.ID || res.Events[1].Parent != first.ID || !res.Complete {
		t.Fatalf("query of the trace: %+v", res)
	}
	mustJSON(t, &res, "query", "--api", n.api, "--attr", "table=carts", "--kind", "db.query,other")
	if len(res.Events) != 1 || res.Events[0].Kind != "db.query" {
		t.Fatalf("query by attribute and kind: %+v", res.Events)
	}

	// Pages: a limit smaller than the matches gives a cursor.
	out, errOut, code := cli(context.Background(), "query", "--api", n.api, "--limit", "2")
	if code != exitOK || strings.Count(out, "\n") != 2 || !strings.Contains(errOut, "--after ") {
		t.Fatalf("a first page: exit %d\n%s%s", code, out, errOut)
	}
	cursor := strings.TrimSpace(errOut[strings.Index(errOut, "--after ")+len("--after "):])
	mustJSON(t, &res, "query", "--api", n.api, "--limit", "2", "--after", cursor)
	if len(res.Events) != 1 || res.Events[0].Kind != "unrelated" || res.Next != "" {
		t.Fatalf("the second page: %+v", res)
	}
	mustJSON(t, &res, "query", "--api", n.api, "--desc", "--limit", "1", "--since", "1h")
	if len(res.Events) != 1 || res.Events[0].Kind != "unrelated" {
		t.Fatalf("newest first: %+v", res.Events)
	}
	mustJSON(t, &res, "query", "--api", n.api, "--until", "1h")
	if len(res.Events) != 0 {
		t.Fatalf("events before an hour ago: %+v", res.Events)
	}
}

func TestClusterCommands(t *testing.T) {
	a, b := startNode(t), startNode(t)
	connectNodes(t, a, b)

	var st statusJSON
	mustJSON(t, &st, "status", "--api", a.api)
	if st.ID != a.ID() || st.Connected != 1 || len(st.Peers) != 1 || st.Peers[0].ID != b.ID() {
		t.Fatalf("status: %+v", st)
	}
	if out := mustCLI(t, "status", "--api", a.api); !strings.Contains(out, a.ID()) || !strings.Contains(out, "1 connected") ||
		!strings.Contains(out, "keeps 168h0m0s; none from before") {
		t.Errorf("status printed:\n%s", out)
	}

	var peers []peerJSON
	mustJSON(t, &peers, "peers", "--api", a.api)
	if len(peers) != 1 || peers[0].ID != b.ID() || len(peers[0].Connections) == 0 || peers[0].Connections[0].Relayed {
		t.Fatalf("peers: %+v", peers)
	}
	if out := mustCLI(t, "peers", "--api", a.api); !strings.Contains(out, b.ID()) || !strings.Contains(out, "direct tcp") {
		t.Errorf("peers printed:\n%s", out)
	}

	// A trace that crosses from a to b, drawn from either side.
	var root, child events.Event
	mustJSON(t, &root, "record", "--api", a.api, "http.request", "path=/cart/1", "--new-trace")
	mustJSON(t, &child, "record", "--api", b.api, "rpc.call", "method=Cart.Get", "--trace", root.Correlation.String(), "--parent", root.ID.String())
	out := mustCLI(t, "trace", "--api", a.api, root.Correlation.String(), "--width", "120")
	for _, want := range []string{"2 events on 2 nodes, complete", "http.request path=/cart/1", "╰─▶● ", "rpc.call method=Cart.Get"} {
		if !strings.Contains(out, want) {
			t.Errorf("trace lacks %q:\n%s", want, out)
		}
	}
	var tr query.Trace
	mustJSON(t, &tr, "trace", "--api", b.api, root.Correlation.String())
	if len(tr.Events) != 2 || tr.Events[0].ID != root.ID || tr.Events[1].ID != child.ID {
		t.Fatalf("trace --json: %+v", tr)
	}

	var res resultJSON
	mustJSON(t, &res, "query", "--api", a.api, "--cluster", "--kind", "rpc.call")
	if len(res.Events) != 1 || res.Events[0].ID != child.ID || !res.Complete || len(res.Peers) != 1 || !res.Peers[0].Answered {
		t.Fatalf("cluster query: %+v", res)
	}

	var synced map[string]syncResultJSON
	mustJSON(t, &synced, "sync", "--api", a.api)
	if r, ok := synced[b.ID()]; !ok || r.Err != "" {
		t.Fatalf("sync: %+v", synced)
	}
	if out := mustCLI(t, "sync", "--api", a.api); !strings.Contains(out, b.ID()) {
		t.Errorf("sync printed:\n%s", out)
	}
}

// TestMembershipCommands: connect joins a member and learns the cluster
// from it; peers names every member and its state; --node takes a name;
// forget drops a member that left.
func TestMembershipCommands(t *testing.T) {
	a, b, c := startNamed(t, "alpha"), startNamed(t, "bravo"), startNamed(t, "charlie")
	if out := mustCLI(t, "connect", "--api", b.api, a.Addrs()[0]); !strings.Contains(out, "joined: 1 members known") {
		t.Errorf("connect printed %q", out)
	}
	var joined joinResponse
	mustJSON(t, &joined, "connect", "--api", c.api, b.Addrs()[0])
	if joined.Members < 1 {
		t.Fatalf("connect --json: %+v", joined)
	}
	eventually(t, 10*time.Second, "alpha to list charlie, whom it never dialled", func() bool {
		out := mustCLI(t, "peers", "--api", a.api)
		return strings.Contains(out, "charlie") && strings.Contains(out, "bravo")
	})
	var e events.Event
	mustJSON(t, &e, "record", "--api", c.api, "job.done")
	var res resultJSON
	mustJSON(t, &res, "query", "--api", a.api, "--cluster", "--node", "charlie")
	if len(res.Events) != 1 || res.Events[0].ID != e.ID || !res.Complete {
		t.Fatalf("a cluster query for charlie's events by name: %+v", res)
	}
	if _, errOut, code := cli(context.Background(), "query", "--api", a.api, "--node", "nobody"); code == exitOK || !strings.Contains(errOut, "nobody") {
		t.Errorf("a query for a node no one is named: exit %d, %s", code, errOut)
	}

	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	eventually(t, 5*time.Second, "alpha to list charlie as left", func() bool {
		for _, line := range strings.Split(mustCLI(t, "peers", "--api", a.api), "\n") {
			if strings.HasPrefix(line, "charlie") && strings.Contains(line, "left") {
				return true
			}
		}
		return false
	})
	if out := mustCLI(t, "forget", "--api", a.api, "charlie"); !strings.Contains(out, "forgot "+c.ID()) {
		t.Errorf("forget printed %q", out)
	}
	if _, errOut, code := cli(context.Background(), "forget", "--api", a.api, "charlie"); code == exitOK || !strings.Contains(errOut, "no such member") {
		t.Errorf("forgetting charlie again: exit %d, %s", code, errOut)
	}
}

func TestTailDeliversRecordedEvents(t *testing.T) {
	a, b := startNode(t), startNode(t)
	connectNodes(t, a, b)
	for _, asJSON := range []bool{true, false} {
		t.Run(fmt.Sprint("json=", asJSON), func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()
			args := []string{"tail", "--api", a.api, "--kind", "wanted", "--attr", "run=" + t.Name(), "--count", "2"}
			if asJSON {
				args = append(args, "--json")
			}
			type result struct {
				out, errOut string
				code        int
			}
			done := make(chan result, 1)
			go func() {
				out, errOut, code := cli(ctx, args...)
				done <- result{out, errOut, code}
			}()
			// Events recorded before the stream opens are not delivered:
			// record until two arrive, locally and from the other node.
			tick := time.NewTicker(50 * time.Millisecond)
			defer tick.Stop()
			for i := 0; ; i++ {
				select {
				case r := <-done:
					if r.code != exitOK {
						t.Fatalf("tail: exit %d\n%s%s", r.code, r.out, r.errOut)
					}
					lines := strings.Split(strings.TrimSpace(r.out), "\n")
					if len(lines) != 2 {
						t.Fatalf("tail printed %d lines:\n%s", len(lines), r.out)
					}
					for _, l := range lines {
						if asJSON {
							var e events.Event
							if err := json.Unmarshal([]byte(l), &e); err != nil || e.Kind != "wanted" {
								t.Fatalf("tail --json line %q: %v", l, err)
							}
						} else if !strings.Contains(l, "wanted run="+t.Name()) {
							t.Fatalf("tail line %q", l)
						}
					}
					return
				case <-tick.C:
				case <-ctx.Done():
					t.Fatal("tail delivered nothing")
				}
				api := []string{a.api, b.api}[i%2]
				mustCLI(t, "record", "--api", api, "unwanted", "run="+t.Name())
				mustCLI(t, "record", "--api", api, "wanted", "run="+t.Name())
			}
		})
	}
}

// TestTailStopsWhenInterrupted: a tail that has delivered an event and
// waits for more ends cleanly when interrupted.
func TestTailStopsWhenInterrupted(t *testing.T) {
	n := startNode(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	out := &signalWriter{wrote: make(chan struct{})}
	done := make(chan int, 1)
	go func() {
		done <- run(ctx, []string{"tail", "--api", n.api, "--kind", "tailed"}, strings.NewReader(""), out, io.Discard)
	}()
	// Events recorded before the stream opens are not delivered: record
	// until one arrives, so that the tail is surely waiting on the stream.
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	deadline := time.After(20 * time.Second)
	for waiting := true; waiting; {
		select {
		case <-out.wrote:
			waiting = false
		case <-tick.C:
			mustCLI(t, "record", "--api", n.api, "tailed")
		case <-deadline:
			t.Fatal("tail delivered nothing")
		}
	}
	cancel()
	select {
	case code := <-done:
		if code != exitOK {
			t.Errorf("an interrupted tail exits %d", code)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("tail did not stop")
	}
}

// signalWriter discards what it is given and closes wrote at the first
// write.
type signalWriter struct {
	once  sync.Once
	wrote chan struct{}
}

func (w *signalWriter) Write(p []byte) (int, error) {
	w.once.Do(func() { close(w.wrote) })
	return len(p), nil
}

func TestUsageErrorsExit2(t *testing.T) {
	n := startNode(t)
	for _, args := range [][]string{
		{"bogus"},
		{"status", "--bogus"},
		{"status", "extra"},
		{"peers", "--timeout", "soon"},
		{"query", "--limit", "-1"},
		{"query", "--limit", "many"},
		{"query", "--limit", "1000000"},
		{"query", "--trace", "xyz"},
		{"query", "--attr", "novalue"},
		{"query", "--since", "yesterday"},
		{"query", "--since", "1m", "--until", "1h"},
		{"query", "--after", "00"},
		{"tail", "--count", "-1"},
		{"tail", "--since", "1m"}, // a live stream has no range
		{"trace"},
		{"trace", "a", "b"},
		{"trace", "not-a-trace-id"},
		{"record"},
		{"record", "kind", "novalue"},
		{"record", "kind", "--trace", "00"},
		{"record", "kind", "--parent", "00"},
		{"record", "kind", "--new-trace", "--trace", events.NewTraceID().String()},
		{"status", "--api", "nonsense"},
		{"node", "--dht", "sometimes"},
		{"node", "--reachability", "maybe"},
		{"node", "--bootstrap", "/ip4/127.0.0.1/tcp/1"},
		{"node", "--relays", "not an address"},
		{"node", "--listen", "nowhere"},
		{"node", "--sync-interval", "-1s"},
		{"node", "--log-level", "loud"},
		{"node", "--memory", "--data-dir", "/tmp/x"},
		{"node", "--memory", "--api", "0.0.0.0:0"},
		{"node", "--memory", "--api", "https://127.0.0.1:0"}, // TLS comes with --api-remote
		{"status", "--api", "192.0.2.1:7400"},                // a token must not cross a network in the clear
		{"node", "--config", "/nonexistent/scopemesh.yaml"},
		{"node", "--retention", "5m"},
		{"node", "--max-bytes", "lots"},
		{"node", "--max-bytes", "20XB"},
		{"node", "--dht", "server"}, // no cluster named
		{"version", "extra"},
	} {
		if args[0] != "node" && args[0] != "bogus" && !slices.Contains(args, "--api") {
			args = append(args, "--api", n.api)
		}
		out, errOut, code := cli(context.Background(), args...)
		if code != exitUsage {
			t.Errorf("scopemesh %s: exit %d, want %d\n%s%s", strings.Join(args, " "), code, exitUsage, out, errOut)
			continue
		}
		if !strings.Contains(errOut, "--help' for usage") {
			t.Errorf("scopemesh %s does not point at --help:\n%s", strings.Join(args, " "), errOut)
		}
	}
}

func TestHelpOnEveryCommand(t *testing.T) {
	for _, cmd := range newRootCommand().Commands() {
		out, errOut, code := cli(context.Background(), cmd.Name(), "--help")
		if code != exitOK || !strings.Contains(out, "Usage:") {
			t.Errorf("%s --help: exit %d\n%s%s", cmd.Name(), code, out, errOut)
		}
	}
	if out := mustCLI(t, "version"); !strings.HasPrefix(out, "scopemesh ") {
		t.Errorf("version printed %q", out)
	}
	var v map[string]string
	mustJSON(t, &v, "version")
	if v["Version"] == "" || v["Go"] == "" {
		t.Errorf("version --json: %v", v)
	}
}

func TestNoNodeSaysWhatToDo(t *testing.T) {
	sock := filepath.Join(t.TempDir(), "absent.sock")
	_, errOut, code := cli(context.Background(), "status", "--api", sock)
	if code != exitFailure || !strings.Contains(errOut, "no node API at "+sock) || !strings.Contains(errOut, "scopemesh node") {
		t.Errorf("exit %d: %s", code, errOut)
	}
	t.Setenv(apiEnv, "")
	t.Setenv("XDG_STATE_HOME", t.TempDir())
	t.Setenv("XDG_RUNTIME_DIR", t.TempDir())
	_, errOut, code = cli(context.Background(), "peers")
	if code != exitFailure || !strings.Contains(errOut, "no node API at ") || !strings.Contains(errOut, "$"+apiEnv) {
		t.Errorf("exit %d: %s", code, errOut)
	}
}

func TestAPIEnvironmentVariable(t *testing.T) {
	n := startNode(t)
	t.Setenv(apiEnv, n.api)
	var st statusJSON
	mustJSON(t, &st, "status")
	if st.ID != n.ID() {
		t.Errorf("status through $%s: %+v", apiEnv, st)
	}
}

func TestAPIOverLoopbackTCP(t *testing.T) {
	if _, err := listenAPI(apiAddr{network: "tcp", address: "0.0.0.0:0"}, false); err == nil {
		t.Fatal("the API listened on every interface without --api-remote")
	}
	n := startNode(t)
	addr := apiAddr{network: "tcp", address: "127.0.0.1:0"}
	ln, err := listenAPI(addr, false)
	if err != nil {
		t.Fatal(err)
	}
	addr.address = ln.Addr().String()
	creds, err := loadCredentials(t.TempDir(), addr)
	if err != nil {
		t.Fatal(err)
	}
	srv := serveAPI(n.Node, ln, addr, creds, slog.New(slog.DiscardHandler))
	defer srv.Shutdown(context.Background())

	t.Setenv(tokenEnv, hex.EncodeToString(creds.token))
	var st statusJSON
	mustJSON(t, &st, "status", "--api", addr.address)
	if st.ID != n.ID() {
		t.Fatalf("status over TCP: %+v", st)
	}
	// What a web page could send, even one that knew the token: refused.
	for name, set := range map[string]func(*http.Request){
		"cross-origin": func(r *http.Request) { r.Header.Set("Origin", "http://evil.example") },
		"rebound host": func(r *http.Request) { r.Host = "evil.example" },
		"form post": func(r *http.Request) {
			r.Method = http.MethodPost
			r.URL.Path = "/v1/events"
			r.Header.Set("Content-Type", "text/plain")
			r.Body = io.NopCloser(strings.NewReader(`{"Kind":"forged"}`))
		},
		"none (the control)": func(*http.Request) {},
	} {
		req, _ := http.NewRequest(http.MethodGet, "http://"+addr.address+"/v1/status", nil)
		req.Header.Set("Authorization", "Bearer "+hex.EncodeToString(creds.token))
		set(req)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if ok := resp.StatusCode/100 == 2; ok != strings.HasPrefix(name, "none") {
			t.Errorf("%s request: %s", name, resp.Status)
		}
	}
}

func TestFilterWireRoundTrip(t *testing.T) {
	f := query.Filter{
		Correlation: events.NewTraceID(),
		Nodes:       []string{"a", "b"},
		Kinds:       []string{"k"},
		Attrs:       map[string]string{"x": "1=2", "y": ""},
		Limit:       7,
		Descending:  true,
	}
	f.Since.Wall, f.Since.Logical = 10, 2
	f.Until.Wall = 20
	f.After[0] = 1
	got, err := httpquery.Parse(httpquery.Values(f))
	if err != nil {
		t.Fatal(err)
	}
	if fmt.Sprint(got) != fmt.Sprint(f) {
		t.Errorf("round trip:\n got %+v\nwant %+v", got, f)
	}
}

func TestConfigFile(t *testing.T) {
	dir := t.TempDir()
	yamlFile := filepath.Join(dir, "node.yaml")
	os.WriteFile(yamlFile, []byte(`
cluster: edge
dht: server
listen: [/ip4/127.0.0.1/tcp/4001, /ip4/127.0.0.1/udp/4001/quic-v1]
relay-service: true
sync-interval: 5s
mdns: false
`), 0o600)
	jsonFile := filepath.Join(dir, "node.json")
	os.WriteFile(jsonFile, []byte(`{"cluster": "edge", "dht": "server", "sync-interval": "5s"}`), 0o600)

	for _, file := range []string{yamlFile, jsonFile} {
		s := defaultNodeSettings()
		given := map[string]bool{"dht": true}
		s.DHT = "client" // as if --dht client
		if err := s.mergeFile(file, func(name string) bool { return given[name] }); err != nil {
			t.Fatal(err)
		}
		if s.Cluster != "edge" || s.DHT != "client" || s.SyncInterval != 5*time.Second || s.DataDir != defaultDataDir() {
			t.Errorf("%s: %+v", filepath.Base(file), s)
		}
		if _, err := s.config(); err != nil {
			t.Errorf("%s: %v", filepath.Base(file), err)
		}
	}

	bad := filepath.Join(dir, "bad.yaml")
	os.WriteFile(bad, []byte("clustr: typo\n"), 0o600)
	s := defaultNodeSettings()
	if err := s.mergeFile(bad, func(string) bool { return false }); err == nil || !strings.Contains(err.Error(), "clustr") {
		t.Errorf("an unknown key: %v", err)
	}

	// Every setting has its flag, so every file key can be overridden.
	flags := newNodeCommand().Flags()
	typ := reflectFields(nodeSettings{})
	for _, name := range typ {
		if flags.Lookup(name) == nil {
			t.Errorf("config key %q has no flag", name)
		}
	}
}

func TestNodeCommandStopsWhenCanceled(t *testing.T) {
	// The node command makes its logger the default one.
	prev := slog.Default()
	t.Cleanup(func() { slog.SetDefault(prev) })
	dataDir := t.TempDir()
	ctx, cancel := context.WithCancel(context.Background())
	var out, errOut bytes.Buffer
	done := make(chan int, 1)
	args := []string{"node", "--data-dir", dataDir, "--listen", "/ip4/127.0.0.1/tcp/0", "--mdns=false", "--dht", "off", "--cluster", t.Name(), "--json"}
	outW := &lockedWriter{w: &out}
	go func() { done <- run(ctx, args, strings.NewReader(""), outW, &lockedWriter{w: &errOut}) }()
	sock := filepath.Join(dataDir, apiSocketName)
	eventually(t, 10*time.Second, "the API socket", func() bool { _, err := os.Stat(sock); return err == nil })
	var e events.Event
	mustJSON(t, &e, "record", "--api", sock, "before.stop")
	cancel()
	select {
	case code := <-done:
		if code != exitOK {
			t.Fatalf("node exited %d\n%s", code, errOut.String())
		}
	case <-time.After(20 * time.Second):
		t.Fatal("node did not stop")
	}
	var report startReport
	if err := json.Unmarshal([]byte(outW.String()), &report); err != nil || report.ID == "" || len(report.Addrs) == 0 || report.API != sock {
		t.Fatalf("start-up report %q: %v", outW.String(), err)
	}
	if _, err := os.Stat(sock); !os.IsNotExist(err) {
		t.Errorf("the API socket outlived the node: %v", err)
	}
	// Nothing acknowledged was lost.
	node, err := scopemesh.Open(context.Background(), scopemesh.Config{DataDir: dataDir, DisableMDNS: true, DHT: scopemesh.DHTOff, ListenAddrs: []string{"/ip4/127.0.0.1/tcp/0"}})
	if err != nil {
		t.Fatal(err)
	}
	defer node.Close()
	evs, err := node.Query(context.Background(), query.Filter{})
	if err != nil || len(evs) != 1 || evs[0].ID != e.ID || node.ID() != report.ID {
		t.Fatalf("after a restart: %v %+v", err, evs)
	}
}

// reflectFields lists the config keys of a settings struct.
func reflectFields(v any) []string {
	typ := reflect.TypeOf(v)
	var names []string
	for i := range typ.NumField() {
		names = append(names, typ.Field(i).Tag.Get("yaml"))
	}
	return names
}

// lockedWriter lets the node's goroutines and the test share a buffer.
type lockedWriter struct {
	mu sync.Mutex
	w  *bytes.Buffer
}

func (l *lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}

func (l *lockedWriter) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.String()
}

func TestClusterKeyFiles(t *testing.T) {
	dir := t.TempDir()
	key := bytes.Repeat([]byte{7}, clusterKeyLen)
	files := map[string][]byte{
		"raw":   key,
		"hex":   []byte(fmt.Sprintf("%x\n", key)),
		"short": key[:16],
		"text":  []byte("correct horse battery staple\n"),
	}
	for name, content := range files {
		os.WriteFile(filepath.Join(dir, name), content, 0o600)
	}
	for _, name := range []string{"raw", "hex"} {
		got, err := readClusterKey(filepath.Join(dir, name))
		if err != nil || !bytes.Equal(got, key) {
			t.Errorf("%s key file: %x, %v", name, got, err)
		}
	}
	for _, name := range []string{"short", "text", "absent"} {
		if _, err := readClusterKey(filepath.Join(dir, name)); err == nil {
			t.Errorf("%s key file accepted", name)
		}
	}

	s := defaultNodeSettings()
	s.ClusterKeyFile = filepath.Join(dir, "raw")
	s.AcceptKeyFiles = []string{filepath.Join(dir, "hex")}
	s.SignEvents = true
	cfg, err := s.config()
	if err != nil || !bytes.Equal(cfg.ClusterKey, key) || len(cfg.AcceptKeys) != 1 || !cfg.SignEvents {
		t.Errorf("config of a closed cluster: %v", err)
	}
	for _, args := range [][]string{
		{"node", "--cluster-key-file", filepath.Join(dir, "short")},
		{"node", "--accept-key-files", filepath.Join(dir, "raw")},
	} {
		if _, errOut, code := cli(context.Background(), args...); code != exitUsage {
			t.Errorf("scopemesh %s: exit %d\n%s", strings.Join(args, " "), code, errOut)
		}
	}
}

func TestAPISocketDirMustBePrivate(t *testing.T) {
	open := filepath.Join(t.TempDir(), "open")
	os.Mkdir(open, 0o777)
	os.Chmod(open, 0o777) // past the umask
	if _, err := listenAPI(apiAddr{network: "unix", address: filepath.Join(open, apiSocketName)}, false); err == nil || !strings.Contains(err.Error(), "others may write") {
		t.Errorf("a socket in a world-writable directory: %v", err)
	}
	// Under a umask that restricts nothing, the socket is still private,
	// and the umask is left as it was.
	prev := syscall.Umask(0)
	defer syscall.Umask(prev)
	private := filepath.Join(t.TempDir(), "private")
	sock := apiAddr{network: "unix", address: filepath.Join(private, apiSocketName)}
	ln, err := listenAPI(sock, false)
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	if um := syscall.Umask(0); um != 0 {
		t.Errorf("listenAPI left the umask at %#o", um)
	}
	fi, err := os.Stat(sock.address)
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("the socket's mode: %v %v", fi.Mode(), err)
	}
	if fi, err := os.Stat(private); err != nil || fi.Mode().Perm() != 0o700 {
		t.Errorf("the socket's directory's mode: %v %v", fi.Mode(), err)
	}
	// A second node on the same socket is told so; the first keeps it.
	if _, err := listenAPI(sock, false); err == nil || !strings.Contains(err.Error(), "already serves") {
		t.Errorf("a socket in use: %v", err)
	}
}

func TestStreamAsServerSentEvents(t *testing.T) {
	n := startNode(t)
	c, err := (&clientFlags{api: n.api, timeout: 10 * time.Second}).client()
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	resp, err := c.do(ctx, http.MethodGet, "/v1/events/stream", httpquery.Values(query.Filter{Kinds: []string{"sse"}}), nil, "text/event-stream")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if ct := resp.Header.Get("Content-Type"); ct != "text/event-stream" {
		t.Fatalf("content type %q", ct)
	}
	// The headers arrived: the stream is subscribed.
	want := mustCLI(t, "record", "--api", n.api, "sse", "n=1")
	lines := bufio.NewScanner(resp.Body)
	if !lines.Scan() || lines.Text() != "event: event" || !lines.Scan() || !strings.HasPrefix(lines.Text(), "data: ") {
		t.Fatalf("stream began %q", lines.Text())
	}
	var line streamLine
	if err := json.Unmarshal([]byte(strings.TrimPrefix(lines.Text(), "data: ")), &line); err != nil || line.Event == nil {
		t.Fatalf("data %q: %v", lines.Text(), err)
	}
	if got := recordedLine(*line.Event); got+"\n" != want {
		t.Errorf("streamed %q, recorded %q", got, want)
	}
}

func TestByteSize(t *testing.T) {
	for in, want := range map[string]int64{"0": 0, "1048576": 1 << 20, "20GiB": 20 << 30, "500MB": 500e6, "1.5KiB": 1536, "2 tb": 2e12} {
		var b byteSize
		if err := b.Set(in); err != nil || int64(b) != want {
			t.Errorf("%q = %d, %v; want %d", in, b, err, want)
		}
	}
	for _, in := range []string{"", "GiB", "-1", "1.5.2MB", "5 parsecs"} {
		var b byteSize
		if err := b.Set(in); err == nil {
			t.Errorf("%q was taken as %d bytes", in, b)
		}
	}
	if got := byteSize(20 << 30).String(); got != "20GiB" {
		t.Errorf("20 GiB prints as %q", got)
	}
}
