package spec

import (
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"

	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/mount"
	"github.com/docker/docker/api/types/network"
	"github.com/docker/docker/api/types/strslice"
	"github.com/docker/docker/api/types/volume"
	"github.com/docker/go-connections/nat"
)

// EnvHostName is set in every container to the name of the host it runs
// on, so an app can show where it is (the sample web app does).
const EnvHostName = "DOCKER_HOST_NAME"

// TaskRef is the task a container is created for: which one, on which
// host, running which version of its service.
type TaskRef struct {
	ID      string // the store.Task ID
	Slot    int    // 1-based
	Host    string // the host's name
	Version string // the Service.Version the task runs
}

// ContainerConfig is everything a host's Docker needs to create one task's
// container: the create call's arguments, then the networks to connect.
type ContainerConfig struct {
	Name    string
	Config  *container.Config
	Host    *container.HostConfig
	Network *network.NetworkingConfig // at most one endpoint: Docker API 1.41 (Docker 20.10) takes one network at create
	Connect []NetworkConnect          // the other networks, to connect after create and before start
}

// NetworkConnect is one network to connect a created container to.
type NetworkConnect struct {
	Network  string // the network's Docker name
	Endpoint *network.EndpointSettings
}

// Container builds the create config of s's container for task t, the
// same on every host, so a task moved elsewhere is the same container.
// Docker's own restart policy is "no": the managers restart containers by
// s.Restart, wherever the task then runs.
func (a App) Container(s Service, t TaskRef) (ContainerConfig, error) {
	cc := ContainerConfig{
		Name: ContainerName(a.Name, s, t.Slot),
		Config: &container.Config{
			Image:       s.Image,
			Cmd:         strslice.StrSlice(copySlice(s.Command)),
			Entrypoint:  strslice.StrSlice(copySlice(s.Entrypoint)),
			Env:         containerEnv(s.Environment, t.Host),
			Labels:      a.containerLabels(s, t),
			Hostname:    s.Hostname,
			Healthcheck: healthConfig(s.Healthcheck),
		},
		Host: &container.HostConfig{
			RestartPolicy: container.RestartPolicy{Name: container.RestartPolicyDisabled},
			Resources: container.Resources{
				NanoCPUs: int64(math.Round(s.Resources.LimitCPUs * 1e9)),
				Memory:   s.Resources.LimitMemoryBytes,
			},
		},
	}
	cc.Config.ExposedPorts, cc.Host.PortBindings = portBindings(s.Ports)
	var err error
	if cc.Host.Mounts, cc.Host.Binds, err = a.containerMounts(s); err != nil {
		return ContainerConfig{}, fmt.Errorf("service %s: %w", s.Name, err)
	}
	if cc.Host.VolumesFrom, err = a.volumesFrom(s, t.Slot); err != nil {
		return ContainerConfig{}, fmt.Errorf("service %s: %w", s.Name, err)
	}
	if err := a.containerNetworks(s, t.Slot, &cc); err != nil {
		return ContainerConfig{}, fmt.Errorf("service %s: %w", s.Name, err)
	}
	return cc, nil
}

// containerEnv is the service's environment plus the host's name, which
// replaces any value the file gave it: it is a fact about the placement.
func containerEnv(env []string, host string) []string {
	out := make([]string, 0, len(env)+1)
	for _, kv := range env {
		if !strings.HasPrefix(kv, EnvHostName+"=") {
			out = append(out, kv)
		}
	}
	return append(out, EnvHostName+"="+host)
}

// containerLabels are the service's labels plus Compose's and
// clusterctl's, which win: the managers find their containers by them.
func (a App) containerLabels(s Service, t TaskRef) map[string]string {
	l := make(map[string]string, len(s.Labels)+7)
	for k, v := range s.Labels {
		l[k] = v
	}
	l[LabelProject] = a.Name
	l[LabelService] = s.Name
	l[LabelNumber] = strconv.Itoa(t.Slot)
	l[LabelOneoff] = "False"
	l[LabelTask] = t.ID
	l[LabelVersion] = t.Version
	l[LabelManagedBy] = "true"
	return l
}

// healthConfig is Docker's form of a healthcheck; nil keeps the image's.
func healthConfig(h *Healthcheck) *container.HealthConfig {
	if h == nil {
		return nil
	}
	return &container.HealthConfig{
		Test:        copySlice(h.Test),
		Interval:    h.Interval,
		Timeout:     h.Timeout,
		StartPeriod: h.StartPeriod,
		Retries:     h.Retries,
	}
}

// portBindings exposes every target port and binds it; a published port
// of 0 is an empty HostPort, which lets Docker pick one.
func portBindings(ports []Port) (nat.PortSet, nat.PortMap) {
	if len(ports) == 0 {
		return nil, nil
	}
	set, bindings := nat.PortSet{}, nat.PortMap{}
	for _, p := range ports {
		port := nat.Port(strconv.Itoa(int(p.Target)) + "/" + p.Protocol)
		set[port] = struct{}{}
		b := nat.PortBinding{HostIP: p.HostIP}
		if p.Published != 0 {
			b.HostPort = strconv.Itoa(int(p.Published))
		}
		bindings[port] = append(bindings[port], b)
	}
	return set, bindings
}

// containerMounts maps s's mounts. Volumes use their Docker name, and
// their driver when not local, so a host that has not created the volume
// yet creates it with the right driver. Binds go in the legacy Binds list,
// as docker compose puts them: unlike a bind Mount, it creates a missing
// host directory, which a host the task just moved to often lacks (API
// 1.41 has no BindOptions.CreateMountpoint).
func (a App) containerMounts(s Service) ([]mount.Mount, []string, error) {
	var mounts []mount.Mount
	var binds []string
	for _, m := range s.Mounts {
		switch m.Type {
		case "volume":
			vm, err := a.volumeMount(m)
			if err != nil {
				return nil, nil, err
			}
			mounts = append(mounts, vm)
		case "bind":
			b := m.Source + ":" + m.Target
			if m.ReadOnly {
				b += ":ro"
			}
			binds = append(binds, b)
		case "tmpfs":
			mounts = append(mounts, mount.Mount{Type: mount.TypeTmpfs, Target: m.Target, ReadOnly: m.ReadOnly})
		default:
			return nil, nil, fmt.Errorf("mount %s: type %q: want volume, bind or tmpfs", m.Target, m.Type)
		}
	}
	return mounts, binds, nil
}

// volumeMount maps a volume mount; an anonymous one (no source) is
// Docker's anonymous volume, private to the container.
func (a App) volumeMount(m Mount) (mount.Mount, error) {
	out := mount.Mount{Type: mount.TypeVolume, Target: m.Target, ReadOnly: m.ReadOnly}
	if m.Source == "" {
		return out, nil
	}
	v, ok := a.Volume(m.Source)
	if !ok {
		return mount.Mount{}, fmt.Errorf("mount %s: undefined volume %s", m.Target, m.Source)
	}
	out.Source = v.DockerName
	if v.Driver != "" && v.Driver != defaultVolumeDriver {
		out.VolumeOptions = &mount.VolumeOptions{DriverConfig: &mount.Driver{Name: v.Driver}}
	}
	return out, nil
}

// volumesFrom names the containers s takes volumes from: a service's
// container of the same slot (the scheduler put it on this host), or a
// container: as given; a ":ro" or ":rw" mode is kept.
func (a App) volumesFrom(s Service, slot int) ([]string, error) {
	var out []string
	for _, vf := range s.VolumesFrom {
		name, mode, isService := volumesFromService(vf)
		if !isService {
			out = append(out, strings.TrimPrefix(vf, "container:"))
			continue
		}
		p, ok := a.Service(name)
		if !ok {
			return nil, fmt.Errorf("volumes_from %s: undefined service %s", vf, name)
		}
		ref := ContainerName(a.Name, p, slot)
		if mode != "" {
			ref += ":" + mode
		}
		out = append(out, ref)
	}
	return out, nil
}

// containerNetworks sets the network mode and endpoints. The container is
// created on its first network (Docker 20.10 takes one at create) and
// connected to the others before it starts.
func (a App) containerNetworks(s Service, slot int, cc *ContainerConfig) error {
	if x, ok := strings.CutPrefix(s.NetworkMode, "service:"); ok {
		p, ok := a.Service(x)
		if !ok {
			return fmt.Errorf("network_mode %s: undefined service %s", s.NetworkMode, x)
		}
		cc.Host.NetworkMode = container.NetworkMode("container:" + ContainerName(a.Name, p, slot))
		return nil
	}
	if s.NetworkMode != "" || len(s.Networks) == 0 {
		cc.Host.NetworkMode = container.NetworkMode(s.NetworkMode)
		return nil
	}
	for i, at := range s.Networks {
		n, ok := a.Network(at.Network)
		if !ok {
			return fmt.Errorf("undefined network %s", at.Network)
		}
		ep := endpoint(s, at)
		if i == 0 {
			cc.Host.NetworkMode = container.NetworkMode(n.DockerName)
			cc.Network = &network.NetworkingConfig{EndpointsConfig: map[string]*network.EndpointSettings{n.DockerName: ep}}
			continue
		}
		cc.Connect = append(cc.Connect, NetworkConnect{Network: n.DockerName, Endpoint: ep})
	}
	return nil
}

// endpoint is s's endpoint on one network: reachable by its service name
// and aliases, at its fixed address if it has one.
func endpoint(s Service, at Attachment) *network.EndpointSettings {
	ep := &network.EndpointSettings{Aliases: []string{s.Name}}
	for _, alias := range at.Aliases {
		if !slices.Contains(ep.Aliases, alias) {
			ep.Aliases = append(ep.Aliases, alias)
		}
	}
	if at.IPv4Address != "" {
		ep.IPAMConfig = &network.EndpointIPAMConfig{IPv4Address: at.IPv4Address}
	}
	return ep
}

// NetworkCreate is the create call for n on a host (the name to create it
// under is n.DockerName). The labels let any host's `docker network ls`
// and the managers tell whose network it is.
func (a App) NetworkCreate(n Network) network.CreateOptions {
	opts := network.CreateOptions{
		Driver:  n.Driver,
		Options: copyMap(n.DriverOpts),
		Labels:  a.objectLabels(n.Labels, LabelNetwork, n.Name),
	}
	if n.IPAM.Driver != "" || len(n.IPAM.Subnets) > 0 {
		opts.IPAM = &network.IPAM{Driver: n.IPAM.Driver}
		for _, sn := range n.IPAM.Subnets {
			opts.IPAM.Config = append(opts.IPAM.Config, network.IPAMConfig{Subnet: sn.Subnet, Gateway: sn.Gateway, IPRange: sn.IPRange})
		}
	}
	return opts
}

// VolumeCreate is the create call for v on a host, labelled like
// NetworkCreate's networks.
func (a App) VolumeCreate(v Volume) volume.CreateOptions {
	return volume.CreateOptions{
		Name:       v.DockerName,
		Driver:     v.Driver,
		DriverOpts: copyMap(v.DriverOpts),
		Labels:     a.objectLabels(v.Labels, LabelVolume, v.Name),
	}
}

// objectLabels are a network's or volume's labels plus the project's, its
// Compose key's and clusterctl's.
func (a App) objectLabels(own map[string]string, keyLabel, key string) map[string]string {
	l := make(map[string]string, len(own)+3)
	for k, v := range own {
		l[k] = v
	}
	l[LabelProject] = a.Name
	l[keyLabel] = key
	l[LabelManagedBy] = "true"
	return l
}
