package agent

import (
	"os"
	"syscall"
	"testing"
)

func TestPluginSocketsAreForRootAndDocker(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Fatal("this test needs root (it chowns the socket), as the agent does")
	}
	dir := t.TempDir()
	l, err := listenPlugin(dir, "clustervol")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	info, err := os.Stat(dir + "/clustervol.sock")
	if err != nil {
		t.Fatal(err)
	}
	st := info.Sys().(*syscall.Stat_t)
	if perm := info.Mode().Perm(); perm != 0o660 || st.Uid != 0 || int(st.Gid) != pluginGID() {
		t.Errorf("socket mode %o owner %d:%d, want 0660 root:%d", perm, st.Uid, st.Gid, pluginGID())
	}
}
