package main

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"errors"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/scopemesh/scopemesh/internal/httpquery"
)

// nodeCommand is a `scopemesh node` run in-process.
type nodeCommand struct {
	report startReport
	stop   func() // stops the node and checks it exited cleanly
}

// startNodeCommand runs `scopemesh node` with args and the flags that keep
// it to loopback, and waits for its start-up report.
func startNodeCommand(t *testing.T, args ...string) nodeCommand {
	t.Helper()
	// The node command makes its logger the default one.
	prev := slog.Default()
	t.Cleanup(func() { slog.SetDefault(prev) })
	ctx, cancel := context.WithCancel(context.Background())
	out, errOut := &lockedWriter{w: &bytes.Buffer{}}, &lockedWriter{w: &bytes.Buffer{}}
	args = append([]string{"node", "--listen", "/ip4/127.0.0.1/tcp/0", "--mdns=false", "--dht", "off", "--cluster", t.Name(), "--json"}, args...)
	done := make(chan int, 1)
	go func() { done <- run(ctx, args, strings.NewReader(""), out, errOut) }()
	stopped := false
	stop := func() {
		t.Helper()
		if stopped {
			return
		}
		stopped = true
		cancel()
		select {
		case code := <-done:
			if code != exitOK {
				t.Errorf("node exited %d\n%s", code, errOut.String())
			}
		case <-time.After(20 * time.Second):
			t.Error("node did not stop")
		}
	}
	t.Cleanup(stop)
	eventually(t, 20*time.Second, "the start-up report", func() bool {
		select {
		case code := <-done:
			done <- code
			t.Fatalf("node exited %d\n%s", code, errOut.String())
		default:
		}
		return strings.HasSuffix(out.String(), "\n")
	})
	var report startReport
	if err := json.Unmarshal([]byte(out.String()), &report); err != nil {
		t.Fatalf("start-up report %q: %v", out.String(), err)
	}
	return nodeCommand{report: report, stop: stop}
}

// isolateClient points the client commands' defaults at empty directories.
func isolateClient(t *testing.T) (stateHome string) {
	stateHome = t.TempDir()
	t.Setenv("XDG_STATE_HOME", stateHome)
	t.Setenv("XDG_RUNTIME_DIR", t.TempDir())
	for _, env := range []string{apiEnv, tokenEnv, certEnv} {
		t.Setenv(env, "")
	}
	return stateHome
}

// statusCode sends req and returns the answer's status.
func statusCode(t *testing.T, c *http.Client, req *http.Request) int {
	t.Helper()
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return resp.StatusCode
}

// mode is the permission bits of a file.
func mode(t *testing.T, path string) os.FileMode {
	t.Helper()
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	return fi.Mode().Perm()
}

func TestLoopbackAPIRequiresToken(t *testing.T) {
	stateHome := isolateClient(t)
	node := startNodeCommand(t, "--api", "127.0.0.1:0")
	r := node.report
	hostport, ok := strings.CutPrefix(r.API, "tcp:")
	if !ok || strings.HasSuffix(hostport, ":0") || r.APICertFile != "" {
		t.Fatalf("start-up report %+v", r)
	}
	if want := filepath.Join(stateHome, "scopemesh", apiTokenName); r.APITokenFile != want {
		t.Fatalf("the token is in %q, want %q", r.APITokenFile, want)
	}
	if m := mode(t, r.APITokenFile); m != 0o600 {
		t.Errorf("%s has mode %v", apiTokenName, m)
	}
	b, err := os.ReadFile(r.APITokenFile)
	if err != nil {
		t.Fatal(err)
	}
	token := strings.TrimSpace(string(b))

	for _, tc := range []struct {
		name, auth string
		want       int
	}{
		{"no token", "", http.StatusUnauthorized},
		{"a wrong token", "Bearer " + strings.Repeat("ab", tokenLen), http.StatusUnauthorized},
		{"not a bearer token", "Basic " + token, http.StatusUnauthorized},
		{"the token", "Bearer " + token, http.StatusOK},
	} {
		req, _ := http.NewRequest(http.MethodGet, "http://"+hostport+"/v1/status", nil)
		if tc.auth != "" {
			req.Header.Set("Authorization", tc.auth)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		var e httpquery.Error
		json.NewDecoder(resp.Body).Decode(&e)
		resp.Body.Close()
		if resp.StatusCode != tc.want {
			t.Errorf("%s: %s, want %d", tc.name, resp.Status, tc.want)
		}
		if tc.want == http.StatusUnauthorized && !strings.Contains(e.Error, apiTokenName) {
			t.Errorf("%s: the refusal does not say where the token is: %q", tc.name, e.Error)
		}
	}

	// The CLI finds the token in the default data dir.
	var st statusJSON
	mustJSON(t, &st, "status", "--api", hostport)
	if st.ID != r.ID {
		t.Fatalf("status: %+v", st)
	}
	// Without it, it says what to do.
	t.Setenv("XDG_STATE_HOME", t.TempDir())
	if _, errOut, code := cli(context.Background(), "status", "--api", hostport); code != exitFailure || !strings.Contains(errOut, "no API token") || !strings.Contains(errOut, "--api-token-file") {
		t.Errorf("status without a token: exit %d: %s", code, errOut)
	}
	// From $SCOPEMESH_API_TOKEN.
	t.Setenv(tokenEnv, token)
	mustJSON(t, &st, "status", "--api", hostport)
	if st.ID != r.ID {
		t.Fatalf("status with $%s: %+v", tokenEnv, st)
	}
	t.Setenv(tokenEnv, strings.Repeat("ab", tokenLen))
	if _, errOut, code := cli(context.Background(), "status", "--api", hostport); code != exitFailure || !strings.Contains(errOut, "not this node's") || !strings.Contains(errOut, "$"+tokenEnv) {
		t.Errorf("status with a wrong token: exit %d: %s", code, errOut)
	}
	// --api-token-file wins over the environment.
	mustJSON(t, &st, "status", "--api", hostport, "--api-token-file", r.APITokenFile)
	if st.ID != r.ID {
		t.Fatalf("status with --api-token-file: %+v", st)
	}
}

func TestRemoteAPIServesTLS(t *testing.T) {
	isolateClient(t)
	dataDir := t.TempDir()
	args := []string{"--data-dir", dataDir, "--api", "127.0.0.1:0", "--api-remote"}
	node := startNodeCommand(t, args...)
	r := node.report
	hostport, ok := strings.CutPrefix(r.API, "https://")
	if !ok || r.APICertFile != filepath.Join(dataDir, apiCertName) || r.APITokenFile != filepath.Join(dataDir, apiTokenName) {
		t.Fatalf("start-up report %+v", r)
	}
	certPEM, err := os.ReadFile(r.APICertFile)
	if err != nil {
		t.Fatal(err)
	}
	block, _ := pem.Decode(certPEM)
	if block == nil {
		t.Fatalf("%s holds no PEM", apiCertName)
	}
	sum := sha256.Sum256(block.Bytes)
	if got := strings.ReplaceAll(r.APICertSHA256, ":", ""); got != strings.ToUpper(hex.EncodeToString(sum[:])) {
		t.Errorf("the report's fingerprint %s is not that of %s", r.APICertSHA256, apiCertName)
	}
	for _, f := range []string{apiTokenName, apiKeyName} {
		if m := mode(t, filepath.Join(dataDir, f)); m != 0o600 {
			t.Errorf("%s has mode %v", f, m)
		}
	}
	token, err := readToken(r.APITokenFile)
	if err != nil {
		t.Fatal(err)
	}
	bearer := "Bearer " + hex.EncodeToString(token)

	// Plain HTTP fails, the token or not.
	req, _ := http.NewRequest(http.MethodGet, "http://"+hostport+"/v1/status", nil)
	req.Header.Set("Authorization", bearer)
	if resp, err := http.DefaultClient.Do(req); err == nil {
		resp.Body.Close()
		if resp.StatusCode/100 == 2 {
			t.Errorf("plain HTTP: %s", resp.Status)
		}
	}
	if _, _, code := cli(context.Background(), "status", "--api", hostport, "--api-token-file", r.APITokenFile); code != exitFailure {
		t.Errorf("status over plain HTTP: exit %d", code)
	}

	// A client that pins another certificate refuses the node before
	// sending the token.
	otherCert, _, err := newCertificate("127.0.0.1", time.Now())
	if err != nil {
		t.Fatal(err)
	}
	other := filepath.Join(t.TempDir(), apiCertName)
	os.WriteFile(other, otherCert, 0o644)
	cf := clientFlags{api: r.API, tokenFile: r.APITokenFile, certFile: other, timeout: 10 * time.Second}
	c, err := cf.client()
	if err != nil {
		t.Fatal(err)
	}
	var st statusJSON
	if err := c.call(context.Background(), http.MethodGet, "/v1/status", nil, nil, &st); !errors.Is(err, ErrCertMismatch) {
		t.Errorf("a client pinning another certificate: %v", err)
	}
	if _, errOut, code := cli(context.Background(), "status", "--api", r.API, "--api-token-file", r.APITokenFile, "--api-cert", other); code != exitFailure || !strings.Contains(errOut, r.APICertSHA256) {
		t.Errorf("status pinning another certificate: exit %d: %s", code, errOut)
	}

	// With the right certificate and the token, from flags or the
	// environment, the CLI works.
	mustJSON(t, &st, "status", "--api", r.API, "--api-token-file", r.APITokenFile, "--api-cert", r.APICertFile)
	if st.ID != r.ID {
		t.Fatalf("status over TLS: %+v", st)
	}
	t.Setenv(certEnv, r.APICertFile)
	t.Setenv(tokenEnv, hex.EncodeToString(token))
	mustJSON(t, &st, "status", "--api", r.API)
	if st.ID != r.ID {
		t.Fatalf("status over TLS with $%s: %+v", certEnv, st)
	}

	// Whatever name a client reaches the node by, the token decides.
	pinned, err := readPinnedCert(r.APICertFile)
	if err != nil {
		t.Fatal(err)
	}
	hc := &http.Client{Transport: &http.Transport{TLSClientConfig: pinnedTLS(pinned, r.APICertFile)}}
	defer hc.CloseIdleConnections()
	for _, tc := range []struct {
		auth string
		want int
	}{{bearer, http.StatusOK}, {"", http.StatusUnauthorized}} {
		req, _ := http.NewRequest(http.MethodGet, "https://"+hostport+"/v1/status", nil)
		req.Host = "scopemesh.example.org"
		if tc.auth != "" {
			req.Header.Set("Authorization", tc.auth)
		}
		if got := statusCode(t, hc, req); got != tc.want {
			t.Errorf("Host %s, Authorization %q: %d, want %d", req.Host, tc.auth, got, tc.want)
		}
	}
	// Browsers are still refused.
	req, _ = http.NewRequest(http.MethodGet, "https://"+hostport+"/v1/status", nil)
	req.Header.Set("Authorization", bearer)
	req.Header.Set("Origin", "https://evil.example")
	if got := statusCode(t, hc, req); got != http.StatusForbidden {
		t.Errorf("a request from a web page: %d", got)
	}

	// A restarted node keeps its certificate and token: clients keep
	// working.
	node.stop()
	restarted := startNodeCommand(t, args...)
	if restarted.report.APICertSHA256 != r.APICertSHA256 {
		t.Errorf("the certificate changed on restart: %s, was %s", restarted.report.APICertSHA256, r.APICertSHA256)
	}
	mustJSON(t, &st, "status", "--api", restarted.report.API)
	if st.ID != r.ID {
		t.Fatalf("status after a restart: %+v", st)
	}
}

func TestCredentialFiles(t *testing.T) {
	dir := t.TempDir()
	token, path, err := loadToken(dir)
	if err != nil {
		t.Fatal(err)
	}
	if m := mode(t, path); m != 0o600 {
		t.Errorf("%s has mode %v", apiTokenName, m)
	}
	if again, _, err := loadToken(dir); err != nil || !bytes.Equal(again, token) {
		t.Errorf("the token was not reused: %v", err)
	}
	os.Chmod(path, 0o644)
	if _, _, err := loadToken(dir); !errors.Is(err, ErrSecretExposed) {
		t.Errorf("a token others may read: %v", err)
	}

	cert, err := loadCertificate(dir, "127.0.0.1")
	if err != nil {
		t.Fatal(err)
	}
	if m := mode(t, filepath.Join(dir, apiKeyName)); m != 0o600 {
		t.Errorf("%s has mode %v", apiKeyName, m)
	}
	leaf, err := x509.ParseCertificate(cert.Certificate[0])
	if err != nil {
		t.Fatal(err)
	}
	if key, ok := leaf.PublicKey.(*ecdsa.PublicKey); !ok || key.Curve != elliptic.P256() {
		t.Errorf("the key is a %T, not ECDSA P-256", leaf.PublicKey)
	}
	if leaf.NotAfter.Sub(time.Now()) < 365*24*time.Hour {
		t.Errorf("the certificate expires %v", leaf.NotAfter)
	}
	if leaf.VerifyHostname("127.0.0.1") != nil || leaf.VerifyHostname("localhost") != nil {
		t.Errorf("the certificate names %v %v", leaf.IPAddresses, leaf.DNSNames)
	}
	if again, err := loadCertificate(dir, "192.0.2.1"); err != nil || !bytes.Equal(again.Certificate[0], cert.Certificate[0]) {
		t.Errorf("the certificate was not reused: %v", err)
	}
	os.Chmod(filepath.Join(dir, apiKeyName), 0o640)
	if _, err := loadCertificate(dir, "127.0.0.1"); !errors.Is(err, ErrSecretExposed) {
		t.Errorf("a key others may read: %v", err)
	}
}

func TestInMemoryNodeKeepsCredentialsInRuntimeDir(t *testing.T) {
	runtime := t.TempDir()
	t.Setenv("XDG_RUNTIME_DIR", runtime)
	s := defaultNodeSettings()
	s.Memory = true
	ln, creds, err := s.listenGuardedAPI(apiAddr{network: "tcp", address: "127.0.0.1:0"})
	if err != nil {
		t.Fatal(err)
	}
	ln.Close()
	dir := filepath.Dir(runtimeSocket())
	if creds.tokenFile != filepath.Join(dir, apiTokenName) {
		t.Errorf("the token is in %s, not next to the socket %s", creds.tokenFile, runtimeSocket())
	}
	if m := mode(t, dir); m != 0o700 {
		t.Errorf("%s has mode %v", dir, m)
	}
	// A directory others may write to is refused, as for the socket.
	os.Chmod(dir, 0o777)
	if _, _, err := s.listenGuardedAPI(apiAddr{network: "tcp", address: "127.0.0.1:0"}); err == nil || !strings.Contains(err.Error(), "others may write") {
		t.Errorf("credentials in a world-writable directory: %v", err)
	}
}

func TestOverLimitRecordIs413(t *testing.T) {
	n := startNode(t)
	c, err := (&clientFlags{api: n.api, timeout: 10 * time.Second}).client()
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		body string
		want int
	}{
		{"a kind over the limit", `{"Kind":"` + strings.Repeat("k", 1000) + `"}`, http.StatusRequestEntityTooLarge},
		{"a body over maxRecordBody", `{"Kind":"k","Payload":"` + strings.Repeat("A", maxRecordBody) + `"}`, http.StatusRequestEntityTooLarge},
		{"no kind", `{"Kind":""}`, http.StatusBadRequest},
		{"an unknown field", `{"Kind":"k","Colour":"blue"}`, http.StatusBadRequest},
		{"a good event", `{"Kind":"k"}`, http.StatusOK},
	} {
		req, _ := http.NewRequest(http.MethodPost, c.url("/v1/events", nil), strings.NewReader(tc.body))
		req.Header.Set("Content-Type", "application/json")
		if got := statusCode(t, c.http, req); got != tc.want {
			t.Errorf("%s: %d, want %d", tc.name, got, tc.want)
		}
	}
}
