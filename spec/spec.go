// Package spec is an app as clusterctl deploys it: what `up` reads from a
// Compose file (FromCompose) and stores, what the scheduler places
// (TaskSpec) and what the managers ask each host's Docker to create
// (Container). It is plain data with pure functions, so the CLI, the
// managers and the tests all agree on one meaning of a Compose file.
package spec

import "time"

// Label keys clusterctl puts on every container, network and volume it
// creates: Compose's own, so `docker ps` and `docker compose ls` on any host
// show what belongs to whom, plus the task and spec version managers need.
const (
	LabelProject   = "com.docker.compose.project"
	LabelService   = "com.docker.compose.service"
	LabelNumber    = "com.docker.compose.container-number"
	LabelOneoff    = "com.docker.compose.oneoff"
	LabelNetwork   = "com.docker.compose.network"
	LabelVolume    = "com.docker.compose.volume"
	LabelTask      = "io.clusterctl.task"    // the store.Task ID
	LabelVersion   = "io.clusterctl.version" // the Service.Version the container runs
	LabelManagedBy = "io.clusterctl.managed" // "true" on everything clusterctl creates
)

// ClusterVolumeDriver is the volume driver whose volumes belong to the
// cluster (issue 5): a task mounting one goes where the volume is, and
// waits rather than moving without its data when that host goes down.
const ClusterVolumeDriver = "clustervol"

// App is a Compose project as clusterctl runs it.
type App struct {
	Name string `json:"name"`
	// Services are in dependency order: every service after those it
	// depends on.
	Services []Service `json:"services"`
	Networks []Network `json:"networks,omitempty"`
	Volumes  []Volume  `json:"volumes,omitempty"`
}

// Service is one Compose service, with everything needed to create its
// containers and place its tasks.
type Service struct {
	Name        string            `json:"name"`
	Image       string            `json:"image"`
	Command     []string          `json:"command,omitempty"`     // nil: the image's
	Entrypoint  []string          `json:"entrypoint,omitempty"`  // nil: the image's
	Environment []string          `json:"environment,omitempty"` // "KEY=VALUE", sorted
	Labels      map[string]string `json:"labels,omitempty"`
	Hostname    string            `json:"hostname,omitempty"`
	// ContainerName is Compose's container_name; it allows one replica.
	ContainerName string        `json:"container_name,omitempty"`
	Ports         []Port        `json:"ports,omitempty"`
	Mounts        []Mount       `json:"mounts,omitempty"`
	Networks      []Attachment  `json:"networks,omitempty"` // sorted by name
	NetworkMode   string        `json:"network_mode,omitempty"`
	VolumesFrom   []string      `json:"volumes_from,omitempty"`
	DependsOn     []Dependency  `json:"depends_on,omitempty"` // sorted by service
	Healthcheck   *Healthcheck  `json:"healthcheck,omitempty"`
	Restart       RestartPolicy `json:"restart"`
	Replicas      int           `json:"replicas"`
	Constraints   []string      `json:"constraints,omitempty"` // "node.labels.zone == a"
	Spread        []string      `json:"spread,omitempty"`      // "node.labels.zone"
	Resources     Resources     `json:"resources"`
}

// Port is a published port.
type Port struct {
	Target    uint16 `json:"target"`
	Published uint16 `json:"published,omitempty"` // 0: Docker picks one
	Protocol  string `json:"protocol"`            // tcp or udp
	HostIP    string `json:"host_ip,omitempty"`
}

// Mount is a volume, bind or tmpfs mount of a service.
type Mount struct {
	Type     string `json:"type"`   // volume, bind or tmpfs
	Source   string `json:"source"` // a Volume's Name, or a host path
	Target   string `json:"target"`
	ReadOnly bool   `json:"read_only,omitempty"`
}

// Attachment is a service's place on a network.
type Attachment struct {
	Network     string   `json:"network"` // a Network's Name
	Aliases     []string `json:"aliases,omitempty"`
	IPv4Address string   `json:"ipv4_address,omitempty"`
}

// Dependency is one depends_on entry.
type Dependency struct {
	Service   string `json:"service"`
	Condition string `json:"condition"` // one of the Condition* values
}

// depends_on conditions, as Compose spells them.
const (
	ConditionStarted   = "service_started"
	ConditionHealthy   = "service_healthy"
	ConditionCompleted = "service_completed_successfully"
)

// Healthcheck is a container healthcheck. Test is Docker's form:
// ["CMD", "/bin", "arg"] or ["CMD-SHELL", "cmd"] or ["NONE"].
type Healthcheck struct {
	Test        []string      `json:"test"`
	Interval    time.Duration `json:"interval,omitempty"`
	Timeout     time.Duration `json:"timeout,omitempty"`
	StartPeriod time.Duration `json:"start_period,omitempty"`
	Retries     int           `json:"retries,omitempty"`
}

// RestartPolicy says when the managers start a stopped container again:
// Compose's restart (no, always, on-failure[:N], unless-stopped) and
// deploy.restart_policy (condition none, on-failure, any; max_attempts;
// delay) both map to it.
type RestartPolicy struct {
	Condition   string        `json:"condition"`              // one of the Restart* values
	MaxAttempts int           `json:"max_attempts,omitempty"` // 0: no limit
	Delay       time.Duration `json:"delay,omitempty"`
}

// Restart conditions.
const (
	RestartNever     = "none"
	RestartOnFailure = "on-failure"
	RestartAlways    = "any"
)

// Resources are deploy.resources: limits Docker enforces, reservations the
// scheduler counts.
type Resources struct {
	LimitCPUs          float64 `json:"limit_cpus,omitempty"`
	LimitMemoryBytes   int64   `json:"limit_memory_bytes,omitempty"`
	ReserveCPUs        float64 `json:"reserve_cpus,omitempty"`
	ReserveMemoryBytes int64   `json:"reserve_memory_bytes,omitempty"`
}

// Network is a top-level Compose network.
type Network struct {
	Name       string            `json:"name"`        // the key in the Compose file
	DockerName string            `json:"docker_name"` // as created on each host: project_name, or name:
	Driver     string            `json:"driver,omitempty"`
	DriverOpts map[string]string `json:"driver_opts,omitempty"`
	IPAM       IPAM              `json:"ipam"`
	External   bool              `json:"external,omitempty"` // exists already; never created or removed
	Labels     map[string]string `json:"labels,omitempty"`
}

// IPAM is a network's address management.
type IPAM struct {
	Driver  string   `json:"driver,omitempty"`
	Subnets []Subnet `json:"subnets,omitempty"`
}

// Subnet is one ipam config entry.
type Subnet struct {
	Subnet  string `json:"subnet"`
	Gateway string `json:"gateway,omitempty"`
	IPRange string `json:"ip_range,omitempty"`
}

// Volume is a top-level Compose volume.
type Volume struct {
	Name       string            `json:"name"`        // the key in the Compose file
	DockerName string            `json:"docker_name"` // as created on hosts: project_name, or name:
	Driver     string            `json:"driver,omitempty"`
	DriverOpts map[string]string `json:"driver_opts,omitempty"`
	External   bool              `json:"external,omitempty"`
	Labels     map[string]string `json:"labels,omitempty"`
}
