package storage

import (
	"fmt"
	"syscall"
)

// A reserve of free space is kept for the index: Badger writes through
// memory maps, and a write into a full disk there kills the process
// (SIGBUS) instead of returning an error. Blob and upload writes are
// refused with ErrNoSpace once free space drops below the reserve, so the
// index never meets a full disk.
const (
	minReserve = 4 << 20
	maxReserve = 1 << 30
	// checkEvery is how many bytes a streaming write may add between checks.
	checkEvery = 4 << 20
)

// SpaceLeft reports free bytes for writers and the reserve kept back.
func (s *Store) SpaceLeft() (free, reserve int64, err error) {
	var st syscall.Statfs_t
	if err := syscall.Statfs(s.root, &st); err != nil {
		return 0, 0, fmt.Errorf("storage: free space of %s: %w", s.root, err)
	}
	total := int64(st.Blocks) * int64(st.Bsize)
	reserve = min(max(total/50, minReserve), maxReserve)
	return int64(st.Bavail) * int64(st.Bsize), reserve, nil
}

func (s *Store) checkSpace() error {
	free, reserve, err := s.SpaceLeft()
	if err != nil {
		return nil // cannot tell; let the write itself find out
	}
	if free < reserve {
		return fmt.Errorf("%w: %d bytes free, %d kept in reserve for the index", ErrNoSpace, free, reserve)
	}
	return nil
}
