package spec

import (
	"errors"
	"fmt"
	"math"
	"net/netip"
	"path"
	"strings"

	"github.com/clusterctl/clusterctl/scheduler"
)

// Validate reports the first thing in a that cannot be deployed, as one
// line naming the service, network or volume, so a bad Compose file fails
// at `up` and not halfway through creating containers on the hosts.
func (a App) Validate() error {
	if err := validName(a.Name); err != nil {
		return fmt.Errorf("app name: %w", err)
	}
	if len(a.Services) == 0 {
		return fmt.Errorf("app %s has no services", a.Name)
	}
	if err := a.validateNetworks(); err != nil {
		return err
	}
	if err := a.validateVolumes(); err != nil {
		return err
	}
	seen := map[string]bool{}
	for _, s := range a.Services {
		if seen[s.Name] {
			return fmt.Errorf("service %s is defined twice", s.Name)
		}
		seen[s.Name] = true
		if err := a.validateService(s); err != nil {
			return fmt.Errorf("service %s: %w", s.Name, err)
		}
	}
	return nil
}

// validName checks a name that becomes part of a Docker object name, a
// DNS name and a path on the hosts' plugins.
func validName(s string) error {
	switch {
	case s == "":
		return errors.New("name is empty")
	case !isAlnum(s[0]):
		return fmt.Errorf("name %q: must start with a letter or digit", s)
	case strings.Contains(s, ".."):
		return fmt.Errorf("name %q: must not contain '..'", s)
	}
	for i := 0; i < len(s); i++ {
		if c := s[i]; !isAlnum(c) && c != '-' && c != '_' && c != '.' {
			return fmt.Errorf("name %q: only letters, digits, '-', '_' and '.' are allowed", s)
		}
	}
	return nil
}

func isAlnum(c byte) bool {
	return 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9'
}

// validateNetworks checks the top-level networks: names, and subnets that
// parse, since attachments' fixed addresses are checked against them.
func (a App) validateNetworks() error {
	seen := map[string]bool{}
	for _, n := range a.Networks {
		if err := validName(n.Name); err != nil {
			return fmt.Errorf("network: %w", err)
		}
		if seen[n.Name] {
			return fmt.Errorf("network %s is defined twice", n.Name)
		}
		seen[n.Name] = true
		if err := validName(n.DockerName); err != nil {
			return fmt.Errorf("network %s: docker %w", n.Name, err)
		}
		for _, sn := range n.IPAM.Subnets {
			if err := validSubnet(sn); err != nil {
				return fmt.Errorf("network %s: %w", n.Name, err)
			}
		}
	}
	return nil
}

// validSubnet checks one ipam config entry.
func validSubnet(sn Subnet) error {
	prefix, err := netip.ParsePrefix(sn.Subnet)
	if err != nil {
		return fmt.Errorf("subnet %q: %w", sn.Subnet, err)
	}
	if sn.Gateway != "" {
		gw, err := netip.ParseAddr(sn.Gateway)
		if err != nil {
			return fmt.Errorf("gateway %q: %w", sn.Gateway, err)
		}
		if !prefix.Contains(gw) {
			return fmt.Errorf("gateway %s is not in subnet %s", gw, prefix)
		}
	}
	if sn.IPRange != "" {
		r, err := netip.ParsePrefix(sn.IPRange)
		if err != nil {
			return fmt.Errorf("ip_range %q: %w", sn.IPRange, err)
		}
		if !prefix.Contains(r.Addr()) || r.Bits() < prefix.Bits() {
			return fmt.Errorf("ip_range %s is not in subnet %s", r, prefix)
		}
	}
	return nil
}

// validateVolumes checks the top-level volumes' names.
func (a App) validateVolumes() error {
	seen := map[string]bool{}
	for _, v := range a.Volumes {
		if err := validName(v.Name); err != nil {
			return fmt.Errorf("volume: %w", err)
		}
		if seen[v.Name] {
			return fmt.Errorf("volume %s is defined twice", v.Name)
		}
		seen[v.Name] = true
		if err := validName(v.DockerName); err != nil {
			return fmt.Errorf("volume %s: docker %w", v.Name, err)
		}
	}
	return nil
}

// validateService checks one service; the caller names it in the error.
func (a App) validateService(s Service) error {
	if err := validName(s.Name); err != nil {
		return err
	}
	if s.Image == "" {
		return errors.New("no image")
	}
	if s.Replicas < 0 {
		return fmt.Errorf("replicas %d: must be >= 0", s.Replicas)
	}
	if s.ContainerName != "" {
		if err := validName(s.ContainerName); err != nil {
			return fmt.Errorf("container_name: %w", err)
		}
		if s.Replicas > 1 {
			return fmt.Errorf("container_name %s allows one replica, not %d", s.ContainerName, s.Replicas)
		}
	}
	for _, check := range []func(Service) error{
		a.validateDependencies, a.validateSharing, validatePorts,
		a.validateMounts, a.validateAttachments, validatePlacement,
		validateRestart, validateResources,
	} {
		if err := check(s); err != nil {
			return err
		}
	}
	return nil
}

// validateDependencies checks depends_on names defined services with a
// known condition.
func (a App) validateDependencies(s Service) error {
	for _, d := range s.DependsOn {
		if _, ok := a.Service(d.Service); !ok {
			return fmt.Errorf("depends on undefined service %s", d.Service)
		}
		if d.Service == s.Name {
			return errors.New("depends on itself")
		}
		switch d.Condition {
		case ConditionStarted, ConditionHealthy, ConditionCompleted:
		default:
			return fmt.Errorf("depends_on %s: condition %q: want %s, %s or %s",
				d.Service, d.Condition, ConditionStarted, ConditionHealthy, ConditionCompleted)
		}
	}
	return nil
}

// validateSharing checks network_mode service:X and volumes_from: the
// partner exists, is one service (the scheduler co-locates with one), and
// has a task for every slot of s, since slot N joins the partner's slot N.
func (a App) validateSharing(s Service) error {
	partner := ""
	if x, ok := strings.CutPrefix(s.NetworkMode, "service:"); ok {
		if err := a.validatePartner(s, x, "network_mode "+s.NetworkMode); err != nil {
			return err
		}
		partner = x
		if s.Hostname != "" {
			return fmt.Errorf("hostname %s: not allowed with network_mode %s (the container has its partner's)", s.Hostname, s.NetworkMode)
		}
	}
	if strings.HasPrefix(s.NetworkMode, "service:") || strings.HasPrefix(s.NetworkMode, "container:") || s.NetworkMode == "host" {
		if len(s.Ports) > 0 {
			return fmt.Errorf("ports: not allowed with network_mode %s", s.NetworkMode)
		}
	}
	if s.NetworkMode != "" && len(s.Networks) > 0 {
		return fmt.Errorf("network_mode %s and networks: use one or the other", s.NetworkMode)
	}
	for _, vf := range s.VolumesFrom {
		x, _, ok := volumesFromService(vf)
		if !ok {
			continue
		}
		if err := a.validatePartner(s, x, "volumes_from "+vf); err != nil {
			return err
		}
		if partner != "" && partner != x {
			return fmt.Errorf("volumes_from %s: shares a host with both %s and %s: network_mode and volumes_from must name one service", vf, partner, x)
		}
		partner = x
	}
	return nil
}

// validatePartner checks a service s shares a network stack or volumes with.
func (a App) validatePartner(s Service, name, what string) error {
	p, ok := a.Service(name)
	if !ok {
		return fmt.Errorf("%s: undefined service %s", what, name)
	}
	if p.Name == s.Name {
		return fmt.Errorf("%s: a service cannot share with itself", what)
	}
	if s.Replicas > p.Replicas && p.ContainerName == "" {
		return fmt.Errorf("%s: %d replicas but %s has %d (task N joins %s task N)", what, s.Replicas, p.Name, p.Replicas, p.Name)
	}
	return nil
}

// volumesFromService parses a volumes_from entry: "X[:mode]" or
// "service:X[:mode]" name service X; "container:Y[:mode]" a container.
func volumesFromService(vf string) (service, mode string, ok bool) {
	if strings.HasPrefix(vf, "container:") {
		return "", "", false
	}
	vf = strings.TrimPrefix(vf, "service:")
	service, mode, _ = strings.Cut(vf, ":")
	return service, mode, true
}

// validatePorts checks what Docker and the scheduler need of a port.
func validatePorts(s Service) error {
	for _, p := range s.Ports {
		if p.Target == 0 {
			return errors.New("port target 0: want 1-65535")
		}
		if p.Protocol != "tcp" && p.Protocol != "udp" {
			return fmt.Errorf("port %d: protocol %q: want tcp or udp", p.Target, p.Protocol)
		}
		if p.HostIP != "" {
			if _, err := netip.ParseAddr(p.HostIP); err != nil {
				return fmt.Errorf("port %d: host_ip %q: %w", p.Target, p.HostIP, err)
			}
		}
	}
	return nil
}

// validateMounts checks mount types, targets, and that named volumes are
// declared (clusterctl creates them, with their driver, before the
// containers; Docker would otherwise create a local one silently).
func (a App) validateMounts(s Service) error {
	for _, m := range s.Mounts {
		if !path.IsAbs(m.Target) {
			return fmt.Errorf("mount target %q: not an absolute path", m.Target)
		}
		switch m.Type {
		case "volume":
			if m.Source == "" {
				continue // anonymous: Docker creates one per container
			}
			if _, ok := a.Volume(m.Source); !ok {
				return fmt.Errorf("mount %s: undefined volume %s", m.Target, m.Source)
			}
		case "bind":
			if !path.IsAbs(m.Source) {
				return fmt.Errorf("bind mount %s: source %q is not an absolute path", m.Target, m.Source)
			}
		case "tmpfs":
		default:
			return fmt.Errorf("mount %s: type %q: want volume, bind or tmpfs", m.Target, m.Type)
		}
	}
	return nil
}

// validateAttachments checks networks are declared and fixed addresses
// can be given on them.
func (a App) validateAttachments(s Service) error {
	for _, at := range s.Networks {
		n, ok := a.Network(at.Network)
		if !ok {
			return fmt.Errorf("undefined network %s", at.Network)
		}
		if at.IPv4Address == "" {
			continue
		}
		if err := checkIPv4(at.IPv4Address, n); err != nil {
			return fmt.Errorf("network %s: %w", at.Network, err)
		}
	}
	return nil
}

// checkIPv4 checks a fixed address parses and, when the network has
// subnets, lies in one of them: Docker refuses it otherwise, but only when
// the container is created on some host.
func checkIPv4(s string, n Network) error {
	ip, err := netip.ParseAddr(s)
	if err != nil || !ip.Is4() {
		return fmt.Errorf("ipv4_address %q: not an IPv4 address", s)
	}
	if len(n.IPAM.Subnets) == 0 {
		return nil
	}
	for _, sn := range n.IPAM.Subnets {
		if p, err := netip.ParsePrefix(sn.Subnet); err == nil && p.Contains(ip) {
			return nil
		}
	}
	return fmt.Errorf("ipv4_address %s is in no subnet of the network", ip)
}

// validatePlacement checks constraints and spread keys as the scheduler
// will read them.
func validatePlacement(s Service) error {
	for _, c := range s.Constraints {
		if _, err := scheduler.ParseConstraint(c); err != nil {
			return err
		}
	}
	return scheduler.TaskSpec{Service: s.Name, Spread: s.Spread}.Validate()
}

// validateRestart checks the restart policy is one the managers apply.
func validateRestart(s Service) error {
	r := s.Restart
	switch r.Condition {
	case RestartNever, RestartOnFailure, RestartAlways:
	default:
		return fmt.Errorf("restart condition %q: want %s, %s or %s", r.Condition, RestartNever, RestartOnFailure, RestartAlways)
	}
	if r.MaxAttempts < 0 || r.Delay < 0 {
		return errors.New("restart max attempts and delay must be >= 0")
	}
	return nil
}

// validateResources checks limits and reservations are not negative and
// reservations fit in the limits.
func validateResources(s Service) error {
	r := s.Resources
	for _, c := range []float64{r.LimitCPUs, r.ReserveCPUs} {
		if c < 0 || math.IsNaN(c) || math.IsInf(c, 0) {
			return fmt.Errorf("cpus %v: must be a number >= 0", c)
		}
	}
	if r.LimitMemoryBytes < 0 || r.ReserveMemoryBytes < 0 {
		return errors.New("memory must be >= 0")
	}
	if r.LimitCPUs > 0 && r.ReserveCPUs > r.LimitCPUs {
		return fmt.Errorf("cpu reservation %v exceeds the limit %v", r.ReserveCPUs, r.LimitCPUs)
	}
	if r.LimitMemoryBytes > 0 && r.ReserveMemoryBytes > r.LimitMemoryBytes {
		return fmt.Errorf("memory reservation %d exceeds the limit %d", r.ReserveMemoryBytes, r.LimitMemoryBytes)
	}
	return nil
}
