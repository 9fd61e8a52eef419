package main

import (
	"context"
	"io"
	"net/http"
	"net/http/cookiejar"
	"os"
	"strings"
	"testing"
)

// get fetches url with c, the header Authorization set to auth unless
// empty, and returns the answer's status and body.
func get(t *testing.T, c *http.Client, url, auth string) (int, string) {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	if auth != "" {
		req.Header.Set("Authorization", auth)
	}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, string(body)
}

func TestWebViewAsksForTheTokenAndMetricsDoNot(t *testing.T) {
	isolateClient(t)
	node := startNodeCommand(t, "--ui", "127.0.0.1:0", "--metrics", "127.0.0.1:0")
	r := node.report
	if !strings.HasPrefix(r.UI, "http://127.0.0.1:") || !strings.HasSuffix(r.Metrics, "/metrics") || r.UITokenFile == "" {
		t.Fatalf("start-up report %+v", r)
	}
	raw, err := os.ReadFile(r.UITokenFile)
	if err != nil {
		t.Fatal(err)
	}
	token := strings.TrimSpace(string(raw))
	plain := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}

	if code, body := get(t, plain, r.UI, ""); code != http.StatusUnauthorized || !strings.Contains(body, r.UITokenFile) {
		t.Errorf("without the token: %d %q, want 401 naming the token's file", code, body)
	}
	if code, _ := get(t, plain, r.UI+"?token=00"+token[2:], ""); code != http.StatusUnauthorized {
		t.Errorf("with a wrong token: %d, want 401", code)
	}
	// A browser signs in once; the cookie carries the token from then on.
	jar, _ := cookiejar.New(nil)
	browser := &http.Client{Jar: jar}
	if code, body := get(t, browser, r.UI+"events?token="+token+"&kind=x", ""); code != http.StatusOK || !strings.Contains(body, "assets/app.js") {
		t.Errorf("signing in: %d %q", code, body)
	}
	if code, body := get(t, browser, r.UI+"api/status", ""); code != http.StatusOK || !strings.Contains(body, r.ID) {
		t.Errorf("status after signing in: %d %q", code, body)
	}
	// Prometheus sends the token as a bearer token.
	code, body := get(t, plain, r.UI+"metrics", "Bearer "+token)
	if code != http.StatusOK || !strings.Contains(body, "scopemesh_events_held") || !strings.Contains(body, "libp2p_") {
		t.Errorf("/metrics on the web view's listener: %d, with scopemesh's and libp2p's metrics? %q", code, body[:min(len(body), 300)])
	}
	// A page that rebound its domain to 127.0.0.1 is refused.
	req, _ := http.NewRequest(http.MethodGet, r.UI, nil)
	req.Host = "rebound.example"
	req.Header.Set("Authorization", "Bearer "+token)
	if got := statusCode(t, plain, req); got != http.StatusForbidden {
		t.Errorf("Host rebound.example: %d, want 403", got)
	}

	if code, body := get(t, plain, r.Metrics, ""); code != http.StatusOK || !strings.Contains(body, "scopemesh_members") {
		t.Errorf("--metrics without a token: %d %q", code, body[:min(len(body), 300)])
	}
}

func TestWebViewListensOnLoopbackOnly(t *testing.T) {
	isolateClient(t)
	var out, errOut strings.Builder
	code := run(context.Background(), []string{"node", "--memory", "--ui", "0.0.0.0:0"}, strings.NewReader(""), &out, &errOut)
	if code != exitUsage || !strings.Contains(errOut.String(), "not a loopback address") {
		t.Fatalf("--ui 0.0.0.0:0: exit %d, %q", code, errOut.String())
	}
}
