package lab

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"os"
	"os/exec"
	"sync"
	"time"

	"github.com/clusterctl/clusterctl/contextfile"
	"golang.org/x/sync/errgroup"
)

// ContextName marks context files the lab wrote.
const ContextName = "lab"

// Lab is the testbed on this machine.
type Lab struct {
	Layout Layout
	// Out receives progress lines, one per step and host.
	Out io.Writer
	// ContextPath is the context file the lab writes for later commands.
	ContextPath string

	mu sync.Mutex // serializes writes to Out from parallel host steps
	// joining serializes fetching the join tokens, which every host but
	// the first manager's waits for.
	joining sync.Mutex
}

// New returns a lab with the default layout.
func New(out io.Writer, contextPath string) *Lab {
	return &Lab{Layout: DefaultLayout(), Out: out, ContextPath: contextPath}
}

// UpOptions is what `lab up` asks for.
type UpOptions struct {
	Hosts         int
	Subnet        string
	Images        string // directory of image archives, or one archive; "" loads none
	StorageDriver string
}

// say prints one progress line.
func (lab *Lab) say(format string, args ...any) {
	lab.mu.Lock()
	defer lab.mu.Unlock()
	fmt.Fprintf(lab.Out, format+"\n", args...)
}

// Up builds a lab of opts.Hosts hosts after clearing whatever an earlier lab
// left. Bad input fails before anything on the machine changes; a failure
// while building tears down what was built.
func (lab *Lab) Up(ctx context.Context, opts UpOptions) error {
	start := time.Now()
	plan, archives, err := lab.preflight(ctx, opts)
	if err != nil {
		return err
	}
	if cleared, err := lab.clear(ctx); err != nil {
		return fmt.Errorf("clear an earlier lab: %w", err)
	} else if len(cleared) > 0 {
		lab.say("cleared an earlier lab: %v", cleared)
	}
	if err := checkSubnetFree(plan.Subnet); err != nil {
		return err
	}
	if err := lab.build(ctx, plan, archives, opts.StorageDriver); err != nil {
		if _, cerr := lab.clear(context.Background()); cerr != nil {
			err = errors.Join(err, fmt.Errorf("tear down the failed lab: %w", cerr))
		}
		return err
	}
	lab.say("lab up: %d hosts in %.1fs (context %s)", len(plan.Hosts), time.Since(start).Seconds(), lab.ContextPath)
	return nil
}

// preflight checks everything that can be checked without touching the
// machine.
func (lab *Lab) preflight(ctx context.Context, opts UpOptions) (Plan, []string, error) {
	if err := checkPrivileges(); err != nil {
		return Plan{}, nil, err
	}
	plan, err := PlanAddresses(opts.Subnet, opts.Hosts)
	if err != nil {
		return Plan{}, nil, err
	}
	if running := lab.runningHosts(ctx); len(running) > 0 {
		return Plan{}, nil, fmt.Errorf("a lab is already up (%v running): run 'clusterctl lab down' first", running)
	}
	var archives []string
	if opts.Images != "" {
		if archives, err = findArchives(opts.Images); err != nil {
			return Plan{}, nil, err
		}
	}
	return plan, archives, nil
}

// checkPrivileges fails with the fix when the lab cannot run here.
func checkPrivileges() error {
	if os.Geteuid() != 0 {
		return errors.New("the lab needs root (namespaces, links, mounts): run it with sudo")
	}
	for _, bin := range []string{"dockerd", "nsenter"} {
		if _, err := exec.LookPath(bin); err != nil {
			return fmt.Errorf("%s not found in PATH: install it (apt-get install docker.io util-linux)", bin)
		}
	}
	return nil
}

// runningHosts lists hosts of a recorded lab whose dockerd still answers.
// A lab whose processes are gone (the machine rebooted, a session ended) is
// not running: its leftovers are cleared instead.
func (lab *Lab) runningHosts(ctx context.Context) []string {
	st, err := loadState(lab.Layout)
	if err != nil {
		return nil
	}
	var up []string
	for _, h := range st.Hosts {
		if _, err := dockerdPID(lab.Layout, h.Name); err == nil && lab.answers(ctx, h.Name) {
			up = append(up, h.Name)
		}
	}
	return up
}

// build creates the bridge, then every host at once.
func (lab *Lab) build(ctx context.Context, plan Plan, archives []string, storageDriver string) error {
	cgRoot, err := cgroup2Root(lab.Layout.RunDir)
	if err != nil {
		return err
	}
	if err := ensureBridge(plan); err != nil {
		return err
	}
	if err := ensureForwardRule(); err != nil {
		return err
	}
	st := &State{Subnet: plan.Subnet.String(), Gateway: plan.Gateway.String(), StorageDriver: storageDriver, Managers: managers(len(plan.Hosts)), Created: time.Now().UTC()}
	for _, h := range plan.Hosts {
		st.Hosts = append(st.Hosts, HostState{Name: h.Name, Addr: h.Addr.String(), MAC: hostMAC(h.Addr)})
	}
	if err := st.save(lab.Layout); err != nil {
		return err
	}
	if err := makeDockerCerts(lab.Layout, st.Hosts); err != nil {
		return err
	}
	lab.say("network %s on bridge %s (gateway %s)", plan.Subnet, bridgeName, plan.Gateway)
	g, gctx := errgroup.WithContext(ctx)
	for _, h := range st.Hosts {
		g.Go(func() error { return lab.bootHost(gctx, cgRoot, st, h, archives) })
	}
	if err := g.Wait(); err != nil {
		return err
	}
	if err := lab.waitControlPlane(ctx, st); err != nil {
		return err
	}
	return lab.writeContext(st)
}

// bootHost plugs a host into the lab network, boots its dockerd and loads
// the images into it.
func (lab *Lab) bootHost(ctx context.Context, cgRoot string, st *State, h HostState, archives []string) error {
	start := time.Now()
	subnet, err := netip.ParsePrefix(st.Subnet)
	if err != nil {
		return fmt.Errorf("lab state: subnet %q: %w", st.Subnet, err)
	}
	if err := plugHost(h, subnet.Bits()); err != nil {
		return err
	}
	if err := makeHostCgroup(cgRoot, h.Name); err != nil {
		return err
	}
	if err := bootDockerd(ctx, lab.Layout, cgRoot, h, st.StorageDriver, func() error { return lab.startDaemons(ctx, cgRoot, st, h) }); err != nil {
		return err
	}
	lab.say("%s: dockerd up at tcp://%s:%d in %.1fs", h.Name, h.Addr, DockerPort, time.Since(start).Seconds())
	if len(archives) > 0 {
		loadStart := time.Now()
		if err := loadImages(ctx, lab.Layout, h.Name, archives); err != nil {
			return err
		}
		lab.say("%s: %d image archive(s) loaded in %.1fs", h.Name, len(archives), time.Since(loadStart).Seconds())
	}
	return nil
}

// writeContext tells later commands where the lab's hosts are.
func (lab *Lab) writeContext(st *State) error {
	c := &contextfile.Context{Name: ContextName, Servers: st.serverAddrs(), TLS: lab.Layout.credsDir()}
	for _, h := range st.Hosts {
		c.Hosts = append(c.Hosts, contextfile.Host{Name: h.Name, Addr: h.Addr, Docker: dockerEndpoint(h), DockerCertPath: lab.Layout.DockerCertPath(h.Name)})
	}
	return contextfile.Save(lab.ContextPath, c)
}

// dockerEndpoint is a host's Docker API address on the lab network.
func dockerEndpoint(h HostState) string { return fmt.Sprintf("tcp://%s:%d", h.Addr, DockerPort) }

// Down removes the whole lab: processes, namespaces, links, mounts, rules,
// files, and the lab's context file. The machine's own Docker is untouched.
func (lab *Lab) Down(ctx context.Context) error {
	if err := checkPrivileges(); err != nil {
		return err
	}
	start := time.Now()
	cleared, err := lab.clear(ctx)
	if err != nil {
		return err
	}
	if err := contextfile.RemoveIfOwned(lab.ContextPath, ContextName); err != nil {
		return err
	}
	if len(cleared) == 0 {
		lab.say("lab down: nothing to remove")
		return nil
	}
	lab.say("lab down: removed %v in %.1fs", cleared, time.Since(start).Seconds())
	return nil
}
