package spec

import (
	"errors"
	"fmt"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/clusterctl/clusterctl/compose"
	"github.com/compose-spec/compose-go/v2/types"
)

// Default drivers, as Docker and Compose use them when none is named.
const (
	defaultVolumeDriver  = "local"
	defaultNetworkDriver = "bridge"
)

// FromCompose turns a loaded Compose project into the App clusterctl
// stores and deploys, and validates it, so every later step works on one
// checked meaning of the file instead of re-reading compose-go's types.
func FromCompose(app *compose.App) (App, error) {
	if app == nil || app.Project == nil {
		return App{}, errors.New("no compose project")
	}
	p := app.Project
	out := App{Name: p.Name}
	for _, name := range app.Order {
		svc, ok := p.Services[name]
		if !ok {
			return App{}, fmt.Errorf("service %s: in the dependency order but not in the project", name)
		}
		s, err := fromService(svc)
		if err != nil {
			return App{}, fmt.Errorf("service %s: %w", name, err)
		}
		out.Services = append(out.Services, s)
	}
	if len(out.Services) != len(p.Services) {
		return App{}, fmt.Errorf("app %s: the dependency order lists %d of %d services", p.Name, len(out.Services), len(p.Services))
	}
	for _, key := range sortedKeys(p.Networks) {
		out.Networks = append(out.Networks, fromNetwork(p.Name, key, p.Networks[key]))
	}
	for _, key := range sortedKeys(p.Volumes) {
		out.Volumes = append(out.Volumes, fromVolume(p.Name, key, p.Volumes[key]))
	}
	if err := out.Validate(); err != nil {
		return App{}, err
	}
	return out, nil
}

// fromService maps one Compose service, refusing what has no meaning
// for clusterctl (port ranges, unknown restart values, other mount types).
func fromService(svc types.ServiceConfig) (Service, error) {
	s := Service{
		Name:          svc.Name,
		Image:         svc.Image,
		Command:       command(svc.Command),
		Entrypoint:    entrypoint(svc.Entrypoint),
		Environment:   environment(svc.Environment),
		Labels:        copyMap(svc.Labels),
		Hostname:      svc.Hostname,
		ContainerName: svc.ContainerName,
		Networks:      attachments(svc.Networks),
		NetworkMode:   svc.NetworkMode,
		VolumesFrom:   copySlice(svc.VolumesFrom),
		DependsOn:     dependencies(svc.DependsOn),
		Healthcheck:   healthcheck(svc.HealthCheck),
		Replicas:      replicas(svc),
	}
	var err error
	if s.Ports, err = ports(svc.Ports); err != nil {
		return Service{}, err
	}
	if s.Mounts, err = mounts(svc.Volumes); err != nil {
		return Service{}, err
	}
	if s.Restart, err = restart(svc); err != nil {
		return Service{}, err
	}
	if d := svc.Deploy; d != nil {
		s.Constraints = copySlice(d.Placement.Constraints)
		for _, pref := range d.Placement.Preferences {
			s.Spread = append(s.Spread, pref.Spread)
		}
		s.Resources = resources(d.Resources)
	}
	return s, nil
}

// command keeps an explicit command; an empty one means the image's, as
// Docker can express no other meaning for an empty Cmd.
func command(c types.ShellCommand) []string {
	if len(c) == 0 {
		return nil
	}
	return copySlice(c)
}

// entrypoint keeps compose-go's distinction between no entrypoint (nil:
// the image's) and `entrypoint: []` or "" (non-nil, empty: clear the
// image's). The latter becomes [""], Docker's own reset marker, because an
// empty slice would not survive the store's JSON (omitempty).
func entrypoint(e types.ShellCommand) []string {
	switch {
	case e == nil:
		return nil
	case len(e) == 0:
		return []string{""}
	}
	return copySlice(e)
}

// environment returns "K=V" sorted. compose-go has already merged
// env_file under environment and resolved bare names from the shell; a
// nil value is a name that was not set anywhere, which Compose leaves out.
func environment(env types.MappingWithEquals) []string {
	var out []string
	for k, v := range env {
		if v != nil {
			out = append(out, k+"="+*v)
		}
	}
	sort.Strings(out)
	return out
}

// ports maps published ports one to one. Compose expands "8000-8001:8000-8001"
// into single ports itself; what is left as a range ("9000-9001:80": Docker
// picks one of them) cannot be reserved by the scheduler, so it is refused.
func ports(in []types.ServicePortConfig) ([]Port, error) {
	var out []Port
	for _, p := range in {
		if p.Target == 0 || p.Target > 65535 {
			return nil, fmt.Errorf("port target %d: want 1-65535", p.Target)
		}
		published, err := publishedPort(p.Published)
		if err != nil {
			return nil, fmt.Errorf("port %d: %w", p.Target, err)
		}
		proto := strings.ToLower(p.Protocol)
		if proto == "" {
			proto = "tcp"
		}
		out = append(out, Port{Target: uint16(p.Target), Published: published, Protocol: proto, HostIP: p.HostIP})
	}
	return out, nil
}

// publishedPort parses Compose's published field: "" (Docker picks) or
// one port number.
func publishedPort(s string) (uint16, error) {
	if s == "" {
		return 0, nil
	}
	if strings.Contains(s, "-") {
		return 0, fmt.Errorf("published range %s is not supported: publish one host port per entry", s)
	}
	n, err := strconv.ParseUint(s, 10, 16)
	if err != nil {
		return 0, fmt.Errorf("published port %q: want a number 0-65535", s)
	}
	return uint16(n), nil
}

// mounts maps service volumes. A volume mount keeps the top-level key
// (Source "" is an anonymous volume, private to each container); a bind
// keeps the absolute host path compose-go resolved.
func mounts(in []types.ServiceVolumeConfig) ([]Mount, error) {
	var out []Mount
	for _, v := range in {
		m := Mount{Type: v.Type, Source: v.Source, Target: v.Target, ReadOnly: v.ReadOnly}
		switch v.Type {
		case types.VolumeTypeVolume:
		case types.VolumeTypeBind:
			if !filepath.IsAbs(v.Source) {
				return nil, fmt.Errorf("bind mount %s: source %q is not an absolute path", v.Target, v.Source)
			}
		case types.VolumeTypeTmpfs:
			m.Source = ""
		default:
			return nil, fmt.Errorf("mount %s: type %s is not supported: want volume, bind or tmpfs", v.Target, v.Type)
		}
		out = append(out, m)
	}
	return out, nil
}

// attachments lists a service's networks sorted by name. List-form
// networks (`networks: [a, b]`) load as nil configs.
func attachments(in map[string]*types.ServiceNetworkConfig) []Attachment {
	var out []Attachment
	for _, name := range sortedKeys(in) {
		a := Attachment{Network: name}
		if cfg := in[name]; cfg != nil {
			a.Aliases = copySlice(cfg.Aliases)
			a.IPv4Address = cfg.Ipv4Address
		}
		out = append(out, a)
	}
	return out
}

// dependencies lists depends_on sorted by service, defaulting the
// condition to service_started as Compose does.
func dependencies(in types.DependsOnConfig) []Dependency {
	var out []Dependency
	for _, name := range sortedKeys(in) {
		cond := in[name].Condition
		if cond == "" {
			cond = ConditionStarted
		}
		out = append(out, Dependency{Service: name, Condition: cond})
	}
	return out
}

// healthcheck maps a healthcheck; a disabled one (disable: true or test
// ["NONE"]) is nil, so the managers never wait for a health status.
func healthcheck(h *types.HealthCheckConfig) *Healthcheck {
	if h == nil || h.Disable || (len(h.Test) > 0 && h.Test[0] == "NONE") {
		return nil
	}
	out := &Healthcheck{
		Test:        copySlice(h.Test),
		Interval:    duration(h.Interval),
		Timeout:     duration(h.Timeout),
		StartPeriod: duration(h.StartPeriod),
	}
	if h.Retries != nil {
		out.Retries = int(*h.Retries)
	}
	return out
}

func duration(d *types.Duration) time.Duration {
	if d == nil {
		return 0
	}
	return time.Duration(*d)
}

// replicas is deploy.replicas, else scale, else one.
func replicas(svc types.ServiceConfig) int {
	switch {
	case svc.Deploy != nil && svc.Deploy.Replicas != nil:
		return *svc.Deploy.Replicas
	case svc.Scale != nil:
		return *svc.Scale
	}
	return 1
}

// restart maps restart:, then lets deploy.restart_policy override it, as
// docker compose does.
func restart(svc types.ServiceConfig) (RestartPolicy, error) {
	rp, err := restartFlag(svc.Restart)
	if err != nil {
		return RestartPolicy{}, err
	}
	if svc.Deploy == nil || svc.Deploy.RestartPolicy == nil {
		return rp, nil
	}
	return deployRestart(svc.Deploy.RestartPolicy)
}

// restartFlag maps Compose's restart: no, always, unless-stopped,
// on-failure[:N]. unless-stopped differs from always only after a manual
// `docker stop`, which the managers do not model: both restart any exit.
func restartFlag(s string) (RestartPolicy, error) {
	name, max, hasMax := strings.Cut(s, ":")
	if hasMax && name != "on-failure" {
		return RestartPolicy{}, fmt.Errorf("restart %q: want no, always, unless-stopped or on-failure[:N]", s)
	}
	switch name {
	case "", "no":
		return RestartPolicy{Condition: RestartNever}, nil
	case "always", "unless-stopped":
		return RestartPolicy{Condition: RestartAlways}, nil
	case "on-failure":
		rp := RestartPolicy{Condition: RestartOnFailure}
		if hasMax {
			n, err := strconv.Atoi(max)
			if err != nil || n < 0 {
				return RestartPolicy{}, fmt.Errorf("restart %q: max attempts must be a number >= 0", s)
			}
			rp.MaxAttempts = n
		}
		return rp, nil
	}
	return RestartPolicy{}, fmt.Errorf("restart %q: want no, always, unless-stopped or on-failure[:N]", s)
}

// deployRestart maps deploy.restart_policy; its condition defaults to any,
// as the Compose specification says. Docker's spellings are accepted too.
func deployRestart(p *types.RestartPolicy) (RestartPolicy, error) {
	var rp RestartPolicy
	switch p.Condition {
	case "", "any", "always", "unless-stopped":
		rp.Condition = RestartAlways
	case "none", "no":
		rp.Condition = RestartNever
	case "on-failure":
		rp.Condition = RestartOnFailure
	default:
		return RestartPolicy{}, fmt.Errorf("deploy.restart_policy.condition %q: want none, on-failure or any", p.Condition)
	}
	if p.MaxAttempts != nil {
		rp.MaxAttempts = int(*p.MaxAttempts)
	}
	rp.Delay = duration(p.Delay)
	return rp, nil
}

// resources maps deploy.resources limits and reservations.
func resources(r types.Resources) Resources {
	var out Resources
	if l := r.Limits; l != nil {
		out.LimitCPUs = cpus(l.NanoCPUs)
		out.LimitMemoryBytes = int64(l.MemoryBytes)
	}
	if rv := r.Reservations; rv != nil {
		out.ReserveCPUs = cpus(rv.NanoCPUs)
		out.ReserveMemoryBytes = int64(rv.MemoryBytes)
	}
	return out
}

// cpus widens compose-go's float32 through its shortest decimal form, so
// "0.1" is 0.1 and not 0.10000000149011612.
func cpus(c types.NanoCPUs) float64 {
	f, _ := strconv.ParseFloat(strconv.FormatFloat(float64(c), 'g', -1, 32), 64)
	return f
}

// fromNetwork maps a top-level network. compose-go has computed its
// Docker name (project_key, or name:), including the implicit "default"
// network it adds for services that name none.
func fromNetwork(project, key string, n types.NetworkConfig) Network {
	out := Network{
		Name:       key,
		DockerName: n.Name,
		Driver:     n.Driver,
		DriverOpts: copyMap(n.DriverOpts),
		IPAM:       IPAM{Driver: n.Ipam.Driver},
		External:   bool(n.External),
		Labels:     copyMap(n.Labels),
	}
	if out.DockerName == "" {
		out.DockerName = project + "_" + key
	}
	if out.Driver == "" && !out.External {
		out.Driver = defaultNetworkDriver
	}
	for _, pool := range n.Ipam.Config {
		if pool != nil {
			out.IPAM.Subnets = append(out.IPAM.Subnets, Subnet{Subnet: pool.Subnet, Gateway: pool.Gateway, IPRange: pool.IPRange})
		}
	}
	return out
}

// fromVolume maps a top-level volume. An external volume keeps the driver
// it was declared with, if any: clusterctl did not create it and does not
// know it.
func fromVolume(project, key string, v types.VolumeConfig) Volume {
	out := Volume{
		Name:       key,
		DockerName: v.Name,
		Driver:     v.Driver,
		DriverOpts: copyMap(v.DriverOpts),
		External:   bool(v.External),
		Labels:     copyMap(v.Labels),
	}
	if out.DockerName == "" {
		out.DockerName = project + "_" + key
	}
	if out.Driver == "" && !out.External {
		out.Driver = defaultVolumeDriver
	}
	return out
}

func sortedKeys[M ~map[string]V, V any](m M) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

// copyMap copies m, nil when empty, so the App shares nothing with
// compose-go and compares equal however the file spelled an empty map.
func copyMap[M ~map[string]string](m M) map[string]string {
	if len(m) == 0 {
		return nil
	}
	out := make(map[string]string, len(m))
	for k, v := range m {
		out[k] = v
	}
	return out
}

// copySlice copies s, nil when empty.
func copySlice[S ~[]string](s S) []string {
	if len(s) == 0 {
		return nil
	}
	return append([]string(nil), s...)
}
