package cli

import (
	"bytes"
	"strings"
	"testing"
	"time"
)

func TestPyRepr(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name, line string
		set        bool
		want       string
	}{
		{"set of ints, sorted", "[5,1]", true, "{1, 5}"},
		{"empty set", "[]", true, "set()"},
		{"list keeps order", "[999999,1]", false, "[999999, 1]"},
		{"strings", `["b","it's","a"]`, true, `{'a', 'b', "it's"}`},
		{"mixed", `["x",10,2,null,true]`, false, "['x', 10, 2, None, True]"},
		{"big numbers", "[10000000000000000000001,3]", true, "{3, 10000000000000000000001}"},
		{"not a list", `{"a":1}`, false, `{"a":1}`},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			if got := pyRepr([]byte(c.line), c.set); got != c.want {
				t.Fatalf("pyRepr(%s, %v) = %s, want %s", c.line, c.set, got, c.want)
			}
		})
	}
}

func TestProgress(t *testing.T) {
	t.Parallel()
	clock := time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC)
	t.Run("terminal", func(t *testing.T) {
		t.Parallel()
		var w bytes.Buffer
		c := clock
		p := newProgress(&w, true, "bulk-dump account", "rows", func() time.Time { return c })
		p.update(10, 1000) // too soon: nothing drawn
		c = c.Add(2 * time.Second)
		p.update(250_000, 1_000_000)
		c = c.Add(2 * time.Second)
		p.update(500_000, 1_000_000)
		c = c.Add(4 * time.Second)
		p.finish(1_000_000, 1_000_000)
		want := "\rbulk-dump account: 250,000/1,000,000 rows (25.0%), 125,000 rows/s, ETA 6s" +
			"\rbulk-dump account: 500,000/1,000,000 rows (50.0%), 125,000 rows/s, ETA 4s" +
			"\rbulk-dump account: 1,000,000/1,000,000 rows, 125,000 rows/s, done in 8s  \n"
		if w.String() != want {
			t.Fatalf("got  %q\nwant %q", w.String(), want)
		}
	})
	t.Run("not a terminal", func(t *testing.T) {
		t.Parallel()
		var w bytes.Buffer
		c := clock
		p := newProgress(&w, false, "bulk-load account", "lines", func() time.Time { return c })
		c = c.Add(time.Second)
		p.updateFrac(100, 0, 0.5) // within 2 s: nothing
		c = c.Add(time.Second)
		p.updateFrac(200, 0, 0.5)
		p.finish(400, 0)
		want := "bulk-load account: 200 lines, 100 lines/s, ETA 2s\nbulk-load account: 400 lines, 200 lines/s, done in 2s\n"
		if w.String() != want {
			t.Fatalf("got  %q\nwant %q", w.String(), want)
		}
	})
	t.Run("nil is off", func(t *testing.T) {
		t.Parallel()
		var p *progress
		p.update(1, 2)
		p.finish(2, 2)
	})
	if groupDigits(-1234567) != "-1,234,567" || groupDigits(12) != "12" || !strings.Contains(roundDuration(1234*time.Millisecond).String(), "1.2s") {
		t.Fatal("formatting helpers")
	}
}
