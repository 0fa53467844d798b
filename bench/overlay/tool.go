package main

import (
	"bufio"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"slices"
	"time"
)

// Tool settings.
const (
	streamFor  = 3 * time.Second
	roundTrips = 20000
	reachFor   = 30 * time.Second
	reachPoll  = 2 * time.Millisecond
)

// toolMain runs one end of a measurement inside a namespace.
func toolMain(mode string, args []string) error {
	fs := flag.NewFlagSet(mode, flag.ContinueOnError)
	listen := fs.String("listen", "", "serve: host:port")
	conns := fs.Int("conns", 2, "serve: connections to answer before exiting")
	to := fs.String("to", "", "client: host:port")
	what := fs.String("mode", "stream", "client: stream, rr or reach")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if mode == "serve" {
		return serve(*listen, *conns)
	}
	var r result
	var err error
	switch *what {
	case "stream":
		r, err = stream(*to)
	case "rr":
		r, err = roundTrip(*to)
	case "reach":
		r, err = reach(*to)
	default:
		err = fmt.Errorf("unknown mode %q", *what)
	}
	if err != nil {
		return err
	}
	return json.NewEncoder(os.Stdout).Encode(r)
}

// serve answers conns connections, by their first byte: 's' streams in
// (read and dropped, then acknowledged), 'r' echoes every byte back. It
// then exits: killing the command that started it (lab exec) would not
// always reach it.
func serve(listen string, conns int) error {
	l, err := net.Listen("tcp", listen)
	if err != nil {
		return err
	}
	defer l.Close()
	fmt.Println("listening")
	for range conns {
		c, err := l.Accept()
		if err != nil {
			return err
		}
		answer(c)
	}
	return nil
}

func answer(c net.Conn) {
	defer c.Close()
	kind := make([]byte, 1)
	if _, err := io.ReadFull(c, kind); err != nil {
		return
	}
	if kind[0] == 's' {
		_, _ = io.Copy(io.Discard, c)
		_, _ = c.Write([]byte{'.'})
		return
	}
	_, _ = io.Copy(c, c)
}

// stream sends as much as it can for streamFor and reports the rate the
// server acknowledged.
func stream(to string) (result, error) {
	c, err := net.Dial("tcp", to)
	if err != nil {
		return result{}, err
	}
	defer c.Close()
	buf := make([]byte, 256<<10)
	buf[0] = 's'
	var n int64
	start := time.Now()
	for time.Since(start) < streamFor {
		w, err := c.Write(buf)
		n += int64(w)
		if err != nil {
			return result{}, err
		}
		buf[0] = 0
	}
	if err := c.(*net.TCPConn).CloseWrite(); err != nil {
		return result{}, err
	}
	if _, err := io.ReadFull(c, make([]byte, 1)); err != nil {
		return result{}, fmt.Errorf("no acknowledgement: %w", err)
	}
	return result{BytesPerSec: float64(n) / time.Since(start).Seconds()}, nil
}

// roundTrip times roundTrips one-byte exchanges.
func roundTrip(to string) (result, error) {
	c, err := net.Dial("tcp", to)
	if err != nil {
		return result{}, err
	}
	defer c.Close()
	if err := c.(*net.TCPConn).SetNoDelay(true); err != nil {
		return result{}, err
	}
	if _, err := c.Write([]byte{'r'}); err != nil {
		return result{}, err
	}
	r := bufio.NewReader(c)
	times := make([]time.Duration, 0, roundTrips)
	b := []byte{'x'}
	for range roundTrips {
		start := time.Now()
		if _, err := c.Write(b); err != nil {
			return result{}, err
		}
		if _, err := r.ReadByte(); err != nil {
			return result{}, err
		}
		times = append(times, time.Since(start))
	}
	slices.Sort(times)
	return result{RTTp50NS: int64(times[len(times)/2]), RTTp99NS: int64(times[len(times)*99/100])}, nil
}

// reach dials to until a connection is made and reports how long that
// took from the start.
func reach(to string) (result, error) {
	start := time.Now()
	for time.Since(start) < reachFor {
		c, err := net.DialTimeout("tcp", to, 50*time.Millisecond)
		if err == nil {
			c.Close()
			return result{ReachNS: time.Since(start).Nanoseconds()}, nil
		}
		time.Sleep(reachPoll)
	}
	return result{}, errors.New("never reached " + to)
}
