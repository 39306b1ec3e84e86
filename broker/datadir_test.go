package broker

import (
	"path/filepath"
	"runtime"
	"testing"
)

func TestDefaultDataDirHonoursXDGDataHome(t *testing.T) {
	xdg := filepath.Join(t.TempDir(), "data")
	t.Setenv("XDG_DATA_HOME", xdg)
	got, err := DefaultDataDir()
	if err != nil {
		t.Fatal(err)
	}
	if want := filepath.Join(xdg, "sluice", "broker"); got != want {
		t.Errorf("DefaultDataDir() = %q, want %q", got, want)
	}
}

func TestDefaultDataDirUsesHomeAndNeverTheWorkingDirectory(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("checks the Linux location")
	}
	home := t.TempDir()
	t.Setenv("HOME", home)
	// The XDG specification says a relative XDG_DATA_HOME is to be ignored.
	t.Setenv("XDG_DATA_HOME", "relative/dir")
	got, err := DefaultDataDir()
	if err != nil {
		t.Fatal(err)
	}
	if want := filepath.Join(home, ".local", "share", "sluice", "broker"); got != want {
		t.Errorf("DefaultDataDir() = %q, want %q", got, want)
	}

	t.Setenv("HOME", "")
	if got, err := DefaultDataDir(); err == nil {
		t.Errorf("DefaultDataDir() without a home directory = %q, want an error", got)
	}
}
