package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"runtime"
	"runtime/debug"

	"github.com/spf13/cobra"
)

// Exit codes.
const (
	exitOK      = 0
	exitFailure = 1 // the command ran and failed
	exitUsage   = 2 // the command line was wrong: nothing ran
)

// version is the release, set at build time with
// -ldflags "-X main.version=v1.2.3"; otherwise it comes from the module's
// build information.
var version = ""

func main() {
	os.Exit(run(context.Background(), os.Args[1:], os.Stdin, os.Stdout, os.Stderr))
}

// run runs the command line args and returns the exit code. It holds no
// state between calls, so tests run commands in-process.
func run(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	root := newRootCommand()
	root.SetArgs(args)
	root.SetIn(stdin)
	root.SetOut(stdout)
	root.SetErr(stderr)
	err := root.ExecuteContext(ctx)
	if err == nil {
		return exitOK
	}
	fmt.Fprintln(stderr, "scopemesh:", err)
	var failed *failure
	if errors.As(err, &failed) {
		return exitFailure
	}
	// Everything cobra reports itself — unknown commands and flags, bad
	// flag values, wrong argument counts — is a usage error, and so is
	// what commands return as usageError.
	fmt.Fprintf(stderr, "Run '%s --help' for usage.\n", commandPath(root, args))
	return exitUsage
}

// commandPath names the command args select, for the usage hint.
func commandPath(root *cobra.Command, args []string) string {
	if cmd, _, err := root.Find(args); err == nil {
		return cmd.CommandPath()
	}
	return root.CommandPath()
}

// failure marks an error of a command that ran: exit code 1.
type failure struct{ err error }

func (f *failure) Error() string { return f.err.Error() }
func (f *failure) Unwrap() error { return f.err }

// usageError marks a command line that a command rejected after cobra
// parsed it: exit code 2.
type usageError struct{ err error }

func (u *usageError) Error() string { return u.err.Error() }
func (u *usageError) Unwrap() error { return u.err }

func usagef(format string, args ...any) error {
	return &usageError{fmt.Errorf(format, args...)}
}

// runE adapts a command's body: the errors it returns are failures unless
// it says they are usage errors.
func runE(body func(cmd *cobra.Command, args []string) error) func(*cobra.Command, []string) error {
	return func(cmd *cobra.Command, args []string) error {
		err := body(cmd, args)
		var usage *usageError
		if err == nil || errors.As(err, &usage) {
			return err
		}
		return &failure{err}
	}
}

func newRootCommand() *cobra.Command {
	root := &cobra.Command{
		Use:   "scopemesh",
		Short: "Run a scopemesh node and inspect its cluster's events",
		Long: `scopemesh runs a node of a scopemesh cluster — for instance the public
bootstrap and relay node that nodes behind NAT join through — and inspects a
running node through its local API: its status and peers, live and past
events, and whole traces across the cluster.`,
		Version:       versionString(),
		SilenceErrors: true, // run prints them, with what to do next
		SilenceUsage:  true, // a failure is not a usage problem; usage errors point at --help
		CompletionOptions: cobra.CompletionOptions{
			HiddenDefaultCmd: true,
		},
	}
	root.SetVersionTemplate("scopemesh {{.Version}}\n")
	root.AddCommand(
		newNodeCommand(),
		newStatusCommand(),
		newPeersCommand(),
		newConnectCommand(),
		newForgetCommand(),
		newTailCommand(),
		newQueryCommand(),
		newTraceCommand(),
		newRecordCommand(),
		newSyncCommand(),
		newMCPCommand(),
		newVersionCommand(),
	)
	return root
}

func newVersionCommand() *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "version",
		Short: "Print the version of scopemesh",
		Args:  cobra.NoArgs,
		RunE: runE(func(cmd *cobra.Command, _ []string) error {
			if asJSON {
				return writeJSON(cmd.OutOrStdout(), map[string]string{"Version": releaseVersion(), "Go": runtime.Version()})
			}
			_, err := fmt.Fprintf(cmd.OutOrStdout(), "scopemesh %s\n", versionString())
			return err
		}),
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	return cmd
}

// releaseVersion is the version set at build time, or the module version
// go install records, or "devel".
func releaseVersion() string {
	if version != "" {
		return version
	}
	if bi, ok := debug.ReadBuildInfo(); ok && bi.Main.Version != "" && bi.Main.Version != "(devel)" {
		return bi.Main.Version
	}
	return "devel"
}

// versionString adds the commit and Go version to releaseVersion.
func versionString() string {
	v := releaseVersion()
	if bi, ok := debug.ReadBuildInfo(); ok {
		var rev, dirty string
		for _, s := range bi.Settings {
			switch s.Key {
			case "vcs.revision":
				rev = s.Value
			case "vcs.modified":
				if s.Value == "true" {
					dirty = "+dirty"
				}
			}
		}
		if len(rev) > 12 {
			rev = rev[:12]
		}
		if rev != "" {
			v += " (" + rev + dirty + ")"
		}
	}
	return v + " " + runtime.Version()
}
