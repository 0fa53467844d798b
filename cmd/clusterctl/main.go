// Command clusterctl is the one binary of clusterctl: user commands, the
// daemons and the lab.
package main

import (
	"os"

	"github.com/clusterctl/clusterctl/cli"
)

func main() { os.Exit(cli.Main(os.Args[1:])) }
