// Package benchtar is the benchmarks' baseline for moving data between lab
// hosts: a plain tar stream over the hosts' own network, unpacked on the
// target's disk and synced. Both ends run as the benchmark program itself
// inside the hosts (tar-send, tar-recv): a benchmark's main hands those
// arguments to Main.
package benchtar

import (
	"bufio"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"strings"
	"time"

	"golang.org/x/sys/unix"

	"github.com/clusterctl/clusterctl/bench/internal/benchcli"
	"github.com/clusterctl/clusterctl/internal/tarstream"
)

// tarPort is where the baseline's receiver listens on its host.
const tarPort = "9100"

// IsTool says whether a program's first argument asks for one end of the
// stream.
func IsTool(arg string) bool { return arg == "tar-send" || arg == "tar-recv" }

// tarTimes is what tar-send reports: until the receiver unpacked the
// stream, and until it also synced its disk.
type tarTimes struct {
	StreamNS int64 `json:"stream_ns"`
	SyncNS   int64 `json:"sync_ns"`
}

// Stream times the baseline: the tree at src on host from as a plain tar
// stream to host to, unpacked there into dst (which must not exist yet),
// until unpacked and until synced. The ends are this program, run inside
// the hosts by `clusterctl lab exec`.
func Stream(cli benchcli.CLI, from string, to benchcli.LabHost, src, dst string) (stream, synced time.Duration, err error) {
	self, err := os.Executable()
	if err != nil {
		return 0, 0, err
	}
	toName := to.Name
	addr := net.JoinHostPort(to.Addr, tarPort)
	recv := cli.Command("lab", "exec", toName, "--", self, "tar-recv", "-listen", addr, "-dir", dst)
	out, err := recv.StdoutPipe()
	if err != nil {
		return 0, 0, err
	}
	recv.Stderr = os.Stderr
	if err := recv.Start(); err != nil {
		return 0, 0, err
	}
	defer func() { _ = recv.Wait() }()
	if line, err := bufio.NewReader(out).ReadString('\n'); err != nil || strings.TrimSpace(line) != "listening" {
		_ = recv.Process.Kill()
		return 0, 0, fmt.Errorf("tar-recv on %s did not start: %q %v", toName, line, err)
	}
	res, err := cli.RunStdout("lab", "exec", from, "--", self, "tar-send", "-to", addr, "-dir", src)
	if err != nil {
		_ = recv.Process.Kill()
		return 0, 0, err
	}
	var t tarTimes
	if err := json.Unmarshal([]byte(res), &t); err != nil {
		return 0, 0, fmt.Errorf("tar-send: %w", err)
	}
	return time.Duration(t.StreamNS), time.Duration(t.SyncNS), nil
}

// Main runs one end of the stream inside a lab host.
func Main(mode string, args []string) error {
	fs := flag.NewFlagSet(mode, flag.ContinueOnError)
	addr := fs.String("to", "", "tar-send: the receiver's host:port")
	listen := fs.String("listen", "", "tar-recv: host:port to listen on")
	dir := fs.String("dir", "", "the tree to send, or the directory to unpack into")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if mode == "tar-send" {
		return tarSend(*addr, *dir)
	}
	return tarRecv(*listen, *dir)
}

// tarSend streams dir to addr and reports when the receiver acknowledged
// the unpacking ('x') and the sync ('s').
func tarSend(addr, dir string) error {
	start := time.Now()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		return err
	}
	defer c.Close()
	w := bufio.NewWriterSize(c, 256<<10)
	if err := tarstream.Write(w, dir); err != nil {
		return err
	}
	if err := w.Flush(); err != nil {
		return err
	}
	if err := c.(*net.TCPConn).CloseWrite(); err != nil {
		return err
	}
	var t tarTimes
	ack := make([]byte, 1)
	if _, err := io.ReadFull(c, ack); err != nil || ack[0] != 'x' {
		return fmt.Errorf("no unpack acknowledgement: %q %v", ack, err)
	}
	t.StreamNS = time.Since(start).Nanoseconds()
	if _, err := io.ReadFull(c, ack); err != nil || ack[0] != 's' {
		return fmt.Errorf("no sync acknowledgement: %q %v", ack, err)
	}
	t.SyncNS = time.Since(start).Nanoseconds()
	return json.NewEncoder(os.Stdout).Encode(t)
}

// tarRecv accepts one stream, unpacks it into dir, acknowledges, syncs
// dir's file system and acknowledges again.
func tarRecv(listen, dir string) error {
	l, err := net.Listen("tcp", listen)
	if err != nil {
		return err
	}
	defer l.Close()
	fmt.Println("listening")
	c, err := l.Accept()
	if err != nil {
		return err
	}
	defer c.Close()
	if err := tarstream.Extract(bufio.NewReaderSize(c, 256<<10), dir); err != nil {
		return err
	}
	if _, err := c.Write([]byte("x")); err != nil {
		return err
	}
	fd, err := unix.Open(dir, unix.O_RDONLY|unix.O_DIRECTORY, 0)
	if err != nil {
		return err
	}
	defer unix.Close(fd)
	if err := unix.Syncfs(fd); err != nil {
		return errors.Join(errors.New("syncfs"), err)
	}
	_, err = c.Write([]byte("s"))
	return err
}

// ServeIfAsked runs one end of the stream and exits when the program was
// started as one (its first argument tar-send or tar-recv); otherwise it
// returns and the benchmark goes on.
func ServeIfAsked(program string) {
	if len(os.Args) < 2 || !IsTool(os.Args[1]) {
		return
	}
	if err := Main(os.Args[1], os.Args[2:]); err != nil {
		fmt.Fprintln(os.Stderr, program+" "+os.Args[1]+": "+err.Error())
		os.Exit(1)
	}
	os.Exit(0)
}
