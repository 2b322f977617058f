package cli

import (
	"bytes"
	"cmp"
	"encoding/json"
	"io"
	"math/big"
	"slices"
	"strings"

	"github.com/cqrsync/cqrsync"
)

// lineTap passes everything written to w and calls fn with each complete
// line after the first (the diff streams' header), without its newline.
type lineTap struct {
	w    io.Writer
	fn   func(line []byte)
	buf  []byte
	seen int
}

// Write passes p on and reports the lines it completes.
func (t *lineTap) Write(p []byte) (int, error) {
	n, err := t.w.Write(p)
	t.buf = append(t.buf, p[:n]...)
	for {
		i := bytes.IndexByte(t.buf, '\n')
		if i < 0 {
			break
		}
		if t.seen > 0 {
			t.fn(t.buf[:i])
		}
		t.seen++
		t.buf = t.buf[i+1:]
	}
	return n, err
}

// pyRepr renders a JSON list of keys the way django-cqrs's commands print
// them on stderr: as a Python set ("{1, 5}", "set()") or list ("[1, 5]").
// A set is shown sorted (Python's own order is an accident of hashing).
func pyRepr(line []byte, set bool) string {
	v, err := cqrsync.DecodeJSON(line)
	keys, ok := v.([]any)
	if err != nil || !ok {
		return string(line)
	}
	if set {
		if len(keys) == 0 {
			return "set()"
		}
		keys = slices.Clone(keys)
		slices.SortStableFunc(keys, compareKeys)
	}
	parts := make([]string, len(keys))
	for i, k := range keys {
		parts[i] = pyValue(k)
	}
	if set {
		return "{" + strings.Join(parts, ", ") + "}"
	}
	return "[" + strings.Join(parts, ", ") + "]"
}

// compareKeys orders numbers numerically before strings, strings by text.
func compareKeys(a, b any) int {
	na, aNum := a.(json.Number)
	nb, bNum := b.(json.Number)
	switch {
	case aNum && bNum:
		fa, okA := new(big.Float).SetString(string(na))
		fb, okB := new(big.Float).SetString(string(nb))
		if okA && okB {
			return fa.Cmp(fb)
		}
		return cmp.Compare(string(na), string(nb))
	case aNum:
		return -1
	case bNum:
		return 1
	}
	sa, _ := a.(string)
	sb, _ := b.(string)
	return cmp.Compare(sa, sb)
}

// pyValue is Python's repr of a JSON scalar.
func pyValue(v any) string {
	switch x := v.(type) {
	case nil:
		return "None"
	case bool:
		if x {
			return "True"
		}
		return "False"
	case json.Number:
		return string(x)
	case string:
		q := "'"
		if strings.Contains(x, "'") && !strings.Contains(x, `"`) {
			q = `"`
		}
		r := strings.NewReplacer(`\`, `\\`, "\n", `\n`, "\r", `\r`, "\t", `\t`, q, `\`+q)
		return q + r.Replace(x) + q
	}
	b, err := cqrsync.AppendJSON(nil, v)
	if err != nil {
		return "?"
	}
	return string(b)
}

// countingReader counts the bytes read through it.
type countingReader struct {
	r io.Reader
	n int64
}

// Read reads and counts.
func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += int64(n)
	return n, err
}
