package cli

import (
	"context"
	"fmt"
	"os"
	"time"

	"github.com/clusterctl/clusterctl/api"
	"github.com/clusterctl/clusterctl/enroll"
	"github.com/clusterctl/clusterctl/pki"
	"github.com/clusterctl/clusterctl/store"
	"github.com/clusterctl/clusterctl/transport"
	"github.com/spf13/cobra"
)

// outputClient checks the output format, then builds a client for this
// invocation's managers: bad flags fail before any connection is made.
func (g *globals) outputClient(output string) (*api.Client, error) {
	if err := checkOutput(output); err != nil {
		return nil, err
	}
	return g.apiClient()
}

// apiClient builds a client for this invocation's managers, with the
// operator's credentials from the context file.
func (g *globals) apiClient() (*api.Client, error) {
	servers, err := g.servers()
	if err != nil {
		return nil, err
	}
	c, err := loadContext(g)
	if err != nil {
		return nil, err
	}
	creds, err := c.Creds()
	if err != nil {
		return nil, err
	}
	client := api.NewClient(servers, creds)
	renewIfDue(creds, client)
	return client, nil
}

// renewIfDue renews the operator's certificate when it is in the last
// third of its life, as the daemons do: a CLI used now and then keeps a
// valid certificate without logging in again. A failed renewal is said
// and the command goes on with the certificate it has.
func renewIfDue(creds *transport.Creds, client *api.Client) {
	if !pki.NeedsRenewal(creds.Leaf(), time.Now()) {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := enroll.Renew(ctx, creds, client); err != nil {
		fmt.Fprintf(os.Stderr, "clusterctl: warning: renewing the certificate (it ends %s): %v\n", creds.Leaf().NotAfter.Format(time.RFC3339), err)
	}
}

func newStatusCmd(g *globals) *cobra.Command {
	var output string
	cmd := &cobra.Command{
		Use:     "status",
		Short:   "Show the managers, which one leads, and the Raft term",
		Example: "  clusterctl status -o json | jq -r .leader",
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := g.outputClient(output)
			if err != nil {
				return err
			}
			st, err := c.Status(cmd.Context())
			if err != nil {
				return err
			}
			for i := range st.Servers {
				if st.Servers[i].API != "" {
					st.Servers[i].API = transport.URL(st.Servers[i].API)
				}
			}
			if output == "json" {
				return printJSON(cmd.OutOrStdout(), st)
			}
			fmt.Fprintf(cmd.OutOrStdout(), "cluster %s, leader %s, term %d, index %d\n", st.ClusterID, st.Leader, st.Term, st.Index)
			tw := table(cmd.OutOrStdout(), "NAME\tSTATE\tAPI\tRAFT")
			for _, s := range st.Servers {
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", s.Name, s.State, s.API, s.Raft)
			}
			return tw.Flush()
		},
	}
	outputFlag(cmd, &output)
	return cmd
}

func newEventsCmd(g *globals) *cobra.Command {
	var output string
	var index uint64
	cmd := &cobra.Command{
		Use:     "events",
		Short:   "Stream the cluster's changes as they happen (Ctrl-C to stop)",
		Example: "  clusterctl events\n  clusterctl events --index 120 -o json",
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := g.outputClient(output)
			if err != nil {
				return err
			}
			out := cmd.OutOrStdout()
			err = c.Events(cmd.Context(), index, func(ev store.Event) error {
				if output == "json" {
					return printCompactJSON(out, ev)
				}
				_, err := fmt.Fprintf(out, "%s  %-6d %-18s %s\n", ev.Time.Local().Format("15:04:05.000"), ev.Index, ev.Type, ev.Key)
				return err
			})
			if cmd.Context().Err() != nil {
				return nil // Ctrl-C is how a stream ends
			}
			return err
		},
	}
	cmd.Flags().Uint64Var(&index, "index", 0, "start after this index (0: the events still kept)")
	outputFlag(cmd, &output)
	return cmd
}
