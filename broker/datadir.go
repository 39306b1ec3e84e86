package broker

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
)

// ErrDataDirInUse is the error Start returns, wrapped, when another broker
// holds the data directory.
var ErrDataDirInUse = errors.New("data dir is in use by another broker")

// lockFileName is the file in a data directory that a running broker holds
// locked. kfake ignores files it does not know.
const lockFileName = "broker.lock"

// DefaultDataDir returns the directory where a broker that should outlive its
// process keeps its data: $XDG_DATA_HOME/sluice/broker when XDG_DATA_HOME is
// set to an absolute path, and otherwise the platform's per-user data
// directory: ~/.local/share/sluice/broker on Linux and other Unix systems,
// ~/Library/Application Support/sluice/broker on macOS and
// %LocalAppData%\sluice\broker on Windows. It never returns a relative path,
// and returns an error when the home directory is unknown rather than fall
// back to the working directory. It does not create the directory.
func DefaultDataDir() (string, error) {
	base, err := userDataDir()
	if err != nil {
		return "", fmt.Errorf("default data dir: %w", err)
	}
	return filepath.Join(base, "sluice", "broker"), nil
}

func userDataDir() (string, error) {
	// The XDG base directory specification says relative paths are invalid
	// and to be ignored.
	if dir := os.Getenv("XDG_DATA_HOME"); dir != "" && filepath.IsAbs(dir) {
		return dir, nil
	}
	switch runtime.GOOS {
	case "windows":
		dir := os.Getenv("LocalAppData")
		if dir == "" || !filepath.IsAbs(dir) {
			return "", errors.New("%LocalAppData% is not set to an absolute path")
		}
		return dir, nil
	case "darwin", "ios":
		home, err := homeDir()
		if err != nil {
			return "", err
		}
		return filepath.Join(home, "Library", "Application Support"), nil
	case "plan9":
		home, err := homeDir()
		if err != nil {
			return "", err
		}
		return filepath.Join(home, "lib"), nil
	default:
		home, err := homeDir()
		if err != nil {
			return "", err
		}
		return filepath.Join(home, ".local", "share"), nil
	}
}

func homeDir() (string, error) {
	home, err := os.UserHomeDir()
	if err != nil {
		return "", err
	}
	if !filepath.IsAbs(home) {
		return "", fmt.Errorf("home directory %q is not an absolute path", home)
	}
	return home, nil
}

// lockDataDir creates dir if needed and locks it for this broker. The
// returned file holds the lock until it is closed.
func lockDataDir(dir string) (*os.File, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("create data dir: %w", err)
	}
	path := filepath.Join(dir, lockFileName)
	f, err := os.OpenFile(path, os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		return nil, fmt.Errorf("open lock file: %w", err)
	}
	held, err := lockFile(f)
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("lock %s: %w", path, err)
	}
	if !held {
		f.Close()
		return nil, fmt.Errorf("%w: %s", ErrDataDirInUse, dir)
	}
	return f, nil
}

// syncDir flushes every file under dir to stable storage. kfake leaves
// record segments in the operating system's cache unless it fsyncs every
// write, which costs a synchronous disk write per produced batch; one pass on
// Close gives the same durability at shutdown for free.
func syncDir(dir string) error {
	return filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			if runtime.GOOS != "windows" { // directories cannot be opened for syncing there
				return syncPath(path, os.O_RDONLY)
			}
			return nil
		}
		if !d.Type().IsRegular() || d.Name() == lockFileName {
			return nil
		}
		return syncPath(path, os.O_RDWR)
	})
}

func syncPath(path string, flag int) error {
	f, err := os.OpenFile(path, flag, 0)
	if err != nil {
		return err
	}
	err = f.Sync()
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("sync %s: %w", path, err)
	}
	return nil
}

// sessionStateFile is where kfake, on a clean shutdown, writes the state it
// otherwise keeps only in memory: group members, open transactions, fetch
// sessions.
const sessionStateFile = "session_state.json"

// forgetGroupMembers removes the members of classic consumer groups from the
// session state a previous broker left in dir, keeping everything else in
// it (open transactions above all, which the next broker must still end).
//
// kfake restores those members with their assignments and session timers,
// and its handling of them is unreliable: the JoinGroup of a restored member
// can stay unanswered, two members can both be told they lead, a member
// that died while the broker was down can keep its partitions. Without
// them, each live member's next heartbeat is told its member ID is unknown
// and it joins again, as members do after a coordinator moves in a Kafka
// cluster; committed offsets are kept, so consumption resumes where it was.
func forgetGroupMembers(dir string) error {
	path := filepath.Join(dir, sessionStateFile)
	data, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("session state: %w", err)
	}
	var state map[string]json.RawMessage
	if err := json.Unmarshal(data, &state); err != nil {
		// kfake ignores a session state it cannot read; so do we.
		return nil
	}
	if _, ok := state["classicGroups"]; !ok {
		return nil
	}
	delete(state, "classicGroups")
	if data, err = json.Marshal(state); err != nil {
		return fmt.Errorf("session state: %w", err)
	}
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, data, 0o644); err != nil {
		return fmt.Errorf("session state: %w", err)
	}
	if err := os.Rename(tmp, path); err != nil {
		return fmt.Errorf("session state: %w", err)
	}
	return nil
}
