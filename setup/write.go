package setup

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"time"

	"github.com/wharf-registry/wharf/internal/atomicfile"
)

// Change is one file to write: its bytes before (nil: no file) and after.
type Change struct {
	Path   string
	Before []byte
	After  []byte
}

// Changed reports whether applying the change would alter the file.
func (c Change) Changed() bool {
	return c.Before == nil || !bytes.Equal(c.Before, c.After)
}

// ErrChangedSincePlan means the file on disk no longer holds the bytes the
// change was planned from; plan again.
var ErrChangedSincePlan = errors.New("the file changed since the change was planned; run the command again")

// Apply writes c.After to c.Path. An existing file is first copied to
// PATH.wharf-backup-TIMESTAMP (returned), and replaced only if it still
// holds c.Before; the new bytes go to a temp file in the same directory,
// are synced and renamed over it, so a reader sees the old file or the
// new one, never half of one. A missing directory is created.
func Apply(c Change, now time.Time) (backup string, err error) {
	if !c.Changed() {
		return "", nil
	}
	mode := fs.FileMode(0o644)
	cur, err := os.ReadFile(c.Path)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		if c.Before != nil {
			return "", fmt.Errorf("%s: %w", c.Path, ErrChangedSincePlan)
		}
		if err := os.MkdirAll(filepath.Dir(c.Path), 0o755); err != nil {
			return "", err
		}
	case err != nil:
		return "", err
	default:
		if c.Before == nil || !bytes.Equal(cur, c.Before) {
			return "", fmt.Errorf("%s: %w", c.Path, ErrChangedSincePlan)
		}
		if fi, err := os.Stat(c.Path); err == nil {
			mode = fi.Mode().Perm()
		}
		backup = c.Path + ".wharf-backup-" + now.UTC().Format("20060102T150405Z")
		if err := atomicfile.Write(backup, cur, mode); err != nil {
			return "", fmt.Errorf("writing the backup %s: %w", backup, err)
		}
	}
	if err := atomicfile.Write(c.Path, c.After, mode); err != nil {
		return backup, err
	}
	return backup, nil
}
