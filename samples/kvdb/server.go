package main

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
)

// maxValueSize is the largest accepted value (1 MiB); the whole value is
// held in memory and fsynced per write, so it must stay small.
const maxValueSize = 1 << 20

// server holds the HTTP handlers for a store.
type server struct {
	store *store
	log   *slog.Logger
}

// newHandler returns the kvdb HTTP API for st. /kv/ and /incr/ are routed by
// hand rather than by http.ServeMux because ServeMux would redirect keys
// like "." and ".." (path cleaning) instead of letting us reject them with
// 400, and would answer 404 rather than 400 for keys containing "/".
func newHandler(st *store, log *slog.Logger) http.Handler {
	s := &server{store: st, log: log}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", s.healthz)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if key, ok := strings.CutPrefix(r.URL.Path, "/kv/"); ok {
			s.kv(w, r, key)
			return
		}
		if key, ok := strings.CutPrefix(r.URL.Path, "/incr/"); ok {
			s.incr(w, r, key)
			return
		}
		mux.ServeHTTP(w, r)
	})
}

// healthz answers 200 "ok" only while the data dir is usable, so Compose
// healthchecks reflect whether writes can succeed.
func (s *server) healthz(w http.ResponseWriter, r *http.Request) {
	if err := s.store.check(); err != nil {
		s.log.Error("health check failed", "err", err)
		http.Error(w, "data dir not usable", http.StatusServiceUnavailable)
		return
	}
	writeText(w, http.StatusOK, "ok")
}

// kv dispatches /kv/KEY by method after validating the key.
func (s *server) kv(w http.ResponseWriter, r *http.Request, key string) {
	if err := validateKey(key); err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	switch r.Method {
	case http.MethodGet, http.MethodHead:
		s.get(w, key)
	case http.MethodPut:
		s.put(w, r, key)
	case http.MethodDelete:
		s.del(w, key)
	default:
		w.Header().Set("Allow", "GET, HEAD, PUT, DELETE")
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
	}
}

// get writes the raw value bytes of key.
func (s *server) get(w http.ResponseWriter, key string) {
	val, err := s.store.get(key)
	if err != nil {
		s.fail(w, err)
		return
	}
	w.Header().Set("Content-Type", "application/octet-stream")
	w.Header().Set("Content-Length", strconv.Itoa(len(val)))
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write(val)
}

// put stores the request body under key and answers 204 once it is durable.
func (s *server) put(w http.ResponseWriter, r *http.Request, key string) {
	val, status, err := readValue(w, r)
	if err != nil {
		http.Error(w, err.Error(), status)
		return
	}
	if err := s.store.put(key, val); err != nil {
		s.fail(w, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

// readValue reads a request body of at most maxValueSize bytes, returning
// the HTTP status to answer with when it cannot.
func readValue(w http.ResponseWriter, r *http.Request) ([]byte, int, error) {
	tooLarge := errors.New("value too large: limit is 1 MiB")
	if r.ContentLength > maxValueSize {
		return nil, http.StatusRequestEntityTooLarge, tooLarge
	}
	val, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxValueSize))
	var maxErr *http.MaxBytesError
	if errors.As(err, &maxErr) {
		return nil, http.StatusRequestEntityTooLarge, tooLarge
	}
	if err != nil {
		return nil, http.StatusBadRequest, fmt.Errorf("read request body: %w", err)
	}
	return val, http.StatusOK, nil
}

// del removes key and answers 204.
func (s *server) del(w http.ResponseWriter, key string) {
	if err := s.store.del(key); err != nil {
		s.fail(w, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

// incr handles POST /incr/KEY and answers the new value as plain text.
func (s *server) incr(w http.ResponseWriter, r *http.Request, key string) {
	if err := validateKey(key); err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", "POST")
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
		return
	}
	n, err := s.store.incr(key)
	if err != nil {
		s.fail(w, err)
		return
	}
	writeText(w, http.StatusOK, strconv.FormatInt(n, 10))
}

// fail maps a store error to an HTTP answer. Client errors carry the
// one-line error text; server errors are logged and kept generic.
func (s *server) fail(w http.ResponseWriter, err error) {
	status := statusFor(err)
	if status == http.StatusInternalServerError {
		s.log.Error("request failed", "err", err)
		http.Error(w, "internal error (see server log)", status)
		return
	}
	http.Error(w, err.Error(), status)
}

// statusFor returns the HTTP status code matching a store error.
func statusFor(err error) int {
	switch {
	case errors.Is(err, errBadKey):
		return http.StatusBadRequest
	case errors.Is(err, errNotFound):
		return http.StatusNotFound
	case errors.Is(err, errNotInteger), errors.Is(err, errOverflow):
		return http.StatusConflict
	}
	return http.StatusInternalServerError
}

// writeText answers body as text/plain with the given status.
func writeText(w http.ResponseWriter, status int, body string) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.WriteHeader(status)
	_, _ = io.WriteString(w, body)
}
