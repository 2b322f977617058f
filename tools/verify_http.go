package tools

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"sync/atomic"

	"github.com/cqrsync/cqrsync"
)

// verifyMessage is the JSON body of a request to VerifyHandler. Keys are
// wire values, encoded as events encode them.
type verifyMessage struct {
	Op     string          `json:"op"` // "fields", "buckets" or "resync"
	CQRSID string          `json:"cqrs_id"`
	After  json.RawMessage `json:"after,omitempty"`
	Until  json.RawMessage `json:"until,omitempty"`
	Size   int             `json:"size,omitempty"`
	Limit  int             `json:"limit,omitempty"`
	Bounds json.RawMessage `json:"bounds,omitempty"`
	Fields []string        `json:"fields,omitempty"`
	Keys   json.RawMessage `json:"keys,omitempty"`
	Queue  string          `json:"queue,omitempty"`
}

// verifyAnswer is VerifyHandler's JSON answer.
type verifyAnswer struct {
	Fields  []string       `json:"fields,omitempty"`
	Buckets []verifyBucket `json:"buckets,omitempty"`
	Synced  int64          `json:"synced,omitempty"`
	Error   string         `json:"error,omitempty"`
}

type verifyBucket struct {
	Hi     json.RawMessage `json:"hi"`
	Count  int64           `json:"count"`
	Hashes []uint64        `json:"hashes"`
}

func encodeWire(v any) (json.RawMessage, error) {
	if v == nil {
		return nil, nil
	}
	return cqrsync.AppendJSON(nil, v)
}

func decodeWire(raw json.RawMessage) (any, error) {
	if len(raw) == 0 {
		return nil, nil
	}
	return cqrsync.DecodeJSON(raw)
}

func decodeWireList(raw json.RawMessage) ([]any, error) {
	v, err := decodeWire(raw)
	if v == nil || err != nil {
		return nil, err
	}
	list, ok := v.([]any)
	if !ok {
		return nil, fmt.Errorf("%s is not a JSON list", raw)
	}
	return list, nil
}

// VerifyHandler serves the master end of a drift check over HTTP, so a
// replica service can run Verify (with a VerifyClient) without the
// master's database credentials: mount it on the master service, for
// example mux.Handle("/cqrsync/verify", tools.VerifyHandler(side)). It
// answers POSTed JSON requests with checksums, and with Resync it enqueues
// SYNCs; it never returns row contents. It does no authentication: mount it
// behind the service's own (a private listener, mTLS, or a middleware that
// checks a token), as anyone who reaches it can learn whether rows changed
// and trigger SYNCs.
func VerifyHandler(m MasterSide) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		answer := func(code int, a *verifyAnswer) {
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(code)
			_ = json.NewEncoder(w).Encode(a)
		}
		if req.Method != http.MethodPost {
			answer(http.StatusMethodNotAllowed, &verifyAnswer{Error: "cqrsync verify: POST a JSON request"})
			return
		}
		var msg verifyMessage
		if err := json.NewDecoder(io.LimitReader(req.Body, 64<<20)).Decode(&msg); err != nil {
			answer(http.StatusBadRequest, &verifyAnswer{Error: "cqrsync verify: the body is not a JSON request: " + err.Error()})
			return
		}
		a, err := serveVerify(req.Context(), m, &msg)
		if errors.Is(err, errBadVerifyRequest) || errors.Is(err, cqrsync.ErrBadFilter) || errors.Is(err, cqrsync.ErrInvalidValue) || errors.Is(err, cqrsync.ErrUnknownModel) {
			answer(http.StatusBadRequest, &verifyAnswer{Error: err.Error()})
			return
		}
		if err != nil {
			answer(http.StatusInternalServerError, &verifyAnswer{Error: err.Error()})
			return
		}
		answer(http.StatusOK, a)
	})
}

var errBadVerifyRequest = errors.New("cqrsync verify: bad request")

func serveVerify(ctx context.Context, m MasterSide, msg *verifyMessage) (*verifyAnswer, error) {
	bad := func(err error) (*verifyAnswer, error) { return nil, fmt.Errorf("%w: %v", errBadVerifyRequest, err) }
	switch msg.Op {
	case "fields":
		fields, err := m.Fields(ctx, msg.CQRSID)
		return &verifyAnswer{Fields: fields}, err
	case "buckets":
		req := &BucketRequest{CQRSID: msg.CQRSID, Size: msg.Size, Limit: msg.Limit, Fields: msg.Fields}
		var err error
		if req.After, err = decodeWire(msg.After); err != nil {
			return bad(fmt.Errorf("after: %w", err))
		}
		if req.Until, err = decodeWire(msg.Until); err != nil {
			return bad(fmt.Errorf("until: %w", err))
		}
		if req.Bounds, err = decodeWireList(msg.Bounds); err != nil {
			return bad(fmt.Errorf("bounds: %w", err))
		}
		bs, err := m.Buckets(ctx, req)
		if err != nil {
			return nil, err
		}
		a := &verifyAnswer{Buckets: make([]verifyBucket, len(bs))}
		for i, b := range bs {
			hi, err := encodeWire(b.Hi)
			if err != nil {
				return nil, err
			}
			a.Buckets[i] = verifyBucket{Hi: hi, Count: b.Count, Hashes: b.Hashes}
		}
		return a, nil
	case "resync":
		keys, err := decodeWireList(msg.Keys)
		if err != nil {
			return bad(fmt.Errorf("keys: %w", err))
		}
		n, err := m.Resync(ctx, msg.CQRSID, keys, msg.Queue)
		return &verifyAnswer{Synced: n}, err
	default:
		return bad(fmt.Errorf("unknown op %q (want fields, buckets or resync)", msg.Op))
	}
}

// VerifyClient is the master end of a drift check reached over HTTP: a
// client of VerifyHandler.
type VerifyClient struct {
	url           string
	hc            *http.Client
	sent, receivd atomic.Int64
}

// NewVerifyClient returns a client of the VerifyHandler at url. A nil hc
// uses http.DefaultClient; pass one whose Transport adds the credentials
// the master service asks for.
func NewVerifyClient(url string, hc *http.Client) *VerifyClient {
	if hc == nil {
		hc = http.DefaultClient
	}
	return &VerifyClient{url: url, hc: hc}
}

var _ MasterSide = (*VerifyClient)(nil)

// CloseIdleConnections closes the HTTP client's idle connections.
func (c *VerifyClient) CloseIdleConnections() { c.hc.CloseIdleConnections() }

// BytesExchanged returns the request and response body bytes so far.
func (c *VerifyClient) BytesExchanged() (sent, received int64) {
	return c.sent.Load(), c.receivd.Load()
}

func (c *VerifyClient) call(ctx context.Context, msg *verifyMessage) (*verifyAnswer, error) {
	body, err := json.Marshal(msg)
	if err != nil {
		return nil, err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, c.url, bytes.NewReader(body))
	if err != nil {
		return nil, err
	}
	req.Header.Set("Content-Type", "application/json")
	c.sent.Add(int64(len(body)))
	resp, err := c.hc.Do(req)
	if err != nil {
		return nil, fmt.Errorf("cqrsync verify: master at %s: %w (is `cqrsync verify-serve` or the master service's VerifyHandler listening there?)", c.url, err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	c.receivd.Add(int64(len(data)))
	if err != nil {
		return nil, err
	}
	var a verifyAnswer
	if err := json.Unmarshal(data, &a); err != nil {
		return nil, fmt.Errorf("cqrsync verify: master at %s answered %s, not a verify answer (is the URL the VerifyHandler's path?)", c.url, resp.Status)
	}
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("cqrsync verify: master at %s: %s: %s", c.url, resp.Status, a.Error)
	}
	return &a, nil
}

// Fields asks the master for the fields of the model's instance_data.
func (c *VerifyClient) Fields(ctx context.Context, cqrsID string) ([]string, error) {
	a, err := c.call(ctx, &verifyMessage{Op: "fields", CQRSID: cqrsID})
	if err != nil {
		return nil, err
	}
	return a.Fields, nil
}

// Buckets asks the master for the checksums of a key range.
func (c *VerifyClient) Buckets(ctx context.Context, req *BucketRequest) ([]Bucket, error) {
	msg := &verifyMessage{Op: "buckets", CQRSID: req.CQRSID, Size: req.Size, Limit: req.Limit, Fields: req.Fields}
	var err error
	if msg.After, err = encodeWire(req.After); err != nil {
		return nil, err
	}
	if msg.Until, err = encodeWire(req.Until); err != nil {
		return nil, err
	}
	if req.Bounds != nil {
		if msg.Bounds, err = encodeWire(req.Bounds); err != nil {
			return nil, err
		}
	}
	a, err := c.call(ctx, msg)
	if err != nil {
		return nil, err
	}
	bs := make([]Bucket, len(a.Buckets))
	for i, b := range a.Buckets {
		hi, err := decodeWire(b.Hi)
		if err != nil {
			return nil, fmt.Errorf("cqrsync verify: master sent a bad key %s: %w", b.Hi, err)
		}
		if len(b.Hashes) != len(req.Fields) {
			return nil, fmt.Errorf("cqrsync verify: master sent %d hashes for %d fields", len(b.Hashes), len(req.Fields))
		}
		bs[i] = Bucket{Hi: hi, Count: b.Count, Hashes: b.Hashes}
	}
	return bs, nil
}

// Resync asks the master to send SYNCs of keys to queue.
func (c *VerifyClient) Resync(ctx context.Context, cqrsID string, keys []any, queue string) (int64, error) {
	raw, err := encodeWire(keys)
	if err != nil {
		return 0, err
	}
	a, err := c.call(ctx, &verifyMessage{Op: "resync", CQRSID: cqrsID, Keys: raw, Queue: queue})
	if err != nil {
		return 0, err
	}
	return a.Synced, nil
}
