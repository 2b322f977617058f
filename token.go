package cqrsync

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
)

// Token names one captured change for read-your-writes: the model, the
// row's key and the revision the event carries. A replica has applied the
// change once the key's stored revision, or its tombstone's, is at least
// Revision (see [Replica.WaitFor]).
//
// Its text form ([Token.String], [ParseToken]) is compact and URL-safe:
// "<cqrs_id>.<revision>.<key>", the key as a decimal integer, or "~" and
// the key's text in unpadded URL-safe base64 for a text key (a UUID, a
// code): account.3.42, order.0.~YS0x.
type Token struct {
	// CQRSID is the model's name on the wire.
	CQRSID string
	// PK is the row's key as a wire value: an int64 or a string.
	PK any
	// Revision is the cqrs_revision of the event (a DELETE's is the row's
	// last revision plus one; a SYNC's the row's current one).
	Revision int64
}

// ErrBadToken is wrapped by [ParseToken]'s errors.
var ErrBadToken = errors.New("cqrsync: bad token")

// String returns the token's text form, which ParseToken reads.
func (t Token) String() string {
	var key string
	switch k := t.PK.(type) {
	case int64:
		key = strconv.FormatInt(k, 10)
	case string:
		key = "~" + base64.RawURLEncoding.EncodeToString([]byte(k))
	case json.Number:
		key = k.String()
	default:
		key = "~" + base64.RawURLEncoding.EncodeToString([]byte(keyString(k)))
	}
	return t.CQRSID + "." + strconv.FormatInt(t.Revision, 10) + "." + key
}

// MarshalText returns the token's text form, so tokens travel in JSON as
// strings.
func (t Token) MarshalText() ([]byte, error) { return []byte(t.String()), nil }

// UnmarshalText reads the text form.
func (t *Token) UnmarshalText(b []byte) error {
	tok, err := ParseToken(string(b))
	if err != nil {
		return err
	}
	*t = tok
	return nil
}

// ParseToken reads a token's text form (see [Token]). Its errors wrap
// ErrBadToken.
func ParseToken(s string) (Token, error) {
	fail := func(why string) (Token, error) {
		return Token{}, fmt.Errorf("%w %q: %s; a token reads <cqrs_id>.<revision>.<key>, as Token.String writes it", ErrBadToken, s, why)
	}
	parts := strings.SplitN(s, ".", 3)
	if len(parts) != 3 {
		return fail("it has fewer than three parts")
	}
	if !validName(parts[0]) {
		return fail("the cqrs_id is empty or has '*', '#' or spaces")
	}
	rev, err := strconv.ParseInt(parts[1], 10, 64)
	if err != nil || rev < 0 {
		return fail("the revision is not a number of 0 or more")
	}
	t := Token{CQRSID: parts[0], Revision: rev}
	key := parts[2]
	if text, ok := strings.CutPrefix(key, "~"); ok {
		b, err := base64.RawURLEncoding.DecodeString(text)
		if err != nil {
			return fail("the text key after '~' is not unpadded URL-safe base64")
		}
		t.PK = string(b)
		return t, nil
	}
	n, err := strconv.ParseInt(key, 10, 64)
	if err != nil {
		return fail("the key is neither an integer nor '~' and base64 text")
	}
	t.PK = n
	return t, nil
}

// Tokens collects the tokens of the changes captured with a context from
// [CollectTokens]. It is safe for concurrent use.
type Tokens struct {
	mu   sync.Mutex
	list []Token
}

// All returns the tokens collected so far, in capture order.
func (t *Tokens) All() []Token {
	t.mu.Lock()
	defer t.mu.Unlock()
	return append([]Token(nil), t.list...)
}

// Strings returns the text forms of the collected tokens, in capture order.
func (t *Tokens) Strings() []string {
	all := t.All()
	out := make([]string, len(all))
	for i, tok := range all {
		out[i] = tok.String()
	}
	return out
}

func (t *Tokens) add(toks []Token) {
	t.mu.Lock()
	t.list = append(t.list, toks...)
	t.mu.Unlock()
}

type tokensKey struct{}

// CollectTokens returns a context whose capture calls ([Master.Create],
// Insert, Update, UpdateRow, UpdateWith, Delete, Sync and SyncQuery) append
// to toks the token of every event they put into the outbox: one per row
// the model publishes (none for a NoProduce model or a row its
// IsSyncInstance refuses). Tokens are meaningful once the capturing
// transaction commits; a rolled-back transaction's never come true. Hand
// them to the reader (an HTTP header, a cookie), which waits with
// [Replica.WaitFor] before it reads from a replica.
func CollectTokens(ctx context.Context) (_ context.Context, toks *Tokens) {
	toks = &Tokens{}
	return context.WithValue(ctx, tokensKey{}, toks), toks
}

// collector returns the context's token collector, nil without one.
func collector(ctx context.Context) *Tokens {
	t, _ := ctx.Value(tokensKey{}).(*Tokens)
	return t
}
