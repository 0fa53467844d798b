package store

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
)

// batchHandler returns the handler of CmdBatch: decodeBatch, then
// applyBatch.
func (s *Store) batchHandler() handler {
	return func(txn *tx, e entry, payload json.RawMessage) ([]Event, error) {
		p, err := decodeBatch(payload)
		if err != nil {
			return nil, err
		}
		return s.applyBatch(txn, e, p)
	}
}

// decodeBatch decodes a CmdBatch payload.
//
// A batch carries a whole plan (a thousand new tasks are half a megabyte
// of base64), and every replica decodes it. encoding/json first validates
// the whole payload, then unquotes and decodes each string into its own
// allocation; reading the exact form EncodeBatch writes in one pass, into
// one buffer, costs a fraction of that. Any other form (whitespace,
// escapes, null, other fields) takes encoding/json, so every payload
// decodes as before, and fails as before.
func decodeBatch(payload []byte) (*Batch, error) {
	if b, ok := decodeBatchFast(payload); ok {
		return b, nil
	}
	return decodePayload[Batch](payload)
}

// decodeBatchFast decodes `{"commands":["<base64>",...]}` with nothing
// else in it, and reports false for anything else.
func decodeBatchFast(p []byte) (*Batch, bool) {
	const head, tail = `{"commands":[`, `]}`
	if len(p) < len(head)+len(tail) || !bytes.HasPrefix(p, []byte(head)) || !bytes.HasSuffix(p, []byte(tail)) {
		return nil, false
	}
	body := p[len(head) : len(p)-len(tail)]
	b := &Batch{Commands: [][]byte{}}
	// One buffer for every command: the base64 of the body is an upper
	// bound of its decoded size. Each command gets a slice capped at its
	// own length, so appending to one cannot overwrite the next.
	buf := make([]byte, base64.StdEncoding.DecodedLen(len(body)))
	for len(body) > 0 {
		if body[0] != '"' {
			return nil, false
		}
		end := bytes.IndexByte(body[1:], '"') + 1
		if end == 0 {
			return nil, false
		}
		s := body[1:end]
		// A backslash is an escape only encoding/json can read, and the
		// decoder refuses it. It skips raw CR and LF, which JSON forbids
		// in a string: a string holding them decodes to fewer bytes than
		// its length says, and goes to encoding/json, which refuses it.
		n, err := base64.StdEncoding.Decode(buf, s)
		if err != nil || len(s)%4 != 0 || n != len(s)/4*3-padding(s) {
			return nil, false
		}
		b.Commands = append(b.Commands, buf[:n:n])
		buf = buf[n:]
		body = body[end+1:]
		if len(body) > 0 {
			if body[0] != ',' || len(body) == 1 {
				return nil, false
			}
			body = body[1:]
		}
	}
	return b, true
}

// padding returns how many '=' end a base64 string.
func padding(s []byte) int {
	n := 0
	for n < 2 && n < len(s) && s[len(s)-1-n] == '=' {
		n++
	}
	return n
}
