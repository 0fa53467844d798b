package agentapi

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"time"
)

// Volume steps, as progress reports name them.
const (
	StepPreCopy = "precopy" // rounds to the target while the volume may be in use
	StepFinal   = "final"   // the last round, once nothing writes
	StepCommit  = "commit"  // the target verifies its copy and switches it in
	StepDetach  = "detach"  // unmounted on the old owner
	StepAttach  = "attach"  // mounted (or found) on the new owner
	StepCleanup = "cleanup" // the old owner's copy removed
)

// VolumeProgress is how far a volume step has got, for people to watch.
type VolumeProgress struct {
	Volume      string  `json:"volume"`
	Host        string  `json:"host,omitempty"`   // the host doing the step
	Target      string  `json:"target,omitempty"` // where the data goes
	Step        string  `json:"step"`
	Round       int     `json:"round,omitempty"`
	Phase       string  `json:"phase,omitempty"` // within a round: listing, sending, resending, done
	Files       int     `json:"files,omitempty"`
	FilesTotal  int     `json:"files_total,omitempty"`
	Bytes       int64   `json:"bytes,omitempty"`       // source bytes gone through
	BytesTotal  int64   `json:"bytes_total,omitempty"` // source bytes
	BytesSent   int64   `json:"bytes_sent,omitempty"`  // bytes sent in this round
	BytesPerSec float64 `json:"bytes_per_sec,omitempty"`
}

// SyncRequest asks the agent holding a copy volume to bring target's copy
// up to date (POST /v1/volumes/{name}/sync). Without Final it runs
// pre-copy rounds, the volume may be in use, until one sends little (or a
// few ran) and the target flushes its copy; with Final it refuses while a
// container here mounts the volume, runs one last round and has the
// target verify and switch its copy in.
type SyncRequest struct {
	Target     string `json:"target"` // the target agent's API (https://addr:port)
	TargetHost string `json:"target_host"`
	Final      bool   `json:"final,omitempty"`
}

// SyncResult sums up a sync.
type SyncResult struct {
	Rounds    int   `json:"rounds"`
	Files     int   `json:"files"`
	Bytes     int64 `json:"bytes"`              // the volume's size
	BytesSent int64 `json:"bytes_sent"`         // over every round
	Resent    int   `json:"resent,omitempty"`   // chunks resent after a checksum mismatch
	FlushMS   int64 `json:"flush_ms,omitempty"` // pre-copy: making the target's copy durable
}

// SyncEvent is one line of a sync's answer: progress, then a result or
// an error.
type SyncEvent struct {
	Progress *VolumeProgress `json:"progress,omitempty"`
	Result   *SyncResult     `json:"result,omitempty"`
	Error    string          `json:"error,omitempty"`
	Status   int             `json:"status,omitempty"` // with Error: the HTTP status that goes with it
}

// LocalRequest asks an agent to attach or detach a volume on its host
// (POST /v1/volumes/{name}/attach, /detach).
type LocalRequest struct {
	Backend    string `json:"backend"`
	Generation uint64 `json:"generation"`
	SizeBytes  int64  `json:"size_bytes,omitempty"`
}

// Sync runs a sync on the agent holding the volume, calling progress (if
// not nil) with its reports.
func (c *Client) Sync(ctx context.Context, name string, req SyncRequest, progress func(VolumeProgress)) (*SyncResult, error) {
	resp, err := c.send(ctx, c.stream, http.MethodPost, "/v1/volumes/"+url.PathEscape(name)+"/sync", req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	return readSync(resp.Body, progress)
}

// readSync reads a sync's answer up to its result or error.
func readSync(r io.Reader, progress func(VolumeProgress)) (*SyncResult, error) {
	dec := json.NewDecoder(r)
	for {
		var ev SyncEvent
		if err := dec.Decode(&ev); err != nil {
			if errors.Is(err, io.EOF) {
				err = io.ErrUnexpectedEOF
			}
			return nil, fmt.Errorf("sync answer broke off: %w", err)
		}
		switch {
		case ev.Error != "":
			return nil, &Error{Code: ev.Status, Message: ev.Error}
		case ev.Result != nil:
			return ev.Result, nil
		case ev.Progress != nil && progress != nil:
			progress(*ev.Progress)
		}
	}
}

// AttachVolume makes the volume's data available on the agent's host
// (mounts a block volume's image; finds a copy volume's directory).
func (c *Client) AttachVolume(ctx context.Context, name string, req LocalRequest) error {
	return c.do(ctx, http.MethodPost, "/v1/volumes/"+url.PathEscape(name)+"/attach", req, nil)
}

// DetachVolume makes the volume unused on the agent's host (unmounts a
// block volume's image); refused while a container there mounts it.
func (c *Client) DetachVolume(ctx context.Context, name string, req LocalRequest) error {
	return c.do(ctx, http.MethodPost, "/v1/volumes/"+url.PathEscape(name)+"/detach", req, nil)
}

// streamTimeout bounds a streamed answer's silence, not its length: a
// sync reports progress at least every few seconds.
const streamTimeout = 2 * time.Minute
