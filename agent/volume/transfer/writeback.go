package transfer

import (
	"os"

	"golang.org/x/sys/unix"
)

// writeback starts the write-out of the files a round finished, in a
// goroutine of its own: submitting a file's pages (and on ext4 allocating
// their blocks) costs about as much CPU as receiving them, and the
// receive must not wait for it. By the time the pre-copy's flush or the
// commit syncs the file system, most of the data is on disk already, so
// neither waits long.
type writeback struct {
	fds chan int
}

// writebackQueue bounds the files waiting: a file that does not fit is
// left to the flush.
const writebackQueue = 64

func startWriteback() *writeback {
	w := &writeback{fds: make(chan int, writebackQueue)}
	go func() {
		for fd := range w.fds {
			_ = unix.SyncFileRange(fd, 0, 0, unix.SYNC_FILE_RANGE_WRITE)
			_ = unix.Close(fd)
		}
	}()
	return w
}

// add queues f's write-out, on a descriptor of its own (f is closed
// soon).
func (w *writeback) add(f *os.File) {
	fd, err := unix.FcntlInt(f.Fd(), unix.F_DUPFD_CLOEXEC, 0)
	if err != nil {
		return
	}
	select {
	case w.fds <- fd:
	default:
		_ = unix.Close(fd)
	}
}

// stop lets the goroutine finish what is queued, and end.
func (w *writeback) stop() { close(w.fds) }
