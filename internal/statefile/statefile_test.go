package statefile

import (
	"os"
	"path/filepath"
	"testing"
)

func TestSaveLoad(t *testing.T) {
	file := filepath.Join(t.TempDir(), "sub", "state.json")
	var missing map[string]int
	if err := Load(file, &missing); err != nil || missing != nil {
		t.Fatalf("load a missing file: %v, %v", missing, err)
	}
	if err := Save(file, map[string]int{"a": 1}); err != nil {
		t.Fatal(err)
	}
	var got map[string]int
	if err := Load(file, &got); err != nil || got["a"] != 1 {
		t.Fatalf("load: %v, %v", got, err)
	}
	if st, err := os.Stat(file); err != nil || st.Mode().Perm() != 0o600 {
		t.Errorf("mode %v, %v", st.Mode(), err)
	}
	if err := os.WriteFile(file, []byte("{"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := Load(file, &got); err == nil {
		t.Error("a corrupt file loaded")
	}
}
