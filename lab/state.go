package lab

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"time"

	"github.com/google/renameio/v2"
)

// State is what the lab remembers between commands: its addressing and,
// per host, whether it was powered off on purpose.
type State struct {
	Subnet        string      `json:"subnet"`
	Gateway       string      `json:"gateway"`
	StorageDriver string      `json:"storage_driver"`
	Managers      int         `json:"managers"` // host1..hostM run a manager
	Created       time.Time   `json:"created"`
	Hosts         []HostState `json:"hosts"`
}

// HostState is one host as the lab recorded it.
type HostState struct {
	Name    string `json:"name"`
	Addr    string `json:"addr"`
	MAC     string `json:"mac"`
	Stopped bool   `json:"stopped,omitempty"`
}

// errNoLab says no lab state exists on this machine.
var errNoLab = errors.New("no lab is up: run 'clusterctl lab up' first")

// loadState reads the state file; errNoLab if there is none.
func loadState(l Layout) (*State, error) {
	b, err := os.ReadFile(l.stateFile())
	if errors.Is(err, fs.ErrNotExist) {
		return nil, errNoLab
	}
	if err != nil {
		return nil, fmt.Errorf("read lab state: %w", err)
	}
	var s State
	if err := json.Unmarshal(b, &s); err != nil {
		return nil, fmt.Errorf("read lab state %s: %w", l.stateFile(), err)
	}
	return &s, nil
}

// save writes the state file.
func (s *State) save(l Layout) error {
	b, err := json.MarshalIndent(s, "", "  ")
	if err != nil {
		return fmt.Errorf("encode lab state: %w", err)
	}
	if err := os.MkdirAll(filepath.Dir(l.stateFile()), 0o755); err != nil {
		return fmt.Errorf("write lab state: %w", err)
	}
	// Atomic: a crash mid-write never leaves a lab no command can read.
	if err := renameio.WriteFile(l.stateFile(), b, 0o644); err != nil {
		return fmt.Errorf("write lab state: %w", err)
	}
	return nil
}

// host finds a host by name, with an error that lists the valid names.
func (s *State) host(name string) (*HostState, error) {
	for i := range s.Hosts {
		if s.Hosts[i].Name == name {
			return &s.Hosts[i], nil
		}
	}
	return nil, fmt.Errorf("no host %q in the lab: hosts are host1..host%d", name, len(s.Hosts))
}
