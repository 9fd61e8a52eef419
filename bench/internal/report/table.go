package report

import (
	"fmt"
	"io"
	"math"
	"strings"
	"text/tabwriter"
	"time"
)

// Table is a table of figures for the terminal.
type Table struct {
	Title  string
	Header []string
	rows   [][]string
}

// Add appends a row; each cell is formatted by Cell.
func (t *Table) Add(cells ...any) {
	row := make([]string, len(cells))
	for i, c := range cells {
		row[i] = Cell(c)
	}
	t.rows = append(t.rows, row)
}

// Print writes the table with aligned columns.
func (t *Table) Print(w io.Writer) {
	if t.Title != "" {
		fmt.Fprintf(w, "\n%s\n", t.Title)
	}
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, strings.Join(t.Header, "\t")+"\t")
	for _, r := range t.rows {
		fmt.Fprintln(tw, strings.Join(r, "\t")+"\t")
	}
	tw.Flush()
}

// Cell formats a figure for a table: floats with three significant digits
// (thousands separated), durations in a unit that suits them.
func Cell(v any) string {
	switch x := v.(type) {
	case string:
		return x
	case float64:
		return Float(x)
	case int:
		return Int(int64(x))
	case int64:
		return Int(x)
	case uint64:
		return Int(int64(x))
	case time.Duration:
		return Duration(x)
	case bool:
		if x {
			return "yes"
		}
		return "no"
	case nil:
		return "-"
	}
	return fmt.Sprint(v)
}

// Int formats n with thousands separators.
func Int(n int64) string {
	s := fmt.Sprint(n)
	neg := strings.HasPrefix(s, "-")
	s = strings.TrimPrefix(s, "-")
	var b strings.Builder
	for i, c := range s {
		if i > 0 && (len(s)-i)%3 == 0 {
			b.WriteByte(',')
		}
		b.WriteRune(c)
	}
	if neg {
		return "-" + b.String()
	}
	return b.String()
}

// Float formats f with about three significant digits.
func Float(f float64) string {
	switch a := math.Abs(f); {
	case math.IsNaN(f):
		return "-"
	case a >= 1000:
		return Int(int64(math.Round(f)))
	case a >= 100:
		return fmt.Sprintf("%.0f", f)
	case a >= 10:
		return fmt.Sprintf("%.1f", f)
	case a >= 1:
		return fmt.Sprintf("%.2f", f)
	case a == 0:
		return "0"
	}
	return fmt.Sprintf("%.3g", f)
}

// Duration formats d with three significant digits.
func Duration(d time.Duration) string {
	switch {
	case d >= time.Second:
		return Float(d.Seconds()) + " s"
	case d >= time.Millisecond:
		return Float(float64(d)/1e6) + " ms"
	case d >= time.Microsecond:
		return Float(float64(d)/1e3) + " µs"
	}
	return fmt.Sprintf("%d ns", d.Nanoseconds())
}

// Bytes formats a byte count in B, KiB or MiB.
func Bytes(n int64) string {
	switch {
	case n >= 1<<20:
		return Float(float64(n)/(1<<20)) + " MiB"
	case n >= 1<<10:
		return Float(float64(n)/(1<<10)) + " KiB"
	}
	return fmt.Sprintf("%d B", n)
}
