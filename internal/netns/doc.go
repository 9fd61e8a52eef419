// Package netns runs a test in a network namespace of its own, so that it
// can use multicast (mDNS) or change interfaces without touching the
// machine's network.
package netns
