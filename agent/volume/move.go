package volume

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"time"

	"github.com/clusterctl/clusterctl/agent/volume/transfer"
	"github.com/clusterctl/clusterctl/agentapi"
	"github.com/clusterctl/clusterctl/api"
	"github.com/clusterctl/clusterctl/volumes"
)

// Pre-copy stops once a round sends at most smallDelta (or maxRounds
// ran): the final round, with the writer stopped, then has little left to
// send.
const (
	smallDelta = 16 << 20
	maxRounds  = 6
)

// transferIdle is how long a transfer connection may stay silent before
// the sender gives up on the target (cut off, or gone).
const transferIdle = 20 * time.Second

// Receiver is the target side of copy-volume moves, to serve on the data
// port.
func (d *Driver) Receiver() *transfer.Receiver { return d.recv }

// newReceiver puts staging copies next to the live data directory, on the
// same file system, so that the switch-in is a rename.
func (d *Driver) newReceiver() *transfer.Receiver {
	return &transfer.Receiver{Log: d.cfg.Log, Dirs: func(name string) (string, string, error) {
		if err := volumes.ValidateName(name); err != nil {
			return "", "", err
		}
		if err := d.notInUse(name); err != nil {
			return "", "", err // never replace data under a container that uses it
		}
		return filepath.Join(d.cfg.DataDir, name, "staging"), d.path(name), nil
	}}
}

// newSender sends copy volumes to other hosts' receivers, over
// connections that give up on a target silent for transferIdle.
func (d *Driver) newSender() *transfer.Sender {
	s := transfer.NewSender(d.cfg.Creds.BulkClient(transferIdle))
	s.Log = d.cfg.Log
	return s
}

// SyncError is a sync that failed, with the HTTP status that says why
// (409: in use here, 507: the target's disk is full, 502: the target
// failed or could not be reached).
type SyncError struct {
	Status int
	Err    error
}

func (e *SyncError) Error() string { return e.Err.Error() }
func (e *SyncError) Unwrap() error { return e.Err }

// Sync brings the target's copy of a copy volume up to date (see
// agentapi.SyncRequest). This host must hold the data: the managers ask
// only the lease holder. The source directory is only ever read.
func (d *Driver) Sync(ctx context.Context, name string, req agentapi.SyncRequest, progress func(agentapi.VolumeProgress)) (*agentapi.SyncResult, error) {
	if err := volumes.ValidateName(name); err != nil {
		return nil, &SyncError{Status: http.StatusBadRequest, Err: err}
	}
	src := d.path(name)
	if _, err := os.Stat(src); err != nil {
		return nil, &SyncError{Status: http.StatusConflict, Err: fmt.Errorf("volume %s: its data is not on %s", name, d.cfg.Host)}
	}
	if req.Final {
		if err := d.notInUse(name); err != nil {
			return nil, &SyncError{Status: http.StatusConflict, Err: fmt.Errorf("%w: stop them before the final sync", err)}
		}
	}
	start := time.Now()
	res := &agentapi.SyncResult{}
	step := agentapi.StepPreCopy
	if req.Final {
		step = agentapi.StepFinal
	}
	report := func(p transfer.Progress) {
		if progress != nil {
			progress(agentapi.VolumeProgress{
				Volume: name, Host: d.cfg.Host, Target: req.TargetHost, Step: step, Round: p.Round, Phase: p.Phase,
				Files: p.Files, FilesTotal: p.FilesTotal, Bytes: p.Bytes, BytesTotal: p.BytesTotal,
				BytesSent: p.BytesSent, BytesPerSec: p.BytesPerSec,
			})
		}
	}
	if err := d.rounds(ctx, name, req, report, res); err != nil {
		return nil, syncFailure(name, req.TargetHost, err)
	}
	if !req.Final {
		// Durability is paid now, while the volume may still be in use,
		// not by the final sync, which runs while its writer is stopped.
		t := time.Now()
		if err := d.send.Flush(ctx, req.Target, name); err != nil {
			return nil, syncFailure(name, req.TargetHost, err)
		}
		res.FlushMS = time.Since(t).Milliseconds()
	} else {
		if progress != nil {
			progress(agentapi.VolumeProgress{Volume: name, Host: d.cfg.Host, Target: req.TargetHost, Step: agentapi.StepCommit})
		}
		if err := d.send.Commit(ctx, req.Target, name, src); err != nil {
			return nil, syncFailure(name, req.TargetHost, err)
		}
	}
	d.cfg.Log.Info("volume synced", "volume", name, "target", req.TargetHost, "final", req.Final,
		"rounds", res.Rounds, "bytes_sent", res.BytesSent, "took", time.Since(start))
	return res, nil
}

// rounds runs the rounds a sync asks for, adding them up in res: one when
// final, otherwise until one sends little enough.
func (d *Driver) rounds(ctx context.Context, name string, req agentapi.SyncRequest, report func(transfer.Progress), res *agentapi.SyncResult) error {
	rounds := maxRounds
	if req.Final {
		rounds = 1
	}
	for range rounds {
		st, err := d.send.Round(ctx, req.Target, name, d.path(name), report)
		if err != nil {
			return err
		}
		res.Rounds++
		res.Files, res.Bytes = st.Files, st.Bytes
		res.BytesSent += st.BytesSent
		res.Resent += st.Resent
		if st.BytesSent <= smallDelta {
			break
		}
	}
	return nil
}

// syncFailure wraps a transfer error with what it means for the caller.
func syncFailure(name, target string, err error) error {
	status := http.StatusBadGateway
	var re *transfer.RemoteError
	switch {
	case errors.Is(err, transfer.ErrTargetFull):
		status = http.StatusInsufficientStorage
	case errors.As(err, &re) && re.Status == http.StatusConflict:
		status = http.StatusConflict
	case errors.Is(err, context.Canceled):
		status = http.StatusServiceUnavailable
	}
	return &SyncError{Status: status, Err: fmt.Errorf("sync volume %s to %s: %w", name, target, err)}
}

// AttachLocal makes a volume's data available on this host, as a mount
// would, without a container: the managers call it when they hand the
// volume to this host.
func (d *Driver) AttachLocal(ctx context.Context, name string, req agentapi.LocalRequest) error {
	if err := volumes.ValidateName(name); err != nil {
		return err
	}
	return d.attach(ctx, api.Volume{Name: name, Backend: req.Backend, Generation: req.Generation, SizeBytes: req.SizeBytes})
}

// DetachLocal makes a volume unused on this host (a block volume's image
// unmounted and its loop device released); refused while a container here
// mounts it.
func (d *Driver) DetachLocal(ctx context.Context, name string, req agentapi.LocalRequest) error {
	if err := volumes.ValidateName(name); err != nil {
		return err
	}
	if err := d.notInUse(name); err != nil {
		return err
	}
	b, err := d.backendOf(req.Backend)
	if err != nil {
		return err
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	return b.detach(ctx, name, d.path(name))
}
