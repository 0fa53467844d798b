// Package volume is the agent's side of cluster volumes: the clustervol
// Docker volume plugin that the host's dockerd calls, and the local work
// of each backend. The managers hold every volume's lease in the store;
// the driver asks for the lease before it mounts, so a host that does not
// hold it cannot mount the volume, and Docker's error says who holds it.
package volume

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"path/filepath"
	"slices"
	"sync"
	"time"

	plugin "github.com/docker/go-plugins-helpers/volume"

	"github.com/clusterctl/clusterctl/agent/volume/transfer"
	"github.com/clusterctl/clusterctl/api"
	"github.com/clusterctl/clusterctl/store"
	"github.com/clusterctl/clusterctl/transport"
	"github.com/clusterctl/clusterctl/volumes"
)

// DriverName is the plugin's name: Docker finds it as
// /run/docker/plugins/clustervol.sock.
const DriverName = "clustervol"

// callTimeout bounds one plugin call's work: Docker waits for it.
const callTimeout = 2 * time.Minute

// Cluster is what the driver needs of the managers (api.Client).
type Cluster interface {
	CreateVolume(ctx context.Context, req api.VolumeCreate) (*api.Volume, error)
	Volume(ctx context.Context, name string) (*api.Volume, error)
	Volumes(ctx context.Context) (*api.VolumesResponse, error)
	AttachVolume(ctx context.Context, name, host string) (*api.Volume, error)
	RemoveVolume(ctx context.Context, name string) error
}

// Config is where the driver keeps things.
type Config struct {
	Host      string           // this host's name in the cluster
	DataDir   string           // volumes' local data and mountpoints: DataDir/NAME/data
	SharedDir string           // block volumes' images, reached by every host
	Creds     *transport.Creds // this host's, for sending volumes to others
	Log       *slog.Logger
}

// Driver serves Docker's volume plugin protocol.
type Driver struct {
	cfg     Config
	cluster Cluster
	mounts  *mountTable
	// mu serializes local work per driver: plugin calls are rare, and a
	// volume must not be attached and removed at once. It is never held
	// while calling the managers, which may call this agent back.
	mu sync.Mutex

	send *transfer.Sender   // copy volumes' moves to other hosts
	recv *transfer.Receiver // and from them
}

var _ plugin.Driver = (*Driver)(nil)

// NewDriver returns a driver, loading the mounts an earlier run recorded.
func NewDriver(cfg Config, cluster Cluster) (*Driver, error) {
	if cfg.Log == nil {
		cfg.Log = slog.New(slog.DiscardHandler)
	}
	mt, err := loadMounts(filepath.Join(cfg.DataDir, "mounts.json"))
	if err != nil {
		return nil, err
	}
	d := &Driver{cfg: cfg, cluster: cluster, mounts: mt}
	d.send, d.recv = d.newSender(), d.newReceiver()
	return d, nil
}

// Serve answers Docker's plugin calls on l until l is closed.
func (d *Driver) Serve(l net.Listener) error {
	err := plugin.NewHandler(d).Serve(l)
	if errors.Is(err, net.ErrClosed) || errors.Is(err, http.ErrServerClosed) {
		return nil
	}
	return err
}

// path is where Docker mounts a volume from on this host.
func (d *Driver) path(name string) string { return filepath.Join(d.cfg.DataDir, name, "data") }

func callContext() (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.Background(), callTimeout)
}

// Create records the volume in the cluster (or finds it, same options):
// `docker volume create -d clustervol`, Compose's driver: clustervol.
func (d *Driver) Create(req *plugin.CreateRequest) error {
	if err := volumes.ValidateName(req.Name); err != nil {
		return err
	}
	ctx, cancel := callContext()
	defer cancel()
	if _, err := d.cluster.CreateVolume(ctx, api.VolumeCreate{Name: req.Name, Options: req.Options}); err != nil {
		return fmt.Errorf("create volume %s: %w", req.Name, err)
	}
	return nil
}

// List lists the cluster's volumes, with a mountpoint for those attached
// here.
func (d *Driver) List() (*plugin.ListResponse, error) {
	ctx, cancel := callContext()
	defer cancel()
	resp, err := d.cluster.Volumes(ctx)
	if err != nil {
		return nil, fmt.Errorf("list volumes: %w", err)
	}
	out := &plugin.ListResponse{}
	for _, v := range resp.Volumes {
		out.Volumes = append(out.Volumes, d.pluginVolume(v))
	}
	return out, nil
}

// Get describes one volume; its status says where it is attached.
func (d *Driver) Get(req *plugin.GetRequest) (*plugin.GetResponse, error) {
	if err := volumes.ValidateName(req.Name); err != nil {
		return nil, err
	}
	ctx, cancel := callContext()
	defer cancel()
	v, err := d.cluster.Volume(ctx, req.Name)
	if err != nil {
		return nil, fmt.Errorf("volume %s: %w", req.Name, err)
	}
	return &plugin.GetResponse{Volume: d.pluginVolume(*v)}, nil
}

// pluginVolume is a volume as Docker sees it from this host.
func (d *Driver) pluginVolume(v api.Volume) *plugin.Volume {
	pv := &plugin.Volume{Name: v.Name, Status: map[string]any{
		"backend": v.Backend, "owner": v.Owner, "generation": v.Generation,
	}}
	if v.Owner == d.cfg.Host {
		pv.Mountpoint = d.path(v.Name)
	}
	return pv
}

// Remove removes the volume from the cluster with its data. Docker
// refuses first if a container on this host uses it; the managers refuse
// if one elsewhere does. A volume already gone is removed.
func (d *Driver) Remove(req *plugin.RemoveRequest) error {
	if err := volumes.ValidateName(req.Name); err != nil {
		return err
	}
	if err := d.notInUse(req.Name); err != nil {
		return err
	}
	ctx, cancel := callContext()
	defer cancel()
	err := d.cluster.RemoveVolume(ctx, req.Name)
	if err != nil && !api.IsNotFound(err) {
		return fmt.Errorf("remove volume %s: %w", req.Name, err)
	}
	return nil
}

// Path is where a mounted volume is, "" if it is not attached here.
func (d *Driver) Path(req *plugin.PathRequest) (*plugin.PathResponse, error) {
	if err := volumes.ValidateName(req.Name); err != nil {
		return nil, err
	}
	if d.mounts.count(req.Name) == 0 {
		return &plugin.PathResponse{}, nil
	}
	return &plugin.PathResponse{Mountpoint: d.path(req.Name)}, nil
}

// Mount takes the volume's lease for this host (refused, naming the
// holder, if another host has it), attaches it locally and records the
// mount ID, so that an agent restart still knows who uses the volume.
func (d *Driver) Mount(req *plugin.MountRequest) (*plugin.MountResponse, error) {
	if err := volumes.ValidateName(req.Name); err != nil {
		return nil, err
	}
	ctx, cancel := callContext()
	defer cancel()
	v, err := d.cluster.AttachVolume(ctx, req.Name, d.cfg.Host)
	if err != nil {
		return nil, fmt.Errorf("mount volume %s on %s: %w", req.Name, d.cfg.Host, err)
	}
	if err := d.attach(ctx, *v); err != nil {
		return nil, err
	}
	if err := d.mounts.add(req.Name, req.ID); err != nil {
		return nil, err
	}
	d.cfg.Log.Info("volume mounted", "volume", req.Name, "id", req.ID, "generation", v.Generation)
	return &plugin.MountResponse{Mountpoint: d.path(req.Name)}, nil
}

// attach does the backend's local attach under the driver's lock.
func (d *Driver) attach(ctx context.Context, v api.Volume) error {
	b, err := d.backendOf(v.Backend)
	if err != nil {
		return err
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	return b.attach(ctx, v, d.path(v.Name))
}

// Unmount forgets a mount ID. The volume stays attached to this host
// (its lease too) until it is moved or removed, like a disk left attached
// to a stopped machine.
func (d *Driver) Unmount(req *plugin.UnmountRequest) error {
	if err := volumes.ValidateName(req.Name); err != nil {
		return err
	}
	return d.mounts.remove(req.Name, req.ID)
}

// Capabilities says the volumes are the cluster's (global scope): Docker
// then does not expect them to be local to a host.
func (d *Driver) Capabilities() *plugin.CapabilitiesResponse {
	return &plugin.CapabilitiesResponse{Capabilities: plugin.Capability{Scope: "global"}}
}

// MountIDs returns the mount IDs of a volume on this host.
func (d *Driver) MountIDs(name string) []string { return d.mounts.ids(name) }

// RemoveLocal deletes a volume's local data (or image); it refuses while
// the volume is mounted here. The managers call it (through the agent's
// API) when the volume is removed.
func (d *Driver) RemoveLocal(ctx context.Context, name, backendName string) error {
	if err := volumes.ValidateName(name); err != nil {
		return err
	}
	if err := d.notInUse(name); err != nil {
		return err
	}
	b, err := d.backendOf(backendName)
	if err != nil {
		return err
	}
	if backendName == store.VolumeCopy {
		if err := d.recv.Forget(ctx, name); err != nil {
			return fmt.Errorf("volume %s: drop staging copy: %w", name, err)
		}
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	return b.remove(ctx, name, d.path(name))
}

// notInUse refuses, with an InUseError, a volume that containers here
// mount.
func (d *Driver) notInUse(name string) error {
	if n := d.mounts.count(name); n > 0 {
		return &InUseError{Volume: name, Host: d.cfg.Host, Mounts: n}
	}
	return nil
}

// InUseError refuses to take away a volume that containers here mount.
type InUseError struct {
	Volume, Host string
	Mounts       int
}

func (e *InUseError) Error() string {
	return fmt.Sprintf("volume %s is mounted by %d container(s) on %s", e.Volume, e.Mounts, e.Host)
}

// Restore re-attaches, after an agent restart (or a host boot), the
// volumes that recorded mounts say are in use here, so their containers
// find their data. A volume whose lease this host no longer holds is left
// alone and logged: its mounts are stale.
func (d *Driver) Restore(ctx context.Context) error {
	var errs []error
	for _, name := range d.mounts.names() {
		v, err := d.cluster.Volume(ctx, name)
		if err != nil {
			errs = append(errs, fmt.Errorf("restore volume %s: %w", name, err))
			continue
		}
		if v.Owner != d.cfg.Host {
			d.cfg.Log.Warn("recorded mounts of a volume this host no longer holds", "volume", name, "owner", v.Owner, "mounts", d.mounts.ids(name))
			continue
		}
		if err := d.attach(ctx, *v); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// sortedKeys returns a map's keys in order.
func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}
