package redistest_test

import (
	"context"
	"net"
	"testing"

	"github.com/sluice-io/sluice/internal/redistest"
)

func TestStartRunsAServerThatStopsAtCleanup(t *testing.T) {
	ctx := context.Background()
	var srv *redistest.Server
	t.Run("server", func(t *testing.T) {
		srv = redistest.Start(t)
		c := srv.Client(t)
		if err := c.Set(ctx, "k", "v", 0).Err(); err != nil {
			t.Fatalf("set: %v", err)
		}
		if got, err := c.Get(ctx, "k").Result(); err != nil || got != "v" {
			t.Fatalf("get = %q, %v; want \"v\"", got, err)
		}
	})
	if srv == nil {
		t.SkipNow()
	}
	// The subtest's cleanup has stopped the server: nothing listens on its
	// address any more.
	if conn, err := net.Dial("tcp", srv.Addr); err == nil {
		conn.Close()
		t.Fatalf("server on %s still accepts connections after its test ended", srv.Addr)
	}
}

func TestServersOfOneTestAreIndependent(t *testing.T) {
	ctx := context.Background()
	a, b := redistest.Start(t), redistest.Start(t)
	if a.Addr == b.Addr {
		t.Fatalf("two servers on one address %s", a.Addr)
	}
	if err := a.Client(t).Set(ctx, "k", "a", 0).Err(); err != nil {
		t.Fatal(err)
	}
	if n, err := b.Client(t).Exists(ctx, "k").Result(); err != nil || n != 0 {
		t.Fatalf("key written to one server is in the other: exists = %d, %v", n, err)
	}
}
