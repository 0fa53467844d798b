package transfer

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"golang.org/x/sys/unix"
)

// Sender is the source side of a move: it brings a target's staging copy
// of a volume up to date round by round, then commits it. It never
// modifies the source directory (it reads with O_NOATIME where allowed).
// It remembers the chunk hashes of the files it read, per source
// directory, keyed by (device, inode, size, mtime, ctime), so a round
// re-reads only the files that changed since the last one; a successful
// Commit forgets that directory. Safe for concurrent use on different
// volumes.
type Sender struct {
	// Client talks to the targets' data ports; it must not time out a
	// whole request (a round of a big volume takes as long as it takes).
	Client *http.Client
	Log    *slog.Logger

	mu     sync.Mutex
	caches map[string]*hashCache // by source directory
	rounds map[string]int        // by target and volume: rounds since the last commit or abort
	// racy is how recently a file may have changed and still have its
	// hashes remembered: a file written again within the file system's
	// timestamp granularity of our read would keep its stat, so its hashes
	// are not trusted until its ctime is this old.
	racy time.Duration
}

// NewSender returns a sender using client, or when nil, a client made for
// bulk transfers (large buffers, no overall timeout).
func NewSender(client *http.Client) *Sender {
	if client == nil {
		client = &http.Client{Transport: &http.Transport{
			Proxy:              nil,
			DisableCompression: true,
			WriteBufferSize:    256 << 10,
			ReadBufferSize:     64 << 10,
			IdleConnTimeout:    90 * time.Second,
		}}
	}
	return &Sender{Client: client, racy: 2 * time.Second}
}

func (s *Sender) log() *slog.Logger {
	if s.Log != nil {
		return s.Log
	}
	return slog.Default()
}

// fileKey is what a cached file's hashes are valid for: any write changes
// its ctime (and mtime, usually size).
type fileKey struct {
	dev, ino           uint64
	size, mtime, ctime int64
}

func keyOf(st *unix.Stat_t) fileKey {
	return fileKey{dev: st.Dev, ino: st.Ino, size: st.Size, mtime: st.Mtim.Nano(), ctime: st.Ctim.Nano()}
}

// hashCache holds the chunk hashes of one source directory's files.
type hashCache struct {
	mu    sync.Mutex
	files map[fileKey]*cachedFile
	round int
}

type cachedFile struct {
	chunks hashList
	round  int // the last round that saw the file
}

// cache returns srcDir's cache.
func (s *Sender) cache(srcDir string) *hashCache {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.caches == nil {
		s.caches = map[string]*hashCache{}
	}
	c := s.caches[srcDir]
	if c == nil {
		c = &hashCache{files: map[fileKey]*cachedFile{}}
		s.caches[srcDir] = c
	}
	return c
}

// begin starts a round on the cache and returns its number.
func (c *hashCache) begin() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.round++
	return c.round
}

// get returns a file's hashes if its stat has not changed since they were
// taken.
func (c *hashCache) get(k fileKey, round int) (hashList, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	f := c.files[k]
	if f == nil {
		return nil, false
	}
	f.round = round
	return f.chunks, true
}

func (c *hashCache) put(k fileKey, chunks hashList, round int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.files[k] = &cachedFile{chunks: chunks, round: round}
}

// prune forgets the files a complete round did not see: deleted or
// changed since.
func (c *hashCache) prune(round int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for k, f := range c.files {
		if f.round < round {
			delete(c.files, k)
		}
	}
}

// remember caches a file's hashes unless it changed too recently to trust
// its stat (see racy).
func (s *Sender) remember(c *hashCache, k fileKey, chunks hashList, round int) {
	if time.Since(time.Unix(0, k.ctime)) > s.racy {
		c.put(k, chunks, round)
	}
}

// hashingScanner returns a scanner that hashes srcDir's files through its
// cache and reports skipped special files.
func (s *Sender) hashingScanner(c *hashCache, round int, sk *skips) *scanner {
	return &scanner{
		hash: true,
		known: func(_ string, st *unix.Stat_t) (hashList, bool) {
			return c.get(keyOf(st), round)
		},
		hashed: func(_ string, st *unix.Stat_t, chunks hashList) {
			s.remember(c, keyOf(st), chunks, round)
		},
		skipped: sk.add,
	}
}

// skips counts what a walk of the source left out or could not keep.
type skips struct {
	special   []string // devices, fifos, sockets
	hardlinks int      // regular files with more than one name
}

func (k *skips) add(rel string, _ *unix.Stat_t) { k.special = append(k.special, rel) }

// warn logs what was skipped, once per walk.
func (k *skips) warn(log *slog.Logger, volume string) {
	if n := len(k.special); n > 0 {
		log.Warn("transfer: devices, fifos and sockets are not copied", "volume", volume,
			"count", n, "first", k.special[:min(n, 5)])
	}
	if k.hardlinks > 0 {
		log.Warn("transfer: hard links are copied as independent files", "volume", volume, "files", k.hardlinks)
	}
}

// target is a volume's transfer endpoints on one target.
type target struct {
	base string // .../v1/transfer/VOLUME
	host string
	key  string // target and volume, for round numbers
}

func newTarget(targetURL, volume string) (target, error) {
	if err := checkVolume(volume); err != nil {
		return target{}, err
	}
	u, err := url.Parse(targetURL)
	if err != nil || u.Host == "" || (u.Scheme != "http" && u.Scheme != "https") {
		return target{}, fmt.Errorf("bad target URL %q: want https://host:port", targetURL)
	}
	base := strings.TrimRight(targetURL, "/") + "/v1/transfer/" + url.PathEscape(volume)
	return target{base: base, host: u.Host, key: u.Host + "/" + volume}, nil
}

// RemoteError is a target's refusal or failure, as the target put it.
type RemoteError struct {
	Host   string // the target's host:port
	Status int    // the HTTP status that goes with it
	Msg    string
}

// Error reads "target HOST: what the target said".
func (e *RemoteError) Error() string { return "target " + e.Host + ": " + e.Msg }

// ErrTargetFull matches (errors.Is) a RemoteError saying the target ran
// out of disk space or quota: a caller may pick another target.
var ErrTargetFull = errors.New("target disk full")

// Is makes errors.Is(err, ErrTargetFull) work.
func (e *RemoteError) Is(target error) bool {
	return target == ErrTargetFull && e.Status == http.StatusInsufficientStorage
}

// call sends a request and returns a 2xx response, or the target's error.
func (s *Sender) call(ctx context.Context, t target, method, suffix string, body io.Reader) (*http.Response, error) {
	req, err := http.NewRequestWithContext(ctx, method, t.base+suffix, body)
	if err != nil {
		return nil, err
	}
	resp, err := s.Client.Do(req)
	if err != nil {
		return nil, err
	}
	if resp.StatusCode/100 == 2 {
		return resp, nil
	}
	defer resp.Body.Close()
	msg, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
	if len(msg) == 0 {
		msg = []byte(resp.Status)
	}
	return nil, &RemoteError{Host: t.host, Status: resp.StatusCode, Msg: oneLine(string(msg))}
}

// fetchManifest returns the target's manifest of its staging copy.
func (s *Sender) fetchManifest(ctx context.Context, t target) (*manifest, error) {
	resp, err := s.call(ctx, t, http.MethodGet, "/manifest", nil)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	m, err := decodeManifest(resp.Body)
	if err != nil {
		return nil, fmt.Errorf("target's manifest: %w", err)
	}
	return m, nil
}

// nextRound counts a round to a target.
func (s *Sender) nextRound(key string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.rounds == nil {
		s.rounds = map[string]int{}
	}
	s.rounds[key]++
	return s.rounds[key]
}

func (s *Sender) resetRounds(key string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.rounds, key)
}

// Commit sends the source's full manifest (every file's chunk hashes, from
// the cache where the file did not change); the target checks its staging
// copy against it (every entry: type, size, mode, owner, symlink target,
// content), fsyncs it and switches it in as the live directory by rename,
// then answers. On any difference nothing is switched and the error names
// the first bad path; another Round repairs it. Call it after the last
// Round, once nothing writes to srcDir any more.
func (s *Sender) Commit(ctx context.Context, targetURL, volume, srcDir string) error {
	t, err := newTarget(targetURL, volume)
	if err != nil {
		return fmt.Errorf("commit volume %s: %w", volume, err)
	}
	if err := s.commit(ctx, t, volume, srcDir); err != nil {
		return fmt.Errorf("commit volume %s to %s: %w", volume, t.host, err)
	}
	s.resetRounds(t.key)
	s.forget(srcDir) // moved: the caller removes it
	return nil
}

// forget drops srcDir's cache.
func (s *Sender) forget(srcDir string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.caches, srcDir)
}

func (s *Sender) commit(ctx context.Context, t target, volume, srcDir string) error {
	c := s.cache(srcDir)
	sk := &skips{}
	m, err := s.hashingScanner(c, c.begin(), sk).scan(ctx, srcDir)
	if err != nil {
		return fmt.Errorf("read source: %w", err)
	}
	sk.warn(s.log(), volume)
	pr, pw := io.Pipe()
	done := make(chan struct{})
	go func() {
		defer close(done)
		pw.CloseWithError(m.encode(pw))
	}()
	resp, err := s.call(ctx, t, http.MethodPost, "/commit", pr)
	pr.Close()
	<-done
	if err != nil {
		return err
	}
	resp.Body.Close()
	return nil
}

// Flush makes the target's staging copy of volume durable. Call it after
// the pre-copy rounds: the commit, which runs while the volume's writer is
// stopped, then flushes only what the last round wrote.
func (s *Sender) Flush(ctx context.Context, targetURL, volume string) error {
	_, err := s.bodiless(ctx, "flush", http.MethodPost, targetURL, volume, "/flush")
	return err
}

// Abort makes the target drop its staging copy of volume; dropping none
// is fine, so Abort may be repeated.
func (s *Sender) Abort(ctx context.Context, targetURL, volume string) error {
	t, err := s.bodiless(ctx, "abort", http.MethodDelete, targetURL, volume, "")
	if err == nil {
		s.resetRounds(t.key)
	}
	return err
}

// bodiless sends a request without a body for volume to the target at
// targetURL, where suffix follows the volume's path; what names it in
// errors.
func (s *Sender) bodiless(ctx context.Context, what, method, targetURL, volume, suffix string) (target, error) {
	t, err := newTarget(targetURL, volume)
	if err != nil {
		return t, fmt.Errorf("%s volume %s: %w", what, volume, err)
	}
	resp, err := s.call(ctx, t, method, suffix, nil)
	if err != nil {
		return t, fmt.Errorf("%s volume %s on %s: %w", what, volume, t.host, err)
	}
	resp.Body.Close()
	return t, nil
}
