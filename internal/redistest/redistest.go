// Package redistest starts a real redis-server for a test.
//
// Each Start runs a server of its own on a free local port, with
// persistence off and its working directory in the test's temporary
// directory, and stops it when the test ends. When redis-server is not
// installed the test is skipped, with the command that installs it.
package redistest

import (
	"bufio"
	"bytes"
	"fmt"
	"net"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	goredis "github.com/redis/go-redis/v9"
)

// startTimeout bounds how long a server may take to answer its first PING.
const startTimeout = 15 * time.Second

// Server is a running redis-server.
type Server struct {
	// Addr is the server's host:port.
	Addr string

	cmd    *exec.Cmd
	exited chan struct{}
	out    *syncBuffer
	stop   sync.Once
}

// Start starts a redis-server and returns once it answers PING. The server
// is killed when t ends. Start skips t when redis-server is not in PATH.
func Start(t testing.TB) *Server {
	t.Helper()
	bin, err := exec.LookPath("redis-server")
	if err != nil {
		t.Skip("redis-server not found in PATH; install it (apt-get install redis-server) to run this test")
	}
	dir := t.TempDir()
	// A free port can be taken by someone else before the server binds it;
	// a server that cannot bind is started again on another port.
	var lastErr error
	for range 3 {
		s, err := start(bin, dir)
		if err == nil {
			t.Cleanup(s.Stop)
			return s
		}
		lastErr = err
	}
	t.Fatalf("start redis-server: %v", lastErr)
	return nil
}

func start(bin, dir string) (*Server, error) {
	port, err := freePort()
	if err != nil {
		return nil, err
	}
	addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
	s := &Server{Addr: addr, exited: make(chan struct{}), out: new(syncBuffer)}
	s.cmd = exec.Command(bin,
		"--port", strconv.Itoa(port),
		"--bind", "127.0.0.1",
		"--save", "",
		"--appendonly", "no",
		"--daemonize", "no",
		"--dir", dir,
		"--loglevel", "warning",
	)
	s.cmd.Stdout = s.out
	s.cmd.Stderr = s.out
	setParentDeathSignal(s.cmd)
	if err := s.cmd.Start(); err != nil {
		return nil, err
	}
	go func() {
		_ = s.cmd.Wait()
		close(s.exited)
	}()

	deadline := time.Now().Add(startTimeout)
	for {
		select {
		case <-s.exited:
			return nil, fmt.Errorf("redis-server on %s exited at start: %s", addr, strings.TrimSpace(s.out.String()))
		default:
		}
		if err := ping(addr); err == nil {
			return s, nil
		} else if time.Now().After(deadline) {
			s.Stop()
			return nil, fmt.Errorf("redis-server on %s did not answer PING within %v: %v; its output: %s",
				addr, startTimeout, err, strings.TrimSpace(s.out.String()))
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// Client returns a client of the server, closed when t ends.
func (s *Server) Client(t testing.TB) *goredis.Client {
	t.Helper()
	c := goredis.NewClient(&goredis.Options{Addr: s.Addr})
	t.Cleanup(func() { _ = c.Close() })
	return c
}

// Stop kills the server and waits until it has exited. It may be called
// more than once; the server is stopped when the test ends in any case.
func (s *Server) Stop() {
	s.stop.Do(func() {
		_ = s.cmd.Process.Kill()
		<-s.exited
	})
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("find a free port: %w", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// ping sends one inline PING and expects PONG.
func ping(addr string) error {
	conn, err := net.DialTimeout("tcp", addr, time.Second)
	if err != nil {
		return err
	}
	defer conn.Close()
	if err := conn.SetDeadline(time.Now().Add(time.Second)); err != nil {
		return err
	}
	if _, err := conn.Write([]byte("PING\r\n")); err != nil {
		return err
	}
	line, err := bufio.NewReader(conn).ReadString('\n')
	if err != nil {
		return err
	}
	if strings.TrimSpace(line) != "+PONG" {
		return fmt.Errorf("PING answered %q", strings.TrimSpace(line))
	}
	return nil
}

// syncBuffer collects a process's output while it runs.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}
