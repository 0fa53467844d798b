// Package compose loads Compose files (with compose-go, as docker compose
// does: several files merged, .env and environment interpolation, profiles)
// and checks them for what clusterctl can deploy: every key it does not
// honour is named in a warning, never silently dropped, and what it cannot
// deploy at all is an error before anything is created.
package compose

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sort"
	"strings"

	"github.com/compose-spec/compose-go/v2/cli"
	"github.com/compose-spec/compose-go/v2/types"
)

// Options says which Compose files to load and how.
type Options struct {
	Files    []string // merged in order, as `docker compose -f a -f b`
	Project  string   // project name; default from the files or their directory
	Profiles []string // enabled profiles
	WorkDir  string   // where .env and relative paths resolve; default the first file's directory
}

// App is a loaded Compose project ready to schedule.
type App struct {
	Project *types.Project
	// Order lists the services dependencies first: the order containers
	// are created and started in.
	Order    []string
	Warnings []string
}

// Load reads, merges, interpolates and checks Compose files.
func Load(ctx context.Context, opts Options) (*App, error) {
	if len(opts.Files) == 0 {
		return nil, errors.New("no Compose file: pass -f FILE")
	}
	po, err := projectOptions(opts)
	if err != nil {
		return nil, err
	}
	model, err := po.LoadModel(ctx)
	if err != nil {
		return nil, fmt.Errorf("load %s: %w", strings.Join(opts.Files, ", "), err)
	}
	project, err := po.LoadProject(ctx)
	if err != nil {
		return nil, fmt.Errorf("load %s: %w", strings.Join(opts.Files, ", "), err)
	}
	if err := checkDeployable(project); err != nil {
		return nil, err
	}
	order, err := dependencyOrder(project)
	if err != nil {
		return nil, err
	}
	return &App{Project: project, Order: order, Warnings: unsupported(model, project)}, nil
}

func projectOptions(opts Options) (*cli.ProjectOptions, error) {
	fns := []cli.ProjectOptionsFn{cli.WithOsEnv, cli.WithEnvFiles(), cli.WithDotEnv, cli.WithProfiles(opts.Profiles)}
	if opts.WorkDir != "" {
		// Before the env files: the default .env is looked up there.
		fns = append([]cli.ProjectOptionsFn{cli.WithWorkingDirectory(opts.WorkDir)}, fns...)
	}
	if opts.Project != "" {
		fns = append(fns, cli.WithName(opts.Project))
	}
	po, err := cli.NewProjectOptions(opts.Files, fns...)
	if err != nil {
		return nil, fmt.Errorf("compose options: %w", err)
	}
	return po, nil
}

// checkDeployable refuses services clusterctl cannot run: it deploys
// images, it does not build them.
func checkDeployable(p *types.Project) error {
	for _, name := range sortedServiceNames(p) {
		svc := p.Services[name]
		if svc.Image == "" {
			if svc.Build != nil {
				return fmt.Errorf("service %s has build: and no image: clusterctl deploys images; build the image, load or push it to the hosts, and name it in image:", name)
			}
			return fmt.Errorf("service %s has no image", name)
		}
	}
	return nil
}

// dependencyOrder sorts services so that every service comes after those
// it depends on, refusing cycles with the cycle spelled out.
func dependencyOrder(p *types.Project) ([]string, error) {
	const (
		unvisited = iota
		visiting
		done
	)
	state := map[string]int{}
	var order, path []string
	var visit func(name string) error
	visit = func(name string) error {
		switch state[name] {
		case done:
			return nil
		case visiting:
			i := slices.Index(path, name)
			return fmt.Errorf("dependency cycle: %s", strings.Join(append(path[i:], name), " -> "))
		}
		svc, ok := p.Services[name]
		if !ok {
			return fmt.Errorf("service %s depends on undefined service %s", path[len(path)-1], name)
		}
		state[name] = visiting
		path = append(path, name)
		deps := make([]string, 0, len(svc.DependsOn))
		for dep := range svc.DependsOn {
			deps = append(deps, dep)
		}
		sort.Strings(deps)
		for _, dep := range deps {
			if err := visit(dep); err != nil {
				return err
			}
		}
		path = path[:len(path)-1]
		state[name] = done
		order = append(order, name)
		return nil
	}
	for _, name := range sortedServiceNames(p) {
		if err := visit(name); err != nil {
			return nil, err
		}
	}
	return order, nil
}

func sortedServiceNames(p *types.Project) []string {
	names := make([]string, 0, len(p.Services))
	for name := range p.Services {
		names = append(names, name)
	}
	sort.Strings(names)
	return names
}
