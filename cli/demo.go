package cli

import (
	"os"

	"github.com/spf13/cobra"

	"github.com/clusterctl/clusterctl/demo"
)

func newDemoCmd(g *globals) *cobra.Command {
	var images, compose string
	cmd := &cobra.Command{
		Use:   "demo",
		Short: "The DockerCon 2015 migration demo on a 3-host lab (what make demo runs)",
		Long: `Bring up a 3-host lab, deploy samples/dockercon/compose.yml (web front ends
counting visits in a database whose data is on a clustervol volume, all on
a clusternet network), put traffic on it, and move the database, then a
web front end, to other hosts while the visitors keep coming. After each
move it shows that the address stayed, that the counter went on from where
it was, and how long clients waited. The last line is for scripts:

  demo: ok moved=db from=HOST to=HOST ip_kept=true data_kept=true downtime_ms=N

or "demo: failed ..." with a non-zero exit. The lab stays up to look
around; clusterctl lab down removes it. Needs root, and the images make
images builds.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			self, err := os.Executable()
			if err != nil {
				return err
			}
			return demo.Run(cmd.Context(), demo.Options{Bin: self, Images: images, Compose: compose, Out: cmd.OutOrStdout(), Context: g.contextFlag})
		},
	}
	cmd.Flags().StringVar(&images, "images", "bin/images", "sample images to load into the lab's hosts")
	cmd.Flags().StringVarP(&compose, "file", "f", "samples/dockercon/compose.yml", "the demo's Compose file")
	return cmd
}
