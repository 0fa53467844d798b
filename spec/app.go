package spec

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"slices"
	"strconv"
	"strings"

	"github.com/clusterctl/clusterctl/scheduler"
)

// Service finds a service by name, for references between services
// (depends_on, network_mode, volumes_from) and for commands naming one.
func (a App) Service(name string) (Service, bool) {
	for _, s := range a.Services {
		if s.Name == name {
			return s, true
		}
	}
	return Service{}, false
}

// Volume finds a top-level volume by its Compose key, as mounts name it.
func (a App) Volume(name string) (Volume, bool) {
	for _, v := range a.Volumes {
		if v.Name == name {
			return v, true
		}
	}
	return Volume{}, false
}

// Network finds a top-level network by its Compose key, as attachments
// name it.
func (a App) Network(name string) (Network, bool) {
	for _, n := range a.Networks {
		if n.Name == name {
			return n, true
		}
	}
	return Network{}, false
}

// Version identifies what a service's containers run, so the managers
// replace a container exactly when its spec changed. Replicas are left
// out: scaling adds or removes tasks but changes none of them.
func (s Service) Version() string {
	s.Replicas = 0
	b, err := json.Marshal(s) // struct fields in order, map keys sorted: canonical
	if err != nil {
		panic("spec: marshal service: " + err.Error()) // plain data: cannot happen
	}
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:])[:16]
}

// ContainerName names a task's container the way Compose v2 does
// (project-service-N), so `docker ps` on a host reads as users expect and
// network_mode/volumes_from can name a partner container.
func ContainerName(app string, s Service, slot int) string {
	if s.ContainerName != "" {
		return s.ContainerName
	}
	return app + "-" + s.Name + "-" + strconv.Itoa(slot)
}

// TaskSpec is what the scheduler needs to place slot `slot` of s. It
// assumes a validated App: constraints that do not parse are left out.
func (a App) TaskSpec(s Service, id string, slot int) scheduler.TaskSpec {
	t := scheduler.TaskSpec{
		ID:           id,
		App:          a.Name,
		Service:      s.Name,
		Slot:         slot,
		Spread:       copySlice(s.Spread),
		CPUs:         s.Resources.ReserveCPUs,
		MemoryBytes:  s.Resources.ReserveMemoryBytes,
		Volumes:      a.clusterVolumes(s),
		ColocateWith: Partner(s),
	}
	for _, c := range s.Constraints {
		if pc, err := scheduler.ParseConstraint(c); err == nil {
			t.Constraints = append(t.Constraints, pc)
		}
	}
	for _, p := range s.Ports {
		if p.Published != 0 {
			t.Ports = append(t.Ports, scheduler.Port{HostPort: p.Published, Protocol: p.Protocol})
		}
	}
	return t
}

// clusterVolumes lists the Docker names of the cluster volumes s mounts:
// only those tie a task to a host. Local volumes are per host and follow
// nowhere.
func (a App) clusterVolumes(s Service) []string {
	var out []string
	for _, m := range s.Mounts {
		if m.Type != "volume" || m.Source == "" {
			continue
		}
		v, ok := a.Volume(m.Source)
		if !ok || v.Driver != ClusterVolumeDriver {
			continue
		}
		if !slices.Contains(out, v.DockerName) {
			out = append(out, v.DockerName)
		}
	}
	return out
}

// Partner names the service whose task s's task must share a host with:
// the X of network_mode service:X, else of the first volumes_from naming a
// service; "" if none. Containers named by container: are not tracked.
func Partner(s Service) string {
	if x, ok := strings.CutPrefix(s.NetworkMode, "service:"); ok {
		return x
	}
	for _, vf := range s.VolumesFrom {
		if x, _, ok := volumesFromService(vf); ok {
			return x
		}
	}
	return ""
}

// StrandedMounts lists the mounts of s whose data stays on the host when
// its container moves, one line each: bind mounts, and volumes on any
// driver but clustervol (anonymous volumes are local-driver volumes too).
// A move refuses such a service rather than start it elsewhere empty.
func (a App) StrandedMounts(s Service) []string {
	var out []string
	for _, m := range s.Mounts {
		switch m.Type {
		case "bind":
			out = append(out, fmt.Sprintf("bind mount %s: a host path, which stays on the host", m.Source))
		case "volume":
			v, ok := a.Volume(m.Source)
			switch {
			case m.Source == "" || !ok:
				out = append(out, fmt.Sprintf("anonymous volume at %s: on the local driver, its data cannot follow the container; declare a named volume with driver: %s", m.Target, ClusterVolumeDriver))
			case v.Driver != ClusterVolumeDriver:
				out = append(out, fmt.Sprintf("volume %s is on the %s driver: its data cannot follow the container; declare it with driver: %s (backend copy or block) to move it", m.Source, orLocal(v.Driver), ClusterVolumeDriver))
			}
		}
	}
	return out
}

func orLocal(driver string) string {
	if driver == "" {
		return "local"
	}
	return driver
}
