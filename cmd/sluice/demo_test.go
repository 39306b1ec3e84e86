package main

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"regexp"
	"testing"
	"time"
)

func TestDemoServesTheMonitor(t *testing.T) {
	t.Setenv("XDG_CACHE_HOME", t.TempDir()) // the processor's default state directory
	ctx, cancel := context.WithCancel(context.Background())
	out := &lockedBuffer{ch: make(chan string, 64)}
	cmd := newRootCmd()
	cmd.SetArgs([]string{"demo", "--in-memory", "--addr", "127.0.0.1:0", "--http", "127.0.0.1:0", "--monitor-addr", "127.0.0.1:0", "--log-level", "error"})
	cmd.SetOut(out)
	cmd.SetErr(out)
	done := make(chan error, 1)
	go func() { done <- cmd.ExecuteContext(ctx) }()
	defer func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("demo stopped with %v", err)
			}
		case <-time.After(30 * time.Second):
			t.Error("demo did not stop")
		}
	}()

	monitorLine := regexp.MustCompile(`monitor\s+(http://\S+/)`)
	var url string
	for url == "" {
		select {
		case s := <-out.ch:
			if m := monitorLine.FindStringSubmatch(s); m != nil {
				url = m[1]
			}
		case err := <-done:
			t.Fatalf("demo exited: %v", err)
		case <-time.After(30 * time.Second):
			t.Fatal("demo printed no monitor address")
		}
	}
	go func() {
		for range out.ch {
		}
	}()
	deadline := time.Now().Add(30 * time.Second)
	for {
		err := func() error {
			resp, err := http.Get(url + "api/state")
			if err != nil {
				return err
			}
			defer resp.Body.Close()
			var st struct {
				Groups []struct {
					Group      string
					Consumed   int64
					Partitions []struct{ State string }
				}
				Views []struct{ Name string }
			}
			if err := json.NewDecoder(resp.Body).Decode(&st); err != nil {
				return err
			}
			if len(st.Groups) != 1 || st.Groups[0].Group != "mini-group" || st.Groups[0].Consumed == 0 || len(st.Groups[0].Partitions) == 0 || len(st.Views) != 1 {
				return fmt.Errorf("state %+v", st)
			}
			return nil
		}()
		if err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("monitor at %s: %v", url, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
	resp, err := http.Get(url + "metrics")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Errorf("metrics: status %d", resp.StatusCode)
	}
}
