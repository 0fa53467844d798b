package scheduler

import (
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"
)

// TaskSpec is what the scheduler must know to place one task (one slot of a
// service). Another package builds it from the Compose file; the scheduler
// never reads Compose itself, so placement stays testable with plain values.
type TaskSpec struct {
	// ID is the store.Task ID; plans report placements by it.
	ID string
	// App and Service name the task's service; with Slot (1-based) they
	// drive spreading, co-location and the "web.4" in failure reasons.
	App     string
	Service string
	Slot    int
	// Constraints are hard rules from deploy.placement.constraints.
	Constraints []Constraint
	// Spread lists the keys of deploy.placement.preferences spread entries,
	// such as "node.labels.zone", outermost first.
	Spread []string
	// CPUs is the CPU reservation, in CPUs; 0 reserves nothing.
	CPUs float64
	// MemoryBytes is the memory reservation; 0 reserves nothing.
	MemoryBytes int64
	// Ports are the published host ports; a HostPort of 0 (let Docker pick)
	// cannot conflict and is ignored.
	Ports []Port
	// Volumes are the cluster volumes the task mounts. A cluster volume has
	// one owner host at a time, so a task goes where its volumes are.
	Volumes []string
	// ColocateWith names a service of the same app whose task this one must
	// share a host with (network_mode: service:x, volumes_from); "" if none.
	ColocateWith string
}

// Name returns "service.slot", the way users see a task in failures.
func (t TaskSpec) Name() string {
	if t.Service == "" {
		return t.ID
	}
	return t.Service + "." + strconv.Itoa(t.Slot)
}

// ServiceKey returns the key of HostState.Tasks for a service: services of
// different apps may share a name, so the app is part of the key.
func ServiceKey(app, service string) string { return app + "/" + service }

// Validate reports the first thing in t that the scheduler cannot act on,
// so a bad Compose file fails with one clear line instead of a bad plan.
func (t TaskSpec) Validate() error {
	for _, c := range t.Constraints {
		if _, err := compileConstraint(c); err != nil {
			return err
		}
	}
	for _, key := range t.Spread {
		if _, err := parseAttr(key); err != nil {
			return fmt.Errorf("spread preference %q: %w", key, err)
		}
	}
	if t.CPUs < 0 || math.IsNaN(t.CPUs) || math.IsInf(t.CPUs, 0) {
		return fmt.Errorf("cpu reservation %v: must be a number of CPUs >= 0", t.CPUs)
	}
	if t.MemoryBytes < 0 {
		return fmt.Errorf("memory reservation %d: must be >= 0", t.MemoryBytes)
	}
	for _, p := range t.Ports {
		if proto := p.normal().Protocol; proto != "tcp" && proto != "udp" {
			return fmt.Errorf("port %d: protocol %q: want tcp or udp", p.HostPort, p.Protocol)
		}
	}
	if t.ColocateWith != "" && t.ColocateWith == t.Service {
		return fmt.Errorf("service %s cannot share a host with itself", t.Service)
	}
	return nil
}

// Port is a published host port. Protocol is "tcp" or "udp"; "" means tcp,
// as in Compose.
type Port struct {
	HostPort uint16
	Protocol string
}

// String returns "8080/tcp", the form used in failure reasons.
func (p Port) String() string {
	p = p.normal()
	return strconv.Itoa(int(p.HostPort)) + "/" + p.Protocol
}

// normal returns p with the protocol lower-cased and defaulted, so that
// "8080", "8080/tcp" and "8080/TCP" are the same key in UsedPorts.
func (p Port) normal() Port {
	if p.Protocol == "" {
		p.Protocol = "tcp"
		return p
	}
	p.Protocol = strings.ToLower(p.Protocol)
	return p
}

// Constraint is one placement rule, "Key Op Value", with Op "==" or "!=".
// Key is node.hostname, node.id (the host name: hosts have no other ID),
// node.role or node.labels.NAME. Values compare case-insensitively, as in
// Swarm; a missing label fails "==" and passes "!=".
type Constraint struct {
	Key, Op, Value string
}

// String returns the constraint as users write it, for failure reasons.
func (c Constraint) String() string { return c.Key + " " + c.Op + " " + c.Value }

// ParseConstraint parses a deploy.placement.constraints entry such as
// "node.labels.zone == a", so that a typo fails when the app is deployed
// rather than silently matching no host.
func ParseConstraint(s string) (Constraint, error) {
	i, op := findOp(s)
	if i < 0 {
		return Constraint{}, fmt.Errorf("constraint %q: want KEY == VALUE or KEY != VALUE", s)
	}
	c := Constraint{
		Key:   normalKey(strings.TrimSpace(s[:i])),
		Op:    op,
		Value: strings.TrimSpace(s[i+len(op):]),
	}
	if strings.ContainsAny(c.Value, "=!") {
		return Constraint{}, fmt.Errorf("constraint %q: more than one operator", s)
	}
	if _, err := compileConstraint(c); err != nil {
		return Constraint{}, err
	}
	return c, nil
}

// findOp returns the index and text of the first "==" or "!=" in s, or -1.
func findOp(s string) (int, string) {
	eq, ne := strings.Index(s, "=="), strings.Index(s, "!=")
	switch {
	case eq < 0 && ne < 0:
		return -1, ""
	case ne < 0 || (eq >= 0 && eq < ne):
		return eq, "=="
	default:
		return ne, "!="
	}
}

// normalKey lower-cases the fixed part of a key and keeps a label name as
// written, because label names are case-sensitive but "Node.Labels." is not.
func normalKey(key string) string {
	lower := strings.ToLower(key)
	if strings.HasPrefix(lower, labelPrefix) {
		return labelPrefix + key[len(labelPrefix):]
	}
	return lower
}

// match is a Constraint compiled once per task, so checking a host is a
// lookup and a compare, with the refusal reason already built.
type match struct {
	attr   attr
	equal  bool
	value  string
	reason string
}

// compileConstraint checks c and compiles it.
func compileConstraint(c Constraint) (match, error) {
	a, err := parseAttr(c.Key)
	if err != nil {
		return match{}, fmt.Errorf("constraint %q: %w", c.String(), err)
	}
	if c.Op != "==" && c.Op != "!=" {
		return match{}, fmt.Errorf("constraint %q: operator %q: want == or !=", c.String(), c.Op)
	}
	if c.Value == "" {
		return match{}, fmt.Errorf("constraint %q: missing value", c.String())
	}
	if a.kind == attrRole && !strings.EqualFold(c.Value, RoleManager) && !strings.EqualFold(c.Value, RoleWorker) {
		return match{}, fmt.Errorf("constraint %q: role %q: want manager or worker", c.String(), c.Value)
	}
	return match{attr: a, equal: c.Op == "==", value: c.Value, reason: "constraint " + c.String() + " not met"}, nil
}

// matches reports whether h satisfies the constraint.
func (m *match) matches(h *HostState) bool {
	v, ok := m.attr.of(h)
	same := ok && strings.EqualFold(v, m.value)
	return same == m.equal
}

// labelPrefix starts the keys that name a host label.
const labelPrefix = "node.labels."

// attrKind is which host attribute a key names.
type attrKind uint8

// The host attributes constraints and spread preferences can name.
const (
	attrHostname attrKind = iota
	attrRole
	attrLabel
)

// attr is a parsed key: the attribute, and the label name for labels.
type attr struct {
	kind  attrKind
	label string
}

// errUnknownKey is returned for a key that names no host attribute.
var errUnknownKey = errors.New("unknown key (want node.hostname, node.id, node.role or node.labels.NAME)")

// parseAttr parses a constraint or spread key, ignoring the case of its
// fixed part.
func parseAttr(key string) (attr, error) {
	key = normalKey(strings.TrimSpace(key))
	switch {
	case key == "node.hostname", key == "node.id":
		return attr{kind: attrHostname}, nil
	case key == "node.role":
		return attr{kind: attrRole}, nil
	case strings.HasPrefix(key, labelPrefix):
		name := key[len(labelPrefix):]
		if name == "" || strings.ContainsAny(name, " \t") {
			return attr{}, fmt.Errorf("label name %q: must be non-empty without spaces", name)
		}
		return attr{kind: attrLabel, label: name}, nil
	case key == "":
		return attr{}, errors.New("missing key")
	default:
		return attr{}, fmt.Errorf("%q: %w", key, errUnknownKey)
	}
}

// of returns h's value of the attribute, and false if h has no such label.
func (a attr) of(h *HostState) (string, bool) {
	switch a.kind {
	case attrHostname:
		return h.Host.Name, true
	case attrRole:
		return h.role(), true
	default:
		v, ok := h.Host.Labels[a.label]
		return v, ok
	}
}
