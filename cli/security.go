package cli

import (
	"fmt"
	"os"

	"github.com/clusterctl/clusterctl/contextfile"
	"github.com/clusterctl/clusterctl/enroll"
	"github.com/clusterctl/clusterctl/pki"
	"github.com/spf13/cobra"
)

func newLoginCmd(g *globals) *cobra.Command {
	var token, tokenFile, name string
	cmd := &cobra.Command{
		Use:   "login",
		Short: "Get an operator's certificate with the manager token, and a context file for the cluster",
		Long: `Get an operator's certificate from the managers, for the manager join token
(clusterctl token show manager, on a machine that has credentials already), and
write a context file naming the managers and the certificate. Every later
command talks to the managers over mutual TLS with it.`,
		Example: "  clusterctl login --servers 10.0.0.1:7400,10.0.0.2:7400 --token-file manager.token",
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			tok, err := readToken(token, tokenFile)
			if err != nil {
				return err
			}
			if tok == "" {
				return fmt.Errorf("--token or --token-file is required: the manager join token")
			}
			if len(g.serversFlag) == 0 {
				return errNoServers
			}
			path := g.contextPath()
			dir := contextfile.CredsDirFor(path)
			// A login replaces what an earlier one left.
			if err := os.RemoveAll(dir); err != nil {
				return err
			}
			creds, _, err := enroll.Ensure(cmd.Context(), enroll.Node{Dir: dir, Name: name, Servers: g.serversFlag, Token: tok, Role: pki.RoleClient})
			if err != nil {
				return err
			}
			if err := contextfile.Save(path, &contextfile.Context{Name: "login", Servers: g.serversFlag, TLS: dir}); err != nil {
				return err
			}
			id := creds.Identity()
			fmt.Fprintf(cmd.OutOrStdout(), "logged in to cluster %s as %s %s, until %s; context %s\n", id.Cluster, id.Role, id.Name, creds.Leaf().NotAfter.Format("2006-01-02"), path)
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&token, "token", "", "manager join token")
	f.StringVar(&tokenFile, "token-file", "", "file holding the manager join token")
	f.StringVar(&name, "name", operatorName(), "the name your certificate gives you")
	return cmd
}

// operatorName is the default name of an operator: their user name.
func operatorName() string {
	if user := os.Getenv("USER"); user != "" {
		return user
	}
	return "operator"
}

func newTokenCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "token",
		Short: "Show or rotate the join tokens of managers and workers",
	}
	show := &cobra.Command{
		Use:     "show manager|worker",
		Short:   "Print a role's join token",
		Example: "  clusterctl agent --token $(clusterctl token show worker) ...",
		Args:    cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return printToken(cmd, g, args[0], false)
		},
	}
	rotate := &cobra.Command{
		Use:   "rotate manager|worker",
		Short: "Replace a role's join token: the old one stops working, nodes that joined keep theirs",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return printToken(cmd, g, args[0], true)
		},
	}
	cmd.AddCommand(show, rotate)
	return cmd
}

// printToken prints a role's token, rotated first if asked.
func printToken(cmd *cobra.Command, g *globals, role string, rotate bool) error {
	if role != pki.RoleManager && role != pki.RoleWorker {
		return fmt.Errorf("role %q: want %s or %s", role, pki.RoleManager, pki.RoleWorker)
	}
	c, err := g.apiClient()
	if err != nil {
		return err
	}
	get := c.Token
	if rotate {
		get = c.RotateToken
	}
	tok, err := get(cmd.Context(), role)
	if err != nil {
		return err
	}
	fmt.Fprintln(cmd.OutOrStdout(), tok.Token)
	return nil
}
