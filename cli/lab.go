package cli

import (
	"fmt"
	"os"
	"path/filepath"

	"github.com/clusterctl/clusterctl/lab"
	"github.com/spf13/cobra"
)

func newLabCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "lab",
		Short: "Run several real Docker hosts on this machine, for tests and demos (needs root)",
		Long: `The lab gives this machine several real Docker hosts, each in its own network,
mount and UTS namespace with its own address on a lab bridge, its own dockerd,
data root and plugin directory. It writes a context file so that other
commands find it.`,
		Example: `  clusterctl lab up --hosts 3
  clusterctl lab exec host1 -- docker -H unix:///run/clusterctl/lab/host1/docker.sock ps
  clusterctl lab stop host2 && clusterctl lab start host2
  clusterctl lab kill host2 agent && clusterctl lab revive host2 agent
  clusterctl lab down`,
	}
	newLab := func(cmd *cobra.Command) *lab.Lab { return lab.New(cmd.OutOrStdout(), g.contextPath()) }
	cmd.AddCommand(
		newLabUpCmd(newLab),
		&cobra.Command{
			Use:     "down",
			Short:   "Remove the lab: processes, namespaces, links, mounts, rules and files",
			Example: "  clusterctl lab down",
			Args:    cobra.NoArgs,
			RunE:    func(cmd *cobra.Command, _ []string) error { return newLab(cmd).Down(cmd.Context()) },
		},
		newLabStatusCmd(newLab),
		&cobra.Command{
			Use:     "exec HOST -- CMD [ARGS...]",
			Short:   "Run a command inside a host's namespaces",
			Example: "  clusterctl lab exec host1 -- ip addr show eth0",
			Args:    cobra.MinimumNArgs(1),
			RunE: func(cmd *cobra.Command, args []string) error {
				return newLab(cmd).Exec(args[0], args[1:])
			},
		},
		hostCmd("stop", "Power a host off: all its processes stop, its data stays", func(l *lab.Lab, cmd *cobra.Command, h string) error { return l.Stop(cmd.Context(), h) }, newLab),
		hostCmd("start", "Boot a stopped host again, with its address and data", func(l *lab.Lab, cmd *cobra.Command, h string) error { return l.Start(cmd.Context(), h) }, newLab),
		hostCmd("partition", "Cut a host off the lab network (it keeps running)", func(l *lab.Lab, _ *cobra.Command, h string) error { return l.Partition(h) }, newLab),
		hostCmd("heal", "Put a partitioned host back on the lab network", func(l *lab.Lab, _ *cobra.Command, h string) error { return l.Heal(h) }, newLab),
		daemonCmd("kill", "Crash one daemon of a host (SIGKILL); the host and its containers keep running", func(l *lab.Lab, cmd *cobra.Command, h, d string) error { return l.Kill(cmd.Context(), h, d) }, newLab),
		daemonCmd("revive", "Start a killed daemon of a host again, with its arguments and data, and wait until it is back", func(l *lab.Lab, cmd *cobra.Command, h, d string) error { return l.Revive(cmd.Context(), h, d) }, newLab),
		newLabBootCmd(),
	)
	return cmd
}

// hostCmd builds a lab command that acts on one host.
func hostCmd(name, short string, run func(*lab.Lab, *cobra.Command, string) error, newLab func(*cobra.Command) *lab.Lab) *cobra.Command {
	return &cobra.Command{
		Use:     name + " HOST",
		Short:   short,
		Example: fmt.Sprintf("  clusterctl lab %s host2", name),
		Args:    cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return run(newLab(cmd), cmd, args[0])
		},
	}
}

// daemonCmd builds a lab command that acts on one daemon of a host: its
// agent, or its manager (server).
func daemonCmd(name, short string, run func(*lab.Lab, *cobra.Command, string, string) error, newLab func(*cobra.Command) *lab.Lab) *cobra.Command {
	return &cobra.Command{
		Use:       name + " HOST agent|server",
		Short:     short,
		Example:   fmt.Sprintf("  clusterctl lab %s host2 agent", name),
		Args:      cobra.ExactArgs(2),
		ValidArgs: []string{"agent", "server"},
		RunE: func(cmd *cobra.Command, args []string) error {
			return run(newLab(cmd), cmd, args[0], args[1])
		},
	}
}

func newLabUpCmd(newLab func(*cobra.Command) *lab.Lab) *cobra.Command {
	opts := lab.UpOptions{}
	cmd := &cobra.Command{
		Use:   "up",
		Short: "Build a lab of N Docker hosts, clearing whatever an earlier lab left",
		Example: `  clusterctl lab up
  clusterctl lab up --hosts 5 --subnet 10.98.0.0/24 --images bin/images`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return newLab(cmd).Up(cmd.Context(), opts)
		},
	}
	cmd.Flags().IntVar(&opts.Hosts, "hosts", lab.DefaultHosts, fmt.Sprintf("number of hosts (1..%d)", lab.MaxHosts))
	cmd.Flags().StringVar(&opts.Subnet, "subnet", lab.DefaultSubnet, "address range of the lab network")
	cmd.Flags().StringVar(&opts.Images, "images", defaultImagesDir(), "image archives (docker save) to load into every host; '' for none")
	cmd.Flags().StringVar(&opts.StorageDriver, "storage-driver", "overlay2", "storage driver of the hosts' dockerd")
	return cmd
}

// defaultImagesDir is where `make images` puts the sample images: images/
// beside the clusterctl binary.
func defaultImagesDir() string {
	self, err := os.Executable()
	if err != nil {
		return "images"
	}
	return filepath.Join(filepath.Dir(self), "images")
}

func newLabStatusCmd(newLab func(*cobra.Command) *lab.Lab) *cobra.Command {
	var output string
	cmd := &cobra.Command{
		Use:     "status",
		Short:   "Show each lab host: address, Docker endpoint, state",
		Example: "  clusterctl lab status -o json",
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := checkOutput(output); err != nil {
				return err
			}
			st, err := newLab(cmd).Status(cmd.Context())
			if err != nil {
				return err
			}
			if output == "json" {
				return printJSON(cmd.OutOrStdout(), st)
			}
			tw := table(cmd.OutOrStdout(), "NAME\tADDRESS\tSTATE\tDOCKER\tPID")
			for _, h := range st.Hosts {
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%d\n", h.Name, h.Addr, h.State, h.Docker, h.PID)
			}
			return tw.Flush()
		},
	}
	outputFlag(cmd, &output)
	return cmd
}

// newLabBootCmd is the hidden helper that the lab runs inside a new host's
// namespaces; it becomes the host's dockerd.
func newLabBootCmd() *cobra.Command {
	return &cobra.Command{
		Use:    lab.BootArgs[1] + " SPEC",
		Hidden: true,
		Args:   cobra.ExactArgs(1),
		RunE:   func(_ *cobra.Command, args []string) error { return lab.Boot(args[0]) },
	}
}
