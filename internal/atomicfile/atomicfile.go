// Package atomicfile replaces a file so that a crash or a full disk leaves
// either the old file or the new one, never a mix: the desktop settings,
// `wharf setup` and the self-signed certificates all write files that a
// running program reads.
package atomicfile

import (
	"io/fs"
	"os"
	"path/filepath"
)

// Write replaces path with b and the permission bits mode: a temporary
// file in the same directory, fsynced, renamed over path, then the
// directory fsynced so the rename survives a crash (where the file system
// can). A symlink at path is replaced, not followed.
func Write(path string, b []byte, mode fs.FileMode) (err error) {
	dir := filepath.Dir(path)
	f, err := os.CreateTemp(dir, "."+filepath.Base(path)+".tmp-*")
	if err != nil {
		return err
	}
	defer func() {
		if err != nil {
			f.Close()
			os.Remove(f.Name())
		}
	}()
	if err = f.Chmod(mode); err != nil {
		return err
	}
	if _, err = f.Write(b); err != nil {
		return err
	}
	if err = f.Sync(); err != nil {
		return err
	}
	if err = f.Close(); err != nil {
		return err
	}
	if err = os.Rename(f.Name(), path); err != nil {
		return err
	}
	if d, derr := os.Open(dir); derr == nil {
		d.Sync() // not every file system can; the rename is done either way
		d.Close()
	}
	return nil
}
