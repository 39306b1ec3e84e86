//go:build linux

package adtrack

import (
	"fmt"
	"net"
	"strings"
	"syscall"
	"testing"
	"time"
)

// unaccepting is a loopback address whose listener never accepts and whose
// accept queue is full, so that Linux drops further connection attempts and
// a dial hangs until its timeout.
func unaccepting(t *testing.T) string {
	fd, err := syscall.Socket(syscall.AF_INET, syscall.SOCK_STREAM, 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { syscall.Close(fd) })
	if err := syscall.Bind(fd, &syscall.SockaddrInet4{Addr: [4]byte{127, 0, 0, 1}}); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Listen(fd, 0); err != nil {
		t.Fatal(err)
	}
	sa, err := syscall.Getsockname(fd)
	if err != nil {
		t.Fatal(err)
	}
	addr := fmt.Sprintf("127.0.0.1:%d", sa.(*syscall.SockaddrInet4).Port)
	// With a backlog of 0 the queue holds one connection: this one.
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return addr
}

func TestSendTimesOutOnANetworkThatDoesNotAcceptConnections(t *testing.T) {
	addr := unaccepting(t)
	s := &Sender{ConnectTimeout: 50 * time.Millisecond, Attempts: 2, Backoff: time.Millisecond}
	res := send(t, s, Request{URL: "http://" + addr + "/pix"})
	if res.Status != StatusFailed || res.Code != 0 || res.Attempts != 2 || !strings.Contains(res.Error, "dial tcp") || !strings.Contains(res.Error, "timeout") {
		t.Fatalf("%+v", res)
	}
}
