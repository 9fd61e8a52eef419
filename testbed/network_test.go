package testbed

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"syscall"
	"testing"
	"time"
)

// Network holds the namespaces a script (nat.sh, faults.sh) built for one
// test, and the nodes running in them. Its methods fail the test on errors;
// it is used from the test's goroutine only, but for Node.CLI and the
// methods built on it, which any goroutine may call.
type Network struct {
	t       *testing.T
	bin     string // the scopemesh binary
	script  string // the path of the script that builds the namespaces
	cluster string // the nodes' --cluster
	prefix  string // of the namespaces' names
	dir     string // data dirs, API sockets and logs of the nodes
	nodes   []*Node

	guard      *exec.Cmd      // script guard: removes the namespaces when guardInput closes
	guardInput io.WriteCloser // closed by cleanup, or by the system if the test process dies
}

// Node is a `scopemesh node` process in a namespace.
type Node struct {
	Name    string   // the namespace role: pub, h1 or h2; n0, n1...
	ID      string   // its peer ID
	Addrs   []string // the addresses it reported at start
	net     *Network
	dataDir string
	api     string // its API socket
	log     string // the file its log goes to, across restarts
	cmd     *exec.Cmd

	exited  chan struct{} // closed when the process has exited
	exitErr error         // set before exited is closed
}

// scriptPath is the path of a script next to this file.
func scriptPath(name string) string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Join(filepath.Dir(file), name)
}

// RequireNetAdmin skips the test where the network cannot be built: not
// root, ip or iptables missing, or namespaces not permitted.
func RequireNetAdmin(t *testing.T) {
	t.Helper()
	if testing.Short() {
		t.Skip("builds network namespaces: skipped with -short")
	}
	if os.Geteuid() != 0 {
		t.Skip("needs root to build network namespaces")
	}
	for _, tool := range []string{"ip", "iptables"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("needs %s: apt-get install -y iptables iproute2", tool)
		}
	}
	probe := "smprobe" + randomHex(3)
	if out, err := exec.Command("ip", "netns", "add", probe).CombinedOutput(); err != nil {
		t.Skipf("not permitted to make network namespaces: %v: %s", err, out)
	}
	exec.Command("ip", "netns", "del", probe).Run()
}

func randomHex(n int) string {
	b := make([]byte, n)
	rand.Read(b)
	return hex.EncodeToString(b)
}

// NewNetwork builds the networks of nat.sh under a fresh prefix, with
// routers that keep source ports or, if randomFully, randomise them. Test
// cleanup stops the nodes and removes every namespace, whatever happened.
func NewNetwork(t *testing.T, bin string, randomFully bool) *Network {
	t.Helper()
	var args []string
	if randomFully {
		args = append(args, "--random-fully")
	}
	return newNetwork(t, bin, "nat.sh", "nat", args...)
}

// newNetwork builds a network with `script up PREFIX upArgs...` under a
// fresh prefix, for nodes of cluster. Test cleanup stops the nodes and
// removes every namespace, whatever happened.
func newNetwork(t *testing.T, bin, script, cluster string, upArgs ...string) *Network {
	t.Helper()
	prefix := "sm" + randomHex(3)
	// Short: a unix socket path has at most 107 bytes.
	dir, err := os.MkdirTemp("", prefix)
	if err != nil {
		t.Fatal(err)
	}
	n := &Network{t: t, bin: bin, script: scriptPath(script), cluster: cluster, prefix: prefix, dir: dir}
	// Cleanup does not run when a test times out; the guard does.
	n.guard = exec.Command("bash", n.script, "guard", prefix)
	if n.guardInput, err = n.guard.StdinPipe(); err != nil {
		t.Fatal(err)
	}
	if err := n.guard.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(n.cleanup)
	args := append([]string{"up", prefix}, upArgs...)
	if out, err := n.run(args...); err != nil {
		t.Fatalf("%s %s: %v\n%s", script, strings.Join(args, " "), err, out)
	}
	return n
}

// run runs the network's script.
func (n *Network) run(args ...string) ([]byte, error) {
	return exec.Command("bash", append([]string{n.script}, args...)...).CombinedOutput()
}

// Script runs the network's script with a command on its namespaces, `cmd
// PREFIX args...`, and returns its output.
func (n *Network) Script(cmd string, args ...string) string {
	n.t.Helper()
	args = append([]string{cmd, n.prefix}, args...)
	out, err := n.run(args...)
	if err != nil {
		n.t.Fatalf("%s %s: %v\n%s", filepath.Base(n.script), strings.Join(args, " "), err, out)
	}
	return string(out)
}

// cleanup stops the nodes, shows their logs if the test failed, and removes
// the namespaces and files.
func (n *Network) cleanup() {
	for _, node := range n.nodes {
		node.stop()
	}
	if n.t.Failed() {
		for _, node := range n.nodes {
			n.t.Logf("log of %s (%s):\n%s", node.Name, node.ID, tail(node.log, 40))
		}
	}
	n.guardInput.Close()
	if err := n.guard.Wait(); err != nil {
		n.t.Errorf("%s guard %s: %v", filepath.Base(n.script), n.prefix, err)
	}
	if out, _ := exec.Command("ip", "netns", "list").Output(); strings.Contains(string(out), n.prefix+"-") {
		n.t.Errorf("namespaces of %s are left:\n%s", n.prefix, out)
	}
	os.RemoveAll(n.dir)
}

// tail returns the last lines of a file.
func tail(path string, lines int) string {
	b, _ := os.ReadFile(path)
	all := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	return strings.Join(all[max(0, len(all)-lines):], "\n")
}

// SetWAN cuts (up false) or restores a home router's uplink.
func (n *Network) SetWAN(router string, up bool) {
	n.t.Helper()
	state := "down"
	if up {
		state = "up"
	}
	n.Script("wan", router, state)
}

// Start runs `scopemesh node` in the namespace name, with its API on a unix
// socket, and waits for its start-up report.
func (n *Network) Start(name string, args ...string) *Node {
	n.t.Helper()
	dataDir := filepath.Join(n.dir, name)
	node := &Node{
		Name:    name,
		net:     n,
		dataDir: dataDir,
		api:     filepath.Join(dataDir, "api.sock"),
		log:     filepath.Join(n.dir, name+".log"),
	}
	n.nodes = append(n.nodes, node)
	node.launch(args)
	return node
}

// Restart runs the node again, with its data dir and log, after it exited.
func (node *Node) Restart(args ...string) {
	node.net.t.Helper()
	select {
	case <-node.exited:
	default:
		node.net.t.Fatalf("restarting %s, which still runs", node.Name)
	}
	node.launch(args)
}

// launch starts the node's process and waits for its start-up report.
func (node *Node) launch(args []string) {
	n := node.net
	n.t.Helper()
	node.exited = make(chan struct{})
	logFile, err := os.OpenFile(node.log, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		n.t.Fatal(err)
	}
	defer logFile.Close()
	args = append([]string{"exec", n.prefix, node.Name, n.bin, "node",
		"--data-dir", node.dataDir, "--api", node.api, "--cluster", n.cluster, "--json"}, args...)
	cmd := exec.Command("bash", append([]string{n.script}, args...)...)
	node.cmd = cmd
	cmd.Stderr = logFile
	// libp2p logs its hole punching attempts at debug level: the report
	// counts them.
	cmd.Env = append(os.Environ(), "GOLOG_LOG_LEVEL=error,p2p-holepunch=debug")
	// If the test process dies without its cleanup (a timeout panic, a
	// kill), the node dies with it. The script execs, so this is the node.
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		n.t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		n.t.Fatal(err)
	}
	exited := node.exited
	go func() {
		node.exitErr = cmd.Wait()
		close(exited)
	}()

	type report struct {
		ID    string
		Addrs []string
	}
	reported := make(chan report, 1)
	go func() {
		var r report
		line, err := bufio.NewReader(stdout).ReadBytes('\n')
		if err == nil && json.Unmarshal(line, &r) == nil {
			reported <- r
		}
		close(reported)
	}()
	select {
	case r, ok := <-reported:
		if !ok {
			n.t.Fatalf("%s did not report its start:\n%s", node.Name, tail(node.log, 20))
		}
		node.ID, node.Addrs = r.ID, r.Addrs
	case <-time.After(30 * time.Second):
		n.t.Fatalf("%s did not start within 30s:\n%s", node.Name, tail(node.log, 20))
	}
}

// Kill ends the node with SIGKILL, as a crash would, and waits for it to
// exit.
func (node *Node) Kill() {
	node.cmd.Process.Kill()
	<-node.exited
}

// stop ends the node with SIGTERM, as an operator would, and reports
// whether it exited cleanly; it kills the node if it takes longer than 15s.
func (node *Node) stop() error {
	select {
	case <-node.exited:
		return node.exitErr
	default:
	}
	node.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-node.exited:
		return node.exitErr
	case <-time.After(15 * time.Second):
		node.cmd.Process.Kill()
		<-node.exited
		return errors.New("still running 15s after SIGTERM: killed")
	}
}

// Stop stops the node and fails the test unless it exits cleanly.
func (node *Node) Stop() {
	node.net.t.Helper()
	if err := node.stop(); err != nil {
		node.net.t.Errorf("stopping %s: %v\n%s", node.Name, err, tail(node.log, 20))
	}
}

// LogLines counts the lines of the node's log that contain s.
func (node *Node) LogLines(s string) int {
	b, _ := os.ReadFile(node.log)
	return strings.Count(string(b), s)
}

// CLI runs a client command of scopemesh against the node's API and
// returns its output.
func (node *Node) CLI(args ...string) ([]byte, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, node.net.bin, append(args, "--api", node.api)...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return out, fmt.Errorf("scopemesh %s on %s: %v: %s", strings.Join(args, " "), node.Name, err, strings.TrimSpace(stderr.String()))
	}
	return out, nil
}

// JSON runs a client command with --json and decodes its output into v.
func (node *Node) JSON(v any, args ...string) error {
	out, err := node.CLI(append(args, "--json")...)
	if err != nil {
		return err
	}
	if err := json.Unmarshal(out, v); err != nil {
		return fmt.Errorf("scopemesh %s --json on %s: %v", strings.Join(args, " "), node.Name, err)
	}
	return nil
}

// Record records an event on the node and returns its ID.
func (node *Node) Record(kind string, attrs ...string) string {
	node.net.t.Helper()
	var e struct{ ID string }
	if err := node.JSON(&e, append([]string{"record", kind}, attrs...)...); err != nil {
		node.net.t.Fatal(err)
	}
	return e.ID
}

// Peer is the part of `scopemesh peers --json` the checks read.
type Peer struct {
	ID             string
	Connected      bool
	Connections    []Connection
	Reconnects     int
	EventsReceived uint64
	LastSync       time.Time
	LastSyncResult struct {
		Err      string
		Received int
		Sent     int
	}
}

// Connection is one open connection to a peer.
type Connection struct {
	Addr    string
	Relayed bool
	Limited bool
	Inbound bool
	Opened  time.Time
}

// Peers returns the members the node knows, by ID.
func (node *Node) Peers() (map[string]Peer, error) {
	var list []Peer
	if err := node.JSON(&list, "peers"); err != nil {
		return nil, err
	}
	out := make(map[string]Peer, len(list))
	for _, p := range list {
		out[p.ID] = p
	}
	return out, nil
}

// EventIDs returns the IDs of the events the node holds that match the
// filter flags, in order.
func (node *Node) EventIDs(filter ...string) ([]string, error) {
	var res struct {
		Events []struct{ ID string }
	}
	if err := node.JSON(&res, append([]string{"query", "--limit", "100000"}, filter...)...); err != nil {
		return nil, err
	}
	ids := make([]string, len(res.Events))
	for i, e := range res.Events {
		ids[i] = e.ID
	}
	return ids, nil
}

// Poll calls check until it returns nil, and returns how long that took;
// past the timeout it fails the test with check's last error.
func Poll(t *testing.T, timeout time.Duration, what string, check func() error) time.Duration {
	t.Helper()
	start := time.Now()
	for {
		err := check()
		if err == nil {
			return time.Since(start)
		}
		if time.Since(start) > timeout {
			t.Fatalf("%s: not within %v: %v", what, timeout, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}
