//go:build linux

package harness

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"syscall"
	"testing"
	"time"
)

// SmallFS is a size-limited filesystem mounted for one test, for disk-full
// tests: a loop-mounted ext4 image when the kernel allows it (real ENOSPC
// behaviour: journal, block allocation), else a tmpfs with a size limit.
type SmallFS struct {
	Dir  string // the mount point
	Kind string // "ext4 (loop)" or "tmpfs"
}

// MountSmallFS mounts a filesystem of size bytes on a fresh directory and
// unmounts it at cleanup; register it before starting a process that writes
// there, so the process is stopped first (cleanups run last-in first-out).
// Without root, loop devices or tmpfs mounts it skips, or fails under
// WHARF_E2E_REQUIRE=1.
func MountSmallFS(t testing.TB, size int64) *SmallFS {
	t.Helper()
	base := ShortTempDir(t, "wfs")
	mnt := filepath.Join(base, "mnt")
	if err := os.Mkdir(mnt, 0o755); err != nil {
		t.Fatal(err)
	}
	var errs []string
	if fs, err := mountLoopExt4(base, mnt, size); err == nil {
		registerUnmount(t, mnt)
		return fs
	} else {
		errs = append(errs, err.Error())
	}
	if err := syscall.Mount("tmpfs", mnt, "tmpfs", 0, "size="+strconv.FormatInt(size, 10)); err == nil {
		registerUnmount(t, mnt)
		return &SmallFS{Dir: mnt, Kind: "tmpfs"}
	} else {
		errs = append(errs, "tmpfs mount: "+err.Error())
	}
	skipOrFail(t, "cannot mount a small filesystem for a disk-full test (needs root and loop devices or tmpfs): %v", errs)
	return nil
}

func mountLoopExt4(base, mnt string, size int64) (*SmallFS, error) {
	mkfs, err := LookTool("mkfs.ext4")
	if err != nil {
		return nil, err
	}
	mount, err := LookTool("mount")
	if err != nil {
		return nil, err
	}
	if losetup, err := LookTool("losetup"); err == nil {
		if out, err := runTool(10*time.Second, nil, base, losetup, "-f"); err != nil {
			return nil, fmt.Errorf("no free loop device: %v", err)
		} else if len(out) == 0 {
			return nil, fmt.Errorf("no free loop device")
		}
	}
	img := filepath.Join(base, "fs.img")
	if err := os.WriteFile(img, nil, 0o600); err != nil {
		return nil, err
	}
	if err := os.Truncate(img, size); err != nil {
		return nil, err
	}
	// No reserved blocks: root (the tests' user) would otherwise get 5%
	// more than any other user, hiding where the disk really fills.
	if _, err := runTool(30*time.Second, nil, base, mkfs, "-q", "-F", "-m", "0", img); err != nil {
		return nil, err
	}
	if _, err := runTool(30*time.Second, nil, base, mount, "-o", "loop", img, mnt); err != nil {
		return nil, err
	}
	return &SmallFS{Dir: mnt, Kind: "ext4 (loop)"}, nil
}

func registerUnmount(t testing.TB, mnt string) {
	t.Cleanup(func() {
		// A lazy unmount cannot fail on a busy mount; the loop device is
		// released when the last user goes.
		if err := syscall.Unmount(mnt, syscall.MNT_DETACH); err != nil {
			t.Logf("unmounting %s: %v", mnt, err)
		}
	})
}

// Free is the space available to unprivileged writers on the filesystem.
func (f *SmallFS) Free() int64 {
	var st syscall.Statfs_t
	if err := syscall.Statfs(f.Dir, &st); err != nil {
		return -1
	}
	return int64(st.Bavail) * st.Bsize
}

// Size is the filesystem's total size.
func (f *SmallFS) Size() int64 {
	var st syscall.Statfs_t
	if err := syscall.Statfs(f.Dir, &st); err != nil {
		return -1
	}
	return int64(st.Blocks) * st.Bsize
}
