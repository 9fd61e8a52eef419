package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"time"
)

// apiEnv names the environment variable that points client commands at a
// node's API when --api is not given.
const apiEnv = "SCOPEMESH_API"

// apiSocketName is the API socket's name in a node's data dir.
const apiSocketName = "api.sock"

// maxSocketPath is the longest unix socket path Linux accepts (sun_path
// holds 108 bytes, the last a NUL).
const maxSocketPath = 107

// apiAddr is where a node's API listens: a unix socket or a TCP address.
type apiAddr struct {
	network string // "unix" or "tcp"
	address string // the socket's path, or host:port
	tls     bool   // TCP only: TLS, as a remote API serves
}

// String returns the form parseAPIAddr reads.
func (a apiAddr) String() string {
	switch {
	case a.tls:
		return "https://" + a.address
	case a.network == "tcp":
		return "tcp:" + a.address
	}
	return a.address
}

// parseAPIAddr reads an API address: a unix socket path ("unix:" in front
// is optional when the path has a slash), "tcp:host:port", "http://host:port"
// or "host:port", or "https://host:port".
func parseAPIAddr(s string) (apiAddr, error) {
	tls := false
	switch {
	case s == "":
		return apiAddr{}, errors.New("the API address is empty")
	case strings.HasPrefix(s, "unix:"):
		return apiAddr{network: "unix", address: strings.TrimPrefix(s, "unix:")}, nil
	case strings.HasPrefix(s, "tcp:"):
		s = strings.TrimPrefix(s, "tcp:")
	case strings.HasPrefix(s, "http://"):
		s = strings.TrimSuffix(strings.TrimPrefix(s, "http://"), "/")
	case strings.HasPrefix(s, "https://"):
		s, tls = strings.TrimSuffix(strings.TrimPrefix(s, "https://"), "/"), true
	case strings.Contains(s, "/") || strings.HasSuffix(s, ".sock"):
		return apiAddr{network: "unix", address: s}, nil
	}
	if _, _, err := net.SplitHostPort(s); err != nil {
		return apiAddr{}, fmt.Errorf("API address %q is neither a socket path (with a /) nor host:port", s)
	}
	return apiAddr{network: "tcp", address: s, tls: tls}, nil
}

// defaultDataDir is where a node keeps its data when not told:
// $XDG_STATE_HOME/scopemesh, else ~/.local/state/scopemesh.
func defaultDataDir() string {
	if d := os.Getenv("XDG_STATE_HOME"); d != "" {
		return filepath.Join(d, "scopemesh")
	}
	if home, err := os.UserHomeDir(); err == nil {
		return filepath.Join(home, ".local", "state", "scopemesh")
	}
	return filepath.Join(os.TempDir(), fmt.Sprintf("scopemesh-%d", os.Getuid()), "state")
}

// runtimeSocket is the API socket of a node without a data dir:
// $XDG_RUNTIME_DIR/scopemesh/api.sock, else one in a directory of this
// user's under the system's temporary directory.
func runtimeSocket() string {
	if d := os.Getenv("XDG_RUNTIME_DIR"); d != "" {
		return filepath.Join(d, "scopemesh", apiSocketName)
	}
	return filepath.Join(os.TempDir(), fmt.Sprintf("scopemesh-%d", os.Getuid()), apiSocketName)
}

// defaultAPIDirs are where the API socket and credentials of a node
// started without --api are: the default data dir, then the runtime
// directory of an in-memory node.
func defaultAPIDirs() []string {
	return []string{defaultDataDir(), filepath.Dir(runtimeSocket())}
}

// clientAPIAddrs are the addresses a client command tries, in order, when
// --api is not given: $SCOPEMESH_API, else the sockets in defaultAPIDirs.
func clientAPIAddrs() ([]apiAddr, error) {
	if s := os.Getenv(apiEnv); s != "" {
		a, err := parseAPIAddr(s)
		if err != nil {
			return nil, fmt.Errorf("$%s: %w", apiEnv, err)
		}
		return []apiAddr{a}, nil
	}
	var addrs []apiAddr
	for _, dir := range defaultAPIDirs() {
		addrs = append(addrs, apiAddr{network: "unix", address: filepath.Join(dir, apiSocketName)})
	}
	return addrs, nil
}

// listenAPI listens at a. A TCP address must be a loopback one unless
// remote is set. A unix socket gets a private directory and mode 0600; a
// socket file left by a node that is gone is replaced, one that answers is
// not. It must run before the process starts goroutines that create files:
// see listenUnix.
func listenAPI(a apiAddr, remote bool) (net.Listener, error) {
	if a.network == "tcp" {
		tcp, err := net.ResolveTCPAddr("tcp", a.address)
		if err != nil {
			return nil, &usageError{fmt.Errorf("--api %s: %w", a.address, err)}
		}
		if !remote && (tcp.IP == nil || !tcp.IP.IsLoopback()) {
			return nil, usagef("--api %s is not a loopback address: anyone who can reach it could record events and read the cluster's; pass --api-remote as well to allow it", a.address)
		}
		return net.ListenTCP("tcp", tcp)
	}
	path := a.address
	if len(path) > maxSocketPath {
		return nil, usagef("--api %s: a unix socket path has at most %d bytes; pick a shorter one", path, maxSocketPath)
	}
	if err := makePrivateDir(filepath.Dir(path), "the API socket's directory", "--api"); err != nil {
		return nil, err
	}
	if _, err := os.Lstat(path); err == nil {
		c, err := net.DialTimeout("unix", path, time.Second)
		if err == nil {
			c.Close()
			return nil, fmt.Errorf("another node already serves its API at %s: stop it, or give this one another --api", path)
		}
		if err := os.Remove(path); err != nil {
			return nil, fmt.Errorf("removing the stale API socket: %w", err)
		}
	}
	return listenUnix(path)
}

// listenUnix listens on a unix socket that only this user may connect to:
// whoever can connect controls the node. The socket is made with mode 0600
// rather than chmodded after, which would leave it open to others for a
// moment.
func listenUnix(path string) (net.Listener, error) {
	// The umask belongs to the process. Changing it is safe here because
	// the node has not yet started the goroutines that create files (its
	// store, its identity): nothing else is made with this umask.
	old := syscall.Umask(0o177)
	ln, err := net.Listen("unix", path)
	syscall.Umask(old)
	if err != nil {
		return nil, fmt.Errorf("listening for the API: %w", err)
	}
	return ln, nil
}

// makePrivateDir makes dir with mode 0700 if it does not exist, and refuses
// one where another user could replace the files — say a
// /tmp/scopemesh-<uid> made by someone else before this user's first node:
// it must belong to this user or root, and be writable by no one else
// unless sticky, as /tmp is. The errors call dir what, and end with the
// setting to change.
func makePrivateDir(dir, what, setting string) error {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("creating %s: %w", what, err)
	}
	fi, err := os.Stat(dir)
	if err != nil {
		return err
	}
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok {
		return nil
	}
	if uid := int(st.Uid); uid != os.Getuid() && uid != 0 {
		return fmt.Errorf("%s %s belongs to another user (uid %d): pick another %s", what, dir, uid, setting)
	}
	if fi.Mode().Perm()&0o022 != 0 && fi.Mode()&os.ModeSticky == 0 {
		return fmt.Errorf("others may write to %s %s (mode %v): pick another %s", what, dir, fi.Mode().Perm(), setting)
	}
	return nil
}

// dial connects to the API at a.
func (a apiAddr) dial(ctx context.Context) (net.Conn, error) {
	var d net.Dialer
	return d.DialContext(ctx, a.network, a.address)
}
