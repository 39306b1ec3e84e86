package main

import (
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// TestEverySideCountsAndRestoresASmallInput builds the command and runs
// every side once on 3,000 records, including goka's memory restore, which
// is quick at this size: each side must finish, its checks must pass
// (outputs of every record, every row restored), and the tables must name
// every side.
func TestEverySideCountsAndRestoresASmallInput(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a broker and nine child processes")
	}
	exe := filepath.Join(t.TempDir(), "peers")
	if out, err := exec.Command("go", "build", "-o", exe, ".").CombinedOutput(); err != nil {
		t.Fatalf("build: %v\n%s", err, out)
	}
	all := append(append([]string{}, countSides...), restoreSides...)
	out, err := exec.Command(exe, "-records", "3000", "-runs", "1", "-sides", strings.Join(all, ",")).CombinedOutput()
	if err != nil {
		t.Fatalf("run: %v\n%s", err, out)
	}
	for _, name := range all {
		if !strings.Contains(string(out), "| 1 | "+name+" | ") {
			t.Errorf("no row of %s in\n%s", name, out)
		}
	}
	if strings.Contains(string(out), "output holds") {
		t.Errorf("a side's output does not hold a count for every record:\n%s", out)
	}
}
