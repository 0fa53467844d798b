package server

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"time"

	"github.com/clusterctl/clusterctl/store"
)

// keepAlive is how often an idle event stream sends an empty line-object,
// so that clients and proxies see it is alive.
const keepAlive = 15 * time.Second

// handleEvents streams the store's changes after ?index=N as one JSON
// object per line, from this manager's replica, until the client goes.
func (s *Server) handleEvents(w http.ResponseWriter, r *http.Request) {
	since, err := parseIndex(r.URL.Query().Get("index"))
	if err != nil {
		writeError(w, http.StatusBadRequest, err)
		return
	}
	flusher, ok := w.(http.Flusher)
	if !ok {
		writeError(w, http.StatusInternalServerError, errors.New("streaming not supported"))
		return
	}
	events, changed, err := s.store.Events(since)
	if errors.Is(err, store.ErrEventsTruncated) {
		writeError(w, http.StatusGone, fmt.Errorf("events after index %d are no longer kept: list the state again and follow from its index", since))
		return
	}
	w.Header().Set("Content-Type", "application/x-ndjson")
	w.WriteHeader(http.StatusOK)
	enc := json.NewEncoder(w)
	for {
		for _, ev := range events {
			if err := enc.Encode(ev); err != nil {
				return
			}
			since = ev.Index
		}
		flusher.Flush()
		select {
		case <-r.Context().Done():
			return
		case <-s.stopped:
			return
		case <-changed:
		case <-time.After(keepAlive):
			_, _ = w.Write([]byte("{}\n"))
		}
		if events, changed, err = s.store.Events(since); err != nil {
			return // truncated while streaming: the client reconnects and gets 410
		}
	}
}

func parseIndex(s string) (uint64, error) {
	if s == "" {
		return 0, nil
	}
	n, err := strconv.ParseUint(s, 10, 64)
	if err != nil {
		return 0, fmt.Errorf("index %q is not a number", s)
	}
	return n, nil
}
