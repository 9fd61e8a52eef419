package main

import (
	"fmt"
	"math"
	"strconv"
	"strings"

	"go.yaml.in/yaml/v3"
)

// byteSize is a size in bytes, written as a number with an optional unit:
// B, kB, MB, GB, TB (powers of 1000) or KiB, MiB, GiB, TiB (of 1024).
type byteSize int64

var sizeUnits = map[string]float64{
	"": 1, "b": 1,
	"kb": 1e3, "mb": 1e6, "gb": 1e9, "tb": 1e12,
	"kib": 1 << 10, "mib": 1 << 20, "gib": 1 << 30, "tib": 1 << 40,
}

func (b *byteSize) Set(s string) error {
	s = strings.TrimSpace(s)
	i := strings.IndexFunc(s, func(r rune) bool { return (r < '0' || r > '9') && r != '.' })
	if i < 0 {
		i = len(s)
	}
	n, err := strconv.ParseFloat(s[:i], 64)
	unit, ok := sizeUnits[strings.ToLower(strings.TrimSpace(s[i:]))]
	if err != nil || !ok || n < 0 || n*unit > math.MaxInt64 {
		return fmt.Errorf("%q is not a size: a number and B, kB, MB, GB, TB, KiB, MiB, GiB or TiB", s)
	}
	*b = byteSize(n * unit)
	return nil
}

func (b byteSize) String() string {
	if b == 0 {
		return "0"
	}
	for _, u := range []struct {
		name string
		size int64
	}{{"TiB", 1 << 40}, {"GiB", 1 << 30}, {"MiB", 1 << 20}, {"KiB", 1 << 10}} {
		if int64(b) >= u.size {
			return strconv.FormatFloat(float64(b)/float64(u.size), 'f', -1, 64) + u.name
		}
	}
	return strconv.FormatInt(int64(b), 10) + "B"
}

// Type names the value in --help.
func (*byteSize) Type() string { return "size" }

// UnmarshalYAML reads a size from a config file: "20GiB" or a number of
// bytes.
func (b *byteSize) UnmarshalYAML(n *yaml.Node) error { return b.Set(n.Value) }
