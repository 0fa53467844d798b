// Package agentapi is an agent's own HTTP API, served on its data port:
// managers call it to act on a host's volumes, and agents send each other
// volume data through it. The managers' API is package api.
package agentapi

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/clusterctl/clusterctl/pki"
	"github.com/clusterctl/clusterctl/transport"
)

// DefaultPort is the agent's data port when none is given.
const DefaultPort = 7947

// VolumeState is what an agent knows of one volume on its host.
type VolumeState struct {
	Name     string   `json:"name"`
	Path     string   `json:"path,omitempty"` // where Docker mounts it from, when attached here
	Attached bool     `json:"attached"`
	Mounts   []string `json:"mounts,omitempty"` // Docker's mount IDs
}

// Client calls one agent.
type Client struct {
	base   string
	http   *http.Client
	stream *http.Client // for answers streamed as long as a step runs
}

// NewClient returns a client of the agent at base (https://addr:port), as
// the node creds name (a manager, or another agent).
func NewClient(base string, creds *transport.Creds) *Client {
	hc := &http.Client{Transport: transport.RoundTripper(creds.ClientTLS(pki.RoleWorker)), Timeout: 30 * time.Second}
	return &Client{base: strings.TrimSuffix(base, "/"), http: hc, stream: creds.BulkClient(streamTimeout)}
}

// RemoveVolume deletes the volume's data on the agent's host; it refuses
// while the volume is mounted there.
func (c *Client) RemoveVolume(ctx context.Context, name, backend string) error {
	return c.do(ctx, http.MethodDelete, "/v1/volumes/"+url.PathEscape(name)+"?backend="+url.QueryEscape(backend), nil, nil)
}

// Volume returns the agent's state of a volume.
func (c *Client) Volume(ctx context.Context, name string) (*VolumeState, error) {
	var out VolumeState
	return &out, c.do(ctx, http.MethodGet, "/v1/volumes/"+url.PathEscape(name), nil, &out)
}

// do sends a request (in as its JSON body, if not nil) and decodes a JSON
// answer into out (if not nil).
func (c *Client) do(ctx context.Context, method, path string, in, out any) error {
	resp, err := c.send(ctx, c.http, method, path, in)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if out == nil {
		_, _ = io.Copy(io.Discard, resp.Body)
		return nil
	}
	if err := transport.DecodeJSON(resp.Body, out); err != nil {
		return fmt.Errorf("agent %s: decode answer: %w", c.base, err)
	}
	return nil
}

// send makes one request with hc, in as its JSON body if not nil, and
// returns a successful answer (for the caller to close) or the agent's
// refusal.
func (c *Client) send(ctx context.Context, hc *http.Client, method, path string, in any) (*http.Response, error) {
	var body io.Reader
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return nil, fmt.Errorf("encode request: %w", err)
		}
		body = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, c.base+path, body)
	if err != nil {
		return nil, fmt.Errorf("agent %s: %w", c.base, err)
	}
	if in != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := hc.Do(req)
	if err != nil {
		return nil, fmt.Errorf("agent %s: %w", c.base, err)
	}
	if resp.StatusCode >= 400 {
		defer resp.Body.Close()
		return nil, &Error{Code: resp.StatusCode, Message: readError(resp.Body)}
	}
	return resp, nil
}

// Error is an agent's refusal.
type Error struct {
	Code    int
	Message string
}

func (e *Error) Error() string { return e.Message }

// IsConflict says whether err is an agent refusing because of the state
// (in use, attached elsewhere).
func IsConflict(err error) bool {
	var e *Error
	return errors.As(err, &e) && e.Code == http.StatusConflict
}

// readError reads an error answer: {"error": "..."} or plain text.
func readError(r io.Reader) string {
	b, _ := io.ReadAll(io.LimitReader(r, 4096))
	var body struct {
		Error string `json:"error"`
	}
	if json.Unmarshal(b, &body) == nil && body.Error != "" {
		return body.Error
	}
	return strings.TrimSpace(string(b))
}

// WriteError answers a request with a one-line JSON error.
func WriteError(w http.ResponseWriter, code int, err error) {
	WriteJSON(w, code, map[string]string{"error": err.Error()})
}

// WriteJSON answers a request with v as JSON.
func WriteJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(v)
}
