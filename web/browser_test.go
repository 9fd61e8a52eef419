package web_test

import (
	"context"
	"flag"
	"fmt"
	"math/rand/v2"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/scopemesh/scopemesh"
	"github.com/scopemesh/scopemesh/events"
	"github.com/scopemesh/scopemesh/internal/testcluster"
	"github.com/scopemesh/scopemesh/web"
)

// readmeShot, if set, is where TestTracePage saves its screenshot for the
// README: go test ./web -run TestTracePage -readme-shot ../docs/web-trace.png
var readmeShot = flag.String("readme-shot", "", "save the trace page's screenshot to this `file` too")

// chromium returns the path of a Chromium or Chrome binary, or skips the
// test: browser tests need one, and CI installs Debian's chromium.
func chromium(t testing.TB) string {
	t.Helper()
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome", "headless-shell"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	t.Skip("no chromium, chromium-browser, google-chrome or headless-shell on PATH: the browser tests need one (apt-get install chromium)")
	return ""
}

// browser starts a headless Chromium for the test, with a laptop's window,
// and returns a context that drives one tab of it.
func browser(t testing.TB) context.Context {
	t.Helper()
	opts := append(slices.Clone(chromedp.DefaultExecAllocatorOptions[:]),
		chromedp.ExecPath(chromium(t)),
		chromedp.NoSandbox, // tests may run as root, where Chromium's sandbox refuses to start
		chromedp.Flag("disable-dev-shm-usage", true),
		chromedp.WindowSize(1440, 900),
	)
	alloc, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancel := chromedp.NewContext(alloc)
	t.Cleanup(func() {
		cancel()
		cancelAlloc()
	})
	// The first action starts the browser.
	if err := chromedp.Do(ctx); err != nil {
		t.Fatalf("starting chromium: %v", err)
	}
	return ctx
}

// serve serves node's web view on loopback.
func serve(t testing.TB, node *scopemesh.Node) string {
	srv := httptest.NewServer(web.Handler(node))
	t.Cleanup(func() {
		srv.CloseClientConnections() // ends the live tails, which Close would wait for
		srv.Close()
	})
	return srv.URL
}

// open navigates to url and waits until the view has drawn what it
// loaded.
func open(t testing.TB, ctx context.Context, url, view string) {
	t.Helper()
	do(t, ctx, chromedp.Navigate(url))
	wait(t, ctx, fmt.Sprintf("document.body.dataset.ready === %q", view))
}

// do runs actions in the tab, within 30 seconds.
func do(t testing.TB, ctx context.Context, actions ...chromedp.Action[chromedp.Void]) {
	t.Helper()
	get(t, ctx, chromedp.Steps(actions...))
}

// get runs the action a in the tab, within 30 seconds, and returns its
// value.
func get[T any](t testing.TB, ctx context.Context, a chromedp.Action[T]) T {
	t.Helper()
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	v, err := chromedp.Run(ctx, a)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

// wait evaluates the JavaScript expression js every few milliseconds
// until it holds, for up to 20 seconds. An evaluation that fails, as one
// does while the page it ran in goes away, is tried again.
func wait(t testing.TB, ctx context.Context, js string) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	var err error
	for time.Now().Before(deadline) {
		var ok bool
		if ok, err = chromedp.Run(ctx, chromedp.Evaluate[bool](js)); ok && err == nil {
			return
		}
		time.Sleep(5 * time.Millisecond)
	}
	t.Fatalf("waited 20s for %s (last error: %v)", js, err)
}

// eval returns what the JavaScript expression js evaluates to.
func eval[T any](t testing.TB, ctx context.Context, js string) T {
	t.Helper()
	return get(t, ctx, chromedp.Evaluate[T](js))
}

// screenshot saves the page as name in the test's artifact directory
// (go test -artifacts keeps it) and returns its path.
func screenshot(t *testing.T, ctx context.Context, name string) string {
	t.Helper()
	png := get(t, ctx, chromedp.FullScreenshot(100))
	path := filepath.Join(t.ArtifactDir(), name)
	if err := os.WriteFile(path, png, 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

func record(t testing.TB, ctx context.Context, node *scopemesh.Node, kind string, attrs map[string]string) events.Event {
	t.Helper()
	e, err := node.Record(ctx, events.Event{Kind: kind, Attrs: attrs})
	if err != nil {
		t.Fatal(err)
	}
	return e
}

// under returns ctx carrying parent as the parent of what is recorded
// with it.
func under(ctx context.Context, parent events.Event) context.Context {
	return events.ContextWithParent(ctx, parent.ID)
}

func TestClusterPageShowsTheMembers(t *testing.T) {
	ctx := browser(t)
	long := strings.Repeat("a-member-with-a-long-name-", 2) + "node-3" // 58 bytes of the 64 a name may take
	nodes := testcluster.StartNamed(t, "node-1", "node-2", long)
	record(t, context.Background(), nodes[0], "boot", nil)
	do(t, ctx, chromedp.EmulateViewport(1280, 720)) // a laptop's screen
	open(t, ctx, serve(t, nodes[0])+"/", "cluster")

	members := `[...document.querySelectorAll("#members tbody tr")].map(r => r.dataset.id + " " + r.querySelector(".name").textContent + " " + r.querySelector(".badge").textContent)`
	rows := eval[[]string](t, ctx, members)
	want := []string{nodes[1].ID() + " node-2 connected", nodes[2].ID() + " " + long + " connected"}
	slices.Sort(rows)
	slices.Sort(want)
	if !slices.Equal(rows, want) {
		t.Errorf("members table: %q, want %q", rows, want)
	}
	if held := eval[string](t, ctx, `document.querySelector(".card .big").textContent`); held != "1" {
		t.Errorf("events held: %q, want 1", held)
	}
	if self := eval[string](t, ctx, `document.getElementById("self").textContent`); self != "node node-1" {
		t.Errorf("header names this node %q, want node-1", self)
	}
	if wide := eval[bool](t, ctx, `document.documentElement.scrollWidth > document.documentElement.clientWidth`); wide {
		t.Error("the page is wider than a 1280-pixel screen: a long name broke the layout")
	}
	screenshot(t, ctx, "cluster.png")

	// A member that closes says goodbye, and the page, which refreshes
	// itself, shows it left.
	if err := nodes[2].Close(); err != nil {
		t.Fatal(err)
	}
	wait(t, ctx, fmt.Sprintf(`%s.includes(%q)`, members, nodes[2].ID()+" "+long+" left"))
	if n := eval[string](t, ctx, `document.querySelector(".card dd.state-left").textContent`); n != "1" {
		t.Errorf("members card counts %q left, want 1", n)
	}
	screenshot(t, ctx, "cluster-left.png")
}

func TestEventsPageFiltersAcrossTheClusterAndTails(t *testing.T) {
	ctx := browser(t)
	nodes := testcluster.Start(t, 3)
	bg := context.Background()
	var queries []string
	for i, n := range nodes {
		for j := range 4 {
			record(t, bg, n, "http.request", map[string]string{"path": "/cart"})
			e := record(t, bg, n, "db.query", map[string]string{"table": []string{"carts", "users"}[j%2], "i": fmt.Sprint(i)})
			if j%2 == 0 {
				queries = append(queries, e.ID.String())
			}
		}
	}
	url := serve(t, nodes[0])

	// Asked of every member, the filter finds each node's queries of carts.
	open(t, ctx, url+"/events?kind=db.query&attr=table%3Dcarts&scope=cluster", "events")
	got := eval[[]string](t, ctx, `[...document.querySelectorAll("#events tr.event")].map(r => r.dataset.id)`)
	slices.Sort(got)
	slices.Sort(queries)
	if !slices.Equal(got, queries) {
		t.Errorf("filtered list: %d events %v, want the %d queries of carts %v", len(got), got, len(queries), queries)
	}
	kinds := eval[[]string](t, ctx, `[...document.querySelectorAll("#events tr.event td:nth-child(3)")].map(c => c.textContent)`)
	if len(kinds) == 0 || slices.ContainsFunc(kinds, func(k string) bool { return k != "db.query" }) {
		t.Errorf("kinds listed: %q", kinds)
	}
	screenshot(t, ctx, "events.png")

	// A node filter takes a member's name, and the list names the nodes.
	open(t, ctx, url+"/events?kind=db.query&node=node-3&scope=cluster", "events")
	shown := eval[[]string](t, ctx, `[...document.querySelectorAll("#events tr.event td:nth-child(2)")].map(c => c.textContent + " " + c.title)`)
	if len(shown) != 4 || slices.ContainsFunc(shown, func(s string) bool { return s != "node-3 "+nodes[2].ID() }) {
		t.Errorf("events of node-3: nodes shown %q, want node-3's 4 queries", shown)
	}

	// A live tail shows an event recorded on another member as it arrives.
	open(t, ctx, url+"/events?kind=deploy&live=1", "events")
	wait(t, ctx, `document.getElementById("live-state").textContent === "● live"`)
	e := record(t, bg, nodes[2], "deploy", map[string]string{"version": "1.4.2"})
	wait(t, ctx, fmt.Sprintf(`document.querySelector('#events tr.event[data-id=%q]') !== null`, e.ID.String()))
	screenshot(t, ctx, "events-live.png")
}

func TestTracePage(t *testing.T) {
	bctx := browser(t)
	nodes := testcluster.Start(t, 3)
	a, b, c := nodes[0], nodes[1], nodes[2]
	ctx := events.ContextWithTrace(context.Background(), events.NewTraceID())
	req := record(t, ctx, a, "http.request", map[string]string{"method": "GET", "path": "/cart/2500"})
	rpc := record(t, under(ctx, req), b, "rpc.call", map[string]string{"method": "Cart.Get", "deadline": "250ms"})
	cache := record(t, under(ctx, req), c, "cache.get", map[string]string{"key": "cart:2500"}) // concurrent with the RPC
	db := record(t, under(ctx, rpc), c, "db.query", map[string]string{"table": "carts", "rows": "3"})
	reply := record(t, under(ctx, db), b, "rpc.reply", map[string]string{"status": "OK"})
	e, err := a.Record(under(ctx, reply), events.Event{Kind: "http.response", Attrs: map[string]string{"status": "200"},
		Payload: []byte(`{"items":3,"total":"42.50"}`)})
	if err != nil {
		t.Fatal(err)
	}
	var lost events.ID
	lost[0] = 7 // a parent no member holds
	orphan, err := b.Record(events.ContextWithParent(ctx, lost), events.Event{Kind: "retry", Attrs: map[string]string{"attempt": "2"}})
	if err != nil {
		t.Fatal(err)
	}
	trace, _ := events.TraceFromContext(ctx)

	url := serve(t, a) + "/traces/" + trace.String()
	open(t, bctx, url, "trace")

	if lanes := eval[int](t, bctx, `document.querySelectorAll(".lane-head").length`); lanes != 3 {
		t.Errorf("%d lanes, want one per node: 3", lanes)
	}
	legend := eval[[]string](t, bctx, `[...document.querySelectorAll(".legend > span")].map(s => s.textContent)`)
	for i, want := range []string{"Anode-1", "Bnode-2", "Cnode-3"} {
		if i >= len(legend) || !strings.HasPrefix(legend[i], want) {
			t.Errorf("lane legend %q, want the members' names in lane order: %s at %d", legend, want, i)
		}
	}
	// Every event whose parent is in the trace has an arrow from it.
	arrows := eval[[]string](t, bctx, `[...document.querySelectorAll("path.link[data-from]")].map(p => p.dataset.from + ">" + p.dataset.to)`)
	if len(arrows) != 5 {
		t.Errorf("arrows %q, want 5: one per event whose parent is in the trace", arrows)
	}
	if n := eval[int](t, bctx, `document.querySelectorAll(".mark.missing").length`); n != 1 {
		t.Errorf("%d missing-parent marks, want 1 (the retry's)", n)
	}
	if gaps := eval[string](t, bctx, `document.getElementById("gaps").textContent`); gaps != "1 missing parent" {
		t.Errorf("gaps badge %q", gaps)
	}

	// Clicking the cache lookup shows its attributes, and fades the events
	// concurrent with it: the RPC's branch.
	clickRow := func(id events.ID) {
		t.Helper()
		eval[bool](t, bctx, fmt.Sprintf(`(() => {
			const dot = document.querySelector('circle[data-id=%q]');
			document.querySelector('.trace-row[data-row="' + dot.dataset.row + '"]').click();
			return true;
		})()`, id.String()))
	}
	clickRow(cache.ID)
	if attrs := eval[string](t, bctx, `document.getElementById("attrs").textContent`); attrs != "keycart:2500" {
		t.Errorf("attributes shown: %q", attrs)
	}
	faded := eval[int](t, bctx, `document.querySelectorAll(".trace-row.concurrent").length`)
	if faded != 5 { // all but the request that caused it: the RPC's branch, the response it led to, the retry
		t.Errorf("%d events faded as concurrent with the cache lookup, want 5", faded)
	}
	clickRow(e.ID)
	if payload := eval[string](t, bctx, `document.getElementById("payload").textContent`); payload != `{"items":3,"total":"42.50"}` {
		t.Errorf("payload shown: %q", payload)
	}
	// The link to share opens the trace with the event selected.
	if hash := eval[string](t, bctx, `location.hash`); hash != "#e="+e.ID.String() {
		t.Errorf("location.hash %q after selecting the response", hash)
	}
	open(t, bctx, url+"#e="+orphan.ID.String(), "trace")
	if selected := eval[string](t, bctx, `document.querySelector("#detail h2").textContent`); selected != "retry" {
		t.Errorf("shared link selected %q, want the retry", selected)
	}
	clickRow(rpc.ID)
	path := screenshot(t, bctx, "trace.png")
	if *readmeShot != "" {
		png, err := os.ReadFile(path)
		if err == nil {
			err = os.WriteFile(*readmeShot, png, 0o644)
		}
		if err != nil {
			t.Fatal(err)
		}
	}
}

// BenchmarkTracePage loads the page of a trace of 10,000 events, recorded
// on one node as a request fanning out (each event the child of an
// earlier one), until it has drawn: fetch, decode and first render.
func BenchmarkTracePage(b *testing.B) {
	bctx := browser(b)
	node, err := scopemesh.Open(context.Background(), scopemesh.Config{ListenAddrs: []string{"/ip4/127.0.0.1/tcp/0"}, DisableMDNS: true, DHT: scopemesh.DHTOff})
	if err != nil {
		b.Fatal(err)
	}
	defer node.Close()
	const n = 10_000
	ctx := events.ContextWithTrace(context.Background(), events.NewTraceID())
	rng := rand.New(rand.NewPCG(1, 2))
	recorded := make([]events.Event, 0, n)
	for i := range n {
		c := ctx
		if i > 0 {
			c = under(ctx, recorded[rng.IntN(len(recorded))])
		}
		recorded = append(recorded, record(b, c, node, "hop", map[string]string{"step": fmt.Sprint(i), "path": "/api/v1/items"}))
	}
	trace, _ := events.TraceFromContext(ctx)
	url := serve(b, node) + "/traces/" + trace.String()
	open(b, bctx, url, "trace") // warm: the first load compiles the script
	if got := eval[int](b, bctx, `document.querySelectorAll("circle.event").length`); got == 0 || got > 200 {
		b.Fatalf("%d events drawn at first: want those in sight", got)
	}
	for i := 0; b.Loop(); i++ {
		// A new address each time: the wait must not see the last
		// load's page.
		page := fmt.Sprintf("%s?load=%d", url, i)
		do(b, bctx, chromedp.Navigate(page))
		wait(b, bctx, fmt.Sprintf("location.href === %q && document.body.dataset.ready === %q", page, "trace"))
	}
}
