package orchestrator

import (
	"context"
	"os"
	"path/filepath"
	"testing"

	"github.com/clusterctl/clusterctl/compose"
	"github.com/clusterctl/clusterctl/internal/checks"
	"github.com/clusterctl/clusterctl/spec"
)

// FuzzComposePlan feeds Compose files into what `clusterctl plan` does:
// load (compose-go), turn into an app, validate, and plan it on three
// hosts as a dry run. Whatever the input, nothing panics, and every
// refusal is one clear line. Its seed corpus is in testdata/fuzz.
func FuzzComposePlan(f *testing.F) {
	for _, seed := range []string{
		"services:\n  web:\n    image: sample/web:latest\n",
		"name: shop\nservices:\n  db:\n    image: sample/kvdb:latest\n    volumes: [data:/data]\n    deploy: {replicas: 2}\nvolumes:\n  data: {driver: clustervol}\n",
		"services:\n  web:\n    image: sample/web:latest\n    ports: [\"8080:8080\"]\n    depends_on: {db: {condition: service_healthy}}\n  db:\n    image: sample/kvdb:latest\n",
		"services:\n  a:\n    image: x\n    deploy:\n      placement:\n        constraints: [node.hostname == nowhere]\n",
		"services:\n  a:\n    image: x\n    networks: [back]\nnetworks:\n  back: {driver: clusternet}\n",
	} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, text string) {
		h := newHarness(t, 3)
		file := filepath.Join(t.TempDir(), "compose.yml")
		if err := os.WriteFile(file, []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
		loaded, err := compose.Load(context.Background(), compose.Options{Files: []string{file}, Project: "fuzz"})
		if err != nil {
			return // compose-go's refusal: its messages are its own
		}
		app, err := spec.FromCompose(loaded)
		if err != nil {
			checks.OneLine(t, "FromCompose", err)
			return
		}
		if _, err := h.o.Deploy(context.Background(), app, text, true); err != nil {
			checks.OneLine(t, "plan", err)
		}
	})
}
