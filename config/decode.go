package config

import (
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/cqrsync/cqrsync"
	"github.com/cqrsync/cqrsync/internal/days"
)

// decoder walks the YAML tree by hand, so that every problem is collected
// with its path and line instead of stopping at the first.
type decoder struct {
	probs []Problem
}

func (d *decoder) add(path string, n *yaml.Node, format string, args ...any) {
	p := Problem{Path: path, Msg: fmt.Sprintf(format, args...)}
	if n != nil {
		p.Line = n.Line
	}
	d.probs = append(d.probs, p)
}

// decode parses data into a Config; problems are returned, not raised.
func decode(data []byte) (*Config, []Problem) {
	c := &Config{}
	if len(strings.TrimSpace(string(data))) == 0 {
		return c, nil
	}
	var doc yaml.Node
	if err := yaml.Unmarshal(data, &doc); err != nil {
		return c, []Problem{{Path: "(file)", Msg: "not valid YAML: " + strings.TrimPrefix(err.Error(), "yaml: ")}}
	}
	if doc.Kind != yaml.DocumentNode || len(doc.Content) == 0 {
		return c, nil
	}
	d := &decoder{}
	root := doc.Content[0]
	d.object(root, "", fields{
		"database": func(n *yaml.Node, p string) {
			d.object(n, p, fields{
				"url":            func(n *yaml.Node, p string) { d.str(n, p, &c.Database.URL) },
				"max_open_conns": func(n *yaml.Node, p string) { d.count(n, p, &c.Database.MaxOpenConns) },
			})
		},
		"transport": func(n *yaml.Node, p string) {
			d.object(n, p, fields{
				"url":      func(n *yaml.Node, p string) { d.str(n, p, &c.Transport.URL) },
				"exchange": func(n *yaml.Node, p string) { d.name(n, p, &c.Transport.Exchange) },
			})
		},
		"queue":             func(n *yaml.Node, p string) { d.str(n, p, &c.Queue) },
		"dead_letter_queue": func(n *yaml.Node, p string) { d.str(n, p, &c.DeadLetterQueue) },
		"master": func(n *yaml.Node, p string) {
			m := &c.Master
			d.object(n, p, fields{
				"message_ttl":         func(n *yaml.Node, p string) { d.ttl(n, p, &m.MessageTTL) },
				"auto_update_fields":  func(n *yaml.Node, p string) { d.boolean(n, p, &m.AutoUpdateFields) },
				"relay_batch":         func(n *yaml.Node, p string) { d.count(n, p, &m.RelayBatch) },
				"relay_poll_interval": func(n *yaml.Node, p string) { d.duration(n, p, &m.RelayPollInterval) },
				"outbox":              func(n *yaml.Node, p string) { d.outbox(n, p, &m.Outbox) },
				"wal_slot":            func(n *yaml.Node, p string) { d.str(n, p, &m.WALSlot) },
				"wal_publication":     func(n *yaml.Node, p string) { d.str(n, p, &m.WALPublication) },
				"resend_queue":        func(n *yaml.Node, p string) { d.str(n, p, &m.ResendQueue) },
			})
		},
		"replica": func(n *yaml.Node, p string) {
			r := &c.Replica
			d.object(n, p, fields{
				"workers":             func(n *yaml.Node, p string) { d.count(n, p, &r.Workers) },
				"batch":               func(n *yaml.Node, p string) { d.count(n, p, &r.Batch) },
				"prefetch":            func(n *yaml.Node, p string) { d.count(n, p, &r.Prefetch) },
				"tombstone_retention": func(n *yaml.Node, p string) { d.duration(n, p, &r.TombstoneRetention) },
				"dead_letter_ttl":     func(n *yaml.Node, p string) { d.ttl(n, p, &r.DeadLetterTTL) },
				"shutdown_timeout":    func(n *yaml.Node, p string) { d.duration(n, p, &r.ShutdownTimeout) },
				"batch_wait":          func(n *yaml.Node, p string) { d.duration(n, p, &r.BatchWait) },
				"wait_poll":           func(n *yaml.Node, p string) { d.duration(n, p, &r.WaitPoll) },
				"no_resend":           func(n *yaml.Node, p string) { d.boolean(n, p, &r.NoResend) },
				"resend_interval":     func(n *yaml.Node, p string) { d.duration(n, p, &r.ResendInterval) },
				"retry":               func(n *yaml.Node, p string) { r.Retry = d.retry(n, p) },
			})
		},
		"masters": func(n *yaml.Node, p string) {
			d.list(n, p, func(n *yaml.Node, p string) { c.Masters = append(c.Masters, d.master(n, p)) })
		},
		"replicas": func(n *yaml.Node, p string) {
			d.list(n, p, func(n *yaml.Node, p string) { c.Replicas = append(c.Replicas, d.replica(n, p)) })
		},
	})
	unique(d, "masters", c.Masters, func(m MasterModel) string { return m.CQRSID })
	unique(d, "replicas", c.Replicas, func(m ReplicaModel) string { return m.CQRSID })
	return c, d.probs
}

// unique reports CQRS IDs declared twice in one list.
func unique[T any](d *decoder, list string, items []T, id func(T) string) {
	seen := map[string]int{}
	for i, it := range items {
		k := id(it)
		if k == "" {
			continue
		}
		if j, dup := seen[k]; dup {
			d.add(fmt.Sprintf("%s[%d].cqrs_id", list, i), nil, "%q is already declared by %s[%d]", k, list, j)
			continue
		}
		seen[k] = i
	}
}

func (d *decoder) master(n *yaml.Node, p string) MasterModel {
	var m MasterModel
	fieldsNode := (*yaml.Node)(nil)
	d.object(n, p, fields{
		"cqrs_id":        func(n *yaml.Node, p string) { d.name(n, p, &m.CQRSID) },
		"table":          func(n *yaml.Node, p string) { d.str(n, p, &m.Table) },
		"pk":             func(n *yaml.Node, p string) { d.str(n, p, &m.PK) },
		"fields":         func(n *yaml.Node, p string) { fieldsNode = n; m.Fields, m.FieldNames = d.masterFields(n, p) },
		"tracked_fields": func(n *yaml.Node, p string) { d.strings(n, p, &m.TrackedFields) },
		"types":          func(n *yaml.Node, p string) { m.Types = d.types(n, p) },
		"no_produce":     func(n *yaml.Node, p string) { d.boolean(n, p, &m.NoProduce) },
		"message_ttl":    func(n *yaml.Node, p string) { d.ttl(n, p, &m.MessageTTL) },
	})
	d.required(n, p, "cqrs_id", m.CQRSID)
	d.required(n, p, "table", m.Table)
	m.PK = cmpOr(m.PK, "id")
	if m.Fields != nil && !slices.Contains(m.Fields, m.PK) {
		d.add(p+".fields", fieldsNode, "must include the primary key %q", m.PK)
	}
	return m
}

// masterFields decodes a master's fields: a list of columns, each a name,
// or a one-entry mapping {column: name on the wire} that renames it (a
// Django foreign key: {owner_id: owner}).
func (d *decoder) masterFields(n *yaml.Node, p string) (cols []string, names map[string]string) {
	if isNull(resolve(n)) {
		return nil, nil
	}
	cols = []string{}
	d.list(n, p, func(n *yaml.Node, p string) {
		n = resolve(n)
		if n.Kind != yaml.MappingNode {
			if v, ok := d.scalar(n, p); ok && v != "" {
				cols = append(cols, v)
			} else if ok {
				d.add(p, n, "empty name")
			}
			return
		}
		if len(n.Content) != 2 {
			d.add(p, n, "want a column name, or one {column: name on the wire} like {owner_id: owner}, got %d entries", len(n.Content)/2)
			return
		}
		col := n.Content[0].Value
		wire, ok := d.scalar(n.Content[1], join(p, col))
		if !ok || wire == "" || col == "" {
			d.add(p, n, "want {column: name on the wire}, like {owner_id: owner}")
			return
		}
		cols = append(cols, col)
		if names == nil {
			names = map[string]string{}
		}
		names[col] = wire
	})
	return cols, names
}

func (d *decoder) replica(n *yaml.Node, p string) ReplicaModel {
	var m ReplicaModel
	mappingNode := (*yaml.Node)(nil)
	d.object(n, p, fields{
		"cqrs_id":           func(n *yaml.Node, p string) { d.name(n, p, &m.CQRSID) },
		"table":             func(n *yaml.Node, p string) { d.str(n, p, &m.Table) },
		"pk":                func(n *yaml.Node, p string) { d.str(n, p, &m.PK) },
		"mapping":           func(n *yaml.Node, p string) { mappingNode = n; m.Mapping = d.stringMap(n, p) },
		"types":             func(n *yaml.Node, p string) { m.Types = d.types(n, p) },
		"only_direct_syncs": func(n *yaml.Node, p string) { d.boolean(n, p, &m.OnlyDirectSyncs) },
		"select_for_update": func(n *yaml.Node, p string) { d.boolean(n, p, &m.SelectForUpdate) },
		"query_timeout":     func(n *yaml.Node, p string) { d.duration(n, p, &m.QueryTimeout) },
		"retry":             func(n *yaml.Node, p string) { m.Retry = d.retry(n, p) },
	})
	d.required(n, p, "cqrs_id", m.CQRSID)
	d.required(n, p, "table", m.Table)
	m.PK = cmpOr(m.PK, "id")
	if m.Mapping != nil && !slices.Contains(slices.Collect(maps.Values(m.Mapping)), m.PK) {
		d.add(p+".mapping", mappingNode, "maps no master field to the primary key %q: add e.g. \"id: %s\" (with a mapping, only mapped fields are kept)", m.PK, m.PK)
	}
	return m
}

func (d *decoder) retry(n *yaml.Node, p string) *Retry {
	r := &Retry{}
	d.object(n, p, fields{
		"max_retries": func(n *yaml.Node, p string) {
			var v int
			if d.count(n, p, &v) {
				r.MaxRetries = &v
			}
		},
		"delay":     func(n *yaml.Node, p string) { d.duration(n, p, &r.Delay) },
		"max_delay": func(n *yaml.Node, p string) { d.duration(n, p, &r.MaxDelay) },
	})
	if r.MaxDelay > 0 && r.Delay > r.MaxDelay {
		d.add(p+".max_delay", n, "is shorter than delay (%v): it caps an exponential backoff that starts at delay", r.Delay)
	}
	return r
}

func cmpOr(a, b string) string {
	if a != "" {
		return a
	}
	return b
}

func (d *decoder) required(n *yaml.Node, p, key, v string) {
	if v == "" && n != nil && n.Kind == yaml.MappingNode {
		d.add(p+"."+key, n, "required")
	}
}

type fields map[string]func(n *yaml.Node, path string)

func join(path, key string) string {
	if path == "" {
		return key
	}
	return path + "." + key
}

// object decodes a mapping whose keys must be among fs.
func (d *decoder) object(n *yaml.Node, p string, fs fields) {
	n = resolve(n)
	if isNull(n) {
		return
	}
	if n.Kind != yaml.MappingNode {
		d.add(cmpOr(p, "(file)"), n, "want a mapping of keys to values, got %s", kind(n))
		return
	}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], n.Content[i+1]
		fn, ok := fs[k.Value]
		if !ok {
			d.add(join(p, k.Value), k, "unknown key (known: %s)", strings.Join(slices.Sorted(maps.Keys(fs)), ", "))
			continue
		}
		fn(v, join(p, k.Value))
	}
}

func (d *decoder) list(n *yaml.Node, p string, item func(n *yaml.Node, p string)) {
	n = resolve(n)
	if isNull(n) {
		return
	}
	if n.Kind != yaml.SequenceNode {
		d.add(p, n, "want a list, got %s", kind(n))
		return
	}
	for i, it := range n.Content {
		item(it, fmt.Sprintf("%s[%d]", p, i))
	}
}

func (d *decoder) scalar(n *yaml.Node, p string) (string, bool) {
	n = resolve(n)
	if isNull(n) {
		return "", false
	}
	if n.Kind != yaml.ScalarNode {
		d.add(p, n, "want a single value, got %s", kind(n))
		return "", false
	}
	return n.Value, true
}

func (d *decoder) str(n *yaml.Node, p string, dst *string) {
	if v, ok := d.scalar(n, p); ok {
		*dst = strings.TrimSpace(v)
	}
}

// name decodes a CQRS ID or exchange name: a topic word.
func (d *decoder) name(n *yaml.Node, p string, dst *string) {
	v, ok := d.scalar(n, p)
	if !ok {
		return
	}
	if !validName(v) {
		d.add(p, n, "%q is not a valid name: no '.', '*', '#' or spaces", v)
		return
	}
	*dst = v
}

// outbox reads master.outbox: "table" or "wal".
func (d *decoder) outbox(n *yaml.Node, p string, dst *cqrsync.OutboxMode) {
	v, ok := d.scalar(n, p)
	if !ok {
		return
	}
	mode, err := cqrsync.ParseOutboxMode(v)
	if err != nil {
		d.add(p, n, "%q: use table (the cqrs_outbox table, every database) or wal (PostgreSQL's write-ahead log; docs/wal.md)", v)
		return
	}
	*dst = mode
}

func (d *decoder) boolean(n *yaml.Node, p string, dst *bool) {
	v, ok := d.scalar(n, p)
	if !ok {
		return
	}
	switch strings.ToLower(v) {
	case "true", "yes", "on":
		*dst = true
	case "false", "no", "off":
		*dst = false
	default:
		d.add(p, n, "want true or false, got %q", v)
	}
}

// count decodes a non-negative integer.
func (d *decoder) count(n *yaml.Node, p string, dst *int) bool {
	v, ok := d.scalar(n, p)
	if !ok {
		return false
	}
	i, err := strconv.Atoi(v)
	if err != nil || i < 0 {
		d.add(p, n, "want a whole number, 0 or more, got %q", v)
		return false
	}
	*dst = i
	return true
}

func (d *decoder) duration(n *yaml.Node, p string, dst *time.Duration) {
	v, ok := d.scalar(n, p)
	if !ok {
		return
	}
	t, err := ParseDuration(v)
	if err != nil {
		d.add(p, n, "want a duration like 500ms, 30s, 1h or 7d, got %q", v)
		return
	}
	if t < 0 {
		d.add(p, n, "is negative (%q): want a duration like 500ms, 30s, 1h or 7d, or 0 for the default", v)
		return
	}
	*dst = t
}

// ttl is a duration that may also be "none" (never expires).
func (d *decoder) ttl(n *yaml.Node, p string, dst *time.Duration) {
	v, ok := d.scalar(n, p)
	if !ok {
		return
	}
	if strings.EqualFold(v, "none") {
		*dst = cqrsync.NoExpiry
		return
	}
	t, err := ParseDuration(v)
	if err != nil || t <= 0 {
		d.add(p, n, "want a duration like 1h or 7d, or none, got %q", v)
		return
	}
	*dst = t
}

func (d *decoder) strings(n *yaml.Node, p string, dst *[]string) {
	out := []string{}
	d.list(n, p, func(n *yaml.Node, p string) {
		if v, ok := d.scalar(n, p); ok && v != "" {
			out = append(out, v)
		} else if ok {
			d.add(p, n, "empty name")
		}
	})
	if !isNull(resolve(n)) {
		*dst = out
	}
}

func (d *decoder) stringMap(n *yaml.Node, p string) map[string]string {
	n = resolve(n)
	if isNull(n) {
		return nil
	}
	if n.Kind != yaml.MappingNode {
		d.add(p, n, "want a mapping, got %s", kind(n))
		return nil
	}
	out := make(map[string]string, len(n.Content)/2)
	for i := 0; i+1 < len(n.Content); i += 2 {
		k := n.Content[i].Value
		if v, ok := d.scalar(n.Content[i+1], join(p, k)); ok && v != "" {
			out[k] = v
		} else if ok || isNull(resolve(n.Content[i+1])) {
			d.add(join(p, k), n.Content[i+1], "want a column name")
		}
	}
	return out
}

func (d *decoder) types(n *yaml.Node, p string) map[string]cqrsync.ValueType {
	raw := d.stringMap(n, p)
	if raw == nil {
		return nil
	}
	out := make(map[string]cqrsync.ValueType, len(raw))
	for _, col := range slices.Sorted(maps.Keys(raw)) {
		t, err := cqrsync.ParseValueType(raw[col])
		if err != nil {
			d.add(join(p, col), n, "unknown type %q: use one of auto, int, float, decimal, string, bool, date, datetime, uuid, json", raw[col])
			continue
		}
		out[col] = t
	}
	return out
}

func resolve(n *yaml.Node) *yaml.Node {
	for n != nil && n.Kind == yaml.AliasNode {
		n = n.Alias
	}
	return n
}

func isNull(n *yaml.Node) bool {
	return n == nil || (n.Kind == yaml.ScalarNode && n.Tag == "!!null")
}

func kind(n *yaml.Node) string {
	switch n.Kind {
	case yaml.MappingNode:
		return "a mapping"
	case yaml.SequenceNode:
		return "a list"
	case yaml.ScalarNode:
		return fmt.Sprintf("%q", n.Value)
	}
	return "something else"
}

// ParseDuration parses a Go duration ("1h30m", "500ms") or a whole number of
// days ("7d").
func ParseDuration(s string) (time.Duration, error) { return days.ParseDuration(s) }
