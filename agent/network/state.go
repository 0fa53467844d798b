package network

import (
	"fmt"
	"sync"

	"github.com/clusterctl/clusterctl/internal/statefile"
)

// Endpoint is what the driver keeps of one of Docker's endpoints.
type Endpoint struct {
	Network string `json:"network"` // the cluster network
	Addr    string `json:"addr"`    // with its prefix length, as Docker gave it
	MAC     string `json:"mac"`
}

// State is what Docker told the driver: which of its networks are which
// cluster network, and its endpoints. Docker does not repeat its calls
// after an agent restart, so it is kept in a file; the rest (devices,
// peers) is rebuilt from it and the store.
type State struct {
	file string
	mu   sync.Mutex
	data stateData
}

type stateData struct {
	Networks  map[string]string   `json:"networks"`  // Docker network ID -> cluster network
	VNIs      map[string]int      `json:"vnis"`      // cluster network -> its VNI, to remove its devices once the record is gone
	Endpoints map[string]Endpoint `json:"endpoints"` // Docker endpoint ID -> endpoint
}

// LoadState reads the state from file (empty if there is none).
func LoadState(file string) (*State, error) {
	s := &State{file: file}
	if err := statefile.Load(file, &s.data); err != nil {
		return nil, fmt.Errorf("network state: %w", err)
	}
	if s.data.Networks == nil {
		s.data.Networks = map[string]string{}
	}
	if s.data.Endpoints == nil {
		s.data.Endpoints = map[string]Endpoint{}
	}
	if s.data.VNIs == nil {
		s.data.VNIs = map[string]int{}
	}
	return s, nil
}

func (s *State) network(id string) (string, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	n, ok := s.data.Networks[id]
	return n, ok
}

// Networks lists the cluster networks Docker networks here stand for.
func (s *State) Networks() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	seen := map[string]bool{}
	var out []string
	for _, n := range s.data.Networks {
		if !seen[n] {
			seen[n] = true
			out = append(out, n)
		}
	}
	return out
}

func (s *State) networkInUse(name string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, n := range s.data.Networks {
		if n == name {
			return true
		}
	}
	return false
}

func (s *State) endpoint(id string) (Endpoint, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	ep, ok := s.data.Endpoints[id]
	return ep, ok
}

func (s *State) putNetwork(id, name string, vni int) error {
	return s.change(func(d *stateData) { d.Networks[id], d.VNIs[name] = name, vni })
}

func (s *State) vni(name string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.data.VNIs[name]
}

func (s *State) deleteNetwork(id string) error {
	return s.change(func(d *stateData) {
		name := d.Networks[id]
		delete(d.Networks, id)
		for _, n := range d.Networks {
			if n == name {
				return
			}
		}
		delete(d.VNIs, name)
	})
}

func (s *State) putEndpoint(id string, ep Endpoint) error {
	return s.change(func(d *stateData) { d.Endpoints[id] = ep })
}

func (s *State) deleteEndpoint(id string) error {
	return s.change(func(d *stateData) { delete(d.Endpoints, id) })
}

// change applies f and saves the state atomically, so a crash leaves the
// old state or the new.
func (s *State) change(f func(*stateData)) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	f(&s.data)
	if err := statefile.Save(s.file, s.data); err != nil {
		return fmt.Errorf("network state: %w", err)
	}
	return nil
}
