package api

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/cenkalti/backoff/v4"
	"github.com/clusterctl/clusterctl/pki"
	"github.com/clusterctl/clusterctl/store"
	"github.com/clusterctl/clusterctl/transport"
)

// requestTimeout bounds one API request to one manager.
const requestTimeout = 5 * time.Second

// Client talks to the managers. It sticks to the manager that last
// answered and moves on to the next one when that one is unreachable or has
// no leader, retrying until the caller's context ends: a leader failover
// looks to its callers like a slow request, not an error.
type Client struct {
	servers []string // API addresses, host:port
	creds   *transport.Creds
	http    *http.Client
	stream  *http.Client
	probe   *http.Client // one connection per Self: a pooled one may lead to a dead manager

	mu      sync.Mutex
	current int
}

// NewClient returns a client for the managers at the given API addresses,
// as the node creds name.
func NewClient(servers []string, creds *transport.Creds) *Client {
	probe := transport.RoundTripper(creds.ClientTLS(pki.RoleManager))
	probe.DisableKeepAlives = true
	return &Client{servers: servers, creds: creds, http: creds.HTTPClient(requestTimeout), stream: creds.HTTPClient(0), probe: &http.Client{Transport: probe, Timeout: requestTimeout}}
}

// StatusError is an answer the manager gave on purpose (4xx): retrying
// elsewhere would not change it.
type StatusError struct {
	Code    int
	Message string
}

func (e *StatusError) Error() string { return e.Message }

// IsNotFound says whether err is a 404 from the API.
func IsNotFound(err error) bool {
	var se *StatusError
	return errors.As(err, &se) && se.Code == http.StatusNotFound
}

// do sends one request, retrying on other managers, and decodes the answer
// into out (if not nil).
//
// A read is retried whatever went wrong. A write is retried only when it
// certainly did not take effect: the manager could not be reached, or it
// answered 503 (no leader, not the leader: nothing was appended). A write
// whose outcome is unknown (the connection broke after it was sent, the
// leader lost leadership while committing it) is returned as an error: a
// retry could apply it a second time, after someone else's write, which is
// not linearizable.
func (c *Client) do(ctx context.Context, method, path string, in, out any) error {
	if len(c.servers) == 0 {
		return errors.New("no managers to talk to: pass --servers or use a context file with servers")
	}
	var body []byte
	if in != nil {
		var err error
		if body, err = json.Marshal(in); err != nil {
			return fmt.Errorf("encode request: %w", err)
		}
	}
	idempotent := method == http.MethodGet
	var lastErr error
	op := func() error {
		server := c.pick()
		resp, err := c.send(ctx, c.http, method, server, path, body)
		if refused := tlsRefusal(err); refused != nil {
			return backoff.Permanent(refused)
		}
		if err != nil {
			lastErr = err
			c.next(server)
			if !idempotent && !transport.NeverSent(err) {
				return backoff.Permanent(fmt.Errorf("%s: outcome unknown: %w", server, err))
			}
			return err
		}
		defer resp.Body.Close()
		return c.decode(resp, server, out, idempotent, &lastErr)
	}
	b := backoff.NewExponentialBackOff(backoff.WithInitialInterval(50*time.Millisecond), backoff.WithMaxInterval(500*time.Millisecond), backoff.WithMaxElapsedTime(15*time.Second))
	if err := backoff.Retry(op, backoff.WithContext(b, ctx)); err != nil {
		if lastErr != nil && !isPermanent(err) {
			return fmt.Errorf("%s %s: %w", method, path, lastErr)
		}
		return err
	}
	return nil
}

// decode reads an answer: success into out, 4xx as a permanent error, 503
// as a reason to try another manager, any other 5xx too for a read; for a
// write it means the outcome is unknown.
func (c *Client) decode(resp *http.Response, server string, out any, idempotent bool, lastErr *error) error {
	if resp.StatusCode >= 500 {
		*lastErr = fmt.Errorf("%s: %s", server, readError(resp))
		c.next(server)
		if resp.StatusCode != http.StatusServiceUnavailable && !idempotent {
			return backoff.Permanent(fmt.Errorf("outcome unknown: %w", *lastErr))
		}
		return *lastErr
	}
	if resp.StatusCode >= 400 {
		se := &StatusError{Code: resp.StatusCode, Message: readError(resp)}
		if c.renewedSince(se) {
			*lastErr = se
			return se // on a new connection, with the renewed certificate
		}
		return backoff.Permanent(se)
	}
	if out == nil {
		_, _ = io.Copy(io.Discard, resp.Body)
		return nil
	}
	if err := transport.DecodeJSON(resp.Body, out); err != nil {
		return backoff.Permanent(fmt.Errorf("decode answer from %s: %w", server, err))
	}
	return nil
}

// ErrCertificateExpired opens the answer to a request on a connection
// whose certificate has expired.
const ErrCertificateExpired = "certificate expired"

// renewedSince says whether a refusal was for an expired certificate on a
// connection opened before this client's credentials were renewed: the
// manager closed it, and a retry goes with the current certificate.
func (c *Client) renewedSince(se *StatusError) bool {
	return se.Code == http.StatusUnauthorized && strings.HasPrefix(se.Message, ErrCertificateExpired) &&
		c.creds != nil && time.Now().Before(c.creds.Leaf().NotAfter)
}

// tlsRefusal is a handshake that failed on credentials (ours refused, or
// the manager's not this cluster's): another manager or a retry would not
// change it, so it is said at once.
func tlsRefusal(err error) error {
	var verify *tls.CertificateVerificationError
	var op *net.OpError // an alert the manager sent: it refused our certificate
	if errors.As(err, &verify) || (errors.As(err, &op) && op.Op == "remote error") {
		return fmt.Errorf("TLS refused: %w (are the credentials this cluster's and still valid? clusterctl login)", err)
	}
	return nil
}

// IsTLSRefusal says whether a request failed on credentials: the other
// side is not of this cluster, or refused ours.
func IsTLSRefusal(err error) bool { return tlsRefusal(err) != nil }

func isPermanent(err error) bool {
	var se *StatusError
	return errors.As(err, &se)
}

// send makes one HTTP request to one manager.
func (c *Client) send(ctx context.Context, hc *http.Client, method, server, path string, body []byte) (*http.Response, error) {
	req, err := http.NewRequestWithContext(ctx, method, transport.URL(server)+path, bytes.NewReader(body))
	if err != nil {
		return nil, backoff.Permanent(err)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	return hc.Do(req)
}

// readError extracts the message of an error answer.
func readError(resp *http.Response) string {
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	var e Error
	if json.Unmarshal(b, &e) == nil && e.Error != "" {
		return e.Error
	}
	return fmt.Sprintf("%s: %s", resp.Status, bytes.TrimSpace(b))
}

func (c *Client) pick() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.servers[c.current%len(c.servers)]
}

// next moves on from a manager that failed, unless another request
// already did.
func (c *Client) next(failed string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.servers[c.current%len(c.servers)] == failed {
		c.current++
	}
}

// Status is the control plane at a glance.
func (c *Client) Status(ctx context.Context) (*Status, error) {
	var s Status
	return &s, c.do(ctx, http.MethodGet, "/v1/status", nil, &s)
}

// Self asks one specific manager about itself, without retries.
func (c *Client) Self(ctx context.Context, server string) (*ServerSelf, error) {
	resp, err := c.send(ctx, c.probe, http.MethodGet, server, "/v1/cluster/self", nil)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("%s: %s", server, readError(resp))
	}
	var s ServerSelf
	if err := transport.DecodeJSON(resp.Body, &s); err != nil {
		return nil, fmt.Errorf("decode answer from %s: %w", server, err)
	}
	return &s, nil
}

// Join asks the cluster to add a manager.
func (c *Client) Join(ctx context.Context, req JoinRequest) (*JoinResponse, error) {
	var r JoinResponse
	return &r, c.do(ctx, http.MethodPost, "/v1/cluster/join", req, &r)
}

// RegisterServer records a manager's addresses in the store.
func (c *Client) RegisterServer(ctx context.Context, srv store.Server) error {
	return c.do(ctx, http.MethodPost, "/v1/cluster/servers", srv, nil)
}

// Hosts lists the hosts in the store; stale reads may come from any manager.
func (c *Client) Hosts(ctx context.Context, stale bool) (*HostsResponse, error) {
	var r HostsResponse
	return &r, c.do(ctx, http.MethodGet, "/v1/hosts"+staleQuery(stale), nil, &r)
}

// RegisterHost records a host (an agent's first call).
func (c *Client) RegisterHost(ctx context.Context, h RegisterHost) error {
	return c.do(ctx, http.MethodPost, "/v1/hosts", h, nil)
}

// Heartbeat says a host is alive; a 404 means the host must register again.
func (c *Client) Heartbeat(ctx context.Context, name string, hb Heartbeat) error {
	return c.do(ctx, http.MethodPost, "/v1/hosts/"+url.PathEscape(name)+"/heartbeat", hb, nil)
}

// SetVar writes a cluster variable and returns the index it committed at.
func (c *Client) SetVar(ctx context.Context, key, value string) (uint64, error) {
	var r WriteResponse
	err := c.do(ctx, http.MethodPut, "/v1/vars/"+url.PathEscape(key), store.Var{Key: key, Value: value}, &r)
	return r.Index, err
}

// SetVars writes several variables in one log entry.
func (c *Client) SetVars(ctx context.Context, vars []store.Var) (uint64, error) {
	var r WriteResponse
	err := c.do(ctx, http.MethodPut, "/v1/vars", SetVars{Vars: vars}, &r)
	return r.Index, err
}

// GetVar reads a cluster variable: linearizable unless stale. found is
// false for a variable that does not exist.
func (c *Client) GetVar(ctx context.Context, key string, stale bool) (v store.Var, found bool, err error) {
	err = c.do(ctx, http.MethodGet, "/v1/vars/"+url.PathEscape(key)+staleQuery(stale), nil, &v)
	if IsNotFound(err) {
		return store.Var{}, false, nil
	}
	return v, err == nil, err
}

func staleQuery(stale bool) string {
	if stale {
		return "?stale=true"
	}
	return ""
}

// Events streams the store's changes after index to fn until ctx ends or
// fn returns an error. It reconnects (to another manager if needed) and
// resumes after the last event it delivered.
func (c *Client) Events(ctx context.Context, index uint64, fn func(store.Event) error) error {
	for ctx.Err() == nil {
		server := c.pick()
		resp, err := c.send(ctx, c.stream, http.MethodGet, server, fmt.Sprintf("/v1/events?index=%d", index), nil)
		if err != nil {
			c.next(server)
			sleep(ctx, 200*time.Millisecond)
			continue
		}
		index, err = readEvents(resp, index, fn)
		if err != nil {
			return err
		}
		c.next(server)
		sleep(ctx, 200*time.Millisecond)
	}
	return ctx.Err()
}

// readEvents delivers one stream's events and returns the last index seen.
// Only fn's error (or a refusal) is returned; a broken stream is not an error.
func readEvents(resp *http.Response, index uint64, fn func(store.Event) error) (uint64, error) {
	defer resp.Body.Close()
	if resp.StatusCode >= 400 && resp.StatusCode < 500 {
		return index, &StatusError{Code: resp.StatusCode, Message: readError(resp)}
	}
	if resp.StatusCode != http.StatusOK {
		return index, nil
	}
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 64<<10), 16<<20)
	for sc.Scan() {
		var ev store.Event
		if err := json.Unmarshal(sc.Bytes(), &ev); err != nil {
			return index, fmt.Errorf("decode event: %w", err)
		}
		if ev.Type == "" { // keep-alive
			continue
		}
		if err := fn(ev); err != nil {
			return index, err
		}
		index = ev.Index
	}
	return index, nil
}

func sleep(ctx context.Context, d time.Duration) {
	select {
	case <-ctx.Done():
	case <-time.After(d):
	}
}
