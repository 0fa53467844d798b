package volumes

import (
	"context"
	"fmt"
	"log/slog"
	"slices"
	"time"

	"github.com/clusterctl/clusterctl/agentapi"
	"github.com/clusterctl/clusterctl/api"
	"github.com/clusterctl/clusterctl/store"
	"github.com/clusterctl/clusterctl/transport"
)

// conflictRetries bounds how often an operation re-reads the store and
// tries again when a concurrent change made its batch fail its Check.
const conflictRetries = 5

// Manager runs on the leader and changes volumes through Raft.
type Manager struct {
	store *store.Store
	apply func([]byte) (uint64, error)
	agent func(base string) *agentapi.Client
	log   *slog.Logger
	now   func() time.Time
}

// New returns a manager that reads st, commits encoded commands with apply
// (on the leader) and calls agents as the manager creds name.
func New(st *store.Store, apply func([]byte) (uint64, error), creds *transport.Creds, log *slog.Logger) *Manager {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Manager{
		store: st, apply: apply, log: log, now: time.Now,
		agent: func(base string) *agentapi.Client { return agentapi.NewClient(base, creds) },
	}
}

// Create records a new volume, detached. A volume that exists with the
// same options is returned as it is: Docker creates a global volume on
// every host that uses it.
func (m *Manager) Create(req api.VolumeCreate) (store.Volume, error) {
	if err := ValidateName(req.Name); err != nil {
		return store.Volume{}, err
	}
	opts, err := ParseOptions(req.Options)
	if err != nil {
		return store.Volume{}, err
	}
	return m.retry(req.Name, func(v *store.View) (store.Volume, []byte, error) {
		if old, ok := v.Volume(req.Name); ok {
			if !sameOptions(old, req.Options) {
				return old, nil, store.Refuse(store.ErrConflict, "volume %s exists with other options (%s)", req.Name, describe(old))
			}
			return old, nil, nil
		}
		vol := store.Volume{Name: req.Name, Backend: opts.Backend, SizeBytes: opts.SizeBytes, Options: req.Options, Created: m.now().UTC()}
		return vol, m.putChecked(vol, 0), nil
	})
}

// Attach gives host the volume's lease with a new generation; a host that
// holds it already keeps it. A lease held by another host is refused: it
// changes hands only by a move (or, for a block volume, a detach). A copy
// volume's first attach decides where its data lives.
func (m *Manager) Attach(name, host string) (store.Volume, error) {
	return m.change(name, func(v *store.View, vol *store.Volume) (bool, error) {
		if h, ok := v.Host(host); !ok || h.State != store.HostUp {
			return false, store.Refuse(store.ErrInvalid, "host %q is not an up host of the cluster", host)
		}
		if vol.MovingTo != "" {
			return false, store.Refuse(store.ErrConflict, "volume %s is being moved from %s to %s: mount it there once the move ends", name, vol.OwnerHost, vol.MovingTo)
		}
		if vol.OwnerHost == host {
			return false, nil
		}
		if vol.OwnerHost != "" {
			return false, store.Refuse(store.ErrConflict, "volume %s is attached to %s (lease generation %d)", name, vol.OwnerHost, vol.Generation)
		}
		vol.OwnerHost, vol.Generation = host, vol.Generation+1
		return true, nil
	})
}

// change reads the volume and lets f change it (f returns false for no
// change), then commits it checked against the index it read, so that a
// concurrent change makes it read and decide again: two racing changes
// cannot both win.
func (m *Manager) change(name string, f func(v *store.View, vol *store.Volume) (bool, error)) (store.Volume, error) {
	return m.retry(name, func(v *store.View) (store.Volume, []byte, error) {
		vol, ok := v.Volume(name)
		if !ok {
			return vol, nil, store.Refuse(store.ErrNotFound, "no volume %q", name)
		}
		index := vol.ModifyIndex
		changed, err := f(v, &vol)
		if err != nil || !changed {
			return vol, nil, err
		}
		return vol, m.putChecked(vol, index), nil
	})
}

// Remove deletes a volume and its data: the host holding its data (or, for
// a detached block volume, any up host, which all reach the image) deletes
// it first, and the record goes only once that succeeded.
func (m *Manager) Remove(ctx context.Context, name string) error {
	v := m.store.View()
	vol, ok := v.Volume(name)
	if !ok {
		return store.Refuse(store.ErrNotFound, "no volume %q", name)
	}
	if users := UsedBy(v, name); len(users) > 0 {
		return store.Refuse(store.ErrConflict, "volume %s is in use by %s", name, users[0])
	}
	if err := m.removeData(ctx, v, vol); err != nil {
		return err
	}
	_, err := m.retry(name, func(v *store.View) (store.Volume, []byte, error) {
		cur, ok := v.Volume(name)
		if !ok {
			return cur, nil, nil
		}
		batch, err := batch(check(name, cur.ModifyIndex), encode(store.CmdDeleteVolume, store.NameRef{Name: name}))
		return cur, batch, err
	})
	return err
}

// removeData asks the agent that can reach the volume's data to delete it.
func (m *Manager) removeData(ctx context.Context, v *store.View, vol store.Volume) error {
	host, err := dataHost(v, vol)
	if err != nil || host == nil {
		return err
	}
	if err := m.agent(host.AgentAPI).RemoveVolume(ctx, vol.Name, vol.Backend); err != nil {
		if agentapi.IsConflict(err) {
			return store.Refuse(store.ErrConflict, "remove volume %s on %s: %v", vol.Name, host.Name, err)
		}
		return fmt.Errorf("remove volume %s on %s: %w", vol.Name, host.Name, err)
	}
	if vol.Backend == store.VolumeCopy {
		m.removeStrayCopies(ctx, v, vol.Name, host.Name)
	}
	return nil
}

// removeStrayCopies removes what other hosts keep of a removed copy
// volume: a staging copy left by a move that failed, an old copy kept by
// a move with --keep. Best effort: a host that is down keeps its copy.
func (m *Manager) removeStrayCopies(ctx context.Context, v *store.View, name, owner string) {
	for _, h := range v.Hosts() {
		if h.Name == owner || h.State != store.HostUp || h.AgentAPI == "" {
			continue
		}
		if err := m.agent(h.AgentAPI).RemoveVolume(ctx, name, store.VolumeCopy); err != nil {
			m.log.Warn("remove a stray copy of a removed volume", "volume", name, "host", h.Name, "err", err)
		}
	}
}

// dataHost is the host whose agent can delete a volume's data, nil if the
// volume has none yet (a copy volume never attached).
func dataHost(v *store.View, vol store.Volume) (*store.Host, error) {
	if vol.OwnerHost != "" {
		h, ok := v.Host(vol.OwnerHost)
		if !ok || h.State != store.HostUp || h.AgentAPI == "" {
			return nil, store.Refuse(store.ErrConflict, "volume %s: its host %s is down, so its data cannot be removed now; try again when it is up", vol.Name, vol.OwnerHost)
		}
		return &h, nil
	}
	if vol.Backend == store.VolumeCopy {
		return nil, nil
	}
	for _, h := range v.Hosts() {
		if h.State == store.HostUp && h.AgentAPI != "" {
			return &h, nil
		}
	}
	return nil, store.Refuse(store.ErrConflict, "volume %s: no host is up to remove its image", vol.Name)
}

// retry reads a view, lets decide return the volume and the batch to
// commit (nil: nothing to commit), commits it and tries again from a new
// view when a concurrent change made the batch's Check fail.
func (m *Manager) retry(name string, decide func(*store.View) (store.Volume, []byte, error)) (store.Volume, error) {
	var vol store.Volume
	index, err := store.Retry(m.store, m.apply, conflictRetries, "volume "+name, func(v *store.View) ([]byte, error) {
		var data []byte
		var err error
		vol, data, err = decide(v)
		return data, err
	})
	if index != 0 {
		vol.ModifyIndex = index
	}
	return vol, err
}

// putChecked encodes [Check the volume's index, PutVolume vol].
func (m *Manager) putChecked(vol store.Volume, index uint64) []byte {
	data, err := batch(check(vol.Name, index), encode(store.CmdPutVolume, vol))
	if err != nil {
		panic(fmt.Sprintf("volumes: encode: %v", err)) // plain structs: a bug
	}
	return data
}

func check(name string, index uint64) []byte {
	return encode(store.CmdCheck, store.Check{Volumes: map[string]uint64{name: index}})
}

func encode(t store.CommandType, payload any) []byte { return store.MustEncode(t, payload) }

func batch(cmds ...[]byte) ([]byte, error) { return store.EncodeBatch(cmds...) }

// describe names a volume's backend and size for messages.
func describe(v store.Volume) string {
	if v.Backend == store.VolumeBlock {
		return fmt.Sprintf("backend block, size %d bytes", v.SizeBytes)
	}
	return "backend " + v.Backend
}

// UsedBy lists the containers that mount a volume, as host/container,
// from the hosts' reports.
func UsedBy(v *store.View, name string) []string {
	var out []string
	for _, h := range v.Hosts() {
		for _, c := range h.Containers {
			if slices.Contains(c.Volumes, name) {
				out = append(out, h.Name+"/"+c.Name)
			}
		}
	}
	return out
}

// RunningUsers lists the running containers that mount a volume, as
// host/container. A stopped container keeps its mounts in its
// configuration but does not use the data: Docker unmounted it.
func RunningUsers(v *store.View, name string) []string { return runningUsers(v, name, false) }

// runningUsers is RunningUsers, leaving out hosts that are down if
// upOnly: what a down host last reported is not running anymore as far
// as a takeover of its block volume goes (the new generation fences it).
func runningUsers(v *store.View, name string, upOnly bool) []string {
	var out []string
	for _, h := range v.Hosts() {
		if upOnly && h.State != store.HostUp {
			continue
		}
		for _, c := range h.Containers {
			if c.State == "running" && slices.Contains(c.Volumes, name) {
				out = append(out, h.Name+"/"+c.Name)
			}
		}
	}
	return out
}

// AllBlock says whether every named volume is a block volume (true for
// none): its image is on shared storage, so its task can leave a host
// that is down.
func AllBlock(v *store.View, names []string) bool {
	for _, name := range names {
		if vol, ok := v.Volume(name); !ok || vol.Backend != store.VolumeBlock {
			return false
		}
	}
	return true
}

// Info is a volume as the API shows it.
func Info(v *store.View, vol store.Volume) api.Volume {
	return api.Volume{
		Name: vol.Name, Backend: vol.Backend, Owner: vol.OwnerHost, Generation: vol.Generation, MovingTo: vol.MovingTo,
		SizeBytes: vol.SizeBytes, Options: vol.Options, Created: vol.Created, UsedBy: UsedBy(v, vol.Name),
	}
}
