package clicks_test

import (
	"context"
	"encoding/json"
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/sluice-io/sluice/apps/clicks"
	"github.com/sluice-io/sluice/broker"
	"github.com/sluice-io/sluice/internal/browsertest"
	"github.com/sluice-io/sluice/store/pebble"
)

func TestMonitorShowsPartitionsLagAndLooksUpAKeyInABrowser(t *testing.T) {
	browser := browsertest.Start(t, 1280, 1100, 90*time.Second)
	b, err := broker.Start(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()

	ctx, cancel := context.WithCancel(context.Background())
	monitor := make(chan string, 1)
	done := make(chan error, 1)
	go func() {
		done <- clicks.Run(ctx, clicks.Config{
			Brokers:      b.Addrs(),
			HTTPAddr:     "127.0.0.1:0",
			Interval:     5 * time.Millisecond,
			Storage:      pebble.Builder(t.TempDir()),
			MonitorAddr:  "127.0.0.1:0",
			MonitorReady: func(addr net.Addr) { monitor <- "http://" + addr.String() + "/" },
		})
	}()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("clicks stopped with error: %v", err)
		}
	}()
	var url string
	select {
	case url = <-monitor:
	case err := <-done:
		t.Fatalf("clicks did not start: %v", err)
	case <-time.After(30 * time.Second):
		t.Fatal("the monitor did not start within 30s")
	}

	if err := chromedp.Do(browser, chromedp.Navigate(url)); err != nil {
		t.Fatalf("open %s: %v", url, err)
	}
	// Every partition of mini-group is listed, running, with a measured
	// lag, and some with a committed offset; the records/s chart has a few
	// points; the view is running.
	_, err = chromedp.Run(browser, chromedp.Poll[bool](`(() => {
		const rows = document.querySelectorAll('.group[data-group="mini-group"] tr[data-partition]');
		if (rows.length !== 10) return false;
		let committed = 0;
		for (const r of rows) {
			if (r.querySelector('.state').textContent !== 'running') return false;
			if (!/^[0-9,]+$/.test(r.querySelector('.lag').textContent)) return false;
			if (/^[0-9,]+$/.test(r.querySelector('.committed').textContent)) committed++;
		}
		const line = document.querySelector('.group[data-group="mini-group"] polyline');
		if (committed === 0 || line === null || line.getAttribute('points').split(' ').length < 3) return false;
		const v = document.querySelector('#views tr[data-view="mini-group-table"]');
		return v !== null && v.textContent.includes('running');
	})()`, chromedp.WithPollingTimeout(60*time.Second)))
	if err != nil {
		t.Fatalf("partitions, lag and the view did not render: %v", err)
	}
	err = chromedp.Do(browser,
		chromedp.SendKeys(chromedp.CSS("#browse-key"), "user-3"),
		chromedp.Click(chromedp.CSS("#browse-get")),
		chromedp.WaitVisible(chromedp.CSS("#browse-value")),
	)
	if err != nil {
		t.Fatalf("look up user-3: %v", err)
	}
	value, err := chromedp.Run(browser, chromedp.Text(chromedp.CSS("#browse-value")))
	if err != nil {
		t.Fatal(err)
	}
	screenshot, err := chromedp.Run(browser, chromedp.FullScreenshot(100))
	if err != nil {
		t.Fatal(err)
	}
	var u clicks.User
	if err := json.Unmarshal([]byte(value), &u); err != nil || u.Clicks < 1 {
		t.Errorf("the table browser shows %q for user-3, want its row with clicks", value)
	}
	dir := os.Getenv("SLUICE_SCREENSHOT_DIR")
	if dir == "" {
		dir = t.TempDir()
	}
	path := filepath.Join(dir, "monitor.png")
	if err := os.WriteFile(path, screenshot, 0o644); err != nil {
		t.Fatal(err)
	}
	t.Logf("screenshot of the monitor: %s", path)
}
